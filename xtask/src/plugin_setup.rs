//! `make plugin-setup`: the plugin author's set-up. Only what writing, building and calling a
//! plugin needs: Debian's wasm toolchain and the component linker, sushy-tools (the guide
//! calls the first driver against `sushy-emulator`), and the `ferrometal` CLI. None of the
//! control plane, node, QEMU or browser that `make setup` installs for the tests.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use testenv::tools;

use crate::run::{checked, note, step};

/// Runs the plugin author's set-up steps; each is skipped when its result is already there.
pub fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    crate::setup::debian_wasm_toolchain()?;
    let linker = crate::plugins::component_linker()?;
    step(format_args!("component linker: {}", linker.display()));
    crate::setup::sushy_tools()?;
    step(
        "ferrometal CLI: cargo build -p ferrometal --bin ferrometal (the first build takes a few minutes)",
    );
    let root = tools::workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    checked(
        Command::new(cargo)
            .args(["build", "-p", "ferrometal", "--bin", "ferrometal"])
            .current_dir(&root),
    )?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bin = target.join("debug");
    step(format_args!(
        "plugin set-up complete in {:.0}s",
        started.elapsed().as_secs_f64()
    ));
    note(format_args!(
        "ferrometal: {}",
        bin.join("ferrometal").display()
    ));
    note(format_args!(
        "put it on PATH for this shell:  export PATH=\"{}:$PATH\"",
        bin.display()
    ));
    note(format_args!(
        "(or install a copy into ~/.cargo/bin:  cargo install --path {})",
        root.join("host").display()
    ));
    note(format_args!(
        "sushy-emulator: {}",
        tools::sushy_emulator().path.display()
    ));
    note(
        "next: ferrometal plugin new bmc-driver my-driver && cd my-driver && ferrometal plugin build",
    );
    Ok(())
}
