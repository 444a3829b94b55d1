//! Developer automation behind the Makefile.
//!
//! `cargo xtask <command>`; every command installs what it needs first, idempotently, with
//! each tool cached under a versioned directory (see `testenv::tools`).

mod bench;
mod chaos;
mod demo;
mod fuzz;
mod image;
mod plugin_setup;
mod plugins;
mod run;
mod setup;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ferrometal developer tasks.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install everything the tests and the demo need (Debian's wasm toolchain, sushy-tools,
    /// kube-apiserver, etcd, kubectl and helm built from Go modules, and the test node's
    /// kubelet, kube-scheduler, kube-proxy, pause program, containerd, runc and CNI plugins).
    /// Cached; re-runs are fast.
    Setup,
    /// Build every plugin and test-fixture component for wasm32-wasip2 into target/components.
    Plugins,
    /// Install only what a plugin author needs (Debian's wasm toolchain, the component linker,
    /// sushy-tools) and build only the `ferrometal` CLI. Cached; re-runs are fast.
    PluginSetup,
    /// Set up, build plugins, then run rustfmt, clippy, unit and integration tests.
    Test {
        /// Extra arguments passed to `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cargo_test_args: Vec<String>,
    },
    /// Start a local control plane, an OCI registry, a simulated fleet and `ferrometal run`;
    /// show the fleet reaching Available, then keep everything running until Ctrl-C.
    Demo(demo::DemoArgs),
    /// Run the benchmarks (release build) and write the results into BENCHMARKS.md.
    Bench(bench::BenchArgs),
    /// Build the operator image without a container engine or base image: the release
    /// binaries, the plugins, the shared libraries they load, the CA bundle and a non-root
    /// user in one reproducible layer, as an OCI layout and archive under target/image that
    /// `ctr -n k8s.io images import` names as the chart expects; optionally push it.
    Image(image::ImageArgs),
    /// Run the kill campaign's long form (a simulated fleet discovered while the operator,
    /// kube-apiserver and etcd are killed and restarted and the OCI registry is down) and
    /// write its figures into RELIABILITY.md.
    Chaos(chaos::ChaosArgs),
    /// Run every fuzz target (cargo-fuzz, libFuzzer) for a set time; fails on a crash. The
    /// figures go into RELIABILITY.md.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u32,
        /// Run only this target.
        #[arg(long)]
        target: Option<String>,
    },
    /// Build the discovery OS image (Debian kernel + initramfs with busybox, the virtio
    /// modules and ferrometal-ignite, and both as a UKI for UEFI HTTP boot) into
    /// target/discovery-image.
    DiscoveryImage,
}

/// Prints a failure as one readable line (the error and its causes), without the backtrace
/// that `RUST_BACKTRACE` would add, so the reason is the last thing a CI log shows.
fn main() -> ExitCode {
    match dispatch(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Setup => setup::all(),
        // Installs Debian's wasm toolchain itself when it is missing.
        Command::Plugins => plugins::build(),
        Command::PluginSetup => plugin_setup::run(),
        Command::Test { cargo_test_args } => test::run(&cargo_test_args),
        Command::Demo(args) => demo::run(&args),
        Command::DiscoveryImage => {
            setup::test_services()?;
            discovery_image()
        }
        // bench::run sets up (wrk included) and builds the plugins itself.
        Command::Bench(args) => bench::run(&args),
        Command::Image(args) => image::run(&args),
        Command::Chaos(args) => chaos::run(&args),
        Command::Fuzz { seconds, target } => fuzz::run(seconds, target.as_deref(), true),
    }
}

/// Builds the workspace binaries the image holds, then the image.
fn discovery_image() -> anyhow::Result<()> {
    run::checked(std::process::Command::new("cargo").args([
        "build",
        "--quiet",
        "-p",
        "metalprobe",
        "--bins",
    ]))?;
    let dir = testenv::tools::workspace_root().join("target/discovery-image");
    let image = testenv::discovery_image::build(&dir)?;
    run::step(format_args!(
        "discovery image: kernel {} ({}), initramfs {} ({} KiB), UKI {} ({} KiB), metalprobe {}",
        image.kernel.display(),
        image.kernel_release,
        image.initramfs.display(),
        std::fs::metadata(&image.initramfs).map_or(0, |m| m.len() / 1024),
        image.uki.display(),
        std::fs::metadata(&image.uki).map_or(0, |m| m.len() / 1024),
        image.metalprobe.display()
    ));
    Ok(())
}
