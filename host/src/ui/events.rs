//! The Events this operator process published, remembered per object for the fleet view, so
//! a Server's page shows its recent Events without reading Events from the API server. Only
//! this process's Events: after a restart the list starts empty (the API server keeps them;
//! `kubectl events` shows them all).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock, PoisonError};

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

/// Events kept per object.
const PER_OBJECT: usize = 10;
/// Objects kept: the least recently reported one goes first beyond this.
const OBJECTS: usize = 20_000;

/// One Event as the fleet view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecentEvent {
    /// `Normal` or `Warning`.
    pub type_: String,
    /// Its reason.
    pub reason: String,
    /// Its note.
    pub note: String,
    /// When it was published (RFC 3339).
    pub at: String,
}

/// Recent Events per object (`Kind/name`), bounded in both directions.
#[derive(Debug, Default)]
pub struct RecentEvents {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_object: HashMap<String, VecDeque<RecentEvent>>,
    /// Objects in the order they were last reported about (oldest first).
    order: VecDeque<String>,
}

impl RecentEvents {
    /// The process's Events, as `controllers::report` publishes them.
    pub fn global() -> &'static RecentEvents {
        static EVENTS: OnceLock<RecentEvents> = OnceLock::new();
        EVENTS.get_or_init(RecentEvents::default)
    }

    /// Remembers an Event about `kind`/`name`.
    pub fn record(&self, kind: &str, name: &str, event: RecentEvent) {
        let key = format!("{kind}/{name}");
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Inner { by_object, order } = &mut *inner;
        if let Some(position) = order.iter().rposition(|k| *k == key) {
            order.remove(position);
        }
        order.push_back(key.clone());
        let events = by_object.entry(key).or_default();
        if events.len() == PER_OBJECT {
            events.pop_front();
        }
        events.push_back(event);
        while order.len() > OBJECTS {
            if let Some(oldest) = order.pop_front() {
                by_object.remove(&oldest);
            }
        }
    }

    /// The recent Events about `kind`/`name`, newest first.
    pub fn of(&self, kind: &str, name: &str) -> Vec<RecentEvent> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .by_object
            .get(&format!("{kind}/{name}"))
            .map(|events| events.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}

/// An Event as it is published now.
pub fn now(type_: &str, reason: &str, note: &str) -> RecentEvent {
    RecentEvent {
        type_: type_.to_owned(),
        reason: reason.to_owned(),
        note: note.to_owned(),
        at: Timestamp::now().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_kept_newest_first_and_bounded_per_object() {
        let events = RecentEvents::default();
        for n in 0..(PER_OBJECT + 3) {
            events.record("Server", "a", now("Normal", "R", &n.to_string()));
        }
        events.record("BMC", "a", now("Warning", "Down", "x"));
        let kept = events.of("Server", "a");
        assert_eq!(kept.len(), PER_OBJECT);
        assert_eq!(kept[0].note, (PER_OBJECT + 2).to_string());
        assert_eq!(events.of("BMC", "a")[0].reason, "Down");
        assert!(events.of("Server", "b").is_empty());
    }
}
