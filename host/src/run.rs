//! `ferrometal run`: the operator process.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use ferrometal::api::BMCSecret;
use ferrometal::api::common::ProtocolScheme;
use ferrometal::api::{BMC, Endpoint, Server, ServerBootConfiguration};
use ferrometal::boot::fetch_log::FetchLog;
use ferrometal::boot::image::{ImageResolver, RegistryConfig};
use ferrometal::boot::index::BootIndex;
use ferrometal::boot::server::{BootMetrics, BootServer, BootServerConfig};
use ferrometal::controllers::bmc_work::BmcWork;
use ferrometal::controllers::caches::{CacheWriters, Caches};
use ferrometal::controllers::inventory::BmcInventory;
use ferrometal::controllers::triggers::{changes, deletions, fingerprint, spec_and_labels};
use ferrometal::controllers::{bmc, bootconfig, endpoint, server};
use ferrometal::leader::{ElectionSettings, Leadership};
use ferrometal::plugins::catalog::{CatalogConfig, PluginCatalog};
use ferrometal::plugins::types::TlsPolicy;
use ferrometal::plugins::{PluginMetrics, PluginRuntime, RuntimeConfig};
use ferrometal::registry::Registry;
use ferrometal::telemetry::ControllerMetrics;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

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
    /// Capabilities granted to plugins that request them (e.g. `credentials/reveal`).
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
    /// Where to serve /metrics, /healthz and /readyz (`127.0.0.1:0` picks a free port).
    #[arg(
        long,
        env = "FERROMETAL_METRICS_BIND_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    metrics_bind_address: std::net::SocketAddr,
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

impl ElectionArgs {
    /// Starts campaigning for the lease, or leads at once without `--leader-elect`.
    async fn start(
        &self,
        client: &Client,
        metrics: ferrometal::leader::LeaderMetrics,
    ) -> anyhow::Result<(Leadership, Option<ferrometal::leader::Elector>)> {
        if !self.leader_elect {
            metrics.set_leading(true);
            return Ok((Leadership::always(), None));
        }
        let settings = ElectionSettings {
            lease_name: self.leader_election_lease_name.clone(),
            namespace: self
                .leader_election_namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned()),
            identity: self
                .leader_election_identity
                .clone()
                .unwrap_or_else(ferrometal::leader::default_identity),
            lease_duration: std::time::Duration::from_secs(self.leader_election_lease_seconds),
            renew_before: std::time::Duration::from_secs(self.leader_election_renew_seconds),
        };
        let (leadership, elector) =
            ferrometal::leader::elect(client.clone(), settings, metrics).await?;
        Ok((leadership, Some(elector)))
    }
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

impl DiscoveryArgs {
    /// The `--ignition-setting`s; with the boot server offering metalprobe (its URL given),
    /// `metalprobe-url` defaults to `<url>/metalprobe`.
    fn ignition_settings(
        &self,
        boot_url: Option<&String>,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let mut settings: Vec<(String, String)> = self
            .ignition_settings
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|setting| {
                setting
                    .split_once('=')
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .with_context(|| format!("--ignition-setting {setting:?} is not key=value"))
            })
            .collect::<anyhow::Result<_>>()?;
        if let Some(url) = boot_url
            && !settings.iter().any(|(key, _)| key == "metalprobe-url")
        {
            settings.push((String::from("metalprobe-url"), format!("{url}/metalprobe")));
        }
        Ok(settings)
    }
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
    boot_bind_address: std::net::SocketAddr,
    /// The boot server's URL as machines reach it (e.g. `http://10.0.0.1:8082`); defaults to
    /// the bind address, with 127.0.0.1 for an unspecified IP (fine for local tests only).
    #[arg(long, env = "FERROMETAL_BOOT_SERVER_URL")]
    boot_server_url: Option<url::Url>,
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
}

impl BootArgs {
    fn trusted_proxies(&self) -> anyhow::Result<Vec<ipnet::IpNet>> {
        self.boot_trusted_proxies
            .iter()
            .filter(|text| !text.trim().is_empty())
            .map(|text| {
                let text = text.trim();
                text.parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .with_context(|| {
                        format!("--boot-trusted-proxies: {text:?} is not an IP or CIDR")
                    })
            })
            .collect()
    }

    fn base_url(&self, bound: std::net::SocketAddr) -> String {
        match &self.boot_server_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => {
                let ip = if bound.ip().is_unspecified() {
                    std::net::IpAddr::from([127, 0, 0, 1])
                } else {
                    bound.ip()
                };
                tracing::warn!(
                    "--boot-server-url is not set; machines are told http://{}",
                    std::net::SocketAddr::new(ip, bound.port())
                );
                format!("http://{}", std::net::SocketAddr::new(ip, bound.port()))
            }
        }
    }
}

/// Runs the controllers until SIGINT/SIGTERM.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("cannot reach the Kubernetes API (set KUBECONFIG or run in a cluster)")?;
    check_crds(&client).await?;

    let mut config =
        CatalogConfig::load(args.plugin_config.as_deref()).map_err(anyhow::Error::msg)?;
    config.dir = args.plugin_dir.clone();
    let mut registry = prometheus_client::registry::Registry::default();
    let plugin_metrics = PluginMetrics::default();
    plugin_metrics.register(&mut registry);
    let metrics = ControllerMetrics::default();
    metrics.register(&mut registry);
    let boot_metrics = BootMetrics::default();
    boot_metrics.register(&mut registry);
    let dhcp_metrics = ferrometal::dhcp::server::DhcpMetrics::default();
    dhcp_metrics.register(&mut registry);
    let leader_metrics = ferrometal::leader::LeaderMetrics::default();
    leader_metrics.register(&mut registry);
    // Everything that listens stops listening on the first SIGINT/SIGTERM; the signal
    // handler itself is installed once start-up is done (until then a signal ends the
    // process at once).
    let (stop, shutdown) = shutdown_channel();
    let listener = tokio::net::TcpListener::bind(args.metrics_bind_address)
        .await
        .with_context(|| format!("cannot serve metrics on {}", args.metrics_bind_address))?;
    tracing::info!(address = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
    let registry = Arc::new(std::sync::Mutex::new(registry));
    tokio::spawn(until(shutdown.clone(), async move {
        if let Err(error) = ferrometal::telemetry::serve(listener, registry).await {
            tracing::error!(%error, "the metrics server stopped");
        }
    }));
    let plugins = PluginRuntime::new(
        RuntimeConfig {
            granted_capabilities: args.grants.clone(),
            cache_dir: args.plugin_cache_dir.clone(),
            max_concurrent_calls: usize::try_from(args.plugin_max_concurrent_calls)
                .unwrap_or(usize::MAX),
        },
        plugin_metrics,
    )?;
    let catalog = Arc::new(PluginCatalog::load(&plugins, config).await);
    for problem in &catalog.problems {
        tracing::error!(error = %problem.error, "plugin not loaded");
    }
    let lookup = catalog.credential_lookup().cloned();
    if lookup.is_none() {
        tracing::warn!(dir = %args.plugin_dir.display(), "no credential-lookup plugin is active; Endpoints will report CredentialLookupFailed");
    }
    let mut lookup_settings = Vec::new();
    if let Some(file) = &args.mac_db {
        let database = std::fs::read_to_string(file)
            .with_context(|| format!("read MAC database {}", file.display()))?;
        lookup_settings.push((String::from("database"), database));
    }
    if let Some(plugin) = &lookup
        && let Err(error) = plugin.validate_settings(&lookup_settings).await
    {
        bail!("the credential-lookup plugin rejects its settings: {error}");
    }

    let (caches, cache_writers) = Caches::new();
    let context = Arc::new(endpoint::Context {
        caches: caches.clone(),
        applied: Default::default(),
        client: client.clone(),
        lookup,
        lookup_settings: lookup_settings.clone(),
        reporter: Reporter {
            controller: String::from("ferrometal-endpoint"),
            instance: std::env::var("HOSTNAME").ok(),
        },
        metrics: metrics.clone(),
        backoff: Default::default(),
    });
    let tls = match (&args.bmc_ca_file, args.bmc_insecure_tls) {
        (Some(file), _) => TlsPolicy::CaBundle(
            std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?,
        ),
        (None, true) => TlsPolicy::Insecure,
        // Without a bundle, https BMCs fail verification with a clear TLS condition.
        (None, false) => TlsPolicy::CaBundle(String::new()),
    };
    let bmc_settings = bmc::BmcSettings {
        default_scheme: if args.bmc_default_scheme == "https" {
            ProtocolScheme::Https
        } else {
            ProtocolScheme::Http
        },
        tls,
        resync: std::time::Duration::from_secs(args.bmc_resync_seconds.max(1)),
    };
    let inventory = Arc::new(BmcInventory::default());
    let bmc_context = Arc::new(bmc::Context {
        caches: caches.clone(),
        inventory: inventory.clone(),
        applied: Default::default(),
        client: client.clone(),
        catalog: catalog.clone(),
        lookup_settings,
        credential_retry: std::time::Duration::from_secs(args.credential_retry_seconds.max(1)),
        settings: bmc_settings.clone(),
        bootless: args
            .discovery
            .systems_without_boot_override
            .parse()
            .map_err(anyhow::Error::msg)?,
        reporter: Reporter {
            controller: String::from("ferrometal-bmc"),
            instance: std::env::var("HOSTNAME").ok(),
        },
        metrics: metrics.clone(),
        backoff: Default::default(),
    });

    let resolver = Arc::new(ImageResolver::new(RegistryConfig {
        allowed: args
            .boot
            .boot_allowed_registries
            .iter()
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .collect(),
        insecure: args.boot.boot_insecure_registries.clone(),
        architecture: args.boot.boot_architecture.clone(),
        ..RegistryConfig::default()
    }));
    let boot_listener = tokio::net::TcpListener::bind(args.boot.boot_bind_address)
        .await
        .with_context(|| {
            format!(
                "cannot serve the boot server on {}",
                args.boot.boot_bind_address
            )
        })?;
    let bound = boot_listener.local_addr()?;
    let index = BootIndex::default();
    let reports = FetchLog::new(boot_metrics.fetches.clone());
    let boot_server = Arc::new(BootServer {
        index: index.clone(),
        resolver: resolver.clone(),
        config: BootServerConfig {
            base_url: args.boot.base_url(bound),
            trusted_proxies: args.boot.trusted_proxies()?,
            extra_kernel_args: args.boot.boot_kernel_args.clone(),
            metalprobe_binary: args.boot.metalprobe_binary.clone(),
        },
        metrics: boot_metrics,
        reports: reports.clone(),
    });
    tracing::info!(address = %bound, url = %boot_server.config.base_url, "serving the boot server and the registry");
    let probe_registry = Arc::new(Registry {
        boot: boot_server.clone(),
        client: client.clone(),
        allow_unauthenticated: args.boot.registry_allow_unauthenticated,
    });
    let base_url = boot_server.config.base_url.clone();
    let app = ferrometal::boot::server::router(boot_server)
        .merge(ferrometal::registry::router(probe_registry));
    tokio::spawn(until(shutdown.clone(), async move {
        if let Err(error) = ferrometal::boot::server::serve(boot_listener, app).await {
            tracing::error!(%error, "the boot server stopped");
        }
    }));
    tokio::spawn(reports.run(client.clone()));

    let (bmc_work, bmc_answers) = BmcWork::new();
    let server_context = Arc::new(server::Context {
        caches: caches.clone(),
        inventory,
        work: Arc::new(bmc_work),
        written: Default::default(),
        client: client.clone(),
        catalog: catalog.clone(),
        bmc: bmc_settings,
        discovery: server::DiscoverySettings {
            image: args.discovery.discovery_image.clone(),
            namespace: args
                .namespace
                .clone()
                .unwrap_or_else(|| String::from("default")),
            registry_url: args.discovery.discovery_registry_url.as_ref().map_or_else(
                || base_url.clone(),
                |url| url.as_str().trim_end_matches('/').to_owned(),
            ),
            ignition_settings: args
                .discovery
                .ignition_settings(args.boot.metalprobe_binary.is_some().then_some(&base_url))?,
            ssh_authorized_keys: args.discovery.discovery_ssh_keys.clone(),
            timeout: std::time::Duration::from_secs(
                args.discovery.discovery_timeout_seconds.max(1),
            ),
            retry_base: std::time::Duration::from_secs(
                args.discovery.discovery_retry_seconds.max(1),
            ),
            nic_wait: std::time::Duration::from_secs(args.discovery.discovery_nic_wait_seconds),
            power_off_after: !args.discovery.keep_power_after_discovery,
            resync: std::time::Duration::from_secs(args.discovery.server_resync_seconds.max(1)),
            mode: args
                .discovery
                .discovery_mode
                .parse()
                .map_err(anyhow::Error::msg)?,
        },
        reporter: Reporter {
            controller: String::from("ferrometal-server"),
            instance: std::env::var("HOSTNAME").ok(),
        },
        metrics: metrics.clone(),
        backoff: Default::default(),
        uuids: Arc::default(),
        power_backoff: ferrometal::controllers::backoff::ErrorBackoff::new(
            std::time::Duration::from_secs(10),
            std::time::Duration::from_secs(600),
        ),
    });
    if args.discovery.discovery_image.is_none() {
        tracing::warn!(
            "--discovery-image is not set; Servers will report NoDiscoveryImage instead of booting"
        );
    } else if let Some(generator) = catalog.ignition_generator()
        && let Err(error) = generator
            .validate_settings(&server_context.discovery.ignition_settings)
            .await
    {
        bail!("the ignition-generator plugin rejects its settings (--ignition-setting): {error}");
    }

    // Read at start on every replica, so a bad file fails every replica at once; served
    // only by the leader.
    let dhcp_config = match &args.dhcp_config {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("read DHCP configuration {}", path.display()))?;
            Some(
                ferrometal::dhcp::config::DhcpConfig::parse(&text).map_err(|error| {
                    anyhow::anyhow!("DHCP configuration {}: {error}", path.display())
                })?,
            )
        }
    };

    // Campaign only once everything is validated, so a replica that cannot run never holds
    // the lease.
    let (leadership, elector) = args.election.start(&client, leader_metrics).await?;
    let (boot_servers, boot_secrets, boot_cache_writers) = bootconfig::caches();
    let bootconfig_context = Arc::new(bootconfig::Context {
        servers: boot_servers,
        secrets: boot_secrets,
        client: client.clone(),
        resolver,
        resolutions: bootconfig::ResolutionCache::default(),
        index,
        allow_unauthenticated_ignition: args.boot.boot_allow_unauthenticated_ignition,
        leadership: leadership.clone(),
        reporter: Reporter {
            controller: String::from("ferrometal-bootconfig"),
            instance: std::env::var("HOSTNAME").ok(),
        },
        metrics: metrics.clone(),
        backoff: Default::default(),
    });
    // Listening before the line that says so: a test (or a user) who saw it can stop us.
    stop_on_signal(stop);
    tracing::info!("ferrometal {} running", env!("CARGO_PKG_VERSION"));
    let bootconfigs = tokio::spawn(bootconfig::run(
        bootconfig_context,
        args.namespace.clone(),
        args.boot.bootconfig_concurrency,
        shutdown.clone(),
        boot_cache_writers,
    ));
    let leading = lead(
        leadership.clone(),
        Leader {
            client: client.clone(),
            endpoint: context,
            bmc: bmc_context,
            server: server_context,
            dhcp: dhcp_config.map(|config| (config, dhcp_metrics)),
            concurrency: (
                args.endpoint_concurrency,
                args.bmc_concurrency,
                args.discovery.server_concurrency,
            ),
            shutdown,
            caches,
            cache_writers,
            bmc_answers,
        },
    );
    let result = leading.await;
    if let Some(elector) = elector {
        elector.release().await;
    }
    // Leadership lost: exit at once; the restart rejoins as a standby.
    result?;
    let _ = bootconfigs.await;
    tracing::info!("stopped");
    Ok(())
}

/// What the leader runs.
struct Leader {
    client: Client,
    endpoint: Arc<endpoint::Context>,
    bmc: Arc<bmc::Context>,
    server: Arc<server::Context>,
    dhcp: Option<(
        ferrometal::dhcp::config::DhcpConfig,
        ferrometal::dhcp::server::DhcpMetrics,
    )>,
    /// Endpoints, BMCs and Servers reconciled at once.
    concurrency: (u16, u16, u16),
    /// The watch caches the controllers' watches fill.
    caches: Arc<Caches>,
    /// Their writing ends.
    cache_writers: CacheWriters,
    /// Servers whose BMC operation finished.
    bmc_answers: tokio::sync::mpsc::UnboundedReceiver<ObjectRef<Server>>,
    /// Resolves when the operator is asked to stop.
    shutdown: Shutdown,
}

/// Waits for leadership, then runs the Endpoint, BMC and Server reconcilers and the DHCP
/// server until shutdown (Ok) or until leadership is lost (Err).
async fn lead(mut leadership: Leadership, leader: Leader) -> anyhow::Result<()> {
    tokio::select! {
        () = leadership.acquired() => {}
        () = leader.shutdown.clone() => return Ok(()),
    }
    let Leader {
        client,
        endpoint: context,
        bmc: bmc_context,
        server: server_context,
        dhcp,
        concurrency: (endpoint_concurrency, bmc_concurrency, server_concurrency),
        shutdown,
        caches,
        cache_writers,
        mut bmc_answers,
    } = leader;
    let mut dhcp_tasks = tokio::task::JoinSet::new();
    if let Some((config, dhcp_metrics)) = dhcp {
        let (onboard, onboarded) = tokio::sync::mpsc::channel(1024);
        dhcp_tasks.spawn(ferrometal::dhcp::server::write_endpoints(
            client.clone(),
            onboarded,
        ));
        if let Some(root) = &config.tftp_root {
            for interface in &config.interfaces {
                let (address, root) = (interface.server_address, root.clone());
                dhcp_tasks.spawn(until(shutdown.clone(), async move {
                    if let Err(error) = ferrometal::dhcp::tftp::serve(address, root).await {
                        tracing::error!(%error, %address, "the TFTP server stopped");
                    }
                }));
            }
        }
        // Stops (and frees its port) on the signal; `write_endpoints` then writes what it
        // was handed and ends with the channel.
        let dhcp = ferrometal::dhcp::server::serve(config, dhcp_metrics, onboard);
        dhcp_tasks.spawn(until(shutdown.clone(), async move {
            if let Err(error) = dhcp.await {
                tracing::error!(%error, "the DHCP server stopped");
            }
        }));
    }

    // Every controller starts a reconcile only when what it acts on changed (not on its own
    // or another controller's status writes), and fills the watch caches the reconcilers
    // read instead of the API server.
    let CacheWriters {
        bmcs: bmc_writer,
        bmc_secrets: bmc_secret_writer,
        endpoints: endpoint_writer,
        servers: server_writer,
        boot_configurations: boot_configuration_writer,
    } = cache_writers;
    let endpoint_changes = changes(
        watcher(
            Api::<Endpoint>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(endpoint_writer),
        spec_and_labels,
    );
    let endpoints = Controller::for_stream(endpoint_changes, caches.endpoints.clone())
        // Its BMC is applied on every reconcile: only its deletion needs one more.
        .owns_stream(deletions(
            watcher(Api::<BMC>::all(client.clone()), watcher::Config::default()).default_backoff(),
        ))
        .with_config(kube::runtime::controller::Config::default().concurrency(endpoint_concurrency))
        .graceful_shutdown_on(shutdown.clone())
        .run(endpoint::reconcile, endpoint::error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "endpoint reconcile stream");
            }
        });
    // A BMC's Endpoint and BMCSecret carry its name (metal-operator's convention), so a change
    // to either re-evaluates the BMC of that name.
    let bmc_changes = changes(
        watcher(Api::<BMC>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .reflect(bmc_writer),
        spec_and_labels,
    );
    let secret_changes = changes(
        watcher(
            Api::<BMCSecret>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(bmc_secret_writer),
        |secret: &BMCSecret| {
            fingerprint((
                &secret.metadata.resource_version,
                secret.metadata.generation,
            ))
        },
    );
    let bmcs = Controller::for_stream(bmc_changes, caches.bmcs.clone())
        // Its Servers are applied on every probe: only a deletion needs one more (their
        // status and spec changes are the Server reconciler's business).
        .owns_stream(deletions(
            watcher(
                Api::<Server>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff(),
        ))
        .watches_stream(
            changes(
                watcher(
                    Api::<Endpoint>::all(client.clone()),
                    watcher::Config::default(),
                )
                .default_backoff(),
                spec_and_labels,
            ),
            |endpoint| Some(ObjectRef::<BMC>::new(&endpoint.name_any())),
        )
        .watches_stream(secret_changes, |secret| {
            Some(ObjectRef::<BMC>::new(&secret.name_any()))
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(bmc_concurrency))
        .graceful_shutdown_on(shutdown.clone())
        .run(bmc::reconcile, bmc::error_policy, bmc_context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "BMC reconcile stream");
            }
        });
    let discovery_namespace = server_context.discovery.namespace.clone();
    // The Server watch also keeps the index of Servers by system UUID (duplicate systems),
    // event by event, before the controller sees the event.
    let uuids = server_context.uuids.clone();
    let server_changes = changes(
        watcher(
            Api::<Server>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(server_writer)
        .map_ok(move |event| {
            uuids.apply(&event);
            event
        }),
        server::fingerprint,
    );
    let configuration_changes = changes(
        watcher(
            Api::<ServerBootConfiguration>::namespaced(client.clone(), &discovery_namespace),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(boot_configuration_writer),
        |config: &ServerBootConfiguration| {
            fingerprint((
                config.metadata.generation,
                config.status.as_ref().and_then(|status| status.state),
            ))
        },
    );
    let answered = futures::stream::poll_fn(move |cx| bmc_answers.poll_recv(cx));
    let servers = Controller::for_stream(server_changes, caches.servers.clone())
        // Not `owns`: it looks for the owner in the child's namespace, and Servers are
        // cluster-scoped, so it would queue a second, namespaced key for the same Server whose
        // reconciles run beside the Server's own (two discovery starts, two boot tokens).
        .watches_stream(configuration_changes, |config| server::owner(&config))
        // A BMC operation of a step ended: its Server takes the result.
        .reconcile_on(answered)
        .with_config(kube::runtime::controller::Config::default().concurrency(server_concurrency))
        .graceful_shutdown_on(shutdown)
        .run(server::reconcile, server::error_policy, server_context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "server reconcile stream");
            }
        });
    let result = tokio::select! {
        _ = async { tokio::join!(endpoints, bmcs, servers) } => Ok(()),
        () = leadership.lost() => Err(anyhow::anyhow!(
            "lost the leader lease; exiting so that a restart rejoins as a standby"
        )),
    };
    dhcp_tasks.shutdown().await;
    result
}

/// The operator's one shutdown request, shared by everything that stops on it (the
/// listeners, each controller, the wait for leadership). Clones resolve together.
type Shutdown = futures::future::Shared<futures::future::BoxFuture<'static, ()>>;

/// A [`Shutdown`] and the sender that requests it. A dropped sender never requests it.
fn shutdown_channel() -> (tokio::sync::oneshot::Sender<()>, Shutdown) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = futures::FutureExt::shared(futures::FutureExt::boxed(async move {
        if stopped.await.is_err() {
            std::future::pending::<()>().await;
        }
    }));
    (stop, shutdown)
}

/// Runs `task` until it ends or `shutdown` resolves, whichever is first. A server run this
/// way drops its socket on the signal, so a restart can bind the port while this process
/// still lets its reconciles finish.
async fn until(shutdown: Shutdown, task: impl Future<Output = ()>) {
    tokio::select! {
        () = task => {}
        () = shutdown => {}
    }
}

/// Listens for SIGINT and SIGTERM from now on: the first one is logged once and sends `stop`
/// (listeners close, controllers stop taking work and let running reconciles finish); a
/// second one exits at once.
///
/// One listener for the whole process, instead of kube's `shutdown_on_signal` per controller,
/// which printed its Ctrl-C prompt once per controller.
fn stop_on_signal(stop: tokio::sync::oneshot::Sender<()>) {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::spawn(async move {
                let mut next = async || {
                    tokio::select! {
                        _ = interrupt.recv() => "SIGINT",
                        _ = terminate.recv() => "SIGTERM",
                    }
                };
                let signal = next().await;
                tracing::info!(
                    signal,
                    "shutting down: ports closed, running reconciles finish first; send the signal again to exit at once"
                );
                let _ = stop.send(());
                let signal = next().await;
                tracing::warn!(
                    signal,
                    "second signal: exiting without waiting for reconciles"
                );
                std::process::exit(130);
            });
        }
        (Err(error), _) | (_, Err(error)) => {
            tracing::error!(%error, "cannot listen for SIGINT and SIGTERM; stop the operator with SIGKILL");
        }
    }
}

/// Fails with the command that installs the CRDs if they are missing.
async fn check_crds(client: &Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in [
        "endpoints.metal.ironcore.dev",
        "bmcs.metal.ironcore.dev",
        "bmcsecrets.metal.ironcore.dev",
        "servers.metal.ironcore.dev",
        "serverbootconfigurations.metal.ironcore.dev",
    ] {
        if crds
            .get_opt(name)
            .await
            .context("cannot read CRDs")?
            .is_none()
        {
            bail!(
                "CRD {name} is not installed; install ferrometal's CRDs first: kubectl apply -f crds/"
            );
        }
    }
    Ok(())
}
