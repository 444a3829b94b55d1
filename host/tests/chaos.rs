//! The kill campaign (`make chaos`; a short form runs in `make test`): a simulated fleet is
//! discovered through both paths (half the BMCs announce themselves by DHCP, the rest are
//! applied as BMC objects in waves, one after each kill) while, at seeded random moments,
//! `ferrometal run` is killed with `SIGKILL` and restarted, kube-apiserver and etcd are
//! killed and restarted on the same ports and data, and the OCI registry is down for a while.
//!
//! At the end every Server is Available and nothing was lost, duplicated, orphaned or reused:
//! a Server for every machine and a BMC for every BMC (an Endpoint for every DHCP one), no
//! two Servers, BMCs or BMCSecrets for one thing, no ServerBootConfiguration or ignition
//! Secret left and no BMCSecret nobody uses, every probe report the registry acknowledged in
//! its Server's status, no boot token (ticket) recorded for two discovery attempts, and no
//! boot token in any operator's log.
//!
//! The environment sets the size (`cargo xtask chaos` sets it for the long form):
//! `FERROMETAL_CHAOS_SERVERS` (20), `FERROMETAL_CHAOS_KILLS` (5),
//! `FERROMETAL_CHAOS_APISERVER_RESTARTS` (1), `FERROMETAL_CHAOS_ETCD_RESTARTS` (1),
//! `FERROMETAL_CHAOS_REGISTRY_OUTAGE_SECONDS` (5), `FERROMETAL_CHAOS_SEED` (from the clock,
//! printed: set it to replay a run's schedule and fleet), and `FERROMETAL_CHAOS_REPORT`, a
//! file the results are written to as Markdown table rows (for RELIABILITY.md).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ferrometal::api::{BMC, BMCSecret, Endpoint, Server, ServerBootConfiguration};
use ferrometal_sim::lab::{Lab, LabOptions};
use ferrometal_sim::spec::Rng;
use ferrometal_sim::{Machine, Phase};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

mod common;

use common::attempt;

/// The Secret key holding a discovery attempt's registry token.
const BOOT_TOKEN_KEY: &str = "boot-token";

/// What the campaign does.
#[derive(Debug, Clone)]
struct Campaign {
    servers: usize,
    kills: usize,
    apiserver_restarts: usize,
    etcd_restarts: usize,
    registry_outage: Duration,
    seed: u64,
}

impl Campaign {
    /// The short form, or what the environment asks for.
    fn from_env() -> Self {
        let number = |name: &str, default: u64| -> u64 {
            match std::env::var(name) {
                Ok(value) => value
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={value:?} is not a whole number")),
                Err(_) => default,
            }
        };
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |since| since.as_secs() ^ u64::from(since.subsec_nanos()));
        let count = |name, default| usize::try_from(number(name, default)).unwrap_or(usize::MAX);
        Self {
            servers: count("FERROMETAL_CHAOS_SERVERS", 20).max(2),
            kills: count("FERROMETAL_CHAOS_KILLS", 5),
            apiserver_restarts: count("FERROMETAL_CHAOS_APISERVER_RESTARTS", 1),
            etcd_restarts: count("FERROMETAL_CHAOS_ETCD_RESTARTS", 1),
            registry_outage: Duration::from_secs(number(
                "FERROMETAL_CHAOS_REGISTRY_OUTAGE_SECONDS",
                5,
            )),
            seed: number("FERROMETAL_CHAOS_SEED", clock % 1_000_000),
        }
    }

    /// BMCs that announce themselves by DHCP (the first half).
    fn dhcp_bmcs(&self) -> usize {
        self.servers / 2
    }
}

/// One thing the campaign does to the installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disruption {
    /// `SIGKILL` the operator, apply the next wave of BMCs while it is dead, start it again.
    KillOperator,
    /// `SIGKILL` kube-apiserver, start it again on the same port.
    RestartApiserver,
    /// `SIGKILL` etcd, start it again on the same ports and data directory.
    RestartEtcd,
    /// Stop the OCI registry; it comes back after the campaign's outage.
    RegistryDown,
}

/// The disruptions in order: the operator kills, and every other disruption just before a
/// kill drawn at random, so that each lands while BMCs are still being released and
/// discovered.
fn schedule(campaign: &Campaign, rng: &mut Rng) -> Vec<Disruption> {
    let mut others = Vec::new();
    others.extend(std::iter::repeat_n(
        Disruption::RestartApiserver,
        campaign.apiserver_restarts,
    ));
    others.extend(std::iter::repeat_n(
        Disruption::RestartEtcd,
        campaign.etcd_restarts,
    ));
    if !campaign.registry_outage.is_zero() {
        others.push(Disruption::RegistryDown);
    }
    let slots = campaign.kills.max(1);
    let mut before: Vec<Vec<Disruption>> = vec![Vec::new(); slots];
    for disruption in others {
        before[rng.below(slots as u64) as usize].push(disruption);
    }
    let mut order = Vec::new();
    for (kill, disruptions) in before.into_iter().enumerate() {
        order.extend(disruptions);
        if kill < campaign.kills {
            order.push(Disruption::KillOperator);
        }
    }
    order
}

/// How long before each disruption (milliseconds, drawn uniformly). The operator (a debug
/// build) needs about two seconds to start (its plugins load before its controllers run) and
/// a BMC a few more to be probed: most kills land while it works, some while it starts, and
/// the fleet still moves between kills.
const GAP_MS: std::ops::Range<u64> = 1500..10_000;

/// A pause drawn from `range` (milliseconds).
fn pause(rng: &mut Rng, range: std::ops::Range<u64>) -> Duration {
    Duration::from_millis(range.start + rng.below(range.end - range.start))
}

/// Releases wave `n` of `waves`: its share of the DHCP BMCs announce themselves, its share
/// of the others are applied as BMC objects.
async fn release_wave(lab: &Lab, campaign: &Campaign, n: usize, waves: usize) {
    let dhcp = campaign.dhcp_bmcs();
    let applied = campaign.servers - dhcp;
    lab.fleet.release_dhcp_bmcs(dhcp * (n + 1) / waves);
    lab.apply_bmcs(
        dhcp + applied * n / waves..dhcp + applied * (n + 1) / waves,
        None,
    )
    .await
    .expect("apply BMCs");
}

/// How many servers the first `n` waves of `waves` hold.
fn released_servers(campaign: &Campaign, n: usize, waves: usize) -> usize {
    let dhcp = campaign.dhcp_bmcs();
    let applied = campaign.servers - dhcp;
    dhcp * n / waves + applied * n / waves
}

/// What the watchers saw while the campaign ran.
#[derive(Debug, Default)]
struct Seen {
    /// Every (Server, attempt) each ticket fingerprint was recorded for.
    tickets: BTreeMap<String, BTreeSet<(String, u32)>>,
    /// Every ignition Secret each boot token was in.
    tokens: BTreeMap<String, BTreeSet<String>>,
    /// The latest state of each Server.
    states: BTreeMap<String, String>,
}

type Shared = Arc<Mutex<Seen>>;

fn lock(seen: &Shared) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

fn state(server: &Server) -> String {
    server
        .status
        .as_ref()
        .and_then(|s| s.state.as_ref())
        .map_or_else(|| String::from("Pending"), |s| format!("{s:?}"))
}

/// Records every version of every Server it is shown: the attempt each ticket belongs to,
/// and the state. The watch resumes by itself across API server and etcd restarts.
fn watch_servers(client: kube::Client, seen: Shared) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let stream = watcher(Api::<Server>::all(client), watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut stream = stream;
        while let Some(event) = stream.next().await {
            let (watcher::Event::Apply(server) | watcher::Event::InitApply(server)) = (match event {
                Ok(event) => event,
                Err(_) => continue,
            }) else {
                continue;
            };
            let mut seen = lock(&seen);
            if let Some(ticket) = server.annotations().get("ferrometal.dev/discovery-ticket") {
                seen.tickets
                    .entry(ticket.clone())
                    .or_default()
                    .insert((server.name_any(), attempt(&server)));
            }
            seen.states.insert(server.name_any(), state(&server));
        }
    })
}

/// Records every boot token of every ignition Secret it is shown.
fn watch_secrets(client: kube::Client, seen: Shared) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = watcher(Api::<Secret>::all(client), watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = stream.next().await {
            let (watcher::Event::Apply(secret) | watcher::Event::InitApply(secret)) = (match event {
                Ok(event) => event,
                Err(_) => continue,
            }) else {
                continue;
            };
            let Some(token) = secret.data.as_ref().and_then(|d| d.get(BOOT_TOKEN_KEY)) else {
                continue;
            };
            let token = String::from_utf8_lossy(&token.0).into_owned();
            lock(&seen).tokens.entry(token).or_default().insert(format!(
                "{}/{}",
                secret.namespace().unwrap_or_default(),
                secret.name_any()
            ));
        }
    })
}

/// Every object of kind `K`, retried while the API server is not answering.
async fn list<K>(client: &kube::Client) -> Vec<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api = Api::<K>::all(client.clone());
    for _ in 0..300 {
        if let Ok(list) = api.list(&ListParams::default()).await {
            return list.items;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("cannot list {}", K::plural(&()));
}

/// The Endpoint and BMC name of fleet BMC `index` that announced itself by DHCP.
fn dhcp_name(mac: &str) -> String {
    format!("dhcp-{}", mac.replace(':', ""))
}

/// When the report in the Server's `ProbeReported` condition was collected, and the reason.
fn reported(server: &Server) -> Option<(String, Option<Timestamp>)> {
    let condition = server
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "ProbeReported")?;
    let collected = condition
        .message
        .split_once("collected at ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|at| at.trim_end_matches([';', ',']).parse().ok());
    Some((condition.reason.clone(), collected))
}

/// What went wrong, by kind.
#[derive(Debug, Default)]
struct Findings {
    lost: Vec<String>,
    duplicated: Vec<String>,
    orphaned: Vec<String>,
    reused: Vec<String>,
    leaked: Vec<String>,
}

impl Findings {
    fn is_empty(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.orphaned.is_empty()
            && self.reused.is_empty()
            && self.leaked.is_empty()
    }
}

impl std::fmt::Display for Findings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (what, list) in [
            ("lost", &self.lost),
            ("duplicated", &self.duplicated),
            ("orphaned", &self.orphaned),
            ("reused across attempts", &self.reused),
            ("secrets in operator logs", &self.leaked),
        ] {
            writeln!(f, "{what}: {}", list.len())?;
            for item in list.iter().take(20) {
                writeln!(f, "  {item}")?;
            }
        }
        Ok(())
    }
}

/// The words of `text` that could be a token or a ticket (long runs of hex digits).
fn hex_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .filter(|word| word.len() >= 32)
}

#[tokio::test]
async fn a_fleet_discovered_through_kills_and_restarts_loses_nothing() {
    let campaign = Campaign::from_env();
    eprintln!(
        "chaos: seed {} (replay with FERROMETAL_CHAOS_SEED={}): {} servers ({} by DHCP), {} operator kills, {} kube-apiserver and {} etcd restarts, registry down {:?}",
        campaign.seed,
        campaign.seed,
        campaign.servers,
        campaign.dhcp_bmcs(),
        campaign.kills,
        campaign.apiserver_restarts,
        campaign.etcd_restarts,
        campaign.registry_outage,
    );
    let mut rng = Rng::new(campaign.seed, 0xc4a05);
    let order = schedule(&campaign, &mut rng);

    let mut options = LabOptions {
        apply_bmcs: false,
        hold_dhcp_bmcs: true,
        ..common::lab_options("chaos", campaign.servers, 1, campaign.dhcp_bmcs())
    };
    options.fleet.seed = campaign.seed;
    // Firmware that takes a while to start and BMCs that apply power changes late, as real
    // ones do: machines are still booting when the next kill comes.
    options.behaviour.boot_delay = Duration::from_secs(3);
    options.behaviour.power_delay = Duration::from_millis(500);
    // A machine whose boot failed for good (its firmware or metalprobe gave up while the
    // operator was down once too often) is booted again after a minute, not half an hour.
    options.operator_args.extend(
        [
            "--discovery-timeout-seconds",
            "60",
            "--discovery-retry-seconds",
            "1",
        ]
        .map(String::from),
    );
    let lab_started = Instant::now();
    let mut lab = Lab::start(options, |line| eprintln!("lab: {line}"))
        .await
        .expect("the lab starts");
    let lab_start_time = lab_started.elapsed();
    let machines: Vec<Arc<Machine>> = lab.fleet.machines().cloned().collect();

    let seen: Shared = Arc::default();
    let watchers = [
        watch_servers(lab.client.clone(), seen.clone()),
        watch_secrets(lab.client.clone(), seen.clone()),
    ];
    let progress = tokio::spawn({
        let (seen, machines, client) = (seen.clone(), machines.clone(), lab.client.clone());
        let started = Instant::now();
        async move {
            let count = |kind: &'static str| {
                let client = client.clone();
                async move {
                    let api = Api::<kube::api::DynamicObject>::all_with(
                        client,
                        &kube::api::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
                            "metal.ironcore.dev",
                            "v1alpha1",
                            kind,
                        )),
                    );
                    api.list_metadata(&ListParams::default())
                        .await
                        .map_or_else(|_| String::from("?"), |list| list.items.len().to_string())
                }
            };
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let (endpoints, bmcs) = (count("Endpoint").await, count("BMC").await);
                let mut states: BTreeMap<String, usize> = BTreeMap::new();
                for state in lock(&seen).states.values() {
                    *states.entry(state.clone()).or_default() += 1;
                }
                let mut phases: BTreeMap<&str, usize> = BTreeMap::new();
                for machine in &machines {
                    *phases.entry(machine.phase().name()).or_default() += 1;
                }
                eprintln!(
                    "chaos: {:>4}s {endpoints} Endpoints, {bmcs} BMCs, Servers {states:?}, machines {phases:?}",
                    started.elapsed().as_secs()
                );
            }
        }
    });

    // The BMCs come in waves, the first now and one after each kill (while the operator is
    // dead): each wave lets some DHCP BMCs announce themselves and applies some BMC objects.
    let dhcp = campaign.dhcp_bmcs();
    let applied = campaign.servers - dhcp;
    let waves = campaign.kills + 1;
    let released = Instant::now();
    release_wave(&lab, &campaign, 0, waves).await;

    let (mut kills, mut apiserver_restarts, mut etcd_restarts) = (0, 0, 0);
    // Kills while a released BMC's Server was not Available yet, and while a Server was in
    // Discovery or a machine booting.
    let (mut kills_in_flight, mut kills_booting) = (0, 0);
    let mut outage_until: Option<Instant> = None;
    let mut outages = 0;
    for disruption in &order {
        let wait = pause(&mut rng, GAP_MS);
        let due = Instant::now() + wait;
        if let Some(until) = outage_until.filter(|until| *until <= due) {
            tokio::time::sleep_until(until.into()).await;
            lab.registry
                .resume()
                .await
                .expect("the registry starts again");
            outage_until = None;
        }
        tokio::time::sleep_until(due.into()).await;
        match disruption {
            Disruption::KillOperator => {
                let (available, discovering) = {
                    let seen = lock(&seen);
                    let states = seen.states.values();
                    (
                        states.clone().filter(|s| *s == "Available").count(),
                        states.clone().any(|s| s == "Discovery"),
                    )
                };
                let booting = discovering
                    || machines.iter().any(|m| {
                        matches!(m.phase(), Phase::Firmware | Phase::Ipxe | Phase::Probing)
                    });
                lab.kill_operator().expect("kill the operator");
                kills += 1;
                if available < released_servers(&campaign, kills, waves) {
                    kills_in_flight += 1;
                }
                if booting {
                    kills_booting += 1;
                }
                release_wave(&lab, &campaign, kills, waves).await;
                lab.run_operator().expect("start the operator again");
            }
            Disruption::RestartApiserver => {
                let down = pause(&mut rng, 0..2000);
                lab.control_plane
                    .restart_apiserver(down)
                    .await
                    .expect("kube-apiserver starts again");
                apiserver_restarts += 1;
            }
            Disruption::RestartEtcd => {
                let down = pause(&mut rng, 0..2000);
                lab.control_plane
                    .restart_etcd(down)
                    .await
                    .expect("etcd starts again");
                etcd_restarts += 1;
            }
            Disruption::RegistryDown => {
                lab.registry.stop().expect("stop the registry");
                outage_until = Some(Instant::now() + campaign.registry_outage);
                outages += 1;
            }
        }
        eprintln!(
            "chaos: {:>4}s {disruption:?} done ({kills} kills so far)",
            released.elapsed().as_secs()
        );
    }
    if let Some(until) = outage_until {
        tokio::time::sleep_until(until.into()).await;
        lab.registry
            .resume()
            .await
            .expect("the registry starts again");
    }
    let campaign_time = released.elapsed();

    // Every Server Available.
    let limit = Duration::from_secs(600);
    loop {
        let servers: Vec<Server> = list(&lab.client).await;
        if servers.len() >= machines.len() && servers.iter().all(|s| state(s) == "Available") {
            break;
        }
        if released.elapsed() > campaign_time + limit {
            panic!(
                "not every Server Available {limit:?} after the campaign (seed {}):\n{}\nmachine phases: {:?}\noperator log:\n{}",
                campaign.seed,
                common::server_summary(&servers),
                lab.fleet.phases(),
                lab.operator_log_tail(80)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all_available = released.elapsed();
    progress.abort();
    for watcher in watchers {
        watcher.abort();
    }

    // The watchers are gone: what they saw is complete.
    let seen = std::mem::take(&mut *lock(&seen));
    let findings = inspect(&lab, &campaign, &machines, &seen).await;
    let servers: Vec<Server> = list(&lab.client).await;
    let mut attempts: BTreeMap<u32, usize> = BTreeMap::new();
    for server in &servers {
        *attempts.entry(attempt(server)).or_default() += 1;
    }
    let acknowledged: usize = machines
        .iter()
        .map(|m| m.acknowledged_reports().len())
        .sum();
    // Every Server's report is a machine's (only the registry writes one): for these machines
    // it was stored, but no success answer reached them (the operator or kube-apiserver died
    // in between, and no retry was answered with one).
    let unanswered = machines
        .iter()
        .filter(|m| m.acknowledged_reports().is_empty())
        .count();
    eprintln!(
        "chaos: seed {}: {kills} operator kills ({kills_in_flight} with discovery in flight, {kills_booting} with a Server in Discovery or a machine booting), {apiserver_restarts} kube-apiserver and {etcd_restarts} etcd restarts, {outages} registry outage; {} Servers Available {:.1}s after the first BMC was released (campaign {:.1}s); attempts {attempts:?}; {acknowledged} acknowledged reports, {} boot tokens, {} tickets\n{findings}",
        campaign.seed,
        servers.len(),
        all_available.as_secs_f64(),
        campaign_time.as_secs_f64(),
        seen.tokens.len(),
        seen.tickets.len(),
    );
    assert!(
        findings.is_empty(),
        "the campaign with seed {} lost, duplicated, orphaned, reused or leaked something:\n{findings}",
        campaign.seed
    );

    if let Ok(path) = std::env::var("FERROMETAL_CHAOS_REPORT") {
        let attempts = attempts
            .iter()
            .map(|(attempt, servers)| format!("{servers} on attempt {attempt}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = [
            ("Seed", campaign.seed.to_string()),
            (
                "Servers (BMCs announced by DHCP / applied as objects)",
                format!(
                    "{} ({dhcp} / {applied}), released in {waves} waves",
                    campaign.servers
                ),
            ),
            (
                "Operator SIGKILLs survived",
                format!(
                    "{kills}: {kills_in_flight} while a released BMC's Server was not Available yet, \
                     {kills_booting} while a Server was in Discovery or a machine booting"
                ),
            ),
            (
                "kube-apiserver SIGKILLs + restarts",
                apiserver_restarts.to_string(),
            ),
            ("etcd SIGKILLs + restarts", etcd_restarts.to_string()),
            (
                "OCI registry outage",
                format!("{outages} × {} s", campaign.registry_outage.as_secs_f64()),
            ),
            (
                "Campaign (first BMC released → last disruption)",
                format!("{:.1} s", campaign_time.as_secs_f64()),
            ),
            (
                "First BMC released → every Server Available",
                format!("{:.1} s", all_available.as_secs_f64()),
            ),
            (
                "Total time (lab start-up included)",
                format!("{:.1} s", (lab_start_time + all_available).as_secs_f64()),
            ),
            (
                "Servers Available",
                format!("{} of {}", servers.len(), machines.len()),
            ),
            ("Discovery attempts", attempts),
            (
                "Probe reports acknowledged (every one in status)",
                acknowledged.to_string(),
            ),
            (
                "Servers discovered from a report stored without a success answer reaching its machine",
                unanswered.to_string(),
            ),
            (
                "Objects lost (Servers, BMCs, Endpoints, acknowledged reports)",
                findings.lost.len().to_string(),
            ),
            (
                "Duplicates (Servers, BMCs, BMCSecrets)",
                findings.duplicated.len().to_string(),
            ),
            (
                "Orphans (ServerBootConfigurations, ignition Secrets, BMCSecrets)",
                findings.orphaned.len().to_string(),
            ),
            (
                "Boot tokens reused across attempts",
                format!(
                    "{} (of {} tokens issued)",
                    findings.reused.len(),
                    seen.tokens.len()
                ),
            ),
            (
                "Boot tokens in operator logs",
                findings.leaked.len().to_string(),
            ),
        ];
        let table = rows
            .iter()
            .map(|(what, value)| format!("| {what} | {value} |\n"))
            .collect::<String>();
        std::fs::write(&path, format!("| Measure | Result |\n|---|---|\n{table}"))
            .unwrap_or_else(|error| panic!("write {path}: {error}"));
    }
}

/// Looks at everything at the end of the campaign.
async fn inspect(
    lab: &Lab,
    campaign: &Campaign,
    machines: &[Arc<Machine>],
    seen: &Seen,
) -> Findings {
    let client = &lab.client;
    let mut findings = Findings::default();
    let servers: Vec<Server> = list(client).await;
    let bmcs: Vec<BMC> = list(client).await;
    let bmc_secrets: Vec<BMCSecret> = list(client).await;
    let endpoints: Vec<Endpoint> = list(client).await;
    let configurations: Vec<ServerBootConfiguration> = list(client).await;
    let secrets: Vec<Secret> = list(client).await;

    // Servers: one per machine, carrying the report the machine last had acknowledged.
    let mut by_uuid: BTreeMap<String, Vec<&Server>> = BTreeMap::new();
    for server in &servers {
        let uuid = server.spec.system_uuid.clone().unwrap_or_default();
        by_uuid.entry(uuid.to_lowercase()).or_default().push(server);
    }
    for machine in machines {
        let spec = machine.spec();
        let Some(found) = by_uuid.get(&spec.uuid.to_lowercase()) else {
            findings
                .lost
                .push(format!("no Server for machine {}", spec.uuid));
            continue;
        };
        if found.len() > 1 {
            findings.duplicated.push(format!(
                "{} Servers for machine {}: {:?}",
                found.len(),
                spec.uuid,
                found.iter().map(|s| s.name_any()).collect::<Vec<_>>()
            ));
        }
        let server = found[0];
        let Some(last) = machine.acknowledged_reports().pop() else {
            continue;
        };
        let acknowledged: Option<Timestamp> = last.collected_at.parse().ok();
        match reported(server) {
            Some((reason, Some(collected)))
                if reason == "ReportReceived" && Some(collected) >= acknowledged => {}
            other => findings.lost.push(format!(
                "{}: the report acknowledged at boot {} (collected at {}) is not in status (ProbeReported: {other:?})",
                server.name_any(),
                last.boot,
                last.collected_at
            )),
        }
        let status = serde_json::to_value(server.status.as_ref()).unwrap_or_default();
        let macs: Vec<String> = status["networkInterfaces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|nic| nic["macAddress"].as_str().map(str::to_lowercase))
            .collect();
        if !spec.macs.iter().all(|mac| macs.contains(mac))
            || status["serialNumber"] != spec.serial.as_str()
        {
            findings.lost.push(format!(
                "{}: status does not carry machine {}'s facts (MACs {macs:?}, serial {})",
                server.name_any(),
                spec.uuid,
                status["serialNumber"]
            ));
        }
    }
    if servers.len() != machines.len() {
        findings.duplicated.push(format!(
            "{} Servers for {} machines",
            servers.len(),
            machines.len()
        ));
    }

    // BMCs: one per fleet BMC (an Endpoint for each DHCP one), each with its own BMCSecret.
    let bmc_names: BTreeSet<String> = bmcs.iter().map(ResourceExt::name_any).collect();
    let endpoint_names: BTreeSet<String> = endpoints.iter().map(ResourceExt::name_any).collect();
    for bmc in lab.fleet.bmcs() {
        let spec = bmc.spec();
        let name = if spec.index < campaign.dhcp_bmcs() {
            let name = dhcp_name(&spec.mac);
            if !endpoint_names.contains(&name) {
                findings.lost.push(format!("no Endpoint {name}"));
            }
            name
        } else {
            format!("sim-bmc-{}", spec.index)
        };
        if !bmc_names.contains(&name) {
            findings.lost.push(format!("no BMC {name}"));
        }
    }
    let endpoint_mac: BTreeMap<String, String> = endpoints
        .iter()
        .map(|e| (e.name_any(), e.spec.mac_address.to_lowercase()))
        .collect();
    let mut by_mac: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut secret_users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for bmc in &bmcs {
        let mac = bmc
            .spec
            .access
            .as_ref()
            .map(|access| access.mac_address.clone())
            .map(|mac| mac.to_lowercase())
            .or_else(|| {
                bmc.spec
                    .endpoint_ref
                    .as_ref()
                    .and_then(|e| endpoint_mac.get(&e.name).cloned())
            })
            .unwrap_or_default();
        by_mac.entry(mac).or_default().push(bmc.name_any());
        secret_users
            .entry(bmc.spec.bmc_secret_ref.name.clone())
            .or_default()
            .push(bmc.name_any());
    }
    for (mac, names) in by_mac.iter().filter(|(_, names)| names.len() > 1) {
        findings
            .duplicated
            .push(format!("BMCs {names:?} for MAC {mac:?}"));
    }
    if bmcs.len() != lab.fleet.bmcs().len() {
        findings.duplicated.push(format!(
            "{} BMCs for {} BMCs in the fleet",
            bmcs.len(),
            lab.fleet.bmcs().len()
        ));
    }
    for (secret, users) in secret_users.iter().filter(|(_, users)| users.len() > 1) {
        findings
            .duplicated
            .push(format!("BMCs {users:?} share BMCSecret {secret}"));
    }
    for secret in &bmc_secrets {
        if !secret_users.contains_key(&secret.name_any()) {
            findings
                .orphaned
                .push(format!("BMCSecret {} is no BMC's", secret.name_any()));
        }
    }
    for (secret, users) in &secret_users {
        if !bmc_secrets.iter().any(|s| s.name_any() == *secret) {
            findings
                .lost
                .push(format!("BMCSecret {secret} of BMCs {users:?}"));
        }
    }

    // Discovery leaves nothing behind once every Server is Available.
    for configuration in &configurations {
        findings.orphaned.push(format!(
            "ServerBootConfiguration {}/{}",
            configuration.namespace().unwrap_or_default(),
            configuration.name_any()
        ));
    }
    for secret in &secrets {
        let ignition = secret
            .data
            .as_ref()
            .is_some_and(|data| data.contains_key(BOOT_TOKEN_KEY));
        let server_owned = secret
            .owner_references()
            .iter()
            .any(|owner| owner.kind == "Server");
        if ignition || server_owned {
            findings.orphaned.push(format!(
                "Secret {}/{}",
                secret.namespace().unwrap_or_default(),
                secret.name_any()
            ));
        }
    }

    // A ticket (the fingerprint of a boot token) belongs to one attempt of one Server, and
    // a token to one Server's Secret.
    for (ticket, uses) in seen.tickets.iter().filter(|(_, uses)| uses.len() > 1) {
        findings
            .reused
            .push(format!("ticket {ticket} recorded for {uses:?}"));
    }
    for (n, (_, holders)) in seen
        .tokens
        .iter()
        .filter(|(_, holders)| holders.len() > 1)
        .enumerate()
    {
        findings
            .reused
            .push(format!("boot token #{n} in Secrets {holders:?}"));
    }

    // No boot token or fetch ticket in any operator's log.
    let mut secret_words: HashSet<String> = HashSet::new();
    for token in seen.tokens.keys() {
        secret_words.insert(token.clone());
        secret_words.insert(ferrometal::boot::index::fetch_ticket(token));
    }
    let mut logs: Vec<(String, String)> = lab
        .killed_operator_logs()
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            (path.display().to_string(), text)
        })
        .collect();
    logs.push((String::from("the running operator"), lab.operator_log()));
    for (name, text) in &logs {
        let leaks = hex_words(text)
            .filter(|word| secret_words.contains(*word))
            .count();
        if leaks > 0 {
            findings
                .leaked
                .push(format!("{leaks} boot tokens or tickets in {name}"));
        }
    }
    findings
}

#[test]
fn a_schedule_holds_what_was_asked_and_one_seed_gives_one_schedule() {
    let campaign = Campaign {
        servers: 20,
        kills: 7,
        apiserver_restarts: 3,
        etcd_restarts: 2,
        registry_outage: Duration::from_secs(5),
        seed: 11,
    };
    let order = schedule(&campaign, &mut Rng::new(campaign.seed, 0));
    let count = |kind| order.iter().filter(|d| **d == kind).count();
    assert_eq!(count(Disruption::KillOperator), 7);
    assert_eq!(count(Disruption::RestartApiserver), 3);
    assert_eq!(count(Disruption::RestartEtcd), 2);
    assert_eq!(count(Disruption::RegistryDown), 1);
    assert_eq!(
        order.last(),
        Some(&Disruption::KillOperator),
        "everything else comes before a kill"
    );
    assert_eq!(order, schedule(&campaign, &mut Rng::new(campaign.seed, 0)));
}

/// The DHCP server acknowledges a BMC's lease before the BMC's Endpoint is written (the
/// writes are queued in memory). An operator killed in between finds the lease in its lease
/// file when it starts again and writes the Endpoint then; otherwise the BMC, which does not
/// ask again until half its lease has passed, would not be onboarded until then.
#[tokio::test]
async fn a_bmc_leased_just_before_a_crash_still_gets_its_endpoint() {
    let mut lab = Lab::start(
        LabOptions {
            apply_bmcs: false,
            start_operator: false,
            ..common::lab_options("leased-before-crash", 1, 1, 0)
        },
        |line| eprintln!("lab: {line}"),
    )
    .await
    .expect("the lab starts");
    // What the killed operator left behind: the BMC's acknowledged lease, no Endpoint.
    let bmc = lab.fleet.bmcs()[0].clone();
    let address = bmc.address().expect("the BMC listens");
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 86_400;
    let leases = serde_json::json!({
        bmc.spec().mac.replace(':', ""): {"ip": address.ip().to_string(), "expires": expires}
    });
    std::fs::write(
        lab.work_dir().join("leases.json"),
        serde_json::to_vec(&leases).expect("json"),
    )
    .expect("write the lease file");
    lab.run_operator().expect("start the operator");

    let name = dhcp_name(&bmc.spec().mac);
    let endpoints: Api<Endpoint> = Api::all(lab.client.clone());
    let endpoint = common::eventually("the Endpoint of the leased BMC", || {
        let endpoints = endpoints.clone();
        let name = name.clone();
        async move { endpoints.get_opt(&name).await.ok().flatten() }
    })
    .await;
    assert_eq!(endpoint.spec.ip, address.ip().to_string());
    assert_eq!(endpoint.spec.mac_address, bmc.spec().mac);
    lab.until_available(1, Duration::from_secs(60), Duration::from_millis(200))
        .await
        .expect("its Server is discovered");
}
