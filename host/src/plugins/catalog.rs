//! Which plugins are installed, and which one serves what.
//!
//! Plugins are discovered in a directory (the operator image bakes them into
//! `/usr/lib/ferrometal/plugins`; a ConfigMap or volume can replace it). Every `*.wasm` file is
//! loaded for the world its metadata names; a file that fails to load is reported and skipped,
//! so one broken plugin never takes the others down.
//!
//! Selection rules:
//! - A plugin's name is its file name without `.wasm`, with `_` read as `-`
//!   (`dell_redfish.wasm` is `dell-redfish`).
//! - **BMC drivers**: each protocol name (`BMC.spec.protocol.name`) maps to an ordered list of
//!   driver names. Among the listed drivers that are installed, the first whose
//!   `info().manufacturers` contains the BMC's manufacturer (case-insensitive) wins; otherwise
//!   the first generic driver (empty `manufacturers`). By default every Redfish dialect maps to
//!   the driver named `redfish`, so a vendor overlay is added by listing it first.
//! - **Credential lookup** and **ignition generator**: exactly one of each is active, chosen
//!   by name; when only one is installed it is used.
//!
//! Digest pinning: `digests` maps plugin names to the sha256 their file must have. A pinned
//! plugin whose file differs (or is missing) is reported and not loaded; unpinned plugins load
//! as before.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::bmc_driver::BmcDriverPlugin;
use super::credential_lookup::CredentialLookupPlugin;
use super::error::LoadError;
use super::ignition_generator::IgnitionGeneratorPlugin;
use super::metadata::{PluginMetadata, World};
use super::runtime::{PluginRuntime, plugin_name};
use super::types::DriverInfo;

/// The default plugin directory inside the operator image.
pub const DEFAULT_PLUGIN_DIR: &str = "/usr/lib/ferrometal/plugins";

/// How plugins are chosen. Read from YAML (`--plugin-config`), e.g.:
///
/// ```yaml
/// dir: /usr/lib/ferrometal/plugins
/// drivers:
///   Redfish: [dell-redfish, redfish]
/// credentialLookup: macdb
/// ignitionGenerator: ignition
/// digests:
///   redfish: 5f0c…  # sha256 of redfish.wasm (`ferrometal plugin inspect` prints it)
/// ```
///
/// Protocols not listed under `drivers` keep their defaults.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct CatalogConfig {
    /// Directory holding `*.wasm` plugins.
    pub dir: PathBuf,
    /// Protocol name → driver names in order of preference.
    pub drivers: BTreeMap<String, Vec<String>>,
    /// Name of the credential-lookup plugin to use (required when several are installed).
    pub credential_lookup: Option<String>,
    /// Name of the ignition generator to use (required when several are installed).
    pub ignition_generator: Option<String>,
    /// Plugin name → the sha256 (hex) its file must have.
    pub digests: BTreeMap<String, String>,
}

impl CatalogConfig {
    /// Reads the configuration from `file`, or the defaults when there is none.
    pub fn load(file: Option<&Path>) -> Result<Self, String> {
        let Some(file) = file else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(file)
            .map_err(|error| format!("cannot read plugin config {}: {error}", file.display()))?;
        Self::from_yaml(&text)
            .map_err(|error| format!("invalid plugin config {}: {error}", file.display()))
    }

    /// Parses a YAML configuration; protocols it does not mention keep the default drivers.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        let parsed: Self = serde_saphyr::from_str(text).map_err(|error| error.to_string())?;
        let mut drivers = Self::default().drivers;
        drivers.extend(parsed.drivers);
        Ok(Self { drivers, ..parsed })
    }
}

impl Default for CatalogConfig {
    fn default() -> Self {
        let redfish = vec![String::from("redfish")];
        let drivers = [
            "Redfish",
            "RedfishLocal",
            "RedfishWithRegistryPatch",
            "RedfishKube",
        ]
        .into_iter()
        .map(|protocol| (protocol.to_owned(), redfish.clone()))
        .collect();
        Self {
            dir: PathBuf::from(DEFAULT_PLUGIN_DIR),
            drivers,
            credential_lookup: None,
            ignition_generator: None,
            digests: BTreeMap::new(),
        }
    }
}

/// A plugin file that could not be used, and why.
#[derive(Debug)]
pub struct LoadProblem {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub error: LoadError,
}

/// A driver with the self-description used for selection.
#[derive(Debug, Clone)]
pub struct InstalledDriver {
    /// The plugin.
    pub plugin: BmcDriverPlugin,
    /// What its `info()` said at load time.
    pub info: DriverInfo,
}

/// The installed plugins.
#[derive(Debug, Default)]
pub struct PluginCatalog {
    drivers: Vec<InstalledDriver>,
    credential_lookups: Vec<CredentialLookupPlugin>,
    ignition_generators: Vec<IgnitionGeneratorPlugin>,
    config: Option<CatalogConfig>,
    /// Files that failed to load.
    pub problems: Vec<LoadProblem>,
}

impl PluginCatalog {
    /// Loads every plugin in `config.dir`.
    pub async fn load(runtime: &PluginRuntime, config: CatalogConfig) -> Self {
        let mut catalog = Self::default();
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&config.dir) {
            Ok(entries) => entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
                .collect(),
            Err(source) => {
                catalog.problems.push(LoadProblem {
                    path: config.dir.clone(),
                    error: LoadError::Read {
                        path: config.dir.clone(),
                        source,
                    },
                });
                Vec::new()
            }
        };
        files.sort();
        let installed: std::collections::BTreeSet<String> =
            files.iter().filter_map(|path| plugin_name(path)).collect();
        for (name, expected) in &config.digests {
            if !installed.contains(name) {
                let error = LoadError::PinnedMissing {
                    name: name.clone(),
                    expected: expected.clone(),
                    dir: config.dir.clone(),
                };
                tracing::warn!(%error, "pinned plugin missing");
                catalog.problems.push(LoadProblem {
                    path: config.dir.join(format!("{name}.wasm")),
                    error,
                });
            }
        }
        for path in files {
            let pinned = plugin_name(&path).and_then(|name| config.digests.get(&name));
            if let Err(error) = catalog.load_one(runtime, &path, pinned).await {
                tracing::warn!(path = %path.display(), %error, "skipping plugin");
                catalog.problems.push(LoadProblem { path, error });
            }
        }
        catalog.config = Some(config);
        catalog
    }

    async fn load_one(
        &mut self,
        runtime: &PluginRuntime,
        path: &Path,
        pinned: Option<&String>,
    ) -> Result<(), LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let metadata =
            PluginMetadata::from_component(&bytes).map_err(|problem| LoadError::Metadata {
                path: path.to_path_buf(),
                problem,
            })?;
        // Checked on the digest of the bytes that were compiled, before any plugin code runs.
        let check = |identity: &super::PluginIdentity| match pinned {
            Some(expected)
                if !identity
                    .digest
                    .eq_ignore_ascii_case(expected.trim().trim_start_matches("sha256:")) =>
            {
                Err(LoadError::DigestMismatch {
                    path: path.to_path_buf(),
                    expected: expected.clone(),
                    actual: identity.digest.clone(),
                })
            }
            _ => Ok(()),
        };
        match metadata.world {
            World::BmcDriver => {
                let plugin = runtime.load_bmc_driver(path)?;
                check(plugin.identity())?;
                let info = plugin.info().await.map_err(|error| LoadError::Invalid {
                    path: path.to_path_buf(),
                    world: World::BmcDriver,
                    message: format!("info() failed: {error}"),
                })?;
                self.drivers.push(InstalledDriver { plugin, info });
            }
            World::CredentialLookup => {
                let plugin = runtime.load_credential_lookup(path)?;
                check(plugin.identity())?;
                self.credential_lookups.push(plugin);
            }
            World::IgnitionGenerator => {
                let plugin = runtime.load_ignition_generator(path)?;
                check(plugin.identity())?;
                self.ignition_generators.push(plugin);
            }
        }
        Ok(())
    }

    /// Every installed driver.
    pub fn drivers(&self) -> &[InstalledDriver] {
        &self.drivers
    }

    /// Every installed credential-lookup plugin.
    pub fn credential_lookups(&self) -> &[CredentialLookupPlugin] {
        &self.credential_lookups
    }

    /// Every installed ignition generator.
    pub fn ignition_generators(&self) -> &[IgnitionGeneratorPlugin] {
        &self.ignition_generators
    }

    /// The configuration the catalog was loaded with.
    pub fn config(&self) -> Option<&CatalogConfig> {
        self.config.as_ref()
    }

    /// The driver for a BMC speaking `protocol`, made by `manufacturer` if known.
    pub fn driver_for(
        &self,
        protocol: &str,
        manufacturer: Option<&str>,
    ) -> Option<&BmcDriverPlugin> {
        let preference = self.config.as_ref()?.drivers.get(protocol)?;
        let candidates: Vec<Candidate<'_>> = self
            .drivers
            .iter()
            .map(|driver| Candidate {
                name: &driver.plugin.identity().name,
                manufacturers: &driver.info.manufacturers,
            })
            .collect();
        select_driver(&candidates, preference, manufacturer)
            .map(|index| &self.drivers[index].plugin)
    }

    /// The active credential-lookup plugin.
    pub fn credential_lookup(&self) -> Option<&CredentialLookupPlugin> {
        let wanted = self
            .config
            .as_ref()
            .and_then(|c| c.credential_lookup.as_deref());
        pick_one(&self.credential_lookups, wanted, |p| &p.identity().name)
    }

    /// The active ignition generator.
    pub fn ignition_generator(&self) -> Option<&IgnitionGeneratorPlugin> {
        let wanted = self
            .config
            .as_ref()
            .and_then(|c| c.ignition_generator.as_deref());
        pick_one(&self.ignition_generators, wanted, |p| &p.identity().name)
    }
}

fn pick_one<'a, T>(
    plugins: &'a [T],
    wanted: Option<&str>,
    name: impl Fn(&T) -> &str,
) -> Option<&'a T> {
    match wanted {
        Some(wanted) => plugins.iter().find(|plugin| name(plugin) == wanted),
        None if plugins.len() == 1 => plugins.first(),
        None => None,
    }
}

/// What selection needs to know about a driver.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The plugin's name.
    pub name: &'a str,
    /// `info().manufacturers`.
    pub manufacturers: &'a [String],
}

/// Index of the driver to use: among `candidates` named in `preference` (in that order), the
/// first specialised for `manufacturer`, else the first generic one.
pub fn select_driver(
    candidates: &[Candidate<'_>],
    preference: &[String],
    manufacturer: Option<&str>,
) -> Option<usize> {
    let listed = || {
        preference
            .iter()
            .filter_map(|wanted| candidates.iter().position(|c| c.name == wanted))
    };
    if let Some(manufacturer) = manufacturer {
        let specialised = listed().find(|&index| {
            candidates[index]
                .manufacturers
                .iter()
                .any(|m| m.eq_ignore_ascii_case(manufacturer))
        });
        if specialised.is_some() {
            return specialised;
        }
    }
    listed().find(|&index| candidates[index].manufacturers.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_vendor_driver_wins_for_its_manufacturer_and_generic_serves_the_rest() {
        let dell = names(&["Dell Inc.", "Dell"]);
        let candidates = [
            Candidate {
                name: "redfish",
                manufacturers: &[],
            },
            Candidate {
                name: "dell-redfish",
                manufacturers: &dell,
            },
        ];
        let preference = names(&["dell-redfish", "redfish"]);
        assert_eq!(
            select_driver(&candidates, &preference, Some("dell")),
            Some(1)
        );
        assert_eq!(
            select_driver(&candidates, &preference, Some("HPE")),
            Some(0)
        );
        assert_eq!(select_driver(&candidates, &preference, None), Some(0));
    }

    #[test]
    fn drivers_not_listed_for_the_protocol_are_never_chosen() {
        let candidates = [Candidate {
            name: "ipmi",
            manufacturers: &[],
        }];
        assert_eq!(select_driver(&candidates, &names(&["redfish"]), None), None);
    }

    #[test]
    fn a_specialised_driver_does_not_serve_other_manufacturers() {
        let hpe = names(&["HPE"]);
        let candidates = [Candidate {
            name: "ilo",
            manufacturers: &hpe,
        }];
        assert_eq!(
            select_driver(&candidates, &names(&["ilo"]), Some("Dell")),
            None
        );
        assert_eq!(
            select_driver(&candidates, &names(&["ilo"]), Some("hpe")),
            Some(0)
        );
    }

    #[test]
    fn a_config_file_overrides_only_what_it_names() {
        let config = CatalogConfig::from_yaml(
            "dir: /plugins\ndrivers:\n  Redfish: [dell-redfish, redfish]\ncredentialLookup: macdb\n",
        )
        .expect("valid");
        assert_eq!(config.dir, PathBuf::from("/plugins"));
        assert_eq!(
            config.drivers["Redfish"],
            names(&["dell-redfish", "redfish"])
        );
        assert_eq!(
            config.drivers["RedfishLocal"],
            names(&["redfish"]),
            "defaults kept"
        );
        assert_eq!(config.credential_lookup.as_deref(), Some("macdb"));
    }

    #[test]
    fn a_misspelt_config_key_is_an_error() {
        let error = CatalogConfig::from_yaml("credentialLookups: macdb\n").expect_err("typo");
        assert!(error.contains("credentialLookups"), "{error}");
    }

    #[test]
    fn one_installed_plugin_is_used_without_configuration() {
        let plugins = ["macdb"];
        assert_eq!(pick_one(&plugins, None, |p| p), Some(&"macdb"));
        let plugins = ["macdb", "vendor-db"];
        assert_eq!(pick_one(&plugins, None, |p| p), None);
        assert_eq!(
            pick_one(&plugins, Some("vendor-db"), |p| p),
            Some(&"vendor-db")
        );
    }
}
