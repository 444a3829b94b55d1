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

/// The path of component `name` (crate name, `-` or `_`), or an error naming the command that
/// builds it.
pub fn component(name: &str) -> Result<PathBuf> {
    let name = name.replace('-', "_");
    let path = components_dir().join(format!("{name}.wasm"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::ComponentMissing { name, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_component_names_the_command_that_builds_it() {
        let message = component("no-such-plugin").expect_err("missing").to_string();
        assert!(message.contains("no_such_plugin.wasm"), "{message}");
        assert!(message.contains("make plugins"), "{message}");
    }
}
