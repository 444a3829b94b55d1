//! Debian's Rust toolchain for wasm: what it consists of, and the cargo commands that build
//! with it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::TARGET;
use crate::linker::{COMPONENT_LINKER, COMPONENT_LINKER_VERSION, find_component_linker};

/// Debian's cargo, which drives Debian's rustc.
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
/// Where Debian's wasi-libc puts the wasm32 C library the std build links against.
pub const WASI_LIBDIR: &str = "/usr/lib/wasm32-wasi";
/// Where Debian's `lld-22` puts `wasm-ld`, which `wasm-component-ld` runs.
pub const LLD_BIN_DIR: &str = "/usr/lib/llvm-22/bin";

/// The Debian packages of the toolchain, each with a file it installs (how [`missing_packages`]
/// tells whether it is there without asking dpkg).
const PIECES: &[(&str, &str)] = &[
    ("rustc-web", "/usr/bin/rustc"),
    ("cargo-web", DEBIAN_CARGO),
    (
        "rust-web-src",
        "/usr/lib/rustlib/src/rust/library/Cargo.toml",
    ),
    ("lld-22", "/usr/lib/llvm-22/bin/wasm-ld"),
    ("wasi-libc", WASI_LIBDIR),
];

/// Debian packages that provide a Rust toolchain able to build `wasm32-wasip2` components.
pub const DEBIAN_PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "lld-22",
    "wasi-libc",
];

/// Those of [`DEBIAN_PACKAGES`] whose files are not on this machine.
pub fn missing_packages() -> Vec<&'static str> {
    PIECES
        .iter()
        .filter(|(_, path)| !Path::new(path).exists())
        .map(|(package, _)| *package)
        .collect()
}

/// Why plugins cannot be built here.
#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    /// Debian packages of the toolchain are missing.
    #[error(
        "Debian's Rust toolchain for wasm is not installed (missing {}); run `make plugin-setup` in a ferrometal checkout, or `apt-get install {}`",
        missing.join(", "),
        DEBIAN_PACKAGES.join(" ")
    )]
    DebianPackagesMissing {
        /// The missing packages.
        missing: Vec<&'static str>,
    },
    /// No component linker was found.
    #[error(
        "no `{COMPONENT_LINKER}` found (not on PATH, in a rustup toolchain or in ferrometal's tool cache); run `make plugin-setup` in a ferrometal checkout, or `cargo install --locked {COMPONENT_LINKER}@{COMPONENT_LINKER_VERSION}`"
    )]
    NoComponentLinker,
}

/// One build of a crate (or workspace) for [`TARGET`].
#[derive(Debug, Clone, Copy)]
pub struct Build<'a> {
    /// The crate's `Cargo.toml`.
    pub manifest: &'a Path,
    /// A target directory for wasm builds only: Debian's rustc and the native one would
    /// otherwise rebuild each other's artefacts, and the std build is cached here.
    pub target_dir: &'a Path,
    /// The release profile (otherwise dev).
    pub release: bool,
    /// A lockfile for Debian's cargo to use instead of the crate's own `Cargo.lock`, so the
    /// native `cargo test` and the wasm build (two cargo and rustc versions) never rewrite
    /// each other's lockfile. `None` shares the crate's.
    pub lockfile: Option<&'a Path>,
}

/// Debian's toolchain plus the component linker: everything a plugin build runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// `wasm-component-ld`.
    pub linker: PathBuf,
}

impl Toolchain {
    /// Finds the toolchain, or says what is missing and how to install it.
    pub fn locate() -> Result<Self, ToolchainError> {
        let missing = missing_packages();
        if !missing.is_empty() {
            return Err(ToolchainError::DebianPackagesMissing { missing });
        }
        let linker = find_component_linker().ok_or(ToolchainError::NoComponentLinker)?;
        Ok(Self { linker })
    }

    /// Debian's cargo with Debian's rustc first on PATH (and `wasm-ld` after it), and none
    /// of rustup's settings, which the caller may run under (`cargo xtask`, `cargo run`) and
    /// which must not leak into Debian's toolchain.
    pub fn cargo(&self) -> Command {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![PathBuf::from("/usr/bin"), PathBuf::from(LLD_BIN_DIR)];
        dirs.extend(std::env::split_paths(&path));
        let mut command = Command::new(DEBIAN_CARGO);
        // Joining fails only for a PATH entry with a `:`, which the existing PATH cannot have.
        if let Ok(path) = std::env::join_paths(dirs) {
            command.env("PATH", path);
        }
        without_rustup_settings(&mut command);
        command
    }

    /// `cargo build` of `build` for [`TARGET`], with std built from Debian's sources and
    /// linked by [`Toolchain::linker`]. Add arguments (e.g. `--workspace`) to the result.
    pub fn build(&self, build: &Build<'_>) -> Command {
        let mut command = self.cargo();
        command.arg("build");
        if build.release {
            command.arg("--release");
        }
        command
            .args(["-Zbuild-std=std,panic_abort", "--target", TARGET])
            .arg("--manifest-path")
            .arg(build.manifest)
            .arg("--target-dir")
            .arg(build.target_dir);
        if let Some(lockfile) = build.lockfile {
            command
                .arg("-Zlockfile-path")
                .arg("--config")
                .arg(format!("resolver.lockfile-path={}", toml_string(lockfile)));
        }
        command
            // Debian's toolchain is stable; build-std is a nightly feature it allows on request.
            .env("RUSTC_BOOTSTRAP", "1")
            .env("RUSTFLAGS", format!("-L {WASI_LIBDIR}"))
            .env("CARGO_TARGET_WASM32_WASIP2_LINKER", &self.linker);
        command
    }
}

/// Where a build puts the component of the library crate `crate_name`.
pub fn component_path(target_dir: &Path, release: bool, crate_name: &str) -> PathBuf {
    target_dir
        .join(TARGET)
        .join(if release { "release" } else { "debug" })
        .join(format!("{}.wasm", crate_name.replace('-', "_")))
}

/// Keeps rustup's toolchain settings out of a Debian toolchain command.
pub fn without_rustup_settings(command: &mut Command) {
    for var in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTDOC",
        "CARGO",
        "RUSTC_WRAPPER",
        "CARGO_BUILD_TARGET_DIR",
    ] {
        command.env_remove(var);
    }
}

/// `path` as a TOML basic string for `--config`.
fn toml_string(path: &Path) -> String {
    let text = path.to_string_lossy();
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(command: &Command) -> Vec<String> {
        command
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect()
    }

    fn env(command: &Command, name: &str) -> Option<String> {
        command
            .get_envs()
            .find(|(key, _)| *key == name)
            .and_then(|(_, value)| value)
            .map(|value| value.to_string_lossy().into_owned())
    }

    #[test]
    fn a_build_runs_debian_cargo_with_build_std_the_linker_and_a_lockfile_of_its_own() {
        let toolchain = Toolchain {
            linker: PathBuf::from("/opt/wasm-component-ld"),
        };
        let command = toolchain.build(&Build {
            manifest: Path::new("/src/my-driver/Cargo.toml"),
            target_dir: Path::new("/src/my-driver/target/wasm"),
            release: false,
            lockfile: Some(Path::new("/src/my-driver/target/wasm/Cargo.lock")),
        });
        assert_eq!(command.get_program(), DEBIAN_CARGO);
        assert_eq!(
            args(&command),
            [
                "build",
                "-Zbuild-std=std,panic_abort",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
                "/src/my-driver/Cargo.toml",
                "--target-dir",
                "/src/my-driver/target/wasm",
                "-Zlockfile-path",
                "--config",
                "resolver.lockfile-path=\"/src/my-driver/target/wasm/Cargo.lock\"",
            ]
        );
        assert_eq!(env(&command, "RUSTC_BOOTSTRAP").as_deref(), Some("1"));
        assert_eq!(
            env(&command, "RUSTFLAGS").as_deref(),
            Some("-L /usr/lib/wasm32-wasi")
        );
        assert_eq!(
            env(&command, "CARGO_TARGET_WASM32_WASIP2_LINKER").as_deref(),
            Some("/opt/wasm-component-ld")
        );
        let path = env(&command, "PATH").expect("PATH set");
        assert!(path.starts_with("/usr/bin:/usr/lib/llvm-22/bin"), "{path}");
        // rustup's settings are removed, not inherited.
        assert!(
            command
                .get_envs()
                .any(|(key, value)| key == "RUSTUP_TOOLCHAIN" && value.is_none())
        );
    }

    #[test]
    fn a_release_build_of_a_workspace_shares_its_lockfile() {
        let toolchain = Toolchain {
            linker: PathBuf::from("/l"),
        };
        let command = toolchain.build(&Build {
            manifest: Path::new("/p/Cargo.toml"),
            target_dir: Path::new("/t"),
            release: true,
            lockfile: None,
        });
        let args = args(&command);
        assert_eq!(args[..2], ["build", "--release"]);
        assert!(!args.iter().any(|arg| arg.contains("lockfile")), "{args:?}");
    }

    #[test]
    fn components_are_named_after_the_crate_with_underscores() {
        assert_eq!(
            component_path(Path::new("/t"), false, "my-driver"),
            Path::new("/t/wasm32-wasip2/debug/my_driver.wasm")
        );
        assert_eq!(
            component_path(Path::new("/t"), true, "x"),
            Path::new("/t/wasm32-wasip2/release/x.wasm")
        );
    }

    #[test]
    fn a_missing_toolchain_names_the_set_up_and_the_packages() {
        let message = ToolchainError::DebianPackagesMissing {
            missing: vec!["lld-22"],
        }
        .to_string();
        assert!(message.contains("missing lld-22"), "{message}");
        assert!(message.contains("make plugin-setup"), "{message}");
        assert!(
            message.contains("apt-get install rustc-web cargo-web rust-web-src lld-22 wasi-libc"),
            "{message}"
        );
    }
}
