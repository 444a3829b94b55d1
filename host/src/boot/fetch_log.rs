//! Fetch records: what machines fetched from the boot server (iPXE script, ignition, boot
//! state), written to their ServerBootConfigurations' status, batched and never dropped.
//!
//! The boot server answers thousands of machines a second; the API server takes a few hundred
//! writes. So a fetch is not a message in a queue that can overflow but a mark on its
//! configuration: [`FetchLog::record`] merges it into that configuration's pending entry (a
//! map insert under a mutex, and a wake-up), and the recorder ([`FetchLog::run`]) writes one
//! status update per configuration carrying every fetch pending for it, a few configurations
//! at a time. Memory is one entry per configuration with unwritten fetches, so it is bounded by
//! the number of configurations however fast machines fetch. A write the API server refuses
//! or does not answer is merged back and retried after a backoff; a configuration that no
//! longer exists ends its entry.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::sync::Notify;

use super::index::{ConfigKey, Fetch};
use super::server::FetchReport;
use crate::api::conditions::{
    BOOT_STATE_RECEIVED, FETCH_TICKET_REUSED, IGNITION_DATA_FETCHED, IPXE_SCRIPT_FETCHED,
    SOURCE_ADDRESS_REFUSED,
};
use crate::api::{ServerBootConfiguration, conditions};
use crate::controllers::bootconfig::BOOT_SERVER_MANAGER;

/// Status writes in flight at once: enough to drain a thousand configurations in a few
/// seconds, few enough not to crowd out the reconcilers' requests.
pub const MAX_WRITES_IN_FLIGHT: usize = 8;
/// Delay before the first retry of a failed write; doubles per failure in a row.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest delay between retries of a failed write.
pub const RETRY_MAX: Duration = Duration::from_secs(300);
/// How long the recorder lets fetches gather after a quiet spell (no write in flight) before
/// it writes: a machine fetches its script, ignition and boot state within moments, and one
/// write then records them all. A busy recorder does not wait.
pub const LINGER: Duration = Duration::from_secs(2);

/// The conditions the boot server owns on a configuration (its field manager states all of
/// them in every write).
const FETCH_CONDITIONS: [&str; 5] = [
    IPXE_SCRIPT_FETCHED,
    IGNITION_DATA_FETCHED,
    BOOT_STATE_RECEIVED,
    FETCH_TICKET_REUSED,
    SOURCE_ADDRESS_REFUSED,
];

/// Condition type, reason and default message recording `fetch`.
fn describe(fetch: Fetch) -> (&'static str, &'static str, &'static str) {
    match fetch {
        Fetch::SourceRefused => (
            SOURCE_ADDRESS_REFUSED,
            conditions::REASON_NOT_THE_LEASED_ADDRESS,
            "a request came from another address than the one ferrometal's DHCP server leased",
        ),
        Fetch::TicketReused => (
            FETCH_TICKET_REUSED,
            conditions::REASON_FETCH_TICKET_REFUSED,
            "the fetch ticket was presented a second time and refused",
        ),
        Fetch::Script => (
            IPXE_SCRIPT_FETCHED,
            conditions::REASON_IPXE_SCRIPT_DELIVERED,
            "the machine fetched its iPXE script",
        ),
        Fetch::Ignition => (
            IGNITION_DATA_FETCHED,
            conditions::REASON_IGNITION_DATA_DELIVERED,
            "the machine fetched its ignition",
        ),
        Fetch::BootState => (
            BOOT_STATE_RECEIVED,
            conditions::REASON_BOOT_STATE_RECEIVED,
            "the discovery system reported that it booted",
        ),
    }
}

/// When a fetch happened, and what its condition's message adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// When.
    pub at: Timestamp,
    /// The message, when the fetch has more to say than its kind's default.
    pub detail: Option<String>,
}

/// When each kind of fetch last happened, for one configuration.
pub type Fetches = BTreeMap<Fetch, Fetched>;

/// Adds a fetch at `at`; of two of the same kind the later one wins.
fn merge(fetches: &mut Fetches, fetch: Fetch, at: Timestamp, detail: Option<String>) {
    let fetched = Fetched { at, detail };
    fetches
        .entry(fetch)
        .and_modify(|known| {
            if fetched.at >= known.at {
                *known = fetched.clone();
            }
        })
        .or_insert(fetched);
}

/// The fetches of one configuration taken for one status write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The configuration to write.
    pub config: ConfigKey,
    /// Every fetch pending for it when the batch was taken.
    pub fetches: Fetches,
    /// Failed writes in a row before this one (sets the next backoff).
    pub failures: u32,
}

#[derive(Debug)]
struct Entry {
    fetches: Fetches,
    failures: u32,
    /// Set while the entry waits out a backoff.
    retry_at: Option<Instant>,
}

/// The pending fetches of every configuration (pure: no I/O, no clock of its own).
///
/// A configuration is in at most one of three places: `ready` (to be written, oldest first),
/// `backoff` (waiting to retry), or in flight (its batch is being written; fetches that
/// arrive meanwhile wait in `entries` until that write ends, so two writes of one
/// configuration never race, which matters because each states all of the boot server's
/// conditions from what it read).
#[derive(Debug, Default)]
pub struct Pending {
    entries: HashMap<ConfigKey, Entry>,
    ready: VecDeque<ConfigKey>,
    backoff: BTreeSet<(Instant, ConfigKey)>,
    in_flight: HashSet<ConfigKey>,
}

impl Pending {
    /// Merges a fetch into its configuration's entry.
    pub fn record(&mut self, report: FetchReport, at: Timestamp) {
        if let Some(entry) = self.entries.get_mut(&report.config) {
            merge(&mut entry.fetches, report.fetch, at, report.detail);
            return;
        }
        let mut fetches = Fetches::new();
        merge(&mut fetches, report.fetch, at, report.detail);
        if !self.in_flight.contains(&report.config) {
            self.ready.push_back(report.config.clone());
        }
        self.entries.insert(
            report.config,
            Entry {
                fetches,
                failures: 0,
                retry_at: None,
            },
        );
    }

    /// Takes up to `limit` batches to write, oldest first, after moving the entries whose
    /// backoff has passed by `now` to the back of the line. Taken configurations are in
    /// flight until [`Pending::done`] or [`Pending::failed`].
    pub fn take(&mut self, now: Instant, limit: usize) -> Vec<Batch> {
        while let Some((at, _)) = self.backoff.first()
            && *at <= now
        {
            if let Some((_, config)) = self.backoff.pop_first() {
                if let Some(entry) = self.entries.get_mut(&config) {
                    entry.retry_at = None;
                }
                self.ready.push_back(config);
            }
        }
        let mut batches = Vec::new();
        while batches.len() < limit
            && let Some(config) = self.ready.pop_front()
        {
            if let Some(entry) = self.entries.remove(&config) {
                self.in_flight.insert(config.clone());
                batches.push(Batch {
                    config,
                    fetches: entry.fetches,
                    failures: entry.failures,
                });
            }
        }
        batches
    }

    /// Ends the write of `config` (written, or discarded because the configuration is gone);
    /// fetches that arrived meanwhile get in line.
    pub fn done(&mut self, config: &ConfigKey) {
        if self.in_flight.remove(config) && self.entries.contains_key(config) {
            self.ready.push_back(config.clone());
        }
    }

    /// Puts a batch whose write failed back, merged with what arrived meanwhile, to be retried
    /// after a backoff that doubles per failure in a row. Returns the delay.
    pub fn failed(&mut self, batch: Batch, now: Instant) -> Duration {
        self.in_flight.remove(&batch.config);
        let failures = batch.failures.saturating_add(1);
        let delay = retry_delay(failures);
        let retry_at = now + delay;
        let entry = self
            .entries
            .entry(batch.config.clone())
            .or_insert_with(|| Entry {
                fetches: Fetches::new(),
                failures: 0,
                retry_at: None,
            });
        for (fetch, fetched) in batch.fetches {
            merge(&mut entry.fetches, fetch, fetched.at, fetched.detail);
        }
        entry.failures = failures;
        entry.retry_at = Some(retry_at);
        self.backoff.insert((retry_at, batch.config));
        delay
    }

    /// When the earliest backoff ends, if any entry waits for one.
    pub fn next_retry(&self) -> Option<Instant> {
        self.backoff.first().map(|(at, _)| *at)
    }

    /// Configurations with fetches not yet written (in flight included).
    pub fn len(&self) -> usize {
        self.entries.len()
            + self
                .in_flight
                .iter()
                .filter(|config| !self.entries.contains_key(*config))
                .count()
    }

    /// Whether every recorded fetch is written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The backoff after `failures` failed writes in a row (at least one).
fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    RETRY_FIRST.saturating_mul(1 << doublings).min(RETRY_MAX)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    outcome: &'static str,
}

/// How far the recorder is behind, and what its writes did.
#[derive(Debug, Clone, Default)]
pub struct FetchMetrics {
    pending: Gauge,
    writes: Family<WriteLabels, Counter>,
}

impl FetchMetrics {
    /// Registers `ferrometal_boot_fetch_records_pending` and
    /// `ferrometal_boot_fetch_record_writes_total`.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("ferrometal");
        registry.register(
            "boot_fetch_records_pending",
            "ServerBootConfigurations with machine fetches not yet written to their status",
            self.pending.clone(),
        );
        registry.register(
            "boot_fetch_record_writes",
            "Fetch record writes by outcome (written, unchanged, gone, failed)",
            self.writes.clone(),
        );
    }

    pub(crate) fn count(&self, outcome: &'static str) {
        self.writes.get_or_create(&WriteLabels { outcome }).inc();
    }
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Notify,
    metrics: FetchMetrics,
}

/// The boot server's fetch records; cheap to clone (every clone is the same log).
#[derive(Debug, Clone, Default)]
pub struct FetchLog {
    shared: Arc<Shared>,
}

impl FetchLog {
    /// A log that counts into `metrics` (registered by the caller).
    pub fn new(metrics: FetchMetrics) -> Self {
        Self {
            shared: Arc::new(Shared {
                metrics,
                ..Shared::default()
            }),
        }
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a fetch that happened now; never blocks on I/O and never drops it.
    pub fn record(&self, report: FetchReport) {
        let pending = {
            let mut pending = self.pending();
            pending.record(report, Timestamp::now());
            pending.len()
        };
        self.shared.metrics.pending.set(gauge_value(pending));
        self.shared.wake.notify_one();
    }

    /// Configurations with fetches not yet written.
    pub fn len(&self) -> usize {
        self.pending().len()
    }

    /// Whether every recorded fetch is written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The recorder: writes pending fetches to their configurations (at most
    /// [`MAX_WRITES_IN_FLIGHT`] at once) until the process ends. Run one per log.
    pub async fn run(self, client: Client) {
        let writer = Writer { client };
        let mut writes = FuturesUnordered::new();
        // Writes wait until then after a wake-up that ended a quiet spell (see `LINGER`).
        let mut gather_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let gathering = gather_until.is_some_and(|until| until > now);
            let (batches, retry_at) = {
                let mut pending = self.pending();
                let batches = if gathering {
                    Vec::new()
                } else {
                    pending.take(now, MAX_WRITES_IN_FLIGHT.saturating_sub(writes.len()))
                };
                (batches, pending.next_retry())
            };
            for batch in batches {
                let writer = &writer;
                writes.push(async move {
                    let outcome = writer.write(&batch).await;
                    (batch, outcome)
                });
            }
            let retry = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending::<()>().await,
                }
            };
            let gathered = async {
                match gather_until {
                    Some(until) if gathering => {
                        tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
                    }
                    _ => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                Some((batch, outcome)) = writes.next(), if !writes.is_empty() => {
                    self.finish(batch, outcome);
                }
                () = self.shared.wake.notified() => {
                    // Only after a quiet spell: a busy recorder writes what it has at once.
                    if !gathering && writes.is_empty() {
                        gather_until = Some(Instant::now() + LINGER);
                    }
                }
                () = retry => {}
                () = gathered => {}
            }
        }
    }

    /// Books the outcome of one write.
    fn finish(&self, batch: Batch, outcome: Outcome) {
        let config = batch.config.clone();
        let mut pending = self.pending();
        match outcome {
            Outcome::Written(kinds) => {
                tracing::info!(%config, conditions = ?kinds, "machine fetches recorded");
                pending.done(&config);
                self.shared.metrics.count("written");
            }
            Outcome::Unchanged => {
                tracing::debug!(%config, "machine fetches already recorded");
                pending.done(&config);
                self.shared.metrics.count("unchanged");
            }
            Outcome::Gone => {
                tracing::debug!(%config, "configuration is gone; its fetch records are discarded");
                pending.done(&config);
                self.shared.metrics.count("gone");
            }
            Outcome::Failed(error) => {
                let retry_in = pending.failed(batch, Instant::now());
                tracing::warn!(%config, %error, ?retry_in, "cannot record machine fetches on the configuration; will retry");
                self.shared.metrics.count("failed");
            }
        }
        self.shared.metrics.pending.set(gauge_value(pending.len()));
    }
}

fn gauge_value(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// What one write did.
#[derive(Debug)]
enum Outcome {
    /// The status was written; these conditions changed.
    Written(Vec<&'static str>),
    /// Every fetch was recorded already (or predates the configuration): nothing to write.
    Unchanged,
    /// The configuration does not exist (any more).
    Gone,
    /// The API server refused or did not answer; the batch is retried.
    Failed(kube::Error),
}

struct Writer {
    client: Client,
}

impl Writer {
    /// Sets the batch's conditions on its configuration, under the boot server's own field
    /// manager beside the reconciler's (no Event: it would only repeat the condition).
    async fn write(&self, batch: &Batch) -> Outcome {
        let api: Api<ServerBootConfiguration> =
            Api::namespaced(self.client.clone(), &batch.config.namespace);
        let sbc = match api.get_opt(&batch.config.name).await {
            Ok(Some(sbc)) => sbc,
            Ok(None) => return Outcome::Gone,
            Err(error) => return Outcome::Failed(error),
        };
        // An apply states everything its manager owns: keep the conditions already recorded.
        let mut owned: Vec<Condition> = sbc
            .status
            .as_ref()
            .map(|status| status.conditions.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|c| FETCH_CONDITIONS.contains(&c.type_.as_str()))
            .collect();
        let created = sbc.metadata.creation_timestamp.as_ref().map(|time| time.0);
        let changed = apply_fetches(&mut owned, &batch.fetches, created);
        if changed.is_empty() {
            return Outcome::Unchanged;
        }
        match crate::controllers::status::apply(
            &api,
            &batch.config.name,
            BOOT_SERVER_MANAGER,
            json!({ "conditions": owned }),
        )
        .await
        {
            Ok(Some(_)) => {}
            Ok(None) => return Outcome::Gone,
            Err(error) => return Outcome::Failed(error),
        }
        // No Event: it would only repeat the condition (and cost a write per fetch).
        Outcome::Written(changed.iter().map(|fetch| describe(*fetch).0).collect())
    }
}

/// How much older than its configuration a fetch must be to count as an earlier
/// configuration's: the fetch time is this process's clock, the creation time the API
/// server's, and the two may disagree by a few seconds.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(60);

/// Sets the condition of every fetch in `fetches` on `owned` (the condition's time is when
/// the fetch happened) and returns the fetches whose condition changed. A fetch from well
/// before the configuration was `created` (a write retried through an API outage while the
/// configuration was deleted and made again) belongs to an earlier configuration of the same
/// name and is skipped.
fn apply_fetches(
    owned: &mut Vec<Condition>,
    fetches: &Fetches,
    created: Option<Timestamp>,
) -> Vec<Fetch> {
    let earliest = created.and_then(|created| created.checked_sub(CLOCK_SKEW_ALLOWANCE).ok());
    fetches
        .iter()
        .filter(|(_, fetched)| earliest.is_none_or(|earliest| fetched.at >= earliest))
        .filter_map(|(fetch, fetched)| {
            let (kind, reason, message) = describe(*fetch);
            if *fetch == Fetch::TicketReused {
                // Dated by this refusal, not the first one of the configuration: the Server
                // tells a refusal in its current attempt by the time.
                owned.retain(|condition| condition.type_ != kind);
            }
            let message = fetched.detail.as_deref().unwrap_or(message);
            conditions::set(owned, kind, true, reason, message, None, Time(fetched.at))
                .then_some(*fetch)
        })
        .collect()
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

    fn report(name: &str, fetch: Fetch) -> FetchReport {
        FetchReport {
            config: key(name),
            fetch,
            detail: None,
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).expect("timestamp")
    }

    fn fetches(items: &[(Fetch, i64)]) -> Fetches {
        items
            .iter()
            .map(|(fetch, s)| {
                (
                    *fetch,
                    Fetched {
                        at: at(*s),
                        detail: None,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn fetches_of_one_configuration_merge_into_one_write_and_the_latest_time_wins() {
        let mut pending = Pending::default();
        pending.record(report("a", Fetch::Script), at(1));
        pending.record(report("a", Fetch::Ignition), at(2));
        pending.record(report("a", Fetch::BootState), at(3));
        pending.record(report("a", Fetch::BootState), at(5));
        pending.record(report("a", Fetch::BootState), at(4));
        assert_eq!(pending.len(), 1);

        let batches = pending.take(Instant::now(), 8);
        assert_eq!(
            batches,
            [Batch {
                config: key("a"),
                fetches: fetches(&[
                    (Fetch::Script, 1),
                    (Fetch::Ignition, 2),
                    (Fetch::BootState, 5)
                ]),
                failures: 0,
            }]
        );
        pending.done(&key("a"));
        assert!(pending.is_empty());
        assert!(pending.take(Instant::now(), 8).is_empty());
    }

    #[test]
    fn memory_is_bounded_by_the_number_of_configurations_and_nothing_is_dropped() {
        let mut pending = Pending::default();
        for round in 0..100 {
            for config in 0..50 {
                for fetch in [Fetch::Script, Fetch::Ignition, Fetch::BootState] {
                    pending.record(report(&format!("sbc-{config}"), fetch), at(round));
                }
            }
        }
        assert_eq!(pending.len(), 50);
        assert_eq!(pending.ready.len(), 50);

        let mut written = Vec::new();
        loop {
            let batches = pending.take(Instant::now(), MAX_WRITES_IN_FLIGHT);
            if batches.is_empty() {
                break;
            }
            assert!(batches.len() <= MAX_WRITES_IN_FLIGHT);
            for batch in batches {
                assert_eq!(
                    batch.fetches.len(),
                    3,
                    "every kind of fetch is in the write"
                );
                assert!(batch.fetches.values().all(|fetched| fetched.at == at(99)));
                pending.done(&batch.config);
                written.push(batch.config);
            }
        }
        assert_eq!(written.len(), 50, "one write per configuration");
        assert_eq!(written[0], key("sbc-0"), "oldest first");
        assert!(pending.is_empty());
    }

    #[test]
    fn a_configuration_is_never_written_twice_at_once() {
        let mut pending = Pending::default();
        pending.record(report("a", Fetch::Script), at(1));
        let first = pending.take(Instant::now(), 8);
        assert_eq!(first.len(), 1);

        pending.record(report("a", Fetch::Ignition), at(2));
        assert_eq!(pending.len(), 1);
        assert!(
            pending.take(Instant::now(), 8).is_empty(),
            "waits for the write in flight"
        );

        pending.done(&key("a"));
        assert_eq!(
            pending.take(Instant::now(), 8),
            [Batch {
                config: key("a"),
                fetches: fetches(&[(Fetch::Ignition, 2)]),
                failures: 0,
            }]
        );
    }

    #[test]
    fn a_failed_write_is_requeued_with_what_arrived_meanwhile_after_a_doubling_backoff() {
        let mut pending = Pending::default();
        let start = Instant::now();
        pending.record(report("a", Fetch::Script), at(1));
        pending.record(report("b", Fetch::Script), at(1));
        let batch = pending.take(start, 1).remove(0);
        assert_eq!(batch.config, key("a"));
        pending.record(report("a", Fetch::Ignition), at(2));

        assert_eq!(pending.failed(batch, start), RETRY_FIRST);
        assert_eq!(pending.len(), 2);
        assert_eq!(pending.next_retry(), Some(start + RETRY_FIRST));
        let others = pending.take(start, 8);
        assert_eq!(
            others.iter().map(|b| &b.config).collect::<Vec<_>>(),
            [&key("b")],
            "a backs off, b does not wait for it"
        );
        pending.done(&key("b"));

        let later = start + RETRY_FIRST;
        let retried = pending.take(later, 8).remove(0);
        assert_eq!(
            retried,
            Batch {
                config: key("a"),
                fetches: fetches(&[(Fetch::Script, 1), (Fetch::Ignition, 2)]),
                failures: 1,
            }
        );
        assert_eq!(pending.failed(retried, later), RETRY_FIRST * 2);
        assert_eq!(pending.next_retry(), Some(later + RETRY_FIRST * 2));
        assert!(pending.take(later + RETRY_FIRST, 8).is_empty());
        let third = pending.take(later + RETRY_FIRST * 2, 8).remove(0);
        assert_eq!(third.failures, 2);
        pending.done(&third.config);
        assert!(pending.is_empty());
        assert_eq!(pending.next_retry(), None);
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let delays: Vec<u64> = (1..=12).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(retry_delay(u32::MAX), RETRY_MAX);
    }

    #[test]
    fn a_discarded_configuration_lets_newer_fetches_in_line() {
        let mut pending = Pending::default();
        pending.record(report("a", Fetch::Script), at(1));
        let batch = pending.take(Instant::now(), 8).remove(0);
        pending.record(report("a", Fetch::Script), at(9));
        pending.done(&batch.config);
        assert_eq!(
            pending.take(Instant::now(), 8)[0].fetches,
            fetches(&[(Fetch::Script, 9)])
        );
    }

    #[test]
    fn conditions_change_only_for_new_fetches_and_keep_their_first_time() {
        let mut owned = Vec::new();
        let changed = apply_fetches(
            &mut owned,
            &fetches(&[(Fetch::Script, 1), (Fetch::Ignition, 2)]),
            Some(at(0)),
        );
        assert_eq!(changed, [Fetch::Script, Fetch::Ignition]);
        assert_eq!(owned.len(), 2);
        assert_eq!(owned[0].type_, IPXE_SCRIPT_FETCHED);
        assert_eq!(owned[0].reason, "IPXEScriptDelivered");
        assert_eq!(owned[0].last_transition_time, Time(at(1)));

        let changed = apply_fetches(
            &mut owned,
            &fetches(&[(Fetch::Script, 5), (Fetch::BootState, 6)]),
            Some(at(0)),
        );
        assert_eq!(
            changed,
            [Fetch::BootState],
            "the script was recorded already"
        );
        assert_eq!(owned[0].last_transition_time, Time(at(1)));
        assert_eq!(owned[2].type_, BOOT_STATE_RECEIVED);
    }

    #[test]
    fn a_detail_names_the_fetch_and_a_refused_ticket_is_dated_by_its_latest_refusal() {
        let mut owned = Vec::new();
        let detailed = |fetch, second, detail: &str| {
            Fetches::from([(
                fetch,
                Fetched {
                    at: at(second),
                    detail: Some(detail.to_owned()),
                },
            )])
        };
        apply_fetches(
            &mut owned,
            &detailed(Fetch::Ignition, 1, "from 10.0.0.5"),
            None,
        );
        assert_eq!(owned[0].message, "from 10.0.0.5");
        apply_fetches(&mut owned, &detailed(Fetch::TicketReused, 2, "first"), None);
        apply_fetches(
            &mut owned,
            &detailed(Fetch::TicketReused, 9, "second"),
            None,
        );
        let refused = owned
            .iter()
            .find(|c| c.type_ == FETCH_TICKET_REUSED)
            .expect("recorded");
        assert_eq!(
            (refused.message.as_str(), &refused.last_transition_time),
            ("second", &Time(at(9)))
        );
    }

    #[test]
    fn fetches_from_well_before_the_configuration_existed_are_not_recorded_on_it() {
        let mut owned = Vec::new();
        let changed = apply_fetches(
            &mut owned,
            &fetches(&[
                (Fetch::Script, 1),
                (Fetch::Ignition, 90),
                (Fetch::BootState, 200),
            ]),
            Some(at(100)),
        );
        assert_eq!(
            changed,
            [Fetch::Ignition, Fetch::BootState],
            "a few seconds early is clock skew, not an earlier configuration"
        );
        assert_eq!(owned.len(), 2);
    }
}
