//! The arguments of `ferrometal run` (clap, each flag also an env var) and their conversion
//! into typed [`Settings`].
//!
//! The conversion is pure: it checks and parses what the flags say and fails with a
//! [`ConfigError`] that names the flag. Files named by flags (MAC database, CA bundle, DHCP
//! configuration, plugin configuration) are read while the operator is wired, not here.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ferrometal::api::common::ProtocolScheme;
use ferrometal::boot::image::RegistryConfig;
use ferrometal::boot::listener::HttpLimits;
use ferrometal::controllers::bmc::BootlessSystems;
use ferrometal::controllers::server::{DiscoveryMode, DiscoverySettings};
use ferrometal::leader::ElectionSettings;
use ferrometal::plugins::RuntimeConfig;
use ferrometal::plugins::types::BootTarget;

/// Options of `ferrometal run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Directory holding the plugin components.
    #[arg(long, env = "FERROMETAL_PLUGIN_DIR", default_value = ferrometal::plugins::catalog::DEFAULT_PLUGIN_DIR)]
    plugin_dir: PathBuf,
    /// Plugin selection config (YAML; see docs/plugins.md).
    #[arg(long, env = "FERROMETAL_PLUGIN_CONFIG")]
    plugin_config: Option<PathBuf>,
    /// metal-operator-format MAC-prefix database, passed to the credential-lookup plugin as
    /// its `database` setting.
    #[arg(long, env = "FERROMETAL_MAC_DB")]
    mac_db: Option<PathBuf>,
    /// Capabilities granted to every plugin that requests them (e.g. `credentials/reveal`);
    /// the plugin configuration's `plugins.<name>.grants` grant to one plugin.
    #[arg(
        long = "grant",
        env = "FERROMETAL_PLUGIN_GRANTS",
        value_delimiter = ','
    )]
    grants: Vec<String>,
    /// Endpoints reconciled at once.
    #[arg(long, env = "FERROMETAL_ENDPOINT_CONCURRENCY", default_value_t = 16)]
    endpoint_concurrency: u16,
    /// BMCs reconciled at once (each BMC still gets one driver call at a time).
    #[arg(long, env = "FERROMETAL_BMC_CONCURRENCY", default_value_t = 64)]
    bmc_concurrency: u16,
    /// ServerClaims reconciled at once (bindings of one Server by two claims are refused by
    /// the API server, whatever this is).
    #[arg(long, env = "FERROMETAL_CLAIM_CONCURRENCY", default_value_t = 8)]
    claim_concurrency: u16,
    /// Hold every Server unclaimable (`spec.unclaimable: true`) from the moment it is seen
    /// until the server-classifier plugins (`classifiers` in the plugin configuration) have
    /// classified its discovered facts.
    #[arg(long, env = "FERROMETAL_HOLD_UNTIL_CLASSIFIED")]
    hold_until_classified: bool,
    /// Scheme for BMCs whose `spec.protocol.scheme` is unset (metal-operator's default is http).
    #[arg(long, env = "FERROMETAL_BMC_DEFAULT_SCHEME", default_value = "http", value_parser = ["http", "https"])]
    bmc_default_scheme: String,
    /// PEM CA bundle to verify BMC certificates with.
    #[arg(
        long,
        env = "FERROMETAL_BMC_CA_FILE",
        conflicts_with = "bmc_insecure_tls"
    )]
    bmc_ca_file: Option<PathBuf>,
    /// Accept any BMC certificate (lab fleets only).
    #[arg(long, env = "FERROMETAL_BMC_INSECURE_TLS")]
    bmc_insecure_tls: bool,
    /// Base seconds between attempts with the credential database's next default credential
    /// (doubles per attempt, so BMCs do not lock the account).
    #[arg(
        long,
        env = "FERROMETAL_CREDENTIAL_RETRY_SECONDS",
        default_value_t = 30
    )]
    credential_retry_seconds: u64,
    /// When ferrometal replaces a BMC's password with a random one of its own: `off` (only on
    /// demand, `metal.ironcore.dev/operation: rotate-credentials` on the BMC) or `onboarding`
    /// (right after the first successful connection with a credential-database default). Only
    /// BMCSecrets ferrometal wrote, or that opt in, are rotated (docs/security.md).
    #[arg(
        long,
        env = "FERROMETAL_BMC_CREDENTIAL_ROTATION",
        default_value = "off"
    )]
    bmc_credential_rotation: ferrometal::controllers::rotation::Mode,
    /// With `--bmc-credential-rotation onboarding`: rotate again this many seconds after the
    /// last rotation; 0: never.
    #[arg(
        long,
        env = "FERROMETAL_BMC_CREDENTIAL_ROTATION_INTERVAL_SECONDS",
        default_value_t = 0
    )]
    bmc_credential_rotation_interval_seconds: u64,
    /// Where to serve /metrics, /healthz and /readyz (`127.0.0.1:0` picks a free port).
    #[arg(
        long,
        env = "FERROMETAL_METRICS_BIND_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    metrics_bind_address: SocketAddr,
    /// Serve the fleet view at `/ui` on the metrics port (viewers log in with a Kubernetes
    /// token that may list Servers); `=false` turns it off.
    #[arg(long, env = "FERROMETAL_UI", default_value_t = true, action = clap::ArgAction::Set)]
    ui: bool,
    /// Minutes a Server may stay New, Initial or Discovery before the fleet view flags it
    /// stuck.
    #[arg(long, env = "FERROMETAL_UI_STUCK_MINUTES", default_value_t = 30)]
    ui_stuck_minutes: u64,
    /// Seconds between probes of a BMC (also the retry interval of a failing one).
    #[arg(long, env = "FERROMETAL_BMC_RESYNC_SECONDS", default_value_t = 120)]
    bmc_resync_seconds: u64,
    /// Namespace of ServerBootConfigurations and ignition Secrets (default: all namespaces).
    #[arg(long, env = "FERROMETAL_NAMESPACE")]
    namespace: Option<String>,
    /// DHCP server configuration (YAML, see docs/dhcp.md); without it no DHCP is served.
    #[arg(long, env = "FERROMETAL_DHCP_CONFIG")]
    dhcp_config: Option<PathBuf>,
    /// Directory for compiled plugins, so restarts skip compilation (default: none, compile
    /// at every start).
    #[arg(long, env = "FERROMETAL_PLUGIN_CACHE_DIR")]
    plugin_cache_dir: Option<PathBuf>,
    /// Plugin calls running at once across all plugins (1–4096); more wait. Calls queued for
    /// a busy BMC do not count. Also sizes the plugin instance pool (address space only).
    #[arg(long, env = "FERROMETAL_PLUGIN_MAX_CONCURRENT_CALLS", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    plugin_max_concurrent_calls: u32,
    /// MiB of linear memory all running plugin calls may hold together (16–1048576); calls
    /// wait for their share, and a plugin that would grow beyond it fails. The default leaves
    /// the chart's 512 MiB Pod limit room for the operator itself.
    #[arg(long, env = "FERROMETAL_PLUGIN_MEMORY_BUDGET_MIB", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    plugin_memory_budget_mib: u64,
    #[command(flatten)]
    boot: BootArgs,
    #[command(flatten)]
    discovery: DiscoveryArgs,
    #[command(flatten)]
    election: ElectionArgs,
}

/// Options of leader election.
#[derive(Debug, Args)]
struct ElectionArgs {
    /// Elect a leader with a Lease so several replicas can run: only the leader reconciles
    /// and serves DHCP; every replica serves the boot server and the probe registry.
    #[arg(long, env = "FERROMETAL_LEADER_ELECT")]
    leader_elect: bool,
    /// Name of the leader Lease.
    #[arg(
        long,
        env = "FERROMETAL_LEADER_ELECTION_LEASE_NAME",
        default_value = "ferrometal-leader"
    )]
    leader_election_lease_name: String,
    /// Namespace of the leader Lease (default: the namespace of the kubeconfig context, or of
    /// the Pod in a cluster).
    #[arg(long, env = "FERROMETAL_LEADER_ELECTION_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// Identity written into the Lease (default: host name plus a random suffix).
    #[arg(long, env = "FERROMETAL_LEADER_ELECTION_IDENTITY")]
    leader_election_identity: Option<String>,
    /// Seconds the lease lasts without renewal: a crashed leader is replaced within this.
    #[arg(
        long,
        env = "FERROMETAL_LEADER_ELECTION_LEASE_SECONDS",
        default_value_t = 15
    )]
    leader_election_lease_seconds: u64,
    /// Seconds before expiry the leader renews its lease.
    #[arg(
        long,
        env = "FERROMETAL_LEADER_ELECTION_RENEW_SECONDS",
        default_value_t = 5
    )]
    leader_election_renew_seconds: u64,
}

/// Options of the first boot (the Server reconciler).
#[derive(Debug, Args)]
struct DiscoveryArgs {
    /// OCI reference of the discovery OS image Servers boot into.
    #[arg(long, env = "FERROMETAL_DISCOVERY_IMAGE")]
    discovery_image: Option<String>,
    /// Where metalprobe reports (default: the boot server URL, which serves the registry).
    #[arg(long, env = "FERROMETAL_DISCOVERY_REGISTRY_URL")]
    discovery_registry_url: Option<url::Url>,
    /// A setting of the ignition-generator plugin, `key=value` (e.g.
    /// `metalprobe-url=http://10.0.0.1:8082/metalprobe`); repeatable.
    #[arg(
        long = "ignition-setting",
        env = "FERROMETAL_IGNITION_SETTINGS",
        value_delimiter = ','
    )]
    ignition_settings: Vec<String>,
    /// SSH public key for the discovery system's user; repeatable.
    #[arg(long = "discovery-ssh-key", env = "FERROMETAL_DISCOVERY_SSH_KEYS")]
    discovery_ssh_keys: Vec<String>,
    /// Seconds a discovery may take before it times out and is retried (a Server's
    /// `ferrometal.dev/discovery-timeout-seconds` annotation overrides it).
    #[arg(
        long,
        env = "FERROMETAL_DISCOVERY_TIMEOUT_SECONDS",
        default_value_t = 1800
    )]
    discovery_timeout_seconds: u64,
    /// First delay before retrying a timed-out discovery (doubles per attempt, at most 1 h).
    #[arg(long, env = "FERROMETAL_DISCOVERY_RETRY_SECONDS", default_value_t = 60)]
    discovery_retry_seconds: u64,
    /// Leave servers powered on after discovery (default: power them off).
    #[arg(long, env = "FERROMETAL_KEEP_POWER_AFTER_DISCOVERY")]
    keep_power_after_discovery: bool,
    /// Seconds between looks at a Server when nothing happens (power, spec.power).
    #[arg(long, env = "FERROMETAL_SERVER_RESYNC_SECONDS", default_value_t = 120)]
    server_resync_seconds: u64,
    /// How Servers are discovered: `in-band` (boot the discovery image, metalprobe reports)
    /// or `out-of-band` (take the BMC's inventory, no boot); a Server's
    /// `ferrometal.dev/discovery-mode` annotation overrides it.
    #[arg(long, env = "FERROMETAL_DISCOVERY_MODE", default_value = "in-band", value_parser = ["in-band", "out-of-band"])]
    discovery_mode: String,
    /// At the end of an in-band discovery, also read the BMC's hardware inventory (in the
    /// operation that powers the server off) and compare it with the probe's report: the
    /// Server's `InventoryConsistent` condition names the differences (a disk the BMC does
    /// not list, a NIC the probe did not see). Costs the driver's `get-system` per discovery.
    #[arg(long, env = "FERROMETAL_INVENTORY_CROSS_CHECK")]
    inventory_cross_check: bool,
    /// The one-time boot an in-band discovery asks the BMC for: `pxe` (the firmware PXE- or
    /// iPXE-boots through DHCP and follows `/ipxe`) or `uefi-http` (Redfish `UefiHttp`: the
    /// firmware boots the image's UKI from the URL DHCP names, e.g. ferrometal's
    /// `boot.httpBootUrl` `…/uki/${uuid}.efi`).
    #[arg(long, env = "FERROMETAL_DISCOVERY_BOOT_TARGET", default_value = "pxe", value_parser = ["pxe", "uefi-http"])]
    discovery_boot_target: String,
    /// Systems that take no boot override (no Redfish `Boot` object, e.g. a DPU or SmartNIC
    /// SoC): `skip` them as metal-operator does, or make them `out-of-band` Servers.
    #[arg(long, env = "FERROMETAL_SYSTEMS_WITHOUT_BOOT_OVERRIDE", default_value = "skip", value_parser = ["skip", "out-of-band"])]
    systems_without_boot_override: String,
    /// Seconds to wait, after a report that has everything else, for NICs the BMC lists but
    /// the probe did not see; then the Server becomes Available with a condition naming them.
    #[arg(
        long,
        env = "FERROMETAL_DISCOVERY_NIC_WAIT_SECONDS",
        default_value_t = 120
    )]
    discovery_nic_wait_seconds: u64,
    /// Servers reconciled at once (each BMC still gets one driver call at a time).
    #[arg(long, env = "FERROMETAL_SERVER_CONCURRENCY", default_value_t = 64)]
    server_concurrency: u16,
}

/// Options of the boot server and the BootConfig reconciler.
#[derive(Debug, Args)]
struct BootArgs {
    /// Where the boot server listens (iPXE, ignition, /httpboot, image proxy).
    #[arg(
        long,
        env = "FERROMETAL_BOOT_BIND_ADDRESS",
        default_value = "0.0.0.0:8082"
    )]
    boot_bind_address: SocketAddr,
    /// The boot server's URL as machines reach it (e.g. `http://10.0.0.1:8082`); defaults to
    /// the bind address, with 127.0.0.1 for an unspecified IP (fine for local tests only).
    /// Give it twice (or comma-separated) for a dual-stack boot network: once with an IPv6
    /// literal (`http://[fd00::1]:8082`), which machines asking over IPv6 are told, and once
    /// for everyone else (the first one also goes into the discovery ignition).
    #[arg(long, env = "FERROMETAL_BOOT_SERVER_URL", value_delimiter = ',')]
    boot_server_url: Vec<url::Url>,
    /// Registries (host or host:port) boot images may come from; empty allows any.
    #[arg(
        long,
        env = "FERROMETAL_BOOT_ALLOWED_REGISTRIES",
        value_delimiter = ',',
        default_value = "ghcr.io"
    )]
    boot_allowed_registries: Vec<String>,
    /// Registries spoken to over plain HTTP instead of HTTPS (lab registries).
    #[arg(
        long,
        env = "FERROMETAL_BOOT_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    boot_insecure_registries: Vec<String>,
    /// Architecture picked from multi-architecture images.
    #[arg(long, env = "FERROMETAL_BOOT_ARCHITECTURE", default_value = "amd64")]
    boot_architecture: String,
    /// Proxies (IPs or CIDRs) whose X-Forwarded-For header identifies /httpboot clients.
    #[arg(long, env = "FERROMETAL_BOOT_TRUSTED_PROXIES", value_delimiter = ',')]
    boot_trusted_proxies: Vec<String>,
    /// Extra kernel arguments for every iPXE boot.
    #[arg(long, env = "FERROMETAL_BOOT_KERNEL_ARGS", default_value = "")]
    boot_kernel_args: String,
    /// Serve ignition Secrets that have no `boot-token` key to anyone who asks (metal-operator's
    /// original behaviour; off by default).
    #[arg(long, env = "FERROMETAL_BOOT_ALLOW_UNAUTHENTICATED_IGNITION")]
    boot_allow_unauthenticated_ignition: bool,
    /// Accept probe reports without the boot token (metal-operator's own metalprobe); reports
    /// with a wrong token are still refused.
    #[arg(long, env = "FERROMETAL_REGISTRY_ALLOW_UNAUTHENTICATED")]
    registry_allow_unauthenticated: bool,
    /// The metalprobe binary the boot server offers at `/metalprobe`; the ignition
    /// generator's `metalprobe-url` defaults to it.
    #[arg(long, env = "FERROMETAL_METALPROBE_BINARY")]
    metalprobe_binary: Option<PathBuf>,
    /// ServerBootConfigurations reconciled at once.
    #[arg(long, env = "FERROMETAL_BOOTCONFIG_CONCURRENCY", default_value_t = 32)]
    bootconfig_concurrency: u16,
    /// Connections the boot server (and registry) serves at once; further ones are closed as
    /// they arrive (machines retry).
    #[arg(long, env = "FERROMETAL_BOOT_MAX_CONNECTIONS", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..))]
    boot_max_connections: u32,
    /// Seconds a request's headers may take, and a kept-alive connection may sit idle.
    #[arg(
        long,
        env = "FERROMETAL_BOOT_HEADER_TIMEOUT_SECONDS",
        default_value_t = 10
    )]
    boot_header_timeout_seconds: u64,
    /// Seconds a request's whole body may take to arrive (probe reports).
    #[arg(
        long,
        env = "FERROMETAL_BOOT_BODY_TIMEOUT_SECONDS",
        default_value_t = 30
    )]
    boot_body_timeout_seconds: u64,
    /// Where the image proxy keeps verified layers (an earlier run's layers are removed at
    /// start); default: a fresh directory under the system's temporary directory, removed at
    /// exit.
    #[arg(long, env = "FERROMETAL_BOOT_LAYER_CACHE_DIR")]
    boot_layer_cache_dir: Option<PathBuf>,
    /// Accept a machine's script, ignition and reports only from the address ferrometal's
    /// DHCP server leased to it (when it leased one); `=false` for sites where ferrometal's
    /// DHCP hands out addresses but machines reach the boot server through NAT.
    #[arg(long, env = "FERROMETAL_BOOT_SOURCE_BINDING", default_value_t = true,
          action = clap::ArgAction::Set)]
    boot_source_binding: bool,
    /// Most MiB of layers the image proxy keeps on disk.
    #[arg(long, env = "FERROMETAL_BOOT_LAYER_CACHE_MIB", default_value_t = 4096)]
    boot_layer_cache_mib: u64,
}

/// A flag whose value cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An `--ignition-setting` without `=`.
    #[error("--ignition-setting {setting:?} is not key=value")]
    IgnitionSetting {
        /// The setting as given.
        setting: String,
    },
    /// A `--boot-trusted-proxies` entry that is neither an IP nor a CIDR.
    #[error("--boot-trusted-proxies: {entry:?} is not an IP or CIDR")]
    TrustedProxy {
        /// The entry as given (trimmed).
        entry: String,
        /// Why it is not an IP.
        #[source]
        source: std::net::AddrParseError,
    },
    /// A `--discovery-mode` other than `in-band` or `out-of-band`.
    #[error("--discovery-mode: {message}")]
    DiscoveryMode {
        /// What the parser said.
        message: String,
    },
    /// More than one `--boot-server-url` for one address family.
    #[error("--boot-server-url: at most one URL with an IPv6 literal and one other, got {given:?}")]
    BootServerUrls {
        /// The URLs as given.
        given: Vec<String>,
    },
    /// A `--systems-without-boot-override` other than `skip` or `out-of-band`.
    #[error("--systems-without-boot-override: {message}")]
    SystemsWithoutBootOverride {
        /// What the parser said.
        message: String,
    },
}

/// Everything `ferrometal run` was told, checked and typed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the plugins are and how they run.
    pub plugins: PluginSettings,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_address: SocketAddr,
    /// The fleet view at `/ui` on the metrics port (`None`: turned off).
    pub ui: Option<ferrometal::ui::UiSettings>,
    /// How many objects of each kind are reconciled at once.
    pub concurrency: Concurrency,
    /// How BMCs are reached and probed.
    pub bmc: BmcOptions,
    /// The boot server and the boot-configuration reconciler.
    pub boot: BootOptions,
    /// The first boot (the Server reconciler).
    pub discovery: DiscoveryOptions,
    /// Namespace of ServerBootConfigurations and ignition Secrets (`None`: all namespaces).
    pub namespace: Option<String>,
    /// DHCP configuration file; without it no DHCP (or TFTP) is served.
    pub dhcp_config: Option<PathBuf>,
    /// Leader election, when asked for (`--leader-elect`); without it this process leads.
    pub election: Option<ElectionOptions>,
    /// Hold Servers unclaimable until they are classified (`--hold-until-classified`).
    pub hold_until_classified: bool,
}

/// Where the plugins come from and how the runtime runs them.
#[derive(Debug, Clone)]
pub struct PluginSettings {
    /// Directory holding the plugin components.
    pub dir: PathBuf,
    /// Plugin selection config (YAML), read at start.
    pub config: Option<PathBuf>,
    /// MAC-prefix database handed to the credential-lookup plugin as `database`.
    pub mac_db: Option<PathBuf>,
    /// Grants, compile cache, call cap and memory budget of the runtime.
    pub runtime: RuntimeConfig,
}

/// Objects reconciled at once, per controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency {
    /// Endpoints.
    pub endpoints: u16,
    /// BMCs.
    pub bmcs: u16,
    /// Servers.
    pub servers: u16,
    /// ServerBootConfigurations.
    pub boot_configurations: u16,
    /// ServerClaims.
    pub claims: u16,
}

/// How BMC certificates are trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BmcTrust {
    /// Verify against the PEM bundle in this file.
    CaFile(PathBuf),
    /// Accept any certificate (`--bmc-insecure-tls`).
    AnyCertificate,
    /// No bundle given: https BMCs fail verification with a clear TLS condition.
    NoCertificate,
}

/// How BMCs are reached and probed.
#[derive(Debug, Clone)]
pub struct BmcOptions {
    /// Scheme of BMCs whose `spec.protocol.scheme` is unset.
    pub default_scheme: ProtocolScheme,
    /// How their certificates are verified.
    pub trust: BmcTrust,
    /// Time between probes of a BMC (at least a second).
    pub resync: Duration,
    /// Base delay before the next default credential is tried (at least a second).
    pub credential_retry: Duration,
    /// When BMC credentials are rotated.
    pub rotation: ferrometal::controllers::rotation::Schedule,
    /// What becomes of systems that take no boot override.
    pub bootless: BootlessSystems,
}

/// The boot server and the boot-configuration reconciler.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// Where the boot server listens.
    pub bind_address: SocketAddr,
    /// The boot server's URL as machines reach it, without a trailing `/`; `None` derives it
    /// from the bound address ([`default_boot_url`]).
    pub url: Option<String>,
    /// The URL machines asking over IPv6 are told, when it differs from `url`.
    pub ipv6_url: Option<String>,
    /// Which registries boot images may come from, and how they are spoken to.
    pub registries: RegistryConfig,
    /// Proxies whose X-Forwarded-For header identifies /httpboot clients.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Extra kernel arguments for every iPXE boot.
    pub kernel_args: String,
    /// Serve ignition Secrets without a `boot-token` key to anyone.
    pub allow_unauthenticated_ignition: bool,
    /// Accept probe reports without the boot token.
    pub registry_allow_unauthenticated: bool,
    /// The metalprobe binary offered at `/metalprobe`.
    pub metalprobe_binary: Option<PathBuf>,
    /// Connection cap and timeouts of the boot server's listener.
    pub limits: HttpLimits,
    /// The layer cache's directory (`None`: a temporary one).
    pub layer_cache_dir: Option<PathBuf>,
    /// The layer cache's size in bytes.
    pub layer_cache_bytes: u64,
    /// Whether machines leased an address by ferrometal's DHCP are accepted only from it.
    pub source_binding: bool,
}

/// The first boot (the Server reconciler), before the boot server's URL is known.
#[derive(Debug, Clone)]
pub struct DiscoveryOptions {
    /// OCI reference of the discovery OS image.
    pub image: Option<String>,
    /// Namespace of the discovery ServerBootConfigurations and Secrets (`default` unless
    /// `--namespace` is given).
    pub namespace: String,
    /// Where metalprobe reports, without a trailing `/`; `None`: the boot server's URL.
    pub registry_url: Option<String>,
    /// The `--ignition-setting`s, trimmed, blank ones left out.
    pub ignition_settings: Vec<(String, String)>,
    /// SSH keys for the discovery system's user.
    pub ssh_authorized_keys: Vec<String>,
    /// How long a discovery may take (at least a second).
    pub timeout: Duration,
    /// First retry delay after a timeout (at least a second).
    pub retry_base: Duration,
    /// How long to wait for NICs the probe did not see.
    pub nic_wait: Duration,
    /// Power servers off once discovered.
    pub power_off_after: bool,
    /// Time between looks at a Server when nothing happens (at least a second).
    pub resync: Duration,
    /// The default discovery mode.
    pub mode: DiscoveryMode,
    /// The boot override a discovery asks for (`Pxe` or `UefiHttp`).
    pub boot_target: BootTarget,
    /// Compare the BMC's inventory with the probe's report (`--inventory-cross-check`).
    pub inventory_cross_check: bool,
}

/// Leader election, as far as the flags say; the Kubernetes client supplies the default
/// namespace ([`ElectionOptions::settings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionOptions {
    /// Name of the Lease.
    pub lease_name: String,
    /// Namespace of the Lease (`None`: the client's default namespace).
    pub namespace: Option<String>,
    /// Identity written into the Lease (`None`: [`ferrometal::leader::default_identity`]).
    pub identity: Option<String>,
    /// How long the lease lasts without renewal.
    pub lease_duration: Duration,
    /// How long before expiry the leader renews.
    pub renew_before: Duration,
}

impl TryFrom<RunArgs> for Settings {
    type Error = ConfigError;

    fn try_from(args: RunArgs) -> Result<Self, ConfigError> {
        let RunArgs {
            plugin_dir,
            plugin_config,
            mac_db,
            grants,
            endpoint_concurrency,
            bmc_concurrency,
            claim_concurrency,
            hold_until_classified,
            bmc_default_scheme,
            bmc_ca_file,
            bmc_insecure_tls,
            credential_retry_seconds,
            bmc_credential_rotation,
            bmc_credential_rotation_interval_seconds,
            metrics_bind_address,
            ui,
            ui_stuck_minutes,
            bmc_resync_seconds,
            namespace,
            dhcp_config,
            plugin_cache_dir,
            plugin_max_concurrent_calls,
            plugin_memory_budget_mib,
            boot,
            discovery,
            election,
        } = args;
        let concurrency = Concurrency {
            endpoints: endpoint_concurrency,
            bmcs: bmc_concurrency,
            servers: discovery.server_concurrency,
            boot_configurations: boot.bootconfig_concurrency,
            claims: claim_concurrency,
        };
        let bmc = BmcOptions {
            default_scheme: if bmc_default_scheme == "https" {
                ProtocolScheme::Https
            } else {
                ProtocolScheme::Http
            },
            trust: match (bmc_ca_file, bmc_insecure_tls) {
                (Some(file), _) => BmcTrust::CaFile(file),
                (None, true) => BmcTrust::AnyCertificate,
                (None, false) => BmcTrust::NoCertificate,
            },
            resync: seconds_at_least_one(bmc_resync_seconds),
            credential_retry: seconds_at_least_one(credential_retry_seconds),
            rotation: ferrometal::controllers::rotation::Schedule {
                mode: bmc_credential_rotation,
                interval: (bmc_credential_rotation_interval_seconds > 0)
                    .then(|| Duration::from_secs(bmc_credential_rotation_interval_seconds)),
            },
            bootless: discovery
                .systems_without_boot_override
                .parse()
                .map_err(|message| ConfigError::SystemsWithoutBootOverride { message })?,
        };
        Ok(Self {
            plugins: PluginSettings {
                dir: plugin_dir,
                config: plugin_config,
                mac_db,
                runtime: RuntimeConfig {
                    granted_capabilities: grants,
                    cache_dir: plugin_cache_dir,
                    max_concurrent_calls: usize::try_from(plugin_max_concurrent_calls)
                        .unwrap_or(usize::MAX),
                    memory_budget_bytes: usize::try_from(
                        plugin_memory_budget_mib.saturating_mul(1024 * 1024),
                    )
                    .unwrap_or(usize::MAX),
                },
            },
            metrics_address: metrics_bind_address,
            ui: ui.then(|| ferrometal::ui::UiSettings {
                stuck_after: std::time::Duration::from_secs(ui_stuck_minutes.saturating_mul(60)),
                ..Default::default()
            }),
            concurrency,
            bmc,
            discovery: DiscoveryOptions::try_from_args(discovery, namespace.as_deref())?,
            boot: BootOptions::try_from(boot)?,
            namespace,
            dhcp_config,
            hold_until_classified,
            election: election.leader_elect.then(|| ElectionOptions {
                lease_name: election.leader_election_lease_name,
                namespace: election.leader_election_namespace,
                identity: election.leader_election_identity,
                lease_duration: Duration::from_secs(election.leader_election_lease_seconds),
                renew_before: Duration::from_secs(election.leader_election_renew_seconds),
            }),
        })
    }
}

impl TryFrom<BootArgs> for BootOptions {
    type Error = ConfigError;

    fn try_from(args: BootArgs) -> Result<Self, ConfigError> {
        let (url, ipv6_url) = boot_urls(&args.boot_server_url)?;
        Ok(Self {
            bind_address: args.boot_bind_address,
            url,
            ipv6_url,
            registries: RegistryConfig {
                allowed: args
                    .boot_allowed_registries
                    .iter()
                    .map(|r| r.trim().to_owned())
                    .filter(|r| !r.is_empty())
                    .collect(),
                insecure: args.boot_insecure_registries,
                architecture: args.boot_architecture,
                ..RegistryConfig::default()
            },
            trusted_proxies: trusted_proxies(&args.boot_trusted_proxies)?,
            kernel_args: args.boot_kernel_args,
            allow_unauthenticated_ignition: args.boot_allow_unauthenticated_ignition,
            registry_allow_unauthenticated: args.registry_allow_unauthenticated,
            metalprobe_binary: args.metalprobe_binary,
            limits: HttpLimits {
                max_connections: usize::try_from(args.boot_max_connections).unwrap_or(usize::MAX),
                header_timeout: seconds_at_least_one(args.boot_header_timeout_seconds),
                body_timeout: seconds_at_least_one(args.boot_body_timeout_seconds),
            },
            layer_cache_dir: args.boot_layer_cache_dir,
            layer_cache_bytes: args.boot_layer_cache_mib.saturating_mul(1024 * 1024),
            source_binding: args.boot_source_binding,
        })
    }
}

impl DiscoveryOptions {
    fn try_from_args(args: DiscoveryArgs, namespace: Option<&str>) -> Result<Self, ConfigError> {
        Ok(Self {
            image: args.discovery_image,
            namespace: namespace.unwrap_or("default").to_owned(),
            registry_url: args
                .discovery_registry_url
                .map(|url| url.as_str().trim_end_matches('/').to_owned()),
            ignition_settings: ignition_settings(&args.ignition_settings)?,
            ssh_authorized_keys: args.discovery_ssh_keys,
            timeout: seconds_at_least_one(args.discovery_timeout_seconds),
            retry_base: seconds_at_least_one(args.discovery_retry_seconds),
            nic_wait: Duration::from_secs(args.discovery_nic_wait_seconds),
            power_off_after: !args.keep_power_after_discovery,
            resync: seconds_at_least_one(args.server_resync_seconds),
            mode: args
                .discovery_mode
                .parse()
                .map_err(|message| ConfigError::DiscoveryMode { message })?,
            // clap allows only these two.
            boot_target: if args.discovery_boot_target == "uefi-http" {
                BootTarget::UefiHttp
            } else {
                BootTarget::Pxe
            },
            inventory_cross_check: args.inventory_cross_check,
        })
    }

    /// The Server reconciler's settings once the boot server's URL is known: metalprobe
    /// reports there unless `--discovery-registry-url` says otherwise. The ignition
    /// generator's settings are the `configured` ones (the plugin configuration's) with the
    /// `--ignition-setting`s replacing those of the same key, and when the boot server offers
    /// metalprobe, `metalprobe-url` defaults to `<url>/metalprobe`.
    pub fn settings(
        &self,
        boot_url: &str,
        offers_metalprobe: bool,
        configured: &[(String, String)],
    ) -> DiscoverySettings {
        let (mut ignition_settings, replaced) =
            ferrometal::plugins::catalog::with_overrides(configured, &self.ignition_settings);
        for key in replaced {
            tracing::info!(%key, "--ignition-setting replaces the ignition generator's setting from the plugin configuration");
        }
        if offers_metalprobe
            && !ignition_settings
                .iter()
                .any(|(key, _)| key == "metalprobe-url")
        {
            ignition_settings.push((
                String::from("metalprobe-url"),
                format!("{boot_url}/metalprobe"),
            ));
        }
        DiscoverySettings {
            image: self.image.clone(),
            namespace: self.namespace.clone(),
            registry_url: self
                .registry_url
                .clone()
                .unwrap_or_else(|| boot_url.to_owned()),
            ignition_settings,
            ssh_authorized_keys: self.ssh_authorized_keys.clone(),
            timeout: self.timeout,
            retry_base: self.retry_base,
            nic_wait: self.nic_wait,
            power_off_after: self.power_off_after,
            resync: self.resync,
            mode: self.mode,
            boot_target: self.boot_target,
            inventory_cross_check: self.inventory_cross_check,
        }
    }
}

impl ElectionOptions {
    /// The election's settings, with the Lease in `default_namespace` unless
    /// `--leader-election-namespace` names another, and a fresh identity unless one is given.
    pub fn settings(&self, default_namespace: &str) -> ElectionSettings {
        ElectionSettings {
            lease_name: self.lease_name.clone(),
            namespace: self
                .namespace
                .clone()
                .unwrap_or_else(|| default_namespace.to_owned()),
            identity: self
                .identity
                .clone()
                .unwrap_or_else(ferrometal::leader::default_identity),
            lease_duration: self.lease_duration,
            renew_before: self.renew_before,
        }
    }
}

/// The boot server's URL when `--boot-server-url` is not set: the bound address, with
/// 127.0.0.1 for an unspecified IP (right for local tests only).
pub fn default_boot_url(bound: SocketAddr) -> String {
    let ip = if bound.ip().is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        bound.ip()
    };
    format!("http://{}", SocketAddr::new(ip, bound.port()))
}

/// `--boot-server-url`s as (the URL for everyone, the one for IPv6 clients when it
/// differs): at most one with an IPv6 literal host and one other; an IPv6 URL alone serves
/// everyone. Trailing slashes are dropped.
fn boot_urls(given: &[url::Url]) -> Result<(Option<String>, Option<String>), ConfigError> {
    let text = |url: &url::Url| url.as_str().trim_end_matches('/').to_owned();
    let (ipv6, other): (Vec<_>, Vec<_>) = given
        .iter()
        .partition(|url| matches!(url.host(), Some(url::Host::Ipv6(_))));
    if ipv6.len() > 1 || other.len() > 1 {
        return Err(ConfigError::BootServerUrls {
            given: given.iter().map(text).collect(),
        });
    }
    Ok(match (other.first(), ipv6.first()) {
        (Some(other), ipv6) => (Some(text(other)), ipv6.map(|url| text(url))),
        (None, ipv6) => (ipv6.map(|url| text(url)), None),
    })
}

fn seconds_at_least_one(seconds: u64) -> Duration {
    Duration::from_secs(seconds.max(1))
}

/// `key=value` pairs, trimmed; blank entries (from an empty env var) are left out.
fn ignition_settings(given: &[String]) -> Result<Vec<(String, String)>, ConfigError> {
    given
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|setting| {
            setting
                .split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| ConfigError::IgnitionSetting {
                    setting: setting.clone(),
                })
        })
        .collect()
}

/// IPs (as single-address networks) and CIDRs; blank entries are left out.
fn trusted_proxies(given: &[String]) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    given
        .iter()
        .map(|text| text.trim())
        .filter(|text| !text.is_empty())
        .map(|text| {
            text.parse::<ipnet::IpNet>().or_else(|_| {
                text.parse::<IpAddr>()
                    .map(ipnet::IpNet::from)
                    .map_err(|source| ConfigError::TrustedProxy {
                        entry: text.to_owned(),
                        source,
                    })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use rstest::rstest;

    use super::*;

    /// `ferrometal run`'s arguments on their own.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn settings(flags: &[&str]) -> Result<Settings, ConfigError> {
        let cli = Cli::try_parse_from(std::iter::once("run").chain(flags.iter().copied()))
            .expect("the flags parse");
        Settings::try_from(cli.run)
    }

    #[test]
    fn the_plugin_memory_budget_is_given_in_mib_and_bounded() {
        let settings = settings(&["--plugin-memory-budget-mib", "512"]).expect("valid");
        assert_eq!(settings.plugins.runtime.memory_budget_bytes, 512 << 20);
        for too_small in ["0", "15"] {
            let error = Cli::try_parse_from(["run", "--plugin-memory-budget-mib", too_small])
                .expect_err("below 16 MiB");
            assert!(
                error.to_string().contains("--plugin-memory-budget-mib"),
                "{error}"
            );
        }
    }

    #[test]
    fn without_flags_the_documented_defaults_apply() {
        let settings = settings(&[]).expect("defaults are valid");
        assert_eq!(
            settings.plugins.dir,
            PathBuf::from(ferrometal::plugins::catalog::DEFAULT_PLUGIN_DIR)
        );
        assert_eq!(settings.plugins.runtime.max_concurrent_calls, 64);
        assert_eq!(
            settings.plugins.runtime.memory_budget_bytes,
            ferrometal::plugins::DEFAULT_MEMORY_BUDGET
        );
        assert!(settings.plugins.runtime.granted_capabilities.is_empty());
        assert_eq!(
            settings.metrics_address,
            "0.0.0.0:8080".parse().expect("address")
        );
        assert_eq!(
            settings.concurrency,
            Concurrency {
                endpoints: 16,
                bmcs: 64,
                servers: 64,
                boot_configurations: 32,
                claims: 8,
            }
        );
        assert_eq!(settings.bmc.default_scheme, ProtocolScheme::Http);
        assert_eq!(settings.bmc.trust, BmcTrust::NoCertificate);
        assert_eq!(settings.bmc.resync, Duration::from_secs(120));
        assert_eq!(settings.bmc.credential_retry, Duration::from_secs(30));
        assert_eq!(settings.bmc.bootless, BootlessSystems::Skip);
        assert_eq!(
            settings.boot.bind_address,
            "0.0.0.0:8082".parse().expect("address")
        );
        assert_eq!(settings.boot.url, None);
        assert_eq!(
            settings.boot.registries.allowed,
            std::collections::BTreeSet::from([String::from("ghcr.io")])
        );
        assert_eq!(settings.boot.registries.architecture, "amd64");
        assert_eq!(settings.discovery.namespace, "default");
        assert_eq!(settings.discovery.timeout, Duration::from_secs(1800));
        assert_eq!(settings.discovery.retry_base, Duration::from_secs(60));
        assert_eq!(settings.discovery.nic_wait, Duration::from_secs(120));
        assert_eq!(settings.discovery.mode, DiscoveryMode::InBand);
        assert_eq!(settings.discovery.boot_target, BootTarget::Pxe);
        assert!(!settings.discovery.inventory_cross_check);
        assert!(settings.discovery.power_off_after);
        assert_eq!(settings.namespace, None);
        assert_eq!(settings.election, None);
    }

    #[test]
    fn zero_second_intervals_become_one_second_but_the_nic_wait_may_be_zero() {
        let settings = settings(&[
            "--bmc-resync-seconds=0",
            "--credential-retry-seconds=0",
            "--discovery-timeout-seconds=0",
            "--discovery-retry-seconds=0",
            "--server-resync-seconds=0",
            "--discovery-nic-wait-seconds=0",
        ])
        .expect("valid");
        let second = Duration::from_secs(1);
        assert_eq!(settings.bmc.resync, second);
        assert_eq!(settings.bmc.credential_retry, second);
        assert_eq!(settings.discovery.timeout, second);
        assert_eq!(settings.discovery.retry_base, second);
        assert_eq!(settings.discovery.resync, second);
        assert_eq!(settings.discovery.nic_wait, Duration::ZERO);
    }

    #[rstest]
    #[case::a_bundle(&["--bmc-ca-file", "/etc/ca.pem"], BmcTrust::CaFile(PathBuf::from("/etc/ca.pem")))]
    #[case::any_certificate(&["--bmc-insecure-tls"], BmcTrust::AnyCertificate)]
    #[case::nothing(&[], BmcTrust::NoCertificate)]
    fn bmc_certificates_are_trusted_as_the_flags_say(
        #[case] flags: &[&str],
        #[case] trust: BmcTrust,
    ) {
        assert_eq!(settings(flags).expect("valid").bmc.trust, trust);
    }

    #[test]
    fn a_ca_bundle_and_insecure_tls_together_are_refused() {
        let both =
            Cli::try_parse_from(["run", "--bmc-ca-file", "/etc/ca.pem", "--bmc-insecure-tls"]);
        assert!(both.is_err());
    }

    #[test]
    fn the_namespace_flag_also_places_the_discovery_objects() {
        let settings = settings(&["--namespace", "metal"]).expect("valid");
        assert_eq!(settings.namespace.as_deref(), Some("metal"));
        assert_eq!(settings.discovery.namespace, "metal");
    }

    #[test]
    fn https_and_out_of_band_choices_are_typed() {
        let settings = settings(&[
            "--bmc-default-scheme=https",
            "--discovery-mode=out-of-band",
            "--systems-without-boot-override=out-of-band",
            "--keep-power-after-discovery",
            "--inventory-cross-check",
        ])
        .expect("valid");
        assert_eq!(settings.bmc.default_scheme, ProtocolScheme::Https);
        assert_eq!(settings.discovery.mode, DiscoveryMode::OutOfBand);
        assert_eq!(settings.bmc.bootless, BootlessSystems::OutOfBand);
        assert!(!settings.discovery.power_off_after);
        assert!(settings.discovery.inventory_cross_check);
    }

    #[test]
    fn discoveries_boot_over_uefi_http_when_asked_and_other_targets_are_refused() {
        let settings = settings(&["--discovery-boot-target=uefi-http"]).expect("valid");
        assert_eq!(settings.discovery.boot_target, BootTarget::UefiHttp);
        let hdd = Cli::try_parse_from(["run", "--discovery-boot-target=hdd"]);
        assert!(hdd.is_err(), "only pxe and uefi-http");
    }

    #[test]
    fn an_empty_registry_list_allows_every_registry() {
        let settings = settings(&[
            "--boot-allowed-registries=",
            "--boot-insecure-registries=lab:5000",
        ])
        .expect("valid");
        assert!(settings.boot.registries.allowed.is_empty());
        assert_eq!(settings.boot.registries.insecure, vec!["lab:5000"]);
    }

    #[test]
    fn trusted_proxies_are_ips_or_cidrs_and_blank_entries_are_skipped() {
        let settings =
            settings(&["--boot-trusted-proxies= 10.0.0.1 ,,192.168.0.0/16"]).expect("valid");
        assert_eq!(
            settings.boot.trusted_proxies,
            vec![
                "10.0.0.1/32".parse::<ipnet::IpNet>().expect("net"),
                "192.168.0.0/16".parse().expect("net"),
            ]
        );
    }

    #[test]
    fn a_trusted_proxy_that_is_no_address_names_the_flag() {
        let error = settings(&["--boot-trusted-proxies=proxy.lab"]).expect_err("refused");
        assert_eq!(
            error.to_string(),
            r#"--boot-trusted-proxies: "proxy.lab" is not an IP or CIDR"#
        );
    }

    #[test]
    fn ignition_settings_are_trimmed_pairs_and_blank_ones_are_skipped() {
        let settings = settings(&[
            "--ignition-setting",
            " user = core ",
            "--ignition-setting",
            "",
            "--ignition-setting",
            "motd=a=b",
        ])
        .expect("valid");
        assert_eq!(
            settings.discovery.ignition_settings,
            vec![
                (String::from("user"), String::from("core")),
                (String::from("motd"), String::from("a=b")),
            ]
        );
    }

    #[test]
    fn an_ignition_setting_without_a_value_names_the_flag() {
        let error = settings(&["--ignition-setting", "user"]).expect_err("refused");
        assert_eq!(
            error.to_string(),
            r#"--ignition-setting "user" is not key=value"#
        );
    }

    #[rstest]
    #[case::offered_and_unset(&[], None, true, Some("http://10.0.0.1:8082/metalprobe"))]
    #[case::not_offered(&[], None, false, None)]
    #[case::given(&["--ignition-setting", "metalprobe-url=http://mirror/metalprobe"], None, true, Some("http://mirror/metalprobe"))]
    #[case::configured(&[], Some("http://configured/metalprobe"), true, Some("http://configured/metalprobe"))]
    #[case::flag_over_configured(&["--ignition-setting", "metalprobe-url=http://mirror/metalprobe"], Some("http://configured/metalprobe"), true, Some("http://mirror/metalprobe"))]
    fn metalprobe_url_defaults_to_the_boot_server_only_when_it_offers_metalprobe(
        #[case] flags: &[&str],
        #[case] configured: Option<&str>,
        #[case] offers_metalprobe: bool,
        #[case] expected: Option<&str>,
    ) {
        let configured: Vec<(String, String)> = configured
            .map(|url| (String::from("metalprobe-url"), url.to_owned()))
            .into_iter()
            .collect();
        let discovery = settings(flags).expect("valid").discovery.settings(
            "http://10.0.0.1:8082",
            offers_metalprobe,
            &configured,
        );
        let urls: Vec<&str> = discovery
            .ignition_settings
            .iter()
            .filter(|(key, _)| key == "metalprobe-url")
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(urls, expected.into_iter().collect::<Vec<_>>());
    }

    #[rstest]
    #[case::the_boot_server(&[], "http://10.0.0.1:8082")]
    #[case::its_own(&["--discovery-registry-url", "http://registry.lab:9000/"], "http://registry.lab:9000")]
    fn metalprobe_reports_to_the_boot_server_unless_told_otherwise(
        #[case] flags: &[&str],
        #[case] expected: &str,
    ) {
        let discovery =
            settings(flags)
                .expect("valid")
                .discovery
                .settings("http://10.0.0.1:8082", false, &[]);
        assert_eq!(discovery.registry_url, expected);
    }

    #[rstest]
    #[case::unspecified_ip("0.0.0.0:8082", "http://127.0.0.1:8082")]
    #[case::a_given_ip("10.0.0.1:9000", "http://10.0.0.1:9000")]
    #[case::unspecified_ipv6("[::]:8082", "http://127.0.0.1:8082")]
    fn without_a_url_machines_are_told_the_bound_address(
        #[case] bound: &str,
        #[case] expected: &str,
    ) {
        assert_eq!(default_boot_url(bound.parse().expect("address")), expected);
    }

    #[test]
    fn a_given_boot_server_url_loses_its_trailing_slash() {
        let settings = settings(&["--boot-server-url", "http://10.0.0.1:8082/"]).expect("valid");
        assert_eq!(settings.boot.url.as_deref(), Some("http://10.0.0.1:8082"));
        assert_eq!(settings.boot.ipv6_url, None);
    }

    #[test]
    fn a_dual_stack_boot_network_names_one_url_per_family() {
        let dual = settings(&[
            "--boot-server-url",
            "http://[fd00::1]:8082/,http://10.0.0.1:8082",
        ])
        .expect("valid");
        assert_eq!(dual.boot.url.as_deref(), Some("http://10.0.0.1:8082"));
        assert_eq!(dual.boot.ipv6_url.as_deref(), Some("http://[fd00::1]:8082"));
        let ipv6 = settings(&["--boot-server-url", "http://[fd00::1]:8082"]).expect("valid");
        assert_eq!(
            (ipv6.boot.url.as_deref(), ipv6.boot.ipv6_url),
            (Some("http://[fd00::1]:8082"), None),
            "an IPv6 URL alone serves everyone"
        );
        let error = settings(&[
            "--boot-server-url",
            "http://10.0.0.1:8082",
            "--boot-server-url",
            "http://boot.example:8082",
        ])
        .expect_err("two URLs for one family");
        assert!(
            error
                .to_string()
                .contains("at most one URL with an IPv6 literal and one other"),
            "{error}"
        );
    }

    #[test]
    fn leader_election_takes_the_client_namespace_unless_one_is_given() {
        let elected = settings(&[
            "--leader-elect",
            "--leader-election-identity=pod-1",
            "--leader-election-lease-seconds=4",
            "--leader-election-renew-seconds=2",
        ])
        .expect("valid")
        .election
        .expect("an election");
        let lease = elected.settings("ferrometal-system");
        assert_eq!(lease.lease_name, "ferrometal-leader");
        assert_eq!(lease.namespace, "ferrometal-system");
        assert_eq!(lease.identity, "pod-1");
        assert_eq!(lease.lease_duration, Duration::from_secs(4));
        assert_eq!(lease.renew_before, Duration::from_secs(2));

        let elsewhere = settings(&["--leader-elect", "--leader-election-namespace=metal"])
            .expect("valid")
            .election
            .expect("an election")
            .settings("ferrometal-system");
        assert_eq!(elsewhere.namespace, "metal");
        assert!(!elsewhere.identity.is_empty());
    }
}
