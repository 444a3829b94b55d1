//! The host's memory of credential-lookup answers.
//!
//! The `credential-lookup` world has no capabilities (no BMC, no network, no clock beyond
//! WASI's defaults), so an answer is a function of the plugin, the operator's settings and
//! the MAC. Without this cache every lookup would instantiate the plugin afresh, and `macdb`
//! would parse its whole database from the settings each time. One cache belongs to one
//! loaded plugin (one digest); it keys answers by a digest of the settings and the MAC's
//! 48-bit value, so `52-54-00-AA-BB-CC` and `5254.00aa.bbcc` share an entry (plugins must
//! answer by the MAC's value, not its spelling: docs/plugins.md). Only answers are kept —
//! known (`Some`) and unknown (`None`) MACs — never errors, so a failure is retried on the
//! next lookup.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::metrics::PluginMetrics;
use super::types::BmcProfile;

/// Answers kept per plugin: far more BMCs than a fleet has, a few MiB at most.
pub(crate) const ANSWER_CAPACITY: usize = 16 * 1024;

/// Settings remembered as valid per plugin; operators use one or two at a time.
const VALID_CAPACITY: usize = 64;

/// sha256 of a list of settings, pairs in order, every key and value prefixed by its length
/// (so `("ab", "c")` and `("a", "bc")` differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SettingsDigest([u8; 32]);

impl SettingsDigest {
    fn of(settings: &[(String, String)]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update((settings.len() as u64).to_le_bytes());
        for (key, value) in settings {
            for text in [key, value] {
                hasher.update((text.len() as u64).to_le_bytes());
                hasher.update(text.as_bytes());
            }
        }
        Self(hasher.finalize().into())
    }
}

/// The value of a MAC written as 12 hex digits, in any case, with or without `:`, `-` or `.`
/// separators; `None` for anything else (such lookups bypass the cache).
fn mac_value(mac: &str) -> Option<u64> {
    let digits: String = mac
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    if digits.len() == 12 && digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        u64::from_str_radix(&digits, 16).ok()
    } else {
        None
    }
}

/// Where an answer is kept: which settings, which MAC.
type AnswerKey = (SettingsDigest, u64);

/// Bounded maps of lookup answers and valid settings for one plugin.
#[derive(Debug)]
pub(crate) struct LookupCache {
    capacity: usize,
    metrics: PluginMetrics,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The settings digested last. Callers pass the same settings on every call, so comparing
    /// them with these (a byte comparison) spares a sha256 of a whole database per lookup.
    last_settings: Option<(Vec<(String, String)>, SettingsDigest)>,
    answers: HashMap<AnswerKey, Option<BmcProfile>>,
    valid: HashMap<SettingsDigest, ()>,
}

impl LookupCache {
    /// A cache keeping at most `capacity` answers, counting hits and misses in `metrics`.
    pub(crate) fn new(metrics: PluginMetrics, capacity: usize) -> Self {
        Self {
            capacity,
            metrics,
            inner: Mutex::default(),
        }
    }

    /// The answer for `mac` with `settings`: the remembered one, or what `ask` (the plugin)
    /// says, remembered unless it is an error or `mac` is not a MAC.
    pub(crate) async fn lookup<E>(
        &self,
        mac: &str,
        settings: &[(String, String)],
        ask: impl AsyncFnOnce() -> Result<Option<BmcProfile>, E>,
    ) -> Result<Option<BmcProfile>, E> {
        let key = mac_value(mac).map(|mac| (self.settings_digest(settings), mac));
        let cached = key.and_then(|key| self.answer(key));
        self.metrics.lookup_cache("lookup", cached.is_some());
        if let Some(answer) = cached {
            return Ok(answer);
        }
        let answer = ask().await?;
        if let Some(key) = key {
            self.remember(key, answer.clone());
        }
        Ok(answer)
    }

    /// `Ok` if `settings` were accepted before, otherwise what `ask` (the plugin) says; an
    /// acceptance is remembered.
    pub(crate) async fn validate<E>(
        &self,
        settings: &[(String, String)],
        ask: impl AsyncFnOnce() -> Result<(), E>,
    ) -> Result<(), E> {
        let digest = self.settings_digest(settings);
        let cached = self.is_valid(digest);
        self.metrics.lookup_cache("validate-settings", cached);
        if !cached {
            ask().await?;
            self.remember_valid(digest);
        }
        Ok(())
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The digest of `settings`, hashed only when they differ from the last ones seen.
    fn settings_digest(&self, settings: &[(String, String)]) -> SettingsDigest {
        let mut inner = self.inner();
        if let Some((last, digest)) = &inner.last_settings
            && last.as_slice() == settings
        {
            return *digest;
        }
        let digest = SettingsDigest::of(settings);
        inner.last_settings = Some((settings.to_vec(), digest));
        digest
    }

    /// The answer kept for `key`: `Some(None)` is a remembered unknown MAC, `None` a miss.
    fn answer(&self, key: AnswerKey) -> Option<Option<BmcProfile>> {
        self.inner().answers.get(&key).cloned()
    }

    /// Keeps `answer` for `key`, dropping an arbitrary other answer when full.
    fn remember(&self, key: AnswerKey, answer: Option<BmcProfile>) {
        let capacity = self.capacity;
        insert_bounded(&mut self.inner().answers, key, answer, capacity);
    }

    /// Whether the plugin accepted `settings` before.
    fn is_valid(&self, settings: SettingsDigest) -> bool {
        self.inner().valid.contains_key(&settings)
    }

    /// Remembers that the plugin accepted `settings`.
    fn remember_valid(&self, settings: SettingsDigest) {
        insert_bounded(&mut self.inner().valid, settings, (), VALID_CAPACITY);
    }

    #[cfg(test)]
    fn answers(&self) -> usize {
        self.inner().answers.len()
    }
}

/// Inserts into `map`, first removing an arbitrary entry if `key` is new and the map holds
/// `capacity` entries. The hasher is randomly seeded, so which entry goes is arbitrary.
fn insert_bounded<K: Copy + Eq + Hash, V>(
    map: &mut HashMap<K, V>,
    key: K,
    value: V,
    capacity: usize,
) {
    if !map.contains_key(&key)
        && map.len() >= capacity
        && let Some(victim) = map.keys().next().copied()
    {
        map.remove(&victim);
    }
    map.insert(key, value);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::plugins::types::DefaultCredential;

    fn settings(database: &str) -> Vec<(String, String)> {
        vec![(String::from("database"), database.to_owned())]
    }

    fn profile(port: u16) -> BmcProfile {
        BmcProfile {
            manufacturer: String::from("QEMU"),
            protocol: String::from("Redfish"),
            scheme: None,
            port,
            default_credentials: vec![DefaultCredential {
                username: String::from("admin"),
                password: String::from("admin"),
            }],
            console_protocol: None,
            console_port: None,
        }
    }

    /// A stand-in plugin that knows MACs starting with `52:54:00` and counts its calls.
    #[derive(Default)]
    struct Plugin {
        calls: AtomicUsize,
    }

    impl Plugin {
        async fn lookup(&self, mac: &str) -> Result<Option<BmcProfile>, String> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            Ok(mac_value(mac)
                .filter(|value| value >> 24 == 0x52_5400)
                .map(|_| profile(443)))
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::Relaxed)
        }
    }

    /// Looks `mac` up through `cache`, asking `plugin` on a miss.
    async fn look(
        cache: &LookupCache,
        plugin: &Plugin,
        mac: &str,
        settings: &[(String, String)],
    ) -> Result<Option<BmcProfile>, String> {
        cache
            .lookup(mac, settings, async || plugin.lookup(mac).await)
            .await
    }

    fn counted(metrics: &PluginMetrics, operation: &str, outcome: &str) -> u64 {
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        let series = format!(
            r#"ferrometal_plugin_lookup_cache_total{{operation="{operation}",outcome="{outcome}"}} "#
        );
        text.lines()
            .find_map(|line| line.strip_prefix(&series))
            .map_or(0, |count| count.parse().expect("a count"))
    }

    #[rstest::rstest]
    #[case::colons("52:54:00:aa:bb:cc")]
    #[case::upper_case_hyphens("52-54-00-AA-BB-CC")]
    #[case::dots("5254.00aa.bbcc")]
    #[case::bare("525400AABBCC")]
    fn every_spelling_of_a_mac_has_one_value(#[case] mac: &str) {
        assert_eq!(mac_value(mac), Some(0x5254_00aa_bbcc));
    }

    #[rstest::rstest]
    #[case::word("invalid")]
    #[case::empty("")]
    #[case::too_short("52:54:00:aa:bb")]
    #[case::too_long("52:54:00:aa:bb:cc:dd")]
    #[case::not_hex("52:54:00:aa:bb:cg")]
    #[case::sign("+52:54:00:aa:bb:c")]
    #[case::space(" 52:54:00:aa:bb:cc")]
    fn what_is_not_a_mac_has_no_value(#[case] mac: &str) {
        assert_eq!(mac_value(mac), None);
    }

    #[tokio::test]
    async fn a_second_lookup_of_a_mac_is_answered_without_the_plugin() {
        let metrics = PluginMetrics::default();
        let cache = LookupCache::new(metrics.clone(), ANSWER_CAPACITY);
        let plugin = Plugin::default();
        let db = settings("db");
        let qemu = Ok(Some(profile(443)));
        assert_eq!(look(&cache, &plugin, "52:54:00:aa:bb:cc", &db).await, qemu);
        assert_eq!(
            look(&cache, &plugin, "00:00:5e:00:53:01", &db).await,
            Ok(None)
        );
        assert_eq!(plugin.calls(), 2);
        assert_eq!(look(&cache, &plugin, "52:54:00:aa:bb:cc", &db).await, qemu);
        assert_eq!(look(&cache, &plugin, "5254.00AA.BBCC", &db).await, qemu);
        assert_eq!(
            look(&cache, &plugin, "00005e005301", &db).await,
            Ok(None),
            "an unknown MAC is an answer too"
        );
        assert_eq!(plugin.calls(), 2, "every spelling of a known MAC was a hit");
        assert_eq!(look(&cache, &plugin, "52:54:00:aa:bb:cd", &db).await, qemu);
        assert_eq!(plugin.calls(), 3, "another MAC is a miss");
        assert_eq!(counted(&metrics, "lookup", "hit"), 3);
        assert_eq!(counted(&metrics, "lookup", "miss"), 3);
    }

    #[tokio::test]
    async fn other_settings_are_another_entry() {
        let cache = LookupCache::new(PluginMetrics::default(), ANSWER_CAPACITY);
        let plugin = Plugin::default();
        for database in ["db one", "db two", "db one", "db two"] {
            let answer = look(&cache, &plugin, "52:54:00:aa:bb:cc", &settings(database)).await;
            assert!(answer.expect("answer").is_some());
        }
        assert_eq!(plugin.calls(), 2, "one ask per settings");
    }

    #[tokio::test]
    async fn errors_are_not_remembered() {
        let metrics = PluginMetrics::default();
        let cache = LookupCache::new(metrics.clone(), ANSWER_CAPACITY);
        let plugin = Plugin::default();
        let db = settings("db");
        let crashed = || {
            plugin.calls.fetch_add(1, Ordering::Relaxed);
            String::from("crashed")
        };
        for _ in 0..2 {
            let answer = cache.lookup("52:54:00:aa:bb:cc", &db, async || Err(crashed()));
            assert_eq!(answer.await, Err(String::from("crashed")));
            let validation = cache.validate(&db, async || Err(crashed()));
            assert_eq!(validation.await, Err(String::from("crashed")));
        }
        assert_eq!(plugin.calls(), 4, "every failure was asked again");
        for _ in 0..2 {
            let answer = look(&cache, &plugin, "52:54:00:aa:bb:cc", &db).await;
            assert!(answer.expect("answer").is_some());
        }
        assert_eq!(plugin.calls(), 5, "a later success is remembered");
        assert_eq!(counted(&metrics, "lookup", "hit"), 1);
    }

    #[tokio::test]
    async fn what_is_not_a_mac_always_goes_to_the_plugin() {
        let cache = LookupCache::new(PluginMetrics::default(), ANSWER_CAPACITY);
        let plugin = Plugin::default();
        for _ in 0..2 {
            assert_eq!(look(&cache, &plugin, "invalid", &[]).await, Ok(None));
        }
        assert_eq!(plugin.calls(), 2);
        assert_eq!(cache.answers(), 0);
    }

    #[tokio::test]
    async fn accepted_settings_are_not_validated_again() {
        let metrics = PluginMetrics::default();
        let cache = LookupCache::new(metrics.clone(), ANSWER_CAPACITY);
        let plugin = Plugin::default();
        let accept = async || {
            plugin.calls.fetch_add(1, Ordering::Relaxed);
            Ok::<_, String>(())
        };
        for database in ["db one", "db one", "db two", "db one"] {
            cache
                .validate(&settings(database), accept)
                .await
                .expect("valid");
        }
        assert_eq!(plugin.calls(), 2);
        assert_eq!(counted(&metrics, "validate-settings", "hit"), 2);
        assert_eq!(counted(&metrics, "validate-settings", "miss"), 2);
    }

    #[test]
    fn settings_digests_see_where_keys_end_and_in_which_order_pairs_come() {
        let pair = |key: &str, value: &str| (key.to_owned(), value.to_owned());
        let digest = |settings: &[(String, String)]| SettingsDigest::of(settings);
        assert_ne!(digest(&[pair("ab", "c")]), digest(&[pair("a", "bc")]));
        assert_ne!(
            digest(&[pair("a", "1"), pair("b", "2")]),
            digest(&[pair("b", "2"), pair("a", "1")])
        );
        assert_ne!(digest(&[]), digest(&[pair("", "")]));
        let cache = LookupCache::new(PluginMetrics::default(), ANSWER_CAPACITY);
        for settings in [[pair("a", "1")], [pair("a", "2")], [pair("a", "1")]] {
            assert_eq!(
                cache.settings_digest(&settings),
                digest(&settings),
                "the remembered digest is only reused for equal settings"
            );
        }
    }

    #[test]
    fn the_cache_holds_at_most_its_capacity_and_keeps_the_newest_answer() {
        let cache = LookupCache::new(PluginMetrics::default(), 4);
        let digest = cache.settings_digest(&settings("db"));
        for mac in 0..10 {
            cache.remember((digest, mac), None);
            assert!(cache.answers() <= 4, "{} answers", cache.answers());
            assert_eq!(cache.answer((digest, mac)), Some(None));
        }
        assert_eq!(cache.answers(), 4);
        cache.remember((digest, 9), Some(profile(443)));
        assert_eq!(cache.answers(), 4, "replacing an answer evicts nothing");
        assert_eq!(cache.answer((digest, 9)), Some(Some(profile(443))));
    }

    #[test]
    fn valid_settings_are_remembered_within_a_bound() {
        let cache = LookupCache::new(PluginMetrics::default(), ANSWER_CAPACITY);
        for n in 0..VALID_CAPACITY * 2 {
            let digest = SettingsDigest::of(&settings(&n.to_string()));
            cache.remember_valid(digest);
            assert!(cache.is_valid(digest));
            assert!(cache.inner().valid.len() <= VALID_CAPACITY);
        }
    }
}
