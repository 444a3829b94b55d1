//! `ferrometal plugin inspect | validate | call`: load a `.wasm` exactly as the operator does,
//! so plugin authors can try it against a real BMC or emulator from a laptop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use ferrometal::plugins::accounts::AccountPassword;
use ferrometal::plugins::catalog::{CatalogConfig, PluginCatalog};
use ferrometal::plugins::ignition_generator::{IgnitionRequest, ServerFacts};
use ferrometal::plugins::server_classifier::ClassifierInput;
use ferrometal::plugins::types::{BmcEndpoint, BootOverride, BootTarget, PowerAction, TlsPolicy};
use ferrometal::plugins::{
    Limits, PluginMetadata, PluginMetrics, PluginRuntime, RuntimeConfig, World, forbidden_imports,
};

/// Plugin tooling.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show a plugin's world, ABI, SDK, capabilities, digest, imports and exports.
    Inspect {
        /// The `.wasm` component, or a registry reference (`oci://registry/repository:tag`,
        /// shown from its manifest without downloading the component).
        target: String,
        #[command(flatten)]
        registry: crate::plugin_registry_cli::RegistryArgs,
    },
    /// Push a component to an OCI registry (CNCF wasm layout, metadata as annotations) and
    /// print its pinned reference.
    Push(crate::plugin_registry_cli::PushArgs),
    /// Pull a component from an OCI registry into a directory (digest-named).
    Pull(crate::plugin_registry_cli::PullArgs),
    /// Check a plugin in a registry as the operator does before compiling it: pinned
    /// manifest, cosign signatures by the given keys, component digest and world.
    Verify(crate::plugin_registry_cli::VerifyArgs),
    /// Write a new plugin crate for a world (`bmc-driver`, `credential-lookup`,
    /// `ignition-generator`, `server-classifier`), with native unit tests against canned
    /// answers.
    New(crate::plugin_author::NewArgs),
    /// Build a plugin crate as a wasm32-wasip2 component with Debian's wasm toolchain and
    /// print the component's path.
    Build(crate::plugin_author::BuildArgs),
    /// Load a plugin directory like the operator does: what is installed, what failed, which
    /// driver serves each protocol, and which classifiers run in which order.
    List {
        /// Plugin directory (overrides the config file's `dir`).
        #[arg(long, env = "FERROMETAL_PLUGIN_DIR")]
        dir: Option<PathBuf>,
        /// Plugin selection config (YAML; see docs/plugins.md).
        #[arg(long, env = "FERROMETAL_PLUGIN_CONFIG")]
        config: Option<PathBuf>,
        /// Grant a capability (e.g. `credentials/reveal`; repeatable).
        #[arg(
            long = "grant",
            env = "FERROMETAL_PLUGIN_GRANTS",
            value_delimiter = ','
        )]
        grants: Vec<String>,
    },
    /// Load a plugin like the operator does and check settings with it.
    Validate {
        /// The `.wasm` component.
        file: PathBuf,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Call one operation of a plugin and print the result as JSON.
    Call {
        /// The `.wasm` component.
        file: PathBuf,
        #[command(flatten)]
        common: CommonArgs,
        #[command(subcommand)]
        operation: Operation,
    },
}

/// Options every loading command shares. Global, so they may come before or after the
/// operation of `plugin call` (`call FILE --setting k=v probe …` or `call FILE probe … --setting
/// k=v`).
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// A plugin setting `KEY=VALUE` (repeatable; values may contain commas).
    #[arg(long = "setting", global = true, value_parser = parse_setting)]
    settings: Vec<(String, String)>,
    /// A plugin setting read from a file, `KEY=PATH` (repeatable), e.g. the MAC database.
    #[arg(
        long = "setting-file",
        visible_alias = "settings",
        global = true,
        value_parser = parse_setting_file
    )]
    setting_files: Vec<(String, String)>,
    /// Grant a capability (e.g. `credentials/reveal`; repeatable).
    #[arg(
        long = "grant",
        env = "FERROMETAL_PLUGIN_GRANTS",
        value_delimiter = ',',
        global = true
    )]
    grants: Vec<String>,
    /// Deadline of the call, in seconds.
    #[arg(
        long,
        env = "FERROMETAL_PLUGIN_DEADLINE",
        default_value_t = 60.0,
        global = true
    )]
    deadline: f64,
}

/// Where the BMC is and how to log in.
#[derive(Debug, Args)]
pub struct BmcArgs {
    /// BMC URL, e.g. `https://10.0.0.5` or `http://127.0.0.1:8000`.
    #[arg(long, env = "FERROMETAL_BMC_URL")]
    bmc: String,
    /// BMC user name.
    #[arg(long, visible_alias = "user", env = "FERROMETAL_BMC_USERNAME")]
    username: String,
    /// File holding the BMC password (first line).
    #[arg(long, env = "FERROMETAL_BMC_PASSWORD_FILE")]
    password_file: PathBuf,
    /// PEM CA bundle to verify the BMC's certificate with.
    #[arg(long, env = "FERROMETAL_BMC_CA_FILE", conflicts_with = "insecure")]
    ca_file: Option<PathBuf>,
    /// Accept any certificate (test BMCs only).
    #[arg(long, env = "FERROMETAL_BMC_INSECURE")]
    insecure: bool,
    /// Manufacturer hint passed to the driver.
    #[arg(long)]
    manufacturer: Option<String>,
}

/// The operation to call.
#[derive(Debug, Subcommand)]
pub enum Operation {
    /// credential-lookup: look a MAC address up.
    Lookup {
        /// The MAC address.
        #[arg(long)]
        mac: String,
    },
    /// bmc-driver: name, version and specialisation.
    Info,
    /// bmc-driver: identify the BMC and its systems.
    Probe {
        #[command(flatten)]
        bmc: BmcArgs,
    },
    /// bmc-driver: read one system (identity, power, NICs) without the rest of the BMC.
    GetSystem {
        #[command(flatten)]
        bmc: BmcArgs,
        /// The system's URI from `probe`.
        #[arg(long)]
        system: String,
    },
    /// bmc-driver: read a system's power state.
    PowerState {
        #[command(flatten)]
        bmc: BmcArgs,
        /// The system's URI from `probe`.
        #[arg(long)]
        system: String,
    },
    /// bmc-driver: change a system's power state.
    SetPower {
        #[command(flatten)]
        bmc: BmcArgs,
        /// The system's URI from `probe`.
        #[arg(long)]
        system: String,
        /// What to do.
        #[arg(long, value_enum)]
        action: ActionArg,
    },
    /// bmc-driver: set a boot override and print what the BMC stored.
    SetBootOverride {
        #[command(flatten)]
        bmc: BmcArgs,
        /// The system's URI from `probe`.
        #[arg(long)]
        system: String,
        /// Where to boot.
        #[arg(long, value_enum)]
        target: TargetArg,
        /// UEFI (otherwise legacy) mode.
        #[arg(long)]
        uefi: bool,
        /// Every boot (otherwise the next one only).
        #[arg(long)]
        persistent: bool,
        /// URI for UEFI HTTP boot.
        #[arg(long)]
        http_boot_uri: Option<String>,
    },
    /// bmc-driver: read the BMC's account and lockout policy (Redfish `AccountService`).
    GetAccountPolicy {
        #[command(flatten)]
        bmc: BmcArgs,
    },
    /// bmc-driver: set an account's password (logged in as --username), creating the
    /// account with --create-with-role when the BMC has none of that name and allows it.
    SetAccountPassword {
        #[command(flatten)]
        bmc: BmcArgs,
        /// The account's user name.
        #[arg(long)]
        account: String,
        /// File holding the new password (first line); never taken from the command line.
        #[arg(long)]
        new_password_file: PathBuf,
        /// Create a missing account with this role (Redfish `RoleId`, e.g. `Administrator`).
        #[arg(long)]
        create_with_role: Option<String>,
    },
    /// ignition-generator: render an ignition.
    Generate {
        /// System UUID of the server.
        #[arg(long)]
        uuid: String,
        /// Registry URL the probe reports to.
        #[arg(long)]
        registry_url: String,
        /// File holding the per-boot token (first line).
        #[arg(long)]
        boot_token_file: PathBuf,
        /// A MAC address of the server (repeatable).
        #[arg(long = "mac")]
        macs: Vec<String>,
        /// An SSH public key to authorise (repeatable).
        #[arg(long = "ssh-key")]
        ssh_keys: Vec<String>,
    },
    /// server-classifier: classify a server and print the checked labels, taints and
    /// unclaimable verdict.
    Classify {
        /// JSON file with the server's facts (`name`, `processors`, `totalMemoryBytes`,
        /// `drives`, `accelerators`, `nics`, `labels` as an object, `bmc`, …).
        #[arg(long)]
        facts: PathBuf,
    },
}

/// Reads a server's facts for `classify` from a JSON file.
fn read_facts(path: &Path) -> anyhow::Result<ClassifierInput> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a server's facts (JSON: name, processors, totalMemoryBytes, drives, accelerators, nics, labels, bmc, …; see docs/plugins.md)",
            path.display()
        )
    })
}

/// Power actions on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ActionArg {
    /// Power on.
    On,
    /// Cut power.
    ForceOff,
    /// Ask the OS to shut down.
    GracefulShutdown,
    /// Reset at once.
    ForceRestart,
    /// Ask the OS to restart.
    GracefulRestart,
    /// Off, then on.
    PowerCycle,
}

/// Boot targets on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TargetArg {
    /// No override.
    None,
    /// PXE.
    Pxe,
    /// Local disk.
    Hdd,
    /// Optical/virtual media.
    Cd,
    /// UEFI HTTP boot.
    UefiHttp,
    /// Firmware setup.
    BiosSetup,
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))
}

fn parse_setting_file(text: &str) -> Result<(String, String), String> {
    let (key, path) = parse_setting(text)?;
    let contents =
        std::fs::read_to_string(&path).map_err(|error| format!("cannot read {path}: {error}"))?;
    Ok((key, contents))
}

impl CommonArgs {
    /// `--setting` and `--setting-file` values together.
    fn all_settings(&self) -> Vec<(String, String)> {
        self.settings
            .iter()
            .chain(&self.setting_files)
            .cloned()
            .collect()
    }
}

fn runtime(common: &CommonArgs) -> anyhow::Result<PluginRuntime> {
    Ok(PluginRuntime::new(
        RuntimeConfig {
            granted_capabilities: common.grants.clone(),
            ..RuntimeConfig::default()
        },
        PluginMetrics::default(),
    )?)
}

fn limits(common: &CommonArgs, default: Limits) -> anyhow::Result<Limits> {
    if !(common.deadline.is_finite() && common.deadline > 0.0) {
        bail!("--deadline must be a positive number of seconds");
    }
    Ok(Limits {
        deadline: Duration::from_secs_f64(common.deadline),
        ..default
    })
}

/// Warns about each import of `file` the host never provides: the operator refuses to load
/// a plugin with any of them.
fn warn_denied_imports(file: &Path, denied: &[String]) {
    for import in denied {
        eprintln!(
            "warning: {} imports `{import}`, which ferrometal never provides to plugins (no sockets or name lookups; a driver reaches its BMC through bmc-http): the operator refuses to load it",
            file.display()
        );
    }
}

/// The world a plugin implements, from its metadata section (nothing is compiled).
fn world_of(file: &Path) -> anyhow::Result<World> {
    let bytes = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
    let metadata = PluginMetadata::from_component(&bytes)
        .map_err(|problem| anyhow::anyhow!("cannot load plugin {}: {problem}", file.display()))?;
    Ok(metadata.world)
}

/// The first line of a secret's file (a password), without its line end.
fn first_line(path: &Path) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("read {}", path.display()))?
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned())
}

fn endpoint(bmc: &BmcArgs, settings: &[(String, String)]) -> anyhow::Result<BmcEndpoint> {
    let url =
        url::Url::parse(&bmc.bmc).with_context(|| format!("--bmc {:?} is not a URL", bmc.bmc))?;
    let scheme = url.scheme().to_owned();
    if scheme != "http" && scheme != "https" {
        bail!("--bmc must be an http:// or https:// URL");
    }
    let host = url
        .host_str()
        .context("--bmc has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port_or_known_default().context("--bmc has no port")?;
    let password = first_line(&bmc.password_file)?;
    let tls = match (&bmc.ca_file, bmc.insecure) {
        (Some(file), _) => TlsPolicy::CaBundle(
            std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?,
        ),
        (None, true) => TlsPolicy::Insecure,
        (None, false) if scheme == "https" => {
            bail!("an https BMC needs --ca-file (or --insecure for a test BMC)")
        }
        (None, false) => TlsPolicy::Insecure,
    };
    Ok(BmcEndpoint {
        scheme,
        host,
        port,
        tls,
        username: bmc.username.clone(),
        password,
        manufacturer_hint: bmc.manufacturer.clone(),
        settings: settings.to_vec(),
    })
}

fn print(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Runs a plugin command.
pub async fn run(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Inspect { target, registry } => {
            if !crate::plugin_registry_cli::is_local(&target) {
                return crate::plugin_registry_cli::inspect(&target, &registry).await;
            }
            let runtime = PluginRuntime::new(RuntimeConfig::default(), PluginMetrics::default())?;
            let inspection = runtime.inspect(Path::new(&target))?;
            warn_denied_imports(Path::new(&target), &inspection.denied_imports);
            print(&inspection)
        }
        PluginCommand::Push(args) => crate::plugin_registry_cli::push(args).await,
        PluginCommand::Pull(args) => crate::plugin_registry_cli::pull(args).await,
        PluginCommand::Verify(args) => crate::plugin_registry_cli::verify(args).await,
        PluginCommand::New(args) => crate::plugin_author::new(&args),
        PluginCommand::Build(args) => crate::plugin_author::build(&args),
        PluginCommand::List {
            dir,
            config,
            grants,
        } => list(dir, config, grants).await,
        PluginCommand::Validate { file, common } => {
            let runtime = runtime(&common)?;
            let bytes = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
            // Loading stops at the first; name them all.
            if let Ok(denied) = forbidden_imports(&bytes) {
                warn_denied_imports(&file, &denied);
            }
            match world_of(&file)? {
                World::BmcDriver => {
                    let driver = runtime.load_bmc_driver(&file)?;
                    let info = driver.info().await?;
                    driver.validate_settings(&common.all_settings()).await?;
                    println!(
                        "ok: bmc-driver {} {} loads and accepts the settings",
                        info.name, info.version
                    );
                }
                World::CredentialLookup => {
                    let plugin = runtime.load_credential_lookup(&file)?;
                    plugin.validate_settings(&common.all_settings()).await?;
                    println!(
                        "ok: credential-lookup {} loads and accepts the settings",
                        plugin.identity().name
                    );
                }
                World::IgnitionGenerator => {
                    let plugin = runtime.load_ignition_generator(&file)?;
                    plugin.validate_settings(&common.all_settings()).await?;
                    println!(
                        "ok: ignition-generator {} loads and accepts the settings",
                        plugin.identity().name
                    );
                }
                World::ServerClassifier => {
                    let plugin = runtime.load_server_classifier(&file)?;
                    plugin.validate_settings(&common.all_settings()).await?;
                    println!(
                        "ok: server-classifier {} loads and accepts the settings",
                        plugin.identity().name
                    );
                }
            }
            Ok(())
        }
        PluginCommand::Call {
            file,
            common,
            operation,
        } => call(&file, &common, operation).await,
    }
}

async fn list(
    dir: Option<PathBuf>,
    config: Option<PathBuf>,
    grants: Vec<String>,
) -> anyhow::Result<()> {
    let mut catalog_config = CatalogConfig::load(config.as_deref()).map_err(anyhow::Error::msg)?;
    if let Some(dir) = dir {
        catalog_config.dir = dir;
    }
    let runtime = PluginRuntime::new(
        RuntimeConfig {
            granted_capabilities: grants,
            ..RuntimeConfig::default()
        },
        PluginMetrics::default(),
    )?;
    let catalog = PluginCatalog::load(&runtime, catalog_config).await;
    println!(
        "plugins in {}:",
        catalog
            .config()
            .map(|c| c.dir.display().to_string())
            .unwrap_or_default()
    );
    for driver in catalog.drivers() {
        let specialised = if driver.info.manufacturers.is_empty() {
            String::from("generic")
        } else {
            driver.info.manufacturers.join(", ")
        };
        println!(
            "  bmc-driver          {:<24} {} {} ({specialised}) sha256 {}",
            driver.plugin.identity().name,
            driver.info.name,
            driver.info.version,
            driver.plugin.identity().short_digest()
        );
    }
    for plugin in catalog.credential_lookups() {
        println!(
            "  credential-lookup   {:<24} sha256 {}",
            plugin.identity().name,
            plugin.identity().short_digest()
        );
    }
    for plugin in catalog.ignition_generators() {
        println!(
            "  ignition-generator  {:<24} sha256 {}",
            plugin.identity().name,
            plugin.identity().short_digest()
        );
    }
    for plugin in catalog.installed_server_classifiers() {
        println!(
            "  server-classifier   {:<24} sha256 {}",
            plugin.identity().name,
            plugin.identity().short_digest()
        );
    }
    println!(
        "selection (per protocol: the driver for each manufacturer drivers name, and for any other):"
    );
    crate::plugin_author::print_selection(&catalog);
    let active = |name: Option<&str>| {
        name.map_or_else(
            || String::from("(none: install one, or name one in the config)"),
            str::to_owned,
        )
    };
    println!(
        "  {:<26} → {}",
        "credential lookup",
        active(
            catalog
                .credential_lookup()
                .map(|p| p.identity().name.as_str())
        )
    );
    println!(
        "  {:<26} → {}",
        "ignition generator",
        active(
            catalog
                .ignition_generator()
                .map(|p| p.identity().name.as_str())
        )
    );
    let classifiers: Vec<&str> = catalog
        .server_classifiers()
        .into_iter()
        .map(|p| p.identity().name.as_str())
        .collect();
    println!(
        "  {:<26} → {}",
        "classifiers (in order)",
        if classifiers.is_empty() {
            String::from("(none: list them under `classifiers` in the config)")
        } else {
            classifiers.join(", ")
        }
    );
    if !catalog.problems.is_empty() {
        println!("not loaded:");
        for problem in &catalog.problems {
            println!("  {}", problem.error);
        }
    }
    if !catalog.config_problems.is_empty() {
        println!("configuration problems (`ferrometal run` does not start with these):");
        for problem in &catalog.config_problems {
            println!("  {problem}");
        }
    }
    Ok(())
}

async fn call(file: &Path, common: &CommonArgs, operation: Operation) -> anyhow::Result<()> {
    let runtime = runtime(common)?;
    match operation {
        Operation::Lookup { mac } => {
            let plugin = runtime.load_credential_lookup(file)?;
            let plugin = plugin.with_limits(limits(
                common,
                ferrometal::plugins::credential_lookup::DEFAULT_LIMITS,
            )?);
            print(&plugin.lookup(&mac, &common.all_settings()).await?)
        }
        Operation::Generate {
            uuid,
            registry_url,
            boot_token_file,
            macs,
            ssh_keys,
        } => {
            let plugin = runtime.load_ignition_generator(file)?;
            let boot_token = std::fs::read_to_string(&boot_token_file)
                .with_context(|| format!("read {}", boot_token_file.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            let request = IgnitionRequest {
                facts: ServerFacts {
                    system_uuid: uuid.to_ascii_lowercase(),
                    hostname: None,
                    macs,
                    labels: Vec::new(),
                },
                registry_url,
                boot_token,
                ssh_authorized_keys: ssh_keys,
                settings: common.all_settings(),
            };
            println!("{}", plugin.generate(&request).await?);
            Ok(())
        }
        Operation::Classify { facts } => {
            let input = read_facts(&facts)?;
            let plugin = runtime.load_server_classifier(file)?.with_limits(limits(
                common,
                ferrometal::plugins::server_classifier::DEFAULT_LIMITS,
            )?);
            print(&plugin.classify(&input, &common.all_settings()).await?)
        }
        operation => {
            let driver = runtime.load_bmc_driver(file)?.with_limits(limits(
                common,
                ferrometal::plugins::bmc_driver::DEFAULT_LIMITS,
            )?);
            match operation {
                Operation::Info => print(&driver.info().await?),
                Operation::Probe { bmc } => print(
                    &driver
                        .probe(&endpoint(&bmc, &common.all_settings())?)
                        .await?,
                ),
                Operation::GetSystem { bmc, system } => print(
                    &driver
                        .system(&endpoint(&bmc, &common.all_settings())?, &system)
                        .await?,
                ),
                Operation::PowerState { bmc, system } => print(
                    &driver
                        .power_state(&endpoint(&bmc, &common.all_settings())?, &system)
                        .await?,
                ),
                Operation::SetPower {
                    bmc,
                    system,
                    action,
                } => {
                    let action = match action {
                        ActionArg::On => PowerAction::On,
                        ActionArg::ForceOff => PowerAction::ForceOff,
                        ActionArg::GracefulShutdown => PowerAction::GracefulShutdown,
                        ActionArg::ForceRestart => PowerAction::ForceRestart,
                        ActionArg::GracefulRestart => PowerAction::GracefulRestart,
                        ActionArg::PowerCycle => PowerAction::PowerCycle,
                    };
                    driver
                        .set_power(&endpoint(&bmc, &common.all_settings())?, &system, action)
                        .await?;
                    println!("ok");
                    Ok(())
                }
                Operation::SetBootOverride {
                    bmc,
                    system,
                    target,
                    uefi,
                    persistent,
                    http_boot_uri,
                } => {
                    let boot = BootOverride {
                        target: match target {
                            TargetArg::None => BootTarget::None,
                            TargetArg::Pxe => BootTarget::Pxe,
                            TargetArg::Hdd => BootTarget::Hdd,
                            TargetArg::Cd => BootTarget::Cd,
                            TargetArg::UefiHttp => BootTarget::UefiHttp,
                            TargetArg::BiosSetup => BootTarget::BiosSetup,
                        },
                        uefi,
                        persistent,
                        http_boot_uri,
                    };
                    print(
                        &driver
                            .set_boot_override(
                                &endpoint(&bmc, &common.all_settings())?,
                                &system,
                                &boot,
                            )
                            .await?,
                    )
                }
                Operation::GetAccountPolicy { bmc } => print(
                    &driver
                        .account_policy(&endpoint(&bmc, &common.all_settings())?)
                        .await?,
                ),
                Operation::SetAccountPassword {
                    bmc,
                    account,
                    new_password_file,
                    create_with_role,
                } => {
                    let account = AccountPassword {
                        username: account,
                        password: first_line(&new_password_file)?,
                        create_with_role,
                    };
                    print(
                        &driver
                            .set_account_password(
                                &endpoint(&bmc, &common.all_settings())?,
                                &account,
                            )
                            .await?,
                    )
                }
                Operation::Lookup { .. }
                | Operation::Generate { .. }
                | Operation::Classify { .. } => {
                    unreachable!("handled above")
                }
            }
        }
    }
}
