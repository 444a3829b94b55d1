//! `ferrometal plugin build`: a plugin crate as a `wasm32-wasip2` component, built with
//! Debian's wasm toolchain exactly as `cargo xtask plugins` builds the bundled plugins.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};
use clap::Args;
use ferrometal_plugin_build::{Build, Toolchain, component_path, socket_symbol};
use serde::Deserialize;

/// Arguments of `ferrometal plugin build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The plugin crate's `Cargo.toml` (default: `./Cargo.toml`).
    #[arg(long, default_value = "Cargo.toml")]
    manifest_path: PathBuf,
    /// Build with the release profile (smaller, faster components; what to install in the
    /// operator).
    #[arg(long)]
    release: bool,
    /// Target directory of wasm builds (default: `wasm` in the crate's target directory);
    /// kept apart from native builds, and its std build is reused by later builds.
    #[arg(long, env = "FERROMETAL_PLUGIN_TARGET_DIR")]
    target_dir: Option<PathBuf>,
}

/// What `cargo metadata --no-deps` says about the crate.
#[derive(Debug, Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    workspace_root: PathBuf,
    target_directory: PathBuf,
}

#[derive(Debug, Deserialize)]
struct Package {
    name: String,
    manifest_path: PathBuf,
    targets: Vec<Target>,
}

#[derive(Debug, Deserialize)]
struct Target {
    name: String,
    crate_types: Vec<String>,
}

impl Metadata {
    /// The `cdylib` library names of the package at `manifest` (or of every package when
    /// `manifest` is a workspace's without a package of its own).
    fn components(&self, manifest: &Path) -> anyhow::Result<Vec<String>> {
        let own: Vec<&Package> = self
            .packages
            .iter()
            .filter(|package| package.manifest_path == manifest)
            .collect();
        let packages = if own.is_empty() {
            self.packages.iter().collect()
        } else {
            own
        };
        let names: Vec<String> = packages
            .iter()
            .flat_map(|package| &package.targets)
            .filter(|target| target.crate_types.iter().any(|kind| kind == "cdylib"))
            .map(|target| target.name.clone())
            .collect();
        if names.is_empty() {
            let crates: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
            bail!(
                "{} builds no component: add `[lib] crate-type = [\"cdylib\"]` to {} (`ferrometal plugin new` writes it)",
                crates.join(", "),
                manifest.display()
            );
        }
        Ok(names)
    }
}

/// Builds the crate and prints the path of each component it made.
pub fn build(args: &BuildArgs) -> anyhow::Result<()> {
    let toolchain = Toolchain::locate()?;
    let manifest = args
        .manifest_path
        .canonicalize()
        .with_context(|| format!("no plugin crate at {}", args.manifest_path.display()))?;
    let metadata = metadata(&toolchain, &manifest)?;
    let components = metadata.components(&manifest)?;
    let target_dir = args
        .target_dir
        .clone()
        .unwrap_or_else(|| metadata.target_directory.join("wasm"));
    std::fs::create_dir_all(&target_dir)
        .with_context(|| format!("create {}", target_dir.display()))?;
    let lockfile = wasm_lockfile(&target_dir, &metadata.workspace_root)?;
    eprintln!(
        "building {} for wasm32-wasip2 with Debian's toolchain (the first build in {} also compiles std: 1–3 minutes)",
        components.join(", "),
        target_dir.display()
    );
    run_cargo(toolchain.build(&Build {
        manifest: &manifest,
        target_dir: &target_dir,
        release: args.release,
        lockfile: Some(&lockfile),
    }))?;
    for name in &components {
        let path = component_path(&target_dir, args.release, name);
        if !path.is_file() {
            bail!("the build succeeded but left no {}", path.display());
        }
        println!("{}", path.display());
    }
    eprintln!("next: ferrometal plugin inspect <the .wasm above>");
    Ok(())
}

/// The lockfile of the wasm build: its own, seeded from the crate's `Cargo.lock` before each
/// build, so Debian's cargo (another version than the native one) never rewrites the lockfile
/// the native `cargo test` uses, yet builds the versions it pins. One per crate, so crates
/// sharing a target directory do not share it.
fn wasm_lockfile(target_dir: &Path, workspace_root: &Path) -> anyhow::Result<PathBuf> {
    use sha2::Digest as _;
    let key = hex::encode(sha2::Sha256::digest(
        workspace_root.as_os_str().as_encoded_bytes(),
    ));
    let dir = std::path::absolute(target_dir.join("lockfiles").join(&key[..16]))?;
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let lockfile = dir.join("Cargo.lock");
    let crate_lock = workspace_root.join("Cargo.lock");
    if crate_lock.is_file() {
        std::fs::copy(&crate_lock, &lockfile)
            .with_context(|| format!("copy {} to {}", crate_lock.display(), lockfile.display()))?;
    }
    Ok(lockfile)
}

fn metadata(toolchain: &Toolchain, manifest: &Path) -> anyhow::Result<Metadata> {
    let output = toolchain
        .cargo()
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(manifest)
        .output()
        .context("run Debian's cargo (/usr/bin/cargo)")?;
    if !output.status.success() {
        bail!(
            "cannot read {}: {}",
            manifest.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    serde_json::from_slice(&output.stdout).context("parse `cargo metadata` output")
}

/// Runs the build with its output passed through, and explains the failures a plugin author
/// can fix.
fn run_cargo(mut command: std::process::Command) -> anyhow::Result<()> {
    let mut child = command
        .stderr(Stdio::piped())
        .spawn()
        .context("run Debian's cargo (/usr/bin/cargo)")?;
    let mut sockets: Vec<String> = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        let mut ours = std::io::stderr().lock();
        for line in BufReader::new(stderr).lines() {
            let line = line.context("read cargo's output")?;
            if let Some(symbol) = socket_symbol(&line)
                && !sockets.iter().any(|seen| seen == symbol)
            {
                sockets.push(symbol.to_owned());
            }
            // The terminal may be gone; the build goes on regardless.
            let _ = writeln!(ours, "{line}");
        }
    }
    let status = child.wait().context("wait for cargo")?;
    if status.success() {
        return Ok(());
    }
    if !sockets.is_empty() {
        bail!(
            "the plugin (or a dependency) opens sockets itself (it calls {}, e.g. through std::net): plugins get no sockets; a driver reaches its BMC through `target.http()` (bmc-http), see docs/plugins.md \"Capabilities\"",
            sockets.join(", ")
        );
    }
    bail!("the wasm build failed ({status}); cargo's messages are above")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(json: &str) -> Metadata {
        serde_json::from_str(json).expect("metadata")
    }

    const TWO_PACKAGES: &str = r#"{
        "packages": [
            {"name": "my-driver", "manifest_path": "/w/my-driver/Cargo.toml",
             "targets": [{"name": "my_driver", "crate_types": ["cdylib"]}]},
            {"name": "helpers", "manifest_path": "/w/helpers/Cargo.toml",
             "targets": [{"name": "helpers", "crate_types": ["lib"]}]}
        ],
        "workspace_root": "/w", "target_directory": "/w/target"
    }"#;

    #[test]
    fn the_component_of_the_named_crate_is_built() {
        let metadata = metadata(TWO_PACKAGES);
        assert_eq!(
            metadata
                .components(Path::new("/w/my-driver/Cargo.toml"))
                .expect("components"),
            ["my_driver"]
        );
        // A workspace manifest without a package of its own builds every component.
        assert_eq!(
            metadata
                .components(Path::new("/w/Cargo.toml"))
                .expect("components"),
            ["my_driver"]
        );
    }

    #[test]
    fn a_crate_that_is_not_a_cdylib_is_refused_with_the_fix() {
        let error = metadata(TWO_PACKAGES)
            .components(Path::new("/w/helpers/Cargo.toml"))
            .expect_err("no component");
        assert!(
            error.to_string().contains("crate-type = [\"cdylib\"]"),
            "{error}"
        );
    }
}
