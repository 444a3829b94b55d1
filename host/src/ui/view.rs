//! What the fleet view shows, built from the operator's watch caches (pure: no I/O, no clock
//! of its own). [`Tracker::fleet`] turns the cached Servers and BMCs into one row each, the
//! counts per state and what needs a person first; [`Fleet::diff`] is what changed between
//! two builds, so a viewer is sent only that; [`detail`] is one Server's page.
//!
//! Two facts are not on the objects and are kept here instead: when a Server entered its
//! state (metal-operator's status has no such time; the first build takes the latest
//! condition change as the best guess) and the fetch records of a discovery, which live on
//! its ServerBootConfiguration and would vanish with it at completion.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use crate::api::conditions::{
    BMC_REACHABLE, BOOT_STATE_RECEIVED, DISCOVERY, IGNITION_DATA_FETCHED, IPXE_SCRIPT_FETCHED,
    PROBE_REPORTED, READY,
};
use crate::api::{BMC, Server, ServerBootConfiguration, ServerState};
use crate::controllers::server::{ATTEMPT_ANNOTATION, BOOTED_ANNOTATION, STARTED_ANNOTATION};
use crate::ui::timeline::{self, DiscoverySteps};

/// metal-operator's location labels, outermost first: the rack picture places Servers by them.
pub const LOCATION_LABELS: [&str; 4] = [
    "metadata.metal.ironcore.dev/location",
    "metadata.metal.ironcore.dev/rack",
    "metadata.metal.ironcore.dev/shelf",
    "metadata.metal.ironcore.dev/height",
];

/// The name a Server without `status.state` is shown under.
pub const STATE_NEW: &str = "New";

/// One Server as the overview shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerRow {
    /// The Server's name.
    pub name: String,
    /// `status.state` (`New` before the operator set one).
    pub state: String,
    /// When it entered that state, as far as this process knows (RFC 3339).
    pub since: String,
    /// In a state it should pass through (New, Initial, Discovery) for longer than the
    /// stuck threshold.
    pub stuck: bool,
    /// Its BMC (`spec.bmcRef`).
    pub bmc: Option<String>,
    /// The Server's `BMCReachable` condition.
    pub bmc_reachable: Option<bool>,
    /// Why the discovery is where it is (the `Discovery` condition's reason).
    pub discovery_reason: Option<String>,
    /// `status.powerState`.
    pub power: Option<String>,
    /// Its place from the location labels (empty where a label is missing); not sent, the
    /// page reads the labels.
    #[serde(skip)]
    pub place: [String; 4],
    /// Its labels, for filtering.
    pub labels: BTreeMap<String, String>,
}

/// One BMC as the overview shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BmcRow {
    /// The BMC's name.
    pub name: String,
    /// Its `Ready` condition (`None` before the operator looked at it).
    pub ready: Option<bool>,
    /// The condition's reason (`Connected`, `AuthenticationFailed`, …).
    pub reason: Option<String>,
    /// The condition's message.
    pub message: Option<String>,
}

/// What needs a person, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NeedsAction {
    /// Servers in state Error.
    pub error: usize,
    /// Servers stuck in a passing state.
    pub stuck: usize,
    /// BMCs whose `Ready` condition is false.
    pub unreachable_bmcs: usize,
}

/// The counts above the overview.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Servers per state.
    pub states: BTreeMap<String, usize>,
    /// What needs a person.
    pub needs_action: NeedsAction,
    /// All Servers.
    pub servers: usize,
    /// All BMCs.
    pub bmcs: usize,
}

/// The whole fleet as one build saw it.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    /// Servers by name.
    pub servers: BTreeMap<String, Arc<ServerRow>>,
    /// BMCs by name.
    pub bmcs: BTreeMap<String, Arc<BmcRow>>,
    /// The counts.
    pub counts: Counts,
}

/// What changed between two builds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetChange {
    /// Servers new or changed.
    pub servers: Vec<Arc<ServerRow>>,
    /// Servers gone.
    pub removed_servers: Vec<String>,
    /// BMCs new or changed.
    pub bmcs: Vec<Arc<BmcRow>>,
    /// BMCs gone.
    pub removed_bmcs: Vec<String>,
    /// The counts now.
    pub counts: Counts,
}

impl FleetChange {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
            && self.removed_servers.is_empty()
            && self.bmcs.is_empty()
            && self.removed_bmcs.is_empty()
    }
}

impl Fleet {
    /// The rows of `self` new or different in `next`, and those gone.
    pub fn diff(&self, next: &Fleet) -> FleetChange {
        FleetChange {
            servers: changed(&self.servers, &next.servers),
            removed_servers: removed(&self.servers, &next.servers),
            bmcs: changed(&self.bmcs, &next.bmcs),
            removed_bmcs: removed(&self.bmcs, &next.bmcs),
            counts: next.counts.clone(),
        }
    }

    /// Everything, as a change from nothing (a viewer's first message).
    pub fn as_change(&self) -> FleetChange {
        Fleet::default().diff(self)
    }
}

fn changed<T: PartialEq>(
    before: &BTreeMap<String, Arc<T>>,
    after: &BTreeMap<String, Arc<T>>,
) -> Vec<Arc<T>> {
    after
        .iter()
        .filter(|(name, row)| {
            before
                .get(*name)
                .is_none_or(|old| !Arc::ptr_eq(old, row) && old != *row)
        })
        .map(|(_, row)| row.clone())
        .collect()
}

fn removed<T>(before: &BTreeMap<String, Arc<T>>, after: &BTreeMap<String, Arc<T>>) -> Vec<String> {
    before
        .keys()
        .filter(|name| !after.contains_key(*name))
        .cloned()
        .collect()
}

/// A step of a discovery, with when it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineStep {
    /// What happened.
    pub step: String,
    /// When (RFC 3339).
    pub at: String,
}

/// What a Server was doing before the previous build, and what the boot server recorded.
#[derive(Debug, Clone, Default)]
struct Remembered {
    /// The `resourceVersion` the row was built from.
    version: Option<String>,
    /// The row built then.
    row: Option<Arc<ServerRow>>,
    state: String,
    since: Option<Timestamp>,
    attempt: Option<String>,
    boot_requested: Option<Timestamp>,
    /// The boot configuration's fetch records of the current attempt.
    fetches: Vec<(String, Timestamp)>,
}

/// Builds fleets, remembering between builds what the objects do not keep. Memory is one
/// entry per Server.
#[derive(Debug, Default)]
pub struct Tracker {
    servers: HashMap<String, Remembered>,
    bmcs: BTreeMap<String, Arc<BmcRow>>,
}

impl Tracker {
    /// The fleet now: `servers` and `bmcs` from the caches, `configurations` the discovery
    /// boot configurations (their fetch records are remembered), `stuck_after` how long a
    /// passing state may last.
    pub fn fleet(
        &mut self,
        servers: &[Arc<Server>],
        bmcs: &[Arc<BMC>],
        configurations: &[Arc<ServerBootConfiguration>],
        now: Timestamp,
        stuck_after: Duration,
    ) -> Fleet {
        let mut fetches: HashMap<&str, Vec<(String, Timestamp)>> = HashMap::new();
        for configuration in configurations {
            let recorded = fetch_records(configuration);
            if !recorded.is_empty() {
                fetches.insert(&configuration.spec.server_ref.name, recorded);
            }
        }
        let mut fleet = Fleet::default();
        let mut seen = HashMap::with_capacity(servers.len());
        for server in servers {
            let name = server.name_any();
            let mut remembered = self.servers.remove(&name).unwrap_or_default();
            let version = server.resource_version();
            let fetched = fetches.remove(name.as_str());
            let row = match &remembered.row {
                // Unchanged since the previous build, and in a state whose row does not
                // change with time (only a passing state can turn stuck): reused as is.
                Some(row)
                    if remembered.version == version
                        && fetched.is_none()
                        && !passing(&row.state) =>
                {
                    row.clone()
                }
                _ => {
                    let state = remember(&mut remembered, server, fetched, now);
                    let row = server_row(server, state, now, stuck_after);
                    let row = match &remembered.row {
                        Some(old) if **old == row => old.clone(),
                        _ => Arc::new(row),
                    };
                    remembered.version = version;
                    remembered.row = Some(row.clone());
                    row
                }
            };
            count(&mut fleet.counts, &row);
            fleet.servers.insert(name.clone(), row);
            seen.insert(name, remembered);
        }
        self.servers = seen;
        for bmc in bmcs {
            let row = bmc_row(bmc);
            if row.ready == Some(false) {
                fleet.counts.needs_action.unreachable_bmcs += 1;
            }
            let row = match self.bmcs.get(&row.name) {
                Some(old) if **old == row => old.clone(),
                _ => Arc::new(row),
            };
            fleet.bmcs.insert(row.name.clone(), row);
        }
        fleet.counts.servers = fleet.servers.len();
        fleet.counts.bmcs = fleet.bmcs.len();
        self.bmcs.clone_from(&fleet.bmcs);
        fleet
    }

    /// The discovery timeline of `server`: from its annotations and conditions, the steps
    /// `seen` recorded as they happened, and the fetch records remembered from its boot
    /// configuration (fetches another replica's boot server answered), each step once, in
    /// order.
    pub fn timeline(&self, server: &Server, seen: &DiscoverySteps) -> Vec<TimelineStep> {
        let name = server.name_any();
        let remembered = self.servers.get(&name);
        let annotations = server.annotations();
        let mut steps: Vec<(Timestamp, String)> = Vec::new();
        let started: Option<Timestamp> = annotations
            .get(STARTED_ANNOTATION)
            .and_then(|t| t.parse().ok());
        if let Some(started) = started {
            let attempt = annotations
                .get(ATTEMPT_ANNOTATION)
                .map_or(String::new(), |a| format!(" (attempt {a})"));
            steps.push((started, format!("Discovery started{attempt}")));
        }
        // Annotation times have whole seconds: a step in the attempt's first second counts.
        let since = started.and_then(|t| Timestamp::from_second(t.as_second()).ok());
        let mut add = |at: Timestamp, step: &str| {
            if !steps.iter().any(|(_, s)| s == step) {
                steps.push((at, step.to_owned()));
            }
        };
        for (at, step) in seen.of(&name, since) {
            add(at, &step);
        }
        if let Some(remembered) = remembered {
            if let Some(at) = remembered.boot_requested {
                add(at, timeline::BOOT_REQUESTED);
            }
            for (step, at) in &remembered.fetches {
                add(*at, step);
            }
        }
        let conditions = conditions(server);
        if let Some(reported) = find(conditions, PROBE_REPORTED) {
            steps.push((
                reported.last_transition_time.0,
                String::from("Probe report received"),
            ));
        }
        if server.status.as_ref().and_then(|s| s.state.as_ref()) == Some(&ServerState::Available)
            && let Some(discovered) = find(conditions, DISCOVERY).filter(|c| c.status == "True")
        {
            steps.push((discovered.last_transition_time.0, String::from("Available")));
        }
        // In the order a discovery goes through them: condition times have whole seconds,
        // so a report in the second the attempt started would otherwise sort first.
        steps.sort_by_key(|(at, step)| (rank(step), *at));
        steps
            .into_iter()
            .map(|(at, step)| TimelineStep {
                step,
                at: at.to_string(),
            })
            .collect()
    }
}

/// Where `step` comes in a discovery.
fn rank(step: &str) -> usize {
    const ORDER: [&str; 7] = [
        "Discovery started",
        timeline::BOOT_REQUESTED,
        timeline::SCRIPT_FETCHED,
        timeline::IGNITION_FETCHED,
        timeline::BOOT_STATE_RECEIVED,
        "Probe report received",
        "Available",
    ];
    ORDER
        .iter()
        .position(|prefix| step.starts_with(prefix))
        .unwrap_or(ORDER.len())
}

/// Updates what is remembered of `server` and returns its state and since when.
fn remember(
    remembered: &mut Remembered,
    server: &Server,
    fetches: Option<Vec<(String, Timestamp)>>,
    now: Timestamp,
) -> (String, Timestamp) {
    let state = state_name(server);
    let since = match remembered.since {
        Some(since) if remembered.state == state => since,
        // Seen before in another state: it changed since the previous build.
        Some(_) => now,
        // First sight: the latest condition change is the best guess.
        None => latest_change(server).unwrap_or(now),
    };
    remembered.state = state.clone();
    remembered.since = Some(since);
    let annotations = server.annotations();
    let attempt = annotations.get(ATTEMPT_ANNOTATION).cloned();
    if attempt != remembered.attempt {
        remembered.attempt = attempt.clone();
        remembered.boot_requested = None;
        remembered.fetches.clear();
    }
    let booted = attempt.is_some() && annotations.get(BOOTED_ANNOTATION) == attempt.as_ref();
    if booted && remembered.boot_requested.is_none() {
        // The annotation carries no time: the Discovery condition turned Booting then.
        let at = find(conditions(server), DISCOVERY)
            .filter(|c| c.reason == crate::api::conditions::REASON_BOOTING)
            .map_or(now, |c| c.last_transition_time.0);
        remembered.boot_requested = Some(at);
    }
    if let Some(fetches) = fetches {
        remembered.fetches = fetches;
    }
    (state, since)
}

fn server_row(
    server: &Server,
    (state, since): (String, Timestamp),
    now: Timestamp,
    stuck_after: Duration,
) -> ServerRow {
    let status = server.status.as_ref();
    let conditions = conditions(server);
    let stuck = passing(&state)
        && now
            .duration_since(since)
            .try_into()
            .is_ok_and(|elapsed: Duration| elapsed > stuck_after);
    let labels = server.labels().clone();
    let place = LOCATION_LABELS.map(|key| labels.get(key).cloned().unwrap_or_default());
    ServerRow {
        name: server.name_any(),
        state,
        since: since.to_string(),
        stuck,
        bmc: server.spec.bmc_ref.as_ref().map(|r| r.name.clone()),
        bmc_reachable: find(conditions, BMC_REACHABLE).map(|c| c.status == "True"),
        discovery_reason: find(conditions, DISCOVERY).map(|c| c.reason.clone()),
        power: status.and_then(|s| s.power_state.as_ref()).map(json_name),
        place,
        labels,
    }
}

fn bmc_row(bmc: &BMC) -> BmcRow {
    let ready = bmc
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == READY));
    BmcRow {
        name: bmc.name_any(),
        ready: ready.map(|c| c.status == "True"),
        reason: ready.map(|c| c.reason.clone()),
        message: ready.map(|c| c.message.clone()),
    }
}

/// A state a Server should pass through, not stay in.
fn passing(state: &str) -> bool {
    matches!(state, STATE_NEW | "Initial" | "Discovery")
}

fn count(counts: &mut Counts, row: &ServerRow) {
    *counts.states.entry(row.state.clone()).or_default() += 1;
    if row.state == "Error" {
        counts.needs_action.error += 1;
    }
    if row.stuck {
        counts.needs_action.stuck += 1;
    }
}

/// A Server's state as its API name.
pub fn state_name(server: &Server) -> String {
    server
        .status
        .as_ref()
        .and_then(|s| s.state.as_ref())
        .map_or_else(|| String::from(STATE_NEW), json_name)
}

/// An enum's name as it is serialised.
fn json_name(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::from("Unknown"),
    }
}

fn conditions(server: &Server) -> &[Condition] {
    server
        .status
        .as_ref()
        .map_or(&[][..], |s| s.conditions.as_slice())
}

fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

fn latest_change(server: &Server) -> Option<Timestamp> {
    conditions(server)
        .iter()
        .map(|c| c.last_transition_time.0)
        .max()
        .or_else(|| server.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The boot server's fetch records on `configuration`, as timeline steps.
fn fetch_records(configuration: &ServerBootConfiguration) -> Vec<(String, Timestamp)> {
    let Some(status) = &configuration.status else {
        return Vec::new();
    };
    [
        (IPXE_SCRIPT_FETCHED, timeline::SCRIPT_FETCHED),
        (IGNITION_DATA_FETCHED, timeline::IGNITION_FETCHED),
        (BOOT_STATE_RECEIVED, timeline::BOOT_STATE_RECEIVED),
    ]
    .into_iter()
    .filter_map(|(type_, step)| {
        find(&status.conditions, type_)
            .filter(|c| c.status == "True")
            .map(|c| (String::from(step), c.last_transition_time.0))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use serde_json::json;

    use super::*;
    use crate::api::{BMCStatus, ServerBootConfigurationStatus, ServerStatus};

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("time")
    }

    fn condition(type_: &str, status: &str, reason: &str, seconds: i64) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: format!("{type_} is {status}"),
            last_transition_time: Time(at(seconds)),
            observed_generation: None,
        }
    }

    fn server(name: &str, state: Option<ServerState>, conditions: Vec<Condition>) -> Arc<Server> {
        let mut server: Server = serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1",
            "kind": "Server",
            "metadata": { "name": name },
            "spec": { "systemUUID": "u", "bmcRef": { "name": "bmc-1" } },
        }))
        .expect("a Server");
        server.status = Some(ServerStatus {
            state,
            conditions,
            ..Default::default()
        });
        Arc::new(server)
    }

    fn bmc(name: &str, ready: bool) -> Arc<BMC> {
        let mut bmc: BMC = serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1",
            "kind": "BMC",
            "metadata": { "name": name },
            "spec": { "bmcSecretRef": { "name": "s" }, "protocol": { "name": "Redfish", "port": 443 } },
        }))
        .expect("a BMC");
        bmc.status = Some(BMCStatus {
            conditions: vec![condition(
                READY,
                if ready { "True" } else { "False" },
                if ready {
                    "Connected"
                } else {
                    "ConnectionFailed"
                },
                0,
            )],
            ..Default::default()
        });
        Arc::new(bmc)
    }

    fn boot_configuration(server: &str) -> ServerBootConfiguration {
        serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1",
            "kind": "ServerBootConfiguration",
            "metadata": { "name": format!("{server}-discovery"), "namespace": "default" },
            "spec": { "serverRef": { "name": server }, "image": "i" },
        }))
        .expect("a ServerBootConfiguration")
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn counts_put_errors_stuck_servers_and_unreachable_bmcs_first() {
        let servers = [
            server("a", Some(ServerState::Available), vec![]),
            server("b", Some(ServerState::Error), vec![]),
            server(
                "c",
                Some(ServerState::Discovery),
                vec![condition(DISCOVERY, "False", "Booting", 0)],
            ),
            server(
                "d",
                Some(ServerState::Discovery),
                vec![condition(DISCOVERY, "False", "Booting", 7000)],
            ),
        ];
        let mut tracker = Tracker::default();
        let fleet = tracker.fleet(
            &servers,
            &[bmc("bmc-1", true), bmc("bmc-2", false)],
            &[],
            at(7200),
            HOUR,
        );
        assert_eq!(
            fleet.counts.states,
            BTreeMap::from([
                (String::from("Available"), 1),
                (String::from("Discovery"), 2),
                (String::from("Error"), 1)
            ])
        );
        assert_eq!(
            fleet.counts.needs_action,
            NeedsAction {
                error: 1,
                stuck: 1,
                unreachable_bmcs: 1
            }
        );
        assert!(fleet.servers["c"].stuck, "in Discovery for 2 h");
        assert!(!fleet.servers["d"].stuck, "in Discovery for 200 s");
        assert!(!fleet.servers["b"].stuck, "Error is not a passing state");
        assert_eq!(fleet.counts.servers, 4);
        assert_eq!(fleet.counts.bmcs, 2);
    }

    #[test]
    fn time_in_state_starts_when_a_build_sees_the_state_change() {
        let mut tracker = Tracker::default();
        let discovering = server(
            "a",
            Some(ServerState::Discovery),
            vec![condition(DISCOVERY, "False", "Booting", 10)],
        );
        let first = tracker.fleet(std::slice::from_ref(&discovering), &[], &[], at(100), HOUR);
        assert_eq!(first.servers["a"].since, at(10).to_string(), "first sight");
        let again = tracker.fleet(&[discovering], &[], &[], at(200), HOUR);
        assert_eq!(again.servers["a"].since, at(10).to_string());
        let available = server("a", Some(ServerState::Available), vec![]);
        let later = tracker.fleet(&[available], &[], &[], at(300), HOUR);
        assert_eq!(later.servers["a"].since, at(300).to_string());
    }

    #[test]
    fn a_diff_carries_only_what_changed_and_unchanged_rows_are_shared() {
        let mut tracker = Tracker::default();
        let a = server("a", Some(ServerState::Available), vec![]);
        let b = server("b", Some(ServerState::Discovery), vec![]);
        let first = tracker.fleet(&[a.clone(), b], &[bmc("bmc-1", true)], &[], at(0), HOUR);
        let c = server("c", Some(ServerState::Initial), vec![]);
        let second = tracker.fleet(&[a, c], &[bmc("bmc-1", false)], &[], at(1), HOUR);
        assert!(Arc::ptr_eq(&first.servers["a"], &second.servers["a"]));
        let change = first.diff(&second);
        let names: Vec<&str> = change.servers.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["c"]);
        assert_eq!(change.removed_servers, ["b"]);
        assert_eq!(change.bmcs.len(), 1, "bmc-1 turned unreachable");
        assert!(second.diff(&second).is_empty());
        assert_eq!(second.as_change().servers.len(), 2);
    }

    #[test]
    fn servers_are_placed_by_their_location_labels() {
        let mut labelled = (*server("a", None, vec![])).clone();
        labelled.metadata.labels = Some(BTreeMap::from([
            (String::from(LOCATION_LABELS[0]), String::from("fra1")),
            (String::from(LOCATION_LABELS[1]), String::from("r07")),
            (String::from(LOCATION_LABELS[3]), String::from("12")),
        ]));
        let fleet = Tracker::default().fleet(&[Arc::new(labelled)], &[], &[], at(0), HOUR);
        let row = &fleet.servers["a"];
        assert_eq!(row.place, ["fra1", "r07", "", "12"].map(String::from));
        assert_eq!(row.state, STATE_NEW);
        assert_eq!(row.bmc.as_deref(), Some("bmc-1"));
    }

    #[test]
    fn the_timeline_keeps_fetch_records_after_the_boot_configuration_is_gone() {
        let mut discovering = (*server(
            "a",
            Some(ServerState::Discovery),
            vec![condition(DISCOVERY, "False", "Booting", 20)],
        ))
        .clone();
        discovering.metadata.annotations = Some(BTreeMap::from([
            (String::from(ATTEMPT_ANNOTATION), String::from("1")),
            (String::from(STARTED_ANNOTATION), at(5).to_string()),
            (String::from(BOOTED_ANNOTATION), String::from("1")),
        ]));
        let mut configuration = boot_configuration("a");
        configuration.status = Some(ServerBootConfigurationStatus {
            conditions: vec![
                condition(IPXE_SCRIPT_FETCHED, "True", "IPXEScriptDelivered", 30),
                condition(IGNITION_DATA_FETCHED, "True", "IgnitionDataDelivered", 40),
            ],
            ..Default::default()
        });
        let mut tracker = Tracker::default();
        let discovering = Arc::new(discovering);
        tracker.fleet(
            std::slice::from_ref(&discovering),
            &[],
            &[Arc::new(configuration)],
            at(45),
            HOUR,
        );
        // Completed: the boot configuration is deleted, the report and Available recorded.
        let mut available = (*discovering).clone();
        available.status = Some(ServerStatus {
            state: Some(ServerState::Available),
            conditions: vec![
                condition(DISCOVERY, "True", "Discovered", 60),
                condition(PROBE_REPORTED, "True", "ReportReceived", 50),
            ],
            ..Default::default()
        });
        tracker.fleet(&[Arc::new(available.clone())], &[], &[], at(61), HOUR);
        let steps: Vec<(String, String)> = tracker
            .timeline(&available, &DiscoverySteps::default())
            .into_iter()
            .map(|s| (s.step, s.at))
            .collect();
        let expected: Vec<(String, String)> = [
            ("Discovery started (attempt 1)", 5),
            ("Network boot requested", 20),
            ("iPXE script fetched", 30),
            ("Ignition fetched", 40),
            ("Probe report received", 50),
            ("Available", 60),
        ]
        .into_iter()
        .map(|(step, seconds)| (String::from(step), at(seconds).to_string()))
        .collect();
        assert_eq!(steps, expected);
    }

    #[test]
    fn steps_seen_as_they_happened_join_the_timeline_once_each_in_discovery_order() {
        let mut available = (*server(
            "a",
            Some(ServerState::Available),
            vec![
                // Whole seconds: the report's second is the attempt's second.
                condition(PROBE_REPORTED, "True", "ReportReceived", 0),
                condition(DISCOVERY, "True", "Discovered", 1),
            ],
        ))
        .clone();
        available.metadata.annotations = None;
        let seen = DiscoverySteps::default();
        let during = |millis: i64| {
            Timestamp::from_millisecond(at(0).as_millisecond() + millis).expect("time")
        };
        seen.record("a", timeline::started(1), during(100));
        seen.record("a", timeline::BOOT_REQUESTED, during(200));
        seen.record("a", timeline::SCRIPT_FETCHED, during(300));
        seen.record("a", timeline::SCRIPT_FETCHED, during(400));
        let steps: Vec<String> = Tracker::default()
            .timeline(&available, &seen)
            .into_iter()
            .map(|s| s.step)
            .collect();
        assert_eq!(
            steps,
            [
                "Discovery started (attempt 1)",
                timeline::BOOT_REQUESTED,
                timeline::SCRIPT_FETCHED,
                "Probe report received",
                "Available"
            ]
        );
    }

    #[test]
    fn a_new_attempt_forgets_the_previous_attempts_fetches() {
        let mut tracker = Tracker::default();
        let mut first = (*server("a", Some(ServerState::Discovery), vec![])).clone();
        first.metadata.annotations = Some(BTreeMap::from([(
            String::from(ATTEMPT_ANNOTATION),
            String::from("1"),
        )]));
        let mut configuration = boot_configuration("a");
        configuration.status = Some(ServerBootConfigurationStatus {
            conditions: vec![condition(
                IPXE_SCRIPT_FETCHED,
                "True",
                "IPXEScriptDelivered",
                30,
            )],
            ..Default::default()
        });
        tracker.fleet(
            &[Arc::new(first.clone())],
            &[],
            &[Arc::new(configuration)],
            at(31),
            HOUR,
        );
        let mut second = first;
        second.metadata.annotations = Some(BTreeMap::from([(
            String::from(ATTEMPT_ANNOTATION),
            String::from("2"),
        )]));
        tracker.fleet(&[Arc::new(second.clone())], &[], &[], at(40), HOUR);
        assert!(
            tracker
                .timeline(&second, &DiscoverySteps::default())
                .is_empty()
        );
    }
}
