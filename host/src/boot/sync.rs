//! Whether the boot index holds what the API server holds: after a start (or restart) the
//! index is empty until the boot-configuration controller has looked at every
//! ServerBootConfiguration once. Until then a machine the index does not know may be one
//! whose configuration is not indexed yet, so the boot server asks it to come back
//! (`503` + `Retry-After`) instead of answering `404`, and `/readyz` says not ready.
//!
//! The index counts as synced when every configuration of the watch's first listing has
//! been reconciled once (served or refused: either way the index then says what it will
//! say), or was deleted.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use super::index::ConfigKey;

#[derive(Debug, Default)]
struct Progress {
    /// Whether the first listing has arrived.
    listed: bool,
    /// Configurations of the first listing not reconciled yet.
    pending: HashSet<ConfigKey>,
    /// Configurations reconciled before the first listing arrived.
    early: HashSet<ConfigKey>,
}

/// The index's first sync; shared by the controller (which reports) and the boot server,
/// `/readyz` (which ask). The default is synced: an index filled by hand (tests,
/// benchmarks) is complete as it is.
#[derive(Debug)]
pub struct IndexSync {
    synced: AtomicBool,
    progress: Mutex<Progress>,
}

impl Default for IndexSync {
    fn default() -> Self {
        Self {
            synced: AtomicBool::new(true),
            progress: Mutex::default(),
        }
    }
}

impl IndexSync {
    /// Not synced until [`Self::listed`] and a [`Self::visited`] for each listed
    /// configuration.
    pub fn awaiting_listing() -> Self {
        Self {
            synced: AtomicBool::new(false),
            progress: Mutex::default(),
        }
    }

    /// Whether every configuration of the first listing has been indexed (or refused).
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// The watch's first listing is complete: these configurations exist.
    pub fn listed(&self, configs: impl IntoIterator<Item = ConfigKey>) {
        if self.synced() {
            return;
        }
        let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        if progress.listed {
            return;
        }
        let early = std::mem::take(&mut progress.early);
        progress.pending = configs
            .into_iter()
            .filter(|config| !early.contains(config))
            .collect();
        progress.listed = true;
        self.settle(&progress);
    }

    /// `config` was reconciled (whatever the outcome) or deleted.
    pub fn visited(&self, config: &ConfigKey) {
        if self.synced() {
            return;
        }
        let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        if progress.listed {
            progress.pending.remove(config);
        } else {
            progress.early.insert(config.clone());
        }
        self.settle(&progress);
    }

    /// How many configurations of the first listing are still to be indexed (`None` before
    /// the listing).
    pub fn pending(&self) -> Option<usize> {
        let progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        progress.listed.then_some(progress.pending.len())
    }

    fn settle(&self, progress: &Progress) {
        if progress.listed && progress.pending.is_empty() {
            self.synced.store(true, Ordering::Release);
            tracing::info!("the boot index holds every boot configuration; serving");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ConfigKey {
        ConfigKey {
            namespace: String::from("metal"),
            name: name.to_owned(),
        }
    }

    #[test]
    fn an_index_filled_by_hand_is_synced() {
        assert!(IndexSync::default().synced());
    }

    #[test]
    fn nothing_is_synced_before_the_first_listing() {
        let sync = IndexSync::awaiting_listing();
        sync.visited(&key("a"));
        assert!(!sync.synced());
        assert_eq!(sync.pending(), None);
    }

    #[test]
    fn an_empty_listing_is_synced_at_once() {
        let sync = IndexSync::awaiting_listing();
        sync.listed([]);
        assert!(sync.synced());
    }

    #[test]
    fn the_index_is_synced_when_every_listed_configuration_was_visited() {
        let sync = IndexSync::awaiting_listing();
        // Reconciles may start before the listing is complete.
        sync.visited(&key("a"));
        sync.listed([key("a"), key("b"), key("c")]);
        assert!(!sync.synced());
        assert_eq!(sync.pending(), Some(2));
        sync.visited(&key("b"));
        // A configuration created after the listing does not hold readiness back.
        sync.visited(&key("new"));
        assert!(!sync.synced());
        sync.visited(&key("c"));
        assert!(sync.synced());
        // A later listing (a re-list) changes nothing.
        sync.listed([key("d")]);
        assert!(sync.synced());
    }
}
