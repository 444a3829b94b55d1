//! Which watch events start a reconcile. A reconciler's own status writes come back to it
//! (and to the controllers that own or watch the object) as watch events; reconciling on
//! each would read the object's BMC again for nothing. [`changes`] passes on an object only
//! when what its reconcilers act on changed — its fingerprint — or when it was deleted.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use futures::{Stream, TryStreamExt};
use kube::Resource;
use kube::runtime::watcher;

/// The objects of `events` whose `fingerprint` changed since their last event, and deleted
/// ones. The first event of an object always passes.
pub fn changes<K, S>(
    events: S,
    fingerprint: impl Fn(&K) -> u64 + Send + 'static,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send
where
    K: Resource + Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    let seen: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    events.try_filter_map(move |event| {
        let mut seen = seen.lock().expect("fingerprints lock");
        let passed = match event {
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                let print = fingerprint(&object);
                let key = key(&object);
                (seen.insert(key, print) != Some(print)).then_some(object)
            }
            watcher::Event::Delete(object) => {
                seen.remove(&key(&object));
                Some(object)
            }
            watcher::Event::Init | watcher::Event::InitDone => None,
        };
        futures::future::ready(Ok(passed))
    })
}

/// The deleted objects of `events`: for a controller that owns objects it creates and
/// applies on every reconcile anyway, only a deletion needs a reconcile (to re-create it).
pub fn deletions<K, S>(events: S) -> impl Stream<Item = Result<K, watcher::Error>> + Send
where
    K: Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    events.try_filter_map(|event| {
        futures::future::ready(Ok(match event {
            watcher::Event::Delete(object) => Some(object),
            _ => None,
        }))
    })
}

fn key<K: Resource>(object: &K) -> String {
    let meta = object.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// A fingerprint of `values` (for [`changes`]).
pub fn fingerprint(values: impl Hash) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    values.hash(&mut hasher);
    hasher.finish()
}

/// The fingerprint of an object's spec (its generation) and labels.
pub fn spec_and_labels<K: Resource>(object: &K) -> u64 {
    let meta = object.meta();
    fingerprint((meta.generation, &meta.labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn map(name: &str, generation: i64, data: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            data: Some([(String::from("k"), data.to_owned())].into()),
            ..ConfigMap::default()
        }
    }

    #[tokio::test]
    async fn only_changed_fingerprints_and_deletions_pass() {
        let events = futures::stream::iter(
            [
                watcher::Event::Init,
                watcher::Event::InitApply(map("a", 1, "x")),
                watcher::Event::InitDone,
                // A status-like change: same generation.
                watcher::Event::Apply(map("a", 1, "y")),
                watcher::Event::Apply(map("a", 2, "y")),
                watcher::Event::Delete(map("a", 2, "y")),
                watcher::Event::Apply(map("a", 2, "y")),
            ]
            .map(Ok),
        );
        let passed: Vec<(i64, String)> = changes(events, spec_and_labels)
            .map(|object| {
                let object = object.expect("no errors");
                (
                    object.metadata.generation.unwrap_or_default(),
                    object.data.unwrap_or_default()["k"].clone(),
                )
            })
            .collect()
            .await;
        assert_eq!(
            passed,
            vec![
                (1, String::from("x")),
                (2, String::from("y")),
                (2, String::from("y")),
                (2, String::from("y")),
            ],
            "first sight, new generation, deletion, and re-creation pass; a status change does not"
        );
    }

    #[tokio::test]
    async fn only_deletions_pass_for_owners() {
        let events = futures::stream::iter(
            [
                watcher::Event::InitApply(map("a", 1, "x")),
                watcher::Event::Apply(map("a", 2, "x")),
                watcher::Event::Delete(map("a", 2, "x")),
            ]
            .map(Ok),
        );
        let passed: Vec<i64> = deletions(events)
            .map(|object| {
                object
                    .expect("no errors")
                    .metadata
                    .generation
                    .unwrap_or_default()
            })
            .collect()
            .await;
        assert_eq!(passed, vec![2]);
    }
}
