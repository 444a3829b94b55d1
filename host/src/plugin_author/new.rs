//! `ferrometal plugin new <world> <name>`: a plugin crate from the templates in
//! `templates/`, with the SDK found in the ferrometal checkout.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

/// Arguments of `ferrometal plugin new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The world the plugin implements.
    #[arg(value_enum)]
    world: WorldArg,
    /// The plugin's name (lower-case letters, digits and `-`): the crate's name, and the
    /// operator's name for the plugin.
    name: String,
    /// Directory to create (default: `./<name>`); must not exist yet.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The `plugin-sdk` directory of a ferrometal checkout (default: found from the new
    /// crate's or the current directory upwards, or the checkout this binary was built from).
    #[arg(long, env = "FERROMETAL_PLUGIN_SDK")]
    sdk_path: Option<PathBuf>,
}

/// The worlds a crate can be written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WorldArg {
    /// A BMC protocol driver.
    BmcDriver,
    /// The MAC-prefix credential lookup.
    CredentialLookup,
    /// The discovery ignition generator.
    IgnitionGenerator,
    /// A server classifier (hardware facts in; labels, taints, unclaimable out).
    ServerClassifier,
}

impl WorldArg {
    /// The SDK feature and WIT world name.
    fn feature(self) -> &'static str {
        match self {
            Self::BmcDriver => "bmc-driver",
            Self::CredentialLookup => "credential-lookup",
            Self::IgnitionGenerator => "ignition-generator",
            Self::ServerClassifier => "server-classifier",
        }
    }

    /// `src/lib.rs` of a new crate, with placeholders.
    fn source_template(self) -> &'static str {
        match self {
            Self::BmcDriver => include_str!("templates/bmc_driver.rs.tmpl"),
            Self::CredentialLookup => include_str!("templates/credential_lookup.rs.tmpl"),
            Self::IgnitionGenerator => include_str!("templates/ignition_generator.rs.tmpl"),
            Self::ServerClassifier => include_str!("templates/server_classifier.rs.tmpl"),
        }
    }

    /// Dependencies beyond the SDK, as `Cargo.toml` lines.
    fn dependencies(self) -> &'static str {
        match self {
            Self::BmcDriver => "serde = { version = \"1\", features = [\"derive\"] }\n",
            Self::CredentialLookup => "",
            Self::IgnitionGenerator => "serde_json = \"1\"\n",
            Self::ServerClassifier => "",
        }
    }
}

const CARGO_TEMPLATE: &str = include_str!("templates/Cargo.toml.tmpl");
const GITIGNORE_TEMPLATE: &str = include_str!("templates/gitignore.tmpl");

/// Crate names a plugin cannot take: its own dependencies.
const TAKEN_NAMES: &[&str] = &["ferrometal-plugin-sdk", "serde", "serde-json", "log"];

/// Why a plugin name is refused, or `None` for a good one: 1–64 characters, lower-case ASCII
/// letters, digits and single `-` between them, starting with a letter. (`_` is refused: the
/// operator reads `_` in a file name as `-`, so `my_driver` and `my-driver` would clash.)
fn name_problem(name: &str) -> Option<String> {
    let problem = if name.is_empty() || name.len() > 64 {
        "it must have 1 to 64 characters"
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        "it must start with a lower-case letter"
    } else if name.contains('_') {
        "use `-`, not `_` (the component is named with `_`, the plugin with `-`)"
    } else if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        "only lower-case letters, digits and `-` are allowed"
    } else if name.ends_with('-') || name.contains("--") {
        "`-` must separate words"
    } else if TAKEN_NAMES.contains(&name) {
        "a dependency of every plugin has that name"
    } else {
        return None;
    };
    Some(format!("{name:?} is not a plugin name: {problem}"))
}

/// `my-driver` → `MyDriver`, the type implementing the world's trait.
fn type_name(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// `template` with every `{{key}}` replaced by its value.
fn render(template: &str, values: &[(&str, &str)]) -> String {
    values
        .iter()
        .fold(template.to_owned(), |text, (key, value)| {
            text.replace(&format!("{{{{{key}}}}}"), value)
        })
}

/// Whether `dir` is a ferrometal checkout's `plugin-sdk`.
fn is_sdk(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .is_ok_and(|manifest| manifest.contains("name = \"ferrometal-plugin-sdk\""))
}

/// The SDK in `start` or one of its ancestors' `plugin-sdk` directories.
fn sdk_above(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join("plugin-sdk"))
        .find(|candidate| is_sdk(candidate))
}

/// The SDK to depend on: `--sdk-path`, else one above the new crate or the current directory,
/// else the one of the checkout this binary was built from, if it is still there.
fn locate_sdk(explicit: Option<&Path>, crate_dir: &Path) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !is_sdk(path) {
            bail!(
                "--sdk-path {} is not ferrometal's plugin-sdk (no Cargo.toml naming ferrometal-plugin-sdk)",
                path.display()
            );
        }
        return Ok(path.canonicalize()?);
    }
    let current = std::env::current_dir().context("read the current directory")?;
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk");
    let found = crate_dir
        .parent()
        .and_then(sdk_above)
        .or_else(|| sdk_above(&current))
        .or_else(|| is_sdk(&built_from).then_some(built_from))
        .context(
            "cannot find ferrometal's plugin-sdk: run this inside a ferrometal checkout, or pass --sdk-path CHECKOUT/plugin-sdk",
        )?;
    Ok(found.canonicalize()?)
}

/// Writes the crate and prints what to do next.
pub fn new(args: &NewArgs) -> anyhow::Result<()> {
    if let Some(problem) = name_problem(&args.name) {
        bail!("{problem}");
    }
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        bail!(
            "{} already exists; choose another --dir (nothing was written)",
            dir.display()
        );
    }
    let dir = std::path::absolute(&dir).with_context(|| format!("resolve {}", dir.display()))?;
    let sdk = locate_sdk(args.sdk_path.as_deref(), &dir)?;
    let sdk = sdk.to_string_lossy();
    let type_name = type_name(&args.name);
    let values = [
        ("name", args.name.as_str()),
        ("type", type_name.as_str()),
        ("world", args.world.feature()),
        ("sdk_path", &*sdk),
        ("dependencies", args.world.dependencies()),
    ];
    let files = [
        ("Cargo.toml", render(CARGO_TEMPLATE, &values)),
        ("src/lib.rs", render(args.world.source_template(), &values)),
        (".gitignore", GITIGNORE_TEMPLATE.to_owned()),
    ];
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("create {}", dir.display()))?;
    for (file, contents) in &files {
        let path = dir.join(file);
        std::fs::write(&path, contents).with_context(|| format!("write {}", path.display()))?;
    }
    println!(
        "created {} plugin `{}` in {}",
        args.world.feature(),
        args.name,
        dir.display()
    );
    println!("  cargo test              native unit tests against canned answers");
    println!("  ferrometal plugin build builds the component and prints its path");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_plugin_names_are_accepted() {
        for name in ["my-driver", "dell-redfish", "x", "idrac9", "a-b-c"] {
            assert_eq!(name_problem(name), None, "{name}");
        }
    }

    #[test]
    fn bad_plugin_names_are_refused_with_the_reason() {
        for (name, reason) in [
            ("", "1 to 64"),
            ("My-Driver", "lower-case letter"),
            ("9lives", "lower-case letter"),
            ("my_driver", "not `_`"),
            ("my driver", "only lower-case"),
            ("../etc", "lower-case letter"),
            ("a/b", "only lower-case"),
            ("driver-", "separate words"),
            ("a--b", "separate words"),
            ("serde", "dependency"),
        ] {
            let problem = name_problem(name).unwrap_or_default();
            assert!(problem.contains(reason), "{name:?}: {problem}");
        }
        assert!(name_problem(&"a".repeat(65)).is_some());
    }

    #[test]
    fn type_names_are_camel_case() {
        assert_eq!(type_name("my-driver"), "MyDriver");
        assert_eq!(type_name("idrac9-x"), "Idrac9X");
        assert_eq!(type_name("x"), "X");
    }

    #[test]
    fn every_placeholder_of_every_template_is_filled() {
        for world in [
            WorldArg::BmcDriver,
            WorldArg::CredentialLookup,
            WorldArg::IgnitionGenerator,
            WorldArg::ServerClassifier,
        ] {
            let values = [
                ("name", "my-plugin"),
                ("type", "MyPlugin"),
                ("world", world.feature()),
                ("sdk_path", "/src/ferrometal/plugin-sdk"),
                ("dependencies", world.dependencies()),
            ];
            for template in [CARGO_TEMPLATE, world.source_template()] {
                let text = render(template, &values);
                assert!(!text.contains("{{"), "{world:?}: {text}");
            }
            let manifest = render(CARGO_TEMPLATE, &values);
            assert!(manifest.contains(&format!("features = [\"{}\"]", world.feature())));
            assert!(manifest.contains("crate-type = [\"cdylib\"]"));
            assert!(manifest.contains("path = \"/src/ferrometal/plugin-sdk\""));
        }
    }

    #[test]
    fn the_sdk_is_found_above_a_directory_and_only_when_it_is_the_sdk() {
        let root = tempfile::tempdir().expect("tempdir");
        let nested = root.path().join("vendors/acme");
        std::fs::create_dir_all(&nested).expect("create");
        assert_eq!(sdk_above(&nested), None);
        let sdk = root.path().join("plugin-sdk");
        std::fs::create_dir_all(&sdk).expect("create");
        std::fs::write(
            sdk.join("Cargo.toml"),
            "[package]\nname = \"something-else\"\n",
        )
        .expect("write");
        assert_eq!(sdk_above(&nested), None);
        std::fs::write(
            sdk.join("Cargo.toml"),
            "[package]\nname = \"ferrometal-plugin-sdk\"\n",
        )
        .expect("write");
        assert_eq!(sdk_above(&nested), Some(sdk));
    }
}
