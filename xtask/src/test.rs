//! `make test`: set-up, plugin build, the operator image, formatting, lints, then every test.
//!
//! The test runner goes last so that CI output ends with its summary lines.

use std::process::Command;

use testenv::tools;

use crate::run::{checked, checked_last, checked_with_retries, step};
use crate::{fuzz, image, plugins, setup};

/// Seconds each fuzz target runs in `make test` (`make fuzz` runs them for a minute each).
const FUZZ_SECONDS: u32 = 5;

/// Runs the whole suite; `cargo_test_args` are appended to the final `cargo test`.
pub fn run(cargo_test_args: &[String]) -> anyhow::Result<()> {
    setup::all()?;
    plugins::build()?;
    // The operator image the cluster tests install with the chart (host/tests/cluster.rs):
    // the release binaries and the plugins, as target/image/ferrometal-<version>.oci.tar.
    image::run(&image::ImageArgs {
        out: None,
        push: None,
        plain_http: false,
    })?;
    let root = tools::workspace_root();
    let plugins_manifest = root.join("plugins").join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    step("downloading crates");
    checked_with_retries(|| {
        let mut fetch = Command::new(&cargo);
        fetch.arg("fetch").current_dir(&root);
        fetch
    })?;

    step("rustfmt --check");
    checked(
        Command::new(&cargo)
            .args(["fmt", "--all", "--check"])
            .current_dir(&root),
    )?;
    checked(
        Command::new(&cargo)
            .args(["fmt", "--all", "--check", "--manifest-path"])
            .arg(&plugins_manifest),
    )?;
    checked(
        Command::new(&cargo)
            .args(["fmt", "--all", "--check", "--manifest-path"])
            .arg(root.join("fuzz").join("Cargo.toml")),
    )?;

    step("clippy -D warnings");
    checked(
        Command::new(&cargo)
            .args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--quiet",
                "--",
                "-D",
                "warnings",
            ])
            .current_dir(&root),
    )?;
    // The SDK's worlds are features; check and test all of them (the workspace build
    // compiles it without any).
    checked(
        Command::new(&cargo)
            .args([
                "clippy",
                "-p",
                "ferrometal-plugin-sdk",
                "--all-features",
                "--all-targets",
                "--quiet",
                "--",
                "-D",
                "warnings",
            ])
            .current_dir(&root),
    )?;
    // Plugins compile natively too (their logic is unit-tested that way).
    let native_plugins_target = root.join("target").join("plugins-native");
    checked(
        Command::new(&cargo)
            .args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--quiet",
                "--manifest-path",
            ])
            .arg(&plugins_manifest)
            .arg("--target-dir")
            .arg(&native_plugins_target)
            .args(["--", "-D", "warnings"]),
    )?;

    step("plugin SDK, plugin and plugin-guide unit tests (native)");
    checked(
        Command::new(&cargo)
            .args([
                "test",
                "-p",
                "ferrometal-plugin-sdk",
                "--all-features",
                "--quiet",
            ])
            .current_dir(&root),
    )?;
    checked(
        Command::new(&cargo)
            .args(["test", "--workspace", "--quiet", "--manifest-path"])
            .arg(&plugins_manifest)
            .arg("--target-dir")
            .arg(&native_plugins_target),
    )?;
    // docs/plugins.md's step 7: the tutorial crate's own unit test, natively.
    checked(
        Command::new(&cargo)
            .args(["test", "--quiet", "--manifest-path"])
            .arg(plugins::tutorial_manifest(&root))
            .arg("--target-dir")
            .arg(&native_plugins_target),
    )?;

    // The short form of `make fuzz`: every target builds and survives a few seconds.
    fuzz::run(FUZZ_SECONDS, None, false)?;

    step("unit, integration and end-to-end tests");
    checked_last(
        Command::new(&cargo)
            .args(["test", "--workspace", "--no-fail-fast"])
            .args(cargo_test_args)
            .current_dir(&root),
    )
}
