//! `wasm-component-ld`, the linker that turns rustc's `wasm32-wasip2` output into a
//! component. Debian's rustc (1.96) does not ship it; rustup's toolchains do.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The component linker's program name.
pub const COMPONENT_LINKER: &str = "wasm-component-ld";

/// The version `cargo xtask` installs from crates.io when no Rust toolchain here ships one.
pub const COMPONENT_LINKER_VERSION: &str = "0.5.21";

/// Where `cargo xtask` installs [`COMPONENT_LINKER_VERSION`] (`cargo install --root`); the
/// program is `bin/wasm-component-ld` under it.
pub fn linker_install_root() -> PathBuf {
    crate::tool_cache_dir()
        .join(COMPONENT_LINKER)
        .join(COMPONENT_LINKER_VERSION)
}

/// The component linker, from (in order) PATH, the sysroot of the `rustc` on PATH, any
/// rustup toolchain under `$RUSTUP_HOME` (or `~/.rustup`), or the copy `cargo xtask`
/// installed under [`linker_install_root`].
pub fn find_component_linker() -> Option<PathBuf> {
    on_path(COMPONENT_LINKER)
        .or_else(from_rustc_sysroot)
        .or_else(from_rustup_toolchains)
        .or_else(|| {
            Some(linker_install_root().join("bin").join(COMPONENT_LINKER))
                .filter(|path| path.is_file())
        })
}

fn on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// rustup ships the linker beside rust-lld: `<sysroot>/lib/rustlib/<host>/bin/`.
fn in_sysroot(sysroot: &Path) -> Option<PathBuf> {
    let rustlib = sysroot.join("lib").join("rustlib");
    std::fs::read_dir(rustlib)
        .ok()?
        .flatten()
        .map(|host| host.path().join("bin").join(COMPONENT_LINKER))
        .find(|candidate| candidate.is_file())
}

fn from_rustc_sysroot() -> Option<PathBuf> {
    let output = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|output| output.status.success())?;
    let sysroot = String::from_utf8(output.stdout).ok()?;
    in_sysroot(Path::new(sysroot.trim()))
}

fn from_rustup_toolchains() -> Option<PathBuf> {
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".rustup")))?;
    let mut toolchains: Vec<PathBuf> = std::fs::read_dir(rustup_home.join("toolchains"))
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .collect();
    // Deterministic: the same toolchain wins on every run.
    toolchains.sort();
    toolchains
        .iter()
        .find_map(|toolchain| in_sysroot(toolchain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_linker_is_found_beside_rust_lld_in_a_sysroot() {
        let sysroot = tempfile::tempdir().expect("tempdir");
        assert_eq!(in_sysroot(sysroot.path()), None);
        let bin = sysroot
            .path()
            .join("lib/rustlib/x86_64-unknown-linux-gnu/bin");
        std::fs::create_dir_all(&bin).expect("create");
        std::fs::write(bin.join(COMPONENT_LINKER), "").expect("write");
        assert_eq!(in_sysroot(sysroot.path()), Some(bin.join(COMPONENT_LINKER)));
    }
}
