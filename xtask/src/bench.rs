//! `make bench`: runs each benchmark in release mode and rewrites its section of
//! BENCHMARKS.md, keeping the sections of benchmarks not run.

use std::fmt::Write as _;
use std::process::Command;

use anyhow::Context;
use testenv::tools;

use crate::run::{checked, output, step};
use crate::{image, plugins, setup};

/// One section of BENCHMARKS.md that `make bench` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Step {
    /// Plugin call overhead, cold and cached loads.
    PluginRuntime,
    /// Boot-server requests per second (wrk).
    BootServer,
    /// Fleet discovery against a real control plane.
    Fleet,
    /// The operator image's size (`cargo xtask image`).
    Image,
    /// The fleet view in a real browser: 1000 simulated servers and 10,000 synthetic ones.
    FleetView,
}

/// What `cargo xtask bench` takes.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Run only these steps (comma-separated or repeated); all when not given.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Step>,
}

/// The heading of the operator image's section.
const IMAGE_HEADING: &str = "## Operator image";
/// The heading of the fleet view's section.
const FLEET_VIEW_HEADING: &str = "## Fleet view";

/// `(step, section heading, cargo bench arguments)`.
const BENCHES: &[(Step, &str, &[&str])] = &[
    (
        Step::PluginRuntime,
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
        Step::BootServer,
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
        Step::Fleet,
        "## Fleet discovery",
        &["bench", "--quiet", "-p", "ferrometal", "--bench", "fleet"],
    ),
];

/// Runs every benchmark (or those of `--only`) and updates BENCHMARKS.md.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let wanted = |step: Step| args.only.is_empty() || args.only.contains(&step);
    let root = tools::workspace_root();
    let path = root.join("BENCHMARKS.md");
    let mut document = std::fs::read_to_string(&path).unwrap_or_else(|_| header());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let benches: Vec<_> = BENCHES.iter().filter(|(step, ..)| wanted(*step)).collect();
    if !benches.is_empty() {
        setup::all()?;
    }
    if wanted(Step::BootServer) {
        setup::wrk()?;
    }
    plugins::build()?;
    if !benches.is_empty() {
        // The fleet benchmark's boot server offers metalprobe (the discovery ignition names
        // it).
        checked(
            Command::new(&cargo)
                .args(["build", "--quiet", "--release", "-p", "metalprobe"])
                .current_dir(&root),
        )?;
    }
    for (_, heading, args) in benches {
        step(format_args!("benchmark: cargo {}", args.join(" ")));
        let section = output(Command::new(&cargo).args(*args).current_dir(&root))?;
        let mut section = section.trim().to_owned();
        let _ = write!(section, "\n\n{}\n", machine());
        document = replace_section(&document, heading, &section);
        println!("{section}");
    }
    if wanted(Step::Image) {
        step("benchmark: the operator image (cargo xtask image)");
        image::build_binaries()?;
        let built = image::assemble(
            &image::Sources::release(&root),
            &image::default_archive(&root),
        )?;
        let section = image_section(&built)?;
        document = replace_section(&document, IMAGE_HEADING, &section);
        println!("{section}");
    }
    if wanted(Step::FleetView) {
        step(
            "benchmark: the fleet view in headless Chromium (1000 simulated, 10,000 synthetic servers)",
        );
        setup::all()?;
        let run = Command::new(&cargo)
            .args([
                "test",
                "--release",
                "-p",
                "ferrometal",
                "--test",
                "ui",
                "--",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("FERROMETAL_UI_SERVERS", "1000")
            .current_dir(&root)
            .output()
            .context("run the fleet view tests")?;
        let printed = String::from_utf8_lossy(&run.stderr);
        if !run.status.success() {
            anyhow::bail!("the fleet view tests failed:\n{printed}");
        }
        let section = fleet_view_section(&printed)?;
        document = replace_section(&document, FLEET_VIEW_HEADING, &section);
        println!("{section}");
    }
    std::fs::write(&path, document).with_context(|| format!("write {}", path.display()))?;
    step(format_args!("results written to {}", path.display()));
    Ok(())
}

/// The fleet view's section, from the `FLEET-VIEW-FIGURES {json}` lines host/tests/ui.rs
/// prints.
fn fleet_view_section(printed: &str) -> anyhow::Result<String> {
    let mut section = format!("{FLEET_VIEW_HEADING}\n\n");
    section.push_str(
        "`FERROMETAL_UI_SERVERS=1000 cargo test --release -p ferrometal --test ui` (headless \
         Chromium through chromedriver on the same 2 cores as everything else; the 1000 are a \
         simulated fleet discovered by `ferrometal run`, the 10,000 are synthetic caches \
         served by the same code, 1 % of them changing state every 0.5 s). First render: from \
         the page's navigation start to the first fleet drawn. Update: applying one message \
         and redrawing counts, racks and list.\n\n",
    );
    section.push_str(
        "| Servers | Source | First render | Whole fleet on the page | Largest update | Updates applied | Page weight | First fleet document |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut rows = 0;
    for line in printed.lines() {
        let Some(json) = line.strip_prefix("FLEET-VIEW-FIGURES ") else {
            continue;
        };
        let figures: serde_json::Value =
            serde_json::from_str(json).context("parse the fleet view's figures")?;
        let ms = |key: &str| {
            figures[key]
                .as_f64()
                .map_or_else(|| String::from("–"), |v| format!("{v:.0} ms"))
        };
        let kib = |key: &str| {
            figures[key]
                .as_f64()
                .map_or_else(|| String::from("–"), |v| format!("{:.0} KiB", v / 1024.0))
        };
        let _ = writeln!(
            section,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            figures["servers"],
            figures["source"].as_str().unwrap_or_default(),
            ms("firstRenderMs"),
            figures["wholeFleetS"]
                .as_f64()
                .map_or_else(|| String::from("–"), |v| format!("{v:.1} s")),
            ms("maxUpdateMs"),
            figures["updates"],
            kib("weightBytes"),
            kib("fleetDocumentBytes"),
        );
        rows += 1;
    }
    if rows == 0 {
        anyhow::bail!("the fleet view tests printed no figures");
    }
    let _ = write!(section, "\n{}\n", machine());
    Ok(section)
}

/// The operator image's section: its size, compressed and not, and what it is made of.
fn image_section(built: &image::Built) -> anyhow::Result<String> {
    let image = &built.image;
    let mut section = format!("{IMAGE_HEADING}\n\n");
    let _ = writeln!(
        section,
        "`cargo xtask image` (release build; no container engine and no base image: the \
         binaries, the plugins, exactly the shared libraries the binaries load, Debian's CA \
         bundle and a non-root user in one reproducible layer; gzip level {})\n",
        image::GZIP_LEVEL
    );
    section.push_str("| Part | Files | Size | gzip-compressed on its own |\n|---|---|---|---|\n");
    for part in &built.parts {
        let names: Vec<&str> = part
            .files
            .iter()
            .map(|path| path.rsplit('/').next().unwrap_or(path))
            .collect();
        let _ = writeln!(
            section,
            "| {} | {} | {} | {} |",
            part.part.label(),
            names.join(", "),
            image::size(part.bytes),
            image::size(part.compressed_alone)
        );
    }
    let _ = writeln!(
        section,
        "| **image, uncompressed** (the layer's tar, {} entries) | | **{}** | |",
        built.entries,
        image::size(image.layer_tar.len() as u64)
    );
    let _ = writeln!(
        section,
        "| **image, compressed** (layer, config and manifest: what a pull transfers) | | **{}** | |",
        image::size(image.compressed_size())
    );
    let _ = write!(
        section,
        "\n`{}` of this build: `{}` (the same binaries and plugins give the same digest). \
         Built with {} on {}.\n",
        image.name,
        image.digest(),
        output(Command::new("rustc").arg("--version"))?.trim(),
        build_host()
    );
    Ok(section)
}

/// The host's distribution and glibc, where the image's libraries come from.
fn build_host() -> String {
    let distribution = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|release| {
            release.lines().find_map(|line| {
                line.strip_prefix("PRETTY_NAME=")
                    .map(|name| name.trim_matches('"').to_owned())
            })
        })
        .unwrap_or_else(|| String::from("an unknown distribution"));
    let glibc = output(Command::new("getconf").arg("GNU_LIBC_VERSION"))
        .map(|version| version.trim().to_owned())
        .unwrap_or_else(|_| String::from("an unknown glibc"));
    format!("{distribution}, {glibc}")
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
