//! Installs and caches every external program the tests and the demo run.
//!
//! Each step first checks whether its result is already there and does nothing if so, so a
//! second `make test` spends no time here. Go binaries are built in a temporary directory and
//! renamed into place only when complete, so an interrupted build is redone, never half-used.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use testenv::tools;

use crate::run::{checked, checked_with_retries, note, on_path, output, step};

/// Debian packages that provide a Rust toolchain able to build wasm32-wasip2 components
/// (rustup cannot add targets on these machines; see docs/development.md).
pub use ferrometal_plugin_build::DEBIAN_PACKAGES as WASM_PACKAGES;

/// Runs every set-up step.
pub fn all() -> anyhow::Result<()> {
    let started = Instant::now();
    debian_wasm_toolchain()?;
    test_services()?;
    node_runtime()?;
    browser()?;
    sushy_tools()?;
    kubernetes()?;
    pause()?;
    etcd()?;
    helm()?;
    ignition_validate()?;
    cosign()?;
    promtool()?;
    step(format_args!(
        "set-up complete in {:.0}s; tools cached under {}",
        started.elapsed().as_secs_f64(),
        tools::cache_dir().display()
    ));
    Ok(())
}

/// Installs with apt those of `packages` that are missing, saying so as `what`.
fn debian_packages(what: &str, packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|package| !dpkg_installed(package))
        .collect();
    if missing.is_empty() {
        step(format_args!("{what} ({}): installed", packages.join(", ")));
        return Ok(());
    }
    step(format_args!(
        "{what}: installing {} with apt",
        missing.join(" ")
    ));
    apt_install(&missing)
}

/// Installs Debian's Rust toolchain for wasm components with apt, if any package is missing.
pub fn debian_wasm_toolchain() -> anyhow::Result<()> {
    debian_packages("Debian wasm toolchain", WASM_PACKAGES)
}

/// Installs the Debian packages tests run for real ([`tools::TEST_PACKAGES`]): the OCI
/// registry the boot-server tests and the demo push images to, lldpd (metalprobe's LLDP
/// source), busybox (udhcpc, the DHCP test client), QEMU with iPXE and OVMF for the real-boot
/// VMs, and systemd-stub + objcopy for the discovery image's UKI.
pub fn test_services() -> anyhow::Result<()> {
    debian_packages("test services", tools::TEST_PACKAGES)
}

/// Installs the test node's runtime from Debian (containerd, runc, the CNI plugins,
/// iptables), if any package is missing.
pub fn node_runtime() -> anyhow::Result<()> {
    debian_packages("node runtime", tools::NODE_PACKAGES)
}

/// Installs the browser the fleet view's tests drive (Debian's Chromium and chromedriver),
/// if missing.
pub fn browser() -> anyhow::Result<()> {
    debian_packages("browser", &["chromium", "chromium-driver"])
}

/// Builds the node's pause program ([`tools::PAUSE_SOURCE`]) as a static executable with
/// gcc, unless this revision is cached.
pub fn pause() -> anyhow::Result<()> {
    let tool = tools::pause();
    if tool.is_installed() {
        step(format_args!("pause v{}: cached", tools::PAUSE_VERSION));
        return Ok(());
    }
    step(format_args!(
        "pause v{}: building with gcc -static",
        tools::PAUSE_VERSION
    ));
    if !on_path("gcc") {
        bail!(
            "gcc is needed to build the node's pause program; install it (`apt-get install gcc libc6-dev`) and retry"
        );
    }
    let dest = tools::pause_bin_dir();
    let staging = dest.with_extension("partial");
    if staging.exists() {
        fs::remove_dir_all(&staging).with_context(|| format!("remove {}", staging.display()))?;
    }
    fs::create_dir_all(&staging).with_context(|| format!("create {}", staging.display()))?;
    let source = staging.join("pause.c");
    fs::write(&source, tools::PAUSE_SOURCE)
        .with_context(|| format!("write {}", source.display()))?;
    checked(
        Command::new("gcc")
            .args(["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-s", "-o"])
            .arg(staging.join("pause"))
            .arg(&source),
    )?;
    if dest.exists() {
        fs::remove_dir_all(&dest).with_context(|| format!("remove {}", dest.display()))?;
    }
    fs::rename(&staging, &dest)
        .with_context(|| format!("move {} to {}", staging.display(), dest.display()))
}

/// The cargo-fuzz release `make fuzz` uses.
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Installs cargo-fuzz (from crates.io, into ~/.cargo/bin) unless this version is there.
pub fn cargo_fuzz() -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let installed = Command::new(&cargo)
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(CARGO_FUZZ_VERSION));
    if installed {
        step(format_args!("cargo-fuzz {CARGO_FUZZ_VERSION}: installed"));
        return Ok(());
    }
    step(format_args!(
        "cargo-fuzz {CARGO_FUZZ_VERSION}: installing with cargo install"
    ));
    checked_with_retries(|| {
        let mut install = Command::new(&cargo);
        install.args([
            "install",
            "--locked",
            "--quiet",
            "cargo-fuzz",
            "--version",
            CARGO_FUZZ_VERSION,
        ]);
        install
    })
}

/// Installs wrk, the load generator of the boot-server benchmark.
pub fn wrk() -> anyhow::Result<()> {
    if dpkg_installed("wrk") {
        step("wrk: installed");
        return Ok(());
    }
    step("wrk: installing with apt");
    apt_install(&["wrk"])
}

/// Where [`promtool`] keeps Prometheus's rule checker (host/tests/monitoring.rs runs it from
/// there).
pub fn promtool_path() -> PathBuf {
    tools::cache_dir()
        .join("bin")
        .join("promtool")
        .join("promtool")
}

/// Takes promtool, which checks and unit-tests the chart's alert rules, out of Debian's
/// `prometheus` package, unless it is cached. The package is downloaded and unpacked, never
/// installed: installing it would also install the Prometheus server as a service that
/// systemd or init starts and enables on its own, and add a `prometheus` user.
pub fn promtool() -> anyhow::Result<()> {
    let path = promtool_path();
    if path.is_file() {
        step("promtool (Debian package prometheus): cached");
        return Ok(());
    }
    step("promtool: unpacking it from Debian's prometheus package (downloaded, not installed)");
    let dest = path
        .parent()
        .context("promtool's path has a directory")?
        .to_path_buf();
    let staging = dest.with_extension("partial");
    if staging.exists() {
        fs::remove_dir_all(&staging).with_context(|| format!("remove {}", staging.display()))?;
    }
    fs::create_dir_all(&staging).with_context(|| format!("create {}", staging.display()))?;
    let download = || {
        let mut download = Command::new("apt-get");
        download
            .args(["download", "-qq", "prometheus"])
            .current_dir(&staging);
        download
    };
    if checked(&mut download()).is_err() {
        // No package lists (a fresh machine, or an image that removed them): `apt_install`
        // of nothing updates them, as root.
        apt_install(&[])?;
        checked_with_retries(download)?;
    }
    let package = fs::read_dir(&staging)
        .with_context(|| format!("read {}", staging.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|file| file.extension().is_some_and(|extension| extension == "deb"))
        .context("apt-get download left no prometheus .deb")?;
    let unpacked = staging.join("package");
    checked(
        Command::new("dpkg-deb")
            .arg("--extract")
            .arg(&package)
            .arg(&unpacked),
    )?;
    fs::rename(unpacked.join("usr/bin/promtool"), staging.join("promtool"))
        .context("the prometheus package holds usr/bin/promtool")?;
    fs::remove_dir_all(&unpacked).with_context(|| format!("remove {}", unpacked.display()))?;
    fs::remove_file(&package).with_context(|| format!("remove {}", package.display()))?;
    note(
        output(Command::new(staging.join("promtool")).arg("--version"))?
            .lines()
            .next()
            .unwrap_or_default(),
    );
    if dest.exists() {
        fs::remove_dir_all(&dest).with_context(|| format!("remove {}", dest.display()))?;
    }
    fs::rename(&staging, &dest)
        .with_context(|| format!("move {} to {}", staging.display(), dest.display()))
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    // apt-get itself as root, through sudo otherwise.
    let prefix: &[&str] = if rustix::process::geteuid().is_root() {
        &["apt-get"]
    } else if on_path("sudo") {
        &["sudo", "apt-get"]
    } else {
        bail!(
            "installing {} needs root: run `sudo apt-get install -y {}` and retry",
            packages.join(" "),
            packages.join(" ")
        );
    };
    let apt = |args: &[&str]| {
        checked_with_retries(|| {
            let mut command = Command::new(prefix[0]);
            command
                .args(&prefix[1..])
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive");
            command
        })
    };
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend_from_slice(packages);
    apt(&args)
}

/// Creates the Python virtual environment with sushy-tools from PyPI.
///
/// A venv's scripts name its path in their shebang lines, so it is built where it lives; a
/// stamp file written last marks it complete, and an incomplete one is rebuilt.
pub fn sushy_tools() -> anyhow::Result<()> {
    let venv = tools::sushy_venv_dir();
    let stamp = venv.join(".complete");
    if stamp.is_file() && tools::sushy_emulator().is_installed() {
        step(format_args!(
            "sushy-tools {}: cached",
            tools::SUSHY_TOOLS_VERSION
        ));
        return Ok(());
    }
    step(format_args!(
        "sushy-tools {}: installing from PyPI into {}",
        tools::SUSHY_TOOLS_VERSION,
        venv.display()
    ));
    if venv.exists() {
        fs::remove_dir_all(&venv).with_context(|| format!("remove {}", venv.display()))?;
    }
    let python = if on_path("python3") {
        "python3"
    } else {
        "python"
    };
    checked(Command::new(python).args(["-m", "venv"]).arg(&venv))?;
    checked_with_retries(|| {
        let mut pip = Command::new(venv.join("bin").join("pip"));
        pip.args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("sushy-tools=={}", tools::SUSHY_TOOLS_VERSION));
        pip
    })?;
    fs::write(&stamp, tools::SUSHY_TOOLS_VERSION)
        .with_context(|| format!("write {}", stamp.display()))?;
    Ok(())
}

/// The programs [`kubernetes`] builds from `k8s.io/kubernetes/cmd/<name>`.
const KUBERNETES_COMMANDS: [&str; 6] = [
    "kube-apiserver",
    "kubectl",
    "kube-controller-manager",
    "kubelet",
    "kube-scheduler",
    "kube-proxy",
];

/// Builds kube-apiserver, kubectl, kube-controller-manager and the node's kubelet,
/// kube-scheduler and kube-proxy from the `k8s.io/kubernetes` Go module.
pub fn kubernetes() -> anyhow::Result<()> {
    let version = tools::KUBERNETES_VERSION;
    let names = KUBERNETES_COMMANDS.join(" + ");
    let cached = [
        tools::kube_apiserver(),
        tools::kubectl(),
        tools::kube_controller_manager(),
        tools::kubelet(),
        tools::kube_scheduler(),
        tools::kube_proxy(),
    ]
    .iter()
    .all(tools::Tool::is_installed);
    if cached {
        step(format_args!("{names} v{version}: cached"));
        return Ok(());
    }
    step(format_args!(
        "{names} v{version}: building from Go modules (first run only; about 5–15 minutes)"
    ));
    let work = go_workspace(&format!("kubernetes-v{version}"))?;
    // k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
    // directories of its own repository; point each at its published v0.x release instead.
    let info = output(
        Command::new("go")
            .args(["mod", "download", "-json"])
            .arg(format!("k8s.io/kubernetes@v{version}"))
            .current_dir(&work),
    )?;
    let info: serde_json::Value =
        serde_json::from_str(&info).context("parse `go mod download -json` output")?;
    let go_mod = info["GoMod"]
        .as_str()
        .context("`go mod download -json` printed no GoMod path")?;
    let go_mod = fs::read_to_string(go_mod).with_context(|| format!("read {go_mod}"))?;
    let minor = version.split('.').skip(1).collect::<Vec<_>>().join(".");
    let mut edit = Command::new("go");
    edit.args(["mod", "edit"]).current_dir(&work);
    for module in staging_modules(&go_mod) {
        edit.arg(format!("-replace={module}={module}@v0.{minor}"));
    }
    checked(&mut edit)?;
    checked_with_retries(|| {
        let mut get = Command::new("go");
        get.args(["get", "-tool"])
            .args(
                KUBERNETES_COMMANDS
                    .iter()
                    .map(|name| format!("k8s.io/kubernetes/cmd/{name}@v{version}")),
            )
            .current_dir(&work);
        get
    })?;
    let major_minor: Vec<&str> = version.split('.').collect();
    let ldflags = format!(
        "-s -w -X k8s.io/component-base/version.gitVersion=v{version} -X k8s.io/component-base/version.gitMajor={} -X k8s.io/component-base/version.gitMinor={}",
        major_minor.first().copied().unwrap_or("1"),
        major_minor.get(1).copied().unwrap_or("0"),
    );
    let packages: Vec<String> = KUBERNETES_COMMANDS
        .iter()
        .map(|name| format!("k8s.io/kubernetes/cmd/{name}"))
        .collect();
    let binaries: Vec<(&str, &str)> = KUBERNETES_COMMANDS
        .iter()
        .copied()
        .zip(packages.iter().map(String::as_str))
        .collect();
    install_go_binaries(&work, &tools::kubernetes_bin_dir(), &binaries, &ldflags)
}

/// The module paths that a `k8s.io/kubernetes` go.mod replaces with `./staging/…`.
fn staging_modules(go_mod: &str) -> Vec<&str> {
    go_mod
        .lines()
        .filter(|line| line.contains("=> ./staging/"))
        .filter_map(|line| line.split_whitespace().next())
        .collect()
}

/// Builds etcd from `go.etcd.io/etcd/server/v3` (its go.mod has replace lines, so it is built
/// from a wrapper module rather than with `go install`).
pub fn etcd() -> anyhow::Result<()> {
    single_go_binary(
        &tools::etcd(),
        &tools::etcd_bin_dir(),
        "go.etcd.io/etcd/server/v3",
        "-s -w".to_owned(),
    )
}

/// Builds helm from `helm.sh/helm/v3`.
pub fn helm() -> anyhow::Result<()> {
    let version = tools::HELM_VERSION;
    single_go_binary(
        &tools::helm(),
        &tools::helm_bin_dir(),
        "helm.sh/helm/v3/cmd/helm",
        format!("-s -w -X helm.sh/helm/v3/internal/version.version=v{version}"),
    )
}

/// Builds sigstore's cosign from `github.com/sigstore/cosign/v2` (the plugin-signature tests
/// sign with it and check that it accepts what ferrometal accepts).
pub fn cosign() -> anyhow::Result<()> {
    let version = tools::COSIGN_VERSION;
    single_go_binary(
        &tools::cosign(),
        &tools::cosign_bin_dir(),
        "github.com/sigstore/cosign/v2/cmd/cosign",
        format!("-s -w -X sigs.k8s.io/release-utils/version.gitVersion=v{version}"),
    )
}

/// Builds CoreOS Ignition's validator (`github.com/coreos/ignition/v2/validate`).
pub fn ignition_validate() -> anyhow::Result<()> {
    single_go_binary(
        &tools::ignition_validate(),
        &tools::ignition_bin_dir(),
        "github.com/coreos/ignition/v2/validate",
        "-s -w".to_owned(),
    )
}

/// Builds `tool` from Go package `package` at the tool's version, unless it is cached.
fn single_go_binary(
    tool: &tools::Tool,
    dest: &Path,
    package: &str,
    ldflags: String,
) -> anyhow::Result<()> {
    let (name, version) = (tool.name, tool.version);
    if tool.is_installed() {
        step(format_args!("{name} v{version}: cached"));
        return Ok(());
    }
    step(format_args!(
        "{name} v{version}: building from Go modules (first run only; about 1–3 minutes)"
    ));
    let work = go_workspace(&format!("{name}-v{version}"))?;
    checked_with_retries(|| {
        let mut get = Command::new("go");
        get.args(["get", "-tool"])
            .arg(format!("{package}@v{version}"))
            .current_dir(&work);
        get
    })?;
    install_go_binaries(&work, dest, &[(name, package)], &ldflags)
}

/// A fresh wrapper Go module under the cache's build directory.
fn go_workspace(name: &str) -> anyhow::Result<PathBuf> {
    if !on_path("go") {
        bail!(
            "the Go toolchain is needed to build {name}; install Go (e.g. `apt-get install golang`) and retry"
        );
    }
    let work = tools::cache_dir().join("build").join(name);
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("remove {}", work.display()))?;
    }
    fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    checked(
        Command::new("go")
            .args(["mod", "init", &format!("local/{}", name.replace('.', "_"))])
            .current_dir(&work),
    )?;
    Ok(work)
}

/// Builds each `(binary, package)` statically into a temporary directory, then renames it to
/// `dest` in one step.
fn install_go_binaries(
    work: &Path,
    dest: &Path,
    binaries: &[(&str, &str)],
    ldflags: &str,
) -> anyhow::Result<()> {
    let staging = dest.with_extension("partial");
    if staging.exists() {
        fs::remove_dir_all(&staging).with_context(|| format!("remove {}", staging.display()))?;
    }
    fs::create_dir_all(&staging).with_context(|| format!("create {}", staging.display()))?;
    for (binary, package) in binaries {
        note(format_args!("go build {package}"));
        checked(
            Command::new("go")
                .args(["build", "-trimpath", "-ldflags", ldflags, "-o"])
                .arg(staging.join(binary))
                .arg(package)
                .env("CGO_ENABLED", "0")
                .current_dir(work),
        )?;
    }
    if dest.exists() {
        fs::remove_dir_all(dest).with_context(|| format!("remove {}", dest.display()))?;
    }
    fs::rename(&staging, dest)
        .with_context(|| format!("move {} to {}", staging.display(), dest.display()))?;
    fs::remove_dir_all(work).with_context(|| format!("remove {}", work.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_modules_are_read_from_replace_lines() {
        let go_mod = "module k8s.io/kubernetes\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\tk8s.io/kubectl => ./staging/src/k8s.io/kubectl\n)\nrequire k8s.io/utils v0.0.0\n";
        assert_eq!(
            staging_modules(go_mod),
            vec!["k8s.io/api", "k8s.io/kubectl"]
        );
    }
}
