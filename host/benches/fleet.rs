//! Fleet discovery benchmark (`make bench`): time from onboarding a simulated fleet to every
//! Server Available, with the operator's CPU seconds and peak RSS, for several fleet sizes.
//! Everything is real but the hardware: kube-apiserver + etcd, the OCI registry, the
//! release `ferrometal run` with its plugins, and simulated BMCs and machines (boot delay 0)
//! in this process. Half of the BMCs announce themselves by DHCP, half are applied as BMC
//! objects. Prints a Markdown section for BENCHMARKS.md.
//!
//! `FLEET_SIZES=100,1000` (the default) picks the sizes.

use std::time::{Duration, Instant};

use ferrometal_sim::lab::{Lab, LabOptions};
use ferrometal_sim::{FleetSpec, MachineBehaviour};

/// Fails the run when a fleet is not Available after this long.
const LIMIT: Duration = Duration::from_secs(900);

struct Result {
    servers: usize,
    seconds: f64,
    cpu_seconds: f64,
    control_plane_cpu_seconds: f64,
    simulator_cpu_seconds: f64,
    peak_rss_mib: f64,
    lab_seconds: f64,
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

async fn run(servers: usize) -> Result {
    let started = Instant::now();
    let work_dir = std::env::temp_dir().join(format!("ferrometal-bench-fleet-{servers}"));
    let _ = std::fs::remove_dir_all(&work_dir);
    let components = testenv::components::component("redfish")
        .expect("plugins are built (cargo xtask plugins)")
        .parent()
        .expect("component directory")
        .to_owned();
    let lab = Lab::start(
        LabOptions {
            fleet: FleetSpec {
                seed: 7,
                bmcs: servers,
                ..FleetSpec::default()
            },
            dhcp_bmcs: servers / 2,
            tls: false,
            apply_bmcs: false,
            start_operator: true,
            vms: Vec::new(),
            behaviour: MachineBehaviour::default(),
            ferrometal: env!("CARGO_BIN_EXE_ferrometal").into(),
            metalprobe: testenv::components::workspace_binary("metalprobe")
                .expect("metalprobe is built"),
            components,
            operator_args: Vec::new(),
            operator_log: String::from("warn"),
            work_dir,
        },
        |line| eprintln!("fleet bench ({servers}): {line}"),
    )
    .await
    .expect("the lab starts");
    let lab_seconds = started.elapsed().as_secs_f64();
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
    loop {
        let states = lab.server_states().await.unwrap_or_default();
        let available = states.get("Available").copied().unwrap_or(0);
        if available == servers {
            break;
        }
        assert!(
            onboarding.elapsed() < LIMIT,
            "{available} of {servers} Servers Available after {LIMIT:?}: {states:?}\n{}",
            lab.operator_log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Result {
        servers,
        seconds: onboarding.elapsed().as_secs_f64(),
        cpu_seconds: cpu_seconds(pid),
        control_plane_cpu_seconds: control_plane_cpu() - control_plane_before,
        simulator_cpu_seconds: cpu_seconds(std::process::id()) - simulator_before,
        peak_rss_mib: peak_rss_mib(pid),
        lab_seconds,
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("FLEET_SIZES")
        .unwrap_or_else(|_| String::from("100,1000"))
        .split(',')
        .filter_map(|size| size.trim().parse().ok())
        .collect();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let results: Vec<Result> = sizes
        .iter()
        .map(|&servers| runtime.block_on(run(servers)))
        .collect();
    println!("## Fleet discovery\n");
    println!(
        "`FLEET_SIZES={} cargo bench -p ferrometal --bench fleet` (release build; real kube-apiserver + etcd, OCI registry and `ferrometal run` with its plugins; simulated BMCs and machines in the benchmark process, boot delay 0, one server per BMC, half the BMCs announced by DHCP and half applied as BMC objects; everything shares the machine's cores)\n",
        sizes
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    println!(
        "| Servers | Onboarding → all Available | Operator CPU | Operator peak RSS | kube-apiserver + etcd CPU | Simulator CPU | Lab start-up |"
    );
    println!("|---|---|---|---|---|---|---|");
    for result in results {
        println!(
            "| {} | {:.1} s | {:.1} s | {:.0} MiB | {:.1} s | {:.1} s | {:.1} s |",
            result.servers,
            result.seconds,
            result.cpu_seconds,
            result.peak_rss_mib,
            result.control_plane_cpu_seconds,
            result.simulator_cpu_seconds,
            result.lab_seconds
        );
    }
}
