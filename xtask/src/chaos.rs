//! `make chaos`: the long form of the kill campaign (`host/tests/chaos.rs`, whose short form
//! runs in `make test`). The test's figures go into RELIABILITY.md, with the command that
//! produced them.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use testenv::tools;

use crate::bench::{machine, replace_section};
use crate::run::{checked, step};
use crate::{plugins, setup};

/// The section of RELIABILITY.md this command rewrites.
const HEADING: &str = "## Kill campaign";

/// The test that runs the campaign.
const TEST: &str = "a_fleet_discovered_through_kills_and_restarts_loses_nothing";

/// What the campaign does (the defaults are the long form).
#[derive(Debug, Clone, clap::Args)]
pub struct ChaosArgs {
    /// Servers in the simulated fleet, one per BMC: half announce themselves by DHCP, the
    /// rest are applied as BMC objects in waves, one after each kill.
    #[arg(long, default_value_t = 200)]
    pub servers: usize,
    /// How often `ferrometal run` is killed with SIGKILL (and started again).
    #[arg(long, default_value_t = 100)]
    pub kills: usize,
    /// How often kube-apiserver is killed with SIGKILL and started again.
    #[arg(long, default_value_t = 5)]
    pub apiserver_restarts: usize,
    /// How often etcd is killed with SIGKILL and started again.
    #[arg(long, default_value_t = 2)]
    pub etcd_restarts: usize,
    /// How long the OCI registry is down (0: not at all).
    #[arg(long, default_value_t = 30)]
    pub registry_outage_seconds: u64,
    /// Seed of the schedule and the fleet (default: from the clock); a failed run prints
    /// its seed, and the same seed replays its schedule.
    #[arg(long)]
    pub seed: Option<u64>,
}

impl ChaosArgs {
    /// The command line that runs this campaign.
    fn command_line(&self, seed: &str) -> String {
        format!(
            "cargo xtask chaos --servers {} --kills {} --apiserver-restarts {} --etcd-restarts {} --registry-outage-seconds {} --seed {seed}",
            self.servers,
            self.kills,
            self.apiserver_restarts,
            self.etcd_restarts,
            self.registry_outage_seconds
        )
    }
}

/// Runs the campaign; on success writes its figures into RELIABILITY.md.
pub fn run(args: &ChaosArgs) -> anyhow::Result<()> {
    if args.servers < 2 {
        bail!("--servers must be at least 2 (one for each discovery path)");
    }
    setup::debian_wasm_toolchain()?;
    setup::test_services()?;
    setup::kubernetes()?;
    setup::etcd()?;
    plugins::build()?;
    let root = tools::workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // The lab runs the real binaries: the operator, and metalprobe, which its boot server
    // offers.
    checked(
        Command::new(&cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "metalprobe",
                "-p",
                "ferrometal",
                "--bins",
            ])
            .current_dir(&root),
    )?;
    // Built first, so that the time taken is the campaign's.
    checked(
        Command::new(&cargo)
            .args([
                "test",
                "--quiet",
                "--no-run",
                "-p",
                "ferrometal",
                "--test",
                "chaos",
            ])
            .current_dir(&root),
    )?;
    let report = root.join("target").join("chaos-report.md");
    let _ = std::fs::remove_file(&report);
    let mut test = Command::new(&cargo);
    test.args([
        "test",
        "--quiet",
        "-p",
        "ferrometal",
        "--test",
        "chaos",
        TEST,
    ])
    .args(["--", "--exact", "--nocapture"])
    .env("FERROMETAL_CHAOS_SERVERS", args.servers.to_string())
    .env("FERROMETAL_CHAOS_KILLS", args.kills.to_string())
    .env(
        "FERROMETAL_CHAOS_APISERVER_RESTARTS",
        args.apiserver_restarts.to_string(),
    )
    .env(
        "FERROMETAL_CHAOS_ETCD_RESTARTS",
        args.etcd_restarts.to_string(),
    )
    .env(
        "FERROMETAL_CHAOS_REGISTRY_OUTAGE_SECONDS",
        args.registry_outage_seconds.to_string(),
    )
    .env("FERROMETAL_CHAOS_REPORT", &report)
    .current_dir(&root);
    if let Some(seed) = args.seed {
        test.env("FERROMETAL_CHAOS_SEED", seed.to_string());
    }
    step(format_args!(
        "kill campaign: {} servers, {} operator kills, {} kube-apiserver and {} etcd restarts, registry down {} s",
        args.servers,
        args.kills,
        args.apiserver_restarts,
        args.etcd_restarts,
        args.registry_outage_seconds
    ));
    let started = Instant::now();
    checked(&mut test)?;
    let wall = started.elapsed();
    let table = std::fs::read_to_string(&report)
        .with_context(|| format!("the campaign wrote no figures to {}", report.display()))?;
    let seed = table
        .lines()
        .find_map(|line| line.strip_prefix("| Seed | "))
        .and_then(|rest| rest.strip_suffix(" |"))
        .unwrap_or("?")
        .to_owned();
    let mut section = format!(
        "{HEADING}\n\n`make chaos` (`{}`); the test ran {:.0} s on the machine below.\n\n{}",
        args.command_line(&seed),
        wall.as_secs_f64(),
        table.trim_end()
    );
    let _ = write!(section, "\n\n{}\n", machine());
    let path = root.join("RELIABILITY.md");
    let document =
        std::fs::read_to_string(&path).unwrap_or_else(|_| String::from("# Reliability\n"));
    std::fs::write(&path, replace_section(&document, HEADING, &section))
        .with_context(|| format!("write {}", path.display()))?;
    println!("{section}");
    step(format_args!("figures written to {}", path.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_command_replays_the_campaign() {
        let args = ChaosArgs {
            servers: 20,
            kills: 5,
            apiserver_restarts: 1,
            etcd_restarts: 1,
            registry_outage_seconds: 5,
            seed: None,
        };
        assert_eq!(
            args.command_line("42"),
            "cargo xtask chaos --servers 20 --kills 5 --apiserver-restarts 1 --etcd-restarts 1 --registry-outage-seconds 5 --seed 42"
        );
    }
}
