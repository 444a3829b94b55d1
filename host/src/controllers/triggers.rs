//! Which watch events start a reconcile. A reconciler's own status writes come back to it
//! (and to the controllers that own or watch the object) as watch events; reconciling on
//! each would read the object's BMC again for nothing. [`changes`] passes on an object only
//! when what its reconcilers act on changed — its fingerprint — or when it was deleted.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use futures::{Stream, StreamExt, TryStreamExt};
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
    let seen = Fingerprints::default();
    events.try_filter_map(move |event| {
        let passed = if seen.passes(&event, &fingerprint) {
            match event {
                watcher::Event::Apply(object)
                | watcher::Event::InitApply(object)
                | watcher::Event::Delete(object) => Some(object),
                watcher::Event::Init | watcher::Event::InitDone => None,
            }
        } else {
            None
        };
        futures::future::ready(Ok(passed))
    })
}

/// The last fingerprint of each object a trigger passed.
#[derive(Default)]
struct Fingerprints(Mutex<HashMap<String, u64>>);

impl Fingerprints {
    /// Whether the object of `event` passes: its fingerprint changed (always at first
    /// sight), or it was deleted. Remembers the fingerprint.
    fn passes<K: Resource>(
        &self,
        event: &watcher::Event<K>,
        fingerprint: &impl Fn(&K) -> u64,
    ) -> bool {
        let mut seen = self.0.lock().expect("fingerprints lock");
        match event {
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                let print = fingerprint(object);
                seen.insert(key(object), print) != Some(print)
            }
            watcher::Event::Delete(object) => {
                seen.remove(&key(object));
                true
            }
            watcher::Event::Init | watcher::Event::InitDone => false,
        }
    }
}

/// A second trigger on a watch that already feeds a store and a controller: given each
/// event of that watch after the store took it ([`Tap::apply`]), it passes on what
/// [`changes`] would (objects whose `fingerprint` changed, and deleted ones) to the stream
/// [`tap`] returned. A controller woken by it and reading that store reads the object at
/// least as new as the event; with a watch of its own, its event could overtake the store's
/// and the reconcile would judge the object as it was before (and not be woken again).
pub struct Tap<K> {
    sender: tokio::sync::mpsc::UnboundedSender<K>,
    seen: Fingerprints,
    fingerprint: Box<dyn Fn(&K) -> u64 + Send + Sync>,
}

/// A [`Tap`] and the stream of what it passes on (for `Controller::for_stream` or
/// `watches_stream`).
pub fn tap<K>(
    fingerprint: impl Fn(&K) -> u64 + Send + Sync + 'static,
) -> (Tap<K>, impl Stream<Item = Result<K, watcher::Error>> + Send)
where
    K: Send + 'static,
{
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let stream = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)).map(Ok);
    (
        Tap {
            sender,
            seen: Fingerprints::default(),
            fingerprint: Box::new(fingerprint),
        },
        stream,
    )
}

impl<K: Resource + Clone> Tap<K> {
    /// Takes one event of the watch (after its store did).
    pub fn apply(&self, event: &watcher::Event<K>) {
        if self.seen.passes(event, &self.fingerprint)
            && let watcher::Event::Apply(object)
            | watcher::Event::InitApply(object)
            | watcher::Event::Delete(object) = event
        {
            // Gone only with its controller (at shutdown): nothing left to wake.
            let _ = self.sender.send(object.clone());
        }
    }
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
    async fn a_tap_passes_on_what_changes_would() {
        let events = [
            watcher::Event::Init,
            watcher::Event::InitApply(map("a", 1, "x")),
            watcher::Event::InitDone,
            watcher::Event::Apply(map("a", 1, "y")),
            watcher::Event::Apply(map("a", 2, "y")),
            watcher::Event::Delete(map("a", 2, "y")),
            watcher::Event::Apply(map("a", 2, "y")),
        ];
        let expected: Vec<ConfigMap> = changes(
            futures::stream::iter(events.clone().map(Ok)),
            spec_and_labels,
        )
        .map(|object| object.expect("no errors"))
        .collect()
        .await;
        let (tap, stream) = tap(spec_and_labels);
        for event in &events {
            tap.apply(event);
        }
        drop(tap);
        let passed: Vec<ConfigMap> = stream
            .map(|object| object.expect("no errors"))
            .collect()
            .await;
        assert_eq!(passed, expected);
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
