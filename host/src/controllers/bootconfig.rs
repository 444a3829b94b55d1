//! BootConfigReconciler (boot-operator's role): a ServerBootConfiguration becomes `Ready` when
//! its image resolves to bootable layers, its Server has a system UUID and its ignition Secret
//! holds an `ignition` (and a boot token); then the boot server serves it. Otherwise it is
//! `Error` with conditions that name the cause.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::Error;
use super::provisioning::BOOT_TOKEN_SECRET_ANNOTATION;
use crate::api::{
    Server, ServerBootConfiguration, ServerBootConfigurationState, ServerState, conditions,
};
use crate::boot::image::{BootLayers, ImageError, ImageResolver, ResolvedImage};
use crate::boot::index::{BootEntry, BootIndex, ConfigKey, EntryState, Inserted};
use crate::boot::uuid::SystemUuid;
use crate::controllers::caches::{cached_or_get, watch};
use crate::controllers::report;
use crate::controllers::watch_index::WatchIndex;
use crate::controllers::written::{Freshness, WrittenVersions};
use crate::leader::Leadership;
use crate::telemetry::ControllerMetrics;

/// Field manager of the reconciler's status writes.
pub const MANAGER: &str = "ferrometal-bootconfig";
/// Field manager of the boot server's fetch conditions.
pub const BOOT_SERVER_MANAGER: &str = "ferrometal-boot-server";
/// Key of the ignition Secret that holds the ignition (boot-operator's).
pub const IGNITION_KEY: &str = "ignition";
/// Key of the ignition Secret that holds the per-boot token the ignition fetch must carry.
pub const BOOT_TOKEN_KEY: &str = "boot-token";

/// Condition types of ServerBootConfigurations, defined in the catalogue.
pub use crate::api::conditions::{
    BOOT_STATE_RECEIVED, IGNITION_DATA_FETCHED, IGNITION_SECRET, IMAGE_VALIDATION,
    IPXE_SCRIPT_FETCHED,
};

/// How often a Ready configuration's image is resolved again (tags move).
pub const RESOLVE_AGAIN: Duration = Duration::from_secs(600);
/// How soon a configuration in Error is evaluated again.
pub const RETRY: Duration = Duration::from_secs(30);
/// How long one image resolution is reused by every configuration naming the image.
pub const RESOLUTION_TTL: Duration = Duration::from_secs(60);

/// The Server a configuration boots, as far as booting cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLookup {
    /// No Server of that name.
    Missing,
    /// The Server, as far as booting cares.
    Found(ServerView),
}

/// What a boot configuration's serving depends on in its Server (a change of any of it
/// re-evaluates the Server's configurations).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ServerView {
    /// Canonical system UUID (`None` when it has no valid one).
    pub uuid: Option<SystemUuid>,
    /// IPs and lowercase MACs from its status, for `/httpboot`.
    pub network_identifiers: Vec<String>,
    /// The configuration its `spec.bootConfigurationRef` names: the only one served for it.
    pub boot_configuration_ref: Option<ConfigKey>,
    /// The discovery attempt it is in, while that attempt has no report yet: the boot window
    /// of a discovery configuration. It opens when the attempt starts (the Server powers the
    /// machine on only once the boot server serves it) and closes at the report, the
    /// timeout or the next attempt.
    pub discovery_attempt: Option<u32>,
    /// The fingerprint of that attempt's fetch ticket, as the Server recorded it: served
    /// only from an ignition Secret whose token has it (`None`: any).
    pub discovery_ticket: Option<String>,
    /// The provisioning attempt of a claimed (Reserved) Server: the boot window of its
    /// claim's configuration. It opens when the attempt starts and closes when the Server
    /// is released.
    pub provision_attempt: Option<u32>,
    /// The fingerprint of that attempt's fetch ticket.
    pub provision_ticket: Option<String>,
}

impl ServerView {
    /// The view of `server`.
    pub fn of(server: &Server) -> Self {
        let status = server.status.as_ref();
        let progress = super::server::Progress::from_annotations(server.annotations());
        let provision = super::provisioning::BootAttempt::from_annotations(server.annotations());
        let reported_at = status.and_then(super::server::reported_at);
        Self {
            uuid: server
                .spec
                .system_uuid()
                .and_then(|uuid| SystemUuid::parse(&uuid)),
            network_identifiers: status
                .iter()
                .flat_map(|status| &status.network_interfaces)
                .flat_map(|nic| {
                    nic.ip
                        .iter()
                        .chain(&nic.ips)
                        .cloned()
                        .chain([nic.mac_address.to_ascii_lowercase()])
                })
                .filter(|identifier| !identifier.is_empty())
                .collect(),
            boot_configuration_ref: server.spec.boot_configuration_ref.as_ref().map(|r| {
                ConfigKey {
                    namespace: r.namespace.clone(),
                    name: r.name.clone(),
                }
            }),
            discovery_attempt: (status.and_then(|s| s.state) == Some(ServerState::Discovery)
                && progress.attempt > 0
                && progress.started.is_some()
                && !progress.reported(reported_at))
            .then_some(progress.attempt),
            discovery_ticket: progress.ticket,
            provision_attempt: provision
                .open_attempt()
                .filter(|_| status.and_then(|s| s.state) == Some(ServerState::Reserved)),
            provision_ticket: provision.ticket,
        }
    }
}

/// The ignition Secret, as far as booting cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnitionLookup {
    /// The configuration names no Secret: machines boot without ignition.
    NotReferenced,
    /// The named Secret does not exist.
    SecretMissing(String),
    /// The Secret has no non-empty `ignition` key.
    KeyMissing(String),
    /// The Secret's contents.
    Found {
        /// The Secret's name.
        secret: String,
        /// The ignition.
        ignition: bytes::Bytes,
        /// The boot token, if the Secret has one.
        token: Option<String>,
    },
}

/// Everything the decision depends on.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Namespace and name of the configuration.
    pub config: ConfigKey,
    /// The Server it names.
    pub server_name: String,
    /// Its generation.
    pub generation: Option<i64>,
    /// Its Server.
    pub server: ServerLookup,
    /// The image resolution.
    pub image: Result<ResolvedImage, ImageError>,
    /// Its ignition Secret.
    pub ignition: IgnitionLookup,
    /// Whether ignition without a boot token may be served.
    pub allow_unauthenticated_ignition: bool,
    /// Whether the configuration is its Server's own discovery configuration (the Server
    /// is its controlling owner): served only in the discovery's boot window.
    pub discovery: bool,
    /// Whether the configuration is a claim's (a ServerClaim is its controlling owner):
    /// served only in the boot window of the Server's provisioning attempt.
    pub provisioning: bool,
    /// The message of its `IgnitionDataFetched` condition, which names who used which fetch
    /// ticket (so that a used ticket stays used across restarts).
    pub ignition_fetched: Option<String>,
}

/// One condition the reconciler owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionUpdate {
    /// Type.
    pub kind: &'static str,
    /// True or False.
    pub value: bool,
    /// Reason.
    pub reason: &'static str,
    /// Message.
    pub message: String,
}

/// The outcome of one evaluation.
#[derive(Debug)]
pub struct Decision {
    /// Ready or Error.
    pub state: ServerBootConfigurationState,
    /// Ready, ImageValidation and IgnitionSecret.
    pub conditions: Vec<ConditionUpdate>,
    /// What to serve, when Ready and in its boot window (a Ready configuration outside
    /// its window is answered as an unknown machine).
    pub entry: Option<BootEntry>,
    /// When to look again.
    pub requeue: Duration,
}

/// Decides state, conditions and the served entry from what was observed.
pub fn plan(observed: Observed) -> Decision {
    let image_condition = match &observed.image {
        Ok(resolved) => ConditionUpdate {
            kind: IMAGE_VALIDATION,
            value: true,
            reason: conditions::REASON_IMAGE_RESOLVED,
            message: format!(
                "{} resolved to manifest {} ({})",
                resolved.reference.whole(),
                resolved.manifest_digest,
                describe_layers(&resolved.layers)
            ),
        },
        Err(error) => ConditionUpdate {
            kind: IMAGE_VALIDATION,
            value: false,
            reason: image_reason(error),
            message: error.to_string(),
        },
    };
    let (ignition_condition, ignition) = match &observed.ignition {
        IgnitionLookup::NotReferenced => (
            ConditionUpdate {
                kind: IGNITION_SECRET,
                value: true,
                reason: conditions::REASON_NO_IGNITION,
                message: String::from("no ignitionSecretRef: machines boot without ignition"),
            },
            Some((None, None)),
        ),
        IgnitionLookup::SecretMissing(secret) => (
            ConditionUpdate {
                kind: IGNITION_SECRET,
                value: false,
                reason: conditions::REASON_SECRET_NOT_FOUND,
                message: format!(
                    "ignition Secret {}/{secret} does not exist",
                    observed.config.namespace
                ),
            },
            None,
        ),
        IgnitionLookup::KeyMissing(secret) => (
            ConditionUpdate {
                kind: IGNITION_SECRET,
                value: false,
                reason: conditions::REASON_IGNITION_KEY_MISSING,
                message: format!(
                    "ignition Secret {}/{secret} has no non-empty `{IGNITION_KEY}` key",
                    observed.config.namespace
                ),
            },
            None,
        ),
        IgnitionLookup::Found { token: None, .. }
            if observed.provisioning && !observed.allow_unauthenticated_ignition =>
        {
            (
                ConditionUpdate {
                    kind: IGNITION_SECRET,
                    value: false,
                    reason: conditions::REASON_BOOT_TOKEN_MISSING,
                    message: String::from(
                        "no boot token yet: the Server makes one for each boot of the claim's OS, when the claim wants it on",
                    ),
                },
                None,
            )
        }
        IgnitionLookup::Found {
            secret,
            token: None,
            ..
        } if !observed.allow_unauthenticated_ignition => (
            ConditionUpdate {
                kind: IGNITION_SECRET,
                value: false,
                reason: conditions::REASON_BOOT_TOKEN_MISSING,
                message: format!(
                    "ignition Secret {}/{secret} has no `{BOOT_TOKEN_KEY}` key; add one, or start ferrometal with --boot-allow-unauthenticated-ignition to serve ignition to anyone who asks",
                    observed.config.namespace
                ),
            },
            None,
        ),
        IgnitionLookup::Found {
            secret,
            ignition,
            token,
        } => (
            ConditionUpdate {
                kind: IGNITION_SECRET,
                value: true,
                reason: conditions::REASON_IGNITION_FOUND,
                message: format!(
                    "ignition from Secret {secret}{}",
                    if token.is_some() {
                        ", served only with its boot token"
                    } else {
                        ", served without a token (--boot-allow-unauthenticated-ignition)"
                    }
                ),
            },
            Some((Some(ignition.clone()), token.clone())),
        ),
    };
    let server = match &observed.server {
        ServerLookup::Missing => Err((
            conditions::REASON_SERVER_NOT_FOUND,
            String::from("the referenced Server does not exist"),
        )),
        ServerLookup::Found(ServerView { uuid: None, .. }) => Err((
            conditions::REASON_SYSTEM_UUID_MISSING,
            String::from("the referenced Server has no valid spec.systemUUID"),
        )),
        ServerLookup::Found(
            view @ ServerView {
                uuid: Some(uuid), ..
            },
        ) => match &view.boot_configuration_ref {
            Some(named) if *named != observed.config => Err((
                conditions::REASON_NOT_THE_SERVERS_BOOT_CONFIGURATION,
                format!(
                    "Server {} names {named} in spec.bootConfigurationRef; only that configuration is served for it",
                    observed.server_name
                ),
            )),
            // A discovery configuration is made before its Server names it (in the same
            // step): it waits for its window rather than being marked wrong.
            None if !observed.discovery && !observed.provisioning => Err((
                conditions::REASON_NOT_THE_SERVERS_BOOT_CONFIGURATION,
                format!(
                    "Server {} does not name this configuration in spec.bootConfigurationRef; set it there to have it served",
                    observed.server_name
                ),
            )),
            _ => Ok((uuid.clone(), view)),
        },
    };

    let (ready, entry) = match (&observed.image, ignition, server) {
        (Ok(resolved), Some((ignition, token)), Ok((uuid, view))) => {
            // `Some((discovery, provisioning))`: served, in the window of that attempt, if
            // any; `None`: a discovery or claim configuration outside its window.
            let named = view.boot_configuration_ref.as_ref() == Some(&observed.config);
            let served = if observed.discovery {
                view.discovery_attempt
                    .filter(|_| named)
                    .map(|attempt| (Some(attempt), None))
            } else if observed.provisioning {
                view.provision_attempt
                    .filter(|_| named)
                    .map(|attempt| (None, Some(attempt)))
            } else {
                Some((None, None))
            };
            let entry = served
                .map(|(discovery_attempt, provision_attempt)| {
                    let entry = BootEntry {
                        config: observed.config.clone(),
                        uuid: uuid.clone(),
                        server: observed.server_name.clone(),
                        image: resolved.reference.clone(),
                        layers: resolved.layers.clone(),
                        ignition,
                        token,
                        network_identifiers: view.network_identifiers.clone(),
                        discovery_attempt,
                        provision_attempt,
                        state: EntryState::default(),
                    };
                    if let Some(message) = &observed.ignition_fetched {
                        entry.note_fetch_record(message);
                    }
                    entry
                })
                // A discovery whose Secret in this cache is another attempt's is not served (its
                // own comes soon).
                .filter(|entry| {
                    if observed.discovery {
                        entry.has_ticket(view.discovery_ticket.as_deref())
                    } else if observed.provisioning {
                        entry.has_ticket(view.provision_ticket.as_deref())
                    } else {
                        true
                    }
                });
            (
                ConditionUpdate {
                    kind: conditions::READY,
                    value: true,
                    reason: conditions::REASON_BOOT_CONFIGURATION_READY,
                    message: format!("system {uuid} can boot {}", resolved.reference.whole()),
                },
                entry,
            )
        }
        (_, _, Err((reason, message))) => (
            ConditionUpdate {
                kind: conditions::READY,
                value: false,
                reason,
                message,
            },
            None,
        ),
        _ => {
            let failed = [&image_condition, &ignition_condition]
                .into_iter()
                .find(|c| !c.value)
                .cloned()
                .unwrap_or_else(|| image_condition.clone());
            (
                ConditionUpdate {
                    kind: conditions::READY,
                    value: false,
                    reason: failed.reason,
                    message: failed.message,
                },
                None,
            )
        }
    };
    let transient = matches!(observed.image, Err(ImageError::RegistryUnreachable { .. }));
    let ready_now = ready.value;
    // A claim's configuration before the first boot of the claim's OS: nothing is wrong,
    // the Server makes the token when the claim wants the machine on.
    let awaiting_token = observed.provisioning
        && !observed.allow_unauthenticated_ignition
        && matches!(observed.ignition, IgnitionLookup::Found { token: None, .. });
    Decision {
        state: if ready_now {
            ServerBootConfigurationState::Ready
        } else if awaiting_token {
            ServerBootConfigurationState::Pending
        } else {
            ServerBootConfigurationState::Error
        },
        requeue: if ready_now {
            RESOLVE_AGAIN
        } else if transient {
            RETRY
        } else {
            // Secrets and Servers are watched; bad references wait for an edit, but the
            // registry may gain the image, so look again now and then.
            RETRY * 4
        },
        conditions: vec![ready, image_condition, ignition_condition],
        entry,
    }
}

fn describe_layers(layers: &BootLayers) -> String {
    let mut parts = Vec::new();
    if layers.kernel.is_some() {
        parts.push("kernel");
    }
    if layers.initramfs.is_some() {
        parts.push("initramfs");
    }
    if layers.squashfs.is_some() {
        parts.push("squashfs");
    }
    if layers.uki.is_some() {
        parts.push("uki");
    }
    parts.join(", ")
}

/// The condition reason for an image failure.
pub fn image_reason(error: &ImageError) -> &'static str {
    match error {
        ImageError::BadReference { .. } => conditions::REASON_BAD_REFERENCE,
        ImageError::RegistryNotAllowed { .. } => conditions::REASON_REGISTRY_NOT_ALLOWED,
        ImageError::RegistryUnreachable { .. } => conditions::REASON_REGISTRY_UNREACHABLE,
        ImageError::NotFound { .. } => conditions::REASON_IMAGE_NOT_FOUND,
        ImageError::NoManifestForArchitecture { .. } => {
            conditions::REASON_NO_MANIFEST_FOR_ARCHITECTURE
        }
        ImageError::MissingLayer { .. } => conditions::REASON_MISSING_LAYER,
        ImageError::NotSet => conditions::REASON_IMAGE_NOT_SET,
    }
}

/// Resolutions shared by every configuration naming the same image for [`RESOLUTION_TTL`];
/// concurrent reconciles of one image wait for a single registry round trip.
#[derive(Debug, Default)]
pub struct ResolutionCache {
    entries: std::sync::Mutex<HashMap<String, Arc<ResolutionSlot>>>,
}

/// One image's last resolution; the async lock makes concurrent reconciles wait for one
/// registry round trip.
type ResolutionSlot = tokio::sync::Mutex<Option<(Instant, ResolvedImage)>>;

impl ResolutionCache {
    /// The resolution of `image`, from the cache when fresh. Failures are not cached.
    pub async fn resolve(
        &self,
        resolver: &ImageResolver,
        image: &str,
    ) -> Result<ResolvedImage, ImageError> {
        let slot = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(image.to_owned())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some((at, resolved)) = slot.as_ref()
            && at.elapsed() < RESOLUTION_TTL
        {
            return Ok(resolved.clone());
        }
        let resolved = resolver.resolve(image).await?;
        *slot = Some((Instant::now(), resolved.clone()));
        Ok(resolved)
    }
}

/// What the reconciler needs.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Registry access.
    pub resolver: Arc<ImageResolver>,
    /// Shared image resolutions.
    pub resolutions: ResolutionCache,
    /// What the boot server serves.
    pub index: BootIndex,
    /// Whether ignition Secrets without a boot token are served.
    pub allow_unauthenticated_ignition: bool,
    /// Whether this replica leads: every replica keeps the boot index, only the leader
    /// writes status.
    pub leadership: Leadership,
    /// Event reporter.
    pub reporter: Reporter,
    /// Reconcile metrics.
    pub metrics: ControllerMetrics,
    /// Retry delays after failures, per object.
    pub backoff: super::backoff::ErrorBackoff,
    /// The resource versions of this reconciler's status writes (a cached configuration
    /// older than them is not compared against).
    pub written: WrittenVersions,
    /// Servers, from [`run`]'s Server watch.
    pub servers: Store<Server>,
    /// Secrets of the watched namespaces, from [`run`]'s Secret watch.
    pub secrets: Store<Secret>,
}

/// The writing ends of [`Context::servers`] and [`Context::secrets`], for [`run`].
pub struct CacheWriters {
    /// Fills the Server store.
    pub servers: Writer<Server>,
    /// Fills the Secret store.
    pub secrets: Writer<Secret>,
}

/// Empty Server and Secret stores for a [`Context`] and their writers for [`run`].
pub fn caches() -> (Store<Server>, Store<Secret>, CacheWriters) {
    let (servers, server_writer) = reflector::store();
    let (secrets, secret_writer) = reflector::store();
    (
        servers,
        secrets,
        CacheWriters {
            servers: server_writer,
            secrets: secret_writer,
        },
    )
}

/// What of a Server its boot configurations depend on ([`ServerView`]).
fn served_identity(server: &Server) -> u64 {
    super::triggers::fingerprint(ServerView::of(server))
}

/// Reconciles one ServerBootConfiguration.
#[tracing::instrument(skip_all, fields(config = %format!("{}/{}", sbc.namespace().unwrap_or_default(), sbc.name_any())))]
pub async fn reconcile(
    sbc: Arc<ServerBootConfiguration>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let timer = ctx.metrics.reconcile("bootconfig");
    let key = super::object_key(&*sbc);
    let result = reconcile_inner(&sbc, &ctx).await;
    // Served or refused, the index now says what it will say about this configuration.
    ctx.index.sync().visited(&key_of(&sbc));
    if result.is_ok() {
        ctx.backoff.succeeded(&key);
    }
    timer.finish(result.is_ok());
    result
}

/// The message of a configuration's `IgnitionDataFetched` condition.
fn ignition_fetched(sbc: &ServerBootConfiguration) -> Option<&str> {
    sbc.status
        .iter()
        .flat_map(|status| &status.conditions)
        .find(|c| c.type_ == IGNITION_DATA_FETCHED)
        .map(|c| c.message.as_str())
}

fn key_of(sbc: &ServerBootConfiguration) -> ConfigKey {
    ConfigKey {
        namespace: sbc.namespace().unwrap_or_default(),
        name: sbc.name_any(),
    }
}

async fn reconcile_inner(sbc: &ServerBootConfiguration, ctx: &Context) -> Result<Action, Error> {
    let config = key_of(sbc);
    let server = match cached_or_get(
        &ctx.servers,
        &Api::all(ctx.client.clone()),
        None,
        &sbc.spec.server_ref.name,
    )
    .await?
    {
        None => ServerLookup::Missing,
        Some(server) => ServerLookup::Found(ServerView::of(&server)),
    };
    let image = match sbc.spec.image.as_deref() {
        None | Some("") => Err(ImageError::NotSet),
        Some(image) => ctx.resolutions.resolve(&ctx.resolver, image).await,
    };
    let ignition = match &sbc.spec.ignition_secret_ref {
        None => IgnitionLookup::NotReferenced,
        Some(reference) => {
            match cached_or_get(
                &ctx.secrets,
                &Api::namespaced(ctx.client.clone(), &config.namespace),
                Some(&config.namespace),
                &reference.name,
            )
            .await?
            {
                None => IgnitionLookup::SecretMissing(reference.name.clone()),
                Some(secret) => {
                    let value = |key: &str| {
                        secret
                            .data
                            .as_ref()
                            .and_then(|data| data.get(key))
                            .map(|bytes| bytes.0.clone())
                            .filter(|bytes| !bytes.is_empty())
                    };
                    // A claim's ignition is the claimant's; its token is the operator's, in
                    // the Secret the configuration names.
                    let token = match sbc.annotations().get(BOOT_TOKEN_SECRET_ANNOTATION) {
                        None => value(BOOT_TOKEN_KEY),
                        Some(name) => cached_or_get(
                            &ctx.secrets,
                            &Api::namespaced(ctx.client.clone(), &config.namespace),
                            Some(&config.namespace),
                            name,
                        )
                        .await?
                        .and_then(|secret| secret.data.as_ref()?.get(BOOT_TOKEN_KEY).cloned())
                        .map(|bytes| bytes.0),
                    };
                    match value(IGNITION_KEY) {
                        None => IgnitionLookup::KeyMissing(reference.name.clone()),
                        Some(ignition) => IgnitionLookup::Found {
                            secret: reference.name.clone(),
                            ignition: bytes::Bytes::from(ignition),
                            token: token
                                .map(|token| String::from_utf8_lossy(&token).trim().to_owned())
                                .filter(|token| !token.is_empty()),
                        },
                    }
                }
            }
        }
    };
    let decision = plan(Observed {
        config: config.clone(),
        server_name: sbc.spec.server_ref.name.clone(),
        generation: sbc.metadata.generation,
        server,
        image,
        ignition,
        allow_unauthenticated_ignition: ctx.allow_unauthenticated_ignition,
        discovery: sbc.metadata.owner_references.iter().flatten().any(|owner| {
            owner.controller == Some(true)
                && owner.kind == "Server"
                && owner.name == sbc.spec.server_ref.name
        }),
        provisioning: sbc
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|owner| owner.controller == Some(true) && owner.kind == "ServerClaim"),
        ignition_fetched: ignition_fetched(sbc).map(str::to_owned),
    });
    match decision.entry {
        Some(entry) => {
            if let Inserted::Replaced(other) = ctx.index.insert(entry) {
                tracing::warn!(%other, "another ServerBootConfiguration served the same system; this one replaces it");
            }
        }
        None => ctx.index.remove(&config),
    }
    if ctx.leadership.is_leader() {
        let key = super::object_key(sbc);
        match ctx
            .written
            .freshness(&key, sbc.metadata.resource_version.as_deref())
        {
            // The cached status is older than this reconciler's last write: comparing with
            // it would write the same status again. Look again once the watch caught up
            // (status changes do not trigger a reconcile).
            Freshness::Behind => return Ok(Action::requeue(Duration::from_secs(1))),
            Freshness::Current | Freshness::Unknown => {
                publish_status(sbc, ctx, decision.state, &decision.conditions).await?;
            }
        }
    }
    Ok(Action::requeue(decision.requeue))
}

async fn publish_status(
    sbc: &ServerBootConfiguration,
    ctx: &Context,
    state: ServerBootConfigurationState,
    updates: &[ConditionUpdate],
) -> Result<(), Error> {
    let current = sbc.status.as_ref();
    let mut owned: Vec<Condition> = current
        .map(|status| status.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| updates.iter().any(|u| u.kind == c.type_))
        .collect();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut ready_changed = false;
    let mut changed = false;
    for update in updates {
        let news = conditions::set(
            &mut owned,
            update.kind,
            update.value,
            update.reason,
            &update.message,
            sbc.metadata.generation,
            now.clone(),
        );
        changed |= news;
        ready_changed |= news && update.kind == conditions::READY;
    }
    let stale = owned
        .iter()
        .any(|c| c.observed_generation != sbc.metadata.generation);
    if !changed && !stale && current.and_then(|s| s.state) == Some(state) {
        return Ok(());
    }
    let written = match super::status::apply(
        &Api::<ServerBootConfiguration>::namespaced(
            ctx.client.clone(),
            &sbc.namespace().unwrap_or_default(),
        ),
        &sbc.name_any(),
        MANAGER,
        json!({ "state": state, "conditions": owned }),
    )
    .await?
    {
        Some(written) => written,
        // Deleted meanwhile (its Server completed discovery): there is nothing left to
        // describe, and its deletion event drops it from the index.
        None => {
            tracing::debug!("the configuration was deleted before its status was written");
            return Ok(());
        }
    };
    ctx.written.record(
        &super::object_key(sbc),
        written.metadata.resource_version.as_deref(),
    );
    // A Pending configuration waits for something that comes by itself: no Warning.
    if ready_changed
        && state != ServerBootConfigurationState::Pending
        && let Some(ready) = updates.iter().find(|u| u.kind == conditions::READY)
    {
        report::ready_event(
            &ctx.client,
            &ctx.reporter,
            &sbc.object_ref(&()),
            (ready.value, ready.reason, &ready.message),
            "Resolve",
        )
        .await;
    }
    Ok(())
}

/// Retries a failed reconcile after the object's backoff (doubling per failure in a row).
pub fn error_policy(sbc: Arc<ServerBootConfiguration>, error: &Error, ctx: Arc<Context>) -> Action {
    super::backoff::retry_after(
        "bootconfig",
        &super::object_key(&*sbc),
        error,
        &ctx.backoff,
        &ctx.metrics,
    )
}

/// Runs the reconciler until `shutdown` (then lets running reconciles finish): watches
/// ServerBootConfigurations (in `namespace`, or all), re-evaluates them when their ignition
/// Secret or Server changes, and drops served entries when a configuration is deleted. Every
/// configuration is re-evaluated when this replica becomes the leader, so their status
/// catches up with what standbys only indexed.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    writers: CacheWriters,
) {
    let client = ctx.client.clone();
    let became_leader = ctx.leadership.acquisitions();
    let (sbcs, secrets): (Api<ServerBootConfiguration>, Api<Secret>) = match namespace.as_deref() {
        Some(namespace) => (
            Api::namespaced(client.clone(), namespace),
            Api::namespaced(client.clone(), namespace),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let (reader, writer) = reflector::store();
    let index = ctx.index.clone();
    let written_ctx = ctx.clone();
    let known = reader.clone();
    // Which configurations name a Secret or a Server, kept from the same watch, so a Secret
    // or Server event finds its configurations without scanning them all.
    let by_secret: Arc<WatchIndex<ServerBootConfiguration, (String, String)>> =
        Arc::new(WatchIndex::new(|sbc| {
            let namespace = sbc.namespace().unwrap_or_default();
            sbc.spec
                .ignition_secret_ref
                .as_ref()
                .map(|secret| secret.name.clone())
                .into_iter()
                .chain(sbc.annotations().get(BOOT_TOKEN_SECRET_ANNOTATION).cloned())
                .map(|secret| {
                    (
                        format!("{namespace}/{secret}"),
                        (namespace.clone(), sbc.name_any()),
                    )
                })
                .collect()
        }));
    let by_server: Arc<WatchIndex<ServerBootConfiguration, (String, String)>> =
        Arc::new(WatchIndex::new(|sbc| {
            vec![(
                sbc.spec.server_ref.name.clone(),
                (sbc.namespace().unwrap_or_default(), sbc.name_any()),
            )]
        }));
    let (secrets_index, servers_index) = (by_secret.clone(), by_server.clone());
    let trigger = watch(sbcs).reflect(writer).inspect_ok(move |event| {
        let written = &written_ctx.written;
        secrets_index.apply(event);
        servers_index.apply(event);
        match event {
            watcher::Event::Delete(sbc) => {
                index.remove(&key_of(sbc));
                index.sync().visited(&key_of(sbc));
                written.forget(&super::object_key(sbc));
            }
            // A fetch record, perhaps another replica's: its ticket is used (no
            // reconcile: the trigger below skips status changes).
            watcher::Event::Apply(sbc) | watcher::Event::InitApply(sbc) => {
                if let Some(message) = ignition_fetched(sbc) {
                    index.note_ticket_use(&key_of(sbc), message);
                }
            }
            watcher::Event::InitDone => {
                // After a re-list, configurations deleted meanwhile sent no Delete.
                index.retain(|config| {
                    known
                        .get(&ObjectRef::new(&config.name).within(&config.namespace))
                        .is_some()
                });
                // The first listing: the index is synced once each of these was seen.
                index
                    .sync()
                    .listed(known.state().iter().map(|sbc| key_of(sbc)));
            }
            _ => {}
        }
    });
    // Only a changed spec (or labels) re-evaluates a configuration: the status writes of this
    // reconciler and the boot server's fetch records do not.
    let trigger = super::triggers::changes(trigger, super::triggers::spec_and_labels);
    let configuration = |(namespace, name): (String, String)| {
        ObjectRef::<ServerBootConfiguration>::new(&name).within(&namespace)
    };
    let CacheWriters {
        servers: server_writer,
        secrets: secret_writer,
    } = writers;
    let secret_changes =
        super::triggers::changes(watch(secrets).reflect(secret_writer), |secret: &Secret| {
            super::triggers::fingerprint(&secret.metadata.resource_version)
        });
    let server_changes = super::triggers::changes(
        watch(Api::<Server>::all(client)).reflect(server_writer),
        served_identity,
    );
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let store = reader.clone();
    let controller = Controller::for_stream(trigger, reader)
        .watches_stream(secret_changes, move |secret: Secret| {
            by_secret
                .get(&super::object_key(&secret))
                .into_iter()
                .map(configuration)
                .collect::<Vec<_>>()
        })
        .watches_stream(server_changes, move |server: Server| {
            by_server
                .get(&server.name_any())
                .into_iter()
                .map(configuration)
                .collect::<Vec<_>>()
        })
        .reconcile_all_on(became_leader)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "boot configuration reconcile stream");
            }
        });
    // A shutdown before the watch ever listed would otherwise wait for it forever.
    super::until_started_or_stopped(controller, store, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::image::{BootLayer, LayerKind};

    fn resolved() -> ResolvedImage {
        ResolvedImage {
            reference: "127.0.0.1:5000/discovery:1".parse().expect("reference"),
            manifest_digest: String::from("sha256:m"),
            layers: BootLayers {
                kernel: Some(BootLayer {
                    digest: String::from("sha256:k"),
                    size: 1,
                    kind: LayerKind::Kernel,
                }),
                initramfs: Some(BootLayer {
                    digest: String::from("sha256:i"),
                    size: 1,
                    kind: LayerKind::Initramfs,
                }),
                ..BootLayers::default()
            },
        }
    }

    fn observed() -> Observed {
        Observed {
            config: ConfigKey {
                namespace: String::from("metal"),
                name: String::from("server-1"),
            },
            server_name: String::from("server-1"),
            generation: Some(2),
            server: ServerLookup::Found(ServerView {
                uuid: SystemUuid::parse("0b5e5e2a-0000-4000-8000-0000000000b1"),
                network_identifiers: vec![String::from("10.0.0.5")],
                boot_configuration_ref: Some(ConfigKey {
                    namespace: String::from("metal"),
                    name: String::from("server-1"),
                }),
                discovery_attempt: None,
                discovery_ticket: None,
                provision_attempt: None,
                provision_ticket: None,
            }),
            image: Ok(resolved()),
            ignition: IgnitionLookup::Found {
                secret: String::from("server-1-ignition"),
                ignition: bytes::Bytes::from_static(b"{}"),
                token: Some(String::from("t")),
            },
            allow_unauthenticated_ignition: false,
            discovery: false,
            provisioning: false,
            ignition_fetched: None,
        }
    }

    fn with_view(change: impl FnOnce(&mut ServerView)) -> Observed {
        let mut observed = observed();
        if let ServerLookup::Found(view) = &mut observed.server {
            change(view);
        }
        observed
    }

    #[test]
    fn only_the_configuration_its_server_names_is_served() {
        let other = plan(with_view(|view| {
            view.boot_configuration_ref = Some(ConfigKey {
                namespace: String::from("metal"),
                name: String::from("claim-boot"),
            });
        }));
        assert_eq!(other.state, ServerBootConfigurationState::Error);
        assert!(other.entry.is_none());
        assert_eq!(
            reasons(&other)[0],
            ("Ready", false, "NotTheServersBootConfiguration")
        );
        assert!(other.conditions[0].message.contains("metal/claim-boot"));
        let unnamed = plan(with_view(|view| view.boot_configuration_ref = None));
        assert_eq!(
            reasons(&unnamed)[0],
            ("Ready", false, "NotTheServersBootConfiguration")
        );
    }

    #[test]
    fn a_discovery_configuration_is_served_only_in_its_boot_window() {
        let discovery = |attempt: Option<u32>, named: bool| {
            let mut observed = with_view(|view| {
                view.discovery_attempt = attempt;
                if !named {
                    view.boot_configuration_ref = None;
                }
            });
            observed.discovery = true;
            plan(observed)
        };
        // Made, not yet named by its Server: Ready, not served, and no error (it is named
        // in the same step).
        let waiting = discovery(None, false);
        assert_eq!(waiting.state, ServerBootConfigurationState::Ready);
        assert!(waiting.entry.is_none());
        assert!(
            discovery(None, true).entry.is_none(),
            "no attempt without a report"
        );
        let served = discovery(Some(2), true).entry.expect("in its window");
        assert_eq!(
            served.discovery_attempt,
            Some(2),
            "the Server powers on when it sees its attempt served"
        );
        assert!(
            discovery(Some(2), false).entry.is_none(),
            "its Server names no configuration"
        );
        let other = plan(observed()).entry.expect("served");
        assert_eq!(other.discovery_attempt, None, "not a discovery entry");
        // The Secret in the cache is another attempt's: nothing is served until the
        // attempt's own arrives.
        let with_ticket = |token: &str| {
            let mut observed = with_view(|view| {
                view.discovery_attempt = Some(3);
                view.discovery_ticket = Some(crate::boot::index::Ticket::of("t").fingerprint);
            });
            observed.discovery = true;
            if let IgnitionLookup::Found { token: found, .. } = &mut observed.ignition {
                *found = Some(token.to_owned());
            }
            plan(observed)
        };
        assert!(with_ticket("t").entry.is_some(), "the attempt's own Secret");
        let stale = with_ticket("an earlier token");
        assert!(stale.entry.is_none(), "another attempt's Secret");
        assert_eq!(stale.state, ServerBootConfigurationState::Ready);
    }

    #[test]
    fn the_boot_window_opens_when_the_attempt_starts_and_closes_at_its_report() {
        use super::super::server::{ATTEMPT_ANNOTATION, STARTED_ANNOTATION};
        let server = |state: ServerState, annotations: &[(&str, &str)], reported: Option<&str>| {
            let mut server: Server = serde_json::from_value(json!({
                "apiVersion": "metal.ironcore.dev/v1alpha1",
                "kind": "Server",
                "metadata": {"name": "server-1"},
                "spec": {"systemUUID": "0b5e5e2a-0000-4000-8000-0000000000b1"},
            }))
            .expect("server");
            server.metadata.annotations = Some(
                annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            );
            let mut status = crate::api::ServerStatus {
                state: Some(state),
                ..Default::default()
            };
            if let Some(at) = reported {
                status.conditions.push(Condition {
                    type_: conditions::PROBE_REPORTED.to_owned(),
                    status: String::from("True"),
                    reason: String::from("Reported"),
                    message: String::new(),
                    observed_generation: None,
                    last_transition_time: Time(at.parse().expect("time")),
                });
            }
            server.status = Some(status);
            ServerView::of(&server).discovery_attempt
        };
        let started = [
            (ATTEMPT_ANNOTATION, "3"),
            (STARTED_ANNOTATION, "2026-12-05T10:00:00Z"),
        ];
        assert_eq!(
            server(ServerState::Discovery, &started, None),
            Some(3),
            "open from the start, before the power-on"
        );
        assert_eq!(
            server(
                ServerState::Discovery,
                &started,
                Some("2026-12-05T10:01:00Z")
            ),
            None,
            "closed by the attempt's report"
        );
        assert_eq!(
            server(
                ServerState::Discovery,
                &started,
                Some("2026-12-05T09:00:00Z")
            ),
            Some(3),
            "an older attempt's report does not close it"
        );
        assert_eq!(
            server(ServerState::Error, &started, None),
            None,
            "timed out"
        );
        assert_eq!(
            server(ServerState::Discovery, &started[..1], None),
            None,
            "not started"
        );
    }

    #[test]
    fn a_ticket_used_before_a_restart_stays_used() {
        let ticket = crate::boot::index::fetch_ticket("t");
        let holder: std::net::IpAddr = "10.0.0.5".parse().expect("ip");
        let fetched = |fingerprint: &str| Observed {
            ignition_fetched: Some(crate::boot::server::fetched_by(holder, fingerprint)),
            ..observed()
        };
        let entry = plan(fetched(&crate::boot::index::ticket_fingerprint(&ticket)))
            .entry
            .expect("served");
        assert_eq!(
            entry.use_ticket("10.0.0.9".parse().expect("ip")),
            crate::boot::index::TicketUse::Reused(holder)
        );
        assert_eq!(
            entry.use_ticket(holder),
            crate::boot::index::TicketUse::Holder
        );
        let entry = plan(fetched("0123456789ab")).entry.expect("served");
        assert_eq!(
            entry.use_ticket(holder),
            crate::boot::index::TicketUse::First,
            "another attempt's ticket was used, not this one"
        );
    }

    fn reasons(decision: &Decision) -> Vec<(&'static str, bool, &'static str)> {
        decision
            .conditions
            .iter()
            .map(|c| (c.kind, c.value, c.reason))
            .collect()
    }

    #[test]
    fn everything_present_is_ready_and_served() {
        let decision = plan(observed());
        assert_eq!(decision.state, ServerBootConfigurationState::Ready);
        assert_eq!(
            reasons(&decision),
            [
                ("Ready", true, "BootConfigurationReady"),
                ("ImageValidation", true, "ImageResolved"),
                ("IgnitionSecret", true, "IgnitionFound"),
            ]
        );
        let entry = decision.entry.expect("served");
        assert_eq!(entry.token.as_deref(), Some("t"));
        assert_eq!(entry.network_identifiers, ["10.0.0.5"]);
        assert_eq!(decision.requeue, RESOLVE_AGAIN);
    }

    #[test]
    fn each_failure_is_an_error_whose_ready_reason_names_it() {
        let image_error = |error: ImageError| Observed {
            image: Err(error),
            ..observed()
        };
        let cases: Vec<(Observed, &str, Duration)> = vec![
            (image_error(ImageError::NotSet), "ImageNotSet", RETRY * 4),
            (
                image_error(ImageError::RegistryUnreachable {
                    registry: String::from("r"),
                    reason: String::from("refused"),
                }),
                "RegistryUnreachable",
                RETRY,
            ),
            (
                image_error(ImageError::MissingLayer {
                    image: String::from("i"),
                    missing: String::from("kernel"),
                    expected: String::new(),
                }),
                "MissingLayer",
                RETRY * 4,
            ),
            (
                Observed {
                    ignition: IgnitionLookup::SecretMissing(String::from("s")),
                    ..observed()
                },
                "SecretNotFound",
                RETRY * 4,
            ),
            (
                Observed {
                    ignition: IgnitionLookup::KeyMissing(String::from("s")),
                    ..observed()
                },
                "IgnitionKeyMissing",
                RETRY * 4,
            ),
            (
                Observed {
                    ignition: IgnitionLookup::Found {
                        secret: String::from("s"),
                        ignition: bytes::Bytes::from_static(b"{}"),
                        token: None,
                    },
                    ..observed()
                },
                "BootTokenMissing",
                RETRY * 4,
            ),
            (
                Observed {
                    server: ServerLookup::Missing,
                    ..observed()
                },
                "ServerNotFound",
                RETRY * 4,
            ),
            (
                with_view(|view| view.uuid = None),
                "SystemUUIDMissing",
                RETRY * 4,
            ),
        ];
        for (observed, reason, requeue) in cases {
            let decision = plan(observed);
            assert_eq!(
                decision.state,
                ServerBootConfigurationState::Error,
                "{reason}"
            );
            assert!(decision.entry.is_none(), "{reason}: nothing is served");
            assert_eq!(reasons(&decision)[0], ("Ready", false, reason));
            assert_eq!(decision.requeue, requeue, "{reason}");
        }
    }

    #[test]
    fn tokenless_ignition_is_served_only_when_allowed_and_no_secret_means_no_ignition() {
        let tokenless = Observed {
            ignition: IgnitionLookup::Found {
                secret: String::from("s"),
                ignition: bytes::Bytes::from_static(b"{}"),
                token: None,
            },
            allow_unauthenticated_ignition: true,
            ..observed()
        };
        let entry = plan(tokenless).entry.expect("served");
        assert_eq!(entry.token, None);
        assert!(entry.ignition.is_some());

        let decision = plan(Observed {
            ignition: IgnitionLookup::NotReferenced,
            ..observed()
        });
        assert_eq!(
            reasons(&decision)[2],
            ("IgnitionSecret", true, "NoIgnition")
        );
        assert!(decision.entry.expect("served").ignition.is_none());
    }

    proptest::proptest! {
        #[test]
        fn a_configuration_is_served_only_when_ready_named_and_in_its_window(
            found in proptest::bool::ANY,
            has_uuid in proptest::bool::ANY,
            named in 0u8..3,
            attempt in proptest::option::of(1u32..4),
            ticket in 0u8..3,
            image_ok in proptest::bool::ANY,
            ignition in 0u8..4,
            allow_unauthenticated in proptest::bool::ANY,
            kind in 0u8..3,
        ) {
            // 0: a configuration of someone else's, 1: a discovery's, 2: a claim's.
            let (discovery, provisioning) = (kind == 1, kind == 2);
            let fingerprint = match ticket {
                0 => None,
                1 => Some(crate::boot::index::Ticket::of("t").fingerprint),
                _ => Some(crate::boot::index::Ticket::of("another").fingerprint),
            };
            let config = observed().config;
            let mut input = observed();
            input.server = if found {
                ServerLookup::Found(ServerView {
                    uuid: has_uuid
                        .then(|| SystemUuid::parse("0b5e5e2a-0000-4000-8000-0000000000b1"))
                        .flatten(),
                    network_identifiers: Vec::new(),
                    boot_configuration_ref: match named {
                        0 => None,
                        1 => Some(config.clone()),
                        _ => Some(ConfigKey {
                            namespace: String::from("metal"),
                            name: String::from("claim-boot"),
                        }),
                    },
                    discovery_attempt: attempt.filter(|_| discovery),
                    discovery_ticket: fingerprint.clone().filter(|_| discovery),
                    provision_attempt: attempt.filter(|_| provisioning),
                    provision_ticket: fingerprint.filter(|_| provisioning),
                })
            } else {
                ServerLookup::Missing
            };
            if !image_ok {
                input.image = Err(ImageError::NotSet);
            }
            input.ignition = match ignition {
                0 => IgnitionLookup::NotReferenced,
                1 => IgnitionLookup::SecretMissing(String::from("s")),
                2 => IgnitionLookup::Found {
                    secret: String::from("s"),
                    ignition: bytes::Bytes::from_static(b"{}"),
                    token: None,
                },
                _ => IgnitionLookup::Found {
                    secret: String::from("s"),
                    ignition: bytes::Bytes::from_static(b"{}"),
                    token: Some(String::from("t")),
                },
            };
            input.allow_unauthenticated_ignition = allow_unauthenticated;
            input.discovery = discovery;
            input.provisioning = provisioning;
            let decision = plan(input);
            let ready = &decision.conditions[0];
            proptest::prop_assert_eq!(ready.kind, conditions::READY);
            proptest::prop_assert_eq!(
                ready.value,
                decision.state == ServerBootConfigurationState::Ready
            );
            if let Some(entry) = &decision.entry {
                proptest::prop_assert!(ready.value, "served while not Ready");
                proptest::prop_assert!(found && has_uuid && image_ok);
                proptest::prop_assert!(
                    entry.token.is_some() || entry.ignition.is_none() || allow_unauthenticated,
                    "ignition without a ticket served without the flag"
                );
                if discovery || provisioning {
                    // Named, in its window, with the attempt's own Secret.
                    proptest::prop_assert_eq!(named, 1);
                    let window = if discovery {
                        entry.discovery_attempt
                    } else {
                        entry.provision_attempt
                    };
                    proptest::prop_assert_eq!(window, attempt);
                    proptest::prop_assert!(attempt.is_some());
                    proptest::prop_assert!(ticket == 0 || (ticket == 1 && ignition == 3));
                } else {
                    proptest::prop_assert_eq!(named, 1, "served without being named");
                    proptest::prop_assert_eq!(entry.discovery_attempt, None);
                }
                // A claim's entry is never a discovery's (the registry refuses its reports).
                proptest::prop_assert!(
                    entry.discovery_attempt.is_none() || entry.provision_attempt.is_none()
                );
                if !provisioning {
                    proptest::prop_assert_eq!(entry.provision_attempt, None);
                }
            }
            // Another configuration named by the Server is never Ready.
            if found && has_uuid && named == 2 {
                proptest::prop_assert!(!ready.value);
            }
        }
    }
}
