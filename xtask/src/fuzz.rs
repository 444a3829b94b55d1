//! `make fuzz`: every fuzz target in fuzz/ (cargo-fuzz + libFuzzer) for a set time, from the
//! committed seeds (fuzz/seeds/<target>) plus a working corpus kept in target/fuzz/corpus, so
//! later runs start where earlier ones stopped. A crash fails the run and leaves its input in
//! target/fuzz/artifacts/<target>/; the long form writes its figures into RELIABILITY.md.
//!
//! The targets build with stable Rust: cargo-fuzz's `--sanitizer none` needs no nightly flag
//! (AddressSanitizer would, and the fuzzed crates deny `unsafe`), so libFuzzer's coverage
//! instrumentation (`-Cpasses=sancov-module`) is all that is used.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use testenv::tools;

use crate::bench::replace_section;
use crate::run::{checked, note, step};
use crate::setup;

/// Every fuzz target, with what it reads.
pub const TARGETS: &[(&str, &str)] = &[
    (
        "dhcp_reply",
        "DHCPv4 decoder, boot-client classification and reply builder",
    ),
    (
        "dhcp6_reply",
        "DHCPv6 decoder (relay layers too), client identity and reply builder",
    ),
    (
        "tftp_request",
        "TFTP read-request parser and file-name resolution",
    ),
    (
        "registry_report",
        "registry: metalprobe's and metal-operator's reports, boot state",
    ),
    (
        "ipxe_script",
        "iPXE script and variable handling of the simulator's firmware",
    ),
    (
        "redfish_driver",
        "redfish plugin's JSON models and driver logic, natively",
    ),
    ("mac_database", "MAC-prefix database parser and lookup"),
    (
        "ignition_render",
        "ignition plugin's settings and request rendering",
    ),
    (
        "ignition_parser",
        "ferrometal-ignite's ignition parser, the simulator's reader",
    ),
];

const HEADING: &str = "## Fuzzing";

/// How one target's run went.
struct Run {
    target: &'static str,
    executions: u64,
    per_second: u64,
    corpus: u64,
}

/// Builds the targets and runs each for `seconds`; with `record`, writes the figures into
/// RELIABILITY.md. `only` restricts the run to one target.
pub fn run(seconds: u32, only: Option<&str>, record: bool) -> anyhow::Result<()> {
    setup::cargo_fuzz()?;
    let root = tools::workspace_root();
    let targets: Vec<&(&str, &str)> = TARGETS
        .iter()
        .filter(|(name, _)| only.is_none_or(|only| only == *name))
        .collect();
    if targets.is_empty() {
        bail!(
            "no fuzz target {:?}; the targets are {}",
            only.unwrap_or_default(),
            TARGETS
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    step("building the fuzz targets (cargo fuzz build --sanitizer none)");
    checked(cargo_fuzz(&root).args(["build", "--sanitizer", "none"]))?;
    let mut runs = Vec::new();
    let mut crashed = Vec::new();
    for (target, what) in targets {
        step(format_args!("fuzzing {target} for {seconds}s: {what}"));
        match fuzz_one(&root, target, seconds)? {
            Ok(run) => {
                note(format_args!(
                    "{} executions, corpus {} inputs",
                    run.executions, run.corpus
                ));
                runs.push(run);
            }
            Err(artifacts) => crashed.push(format!("{target} (inputs in {})", artifacts.display())),
        }
    }
    if !crashed.is_empty() {
        bail!(
            "fuzzing found a crash in {}; reproduce with `cargo fuzz run -s none <target> <input>` \
             in fuzz/, fix it and add the input as a regression test",
            crashed.join(", ")
        );
    }
    if record {
        let path = root.join("RELIABILITY.md");
        let document =
            std::fs::read_to_string(&path).unwrap_or_else(|_| String::from("# Reliability\n"));
        let section = section(&runs, seconds);
        std::fs::write(&path, replace_section(&document, HEADING, &section))
            .with_context(|| format!("write {}", path.display()))?;
        println!("{section}");
        step(format_args!("figures written to {}", path.display()));
    }
    Ok(())
}

/// `cargo fuzz` in fuzz/.
fn cargo_fuzz(root: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.arg("fuzz").current_dir(root.join("fuzz"));
    command
}

/// Runs `target` for `seconds`: its figures, or where the crashing inputs are.
fn fuzz_one(
    root: &Path,
    target: &'static str,
    seconds: u32,
) -> anyhow::Result<Result<Run, PathBuf>> {
    let corpus = root.join("target/fuzz/corpus").join(target);
    let artifacts = root.join("target/fuzz/artifacts").join(target);
    let seeds = root.join("fuzz/seeds").join(target);
    for dir in [&corpus, &artifacts, &seeds] {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let output = cargo_fuzz(root)
        .args(["run", "--sanitizer", "none", target])
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        // An input that runs a second is a hang worth a look.
        .arg("-timeout=10")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1")
        .output()
        .with_context(|| format!("cannot run cargo fuzz for {target}"))?;
    let log = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        for line in tail.into_iter().rev() {
            eprintln!("    | {line}");
        }
        return Ok(Err(artifacts));
    }
    let executions = final_stat(&log, "stat::number_of_executed_units")
        .with_context(|| format!("{target}: libFuzzer printed no final statistics"))?;
    let per_second = final_stat(&log, "stat::average_exec_per_sec").unwrap_or_default();
    let corpus = std::fs::read_dir(&corpus).map_or(0, |dir| dir.count() as u64);
    Ok(Ok(Run {
        target,
        executions,
        per_second,
        corpus,
    }))
}

/// The value of libFuzzer's `-print_final_stats` line `name: value`.
fn final_stat(log: &str, name: &str) -> Option<u64> {
    log.lines()
        .filter_map(|line| line.trim().strip_prefix(name)?.trim().strip_prefix(':'))
        .next_back()
        .and_then(|value| value.trim().parse().ok())
}

fn section(runs: &[Run], seconds: u32) -> String {
    let mut out = format!(
        "{HEADING}\n\nProduced by `make fuzz` (`cargo xtask fuzz --seconds {seconds}`): each target \
         for {seconds} s from its seeds and the corpus earlier runs left in target/fuzz/corpus. \
         `make test` runs each for a few seconds. Crashes found and fixed: next section.\n\n\
         | target | reads | executions | executions/s | corpus |\n\
         |---|---|---:|---:|---:|\n"
    );
    for run in runs {
        let what = TARGETS
            .iter()
            .find(|(name, _)| *name == run.target)
            .map_or("", |(_, what)| *what);
        let _ = writeln!(
            out,
            "| `{}` | {what} | {} | {} | {} |",
            run.target, run.executions, run.per_second, run.corpus
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_final_statistic_is_read() {
        let log = "INFO: Seed: 1\n#2 INITED\nstat::number_of_executed_units: 41\n\
                   stat::average_exec_per_sec:     4\nstat::number_of_executed_units: 1234\n";
        assert_eq!(
            final_stat(log, "stat::number_of_executed_units"),
            Some(1234)
        );
        assert_eq!(final_stat(log, "stat::new_units_added"), None);
    }
}
