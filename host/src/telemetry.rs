//! Operator metrics and the HTTP endpoint that serves them with health probes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use futures::FutureExt;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::common::PowerState;
use crate::api::{BMC, Server, ServerState, conditions};
use crate::controllers::caches::Caches;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    controller: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: String,
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BindLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PowerStateLabels {
    power_state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// A part of a Server's in-band discovery whose duration is measured (label `phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiscoveryPhase {
    /// From the attempt's start until the one-time network boot was requested: the boot
    /// configuration becomes Ready, the boot server opens the boot window, and the BMC takes
    /// the boot override and the power-on.
    BootConfiguration,
    /// From the network boot request until the probe's report arrived: firmware, PXE and
    /// iPXE, the discovery OS, metalprobe.
    Boot,
    /// From the report until the Server became Available: waiting for parts or NICs the
    /// report lacked, the power-off.
    Completion,
}

impl DiscoveryPhase {
    /// Every phase, in the order a discovery passes them.
    pub const ALL: [Self; 3] = [Self::BootConfiguration, Self::Boot, Self::Completion];

    /// The `phase` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::BootConfiguration => "boot_configuration",
            Self::Boot => "boot",
            Self::Completion => "completion",
        }
    }
}

/// How long network boot requests are remembered to time the [`DiscoveryPhase::Boot`] of
/// their Server (longer than any discovery timeout; older ones are dropped).
const BOOT_REQUEST_MEMORY: SignedDuration = SignedDuration::from_hours(24);

/// Reconcile, BMC-probe and discovery metrics, and the fleet gauges read from the watch
/// caches on each scrape. Labels name controllers, outcomes, states and phases — never
/// objects.
#[derive(Debug, Clone)]
pub struct ControllerMetrics {
    reconciles: Family<ReconcileLabels, Counter>,
    durations: Family<ControllerLabels, Histogram>,
    probes: Family<ProbeLabels, Counter>,
    claim_binds: Family<BindLabels, Counter>,
    /// BMC credential rotations by outcome (`controllers::bmc_rotation`).
    rotations: Family<BindLabels, Counter>,
    /// BMCs whose credential rotation is overdue (names kept to count each BMC once).
    rotations_overdue: Arc<Mutex<std::collections::BTreeSet<String>>>,
    rotations_overdue_gauge: prometheus_client::metrics::gauge::Gauge,
    errors: Family<ErrorLabels, Counter>,
    /// metal-operator's `metal_server_reconciliation_total{result}`, for its dashboards and
    /// alerts: the Server controller's reconciles.
    server_reconciliations: Family<ResultLabels, Counter>,
    discovery_phases: Family<PhaseLabels, Histogram>,
    discovery_durations: Histogram,
    discovery_timeouts: Counter,
    /// When this process requested each Server's discovery boot (its attempt and the time):
    /// the start of its [`DiscoveryPhase::Boot`], which nothing on the Server records.
    boot_requests: Arc<Mutex<HashMap<String, (u32, Timestamp)>>>,
    /// The watch caches the fleet gauges count, once the controllers have them.
    fleet: FleetGauges,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        Self {
            reconciles: Family::default(),
            durations: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 4.0, 10))
            }),
            probes: Family::default(),
            claim_binds: Family::default(),
            rotations: Family::default(),
            rotations_overdue: Arc::default(),
            rotations_overdue_gauge: Default::default(),
            errors: Family::default(),
            server_reconciliations: Family::default(),
            // 0.5 s to about 68 min: a phase ends within a reconcile or takes minutes.
            discovery_phases: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.5, 2.0, 14))
            }),
            discovery_durations: Histogram::new(exponential_buckets(0.5, 2.0, 14)),
            discovery_timeouts: Counter::default(),
            boot_requests: Arc::default(),
            fleet: FleetGauges::default(),
        }
    }
}

impl ControllerMetrics {
    /// Registers the metrics under the `ferrometal` prefix (and metal-operator's
    /// `metal_server_reconciliation_total` under its own name).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "metal_server_reconciliation",
            "Server reconciliations by result (success, error_reconcile), under metal-operator's name",
            self.server_reconciliations.clone(),
        );
        let registry = registry.sub_registry_with_prefix("ferrometal");
        registry.register(
            "reconciles",
            "Reconciles by controller and outcome",
            self.reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciles by controller",
            self.durations.clone(),
        );
        registry.register(
            "bmc_probes",
            "BMC probes by outcome (the Ready condition's reason)",
            self.probes.clone(),
        );
        registry.register(
            "claim_binds",
            "ServerClaim binding attempts by outcome (bound; conflict: the Server changed or was taken first; none: no Server could be claimed)",
            self.claim_binds.clone(),
        );
        registry.register(
            "bmc_credential_rotations",
            "BMC credential rotations by outcome (succeeded; failed: rolled back or could not start, the current password still works; uncertain: neither the current nor the new password was accepted)",
            self.rotations.clone(),
        );
        registry.register(
            "bmc_credential_rotations_overdue",
            "BMCs whose credential rotation was due over an hour ago and has not succeeded (still on the database default, past the interval, or uncertain)",
            self.rotations_overdue_gauge.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles by controller and kind of failure (conflict, not-found, forbidden, invalid, throttled, api-server-error, api, transport)",
            self.errors.clone(),
        );
        registry.register(
            "discovery_phase_duration_seconds",
            "Time in-band discoveries spent in each phase (boot_configuration: attempt start to network boot request; boot: to the probe's report; completion: to Available)",
            self.discovery_phases.clone(),
        );
        registry.register(
            "discovery_duration_seconds",
            "Time from the start of a discovery attempt until the Server became Available (in-band)",
            self.discovery_durations.clone(),
        );
        registry.register(
            "discovery_timeouts",
            "Discovery attempts that timed out (the Server went to Error with DiscoveryTimedOut)",
            self.discovery_timeouts.clone(),
        );
        registry.register_collector(Box::new(self.fleet.clone()));
    }

    /// Lets the fleet gauges (Servers by state and power state, BMCs by `Ready` reason, the
    /// longest wait in a transient state) count the controllers' watch caches. Until it is
    /// called, and while a cache has not listed everything (on a standby, never), the gauges
    /// have no samples. The first call wins.
    pub fn observe_fleet(&self, caches: Arc<Caches>) {
        let _ = self.fleet.0.set(caches);
    }

    /// Starts timing a reconcile; the guard records it when finished.
    pub fn reconcile(&self, controller: &'static str) -> ReconcileTimer {
        ReconcileTimer {
            metrics: self.clone(),
            controller,
            started: Instant::now(),
        }
    }

    /// Counts a failed reconcile by its kind (see `controllers::Error::kind`).
    pub fn error(&self, controller: &str, kind: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                controller: controller.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Counts a ServerClaim binding attempt: `bound`, `conflict` or `none`.
    pub fn claim_bind(&self, outcome: &'static str) {
        self.claim_binds
            .get_or_create(&BindLabels { outcome })
            .inc();
    }

    /// Counts a finished BMC credential rotation: `succeeded`, `failed` or `uncertain`.
    pub fn credential_rotation(&self, outcome: &'static str) {
        self.rotations.get_or_create(&BindLabels { outcome }).inc();
    }

    /// Records whether `bmc`'s credential rotation is overdue (as of its last reconcile).
    pub fn rotation_overdue(&self, bmc: &str, overdue: bool) {
        let mut set = self
            .rotations_overdue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let changed = if overdue {
            set.insert(bmc.to_owned())
        } else {
            set.remove(bmc)
        };
        if changed {
            self.rotations_overdue_gauge
                .set(i64::try_from(set.len()).unwrap_or(i64::MAX));
        }
    }

    /// Counts a BMC probe outcome.
    pub fn probe(&self, reason: &str) {
        self.probes
            .get_or_create(&ProbeLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Records how long a discovery spent in `phase` (negative spans count as 0).
    pub fn discovery_phase(&self, phase: DiscoveryPhase, span: SignedDuration) {
        self.discovery_phases
            .get_or_create(&PhaseLabels {
                phase: phase.label(),
            })
            .observe(seconds(span));
    }

    /// Records a discovery attempt that made its Server Available after `span`.
    pub fn discovered(&self, span: SignedDuration) {
        self.discovery_durations.observe(seconds(span));
    }

    /// Counts a discovery attempt that timed out.
    pub fn discovery_timed_out(&self) {
        self.discovery_timeouts.inc();
    }

    /// Remembers that this process requested `server`'s network boot for `attempt` at `at`.
    pub fn boot_requested(&self, server: &str, attempt: u32, at: Timestamp) {
        let mut requests = self
            .boot_requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Servers deleted while booting are never taken back: drop what is too old to be
        // a discovery still running.
        requests.retain(|_, (_, requested)| at.duration_since(*requested) < BOOT_REQUEST_MEMORY);
        requests.insert(server.to_owned(), (attempt, at));
    }

    /// When this process requested `server`'s network boot for `attempt`, handed out once
    /// (`None`: another attempt's, or requested before this process started).
    pub fn take_boot_request(&self, server: &str, attempt: u32) -> Option<Timestamp> {
        let mut requests = self
            .boot_requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match requests.get(server) {
            Some((requested_for, at)) if *requested_for == attempt => {
                let at = *at;
                requests.remove(server);
                Some(at)
            }
            _ => None,
        }
    }

    /// Forgets `server`'s boot request (its attempt ended without a report).
    pub fn forget_boot_request(&self, server: &str) {
        self.boot_requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(server);
    }
}

/// A span in seconds, 0 for a negative one (clocks of different machines).
fn seconds(span: SignedDuration) -> f64 {
    span.as_secs_f64().max(0.0)
}

/// Times one reconcile; call [`ReconcileTimer::finish`] with its outcome.
#[derive(Debug)]
pub struct ReconcileTimer {
    metrics: ControllerMetrics,
    controller: &'static str,
    started: Instant,
}

impl ReconcileTimer {
    /// Records the outcome (`ok` or `error`) and the duration.
    pub fn finish(self, ok: bool) {
        self.metrics
            .reconciles
            .get_or_create(&ReconcileLabels {
                controller: self.controller.to_owned(),
                outcome: String::from(if ok { "ok" } else { "error" }),
            })
            .inc();
        if self.controller == "server" {
            // metal-operator's `error_fetch` (reading the Server failed) is one of ours
            // too: every failure here is an API request that failed.
            self.metrics
                .server_reconciliations
                .get_or_create(&ResultLabels {
                    result: if ok { "success" } else { "error_reconcile" },
                })
                .inc();
        }
        self.metrics
            .durations
            .get_or_create(&ControllerLabels {
                controller: self.controller.to_owned(),
            })
            .observe(self.started.elapsed().as_secs_f64());
    }
}

/// The fleet gauges: computed from the watch caches on each scrape (no API request), so
/// they cost a pass over the cached Servers and BMCs per scrape and nothing in between.
#[derive(Clone, Default)]
struct FleetGauges(Arc<OnceLock<Arc<Caches>>>);

impl std::fmt::Debug for FleetGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetGauges")
            .field("observing", &self.0.get().is_some())
            .finish()
    }
}

/// The objects of a store that has listed everything once, or `None`.
fn listed<K>(store: &Store<K>) -> Option<Vec<Arc<K>>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .wait_until_ready()
        .now_or_never()
        .and_then(Result::ok)
        .map(|()| store.state())
}

impl Collector for FleetGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let caches = self.0.get();
        let servers = caches
            .and_then(|caches| listed(&caches.servers))
            .map(|servers| ServerCensus::of(servers.iter().map(AsRef::as_ref), Timestamp::now()));
        let bmcs = caches
            .and_then(|caches| listed(&caches.bmcs))
            .map(|bmcs| bmc_census(bmcs.iter().map(AsRef::as_ref)));
        let empty = ServerCensus::default();
        let census = servers.as_ref().unwrap_or(&empty);
        let sampled = servers.is_some();
        encode_gauges(
            &mut encoder,
            "servers",
            "Servers by status.state (a Server without one counts as Initial)",
            sampled.then_some(&census.by_state),
            |state| StateLabels { state },
        )?;
        encode_gauges(
            &mut encoder,
            "servers_by_power_state",
            "Servers by status.powerState (a Server without one counts as Unknown)",
            sampled.then_some(&census.by_power_state),
            |power_state| PowerStateLabels { power_state },
        )?;
        encode_gauges(
            &mut encoder,
            "server_longest_in_state_seconds",
            "How long the Server longest in a transient state (Initial: since it was created; Discovery: since its attempt started) has been in it; 0 when none is",
            sampled.then_some(&census.longest_in_state),
            |state| StateLabels { state },
        )?;
        encode_gauges(
            &mut encoder,
            "bmcs",
            "BMCs by the reason of their Ready condition (Connected: reachable; Pending: not probed yet)",
            bmcs.as_ref(),
            |reason| ReasonLabels { reason },
        )
    }
}

/// One gauge family: described always, with a sample per key once `values` are known.
fn encode_gauges<V, L>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: Option<&BTreeMap<&'static str, V>>,
    labels: impl Fn(&'static str) -> L,
) -> Result<(), std::fmt::Error>
where
    V: Copy + prometheus_client::encoding::EncodeGaugeValue + std::fmt::Debug,
    L: EncodeLabelSet,
{
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (key, value) in values.into_iter().flatten() {
        let labels = labels(key);
        ConstGauge::new(*value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The `state` label of a Server state.
fn state_label(state: ServerState) -> &'static str {
    match state {
        ServerState::Initial => "Initial",
        ServerState::Discovery => "Discovery",
        ServerState::Available => "Available",
        ServerState::Reserved => "Reserved",
        ServerState::Released => "Released",
        ServerState::Error => "Error",
        ServerState::Parked => "Parked",
    }
}

const SERVER_STATES: [ServerState; 7] = [
    ServerState::Initial,
    ServerState::Discovery,
    ServerState::Available,
    ServerState::Reserved,
    ServerState::Released,
    ServerState::Error,
    ServerState::Parked,
];

/// The `power_state` label of a power state.
fn power_state_label(state: PowerState) -> &'static str {
    match state {
        PowerState::On => "On",
        PowerState::Off => "Off",
        PowerState::Paused => "Paused",
        PowerState::PoweringOn => "PoweringOn",
        PowerState::PoweringOff => "PoweringOff",
        PowerState::Unknown => "Unknown",
    }
}

const POWER_STATES: [PowerState; 6] = [
    PowerState::On,
    PowerState::Off,
    PowerState::Paused,
    PowerState::PoweringOn,
    PowerState::PoweringOff,
    PowerState::Unknown,
];

/// The Servers counted for the fleet gauges. Every state and power state has a sample (0
/// when no Server is in it), so dashboards and alerts see a steady set of series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerCensus {
    /// Servers by `status.state` label.
    pub by_state: BTreeMap<&'static str, i64>,
    /// Servers by `status.powerState` label.
    pub by_power_state: BTreeMap<&'static str, i64>,
    /// For `Initial` and `Discovery`: the seconds the Server longest in it has been there.
    pub longest_in_state: BTreeMap<&'static str, f64>,
}

impl ServerCensus {
    /// Counts `servers` as of `now`.
    pub fn of<'a>(servers: impl IntoIterator<Item = &'a Server>, now: Timestamp) -> Self {
        let mut census = Self {
            by_state: SERVER_STATES.iter().map(|s| (state_label(*s), 0)).collect(),
            by_power_state: POWER_STATES
                .iter()
                .map(|s| (power_state_label(*s), 0))
                .collect(),
            longest_in_state: [ServerState::Initial, ServerState::Discovery]
                .iter()
                .map(|s| (state_label(*s), 0.0))
                .collect(),
        };
        for server in servers {
            let status = server.status.as_ref();
            // The reconciler treats a Server without a state as Initial.
            let state = status.and_then(|s| s.state).unwrap_or(ServerState::Initial);
            let power = status
                .and_then(|s| s.power_state)
                .unwrap_or(PowerState::Unknown);
            *census.by_state.entry(state_label(state)).or_default() += 1;
            *census
                .by_power_state
                .entry(power_state_label(power))
                .or_default() += 1;
            let created = server
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|time| time.0);
            let since = match state {
                ServerState::Initial => created,
                ServerState::Discovery => server
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(crate::controllers::server::STARTED_ANNOTATION))
                    .and_then(|started| started.parse::<Timestamp>().ok())
                    .or(created),
                _ => None,
            };
            if let Some(since) = since
                && let Some(longest) = census.longest_in_state.get_mut(state_label(state))
            {
                *longest = longest.max(seconds(now.duration_since(since)));
            }
        }
        census
    }
}

/// BMCs by the reason of their `Ready` condition: every reason ferrometal writes has a
/// sample (0 when no BMC has it), `Pending` counts BMCs without the condition, `Other` any
/// reason not in the catalogue (so the label stays bounded whatever is written).
pub fn bmc_census<'a>(bmcs: impl IntoIterator<Item = &'a BMC>) -> BTreeMap<&'static str, i64> {
    let known: &[&'static str] = conditions::CATALOGUE
        .iter()
        .find(|documented| documented.kind == "BMC" && documented.type_ == conditions::READY)
        .map_or(&[], |documented| documented.reasons);
    let mut census: BTreeMap<&'static str, i64> = known
        .iter()
        .copied()
        .chain(["Pending", "Other"])
        .map(|reason| (reason, 0))
        .collect();
    for bmc in bmcs {
        let reason = bmc
            .status
            .as_ref()
            .and_then(|status| {
                status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == conditions::READY)
            })
            .map_or("Pending", |ready| {
                known
                    .iter()
                    .copied()
                    .find(|reason| *reason == ready.reason)
                    .unwrap_or("Other")
            });
        *census.entry(reason).or_default() += 1;
    }
    census
}

/// A check `/readyz` makes.
type ReadinessCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// What `/readyz` waits for: named checks that must all pass (the boot index filled after a
/// start; on the leader, the controllers' watch caches listed). Cheap to clone.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<Mutex<Vec<(&'static str, ReadinessCheck)>>>,
}

impl Readiness {
    /// Adds a check: `/readyz` answers `503` naming `name` while `ready` says no.
    pub fn require(&self, name: &'static str, ready: impl Fn() -> bool + Send + Sync + 'static) {
        self.checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name, Arc::new(ready)));
    }

    /// The names of the checks that do not pass yet.
    pub fn waiting_for(&self) -> Vec<&'static str> {
        self.checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, ready)| !ready())
            .map(|(name, _)| *name)
            .collect()
    }
}

/// Serves `/metrics` (OpenMetrics text), `/healthz` and `/readyz` (see [`Readiness`]), and
/// `pages` (the fleet view) on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Mutex<Registry>>,
    readiness: Readiness,
    pages: Router,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    let mut text = String::new();
                    let registry = registry.lock().unwrap_or_else(PoisonError::into_inner);
                    match prometheus_client::encoding::text::encode(&mut text, &registry) {
                        Ok(()) => (
                            StatusCode::OK,
                            [(
                                header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            text,
                        )
                            .into_response(),
                        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                    }
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let waiting = readiness.waiting_for();
                async move {
                    if waiting.is_empty() {
                        (StatusCode::OK, String::from("ok\n"))
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("waiting for: {}\n", waiting.join(", ")),
                        )
                    }
                }
            }),
        )
        .merge(pages);
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[test]
    fn readiness_names_the_checks_that_do_not_pass() {
        let readiness = Readiness::default();
        assert!(readiness.waiting_for().is_empty());
        let flag = Arc::new(AtomicBool::new(false));
        let seen = flag.clone();
        readiness.require("boot index", move || seen.load(Ordering::Relaxed));
        readiness.require("always", || true);
        assert_eq!(readiness.waiting_for(), ["boot index"]);
        flag.store(true, Ordering::Relaxed);
        assert!(readiness.waiting_for().is_empty());
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("time")
    }

    fn server(
        name: &str,
        state: Option<ServerState>,
        power: Option<PowerState>,
        created: i64,
        started: Option<i64>,
    ) -> Server {
        let mut server: Server = serde_json::from_value(serde_json::json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1",
            "kind": "Server",
            "metadata": { "name": name },
            "spec": { "systemUUID": "38947555-7742-3448-3784-823347823834" },
        }))
        .expect("a Server");
        server.metadata.creation_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(created)),
        );
        if let Some(started) = started {
            server.metadata.annotations = Some(BTreeMap::from([(
                crate::controllers::server::STARTED_ANNOTATION.to_owned(),
                at(started).to_string(),
            )]));
        }
        server.status = Some(crate::api::ServerStatus {
            state,
            power_state: power,
            ..Default::default()
        });
        server
    }

    fn bmc(name: &str, ready_reason: Option<&str>) -> BMC {
        let mut bmc: BMC = serde_json::from_value(serde_json::json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1",
            "kind": "BMC",
            "metadata": { "name": name },
            "spec": {
                "access": { "ip": "10.0.0.1" },
                "bmcSecretRef": { "name": name },
                "protocol": { "name": "Redfish", "port": 443 },
            },
        }))
        .expect("a BMC");
        if let Some(reason) = ready_reason {
            bmc.status = Some(crate::api::bmc::BMCStatus {
                conditions: vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                    type_: conditions::READY.to_owned(),
                    status: String::from("False"),
                    reason: reason.to_owned(),
                    message: String::new(),
                    observed_generation: None,
                    last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(
                        0,
                    )),
                }],
                ..Default::default()
            });
        }
        bmc
    }

    fn exposition(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
        text
    }

    #[test]
    fn servers_are_counted_by_state_and_power_with_every_state_present() {
        let servers = [
            server(
                "a",
                Some(ServerState::Available),
                Some(PowerState::Off),
                0,
                None,
            ),
            server(
                "b",
                Some(ServerState::Available),
                Some(PowerState::On),
                0,
                None,
            ),
            server("c", Some(ServerState::Error), None, 0, None),
            server("new", None, None, 0, None),
        ];
        let census = ServerCensus::of(&servers, at(100));
        assert_eq!(census.by_state["Available"], 2);
        assert_eq!(census.by_state["Error"], 1);
        assert_eq!(
            census.by_state["Initial"], 1,
            "no state yet counts as Initial"
        );
        assert_eq!(census.by_state["Parked"], 0);
        assert_eq!(census.by_state.len(), SERVER_STATES.len());
        assert_eq!(census.by_power_state["Off"], 1);
        assert_eq!(census.by_power_state["On"], 1);
        assert_eq!(
            census.by_power_state["Unknown"], 2,
            "no power state counts as Unknown"
        );
        assert_eq!(census.by_power_state.len(), POWER_STATES.len());
    }

    #[test]
    fn the_longest_wait_in_initial_counts_from_creation_and_in_discovery_from_the_attempt() {
        let servers = [
            server("old", Some(ServerState::Initial), None, 0, None),
            server("young", None, None, 90, None),
            // Created long ago, but its attempt started 30 s ago.
            server(
                "retried",
                Some(ServerState::Discovery),
                None,
                -5000,
                Some(70),
            ),
            server("lost", Some(ServerState::Discovery), None, 40, None),
            server(
                "done",
                Some(ServerState::Available),
                None,
                -9000,
                Some(-9000),
            ),
        ];
        let census = ServerCensus::of(&servers, at(100));
        assert_eq!(census.longest_in_state["Initial"], 100.0);
        assert_eq!(
            census.longest_in_state["Discovery"], 60.0,
            "without a start annotation the creation counts"
        );
        assert_eq!(census.longest_in_state.len(), 2, "only transient states");
        let empty = ServerCensus::of(std::iter::empty(), at(100));
        assert_eq!(empty.longest_in_state["Initial"], 0.0);
    }

    #[test]
    fn bmcs_are_counted_by_ready_reason_with_a_bounded_label() {
        let bmcs = [
            bmc("a", Some(conditions::REASON_CONNECTED)),
            bmc("b", Some(conditions::REASON_CONNECTION_FAILED)),
            bmc("c", Some(conditions::REASON_CONNECTION_FAILED)),
            bmc("d", None),
            bmc("e", Some("SomethingSomeoneWrote")),
        ];
        let census = bmc_census(&bmcs);
        assert_eq!(census["Connected"], 1);
        assert_eq!(census["ConnectionFailed"], 2);
        assert_eq!(census["AuthenticationFailed"], 0);
        assert_eq!(census["Pending"], 1, "not probed yet");
        assert_eq!(census["Other"], 1, "a reason outside the catalogue");
        assert!(!census.contains_key("SomethingSomeoneWrote"));
    }

    #[test]
    fn fleet_gauges_have_samples_only_once_the_caches_listed_everything() {
        use kube::runtime::watcher::Event;
        let metrics = ControllerMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let text = exposition(&registry);
        assert!(text.contains("# TYPE ferrometal_servers gauge"), "{text}");
        assert!(
            !text.contains("ferrometal_servers{"),
            "no caches yet: {text}"
        );

        let (caches, mut writers) = Caches::new();
        metrics.observe_fleet(caches);
        assert!(
            !exposition(&registry).contains("ferrometal_servers{"),
            "caches still listing (or a standby's, never filled)"
        );
        for event in [
            Event::Init,
            Event::InitApply(server("a", Some(ServerState::Available), None, 0, None)),
            Event::InitDone,
        ] {
            writers.servers.apply_watcher_event(&event);
        }
        let text = exposition(&registry);
        assert!(
            text.contains("ferrometal_servers{state=\"Available\"} 1"),
            "{text}"
        );
        assert!(text.contains("ferrometal_servers{state=\"Error\"} 0"));
        assert!(text.contains("ferrometal_servers_by_power_state{power_state=\"Unknown\"} 1"));
        assert!(text.contains("ferrometal_server_longest_in_state_seconds{state=\"Initial\"} 0"));
        assert!(
            !text.contains("ferrometal_bmcs{"),
            "the BMC cache has not listed yet: {text}"
        );
        for event in [
            Event::Init,
            Event::InitApply(bmc("x", None)),
            Event::InitDone,
        ] {
            writers.bmcs.apply_watcher_event(&event);
        }
        assert!(exposition(&registry).contains("ferrometal_bmcs{reason=\"Pending\"} 1"));
    }

    #[test]
    fn server_reconciles_also_count_under_metal_operators_name() {
        let metrics = ControllerMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.reconcile("server").finish(true);
        metrics.reconcile("server").finish(false);
        metrics.reconcile("bmc").finish(true);
        let text = exposition(&registry);
        assert!(text.contains("metal_server_reconciliation_total{result=\"success\"} 1"));
        assert!(text.contains("metal_server_reconciliation_total{result=\"error_reconcile\"} 1"));
        assert!(text.contains("ferrometal_reconciles_total{controller=\"bmc\",outcome=\"ok\"} 1"));
    }

    #[test]
    fn discovery_phases_timeouts_and_durations_are_recorded_by_phase_only() {
        let metrics = ControllerMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.discovery_phase(DiscoveryPhase::Boot, SignedDuration::from_secs(90));
        metrics.discovery_phase(DiscoveryPhase::Completion, SignedDuration::from_secs(-3));
        metrics.discovered(SignedDuration::from_secs(300));
        metrics.discovery_timed_out();
        let text = exposition(&registry);
        assert!(
            text.contains("ferrometal_discovery_phase_duration_seconds_sum{phase=\"boot\"} 90.0"),
            "{text}"
        );
        assert!(
            text.contains(
                "ferrometal_discovery_phase_duration_seconds_sum{phase=\"completion\"} 0.0"
            ),
            "a negative span counts as 0: {text}"
        );
        assert!(text.contains("ferrometal_discovery_duration_seconds_count 1"));
        assert!(text.contains("ferrometal_discovery_timeouts_total 1"));
    }

    #[test]
    fn a_boot_request_is_handed_out_once_and_only_for_its_attempt() {
        let metrics = ControllerMetrics::default();
        metrics.boot_requested("a", 2, at(0));
        assert_eq!(metrics.take_boot_request("a", 1), None, "another attempt's");
        assert_eq!(metrics.take_boot_request("a", 2), Some(at(0)));
        assert_eq!(metrics.take_boot_request("a", 2), None, "once");
        metrics.boot_requested("b", 1, at(0));
        metrics.forget_boot_request("b");
        assert_eq!(metrics.take_boot_request("b", 1), None);
        // A request older than any discovery is dropped when the next one is made.
        metrics.boot_requested("deleted", 1, at(0));
        metrics.boot_requested("c", 1, at(25 * 3600));
        assert_eq!(metrics.take_boot_request("deleted", 1), None);
        assert_eq!(metrics.take_boot_request("c", 1), Some(at(25 * 3600)));
    }
}

/// Every metric of the process, registered in one registry (what `/metrics` serves).
#[derive(Debug)]
pub struct ProcessMetrics {
    /// The registry every part below is registered in.
    pub registry: Registry,
    /// The plugin runtime's.
    pub plugins: crate::plugins::PluginMetrics,
    /// The controllers' and the fleet's.
    pub controllers: ControllerMetrics,
    /// The boot server's and the registry's.
    pub boot: crate::boot::server::BootMetrics,
    /// The DHCP servers'.
    pub dhcp: crate::dhcp::server::DhcpMetrics,
    /// The leader election's.
    pub leader: crate::leader::LeaderMetrics,
}

impl ProcessMetrics {
    /// Every part, fresh, registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let plugins = crate::plugins::PluginMetrics::default();
        plugins.register(&mut registry);
        let controllers = ControllerMetrics::default();
        controllers.register(&mut registry);
        let boot = crate::boot::server::BootMetrics::default();
        boot.register(&mut registry);
        let dhcp = crate::dhcp::server::DhcpMetrics::default();
        dhcp.register(&mut registry);
        let leader = crate::leader::LeaderMetrics::default();
        leader.register(&mut registry);
        Self {
            registry,
            plugins,
            controllers,
            boot,
            dhcp,
            leader,
        }
    }
}

impl Default for ProcessMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod exported;
