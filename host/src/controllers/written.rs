//! The resource versions a reconciler's own writes produced, so it can decide on its watch
//! cache instead of reading the object back: a cached object older than the reconciler's last
//! write to it is not acted on (a step planned on it could run twice — a second boot token,
//! a second power-on); the reconcile waits for the watch to catch up instead.
//!
//! Resource versions are compared as numbers. Kubernetes calls them opaque, but
//! kube-apiserver's etcd3 storage issues them from etcd's revision counter, and its own watch
//! cache compares them the same way; a version that is not a number disables the check for
//! that object (it is read from the API server instead).

use std::collections::HashMap;
use std::sync::Mutex;

/// Whether a cached object can be decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// It includes every write of this reconciler (or there were none).
    Current,
    /// The cache has not yet seen this reconciler's last write.
    Behind,
    /// Its version cannot be compared; read the object from the API server.
    Unknown,
}

/// The last resource version each object was written at, by object key.
#[derive(Default)]
pub struct WrittenVersions {
    versions: Mutex<HashMap<String, u64>>,
}

impl WrittenVersions {
    /// Records that a write left `key` at `resource_version`.
    pub fn record(&self, key: &str, resource_version: Option<&str>) {
        let mut versions = self.versions.lock().expect("versions lock");
        match resource_version.and_then(|v| v.parse::<u64>().ok()) {
            Some(version) => {
                let entry = versions.entry(key.to_owned()).or_default();
                *entry = (*entry).max(version);
            }
            None => {
                versions.remove(key);
            }
        }
    }

    /// Whether the cached `key` at `resource_version` includes this reconciler's writes. An
    /// object that caught up is forgotten, so the map holds only objects with writes in
    /// flight.
    pub fn freshness(&self, key: &str, resource_version: Option<&str>) -> Freshness {
        let mut versions = self.versions.lock().expect("versions lock");
        let Some(&written) = versions.get(key) else {
            return Freshness::Current;
        };
        match resource_version.and_then(|v| v.parse::<u64>().ok()) {
            None => Freshness::Unknown,
            Some(cached) if cached >= written => {
                versions.remove(key);
                Freshness::Current
            }
            Some(_) => Freshness::Behind,
        }
    }

    /// Forgets a deleted object.
    pub fn forget(&self, key: &str) {
        self.versions.lock().expect("versions lock").remove(key);
    }

    /// How many objects wait for the cache to catch up.
    pub fn len(&self) -> usize {
        self.versions.lock().expect("versions lock").len()
    }

    /// Whether no object waits for the cache.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_behind_the_last_write_is_not_decided_on_until_it_catches_up() {
        let written = WrittenVersions::default();
        assert_eq!(written.freshness("s", Some("5")), Freshness::Current);
        written.record("s", Some("10"));
        written.record("s", Some("9"));
        assert_eq!(written.freshness("s", Some("9")), Freshness::Behind);
        assert_eq!(written.freshness("s", Some("10")), Freshness::Current);
        assert!(written.is_empty(), "caught up objects are forgotten");
        written.record("s", Some("12"));
        assert_eq!(written.freshness("s", Some("13")), Freshness::Current);
    }

    #[test]
    fn versions_that_are_not_numbers_are_read_from_the_api_server() {
        let written = WrittenVersions::default();
        written.record("s", Some("7"));
        assert_eq!(written.freshness("s", Some("abc")), Freshness::Unknown);
        written.record("s", Some("opaque"));
        assert_eq!(written.freshness("s", Some("1")), Freshness::Current);
        written.record("t", Some("3"));
        written.forget("t");
        assert!(written.is_empty());
    }
}
