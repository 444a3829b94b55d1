//! `make bench`: runs each benchmark in release mode and rewrites its section of
//! BENCHMARKS.md, keeping the sections of benchmarks not run.

use std::fmt::Write as _;
use std::process::Command;

use anyhow::Context;
use testenv::tools;

use crate::run::{checked, output, step};
use crate::{plugins, setup};

/// `(section heading, cargo bench arguments)`.
const BENCHES: &[(&str, &[&str])] = &[
    (
        "## Plugin runtime",
        &[
            "bench",
            "--quiet",
            "-p",
            "ferrometal",
            "--bench",
            "plugin_calls",
        ],
    ),
    (
        "## Boot server",
        &[
            "bench",
            "--quiet",
            "-p",
            "ferrometal",
            "--bench",
            "boot_server",
        ],
    ),
    (
        "## Fleet discovery",
        &["bench", "--quiet", "-p", "ferrometal", "--bench", "fleet"],
    ),
];

/// Runs every benchmark and updates BENCHMARKS.md.
pub fn run() -> anyhow::Result<()> {
    let root = tools::workspace_root();
    let path = root.join("BENCHMARKS.md");
    let mut document = std::fs::read_to_string(&path).unwrap_or_else(|_| header());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    setup::all()?;
    plugins::build()?;
    // The fleet benchmark's boot server offers metalprobe (the discovery ignition names it).
    checked(
        Command::new(&cargo)
            .args(["build", "--quiet", "--release", "-p", "metalprobe"])
            .current_dir(&root),
    )?;
    for (heading, args) in BENCHES {
        step(format_args!("benchmark: cargo {}", args.join(" ")));
        let section = output(Command::new(&cargo).args(*args).current_dir(&root))?;
        let mut section = section.trim().to_owned();
        let _ = write!(section, "\n\n{}\n", machine());
        document = replace_section(&document, heading, &section);
        println!("{section}");
    }
    std::fs::write(&path, document).with_context(|| format!("write {}", path.display()))?;
    step(format_args!("results written to {}", path.display()));
    Ok(())
}

fn header() -> String {
    String::from(
        "# Benchmarks\n\nProduced by `make bench` (`cargo xtask bench`), which rewrites each section below. \
         These machines are noisy: compare ratios within one run, not absolute numbers across runs.\n",
    )
}

/// One line naming the machine's CPU and its cores, for result tables.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        })
        .unwrap_or_else(|| String::from("unknown CPU"));
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("Machine: {cpu}, {cores} cores available.")
}

/// Replaces the section starting at `heading` (up to the next `## `) with `section`, or
/// appends it.
pub fn replace_section(document: &str, heading: &str, section: &str) -> String {
    let Some(start) = document.find(heading) else {
        return format!(
            "{}\n{section}",
            document.trim_end_matches('\n').to_owned() + "\n"
        );
    };
    let rest = &document[start + heading.len()..];
    let end = rest
        .find("\n## ")
        .map_or(document.len(), |offset| start + heading.len() + offset + 1);
    format!("{}{section}\n{}", &document[..start], &document[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_replaced_in_place_and_others_are_kept() {
        let document = "# B\n\n## A\nold a\n\n## Plugin runtime\nold\n\n## C\nc\n";
        let updated = replace_section(document, "## Plugin runtime", "## Plugin runtime\nnew\n");
        assert_eq!(
            updated,
            "# B\n\n## A\nold a\n\n## Plugin runtime\nnew\n\n## C\nc\n"
        );
    }

    #[test]
    fn a_missing_section_is_appended() {
        let updated = replace_section("# B\n", "## X", "## X\nnew\n");
        assert_eq!(updated, "# B\n\n## X\nnew\n");
    }
}
