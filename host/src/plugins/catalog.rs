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
//! - **Server classifiers**: the ones named under `classifiers`, in that order (none by
//!   default). A listed name that is not a loaded classifier is a [`ConfigProblem`];
//!   installed classifiers that are not listed are not used (logged at load).
//!
//! Digest pinning: `digests` maps plugin names to the sha256 their file must have. A pinned
//! plugin whose file differs (or is missing) is reported and not loaded; unpinned plugins load
//! as before.
//!
//! Per-plugin options: `plugins` maps plugin names to their `settings` (passed on every call
//! of that plugin) and `grants` (capabilities granted to that plugin alone). A name that is
//! not installed, a grant the plugin does not request, and settings a driver or a listed
//! classifier rejects are [`ConfigProblem`]s: `ferrometal run` refuses to start with any.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::bmc_driver::BmcDriverPlugin;
use super::credential_lookup::CredentialLookupPlugin;
use super::error::{CallError, LoadError};
use super::ignition_generator::IgnitionGeneratorPlugin;
use super::metadata::{PluginMetadata, World};
use super::oci::fetch::{ArtifactStore, FetchError, PluginFetcher, PluginReference};
use super::oci::registry::{PluginRegistry, RegistryError, RegistryOptions};
use super::oci::trust::{TrustError, VerificationConfig};
use super::runtime::{
    KNOWN_CAPABILITIES, PluginComponent, PluginIdentity, PluginRuntime, plugin_name,
};
use super::server_classifier::ServerClassifierPlugin;
use super::types::DriverInfo;

/// The default plugin directory inside the operator image.
pub const DEFAULT_PLUGIN_DIR: &str = "/usr/lib/ferrometal/plugins";

/// How plugins are chosen and configured. Read from YAML (`--plugin-config`), e.g.:
///
/// ```yaml
/// dir: /usr/lib/ferrometal/plugins
/// drivers:
///   Redfish: [dell-redfish, redfish]
/// credentialLookup: macdb
/// ignitionGenerator: ignition
/// classifiers: [profiles]
/// digests:
///   redfish: 5f0c…  # sha256 of redfish.wasm (`ferrometal plugin inspect` prints it)
/// plugins:
///   redfish:
///     grants: [credentials/reveal]
///     settings:
///       auth: session
///       power-wait-seconds: 30
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
    /// Names of the server classifiers to run, in order; empty = no classification.
    /// Settings come from `plugins.<name>.settings`.
    pub classifiers: Vec<String>,
    /// Plugin name → the sha256 (hex) its file must have.
    pub digests: BTreeMap<String, String>,
    /// Plugin name → its settings and grants.
    pub plugins: BTreeMap<String, PluginOptions>,
    /// Who must have signed every plugin loaded from a registry (`plugins.<name>.image`),
    /// unless the plugin has its own `verification`.
    pub verification: Option<VerificationConfig>,
    /// How to reach the registries plugins are loaded from.
    pub registry: RegistryOptions,
    /// Where verified registry artifacts are kept, so a restart loads them while the registry
    /// is down (default: `artifacts` in the compile cache directory, else a temporary one).
    pub artifact_dir: Option<PathBuf>,
}

/// What the operator gives one plugin (`plugins.<name>` of the plugin configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginOptions {
    /// Settings passed on every call of the plugin, as the plugin's `settings`. Values are
    /// strings; YAML scalars are taken as written (`30`, `true`).
    pub settings: BTreeMap<String, String>,
    /// Capabilities granted to this plugin only (`--grant` grants to every plugin that
    /// requests them). A grant the plugin does not request is a configuration error.
    pub grants: Vec<String>,
    /// Load the plugin from a registry instead of the plugin directory:
    /// `oci://registry/repository[:tag]@sha256:…` (the digest is required).
    pub image: Option<String>,
    /// The world the plugin from `image` implements (required with `image`; checked against
    /// the artifact before anything is compiled).
    pub world: Option<World>,
    /// Who must have signed `image` (replaces the top-level `verification`).
    pub verification: Option<VerificationConfig>,
}

impl PluginOptions {
    /// The settings as a plugin receives them (in key order).
    pub fn settings_list(&self) -> Vec<(String, String)> {
        self.settings
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }
}

/// `configured` settings with `overrides` applied key by key (an override replaces a
/// configured setting of the same key, others are added), and the keys that were replaced.
/// Command-line flags that carry plugin settings (`--mac-db`, `--ignition-setting`) override
/// the plugin configuration this way.
pub fn with_overrides(
    configured: &[(String, String)],
    overrides: &[(String, String)],
) -> (Vec<(String, String)>, Vec<String>) {
    let mut merged: Vec<(String, String)> = configured
        .iter()
        .filter(|(key, _)| !overrides.iter().any(|(k, _)| k == key))
        .cloned()
        .collect();
    let replaced = configured
        .iter()
        .filter(|(key, _)| overrides.iter().any(|(k, _)| k == key))
        .map(|(key, _)| key.clone())
        .collect();
    merged.extend(overrides.iter().cloned());
    (merged, replaced)
}

/// A part of the plugin configuration that does not fit the installed plugins. `ferrometal
/// run` does not start with any; `ferrometal plugin list` shows them.
#[derive(Debug, thiserror::Error)]
pub enum ConfigProblem {
    /// `plugins` names a plugin that is not in the plugin directory.
    #[error(
        "the plugin configuration configures plugin {name} (under `plugins`), but there is no {name}.wasm in {dir}"
    )]
    NotInstalled {
        /// The configured name.
        name: String,
        /// The plugin directory.
        dir: PathBuf,
    },
    /// A per-plugin grant of a capability the plugin does not request.
    #[error(
        "the plugin configuration grants `{capability}` to plugin {plugin}, which does not request it (it requests {})",
        if requested.is_empty() { String::from("none") } else { requested.join(", ") }
    )]
    GrantNotRequested {
        /// The plugin.
        plugin: String,
        /// The granted capability.
        capability: String,
        /// What the plugin does request.
        requested: Vec<String>,
    },
    /// A plugin's verification policy cannot be used.
    #[error("the verification policy of plugin {plugin} {error}")]
    Verification {
        /// The plugin.
        plugin: String,
        /// Why.
        error: TrustError,
    },
    /// The `registry` section cannot be used (its login file).
    #[error("the plugin configuration's `registry` cannot be used: {error}")]
    Registry {
        /// Why.
        error: RegistryError,
    },
    /// A plugin is configured by `image` and also installed as a file.
    #[error(
        "plugin {name} is configured with `image` but {name}.wasm is also in {dir}: remove one"
    )]
    TwoSources {
        /// The plugin.
        name: String,
        /// The plugin directory.
        dir: PathBuf,
    },
    /// `classifiers` names a plugin that is not installed.
    #[error(
        "the plugin configuration lists classifier {name} under `classifiers`, but there is no {name}.wasm in {dir}"
    )]
    ClassifierNotInstalled {
        /// The listed name.
        name: String,
        /// The plugin directory.
        dir: PathBuf,
    },
    /// `classifiers` names an installed plugin that is not a server classifier, or that
    /// failed to load.
    #[error(
        "the plugin configuration lists {name} under `classifiers`, but {}",
        match world {
            Some(world) => format!("it is a {world} plugin, not a server-classifier"),
            None => String::from("it did not load (its load problem is reported)"),
        }
    )]
    ClassifierNotLoaded {
        /// The listed name.
        name: String,
        /// The world it loaded as, if it loaded.
        world: Option<World>,
    },
    /// A driver or a listed classifier rejects the settings the configuration gives it.
    #[error("plugin {plugin} rejects its settings in the plugin configuration: {error}")]
    SettingsRejected {
        /// The plugin.
        plugin: String,
        /// What `validate-settings` answered (part of the message, so not a source).
        error: CallError,
    },
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
    /// Grants of capabilities ferrometal does not know are errors.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        // Without the parser's snippet of the lines around the fault: plugin settings may
        // hold secrets (a MAC database with default passwords), and this reaches the log.
        let parsed: Self =
            serde_saphyr::from_str(text).map_err(|error| error.without_snippet().to_string())?;
        for (name, options) in &parsed.plugins {
            match (&options.image, options.world) {
                (Some(image), Some(_)) => {
                    PluginReference::parse(image)
                        .and_then(|reference| reference.pinned().map(|_| ()))
                        .map_err(|error| format!("plugins.{name}.image: {error}"))?;
                    if options.verification.is_none() && parsed.verification.is_none() {
                        return Err(format!(
                            "plugins.{name}.image needs a verification policy: give `verification` (top level or under plugins.{name}) the keys its signers use"
                        ));
                    }
                }
                (Some(_), None) => {
                    return Err(format!(
                        "plugins.{name}.image needs `world` (bmc-driver, credential-lookup, ignition-generator or server-classifier)"
                    ));
                }
                (None, Some(_)) => {
                    return Err(format!("plugins.{name}.world is only used with `image`"));
                }
                (None, None) => {}
            }
            if options.image.is_none() && options.verification.is_some() {
                return Err(format!(
                    "plugins.{name}.verification is only used with `image`"
                ));
            }
            if let Some(unknown) = options
                .grants
                .iter()
                .find(|grant| !KNOWN_CAPABILITIES.contains(&grant.as_str()))
            {
                return Err(format!(
                    "plugins.{name}.grants: unknown capability `{unknown}` (known: {})",
                    KNOWN_CAPABILITIES.join(", ")
                ));
            }
        }
        for (index, name) in parsed.classifiers.iter().enumerate() {
            if parsed.classifiers[..index].contains(name) {
                return Err(format!("classifiers: {name} is listed twice"));
            }
        }
        let mut drivers = Self::default().drivers;
        drivers.extend(parsed.drivers);
        Ok(Self { drivers, ..parsed })
    }

    /// The grants the configuration gives the plugin `name`.
    fn grants_of(&self, name: Option<&str>) -> &[String] {
        name.and_then(|name| self.plugins.get(name))
            .map_or(&[], |options| options.grants.as_slice())
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
            classifiers: Vec::new(),
            digests: BTreeMap::new(),
            plugins: BTreeMap::new(),
            verification: None,
            registry: RegistryOptions::default(),
            artifact_dir: None,
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
    server_classifiers: Vec<ServerClassifierPlugin>,
    config: Option<CatalogConfig>,
    /// Plugin name → its settings from the configuration, as calls pass them.
    settings: BTreeMap<String, Vec<(String, String)>>,
    /// Files that failed to load.
    pub problems: Vec<LoadProblem>,
    /// Parts of the configuration that do not fit the installed plugins.
    pub config_problems: Vec<ConfigProblem>,
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
        let mut installed: std::collections::BTreeSet<String> =
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
            let name = plugin_name(&path);
            let pinned = name.as_ref().and_then(|name| config.digests.get(name));
            let grants = config.grants_of(name.as_deref());
            let loaded = match PluginComponent::read(&path) {
                Ok(component) => catalog.load_one(runtime, component, pinned, grants).await,
                Err(error) => Err(error),
            };
            if let Err(error) = loaded {
                tracing::warn!(path = %path.display(), %error, "skipping plugin");
                catalog.problems.push(LoadProblem { path, error });
            }
        }
        catalog
            .load_from_registries(runtime, &config, &mut installed)
            .await;
        catalog.settings = config
            .plugins
            .iter()
            .map(|(name, options)| (name.clone(), options.settings_list()))
            .collect();
        catalog.check_options(&config, &installed).await;
        catalog.check_classifiers(&config, &installed).await;
        for problem in &catalog.config_problems {
            tracing::warn!(error = %problem, "plugin configuration does not fit the installed plugins");
        }
        catalog.config = Some(config);
        catalog
    }

    /// Loads the plugins configured by `image`: pulled and verified (or taken from the
    /// artifact store when the registry is down) before they are compiled. A refusal is a
    /// [`LoadProblem`] named by the reference, counted in the load metric by its reason.
    async fn load_from_registries(
        &mut self,
        runtime: &PluginRuntime,
        config: &CatalogConfig,
        installed: &mut std::collections::BTreeSet<String>,
    ) {
        let wanted: Vec<(&String, &PluginOptions, &String, World)> = config
            .plugins
            .iter()
            .filter_map(|(name, options)| {
                Some((name, options, options.image.as_ref()?, options.world?))
            })
            .collect();
        if wanted.is_empty() {
            return;
        }
        let registry = match PluginRegistry::new(&config.registry) {
            Ok(registry) => registry,
            Err(error) => {
                self.config_problems.push(ConfigProblem::Registry { error });
                return;
            }
        };
        let store_dir = config.artifact_dir.clone().unwrap_or_else(|| {
            runtime.cache_dir().map_or_else(
                || std::env::temp_dir().join("ferrometal-plugin-artifacts"),
                |dir| dir.join("artifacts"),
            )
        });
        let fetcher = PluginFetcher::new(registry, ArtifactStore::new(&store_dir));
        for (name, options, image, world) in wanted {
            if installed.contains(name) {
                self.config_problems.push(ConfigProblem::TwoSources {
                    name: name.clone(),
                    dir: config.dir.clone(),
                });
                continue;
            }
            installed.insert(name.clone());
            let Some(verification) = options
                .verification
                .as_ref()
                .or(config.verification.as_ref())
            else {
                // `from_yaml` refuses this; a configuration built otherwise is told the same.
                self.config_problems.push(ConfigProblem::Verification {
                    plugin: name.clone(),
                    error: TrustError::NoSigners,
                });
                continue;
            };
            let policy = match verification.resolve() {
                Ok(policy) => policy,
                Err(error) => {
                    self.config_problems.push(ConfigProblem::Verification {
                        plugin: name.clone(),
                        error,
                    });
                    continue;
                }
            };
            let fetched = match PluginReference::parse(image) {
                Ok(reference) => fetcher.fetch(&reference, world, &policy).await,
                Err(error) => Err(error),
            };
            let result = match fetched {
                Ok(verified) => {
                    tracing::info!(
                        plugin = %name,
                        reference = %image,
                        signers = %verified.signers.join(", "),
                        from_store = verified.from_store,
                        "plugin verified"
                    );
                    let component = PluginComponent {
                        name: name.clone(),
                        path: verified.path,
                        bytes: verified.component,
                    };
                    self.load_one(runtime, component, None, &options.grants)
                        .await
                }
                Err(source) => {
                    runtime.metrics().load(source.metric_label());
                    Err(refused(name, source))
                }
            };
            if let Err(error) = result {
                tracing::warn!(plugin = %name, reference = %image, %error, "plugin not loaded");
                self.problems.push(LoadProblem {
                    path: PathBuf::from(image.as_str()),
                    error,
                });
            }
        }
    }

    /// Checks the per-plugin options against what is installed: every configured plugin is
    /// installed, every grant is requested, and drivers accept their settings. Plugins that
    /// failed to load are reported already and not checked again.
    async fn check_options(
        &mut self,
        config: &CatalogConfig,
        installed: &std::collections::BTreeSet<String>,
    ) {
        for (name, options) in &config.plugins {
            if !installed.contains(name) {
                self.config_problems.push(ConfigProblem::NotInstalled {
                    name: name.clone(),
                    dir: config.dir.clone(),
                });
                continue;
            }
            let Some(requested) = self.identity_of(name).map(|i| i.capabilities.clone()) else {
                continue;
            };
            for capability in &options.grants {
                if !requested.contains(capability) {
                    self.config_problems.push(ConfigProblem::GrantNotRequested {
                        plugin: name.clone(),
                        capability: capability.clone(),
                        requested: requested.clone(),
                    });
                }
            }
            let driver = self
                .drivers
                .iter()
                .find(|driver| driver.plugin.identity().name == *name);
            if let Some(driver) = driver
                && !options.settings.is_empty()
                && let Err(error) = driver
                    .plugin
                    .validate_settings(&options.settings_list())
                    .await
            {
                self.config_problems.push(ConfigProblem::SettingsRejected {
                    plugin: name.clone(),
                    error,
                });
            }
        }
    }

    /// Checks `classifiers` against what loaded: every listed name is a loaded server
    /// classifier that accepts its settings (`plugins.<name>.settings`, empty when none).
    /// Installed classifiers that are not listed are logged as unused.
    async fn check_classifiers(
        &mut self,
        config: &CatalogConfig,
        installed: &std::collections::BTreeSet<String>,
    ) {
        for name in &config.classifiers {
            let Some(classifier) = self
                .server_classifiers
                .iter()
                .find(|plugin| plugin.identity().name == *name)
            else {
                let problem = if !installed.contains(name) {
                    ConfigProblem::ClassifierNotInstalled {
                        name: name.clone(),
                        dir: config.dir.clone(),
                    }
                } else {
                    ConfigProblem::ClassifierNotLoaded {
                        name: name.clone(),
                        world: self.identity_of(name).map(|identity| identity.world),
                    }
                };
                self.config_problems.push(problem);
                continue;
            };
            let settings = self.settings(name).to_vec();
            if let Err(error) = classifier.validate_settings(&settings).await {
                self.config_problems.push(ConfigProblem::SettingsRejected {
                    plugin: name.clone(),
                    error,
                });
            }
        }
        for plugin in &self.server_classifiers {
            let name = &plugin.identity().name;
            if !config.classifiers.contains(name) {
                tracing::warn!(plugin = %name, "server classifier installed but not listed under `classifiers` in the plugin configuration; it is not used");
            }
        }
    }

    /// The identity of the loaded plugin `name`, of any world.
    fn identity_of(&self, name: &str) -> Option<&PluginIdentity> {
        let drivers = self.drivers.iter().map(|d| d.plugin.identity());
        let lookups = self.credential_lookups.iter().map(|p| p.identity());
        let generators = self.ignition_generators.iter().map(|p| p.identity());
        let classifiers = self.server_classifiers.iter().map(|p| p.identity());
        drivers
            .chain(lookups)
            .chain(generators)
            .chain(classifiers)
            .find(|identity| identity.name == name)
    }

    async fn load_one(
        &mut self,
        runtime: &PluginRuntime,
        component: PluginComponent,
        pinned: Option<&String>,
        grants: &[String],
    ) -> Result<(), LoadError> {
        let path = component.path.as_path();
        let metadata = PluginMetadata::from_component(&component.bytes).map_err(|problem| {
            LoadError::Metadata {
                path: path.to_path_buf(),
                problem,
            }
        })?;
        // Checked on the bytes that are about to be compiled, before they are.
        if let Some(expected) = pinned {
            let actual = hex::encode(Sha256::digest(&component.bytes));
            if !actual.eq_ignore_ascii_case(expected.trim().trim_start_matches("sha256:")) {
                return Err(LoadError::DigestMismatch {
                    path: path.to_path_buf(),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        match metadata.world {
            World::BmcDriver => {
                let plugin = runtime.load_bmc_driver_granted(&component, grants)?;
                let info = plugin.info().await.map_err(|error| LoadError::Invalid {
                    path: path.to_path_buf(),
                    world: World::BmcDriver,
                    message: format!("info() failed: {error}"),
                })?;
                self.drivers.push(InstalledDriver { plugin, info });
            }
            World::CredentialLookup => {
                let plugin = runtime.load_credential_lookup_granted(&component, grants)?;
                self.credential_lookups.push(plugin);
            }
            World::IgnitionGenerator => {
                let plugin = runtime.load_ignition_generator_granted(&component, grants)?;
                self.ignition_generators.push(plugin);
            }
            World::ServerClassifier => {
                let plugin = runtime.load_server_classifier_granted(&component, grants)?;
                self.server_classifiers.push(plugin);
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

    /// Every installed server classifier, listed or not.
    pub fn installed_server_classifiers(&self) -> &[ServerClassifierPlugin] {
        &self.server_classifiers
    }

    /// The configured server classifiers, in the order of `classifiers` (those that did not
    /// load are left out; the load reported them as [`ConfigProblem`]s). Each is called with
    /// [`settings`](Self::settings) of its name.
    pub fn server_classifiers(&self) -> Vec<&ServerClassifierPlugin> {
        let Some(config) = &self.config else {
            return Vec::new();
        };
        config
            .classifiers
            .iter()
            .filter_map(|name| {
                self.server_classifiers
                    .iter()
                    .find(|plugin| plugin.identity().name == *name)
            })
            .collect()
    }

    /// The configuration the catalog was loaded with.
    pub fn config(&self) -> Option<&CatalogConfig> {
        self.config.as_ref()
    }

    /// The settings the configuration gives plugin `name` (empty when none): what every
    /// call of that plugin passes (a driver's `target.settings`; for the active credential
    /// lookup and ignition generator, merged with the flags that carry their settings; a
    /// classifier's as they are).
    pub fn settings(&self, name: &str) -> &[(String, String)] {
        self.settings.get(name).map_or(&[], Vec::as_slice)
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

/// A registry refusal as a load error.
fn refused(name: &str, source: FetchError) -> LoadError {
    LoadError::Artifact {
        name: name.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_plugin_by_reference_needs_a_pinned_image_its_world_and_a_policy() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let policy = "verification:\n  allOf:\n    - {name: v, keyFile: /k.pub}\n";
        let ok = format!(
            "{policy}plugins:\n  acme:\n    image: oci://r.example/acme:1@{digest}\n    world: bmc-driver\n"
        );
        let parsed = CatalogConfig::from_yaml(&ok).expect("valid");
        assert_eq!(parsed.plugins["acme"].world, Some(World::BmcDriver));
        for (yaml, message) in [
            (
                format!(
                    "{policy}plugins:\n  acme:\n    image: oci://r.example/acme:1\n    world: bmc-driver\n"
                ),
                "has no digest: pin it",
            ),
            (
                format!("{policy}plugins:\n  acme:\n    image: oci://r.example/acme@{digest}\n"),
                "plugins.acme.image needs `world`",
            ),
            (
                format!(
                    "plugins:\n  acme:\n    image: oci://r.example/acme@{digest}\n    world: bmc-driver\n"
                ),
                "plugins.acme.image needs a verification policy",
            ),
            (
                String::from("plugins:\n  acme:\n    world: bmc-driver\n"),
                "plugins.acme.world is only used with `image`",
            ),
        ] {
            let error = CatalogConfig::from_yaml(&yaml).expect_err(message);
            assert!(error.contains(message), "{error}");
        }
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
    fn per_plugin_settings_and_grants_are_read_with_scalars_as_written() {
        let config = CatalogConfig::from_yaml(
            "plugins:\n  redfish:\n    grants: [credentials/reveal]\n    settings:\n      auth: session\n      power-wait-seconds: 30\n  macdb:\n    settings: {database: \"macPrefixes: []\"}\n",
        )
        .expect("valid");
        let redfish = &config.plugins["redfish"];
        assert_eq!(redfish.grants, names(&["credentials/reveal"]));
        assert_eq!(
            redfish.settings_list(),
            [
                (String::from("auth"), String::from("session")),
                (String::from("power-wait-seconds"), String::from("30")),
            ]
        );
        assert!(config.plugins["macdb"].grants.is_empty());
    }

    #[test]
    fn a_yaml_error_names_its_line_but_shows_no_setting_value() {
        let error = CatalogConfig::from_yaml(
            "plugins:\n  macdb:\n    settings:\n      database: \"password: s3cret-default\"\n    grants: [\n",
        )
        .expect_err("unclosed bracket");
        assert!(error.contains("line"), "{error}");
        assert!(!error.contains("s3cret-default"), "{error}");
    }

    #[test]
    fn a_grant_of_an_unknown_capability_is_an_error_naming_the_known_ones() {
        let error = CatalogConfig::from_yaml("plugins:\n  redfish:\n    grants: [network/any]\n")
            .expect_err("unknown capability");
        assert!(
            error.contains("plugins.redfish.grants")
                && error.contains("network/any")
                && error.contains("credentials/reveal"),
            "{error}"
        );
        let error =
            CatalogConfig::from_yaml("plugins:\n  redfish:\n    setting: {}\n").expect_err("typo");
        assert!(error.contains("setting"), "{error}");
    }

    #[test]
    fn overrides_replace_configured_settings_key_by_key() {
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let (merged, replaced) = with_overrides(
            &[pair("database", "from config"), pair("log", "on")],
            &[pair("database", "from --mac-db")],
        );
        assert_eq!(
            merged,
            [pair("log", "on"), pair("database", "from --mac-db")]
        );
        assert_eq!(replaced, names(&["database"]));
        let (merged, replaced) = with_overrides(&[pair("log", "on")], &[]);
        assert_eq!(merged, [pair("log", "on")]);
        assert!(replaced.is_empty());
    }

    #[test]
    fn classifiers_are_read_in_order_and_a_repeated_one_is_an_error() {
        let config = CatalogConfig::from_yaml("classifiers: [profiles, burn-in]\n").expect("valid");
        assert_eq!(config.classifiers, names(&["profiles", "burn-in"]));
        assert!(
            CatalogConfig::default().classifiers.is_empty(),
            "none by default"
        );
        let error = CatalogConfig::from_yaml("classifiers: [profiles, other, profiles]\n")
            .expect_err("repeated");
        assert_eq!(error, "classifiers: profiles is listed twice");
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
