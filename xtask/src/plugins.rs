//! Builds the plugin workspace (`plugins/`) as wasm32-wasip2 components.
//!
//! rustup has no wasm targets on our machines, so the build uses Debian's rustc/cargo in
//! /usr/bin with `-Zbuild-std` against Debian's std sources. The target directory is stable
//! (`target/wasm`) so the std build is cached; the finished components are copied to
//! `target/components` (see `testenv::components`), where host tests and the operator find
//! them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use ferrometal_plugin_build::{
    Build, COMPONENT_LINKER, COMPONENT_LINKER_VERSION, Toolchain, find_component_linker,
    linker_install_root, without_rustup_settings,
};
use testenv::tools;

use crate::run::{checked, checked_with_retries, note, step};

/// Builds every member of the plugin workspace, and the driver from docs/plugins.md's
/// tutorial, and copies the components into place.
pub fn build() -> anyhow::Result<()> {
    let root = tools::workspace_root();
    let manifest = root.join("plugins").join("Cargo.toml");
    let target_dir = root.join("target").join("wasm");
    let dest = testenv::components::components_dir();
    step(format_args!(
        "plugins: building wasm32-wasip2 components (the first build also compiles std, about 1–2 minutes)"
    ));
    crate::setup::debian_wasm_toolchain()?;
    let toolchain = Toolchain {
        linker: component_linker()?,
    };
    // Download first, with retries, so a network hiccup does not fail the build.
    checked_with_retries(|| {
        let mut fetch = toolchain.cargo();
        fetch.arg("fetch").arg("--manifest-path").arg(&manifest);
        fetch
    })?;
    checked(
        toolchain
            .build(&Build {
                manifest: &manifest,
                target_dir: &target_dir,
                release: true,
                lockfile: None,
            })
            .arg("--workspace"),
    )?;

    // Replace the whole directory so components of deleted crates do not linger.
    if dest.exists() {
        fs::remove_dir_all(&dest).with_context(|| format!("remove {}", dest.display()))?;
    }
    fs::create_dir_all(&dest).with_context(|| format!("create {}", dest.display()))?;
    let built = target_dir.join("wasm32-wasip2").join("release");
    let members = member_names(&root.join("plugins"))?;
    for member in &members {
        // cargo names library artifacts with `_`, binaries with the crate name as is.
        let candidates = [
            format!("{}.wasm", member.replace('-', "_")),
            format!("{member}.wasm"),
        ];
        let source = candidates
            .iter()
            .map(|name| built.join(name))
            .find(|path| path.is_file())
            .with_context(|| {
                format!(
                    "the build produced no component for plugin crate `{member}` in {}",
                    built.display()
                )
            })?;
        let name = source.file_name().context("component file name")?;
        fs::copy(&source, dest.join(name))
            .with_context(|| format!("copy {} to {}", source.display(), dest.display()))?;
        note(format_args!("{}", dest.join(name).display()));
    }
    let tutorial = tutorial_crate(&root)?;
    checked(&mut tutorial_build(
        &root,
        &tutorial,
        &target_dir,
        &toolchain.linker,
    )?)?;
    let tutorial_component = built.join(format!("{}.wasm", TUTORIAL_CRATE.replace('-', "_")));
    let name = tutorial_component
        .file_name()
        .context("component file name")?;
    fs::copy(&tutorial_component, dest.join(name))
        .with_context(|| format!("copy {}", tutorial_component.display()))?;
    note(format_args!(
        "{} (docs/plugins.md tutorial)",
        dest.join(name).display()
    ));
    let count = members.len() + 1;
    step(format_args!(
        "plugins: {count} components in {}",
        dest.display()
    ));
    Ok(())
}

/// Package names of the plugin workspace's members: every `Cargo.toml` with a `[package]`
/// directly under `plugins/` or `plugins/fixtures/`.
fn member_names(plugins: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for dir in [plugins.to_path_buf(), plugins.join("fixtures")] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let manifest = entry?.path().join("Cargo.toml");
            let Ok(text) = fs::read_to_string(&manifest) else {
                continue;
            };
            let name = text
                .lines()
                .find_map(|line| line.strip_prefix("name = "))
                .map(|name| name.trim().trim_matches('"').to_owned());
            if let Some(name) = name {
                names.push(name);
            }
        }
    }
    names.sort();
    if names.is_empty() {
        bail!("no plugin crates under {}", plugins.display());
    }
    Ok(names)
}

/// The crate name the docs/plugins.md tutorial uses.
const TUTORIAL_CRATE: &str = "my-driver";

/// `wasm-component-ld`, the linker that turns rustc's wasm32-wasip2 output into a component:
/// the one [`find_component_linker`] finds, or (no Rust toolchain here ships one) a
/// `cargo install` of a pinned version into the tool cache, where it finds it next time.
pub fn component_linker() -> anyhow::Result<PathBuf> {
    if let Some(found) = find_component_linker() {
        return Ok(found);
    }
    let root = linker_install_root();
    step(format_args!(
        "plugins: building {COMPONENT_LINKER} {COMPONENT_LINKER_VERSION} (no Rust toolchain here ships it)"
    ));
    checked_with_retries(|| {
        let mut install = Command::new("cargo");
        install
            .args([
                "install",
                "--locked",
                "--version",
                COMPONENT_LINKER_VERSION,
                COMPONENT_LINKER,
            ])
            .arg("--root")
            .arg(&root);
        install
    })?;
    Ok(root.join("bin").join(COMPONENT_LINKER))
}

/// Where [`build`] writes the docs/plugins.md tutorial crate's manifest, for its native
/// unit tests (its step 7).
pub fn tutorial_manifest(root: &Path) -> PathBuf {
    tutorial_dir(root).join("Cargo.toml")
}

fn tutorial_dir(root: &Path) -> PathBuf {
    root.join("target")
        .join("doc-tutorial")
        .join(TUTORIAL_CRATE)
}

/// The heading of the tutorial step whose Debian build command is run as written.
const BUILD_STEP: &str = "### 4. Build";

/// The tutorial's own Debian build command (step 4's `sh` block that runs `/usr/bin/cargo
/// build`), run as written in the tutorial crate, so the documented command is the one that
/// builds it. The component linker found here and the shared wasm target directory come in
/// through the environment (`WASM_COMPONENT_LD`, `CARGO_TARGET_DIR`), and rustup's settings
/// are kept out like for every Debian build.
fn tutorial_build(
    root: &Path,
    manifest: &Path,
    target_dir: &Path,
    linker: &Path,
) -> anyhow::Result<Command> {
    let doc =
        fs::read_to_string(root.join("docs").join("plugins.md")).context("read docs/plugins.md")?;
    let script = debian_build_command(&doc).with_context(|| {
        format!(
            "docs/plugins.md has no `sh` block running `/usr/bin/cargo build` under `{BUILD_STEP}`"
        )
    })?;
    let mut command = Command::new("sh");
    command
        .args(["-eu", "-c", &script])
        .current_dir(manifest.parent().context("tutorial crate directory")?)
        .env("WASM_COMPONENT_LD", linker)
        .env("CARGO_TARGET_DIR", target_dir);
    without_rustup_settings(&mut command);
    Ok(command)
}

/// Step 4's `sh` block with the Debian build command.
fn debian_build_command(markdown: &str) -> Option<String> {
    let start = markdown.find(BUILD_STEP)?;
    let section = &markdown[start + BUILD_STEP.len()..];
    let section = &section[..section.find("\n### ").unwrap_or(section.len())];
    code_blocks(section)
        .into_iter()
        .find(|(language, code)| *language == "sh" && code.contains("/usr/bin/cargo build"))
        .map(|(_, code)| code)
}

/// Writes the tutorial crate from docs/plugins.md (its first `toml` block and every `rust`
/// block) under target/, so the documented code is built, and tested, exactly as written.
fn tutorial_crate(root: &Path) -> anyhow::Result<PathBuf> {
    let doc_path = root.join("docs").join("plugins.md");
    let doc =
        fs::read_to_string(&doc_path).with_context(|| format!("read {}", doc_path.display()))?;
    let blocks = code_blocks(&doc);
    let manifest = blocks
        .iter()
        .find(|(language, _)| *language == "toml")
        .map(|(_, code)| code.clone())
        .context("docs/plugins.md has no toml block")?;
    let sdk = root.join("plugin-sdk");
    let manifest = manifest.replace("../ferrometal/plugin-sdk", &sdk.to_string_lossy());
    if !manifest.contains(&*sdk.to_string_lossy()) || !manifest.contains(TUTORIAL_CRATE) {
        bail!(
            "the tutorial's Cargo.toml in docs/plugins.md no longer names `{TUTORIAL_CRATE}` and `../ferrometal/plugin-sdk`"
        );
    }
    // The crate lives inside this repository's tree; make it a workspace of its own.
    let manifest = format!("{manifest}\n[workspace]\n");
    let source: Vec<&str> = blocks
        .iter()
        .filter(|(language, _)| *language == "rust")
        .map(|(_, code)| code.as_str())
        .collect();
    let dir = tutorial_dir(root);
    fs::create_dir_all(dir.join("src")).with_context(|| format!("create {}", dir.display()))?;
    write_if_changed(&dir.join("Cargo.toml"), &manifest)?;
    write_if_changed(&dir.join("src").join("lib.rs"), &source.join("\n"))?;
    Ok(dir.join("Cargo.toml"))
}

fn write_if_changed(path: &Path, contents: &str) -> anyhow::Result<()> {
    if fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    fs::write(path, contents).with_context(|| format!("write {}", path.display()))
}

/// Fenced code blocks of a Markdown document: `(language, code)`.
fn code_blocks(markdown: &str) -> Vec<(&str, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(&str, String)> = None;
    for line in markdown.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(language)) => current = Some((language.trim(), String::new())),
            (Some(_), Some(_)) => blocks.extend(current.take()),
            (Some((_, code)), None) => {
                code.push_str(line);
                code.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use ferrometal_plugin_build::{LLD_BIN_DIR, WASI_LIBDIR};

    use super::*;

    #[test]
    fn the_debian_build_command_comes_from_step_4_only() {
        let doc = "### 3. Code\n```sh\n/usr/bin/cargo build --nope\n```\n### 4. Build\n\
                   ```sh\ncargo build\n```\n```sh\nX=1 /usr/bin/cargo build --release\n```\n\
                   ### 5. Next\n```sh\n/usr/bin/cargo build --later\n```\n";
        assert_eq!(
            debian_build_command(doc).as_deref(),
            Some("X=1 /usr/bin/cargo build --release\n")
        );
        assert_eq!(
            debian_build_command("### 4. Build\n```sh\ncargo build\n```\n"),
            None
        );
    }

    #[test]
    fn the_plugin_guide_documents_the_debian_build_xtask_relies_on() {
        let doc = std::fs::read_to_string(tools::workspace_root().join("docs/plugins.md"))
            .expect("docs/plugins.md");
        let command = debian_build_command(&doc).expect("step 4 has the Debian build");
        for needed in [
            "$WASM_COMPONENT_LD",
            WASI_LIBDIR,
            LLD_BIN_DIR,
            "-Zbuild-std=std,panic_abort",
            "--target wasm32-wasip2",
            "--release",
        ] {
            assert!(command.contains(needed), "{needed} missing from {command}");
        }
    }

    #[test]
    fn fenced_blocks_are_extracted_with_their_language() {
        let doc = "text\n```toml\na = 1\n```\nmore\n```rust\nfn x() {}\n```\n";
        assert_eq!(
            code_blocks(doc),
            vec![
                ("toml", String::from("a = 1\n")),
                ("rust", String::from("fn x() {}\n"))
            ]
        );
    }
}
