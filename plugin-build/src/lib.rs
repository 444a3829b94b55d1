//! Building ferrometal plugin crates as `wasm32-wasip2` components with Debian's Rust.
//!
//! rustup cannot add targets on our machines, so plugins are built with Debian's rustc and
//! cargo (`rustc-web`, `cargo-web`) and `-Zbuild-std` against Debian's std sources, linked into
//! a component by `wasm-component-ld`. Both `cargo xtask plugins` (the repository's plugins)
//! and `ferrometal plugin build` (a plugin author's crate) build through this crate, so the
//! two agree on which programs run with which flags.

mod diagnose;
mod linker;
mod toolchain;

use std::path::PathBuf;

pub use diagnose::socket_symbol;
pub use linker::{
    COMPONENT_LINKER, COMPONENT_LINKER_VERSION, find_component_linker, linker_install_root,
};
pub use toolchain::{
    Build, DEBIAN_PACKAGES, LLD_BIN_DIR, Toolchain, ToolchainError, WASI_LIBDIR, component_path,
    missing_packages, without_rustup_settings,
};

/// The target plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// Where ferrometal caches the tools it installs: `FERROMETAL_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/ferrometal`, else `~/.cache/ferrometal`.
pub fn tool_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FERROMETAL_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("ferrometal");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".cache").join("ferrometal")
}
