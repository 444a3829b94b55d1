//! Wiring of `ferrometal run`: from [`Settings`] and a Kubernetes client to running parts —
//! metrics, plugins, the controllers' contexts, the boot server and its fetch recorder — and
//! the controllers and DHCP the leader starts. Every task goes to the [`Supervisor`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use ferrometal::api::{BMC, BMCSecret, Endpoint, Server, ServerBootConfiguration, ServerClaim};
use ferrometal::boot::fetch_log::FetchLog;
use ferrometal::boot::image::ImageResolver;
use ferrometal::boot::index::BootIndex;
use ferrometal::boot::layer_cache::LayerCache;
use ferrometal::boot::served_file::ServedFile;
use ferrometal::boot::server::{BootMetrics, BootServer, BootServerConfig};
use ferrometal::controllers::backoff::ErrorBackoff;
use ferrometal::controllers::bmc_work::BmcWork;
use ferrometal::controllers::caches::{CacheWriters, Caches, watch};
use ferrometal::controllers::inventory::BmcInventory;
use ferrometal::controllers::triggers::{changes, deletions, fingerprint, spec_and_labels, tap};
use ferrometal::controllers::watch_index::WatchIndex;
use ferrometal::controllers::{
    bmc, bootconfig, claim, classification, endpoint, server, until_started_or_stopped,
};
use ferrometal::dhcp::bindings::SourceBindings;
use ferrometal::dhcp::config::DhcpConfig;
use ferrometal::dhcp::server::DhcpMetrics;
use ferrometal::leader::{ElectionSettings, Elector, LeaderMetrics, Leadership, WriteFence};
use ferrometal::plugins::PluginRuntime;
use ferrometal::plugins::catalog::{CatalogConfig, PluginCatalog, with_overrides};
use ferrometal::plugins::types::TlsPolicy;
use ferrometal::registry::Registry;
use ferrometal::telemetry::{ControllerMetrics, ProcessMetrics, Readiness};
use ferrometal::ui::Ui;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc;

use super::config::{BmcTrust, Concurrency, Settings, default_boot_url};
use super::supervisor::{Shutdown, Supervisor};

/// How long the fetch recorder keeps writing after shutdown was requested (the boot server
/// no longer listens, so nothing new comes); records still pending then are lost, as a
/// restarted process would not have them either.
const FETCH_FLUSH_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// What `run` starts once it is built and checked: the every-replica tasks (metrics, boot
/// server, fetch recorder) are running already; the rest waits for the election.
pub struct Wired {
    /// The gauge of this replica's leadership, for the election.
    pub leader_metrics: LeaderMetrics,
    /// The boot-configuration controller, which every replica runs.
    pub boot_configurations: BootConfigurations,
    /// What the leader runs.
    pub leader: Leader,
}

/// The operator's three Kubernetes clients.
#[derive(Clone)]
pub struct Clients {
    /// For what every replica does: the boot server's fetch records, the registry's
    /// reports, the boot index's reads.
    pub any_replica: Client,
    /// For the election: a request that gets no answer within a lease duration fails (the
    /// lease is gone by then anyway), so a leader whose renewals hang steps down and exits
    /// instead of waiting forever; its fence closed long before.
    pub election: Client,
    /// For what only the leader does: its requests other than reads pass only while the
    /// lease is confirmed ([`WriteFence`]), so a leader frozen past its lease writes nothing
    /// when it wakes.
    pub leader: Client,
    /// Open while this replica holds the confirmed lease (always, without an election).
    pub fence: WriteFence,
}

impl Clients {
    /// The clients from `config`, telling the API server who sends each request (the
    /// election identity, when there is one, so an audit log tells replicas apart).
    pub fn new(
        mut config: kube::Config,
        election: Option<&ElectionSettings>,
        fence: &WriteFence,
    ) -> anyhow::Result<Self> {
        let identity = election.map(|e| e.identity.as_str());
        let agent = match identity {
            Some(identity) => format!("ferrometal/{} ({identity})", env!("CARGO_PKG_VERSION")),
            None => format!("ferrometal/{}", env!("CARGO_PKG_VERSION")),
        };
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_str(&agent)
                .context("the leader election identity is not a valid header value")?,
        ));
        let any_replica = Client::try_from(config.clone())
            .context("cannot build a client for the Kubernetes API")?;
        let election = match election {
            Some(settings) => {
                let mut bounded = config.clone();
                bounded.read_timeout = Some(settings.lease_duration);
                bounded.write_timeout = Some(settings.lease_duration);
                bounded.reset_reader_on_write = true;
                Client::try_from(bounded).context("cannot build a client for the Kubernetes API")?
            }
            None => any_replica.clone(),
        };
        let leader = ferrometal::leader::fence::fenced_client(config, fence)
            .context("cannot build a client for the Kubernetes API")?;
        Ok(Self {
            any_replica,
            election,
            leader,
            fence: fence.clone(),
        })
    }
}

/// Fails with the command that installs the CRDs if they are missing.
pub async fn check_crds(client: &Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in [
        "endpoints.metal.ironcore.dev",
        "bmcs.metal.ironcore.dev",
        "bmcsecrets.metal.ironcore.dev",
        "servers.metal.ironcore.dev",
        "serverbootconfigurations.metal.ironcore.dev",
        "serverclaims.metal.ironcore.dev",
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

/// Builds every part from `settings`, checking each as it goes (plugin settings, files named
/// by flags), and starts what every replica serves: metrics, the boot server with the probe
/// registry, and the fetch recorder.
pub async fn wire(
    settings: &Settings,
    clients: &Clients,
    supervisor: &mut Supervisor,
) -> anyhow::Result<Wired> {
    let client = &clients.leader;
    let mut catalog_config =
        CatalogConfig::load(settings.plugins.config.as_deref()).map_err(anyhow::Error::msg)?;
    catalog_config.dir = settings.plugins.dir.clone();
    let ProcessMetrics {
        registry,
        plugins: plugin_metrics,
        controllers: metrics,
        boot: boot_metrics,
        dhcp: dhcp_metrics,
        leader: leader_metrics,
    } = ProcessMetrics::new();

    // Listening from here on; until the signal handler is installed, once start-up is done,
    // a signal ends the process at once.
    let listener = tokio::net::TcpListener::bind(settings.metrics_address)
        .await
        .with_context(|| format!("cannot serve metrics on {}", settings.metrics_address))?;
    let readiness = Readiness::default();
    // Registered before `/readyz` is served: a replica is not ready until its boot index has
    // synced, never in a window before the check exists.
    let index = BootIndex::filled_by_watch();
    readiness.require("boot index", {
        let index = index.clone();
        move || index.sync().synced()
    });
    // Filled by the leader's watches; read by the reconcilers and the fleet view.
    let (caches, cache_writers) = Caches::new();
    // The fleet gauges (Servers by state, BMCs by Ready reason) count these caches on scrape.
    metrics.observe_fleet(caches.clone());
    let ui = settings.ui.clone().map(|ui_settings| {
        let fence = clients.fence.clone();
        let ui = Ui::new(
            caches.clone(),
            clients.any_replica.clone(),
            Arc::new(move || fence.is_open()),
            ui_settings,
        );
        // Rebuilt until shutdown, then dropped (it has nothing to finish).
        let running = ui.clone();
        supervisor.listen("fleet view", async move {
            running.run().await;
            Ok::<(), std::convert::Infallible>(())
        });
        ui
    });
    let pages = match &ui {
        Some(ui) => {
            tracing::info!(address = %listener.local_addr()?, "serving /metrics, /healthz, /readyz and the fleet view at /ui");
            ferrometal::ui::router(ui.clone())
        }
        None => {
            tracing::info!(address = %listener.local_addr()?, "serving /metrics, /healthz and /readyz (the fleet view is turned off)");
            axum::Router::new()
        }
    };
    supervisor.listen(
        "metrics server",
        ferrometal::telemetry::serve(
            listener,
            Arc::new(Mutex::new(registry)),
            readiness.clone(),
            pages,
        ),
    );

    let plugins = PluginRuntime::new(settings.plugins.runtime.clone(), plugin_metrics)?;
    log_memory_budget(&plugins, settings.plugins.runtime.max_concurrent_calls);
    let catalog = Arc::new(PluginCatalog::load(&plugins, catalog_config).await);
    for problem in &catalog.problems {
        tracing::error!(error = %problem.error, "plugin not loaded");
    }
    if !catalog.config_problems.is_empty() {
        let problems: Vec<String> = catalog
            .config_problems
            .iter()
            .map(ToString::to_string)
            .collect();
        bail!(
            "the plugin configuration{} does not fit the installed plugins:\n  {}",
            settings
                .plugins
                .config
                .as_ref()
                .map(|file| format!(" {}", file.display()))
                .unwrap_or_default(),
            problems.join("\n  ")
        );
    }
    if let Some(config) = catalog.config() {
        // Keys only: setting values may be secrets (a database with default passwords).
        for (plugin, options) in &config.plugins {
            let settings: Vec<&str> = options.settings.keys().map(String::as_str).collect();
            tracing::info!(
                plugin,
                settings = settings.join(","),
                grants = options.grants.join(","),
                "plugin options from the plugin configuration"
            );
        }
    }
    let lookup = catalog.credential_lookup().cloned();
    if lookup.is_none() {
        tracing::warn!(dir = %settings.plugins.dir.display(), "no credential-lookup plugin is active; Endpoints will report CredentialLookupFailed");
    }
    // The plugin configuration's settings of the active lookup, with `--mac-db` as its
    // `database` setting replacing one from the configuration.
    let mut flag_settings = Vec::new();
    if let Some(file) = &settings.plugins.mac_db {
        let database = std::fs::read_to_string(file)
            .with_context(|| format!("read MAC database {}", file.display()))?;
        flag_settings.push((String::from("database"), database));
    }
    let configured = lookup
        .as_ref()
        .map_or(&[][..], |plugin| catalog.settings(&plugin.identity().name));
    let (lookup_settings, replaced) = with_overrides(configured, &flag_settings);
    for key in replaced {
        tracing::info!(%key, "--mac-db replaces the credential-lookup plugin's setting from the plugin configuration");
    }
    if let Some(plugin) = &lookup
        && let Err(error) = plugin.validate_settings(&lookup_settings).await
    {
        bail!("the credential-lookup plugin rejects its settings: {error}");
    }

    let endpoint_context = Arc::new(endpoint::Context {
        caches: caches.clone(),
        applied: Default::default(),
        client: client.clone(),
        lookup,
        lookup_settings: lookup_settings.clone(),
        reporter: reporter("ferrometal-endpoint"),
        metrics: metrics.clone(),
        backoff: Default::default(),
    });
    let bmc_settings = bmc::BmcSettings {
        default_scheme: settings.bmc.default_scheme,
        tls: tls_policy(&settings.bmc.trust)?,
        resync: settings.bmc.resync,
    };
    let inventory = Arc::new(BmcInventory::default());
    let (probes, bmc_probed) = BmcWork::new();
    let bmc_context = Arc::new(bmc::Context {
        probes: Arc::new(probes),
        caches: caches.clone(),
        inventory: inventory.clone(),
        applied: Default::default(),
        client: client.clone(),
        catalog: catalog.clone(),
        lookup_settings,
        credential_retry: settings.bmc.credential_retry,
        rotation: settings.bmc.rotation,
        settings: bmc_settings.clone(),
        bootless: settings.bmc.bootless,
        reporter: reporter("ferrometal-bmc"),
        metrics: metrics.clone(),
        backoff: Default::default(),
    });

    let resolver = Arc::new(ImageResolver::new(settings.boot.registries.clone()));
    // Filled by the DHCP server (the leader's), read by the boot server and registry.
    let bindings = SourceBindings::default();
    let binding = settings.dhcp_config.is_some() && settings.boot.source_binding;
    let boot_url = serve_boot(
        settings,
        &clients.any_replica,
        supervisor,
        &resolver,
        &index,
        boot_metrics,
        binding.then(|| bindings.clone()),
    )
    .await?;

    let (bmc_work, bmc_answers) = BmcWork::new();
    let server_context = Arc::new(server::Context {
        caches: caches.clone(),
        inventory,
        work: Arc::new(bmc_work),
        written: Default::default(),
        boot_index: index.clone(),
        client: client.clone(),
        catalog: catalog.clone(),
        bmc: bmc_settings,
        discovery: settings.discovery.settings(
            &boot_url,
            settings.boot.metalprobe_binary.is_some(),
            catalog.ignition_generator().map_or(&[][..], |generator| {
                catalog.settings(&generator.identity().name)
            }),
        ),
        reporter: reporter("ferrometal-server"),
        metrics: metrics.clone(),
        backoff: Default::default(),
        uuids: Arc::default(),
        power_backoff: ErrorBackoff::new(
            std::time::Duration::from_secs(10),
            std::time::Duration::from_secs(600),
        ),
    });
    let claim_context = Arc::new(claim::Context {
        client: client.clone(),
        servers: caches.servers.clone(),
        boot_configurations: caches.boot_configurations.clone(),
        servers_by_claim: Arc::new(WatchIndex::new(claim::claim_of)),
        reporter: reporter(claim::MANAGER),
        metrics: metrics.clone(),
        backoff: Default::default(),
        written: Default::default(),
    });
    let classification_context = classification_context(
        client,
        &catalog,
        &caches,
        settings.hold_until_classified,
        &metrics,
    )?;
    if settings.discovery.image.is_none() {
        tracing::warn!(
            "--discovery-image is not set; Servers will report NoDiscoveryImage instead of booting"
        );
    } else if let Some(generator) = catalog.ignition_generator()
        && let Err(error) = generator
            .validate_settings(&server_context.discovery.ignition_settings)
            .await
    {
        bail!(
            "the ignition-generator plugin rejects its settings (plugin configuration and --ignition-setting): {error}"
        );
    }

    // Read at start on every replica, so a bad file fails every replica at once; served
    // only by the leader.
    let dhcp = match &settings.dhcp_config {
        None => None,
        Some(path) => Some((read_dhcp_config(path)?, dhcp_metrics, bindings)),
    };

    let (boot_servers, boot_secrets, boot_cache_writers) = bootconfig::caches();
    Ok(Wired {
        leader_metrics,
        boot_configurations: BootConfigurations {
            client: client.clone(),
            servers: boot_servers,
            secrets: boot_secrets,
            cache_writers: boot_cache_writers,
            resolver,
            index,
            allow_unauthenticated_ignition: settings.boot.allow_unauthenticated_ignition,
            metrics,
            namespace: settings.namespace.clone(),
            concurrency: settings.concurrency.boot_configurations,
        },
        leader: Leader {
            client: client.clone(),
            endpoint: endpoint_context,
            bmc: bmc_context,
            server: server_context,
            claim: claim_context,
            classification: classification_context,
            namespace: settings.namespace.clone(),
            dhcp,
            concurrency: settings.concurrency,
            caches,
            cache_writers,
            bmc_answers,
            bmc_probed,
            readiness,
        },
    })
}

/// Says at start how plugin memory is bounded: the budget, and how many driver calls fit it
/// at their full limit (beyond that, calls wait for memory to come back, and only while
/// they grow past their plugin's peak can they fail for want of it); warns about a world
/// whose own limit is above the budget (its calls can grow only as far as the budget).
fn log_memory_budget(plugins: &PluginRuntime, max_concurrent_calls: usize) {
    use ferrometal::plugins::{
        bmc_driver, credential_lookup, ignition_generator, server_classifier,
    };
    const MIB: usize = 1 << 20;
    let budget = plugins.memory_budget();
    for (world, limits) in [
        ("bmc-driver", bmc_driver::DEFAULT_LIMITS),
        ("credential-lookup", credential_lookup::DEFAULT_LIMITS),
        ("ignition-generator", ignition_generator::DEFAULT_LIMITS),
        ("server-classifier", server_classifier::DEFAULT_LIMITS),
    ] {
        if limits.memory_bytes > budget {
            tracing::warn!(
                world,
                limit_mib = limits.memory_bytes / MIB,
                budget_mib = budget / MIB,
                "a plugin memory limit is above the memory budget; calls of this world can grow only as far as the budget"
            );
        }
    }
    let driver_calls_at_limit = budget / bmc_driver::DEFAULT_LIMITS.memory_bytes.min(budget);
    tracing::info!(
        budget_mib = budget / MIB,
        max_concurrent_calls,
        driver_calls_at_limit,
        "plugin memory budget: running calls share it; calls wait for their plugin's peak so far"
    );
}

/// Binds the boot server (with the probe registry) and starts it and the fetch recorder;
/// returns the URL machines are told.
async fn serve_boot(
    settings: &Settings,
    client: &Client,
    supervisor: &mut Supervisor,
    resolver: &Arc<ImageResolver>,
    index: &BootIndex,
    metrics: BootMetrics,
    source_bindings: Option<SourceBindings>,
) -> anyhow::Result<String> {
    let boot = &settings.boot;
    // Opened once: `/metalprobe` streams from this file.
    let metalprobe_binary = match &boot.metalprobe_binary {
        Some(path) => Some(
            ServedFile::open(path)
                .with_context(|| format!("cannot read --metalprobe-binary {}", path.display()))?,
        ),
        None => None,
    };
    let listener = ferrometal::boot::listener::bind(boot.bind_address)
        .with_context(|| format!("cannot serve the boot server on {}", boot.bind_address))?;
    let bound = listener.local_addr()?;
    let base_url = boot.url.clone().unwrap_or_else(|| {
        let url = default_boot_url(bound);
        tracing::warn!("--boot-server-url is not set; machines are told {url}");
        url
    });
    let layers = match &boot.layer_cache_dir {
        Some(dir) => LayerCache::new(dir, boot.layer_cache_bytes),
        None => LayerCache::temporary(boot.layer_cache_bytes),
    }
    .context("cannot prepare the boot server's layer cache (--boot-layer-cache-dir)")?;
    let reports = FetchLog::new(metrics.fetches.clone());
    let connections = metrics.connections.clone();
    let boot_server = Arc::new(BootServer {
        index: index.clone(),
        resolver: resolver.clone(),
        layers,
        config: BootServerConfig {
            base_url: base_url.clone(),
            ipv6_url: boot.ipv6_url.clone(),
            trusted_proxies: boot.trusted_proxies.clone(),
            extra_kernel_args: boot.kernel_args.clone(),
            metalprobe_binary,
            source_bindings,
        },
        metrics,
        reports: reports.clone(),
    });
    tracing::info!(address = %bound, url = %base_url, ipv6_url = boot.ipv6_url.as_deref(), "serving the boot server and the registry");
    let probe_registry = Arc::new(Registry {
        boot: boot_server.clone(),
        client: client.clone(),
        allow_unauthenticated: boot.registry_allow_unauthenticated,
    });
    let app = ferrometal::boot::server::router(boot_server)
        .merge(ferrometal::registry::router(probe_registry));
    supervisor.listen(
        "boot server",
        ferrometal::boot::listener::serve(listener, app, boot.limits, connections),
    );
    supervisor.spawn(
        "fetch recorder",
        record_fetches(reports, client.clone(), supervisor.shutdown()),
    );
    Ok(base_url)
}

/// Writes the boot server's fetch records until shutdown, then those still pending, for at
/// most [`FETCH_FLUSH_GRACE`].
async fn record_fetches(reports: FetchLog, client: Client, shutdown: Shutdown) {
    let flushed = async {
        shutdown.await;
        let deadline = tokio::time::Instant::now() + FETCH_FLUSH_GRACE;
        while !reports.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        if !reports.is_empty() {
            tracing::warn!(
                configurations = reports.len(),
                "stopping with machine fetches not recorded"
            );
        }
    };
    tokio::select! {
        () = reports.clone().run(client) => {}
        () = flushed => {}
    }
}

/// The event reporter of one controller.
fn reporter(controller: &str) -> Reporter {
    Reporter {
        controller: controller.to_owned(),
        instance: std::env::var("HOSTNAME").ok(),
    }
}

/// How BMC certificates are verified, reading the CA bundle if one is named.
fn tls_policy(trust: &BmcTrust) -> anyhow::Result<TlsPolicy> {
    Ok(match trust {
        BmcTrust::CaFile(file) => TlsPolicy::CaBundle(
            std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?,
        ),
        BmcTrust::AnyCertificate => TlsPolicy::Insecure,
        // Without a bundle, https BMCs fail verification with a clear TLS condition.
        BmcTrust::NoCertificate => TlsPolicy::CaBundle(String::new()),
    })
}

fn read_dhcp_config(path: &std::path::Path) -> anyhow::Result<DhcpConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read DHCP configuration {}", path.display()))?;
    DhcpConfig::parse(&text)
        .map_err(|error| anyhow::anyhow!("DHCP configuration {}: {error}", path.display()))
}

/// Starts campaigning for the lease (opening `fence` as far as it is confirmed), or leads at
/// once without `--leader-elect`.
pub async fn elect(
    election: Option<ElectionSettings>,
    clients: &Clients,
    fence: WriteFence,
    metrics: LeaderMetrics,
) -> anyhow::Result<(Leadership, Option<Elector>)> {
    let Some(settings) = election else {
        metrics.set_leading(true);
        return Ok((Leadership::always(), None));
    };
    let (leadership, elector) =
        ferrometal::leader::elect(clients.election.clone(), settings, metrics, fence).await?;
    Ok((leadership, Some(elector)))
}

/// The boot-configuration controller, which every replica runs (only the leader writes
/// status), before it knows the leadership.
pub struct BootConfigurations {
    client: Client,
    servers: Store<Server>,
    secrets: Store<k8s_openapi::api::core::v1::Secret>,
    cache_writers: bootconfig::CacheWriters,
    resolver: Arc<ImageResolver>,
    index: BootIndex,
    allow_unauthenticated_ignition: bool,
    metrics: ControllerMetrics,
    namespace: Option<String>,
    concurrency: u16,
}

impl BootConfigurations {
    /// Starts the controller; it stops taking work on shutdown and lets running reconciles
    /// finish.
    pub fn start(self, leadership: Leadership, supervisor: &mut Supervisor) {
        let context = Arc::new(bootconfig::Context {
            servers: self.servers,
            secrets: self.secrets,
            client: self.client,
            resolver: self.resolver,
            resolutions: bootconfig::ResolutionCache::default(),
            index: self.index,
            allow_unauthenticated_ignition: self.allow_unauthenticated_ignition,
            leadership,
            reporter: reporter("ferrometal-bootconfig"),
            metrics: self.metrics,
            backoff: Default::default(),
            written: Default::default(),
        });
        supervisor.spawn(
            "boot-configuration controller",
            bootconfig::run(
                context,
                self.namespace,
                self.concurrency,
                supervisor.shutdown(),
                self.cache_writers,
            ),
        );
    }
}

/// What the leader runs: the Endpoint, BMC and Server controllers and (when configured) the
/// DHCP and TFTP servers.
pub struct Leader {
    client: Client,
    endpoint: Arc<endpoint::Context>,
    bmc: Arc<bmc::Context>,
    server: Arc<server::Context>,
    claim: Arc<claim::Context>,
    /// The classifier, when server-classifier plugins are configured.
    classification: Option<Arc<classification::Context>>,
    /// The namespace of ServerClaims (`None`: all).
    namespace: Option<String>,
    dhcp: Option<(DhcpConfig, DhcpMetrics, SourceBindings)>,
    concurrency: Concurrency,
    /// The watch caches the controllers' watches fill.
    caches: Arc<Caches>,
    /// Their writing ends.
    cache_writers: CacheWriters,
    /// Servers whose BMC operation finished.
    bmc_answers: mpsc::UnboundedReceiver<ObjectRef<Server>>,
    /// BMCs whose probe finished.
    bmc_probed: mpsc::UnboundedReceiver<ObjectRef<BMC>>,
    /// `/readyz`'s checks, to which the leader adds its watches' first listings.
    readiness: Readiness,
}

impl Leader {
    /// Starts the leader's tasks. The controllers stop taking work on shutdown and let
    /// running reconciles finish; the DHCP and TFTP servers close their sockets at once.
    pub fn start(self, supervisor: &mut Supervisor) {
        let Self {
            client,
            endpoint: endpoint_context,
            bmc: bmc_context,
            server: server_context,
            claim: claim_context,
            classification: classification_context,
            namespace,
            dhcp,
            concurrency,
            caches,
            cache_writers,
            mut bmc_answers,
            mut bmc_probed,
            readiness,
        } = self;
        if let Some((config, metrics, bindings)) = dhcp {
            serve_dhcp(&client, config, metrics, bindings, supervisor);
        }

        // Every controller starts a reconcile only when what it acts on changed (not on its
        // own or another controller's status writes), and fills the watch caches the
        // reconcilers read instead of the API server.
        let CacheWriters {
            bmcs: bmc_writer,
            bmc_secrets: bmc_secret_writer,
            endpoints: endpoint_writer,
            servers: server_writer,
            boot_configurations: boot_configuration_writer,
            server_claims: claim_writer,
        } = cache_writers;
        let endpoint_changes = changes(
            watch(Api::<Endpoint>::all(client.clone()))
                .reflect(endpoint_writer)
                .inspect_ok(first_listing(&readiness, "Endpoint watch")),
            spec_and_labels,
        );
        // Its BMC is applied on every reconcile: only its deletion needs one more, which
        // must write even while the BMC watch's cache still holds the deleted BMC.
        let endpoint_applied = endpoint_context.clone();
        let endpoints = Controller::for_stream(endpoint_changes, caches.endpoints.clone())
            .owns_stream(
                deletions(watch(Api::<BMC>::all(client.clone())))
                    .inspect_ok(move |bmc: &BMC| endpoint_applied.applied.forget(&bmc.name_any())),
            )
            .with_config(
                kube::runtime::controller::Config::default().concurrency(concurrency.endpoints),
            )
            .graceful_shutdown_on(supervisor.shutdown())
            .run(
                endpoint::reconcile,
                endpoint::error_policy,
                endpoint_context,
            )
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "endpoint reconcile stream");
                }
            });
        supervisor.spawn(
            "Endpoint controller",
            until_started_or_stopped(endpoints, caches.endpoints.clone(), supervisor.shutdown()),
        );

        // A BMC's Endpoint and BMCSecret carry its name (metal-operator's convention), so a
        // change to either re-evaluates the BMC of that name.
        let bmc_changes = changes(
            watch(Api::<BMC>::all(client.clone()))
                .reflect(bmc_writer)
                .inspect_ok(first_listing(&readiness, "BMC watch")),
            spec_and_labels,
        );
        let secret_changes = changes(
            watch(Api::<BMCSecret>::all(client.clone()))
                .reflect(bmc_secret_writer)
                .inspect_ok(first_listing(&readiness, "BMCSecret watch")),
            |secret: &BMCSecret| {
                fingerprint((
                    &secret.metadata.resource_version,
                    secret.metadata.generation,
                ))
            },
        );
        // Its Servers are applied on every probe: only a deletion needs one more (their
        // status and spec changes are the Server reconciler's business), which must write
        // even while the Server watch's cache still holds the deleted Server.
        let bmc_applied = bmc_context.clone();
        let bmcs = Controller::for_stream(bmc_changes, caches.bmcs.clone())
            .owns_stream(
                deletions(watch(Api::<Server>::all(client.clone()))).inspect_ok(
                    move |server: &Server| bmc_applied.applied.forget(&server.name_any()),
                ),
            )
            .watches_stream(
                changes(watch(Api::<Endpoint>::all(client.clone())), spec_and_labels),
                |endpoint| Some(ObjectRef::<BMC>::new(&endpoint.name_any())),
            )
            .watches_stream(secret_changes, |secret| {
                Some(ObjectRef::<BMC>::new(&secret.name_any()))
            })
            // A probe ended: its BMC takes the result.
            .reconcile_on(futures::stream::poll_fn(move |cx| bmc_probed.poll_recv(cx)))
            // A BMC and its BMCSecret applied together are probed once, not twice.
            .with_config(
                kube::runtime::controller::Config::default()
                    .concurrency(concurrency.bmcs)
                    .debounce(std::time::Duration::from_secs(1)),
            )
            .graceful_shutdown_on(supervisor.shutdown())
            .run(bmc::reconcile, bmc::error_policy, bmc_context)
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "BMC reconcile stream");
                }
            });
        supervisor.spawn(
            "BMC controller",
            until_started_or_stopped(bmcs, caches.bmcs.clone(), supervisor.shutdown()),
        );

        let discovery_namespace = server_context.discovery.namespace.clone();
        // The Server watch also keeps the index of Servers by system UUID (duplicate
        // systems), event by event, before the controller sees the event; and, once its
        // cache has an event, wakes the claims whose Servers' claimability changed and the
        // classifier (both read that cache: see `triggers::Tap`).
        let uuids = server_context.uuids.clone();
        let servers_by_claim = claim_context.servers_by_claim.clone();
        let (claimability, claimability_changes) = tap(claim::claimability_fingerprint);
        let (classification_tap, classification_changes) = classification_context
            .as_ref()
            .map(|_| tap(classification::fingerprint))
            .unzip();
        let server_changes = changes(
            watch(Api::<Server>::all(client.clone()))
                .reflect(server_writer)
                .inspect_ok(first_listing(&readiness, "Server watch"))
                .map_ok(move |event| {
                    uuids.apply(&event);
                    servers_by_claim.apply(&event);
                    claimability.apply(&event);
                    if let Some(classification) = &classification_tap {
                        classification.apply(&event);
                    }
                    event
                }),
            server::fingerprint,
        );
        let configuration_changes = changes(
            watch(Api::<ServerBootConfiguration>::namespaced(
                client.clone(),
                &discovery_namespace,
            ))
            .reflect(boot_configuration_writer)
            .inspect_ok(first_listing(&readiness, "boot configuration watch")),
            // Its state, and a refused second use of its fetch ticket (the Server then
            // starts over); not the boot server's other fetch records.
            |config: &ServerBootConfiguration| {
                let status = config.status.as_ref();
                fingerprint((
                    config.metadata.generation,
                    status.and_then(|status| status.state),
                    status.and_then(|status| {
                        status
                            .conditions
                            .iter()
                            .find(|c| c.type_ == ferrometal::api::conditions::FETCH_TICKET_REUSED)
                            .map(|c| c.last_transition_time.0)
                    }),
                ))
            },
        );
        let claims_api = match &namespace {
            Some(namespace) => Api::<ServerClaim>::namespaced(client.clone(), namespace),
            None => Api::<ServerClaim>::all(client.clone()),
        };
        // A claim going away releases its Server; a change of its spec (its power) is the
        // Server's to follow.
        let claim_releases = changes(watch(claims_api.clone()), |claim: &ServerClaim| {
            fingerprint((
                claim.metadata.deletion_timestamp.is_some(),
                claim.metadata.generation,
            ))
        });
        let answered = futures::stream::poll_fn(move |cx| bmc_answers.poll_recv(cx));
        // Listened to from the moment this replica leads (a standby's index opens windows
        // that nobody waits for).
        let mut opened_windows = server_context.boot_index.opened_windows();
        let opened = futures::stream::poll_fn(move |cx| opened_windows.poll_recv(cx))
            .map(|server: String| ObjectRef::<Server>::new(&server));
        let servers = Controller::for_stream(server_changes, caches.servers.clone())
            // Not `owns`: it looks for the owner in the child's namespace, and Servers are
            // cluster-scoped, so it would queue a second, namespaced key for the same Server
            // whose reconciles run beside the Server's own (two discovery starts, two boot
            // tokens).
            .watches_stream(configuration_changes, |config| server::owner(&config))
            .watches_stream(claim_releases, |claim| {
                claim
                    .spec
                    .server_ref
                    .as_ref()
                    .map(|server| ObjectRef::<Server>::new(server.name.trim()))
            })
            // A BMC operation of a step ended: its Server takes the result.
            .reconcile_on(answered)
            // Its boot window opened: the machine may be powered on.
            .reconcile_on(opened)
            .with_config(
                kube::runtime::controller::Config::default().concurrency(concurrency.servers),
            )
            .graceful_shutdown_on(supervisor.shutdown())
            .run(server::reconcile, server::error_policy, server_context)
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "server reconcile stream");
                }
            });
        supervisor.spawn(
            "Server controller",
            until_started_or_stopped(servers, caches.servers.clone(), supervisor.shutdown()),
        );

        // Claims are bound by their own controller: its watch fills the claim cache the
        // Server controller reads, and an index of claims by the Server they name (or of
        // claims still waiting for one); a Server's claimability changing wakes the claims
        // it concerns.
        let claims_by_server: Arc<WatchIndex<ServerClaim, (String, String)>> =
            Arc::new(WatchIndex::new(claim::claim_entries));
        let claim_index = claims_by_server.clone();
        let claim_changes = changes(
            watch(claims_api)
                .reflect(claim_writer)
                .inspect_ok(first_listing(&readiness, "ServerClaim watch"))
                .map_ok(move |event| {
                    claim_index.apply(&event);
                    event
                }),
            claim::fingerprint,
        );
        let claims = Controller::for_stream(claim_changes, caches.server_claims.clone())
            .watches_stream(claimability_changes, move |server| {
                claim::claims_of_server(&server, &claims_by_server)
            })
            .with_config(
                kube::runtime::controller::Config::default().concurrency(concurrency.claims),
            )
            .graceful_shutdown_on(supervisor.shutdown())
            .run(claim::reconcile, claim::error_policy, claim_context)
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "claim reconcile stream");
                }
            });
        supervisor.spawn(
            "ServerClaim controller",
            until_started_or_stopped(claims, caches.server_claims.clone(), supervisor.shutdown()),
        );

        // Classified Servers: their facts, a person's labels and what the classifiers
        // applied wake the classifier (not power or conditions), from the Server watch's tap.
        if let (Some(classification_context), Some(classification_changes)) =
            (classification_context, classification_changes)
        {
            let classifier = Controller::for_stream(classification_changes, caches.servers.clone())
                .with_config(
                    kube::runtime::controller::Config::default()
                        .concurrency(classification::CONCURRENCY),
                )
                .graceful_shutdown_on(supervisor.shutdown())
                .run(
                    classification::reconcile,
                    classification::error_policy,
                    classification_context,
                )
                .for_each(|result| async move {
                    if let Err(error) = result {
                        tracing::debug!(%error, "classification reconcile stream");
                    }
                });
            supervisor.spawn(
                "classifier",
                until_started_or_stopped(classifier, caches.servers.clone(), supervisor.shutdown()),
            );
        }
    }
}

/// The classifier's context when server-classifier plugins are configured (`None`
/// otherwise); `--hold-until-classified` without a classifier is a configuration error.
fn classification_context(
    client: &Client,
    catalog: &PluginCatalog,
    caches: &Arc<Caches>,
    hold: bool,
    metrics: &ControllerMetrics,
) -> anyhow::Result<Option<Arc<classification::Context>>> {
    let classifiers: Vec<classification::Classifier> = catalog
        .server_classifiers()
        .into_iter()
        .map(|plugin| classification::Classifier {
            settings: catalog.settings(&plugin.identity().name).to_vec(),
            plugin: plugin.clone(),
        })
        .collect();
    if classifiers.is_empty() {
        if hold {
            bail!(
                "--hold-until-classified needs a server-classifier: list one under `classifiers` in the plugin configuration"
            );
        }
        return Ok(None);
    }
    tracing::info!(
        classifiers = ?classifiers.iter().map(|c| c.plugin.identity().name.clone()).collect::<Vec<_>>(),
        hold,
        "classifying discovered Servers"
    );
    Ok(Some(Arc::new(classification::Context {
        client: client.clone(),
        bmcs: caches.bmcs.clone(),
        classifiers_digest: classification::Context::digest_of(&classifiers),
        classifiers,
        hold,
        reporter: reporter(classification::MANAGER),
        metrics: metrics.clone(),
        backoff: ErrorBackoff::new(
            std::time::Duration::from_secs(10),
            std::time::Duration::from_secs(600),
        ),
    })))
}

/// Makes `/readyz` wait for a watch's first complete listing (`name` says which watch): the
/// returned function, given every event of the watch, notes its first `InitDone`.
///
/// Not `Store::wait_until_ready`: kube's store wakes only one waiter, and its controller
/// runner already waits on it; a second waiter could take the wake-up away from it.
fn first_listing<K>(
    readiness: &Readiness,
    name: &'static str,
) -> impl Fn(&watcher::Event<K>) + Send + 'static {
    let listed = Arc::new(AtomicBool::new(false));
    readiness.require(name, {
        let listed = listed.clone();
        move || listed.load(Ordering::Acquire)
    });
    move |event| {
        if matches!(event, watcher::Event::InitDone) {
            listed.store(true, Ordering::Release);
        }
    }
}

/// Starts the DHCP server, a TFTP server per interface when `tftpRoot` is set, and the
/// writer that turns DHCP-announced BMCs into Endpoints.
fn serve_dhcp(
    client: &Client,
    config: DhcpConfig,
    metrics: DhcpMetrics,
    bindings: SourceBindings,
    supervisor: &mut Supervisor,
) {
    let (onboard, onboarded) = ferrometal::dhcp::onboard::OnboardQueue::new();
    // Ends with the queue: once the DHCP server is dropped on shutdown, it writes what it
    // was handed and stops.
    supervisor.spawn(
        "DHCP Endpoint writer",
        ferrometal::dhcp::server::write_endpoints(client.clone(), onboarded),
    );
    if let Some(root) = &config.tftp_root {
        match ferrometal::dhcp::tftp::TftpFiles::read(root) {
            Ok(files) => {
                let files = Arc::new(files);
                for interface in &config.interfaces {
                    let address = interface.server_address;
                    supervisor.listen(
                        format!("TFTP server on {address}"),
                        ferrometal::dhcp::tftp::serve(address, files.clone()),
                    );
                }
            }
            Err(error) => {
                tracing::error!(root = %root.display(), %error, "cannot read the TFTP root; not serving TFTP");
            }
        }
    }
    if let Some(dhcp6) = config.dhcp6.clone() {
        supervisor.listen(
            "DHCPv6 server",
            ferrometal::dhcp::v6::server::serve(
                dhcp6,
                config.onboarding.clone(),
                metrics.clone(),
                onboard.clone(),
                bindings.clone(),
            ),
        );
    }
    // Without DHCPv4 interfaces (a DHCPv6-only configuration) there is no DHCPv4 server.
    if !config.interfaces.is_empty() {
        supervisor.listen(
            "DHCP server",
            ferrometal::dhcp::server::serve(config, metrics, onboard, bindings),
        );
    }
}
