//! BMCReconciler: resolve where a BMC is and how to log in, probe it through its driver
//! plugin, report what it is in `status`, and keep one Server per system behind it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::Error;
use crate::api::bmc_secret::{PASSWORD_KEY, USERNAME_KEY};
use crate::api::common::PowerState;
use crate::api::common::ProtocolScheme;
use crate::api::{BMC, BMCSecret, BMCStatus, Server, conditions};
use crate::controllers::bmc_rotation::{self, BmcTask, BmcTaskResult, ConditionChange};
use crate::controllers::bmc_work::BmcWork;
use crate::controllers::caches::{AppliedObjects, Caches};
use crate::controllers::connection::{Address, Connection, Unreachable, connect_any};
use crate::controllers::inventory::BmcInventory;
use crate::controllers::{credentials, report};
use crate::plugins::catalog::PluginCatalog;
use crate::plugins::types::{GuestError, Identity, TlsPolicy};
use crate::plugins::{CallError, CallErrorKind};
use crate::telemetry::ControllerMetrics;

/// Field manager of everything this reconciler writes.
pub const MANAGER: &str = "ferrometal-bmc";

/// A Server the BMC reconciler keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredServer {
    /// `<bmc>-system-<i>`.
    pub name: String,
    /// Lower-case SMBIOS UUID.
    pub system_uuid: String,
    /// The system's Redfish path.
    pub system_uri: String,
    /// The system takes no boot override, so it is discovered out-of-band only (its Server
    /// carries `ferrometal.dev/discovery-mode: out-of-band`).
    pub out_of_band: bool,
}

/// What becomes of systems that take no boot override (no Redfish `Boot` object, e.g. a DPU
/// or SmartNIC SoC): they cannot be booted into discovery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BootlessSystems {
    /// No Server (metal-operator's behaviour); the BMC's `Ready` message names them.
    #[default]
    Skip,
    /// A Server discovered out-of-band only, from what the BMC reports.
    OutOfBand,
}

impl std::str::FromStr for BootlessSystems {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "skip" => Ok(Self::Skip),
            "out-of-band" => Ok(Self::OutOfBand),
            other => Err(format!(
                "systems without a boot override: {other:?} is neither skip nor out-of-band"
            )),
        }
    }
}

/// The outcome of one reconcile, decided from what was observed.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The status to publish.
    pub status: BMCStatus,
    /// `Ready` condition: (status, reason, message).
    pub ready: (bool, &'static str, String),
    /// Servers to apply (none when the probe failed: existing ones are left alone).
    pub servers: Vec<DesiredServer>,
    /// When to look again.
    pub requeue: Duration,
}

/// What the probe gave.
pub type ProbeResult = Result<Identity, CallError>;

/// Decides status, condition and Servers from the address and the probe.
pub fn plan(
    bmc: &BMC,
    address: &Address,
    probe: &ProbeResult,
    bootless: BootlessSystems,
    resync: Duration,
) -> Plan {
    let name = bmc.name_any();
    let mut status = BMCStatus {
        mac_address: Some(address.mac.clone()).filter(|mac| !mac.is_empty()),
        ip: Some(address.ip.clone()),
        ..BMCStatus::default()
    };
    match probe {
        Ok(identity) => {
            status.manufacturer = identity.manufacturer.clone();
            status.model = identity.model.clone();
            status.serial_number = identity.serial.clone();
            status.firmware_version = identity.firmware.clone();
            status.state = Some(String::from("Enabled"));
            // The BMC's own power: a manager that answers is on.
            status.power_state = Some(PowerState::On);
            let bootless_uris: Vec<&str> = identity
                .systems
                .iter()
                .filter(|system| !system.boot_override)
                .map(|system| system.uri.as_str())
                .collect();
            let mut systems: Vec<_> = identity
                .systems
                .iter()
                .filter(|system| system.boot_override || bootless == BootlessSystems::OutOfBand)
                .filter_map(|system| {
                    Some((
                        system.uri.clone(),
                        system.uuid.clone()?,
                        !system.boot_override,
                    ))
                })
                .collect();
            // Stable names across restarts and collection orderings (metal-operator numbers
            // only the systems it keeps, too).
            systems.sort();
            let without_uuid = identity
                .systems
                .iter()
                .filter(|system| system.uuid.is_none())
                .count();
            let servers: Vec<DesiredServer> = systems
                .into_iter()
                .enumerate()
                .map(|(index, (uri, uuid, out_of_band))| DesiredServer {
                    name: format!("{name}-system-{index}"),
                    system_uuid: uuid.to_ascii_lowercase(),
                    system_uri: uri,
                    out_of_band,
                })
                .collect();
            let mut message = format!("BMC is connected; {} system(s)", servers.len());
            if without_uuid > 0 {
                message.push_str(&format!(", {without_uuid} without a UUID skipped"));
            }
            if !bootless_uris.is_empty() {
                message.push_str(&match bootless {
                    BootlessSystems::Skip => format!(
                        "; {} without a boot override skipped (no network boot possible): {}",
                        bootless_uris.len(),
                        bootless_uris.join(", ")
                    ),
                    BootlessSystems::OutOfBand => format!(
                        "; {} without a boot override discovered out-of-band only: {}",
                        bootless_uris.len(),
                        bootless_uris.join(", ")
                    ),
                });
            }
            let no_network_boot: Vec<String> = identity
                .systems
                .iter()
                .filter(|system| system.boot_override && !offers_network_boot(system))
                .map(|system| format!("{} (offers {})", system.uri, system.boot_targets.join(", ")))
                .collect();
            if !no_network_boot.is_empty() {
                message.push_str(&format!(
                    "; no one-time network boot (Pxe or UefiHttp) offered, in-band discovery cannot boot: {}",
                    no_network_boot.join("; ")
                ));
            }
            Plan {
                status,
                ready: (true, conditions::REASON_CONNECTED, message),
                servers,
                requeue: resync,
            }
        }
        Err(error) => {
            status.state = Some(String::from("Error"));
            let reason = match &error.kind {
                CallErrorKind::Plugin(GuestError::Unauthorized(_)) => {
                    conditions::REASON_AUTHENTICATION_FAILED
                }
                CallErrorKind::Plugin(GuestError::Unreachable(_)) | CallErrorKind::Timeout(_) => {
                    conditions::REASON_CONNECTION_FAILED
                }
                CallErrorKind::Plugin(GuestError::BmcFault { .. }) => {
                    conditions::REASON_INTERNAL_SERVER_ERROR
                }
                _ => conditions::REASON_DRIVER_FAILED,
            };
            // A BMC that refused credentials or answered with an error is running; one that
            // could not be reached (or not asked) is of unknown power.
            status.power_state = Some(match reason {
                conditions::REASON_AUTHENTICATION_FAILED
                | conditions::REASON_INTERNAL_SERVER_ERROR => PowerState::On,
                _ => PowerState::Unknown,
            });
            let message = match reason {
                conditions::REASON_AUTHENTICATION_FAILED => {
                    format!("BMC credentials are invalid ({})", error.kind)
                }
                _ => format!("cannot probe the BMC: {}", error.kind),
            };
            Plan {
                status,
                ready: (false, reason, report::first_line(&message)),
                servers: Vec::new(),
                requeue: resync,
            }
        }
    }
}

/// The status of a BMC the operator could not call at all (`reason` from
/// [`Unreachable`]): what was learnt before stays, but the state no longer claims the BMC is
/// `Enabled` and its power is `Unknown`. `Pending` while the user's objects are incomplete
/// or missing, `Error` when no driver can serve it.
pub fn unreachable_status(current: Option<&BMCStatus>, reason: &str) -> BMCStatus {
    let mut status = current.cloned().unwrap_or_default();
    status.conditions = Vec::new();
    status.state = Some(String::from(
        if reason == conditions::REASON_DRIVER_FAILED {
            "Error"
        } else {
            "Pending"
        },
    ));
    status.power_state = Some(PowerState::Unknown);
    status
}

/// Whether the system can take a one-time network boot that in-band discovery sets (`Pxe`,
/// or `UefiHttp` with `--discovery-boot-target uefi-http`). A BMC that does not list its
/// boot targets is given the benefit of the doubt.
fn offers_network_boot(system: &crate::plugins::types::System) -> bool {
    system.boot_targets.is_empty()
        || system.boot_targets.iter().any(|target| {
            target.eq_ignore_ascii_case("pxe") || target.eq_ignore_ascii_case("uefihttp")
        })
}

/// Operator settings for reaching BMCs.
#[derive(Debug, Clone)]
pub struct BmcSettings {
    /// Scheme when `spec.protocol.scheme` is not set.
    pub default_scheme: ProtocolScheme,
    /// How to verify BMC certificates.
    pub tls: TlsPolicy,
    /// How often a healthy BMC is probed again (and a failing one retried).
    pub resync: Duration,
}

/// What the reconciler needs.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Installed plugins.
    pub catalog: Arc<PluginCatalog>,
    /// Settings of the credential-lookup plugin (for moving to the next default credential).
    pub lookup_settings: Vec<(String, String)>,
    /// Base of the backoff between default-credential attempts (doubles per attempt).
    pub credential_retry: Duration,
    /// How to reach BMCs.
    pub settings: BmcSettings,
    /// What becomes of systems that take no boot override.
    pub bootless: BootlessSystems,
    /// Event reporter.
    pub reporter: Reporter,
    /// Reconcile metrics.
    pub metrics: ControllerMetrics,
    /// Retry delays after failures, per object.
    pub backoff: super::backoff::ErrorBackoff,
    /// The watch caches (Endpoints, BMCSecrets, Servers).
    pub caches: Arc<Caches>,
    /// Where each probe's result is kept for the Server reconciler.
    pub inventory: Arc<BmcInventory>,
    /// Probes and credential-rotation calls running beside the workers, one per BMC.
    pub probes: Arc<BmcWork<BMC, BmcTask, BmcTaskResult>>,
    /// When BMC credentials are rotated.
    pub rotation: super::rotation::Schedule,
    /// What was last applied to each Server, so an unchanged Server is not applied again on
    /// every probe.
    pub applied: AppliedObjects,
}

/// Reconciles one BMC.
#[tracing::instrument(skip_all, fields(bmc = %bmc.name_any()))]
pub async fn reconcile(bmc: Arc<BMC>, ctx: Arc<Context>) -> Result<Action, Error> {
    let timer = ctx.metrics.reconcile("bmc");
    let key = super::object_key(&*bmc);
    let result = reconcile_inner(bmc, &ctx).await;
    if result.is_ok() {
        ctx.backoff.succeeded(&key);
    }
    timer.finish(result.is_ok());
    result
}

async fn reconcile_inner(bmc: Arc<BMC>, ctx: &Context) -> Result<Action, Error> {
    let name = bmc.name_any();
    let resync = ctx.settings.resync;
    let connection =
        match connect_any(&ctx.client, &ctx.caches, &ctx.catalog, &ctx.settings, &bmc).await? {
            Ok(connection) => connection,
            Err(Unreachable { reason, message }) => {
                let status = unreachable_status(bmc.status.as_ref(), reason);
                publish(
                    &bmc,
                    ctx,
                    Some(status),
                    Some((false, reason, message)),
                    None,
                )
                .await?;
                return Ok(Action::requeue(
                    if reason == conditions::REASON_REFERENCE_NOT_FOUND {
                        Duration::from_secs(30)
                    } else {
                        resync
                    },
                ));
            }
        };
    // A finished BMC operation: a probe's or a credential rotation's.
    let (probed, rotated) = match ctx.probes.take(&name) {
        Some((BmcTask::Probe(done), BmcTaskResult::Probe(probe))) => (Some((done, probe)), None),
        Some((BmcTask::Rotation(state, call), BmcTaskResult::Rotation(finished))) => {
            (None, Some((call, state, finished)))
        }
        _ => (None, None),
    };
    let turn = bmc_rotation::turn(&bmc, &connection, ctx, rotated).await?;
    if !turn.proceed {
        publish(&bmc, ctx, None, None, turn.condition).await?;
        return Ok(Action::requeue(turn.requeue));
    }
    let Connection {
        driver,
        endpoint,
        address,
        secret,
    } = connection;
    // The probe runs beside the workers; the BMC is reconciled again when it answered. It is
    // tagged with the fingerprint of its connection (address and credentials): a result from
    // another connection is not used.
    let operation = super::triggers::fingerprint((
        &endpoint.scheme,
        &endpoint.host,
        endpoint.port,
        &endpoint.username,
        &endpoint.password,
    ));
    let probe = match probed {
        Some((done, probe)) if done == operation => probe,
        _ => {
            let driver = driver.clone();
            ctx.probes.start(
                &name,
                BmcTask::Probe(operation),
                Box::pin(async move { BmcTaskResult::Probe(driver.probe(&endpoint).await) }),
            );
            return Ok(Action::requeue(resync.min(turn.requeue)));
        }
    };
    if let Ok(identity) = &probe {
        ctx.inventory.record(&name, identity);
    }
    let mut plan = plan(&bmc, &address, &probe, ctx.bootless, resync);
    ctx.metrics.probe(plan.ready.1);
    let refused = matches!(&probe, Err(error) if matches!(error.kind, CallErrorKind::Plugin(GuestError::Unauthorized(_))));
    if refused && let Some((message, requeue)) = try_next_credential(&secret, &address, ctx).await?
    {
        plan.ready.2 = message;
        plan.requeue = requeue;
    }
    let owner = bmc.controller_owner_ref(&());
    let servers: Api<Server> = Api::all(ctx.client.clone());
    for server in &plan.servers {
        let mut desired = json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1",
            "kind": "Server",
            "metadata": {
                "name": server.name,
                "ownerReferences": owner.clone().map(|o| vec![o]),
            },
            "spec": {
                "systemUUID": server.system_uuid,
                "systemURI": server.system_uri,
                "bmcRef": { "name": name },
            },
        });
        // An empty `labels: {}` is dropped on storage, so applying it is never a no-op:
        // every apply would bump the Server (and, as the BMC controller watches its
        // Servers, run this reconcile again, without end).
        if !bmc.labels().is_empty() {
            desired["metadata"]["labels"] = json!(bmc.labels());
        }
        if server.out_of_band {
            desired["metadata"]["annotations"] =
                json!({ super::server::MODE_ANNOTATION: "out-of-band" });
        }
        let exists = ctx
            .caches
            .servers
            .get(&ObjectRef::new(&server.name))
            .is_some();
        ctx.applied
            .apply(&servers, &server.name, MANAGER, &desired, exists)
            .await?;
    }
    publish(
        &bmc,
        ctx,
        Some(plan.status),
        Some(plan.ready),
        turn.condition,
    )
    .await?;
    Ok(Action::requeue(plan.requeue.min(turn.requeue)))
}

/// For a secret holding credential-database defaults that the BMC refused: moves it to the
/// next default (after the backoff) and says so; `None` for secrets people wrote.
async fn try_next_credential(
    secret: &BMCSecret,
    address: &Address,
    ctx: &Context,
) -> Result<Option<(String, Duration)>, Error> {
    let annotations = secret.annotations();
    let Some(index) = annotations
        .get(credentials::INDEX_ANNOTATION)
        .and_then(|index| index.parse::<usize>().ok())
    else {
        return Ok(None);
    };
    let Some(lookup) = ctx.catalog.credential_lookup() else {
        return Ok(None);
    };
    let candidates = match lookup.lookup(&address.mac, &ctx.lookup_settings).await {
        Ok(Some(profile)) => profile.default_credentials,
        Ok(None) | Err(_) => return Ok(None),
    };
    let count = candidates.len();
    let now = k8s_openapi::jiff::Timestamp::now();
    let since_last_try = annotations
        .get(credentials::TRIED_AT_ANNOTATION)
        .and_then(|at| at.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .and_then(|at| Duration::try_from(now.duration_since(at)).ok());
    Ok(Some(
        match credentials::next_step(index, count, since_last_try, ctx.credential_retry) {
            credentials::Step::Exhausted => (
                format!(
                    "BMC credentials are invalid: all {count} default credentials from the credential database were refused"
                ),
                ctx.settings.resync,
            ),
            credentials::Step::Wait(wait) => (
                format!(
                    "BMC credentials are invalid: default credential {}/{count} was refused; the next is tried in {}s",
                    index + 1,
                    wait.as_secs().max(1)
                ),
                wait,
            ),
            credentials::Step::Advance { next } => {
                let credential = &candidates[next];
                let patch = json!({
                    "metadata": { "annotations": {
                        credentials::INDEX_ANNOTATION: next.to_string(),
                        credentials::TRIED_AT_ANNOTATION: now.to_string(),
                    }},
                    "data": {
                        USERNAME_KEY: k8s_openapi::ByteString(credential.username.clone().into_bytes()),
                        PASSWORD_KEY: k8s_openapi::ByteString(credential.password.clone().into_bytes()),
                    },
                });
                Api::<BMCSecret>::all(ctx.client.clone())
                    .patch(
                        &secret.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
                (
                    format!(
                        "BMC credentials are invalid: default credential {}/{count} was refused; trying {}/{count}",
                        index + 1,
                        next + 1
                    ),
                    ctx.credential_retry,
                )
            }
        },
    ))
}

/// Publishes status (when given), the Ready condition (when given) and the
/// `CredentialsRotated` condition (when given); a Warning Event when either turned or changed
/// while False.
async fn publish(
    bmc: &BMC,
    ctx: &Context,
    status: Option<BMCStatus>,
    ready: Option<ConditionChange>,
    rotation: Option<ConditionChange>,
) -> Result<(), Error> {
    let current = bmc.status.clone().unwrap_or_default();
    let mut status = status.unwrap_or_else(|| BMCStatus {
        conditions: Vec::new(),
        ..current.clone()
    });
    let mut list = current.conditions.clone();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut set = |type_: &str, (value, reason, message): &ConditionChange| {
        conditions::set(
            &mut list,
            type_,
            *value,
            reason,
            message,
            bmc.metadata.generation,
            now.clone(),
        )
    };
    let ready_changed = ready
        .as_ref()
        .is_some_and(|change| set(conditions::READY, change));
    let rotation_changed = rotation
        .as_ref()
        .is_some_and(|change| set(conditions::CREDENTIALS_ROTATED, change));
    status.conditions = list;
    if !ready_changed && !rotation_changed && bmc.status.as_ref() == Some(&status) {
        return Ok(());
    }
    super::status::apply(
        &Api::<BMC>::all(ctx.client.clone()),
        &bmc.name_any(),
        MANAGER,
        json!(status),
    )
    .await?;
    for (changed, change, action) in [
        (ready_changed, &ready, "Probe"),
        (rotation_changed, &rotation, "RotateCredentials"),
    ] {
        if let (true, Some((value, reason, message))) = (changed, change)
            && *reason != conditions::REASON_CREDENTIALS_ROTATING
        {
            report::ready_event(
                &ctx.client,
                &ctx.reporter,
                &bmc.object_ref(&()),
                (*value, reason, message),
                action,
            )
            .await;
        }
    }
    Ok(())
}

/// Retries a failed reconcile after the object's backoff (doubling per failure in a row).
pub fn error_policy(bmc: Arc<BMC>, error: &Error, ctx: Arc<Context>) -> Action {
    super::backoff::retry_after(
        "bmc",
        &super::object_key(&*bmc),
        error,
        &ctx.backoff,
        &ctx.metrics,
    )
}

#[cfg(test)]
mod tests {
    use crate::api::BMCSpec;
    use crate::api::common::{LocalObjectReference, Protocol, ProtocolName};
    use crate::plugins::types::{PowerState, System};
    use crate::plugins::{PluginIdentity, World};

    use super::*;

    fn bmc() -> BMC {
        BMC::new(
            "rack1-bmc",
            BMCSpec {
                bmc_uuid: None,
                endpoint_ref: Some(LocalObjectReference {
                    name: "rack1-bmc".into(),
                }),
                access: None,
                bmc_secret_ref: LocalObjectReference {
                    name: "rack1-bmc".into(),
                },
                protocol: Protocol {
                    name: ProtocolName::Redfish,
                    port: 8443,
                    scheme: None,
                },
                console_protocol: None,
                hostname: None,
            },
        )
    }

    fn address() -> Address {
        Address {
            mac: "52:54:00:00:00:01".into(),
            ip: "10.0.0.5".into(),
        }
    }

    fn system(uri: &str, uuid: Option<&str>) -> System {
        System {
            uri: uri.into(),
            uuid: uuid.map(str::to_owned),
            manufacturer: None,
            model: None,
            serial: None,
            power: PowerState::Off,
            nics: Vec::new(),
            boot_targets: Vec::new(),
            boot_override: true,
            inventory: None,
        }
    }

    /// The plan for a probe that found `identity`, skipping bootless systems.
    fn planned(identity: Identity) -> Plan {
        plan(
            &bmc(),
            &address(),
            &Ok(identity),
            BootlessSystems::Skip,
            Duration::from_secs(120),
        )
    }

    /// A BMC that says nothing about itself, with `systems` behind it.
    fn anonymous(systems: Vec<System>) -> Identity {
        Identity {
            manufacturer: None,
            model: None,
            serial: None,
            firmware: None,
            manager_uuid: None,
            systems,
        }
    }

    fn failure(kind: CallErrorKind) -> CallError {
        CallError {
            plugin: PluginIdentity {
                name: "redfish".into(),
                path: "/p/redfish.wasm".into(),
                digest: "0".repeat(64),
                world: World::BmcDriver,
                abi: "0.1.0".into(),
                sdk: "0.1.0".into(),
                capabilities: Vec::new(),
            },
            operation: "probe",
            kind,
        }
    }

    #[test]
    fn every_system_with_a_uuid_becomes_a_server_named_by_stable_order() {
        let identity = Identity {
            manufacturer: Some("Contoso".into()),
            model: None,
            serial: None,
            firmware: Some("1.2".into()),
            manager_uuid: None,
            systems: vec![
                system(
                    "/redfish/v1/Systems/B",
                    Some("BBBBBBBB-0000-0000-0000-000000000002"),
                ),
                system(
                    "/redfish/v1/Systems/A",
                    Some("aaaaaaaa-0000-0000-0000-000000000001"),
                ),
                system("/redfish/v1/Systems/C", None),
            ],
        };
        let plan = planned(identity);
        assert_eq!(
            plan.servers,
            vec![
                DesiredServer {
                    name: "rack1-bmc-system-0".into(),
                    system_uuid: "aaaaaaaa-0000-0000-0000-000000000001".into(),
                    system_uri: "/redfish/v1/Systems/A".into(),
                    out_of_band: false,
                },
                DesiredServer {
                    name: "rack1-bmc-system-1".into(),
                    system_uuid: "bbbbbbbb-0000-0000-0000-000000000002".into(),
                    system_uri: "/redfish/v1/Systems/B".into(),
                    out_of_band: false,
                },
            ]
        );
        assert!(plan.ready.0);
        assert!(
            plan.ready.2.contains("1 without a UUID skipped"),
            "{}",
            plan.ready.2
        );
        assert_eq!(plan.status.firmware_version.as_deref(), Some("1.2"));
        assert_eq!(plan.status.ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(plan.status.state.as_deref(), Some("Enabled"));
        assert_eq!(
            plan.status.power_state,
            Some(crate::api::common::PowerState::On)
        );
    }

    #[test]
    fn systems_that_cannot_network_boot_are_named_in_the_ready_message() {
        let mut no_pxe = system(
            "/redfish/v1/Systems/A",
            Some("aaaaaaaa-0000-0000-0000-000000000001"),
        );
        no_pxe.boot_targets = vec!["Hdd".into(), "Cd".into()];
        let mut pxe = system(
            "/redfish/v1/Systems/B",
            Some("bbbbbbbb-0000-0000-0000-000000000002"),
        );
        pxe.boot_targets = vec!["None".into(), "Pxe".into(), "Hdd".into()];
        let unknown = system(
            "/redfish/v1/Systems/C",
            Some("cccccccc-0000-0000-0000-000000000003"),
        );
        let identity = anonymous(vec![no_pxe, pxe, unknown]);
        let plan = planned(identity);
        assert!(plan.ready.0, "the BMC itself is fine");
        assert_eq!(plan.servers.len(), 3, "every system still becomes a Server");
        assert!(
            plan.ready
                .2
                .ends_with("in-band discovery cannot boot: /redfish/v1/Systems/A (offers Hdd, Cd)"),
            "{}",
            plan.ready.2
        );
    }

    #[test]
    fn systems_without_a_boot_override_are_skipped_or_kept_out_of_band() {
        let mut dpu = system(
            "/redfish/v1/Systems/dpu",
            Some("dddddddd-0000-0000-0000-000000000004"),
        );
        dpu.boot_override = false;
        let host = system(
            "/redfish/v1/Systems/host",
            Some("aaaaaaaa-0000-0000-0000-000000000001"),
        );
        let identity = anonymous(vec![dpu, host]);
        let resync = Duration::from_secs(120);
        let skipped = plan(
            &bmc(),
            &address(),
            &Ok(identity.clone()),
            BootlessSystems::Skip,
            resync,
        );
        assert_eq!(
            skipped
                .servers
                .iter()
                .map(|s| (s.name.as_str(), s.system_uri.as_str(), s.out_of_band))
                .collect::<Vec<_>>(),
            [("rack1-bmc-system-0", "/redfish/v1/Systems/host", false)],
            "numbered among the kept systems only, as metal-operator"
        );
        assert!(
            skipped.ready.2.ends_with(
                "1 without a boot override skipped (no network boot possible): /redfish/v1/Systems/dpu"
            ),
            "{}",
            skipped.ready.2
        );
        let kept = plan(
            &bmc(),
            &address(),
            &Ok(identity),
            BootlessSystems::OutOfBand,
            resync,
        );
        assert_eq!(
            kept.servers
                .iter()
                .map(|s| (s.system_uri.as_str(), s.out_of_band))
                .collect::<Vec<_>>(),
            [
                ("/redfish/v1/Systems/dpu", true),
                ("/redfish/v1/Systems/host", false)
            ]
        );
        assert!(kept.ready.2.contains("discovered out-of-band only"));
        assert_eq!("out-of-band".parse(), Ok(BootlessSystems::OutOfBand));
        assert!("maybe".parse::<BootlessSystems>().is_err());
    }

    #[test]
    fn a_bmc_never_reached_does_not_claim_to_be_enabled() {
        let probed = BMCStatus {
            state: Some(String::from("Enabled")),
            power_state: Some(crate::api::common::PowerState::On),
            manufacturer: Some(String::from("Contoso")),
            ..BMCStatus::default()
        };
        let driverless = unreachable_status(Some(&probed), conditions::REASON_DRIVER_FAILED);
        assert_eq!(driverless.state.as_deref(), Some("Error"));
        assert_eq!(
            driverless.power_state,
            Some(crate::api::common::PowerState::Unknown)
        );
        assert_eq!(
            driverless.manufacturer.as_deref(),
            Some("Contoso"),
            "what was learnt stays"
        );
        for reason in [
            conditions::REASON_REFERENCE_NOT_FOUND,
            conditions::REASON_INCOMPLETE,
        ] {
            assert_eq!(
                unreachable_status(None, reason).state.as_deref(),
                Some("Pending"),
                "{reason}"
            );
        }
    }

    #[test]
    fn failures_map_to_metal_operators_reasons_and_create_nothing() {
        for (kind, reason) in [
            (
                CallErrorKind::Plugin(GuestError::Unauthorized(None)),
                conditions::REASON_AUTHENTICATION_FAILED,
            ),
            (
                CallErrorKind::Plugin(GuestError::Unreachable(Some("refused".into()))),
                conditions::REASON_CONNECTION_FAILED,
            ),
            (
                CallErrorKind::Timeout(Duration::from_secs(60)),
                conditions::REASON_CONNECTION_FAILED,
            ),
            (
                CallErrorKind::Plugin(GuestError::BmcFault {
                    http_status: Some(500),
                    message_id: None,
                    message: "x".into(),
                }),
                conditions::REASON_INTERNAL_SERVER_ERROR,
            ),
            (
                CallErrorKind::Crashed {
                    reason: "trap".into(),
                    panic: None,
                    backtrace: "0: a\n1: b".into(),
                },
                conditions::REASON_DRIVER_FAILED,
            ),
        ] {
            let plan = plan(
                &bmc(),
                &address(),
                &Err(failure(kind)),
                BootlessSystems::Skip,
                Duration::from_secs(120),
            );
            assert_eq!((plan.ready.0, plan.ready.1), (false, reason));
            assert!(plan.servers.is_empty());
            assert!(
                !plan.ready.2.contains('\n'),
                "one-line messages: {}",
                plan.ready.2
            );
            assert_eq!(plan.status.state.as_deref(), Some("Error"));
            let answered = reason == conditions::REASON_AUTHENTICATION_FAILED
                || reason == conditions::REASON_INTERNAL_SERVER_ERROR;
            assert_eq!(
                plan.status.power_state,
                Some(if answered {
                    crate::api::common::PowerState::On
                } else {
                    crate::api::common::PowerState::Unknown
                }),
                "{reason}"
            );
            assert_eq!(
                plan.requeue,
                Duration::from_secs(120),
                "retried later, not hammered"
            );
        }
    }

    /// Any system behind the BMC: one of four UUIDs in either case or none, with or without
    /// a boot override, offering some boot targets.
    fn any_system(index: usize) -> impl proptest::strategy::Strategy<Value = System> {
        use proptest::prelude::*;
        (
            proptest::option::of(0usize..4),
            any::<bool>(),
            any::<bool>(),
            proptest::sample::subsequence(vec!["Pxe", "Hdd", "UefiHttp"], 0..=3),
        )
            .prop_map(move |(uuid, upper, boot_override, targets)| {
                let uuid = uuid.map(|n| format!("{n:08x}-aaaa-4bbb-8ccc-00000000000{n}"));
                let mut system = system(
                    &format!("/redfish/v1/Systems/{index}"),
                    uuid.map(|u| if upper { u.to_ascii_uppercase() } else { u })
                        .as_deref(),
                );
                system.boot_override = boot_override;
                system.boot_targets = targets.into_iter().map(String::from).collect();
                system
            })
    }

    fn any_systems() -> impl proptest::strategy::Strategy<Value = Vec<System>> {
        use proptest::prelude::*;
        (0usize..6).prop_flat_map(|count| (0..count).map(any_system).collect::<Vec<_>>())
    }

    /// The `n`th way a probe fails (0–4).
    fn nth_failure(n: usize) -> CallErrorKind {
        match n {
            0 => CallErrorKind::Timeout(Duration::from_secs(60)),
            1 => CallErrorKind::Plugin(GuestError::Unauthorized(None)),
            2 => CallErrorKind::Plugin(GuestError::Unreachable(None)),
            3 => CallErrorKind::Plugin(GuestError::BmcFault {
                http_status: Some(500),
                message_id: None,
                message: String::from("internal\nerror"),
            }),
            _ => CallErrorKind::Host(String::from("no driver")),
        }
    }

    proptest::proptest! {
        /// Whatever the probe found or however it failed, the plan keeps one Server per
        /// bootable system with a UUID (named by stable order, whatever order the BMC lists
        /// them in), none when the probe failed, and a one-line `Ready` message.
        #[test]
        fn every_probe_outcome_plans_servers_that_keep_the_invariants(
            systems in any_systems(),
            failed in proptest::option::of(0usize..5),
            out_of_band in proptest::bool::ANY,
        ) {
            let bootless = if out_of_band { BootlessSystems::OutOfBand } else { BootlessSystems::Skip };
            let probe = match failed {
                Some(n) => Err(failure(nth_failure(n))),
                None => Ok(anonymous(systems.clone())),
            };
            let resync = Duration::from_secs(120);
            let plan = plan(&bmc(), &address(), &probe, bootless, resync);
            proptest::prop_assert!(!plan.ready.2.contains('\n'), "{}", plan.ready.2);
            proptest::prop_assert_eq!(plan.requeue, resync);
            if probe.is_err() {
                proptest::prop_assert!(!plan.ready.0);
                proptest::prop_assert!(plan.servers.is_empty());
                proptest::prop_assert_eq!(plan.status.state.as_deref(), Some("Error"));
                return Ok(());
            }
            proptest::prop_assert!(plan.ready.0);
            proptest::prop_assert_eq!(plan.status.state.as_deref(), Some("Enabled"));
            for (index, server) in plan.servers.iter().enumerate() {
                proptest::prop_assert_eq!(&server.name, &format!("rack1-bmc-system-{index}"));
                let system = systems.iter().find(|s| s.uri == server.system_uri);
                let system = system.expect("every Server is one of the BMC's systems");
                proptest::prop_assert_eq!(
                    Some(server.system_uuid.clone()),
                    system.uuid.as_deref().map(str::to_ascii_lowercase)
                );
                proptest::prop_assert_eq!(server.out_of_band, !system.boot_override);
                proptest::prop_assert!(system.boot_override || out_of_band);
            }
            // One Server per bootable (or out-of-band) system with a UUID: two systems that
            // share a UUID get one each, and the Server controller discovers only the oldest
            // (controllers/system_uuids.rs).
            let mut planned: Vec<&str> = plan.servers.iter().map(|s| s.system_uri.as_str()).collect();
            planned.sort_unstable();
            let mut eligible: Vec<&str> = systems
                .iter()
                .filter(|s| s.uuid.is_some() && (s.boot_override || out_of_band))
                .map(|s| s.uri.as_str())
                .collect();
            eligible.sort_unstable();
            proptest::prop_assert_eq!(planned, eligible);
            let mut reversed = systems.clone();
            reversed.reverse();
            let again = super::plan(&bmc(), &address(), &Ok(anonymous(reversed)), bootless, resync);
            proptest::prop_assert_eq!(&again.servers, &plan.servers, "names depend on the BMC's order");
        }
    }
}
