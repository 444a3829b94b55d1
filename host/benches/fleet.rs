//! Fleet discovery benchmark (`make bench`): time from onboarding a simulated fleet to every
//! Server Available, with the operator's CPU seconds and peak RSS, for several fleet sizes,
//! and what one discovered server costs in API requests (by verb and resource, from
//! kube-apiserver's own `apiserver_request_total`) and Redfish requests (from the simulated
//! BMCs' counters), both read before the operator starts and once every Server is Available.
//! Everything is real but the hardware: kube-apiserver + etcd, the OCI registry, the
//! release `ferrometal run` with its plugins, and simulated BMCs and machines (boot delay 0)
//! in this process. Half of the BMCs announce themselves by DHCP, half are applied as BMC
//! objects. Prints a Markdown section for BENCHMARKS.md.
//!
//! `FLEET_SIZES=100,1000,5000` (the default) picks the sizes; on this 2-core machine the
//! three take about 15 minutes in-band (1000 servers about 2, CPU-bound) and a third of that
//! out-of-band. 5000 servers need over
//! 10 000 file descriptors in this process (a
//! listener per BMC and a connection per BMC the operator keeps open) and about 5000 in the
//! operator: the benchmark raises its soft `RLIMIT_NOFILE` to the hard limit, which
//! processes it starts inherit; raise the hard limit (`ulimit -Hn`) first where it is lower.
//! `FLEET_MODES=in-band,out-of-band` (the default) runs each size in each discovery mode
//! (`in-band` alone: the boot path only): out-of-band discovery (`--discovery-mode out-of-band`) takes the BMC's inventory
//! instead of booting the machines. The time limit ([`limit`]) and the interval between polls of the Servers
//! ([`poll_interval`]) grow with the fleet. `FLEET_OPERATOR=<path>` runs another program
//! in place of the release `ferrometal` (a wrapper that profiles it, e.g.
//! `exec heaptrack …/ferrometal "$@"`; docs/testing.md).

use std::time::{Duration, Instant};

use ferrometal_sim::lab::{ApiRequests, Lab, LabOptions};
use ferrometal_sim::{FleetSpec, MachineBehaviour};

/// Fails the run when a fleet of `servers` is not Available after this long: 15 minutes, or
/// 0.6 s per server for larger fleets (5000: 50 minutes).
fn limit(servers: usize) -> Duration {
    Duration::from_secs(900)
        .max(Duration::from_millis(600) * u32::try_from(servers).unwrap_or(u32::MAX))
}

/// How often the benchmark lists the Servers to see whether all are Available: every 250 ms,
/// or every millisecond per server for larger fleets (1000: every second), so that listing
/// thousands of Servers does not become a load of its own on the API server.
fn poll_interval(servers: usize) -> Duration {
    Duration::from_millis(250).max(Duration::from_millis(
        u64::try_from(servers).unwrap_or(u64::MAX),
    ))
}

/// Request kinds with fewer per server than this are left out of the per-server table.
const MIN_PER_SERVER: f64 = 0.1;

struct Result {
    servers: usize,
    /// `in-band` or `out-of-band`.
    mode: String,
    seconds: f64,
    cpu_seconds: f64,
    control_plane_cpu_seconds: f64,
    simulator_cpu_seconds: f64,
    peak_rss_mib: f64,
    lab_seconds: f64,
    /// The operator's API requests from its start to all Available (the BMCs and
    /// BMCSecrets the benchmark applies, and the control plane's own housekeeping, left
    /// out).
    api: ApiRequests,
    /// Redfish requests each BMC answered in that time.
    redfish: Vec<u64>,
    /// Fetches the machines had to ask again (none when each was powered on only once its
    /// boot window was open and the boot server kept up).
    fetch_retries: u32,
}

/// Raises this process's soft limit of open files to its hard limit (a fleet of thousands
/// holds a listener and a connection per BMC); processes it starts inherit it.
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limits = getrlimit(Resource::Nofile);
    if limits.current != limits.maximum
        && let Err(error) = setrlimit(
            Resource::Nofile,
            rustix::process::Rlimit {
                current: limits.maximum,
                maximum: limits.maximum,
            },
        )
    {
        eprintln!("fleet bench: cannot raise the open files limit to the hard limit: {error}");
    }
}

/// CPU seconds (user + system) of process `pid`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at field 3.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name and state.
    // USER_HZ, 100 on every Linux architecture ferrometal runs on.
    let hz = 100.0;
    (ticks(11) + ticks(12)) / hz
}

/// Peak resident set of process `pid`, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Where the operator caches compiled plugins across the benchmark's fleets.
fn plugin_cache_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("ferrometal-bench-plugin-cache")
}

async fn run(servers: usize, mode: &str) -> Result {
    let started = Instant::now();
    let work_dir = std::env::temp_dir().join(format!("ferrometal-bench-fleet-{servers}-{mode}"));
    let _ = std::fs::remove_dir_all(&work_dir);
    let components = testenv::components::component("redfish")
        .expect("plugins are built (cargo xtask plugins)")
        .parent()
        .expect("component directory")
        .to_owned();
    let mut lab = Lab::start(
        LabOptions {
            fleet: FleetSpec {
                seed: 7,
                bmcs: servers,
                ..FleetSpec::default()
            },
            dhcp_bmcs: servers / 2,
            tls: false,
            apply_bmcs: false,
            // Started below, once the API server's counters have been read.
            start_operator: false,
            vms: Vec::new(),
            behaviour: MachineBehaviour::default(),
            ferrometal: std::env::var_os("FLEET_OPERATOR")
                .map_or_else(|| env!("CARGO_BIN_EXE_ferrometal").into(), Into::into),
            metalprobe: testenv::components::workspace_binary("metalprobe")
                .expect("metalprobe is built"),
            components,
            // Compiled plugins are cached as in a deployment (the chart sets a cache
            // directory), so start-up does not compile them with Cranelift: that compile,
            // not the fleet, would set the peak RSS. A warm-up fleet fills the cache.
            operator_args: vec![
                String::from("--plugin-cache-dir"),
                plugin_cache_dir().display().to_string(),
                String::from("--discovery-mode"),
                mode.to_owned(),
            ],
            operator_log: String::from("warn"),
            work_dir,
            audit_log: false,
            hold_dhcp_bmcs: false,
            node: false,
            ipv6: false,
        },
        |line| eprintln!("fleet bench ({servers}): {line}"),
    )
    .await
    .expect("the lab starts");
    let lab_seconds = started.elapsed().as_secs_f64();
    // The counters before the operator makes its first request (the DHCP BMCs already ask
    // for leases, as they did when the lab started the operator itself a moment later).
    let api_before = lab
        .api_requests()
        .await
        .expect("read the API server's metrics");
    let redfish_before = lab.redfish_requests_by_bmc();
    lab.run_operator().expect("ferrometal run starts");
    let pid = lab.operator_pid().expect("operator runs");
    let control_plane_cpu = || {
        lab.control_plane
            .pids()
            .into_iter()
            .map(cpu_seconds)
            .sum::<f64>()
    };
    let (control_plane_before, simulator_before) =
        (control_plane_cpu(), cpu_seconds(std::process::id()));
    let onboarding = Instant::now();
    lab.apply_bmcs(servers / 2..servers, None)
        .await
        .expect("apply BMCs");
    if let Err(message) = lab
        .until_available(servers, limit(servers), poll_interval(servers))
        .await
    {
        panic!("{message}");
    }
    let seconds = onboarding.elapsed().as_secs_f64();
    let api = lab
        .api_requests()
        .await
        .expect("read the API server's metrics")
        .since(&api_before)
        .since(&ApiRequests::applied_bmcs(
            u64::try_from(servers - servers / 2).unwrap_or(u64::MAX),
        ))
        .of_ferrometal();
    let redfish = lab
        .redfish_requests_by_bmc()
        .iter()
        .zip(&redfish_before)
        .map(|(after, before)| after.saturating_sub(*before))
        .collect();
    Result {
        servers,
        mode: mode.to_owned(),
        seconds,
        cpu_seconds: cpu_seconds(pid),
        control_plane_cpu_seconds: control_plane_cpu() - control_plane_before,
        simulator_cpu_seconds: cpu_seconds(std::process::id()) - simulator_before,
        peak_rss_mib: peak_rss_mib(pid),
        lab_seconds,
        api,
        redfish,
        fetch_retries: lab.fleet.machines().map(|m| m.fetch_retries()).sum(),
    }
}

/// What one discovered server cost, as a Markdown table: the totals, then every kind of
/// API request with at least [`MIN_PER_SERVER`] per server.
fn requests_table(result: &Result) -> String {
    let servers = result.servers;
    let per_server = |count: u64| count as f64 / servers as f64;
    let api = &result.api;
    let mut table = format!(
        "### Requests per discovered server, {servers} servers, {}\n\n\
         | Requests | Per server | Of them errors |\n|---|---|---|\n\
         | **API writes** (POST, PUT, PATCH, APPLY, DELETE) | **{:.1}** | |\n\
         | **API GETs** (single objects) | **{:.1}** | |\n\
         | **Redfish requests** (busiest BMC: {}) | **{:.1}** | |\n\
         | API LISTs / WATCHes, whole fleet (not per-server costs) | {} / {} in all | |\n",
        result.mode,
        per_server(api.writes()),
        per_server(api.gets()),
        result.redfish.iter().max().copied().unwrap_or_default(),
        per_server(result.redfish.iter().sum()),
        api.lists(),
        api.watches(),
    );
    for row in api.per_server(servers, MIN_PER_SERVER) {
        let errors = if row.errors > 0.0 {
            format!("{:.2}", row.errors)
        } else {
            String::new()
        };
        table.push_str(&format!(
            "| `{}` | {:.2} | {errors} |\n",
            row.kind, row.requests
        ));
    }
    table
}

fn main() {
    let sizes: Vec<usize> = std::env::var("FLEET_SIZES")
        .unwrap_or_else(|_| String::from("100,1000,5000"))
        .split(',')
        .filter_map(|size| size.trim().parse().ok())
        .collect();
    let modes: Vec<String> = std::env::var("FLEET_MODES")
        .unwrap_or_else(|_| String::from("in-band,out-of-band"))
        .split(',')
        .map(|mode| mode.trim().to_owned())
        .filter(|mode| !mode.is_empty())
        .collect();
    if let Some(unknown) = modes
        .iter()
        .find(|mode| !["in-band", "out-of-band"].contains(&mode.as_str()))
    {
        panic!("FLEET_MODES: {unknown:?} is neither in-band nor out-of-band");
    }
    raise_open_files_limit();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    // Fills the compiled-plugin cache (the plugins may have been rebuilt since the last run).
    let _ = std::fs::remove_dir_all(plugin_cache_dir());
    runtime.block_on(run(2, "in-band"));
    let results: Vec<Result> = sizes
        .iter()
        .flat_map(|&servers| modes.iter().map(move |mode| (servers, mode)))
        .map(|(servers, mode)| runtime.block_on(run(servers, mode)))
        .collect();
    println!("## Fleet discovery\n");
    println!(
        "`FLEET_SIZES={} FLEET_MODES={} cargo bench -p ferrometal --bench fleet` (release build; real kube-apiserver + etcd, OCI registry and `ferrometal run` with its plugins; simulated BMCs and machines in the benchmark process, boot delay 0, one server per BMC, half the BMCs announced by DHCP and half applied as BMC objects; everything shares the machine's cores)\n",
        sizes
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
        modes.join(",")
    );
    println!(
        "| Servers | Discovery | Onboarding → all Available | Operator CPU | Operator peak RSS | kube-apiserver + etcd CPU | Simulator CPU | Lab start-up | Fetches asked again |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for result in &results {
        println!(
            "| {} | {} | {:.1} s | {:.1} s | {:.0} MiB | {:.1} s | {:.1} s | {:.1} s | {} |",
            result.servers,
            result.mode,
            result.seconds,
            result.cpu_seconds,
            result.peak_rss_mib,
            result.control_plane_cpu_seconds,
            result.simulator_cpu_seconds,
            result.lab_seconds,
            result.fetch_retries
        );
    }
    println!(
        "\nRequests from the operator's start to all Available: API requests from kube-apiserver's own `apiserver_request_total` (read before and after), counting only the resources ferrometal may touch (metal.ironcore.dev, core Secrets, Events; the control plane's own housekeeping left out) and leaving out the BMCs and BMCSecrets the benchmark applies; Redfish requests from the simulated BMCs' counters. Kinds of request with fewer than {MIN_PER_SERVER} per server are left out; `core/` is the core API group, names without a group are metal.ironcore.dev's.\n"
    );
    for result in &results {
        println!("{}", requests_table(result));
    }
}
