//! Secondary indexes kept from a watch's own events: which objects carry a given key (a
//! system UUID, a referenced Server or Secret), answered without a list request and without
//! scanning every object, so a watch mapper costs O(1) per event.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use kube::ResourceExt;
use kube::runtime::watcher::Event;

/// What an object contributes: `(key, value)` pairs; the value says which object it is (and
/// whatever the reader wants to know of it) and orders the answers.
pub type Extract<K, V> = fn(&K) -> Vec<(String, V)>;

#[derive(Debug)]
struct Entries<V> {
    by_key: HashMap<String, BTreeSet<V>>,
    /// Each object's pairs, to take them out when it changes or goes.
    by_object: HashMap<String, Vec<(String, V)>>,
}

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
            by_object: HashMap::new(),
        }
    }
}

impl<V: Ord + Clone> Entries<V> {
    fn apply<K: ResourceExt>(&mut self, object: &K, extract: Extract<K, V>) {
        let id = super::object_key(object);
        self.delete(&id);
        let pairs = extract(object);
        for (key, value) in &pairs {
            self.by_key
                .entry(key.clone())
                .or_default()
                .insert(value.clone());
        }
        if !pairs.is_empty() {
            self.by_object.insert(id, pairs);
        }
    }

    fn delete(&mut self, id: &str) {
        for (key, value) in self.by_object.remove(id).unwrap_or_default() {
            if let Some(values) = self.by_key.get_mut(&key) {
                values.remove(&value);
                if values.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }
}

/// An index over the objects of one watch, fed by its events.
#[derive(Debug)]
pub struct WatchIndex<K, V> {
    extract: Extract<K, V>,
    current: Mutex<Entries<V>>,
    /// A relist in progress: filled by `InitApply`, swapped in at `InitDone`.
    relist: Mutex<Option<Entries<V>>>,
}

impl<K: ResourceExt, V: Ord + Clone> WatchIndex<K, V> {
    /// An empty index whose entries `extract` gives.
    pub fn new(extract: Extract<K, V>) -> Self {
        Self {
            extract,
            current: Mutex::default(),
            relist: Mutex::default(),
        }
    }

    /// Takes one event of the watch into account.
    pub fn apply(&self, event: &Event<K>) {
        match event {
            Event::Apply(object) => lock(&self.current).apply(object, self.extract),
            Event::Delete(object) => lock(&self.current).delete(&super::object_key(object)),
            Event::Init => *lock(&self.relist) = Some(Entries::default()),
            Event::InitApply(object) => {
                if let Some(relist) = lock(&self.relist).as_mut() {
                    relist.apply(object, self.extract);
                }
            }
            Event::InitDone => {
                if let Some(relist) = lock(&self.relist).take() {
                    *lock(&self.current) = relist;
                }
            }
        }
    }

    /// The values under `key`, in order.
    pub fn get(&self, key: &str) -> Vec<V> {
        lock(&self.current)
            .by_key
            .get(key)
            .map(|values| values.iter().cloned().collect())
            .unwrap_or_default()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is a few map operations on data that stays consistent between them.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    /// ConfigMaps keyed by each of their data values.
    fn index() -> WatchIndex<ConfigMap, String> {
        WatchIndex::new(|map| {
            map.data
                .iter()
                .flatten()
                .map(|(_, value)| (value.clone(), map.name_any()))
                .collect()
        })
    }

    fn map(name: &str, values: &[&str]) -> ConfigMap {
        ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(String::from("ns")),
                ..Default::default()
            },
            data: Some(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i.to_string(), (*v).to_owned()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn objects_are_found_by_key_and_leave_with_their_changes_and_deletion() {
        let index = index();
        index.apply(&Event::Apply(map("b", &["x", "y"])));
        index.apply(&Event::Apply(map("a", &["x"])));
        assert_eq!(index.get("x"), ["a", "b"]);
        assert_eq!(index.get("y"), ["b"]);
        index.apply(&Event::Apply(map("b", &["z"])));
        assert_eq!(index.get("x"), ["a"]);
        assert!(index.get("y").is_empty());
        index.apply(&Event::Delete(map("a", &["x"])));
        assert!(index.get("x").is_empty());
        assert_eq!(index.get("z"), ["b"]);
    }

    #[test]
    fn a_relist_replaces_the_index_when_it_is_done() {
        let index = index();
        index.apply(&Event::Apply(map("gone", &["x"])));
        index.apply(&Event::Init);
        index.apply(&Event::InitApply(map("kept", &["x"])));
        assert_eq!(
            index.get("x"),
            ["gone"],
            "the old view holds until the relist is done"
        );
        index.apply(&Event::InitDone);
        assert_eq!(index.get("x"), ["kept"]);
    }
}
