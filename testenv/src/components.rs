//! Where `cargo xtask plugins` puts the WebAssembly components it builds.

use std::path::PathBuf;

use crate::{Error, Result, tools};

/// The directory holding every built component (`<name>.wasm`).
///
/// `FERROMETAL_COMPONENTS_DIR` overrides it; otherwise `target/components` in the repository.
pub fn components_dir() -> PathBuf {
    std::env::var_os("FERROMETAL_COMPONENTS_DIR").map_or_else(
        || tools::workspace_root().join("target").join("components"),
        PathBuf::from,
    )
}

/// The path of component `name`, or an error naming the command that builds it.
///
/// `name` is the crate name; cargo keeps `-` in binary names but turns it into `_` for
/// libraries, so both spellings are looked up.
pub fn component(name: &str) -> Result<PathBuf> {
    let dir = components_dir();
    let as_given = dir.join(format!("{name}.wasm"));
    let as_library = dir.join(format!("{}.wasm", name.replace('-', "_")));
    if as_given.is_file() {
        Ok(as_given)
    } else if as_library.is_file() {
        Ok(as_library)
    } else {
        Err(Error::ComponentMissing {
            name: name.to_owned(),
            path: as_given,
        })
    }
}

/// A binary of this workspace built by cargo (e.g. `metalprobe`), for tests and benchmarks
/// of other crates that run it: the build of the caller's profile (debug for tests, release
/// for benchmarks, which measure what a deployment runs), else the other one. `cargo test
/// --workspace` builds every workspace binary, `make bench` the release metalprobe; otherwise
/// the error names the command that does.
pub fn workspace_binary(name: &str) -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| tools::workspace_root().join("target"), PathBuf::from);
    let debug = target.join("debug").join(name);
    let release = target.join("release").join(name);
    let (preferred, other) = if cfg!(debug_assertions) {
        (debug, release)
    } else {
        (release, debug)
    };
    [preferred.clone(), other]
        .into_iter()
        .find(|path| path.is_file())
        .ok_or(Error::BinaryMissing {
            name: name.to_owned(),
            path: preferred,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_component_names_the_command_that_builds_it() {
        let message = component("no-such-plugin")
            .expect_err("missing")
            .to_string();
        assert!(message.contains("no-such-plugin.wasm"), "{message}");
        assert!(message.contains("make plugins"), "{message}");
    }
}
