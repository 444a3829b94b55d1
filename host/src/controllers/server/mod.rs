//! ServerReconciler: the first boot and what follows. A new Server is booted into the
//! discovery image (Initial → Discovery), its probe's report is awaited, and once every NIC
//! its BMC reported has been seen it becomes `Available`. A discovery that never reports
//! times out into `Error` and is retried with backoff; in `Available`, `spec.power` is
//! honoured. A claim that binds it makes it `Reserved` and boots the claim's OS
//! (`provision.rs`); when the claim goes it is powered off and `Released` or discovered again.
//! The `metal.ironcore.dev/operation` annotation ([`super::operations`]) comes before all of
//! this.
//!
//! Progress that must survive a restart lives on the Server: the attempt, when it started,
//! whether the boot was requested and when to retry are annotations; the facts are in its
//! status (written by the registry).

mod provision;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{EventType, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::Error;
use crate::api::common::{Power, PowerState};
use crate::api::conditions::PROBE_REPORTED;
use crate::api::server::ReclaimPolicy;
use crate::api::{
    BMC, Server, ServerBootConfiguration, ServerBootConfigurationState, ServerClaim, ServerState,
    conditions,
};
use crate::boot::index::{BootIndex, ConfigKey};
use crate::controllers::bmc::BmcSettings;
use crate::controllers::bmc_work::{BmcAnswer, BmcFailure, BmcOperation, BmcResult, BmcWork};
use crate::controllers::bootconfig::{BOOT_TOKEN_KEY, IGNITION_KEY};
use crate::controllers::caches::{Caches, cached_or_get};
use crate::controllers::connection::connect;
use crate::controllers::inventory::{BmcInventory, Known};
use crate::controllers::inventory_check::{self, Verdict};
use crate::controllers::operations::{self, Effects, OperationEvent, OperationStep, OperationView};
use crate::controllers::system_uuids::{Claimant, SystemUuidIndex};
use crate::controllers::written::{Freshness, WrittenVersions};
use crate::plugins::bmc_driver::BmcDriverPlugin;
use crate::plugins::catalog::PluginCatalog;
use crate::plugins::ignition_generator::{IgnitionRequest, ServerFacts};
use crate::plugins::types::{BmcEndpoint, BootOverride, BootTarget, NicKind, PowerAction, System};
use crate::telemetry::{ControllerMetrics, DiscoveryPhase};

/// Field manager of the reconciler's writes.
pub const MANAGER: &str = "ferrometal-server";
/// Condition types and reasons of the Server's own, defined in the catalogue.
pub use crate::api::conditions::{
    BMC_REACHABLE, DISCOVERY, INVENTORY_CONSISTENT, REASON_DISCOVERED_WITHOUT_NICS,
    REASON_DUPLICATE_SYSTEM_UUID,
};
/// Annotation: the discovery attempt in progress (1, 2, ...).
pub const ATTEMPT_ANNOTATION: &str = "ferrometal.dev/discovery-attempt";
/// Annotation: when the current discovery attempt started (RFC 3339).
pub const STARTED_ANNOTATION: &str = "ferrometal.dev/discovery-started";
/// Annotation: the fingerprint of the current attempt's fetch ticket. The boot server serves
/// the attempt only from the Secret that holds it, so a cache that has not seen the
/// attempt's new Secret yet serves nothing rather than the previous attempt's ignition.
pub const TICKET_ANNOTATION: &str = "ferrometal.dev/discovery-ticket";
/// Annotation: the attempt whose network boot was requested.
pub const BOOTED_ANNOTATION: &str = "ferrometal.dev/discovery-boot-requested";
/// Annotation: when a timed-out discovery is retried (RFC 3339).
pub const RETRY_ANNOTATION: &str = "ferrometal.dev/discovery-retry-at";
/// Annotation (set by people): this Server's discovery timeout in seconds.
pub const TIMEOUT_ANNOTATION: &str = "ferrometal.dev/discovery-timeout-seconds";
/// Annotation (set by people): `in-band` or `out-of-band` discovery for this Server.
pub const MODE_ANNOTATION: &str = "ferrometal.dev/discovery-mode";
/// metal-operator's marker for boot configurations the operator made for itself.
pub const TYPE_ANNOTATION: &str = "metal.ironcore.dev/type";

/// How a Server's hardware is discovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiscoveryMode {
    /// Boot the discovery image and let metalprobe report (sees link state, disks behind
    /// HBAs, addresses).
    #[default]
    InBand,
    /// Take what the BMC reports and go straight to Available, without booting.
    OutOfBand,
}

impl std::str::FromStr for DiscoveryMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "in-band" => Ok(Self::InBand),
            "out-of-band" => Ok(Self::OutOfBand),
            other => Err(format!(
                "discovery mode {other:?} is neither in-band nor out-of-band"
            )),
        }
    }
}

/// Operator-wide discovery settings.
#[derive(Debug, Clone)]
pub struct DiscoverySettings {
    /// The OS image machines boot for discovery (OCI reference); without one, discovery
    /// cannot start and Servers say so.
    pub image: Option<String>,
    /// Namespace of the discovery ServerBootConfigurations and ignition Secrets.
    pub namespace: String,
    /// Where metalprobe reports (the boot server's URL).
    pub registry_url: String,
    /// Settings passed to the ignition generator (e.g. `metalprobe-url`).
    pub ignition_settings: Vec<(String, String)>,
    /// SSH keys for the discovery system's user.
    pub ssh_authorized_keys: Vec<String>,
    /// How long a discovery may take before it is retried.
    pub timeout: Duration,
    /// First retry delay after a timeout (doubles per attempt, at most an hour).
    pub retry_base: Duration,
    /// How long a report that has everything but some of the BMC's NICs waits for them
    /// before the Server becomes Available without them (named in its condition).
    pub nic_wait: Duration,
    /// Power the server off once it is discovered.
    pub power_off_after: bool,
    /// How often a Server is looked at when nothing happens.
    pub resync: Duration,
    /// The default discovery mode (a Server's `ferrometal.dev/discovery-mode` overrides it).
    pub mode: DiscoveryMode,
    /// The one-time boot override a discovery asks the BMC for: `Pxe` (DHCP, then iPXE and
    /// `/ipxe`) or `UefiHttp` (the firmware boots the image's UKI over HTTP).
    pub boot_target: BootTarget,
    /// `--inventory-cross-check`: at the end of an in-band discovery, read the BMC's
    /// inventory too (in the operation that powers the server off) and say in the
    /// `InventoryConsistent` condition where it and the probe's report differ.
    pub inventory_cross_check: bool,
}

/// Discovery progress recorded on the Server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Attempt number (0 before the first).
    pub attempt: u32,
    /// When the attempt started.
    pub started: Option<Timestamp>,
    /// Whether this attempt's network boot was requested.
    pub boot_requested: bool,
    /// When to retry after a timeout.
    pub retry_at: Option<Timestamp>,
    /// The fingerprint of the attempt's fetch ticket (`None` from operators before it was
    /// recorded).
    pub ticket: Option<String>,
}

/// When the latest probe report arrived (its `ProbeReported` condition's time).
pub fn reported_at(status: &crate::api::ServerStatus) -> Option<Timestamp> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == PROBE_REPORTED)
        .map(|c| c.last_transition_time.0)
}

impl Progress {
    /// Whether a report that arrived at `reported_at` belongs to this attempt. Condition
    /// times have whole seconds: a report that arrives within the second the attempt started
    /// in must count, or the Server waits for one that never comes.
    pub fn reported(&self, reported_at: Option<Timestamp>) -> bool {
        self.started.is_some_and(|started| {
            let started_second = Timestamp::from_second(started.as_second()).unwrap_or(started);
            reported_at.is_some_and(|at| at >= started_second)
        })
    }

    /// Reads the annotations.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Self {
        let attempt = super::provisioning::BootAttempt::read(
            annotations,
            [
                ATTEMPT_ANNOTATION,
                STARTED_ANNOTATION,
                TICKET_ANNOTATION,
                BOOTED_ANNOTATION,
            ],
        );
        Self {
            attempt: attempt.attempt,
            started: attempt.started,
            boot_requested: attempt.boot_requested,
            retry_at: annotations
                .get(RETRY_ANNOTATION)
                .and_then(|t| t.parse::<Timestamp>().ok()),
            ticket: attempt.ticket,
        }
    }
}

/// What the Server reconciler saw.
#[derive(Debug, Clone)]
pub struct Observed {
    /// `status.state` (`None` for a new Server).
    pub state: Option<ServerState>,
    /// Recorded discovery progress.
    pub progress: Progress,
    /// The discovery boot configuration's state (`None`: it does not exist).
    pub boot_configuration: Option<Option<ServerBootConfigurationState>>,
    /// When the boot server last refused a second use of the fetch ticket, and its message
    /// (from the boot configuration's `FetchTicketReused` condition).
    pub ticket_refused: Option<(Timestamp, String)>,
    /// Whether the boot server serves this attempt (its boot window is open).
    pub boot_window_open: bool,
    /// When the last probe report arrived.
    pub reported_at: Option<Timestamp>,
    /// MACs the probe reported (lowercase).
    pub reported_macs: Vec<String>,
    /// Which other parts the probe reported.
    pub reported_sections: ReportedSections,
    /// MACs of the system's NICs that its OS sees, as the BMC reports them (lowercase; host
    /// interfaces, disabled and absent NICs left out); `None` when the BMC was not asked.
    pub expected_macs: Option<Vec<String>>,
    /// How long a report lacking only some of `expected_macs` waits for them.
    pub nic_wait: Duration,
    /// `spec.power`.
    pub power: Option<Power>,
    /// The power state the BMC reports.
    pub power_state: Option<PowerState>,
    /// This Server's discovery timeout.
    pub timeout: Duration,
    /// This Server's discovery mode.
    pub mode: DiscoveryMode,
    /// Older Servers with the same system UUID (oldest first): when there are any, this one
    /// is not discovered.
    pub elders: Vec<Claimant>,
    /// The ServerClaim `spec.serverClaimRef` names.
    pub claim: ClaimView,
    /// `spec.reclaimPolicy`.
    pub reclaim_policy: ReclaimPolicy,
    /// Now.
    pub now: Timestamp,
}

/// The ServerClaim a Server is bound to, as its reconciler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimView {
    /// `spec.serverClaimRef` is not set.
    Unclaimed,
    /// The claim exists.
    Present,
    /// The claim is gone or being deleted: the Server is released.
    Gone,
}

/// The parts of a report besides NICs that discovery waits for. Disks are reported when
/// present but not required: diskless machines exist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportedSections {
    /// At least one CPU.
    pub cpus: bool,
    /// The memory size.
    pub memory: bool,
    /// DMI manufacturer or serial number.
    pub identity: bool,
}

/// The one thing to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Take the BMC's inventory as the Server's facts and go to Available (out-of-band).
    Inventory,
    /// Generate ignition and token, create the boot configuration, enter Discovery.
    StartDiscovery {
        /// The attempt starting.
        attempt: u32,
    },
    /// The boot configuration is not Ready yet.
    AwaitBootConfiguration,
    /// The boot configuration is Ready, but the boot server does not serve this attempt yet
    /// (the boot configuration controller has not seen the attempt start): powering on now
    /// would have the machine ask before its boot window opens.
    AwaitBootWindow,
    /// One-time network boot, then power on (or restart).
    RequestBoot,
    /// Waiting for the probe; the message says for what.
    AwaitReport {
        /// Condition message.
        message: String,
        /// Whether a report of this attempt arrived (and lacks something).
        reported: bool,
        /// When to look again at the latest (the end of the wait for missing NICs).
        recheck_at: Option<Timestamp>,
    },
    /// The report is complete, or lacks only NICs that did not show up within the wait:
    /// Available, boot configuration removed, power off if configured.
    Complete {
        /// NICs the BMC lists that the probe never saw (`NIC <mac>`), named on the Server.
        missing_nics: Vec<String>,
    },
    /// No complete report in time: boot configuration removed, Error until `retry_at`.
    TimeOut {
        /// When to try again.
        retry_at: Timestamp,
        /// Condition message.
        message: String,
    },
    /// In Error, waiting to retry.
    AwaitRetry {
        /// When.
        at: Timestamp,
    },
    /// In Available, bring the power to `spec.power`.
    SetPower(PowerAction),
    /// The fetch ticket of this attempt was used twice: someone else may hold the ignition,
    /// so a new attempt starts at once with fresh secrets.
    RestartAfterTicketReuse {
        /// The attempt starting.
        attempt: u32,
        /// Condition message, naming both addresses.
        message: String,
    },
    /// Bound by a claim while Available: `Reserved` (no BMC call).
    Reserve,
    /// Reserved by a claim that exists: boot and power the machine as the claim says
    /// ([`super::provisioning`] decides how).
    Provision,
    /// `Reserved` without a claim reference (a person cleared it): back to `Available`.
    Unreserve,
    /// Its claim is gone and the machine is not known to be off: power it off (beside the
    /// workers) before it is released.
    PowerOffForRelease,
    /// Its claim is gone and the machine is off: `Retain` keeps it `Released`; `Recycle`
    /// clears the claim reference and discovers it again (the next owner gets facts
    /// verified after the last one).
    Release {
        /// `spec.reclaimPolicy` is `Retain`.
        retain: bool,
    },
    /// `Released` and its claim reference cleared: discovered again.
    Rediscover,
    /// Another, older Server names the same system UUID: this one is not booted (its boot
    /// configuration, if any, is removed) and says why.
    Duplicate {
        /// Condition message, naming the other Servers and their BMCs.
        message: String,
    },
    /// Nothing to do.
    Idle,
}

/// The retry delay after `attempt` timed out: `base`, doubling, at most an hour.
pub fn retry_delay(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1u32 << attempt.saturating_sub(1).min(12))
        .min(Duration::from_secs(3600))
}

fn after(time: Timestamp, delay: Duration) -> Timestamp {
    time.checked_add(SignedDuration::try_from(delay).unwrap_or(SignedDuration::MAX))
        .unwrap_or(time)
}

/// Decides the next step (pure; see the tests for every transition).
pub fn plan(observed: &Observed, retry_base: Duration) -> Step {
    let progress = &observed.progress;
    let undiscovered = matches!(
        observed.state,
        None | Some(ServerState::Initial | ServerState::Discovery | ServerState::Error)
    );
    if undiscovered && let Some(oldest) = observed.elders.first() {
        let others: Vec<String> = observed.elders.iter().map(Claimant::describe).collect();
        return Step::Duplicate {
            message: format!(
                "the same system UUID is reported for {}; only the oldest Server of a UUID, {}, is discovered. Delete the wrong Server's BMC or fix the UUID it reports",
                others.join(", "),
                oldest.name
            ),
        };
    }
    if observed.mode == DiscoveryMode::OutOfBand && undiscovered {
        return Step::Inventory;
    }
    match observed.state {
        // An attempt whose start was recorded in the annotations but not in the status (a
        // crash or a failed write between the two) is started again under its number.
        None | Some(ServerState::Initial) if progress.started.is_some() && progress.attempt > 0 => {
            Step::StartDiscovery {
                attempt: progress.attempt,
            }
        }
        None | Some(ServerState::Initial) => Step::StartDiscovery {
            attempt: progress.attempt + 1,
        },
        Some(ServerState::Discovery) => {
            let Some(started) = progress.started else {
                return Step::StartDiscovery {
                    attempt: progress.attempt.max(1),
                };
            };
            let fresh = progress.reported(observed.reported_at);
            let missing_nics: Vec<String> = match &observed.expected_macs {
                Some(expected) => expected
                    .iter()
                    .filter(|mac| !observed.reported_macs.contains(mac))
                    .map(|mac| format!("NIC {mac}"))
                    .collect(),
                None => Vec::new(),
            };
            let missing_parts: Vec<&str> = [
                (observed.reported_sections.cpus, "CPUs"),
                (observed.reported_sections.memory, "memory"),
                (observed.reported_sections.identity, "DMI identity"),
            ]
            .into_iter()
            .filter_map(|(present, what)| (!present).then_some(what))
            .collect();
            let timed_out_at = after(started, observed.timeout);
            let mut recheck_at = None;
            if fresh && observed.expected_macs.is_some() && missing_parts.is_empty() {
                // A NIC the BMC lists may never show in the OS (a port without a driver, a
                // mislabelled interface): wait a bounded time for it, then finish without.
                let nics_due = observed
                    .reported_at
                    .map_or(timed_out_at, |at| after(at, observed.nic_wait))
                    .min(timed_out_at);
                if missing_nics.is_empty() || nics_due <= observed.now {
                    return Step::Complete { missing_nics };
                }
                recheck_at = Some(nics_due);
            }
            let missing: Vec<&str> = missing_nics
                .iter()
                .map(String::as_str)
                .chain(missing_parts)
                .collect();
            let waiting_for = if let Some(due) = recheck_at {
                format!(
                    "the probe reported, but without {}; waiting until {due}, then the server becomes Available without what is still missing",
                    missing.join(", ")
                )
            } else if fresh {
                format!("the probe reported, but without {}", missing.join(", "))
            } else if progress.boot_requested {
                String::from("booted into the discovery image; waiting for the probe's report")
            } else if observed.boot_configuration == Some(Some(ServerBootConfigurationState::Ready))
            {
                String::from("waiting for the boot server to serve the discovery boot")
            } else {
                String::from("waiting for the discovery boot configuration to be Ready")
            };
            // A refusal dated after this attempt started belongs to it (condition times
            // have whole seconds, so one from the second the attempt started in is taken as
            // the previous attempt's).
            if let Some((at, message)) = &observed.ticket_refused
                && *at > started
            {
                return Step::RestartAfterTicketReuse {
                    attempt: progress.attempt + 1,
                    message: format!("attempt {}: {message}", progress.attempt),
                };
            }
            if timed_out_at <= observed.now {
                return Step::TimeOut {
                    retry_at: after(observed.now, retry_delay(retry_base, progress.attempt)),
                    message: format!(
                        "attempt {} timed out after {}s ({waiting_for})",
                        progress.attempt,
                        observed.timeout.as_secs()
                    ),
                };
            }
            match observed.boot_configuration {
                None => Step::StartDiscovery {
                    attempt: progress.attempt.max(1),
                },
                Some(Some(ServerBootConfigurationState::Ready))
                    if !progress.boot_requested && observed.boot_window_open =>
                {
                    Step::RequestBoot
                }
                Some(Some(ServerBootConfigurationState::Ready)) if !progress.boot_requested => {
                    Step::AwaitBootWindow
                }
                Some(_) if !progress.boot_requested => Step::AwaitBootConfiguration,
                Some(_) => Step::AwaitReport {
                    message: waiting_for,
                    reported: fresh,
                    recheck_at,
                },
            }
        }
        Some(ServerState::Error) => match progress.retry_at {
            Some(at) if at > observed.now => Step::AwaitRetry { at },
            _ => Step::StartDiscovery {
                attempt: progress.attempt + 1,
            },
        },
        Some(ServerState::Available) if observed.claim != ClaimView::Unclaimed => Step::Reserve,
        Some(ServerState::Reserved) => match observed.claim {
            ClaimView::Unclaimed => Step::Unreserve,
            ClaimView::Present => Step::Provision,
            ClaimView::Gone if observed.power_state != Some(PowerState::Off) => {
                Step::PowerOffForRelease
            }
            ClaimView::Gone => Step::Release {
                retain: observed.reclaim_policy == ReclaimPolicy::Retain,
            },
        },
        Some(ServerState::Released) => match (observed.claim, observed.power_state) {
            (ClaimView::Unclaimed, _) => Step::Rediscover,
            (_, Some(state)) if state != PowerState::Off => {
                Step::SetPower(PowerAction::GracefulShutdown)
            }
            _ => Step::Idle,
        },
        Some(ServerState::Available) => match (observed.power, observed.power_state) {
            (Some(Power::On), Some(state)) if state != PowerState::On => {
                Step::SetPower(PowerAction::On)
            }
            (Some(Power::Off), Some(state)) if state != PowerState::Off => {
                Step::SetPower(PowerAction::GracefulShutdown)
            }
            _ => Step::Idle,
        },
        Some(_) => Step::Idle,
    }
}

/// What the reconciler needs.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Installed plugins (driver, ignition generator).
    pub catalog: Arc<PluginCatalog>,
    /// How to reach BMCs.
    pub bmc: BmcSettings,
    /// Discovery settings.
    pub discovery: DiscoverySettings,
    /// Event reporter.
    pub reporter: Reporter,
    /// Reconcile metrics.
    pub metrics: ControllerMetrics,
    /// Retry delays after failures, per object.
    pub backoff: super::backoff::ErrorBackoff,
    /// Retry delays of `spec.power` actions the BMC refused, per Server (10 s doubling to
    /// 10 min).
    pub power_backoff: super::backoff::ErrorBackoff,
    /// Which Servers name each system UUID (fed by the Server watch).
    pub uuids: Arc<SystemUuidIndex>,
    /// The watch caches: BMCs, BMCSecrets, Endpoints, boot configurations.
    pub caches: Arc<Caches>,
    /// What each BMC reported at its last probe (NICs of each system).
    pub inventory: Arc<BmcInventory>,
    /// BMC operations running beside the workers, one per Server.
    pub work: Arc<BmcWork>,
    /// The resource versions this reconciler's writes left each Server at.
    pub written: WrittenVersions,
    /// What this process's boot server serves: a discovery boot is requested only once the
    /// attempt's boot window is open there, so the machine's first request finds it.
    pub boot_index: BootIndex,
}

/// Reconciles one Server.
#[tracing::instrument(skip_all, fields(server = %server.name_any()))]
pub async fn reconcile(server: Arc<Server>, ctx: Arc<Context>) -> Result<Action, Error> {
    let timer = ctx.metrics.reconcile("server");
    let key = super::object_key(&*server);
    let result = reconcile_inner(server, &ctx).await;
    if result.is_ok() {
        ctx.backoff.succeeded(&key);
    }
    timer.finish(result.is_ok());
    result
}

/// The Server a boot configuration belongs to (its controlling owner), as the cluster-scoped
/// key the Server controller queues.
pub fn owner(config: &ServerBootConfiguration) -> Option<ObjectRef<Server>> {
    config
        .owner_references()
        .iter()
        .find(|owner| owner.kind == "Server" && owner.controller == Some(true))
        .map(|owner| ObjectRef::new(&owner.name))
}

/// What of a Server its reconciler acts on, for [`super::triggers::changes`]: its spec,
/// annotations (progress, and the timeout and mode people set) and the probe's report. The
/// reconciler's own status writes (state, power, its conditions) do not start a reconcile.
pub fn fingerprint(server: &Server) -> u64 {
    let report = server
        .status
        .as_ref()
        .and_then(|status| status.conditions.iter().find(|c| c.type_ == PROBE_REPORTED))
        .map(|c| (c.status.clone(), c.last_transition_time.0.as_second()));
    super::triggers::fingerprint((
        server.metadata.generation,
        &server.metadata.annotations,
        &server.metadata.labels,
        report,
    ))
}

/// Retries a failed reconcile after the object's backoff (doubling per failure in a row).
pub fn error_policy(server: Arc<Server>, error: &Error, ctx: Arc<Context>) -> Action {
    super::backoff::retry_after(
        "server",
        &super::object_key(&*server),
        error,
        &ctx.backoff,
        &ctx.metrics,
    )
}

fn lowercase_macs<'a>(macs: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    macs.into_iter().map(|m| m.to_ascii_lowercase()).collect()
}

/// A condition to set: status, reason, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionChange {
    /// `True` or `False`.
    pub status: bool,
    /// Reason (a constant of this module or `conditions`).
    pub reason: &'static str,
    /// What a person reads.
    pub message: String,
}

impl ConditionChange {
    fn new(status: bool, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
        }
    }
}

/// What a step does with the `InventoryConsistent` condition (`--inventory-cross-check`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum InventoryCheck {
    /// Left as it is.
    #[default]
    Unchanged,
    /// Set from the cross-check of the discovery that just ended.
    Set(Verdict),
    /// Removed: the discovery that just ended was not cross-checked (out-of-band, or the
    /// flag is off), so a condition left from an earlier one would judge facts that are gone.
    Removed,
}

impl InventoryCheck {
    /// A discovery ended without a cross-check: [`Self::Removed`] when `status` still has a
    /// condition from an earlier one, otherwise nothing to write.
    pub fn without(status: Option<&crate::api::ServerStatus>) -> Self {
        let earlier = status.is_some_and(|status| {
            status
                .conditions
                .iter()
                .any(|c| c.type_ == INVENTORY_CONSISTENT)
        });
        if earlier {
            Self::Removed
        } else {
            Self::Unchanged
        }
    }

    /// The condition from what [`BmcOperation::ReadInventory`] gave, against the probe's
    /// facts in `status`.
    pub fn judged(result: &BmcResult, status: &crate::api::ServerStatus) -> Self {
        Self::Set(match result {
            Ok(BmcAnswer::Inventory {
                system: Ok(system), ..
            }) => inventory_check::cross_check(system, status),
            Ok(BmcAnswer::Inventory {
                system: Err(failure),
                ..
            })
            | Err(failure) => inventory_check::unavailable(&failure.message),
            // The operation answers nothing else.
            Ok(BmcAnswer::Done(_) | BmcAnswer::Power(_) | BmcAnswer::System(_)) => {
                inventory_check::unavailable("the BMC operation gave no system")
            }
        })
    }
}

/// `spec.bootConfigurationRef` after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootConfigurationRef {
    /// Names the discovery boot configuration.
    Discovery,
    /// Names the boot configuration of the Server's claim.
    Claim(ConfigKey),
    /// Cleared.
    Cleared,
}

/// What a step leaves behind. [`write_outcome`] writes it with at most one write of the
/// Server (annotations and spec together) and one of its status, each only when something
/// changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// The new `status.state` (`None`: unchanged).
    pub state: Option<ServerState>,
    /// The new `status.powerState` (`None`: unchanged).
    pub power_state: Option<PowerState>,
    /// The `Discovery` condition, when it changes.
    pub discovery: Option<ConditionChange>,
    /// The `BMCReachable` condition, when the step learned it.
    pub reachable: Option<ConditionChange>,
    /// What becomes of the `InventoryConsistent` condition.
    pub inventory_check: InventoryCheck,
    /// Progress annotations to set (`Some`) or remove (`None`).
    pub annotations: Vec<(&'static str, Option<String>)>,
    /// `spec.bootConfigurationRef`, when it changes.
    pub boot_configuration_ref: Option<BootConfigurationRef>,
    /// Clear `spec.serverClaimRef` (a recycled Server).
    pub clear_claim_ref: bool,
    /// A Warning Event for people (what a condition alone does not make visible enough).
    pub warning: Option<(&'static str, String)>,
    /// An Event published whatever the conditions do: the outcome of an operation the
    /// `metal.ironcore.dev/operation` annotation asked for, or a failed provisioning boot.
    pub operation_event: Option<OperationEvent>,
    /// When to look again.
    pub requeue: Duration,
}

impl StepOutcome {
    /// Nothing to write; look again after `requeue`.
    pub fn wait(requeue: Duration) -> Self {
        Self {
            state: None,
            power_state: None,
            discovery: None,
            reachable: None,
            inventory_check: InventoryCheck::Unchanged,
            annotations: Vec::new(),
            boot_configuration_ref: None,
            clear_claim_ref: false,
            warning: None,
            operation_event: None,
            requeue,
        }
    }

    fn state(mut self, state: ServerState) -> Self {
        self.state = Some(state);
        self
    }

    fn discovery(mut self, status: bool, reason: &'static str, message: impl Into<String>) -> Self {
        self.discovery = Some(ConditionChange::new(status, reason, message));
        self
    }

    fn warning(mut self, reason: &'static str, message: impl Into<String>) -> Self {
        self.warning = Some((reason, message.into()));
        self
    }
}

/// The `BMCReachable` condition of a BMC that answered.
fn reachable() -> ConditionChange {
    ConditionChange::new(true, conditions::REASON_CONNECTED, "the BMC answers")
}

/// What a finished BMC operation says about the BMC and the power.
fn fold_answer(outcome: &mut StepOutcome, result: &BmcResult) {
    match result {
        Ok(answer) => {
            match answer {
                // The inventory was read, but the power-off refused.
                BmcAnswer::Inventory {
                    power: Some(Err(failure)),
                    ..
                } => {
                    outcome.reachable.get_or_insert_with(|| {
                        ConditionChange::new(false, failure.reason, failure.message.clone())
                    });
                }
                _ => {
                    outcome.reachable.get_or_insert_with(reachable);
                }
            }
            match answer {
                BmcAnswer::Done(Some(power))
                | BmcAnswer::Power(power)
                | BmcAnswer::Inventory {
                    power: Some(Ok(power)),
                    ..
                } => {
                    outcome.power_state.get_or_insert(*power);
                }
                BmcAnswer::Done(None) | BmcAnswer::System(_) | BmcAnswer::Inventory { .. } => {}
            }
        }
        Err(failure) => {
            outcome.reachable.get_or_insert_with(|| {
                ConditionChange::new(false, failure.reason, failure.message.clone())
            });
        }
    }
}

async fn reconcile_inner(cached: Arc<Server>, ctx: &Arc<Context>) -> Result<Action, Error> {
    let name = cached.name_any();
    // Decide on the watch cache, unless it has not seen this reconciler's last write yet: a
    // step planned on an older Server would run twice (a second boot token that fails the
    // machine already booting with the first, a second power-on). The write's own watch
    // event comes soon; look again then.
    let server = match ctx
        .written
        .freshness(&name, cached.metadata.resource_version.as_deref())
    {
        Freshness::Current => cached,
        Freshness::Behind => return Ok(Action::requeue(Duration::from_secs(1))),
        Freshness::Unknown => match Api::<Server>::all(ctx.client.clone())
            .get_opt(&name)
            .await?
        {
            Some(server) => Arc::new(server),
            None => return Ok(Action::await_change()),
        },
    };
    if server.metadata.deletion_timestamp.is_some() {
        ctx.work.forget(&name);
        ctx.written.forget(&name);
        return Ok(Action::await_change());
    }
    // `metal.ironcore.dev/operation: ignore`: hands off until a person removes it.
    if operations::is_ignored(server.annotations()) {
        return Ok(Action::await_change());
    }
    let Some(bmc_name) = server.spec.bmc_ref.as_ref().map(|r| r.name.clone()) else {
        // Servers without a BMC (e.g. inline `spec.bmc`) are not driven yet.
        return Ok(Action::await_change());
    };
    let finished = ctx.work.take(&name);
    let outcome = match cached_or_get(
        &ctx.caches.bmcs,
        &Api::all(ctx.client.clone()),
        None,
        &bmc_name,
    )
    .await?
    {
        None => {
            let mut outcome = StepOutcome::wait(Duration::from_secs(30));
            outcome.reachable = Some(ConditionChange::new(
                false,
                conditions::REASON_BMC_NOT_FOUND,
                format!("BMC {bmc_name} does not exist"),
            ));
            outcome
        }
        Some(bmc) => step(&server, &bmc, finished, ctx).await?,
    };
    write_outcome(&server, ctx, outcome).await
}

/// Plans the Server's next step and runs its handler.
async fn step(
    server: &Server,
    bmc: &BMC,
    finished: Option<(BmcOperation, BmcResult)>,
    ctx: &Arc<Context>,
) -> Result<StepOutcome, Error> {
    let settings = &ctx.discovery;
    let name = server.name_any();
    let status = server.status.clone().unwrap_or_default();
    let progress = Progress::from_annotations(server.annotations());
    let timeout = server
        .annotations()
        .get(TIMEOUT_ANNOTATION)
        .and_then(|s| s.parse().ok())
        .map_or(settings.timeout, Duration::from_secs);
    // What the operation annotation asks comes first; what needs no BMC is done without one.
    let operation = operations::plan_operation(&OperationView::of(
        server.annotations(),
        status.state,
        status.power_state,
        server.spec.server_claim_ref.is_some(),
    ));
    let mut deferred_park = None;
    let operation = match operation {
        Some(OperationStep::Apply(effects)) => {
            return operation_effects(server, ctx, effects, Duration::from_secs(1)).await;
        }
        Some(OperationStep::StandDown) => return Ok(StepOutcome::wait(settings.resync)),
        Some(OperationStep::DeferPark(effects)) => {
            deferred_park = Some(effects);
            None
        }
        other => other,
    };
    let connection = match connect(&ctx.client, &ctx.caches, &ctx.catalog, &ctx.bmc, bmc).await? {
        Ok(connection) => connection,
        Err(error) => {
            // The BMC cannot be called: say so, and still end a discovery whose time is up
            // (its boot token must not stay valid because its BMC went away).
            let late = overdue_without_bmc(
                status.state,
                &progress,
                timeout,
                Timestamp::now(),
                settings.retry_base,
                &error.message,
            );
            let mut outcome = match late {
                Some((retry_at, message)) => time_out(server, ctx, None, retry_at, message).await?,
                // Looked at again when the attempt's time is up, if that comes sooner.
                None => StepOutcome::wait(
                    progress
                        .started
                        .filter(|_| status.state == Some(ServerState::Discovery))
                        .map_or(Duration::from_secs(30), |started| {
                            until(after(started, timeout))
                        })
                        .min(Duration::from_secs(30)),
                ),
            };
            outcome.reachable = Some(ConditionChange::new(false, error.reason, error.message));
            return Ok(outcome);
        }
    };
    let system = SystemTarget {
        bmc: bmc.name_any(),
        driver: connection.driver.clone(),
        endpoint: connection.endpoint.clone(),
        uri: server.spec.system_uri.clone().unwrap_or_default(),
    };
    if let Some(operation) = operation {
        let mut outcome = operate(server, &system, ctx, operation, &finished).await?;
        if let Some((_, result)) = &finished {
            fold_answer(&mut outcome, result);
        }
        return Ok(outcome);
    }
    let boot_configuration = ctx
        .caches
        .boot_configurations
        .get(&ObjectRef::new(&name).within(&settings.namespace))
        .map(|sbc| sbc.status.as_ref().and_then(|s| s.state));
    let ticket_refused = ctx
        .caches
        .boot_configurations
        .get(&ObjectRef::new(&name).within(&settings.namespace))
        .and_then(|sbc| {
            let condition = sbc
                .status
                .as_ref()?
                .conditions
                .iter()
                .find(|c| c.type_ == conditions::FETCH_TICKET_REUSED)?;
            Some((condition.last_transition_time.0, condition.message.clone()))
        });
    let boot_window_open = ctx.boot_index.serves_discovery(
        &ConfigKey {
            namespace: settings.namespace.clone(),
            name: name.clone(),
        },
        progress.attempt,
        progress.ticket.as_deref(),
    );
    let reported_at = reported_at(&status);
    let discovering = status.state == Some(ServerState::Discovery);
    // The BMC's view of the NICs, needed only to judge a report.
    let expected_macs = if discovering && reported_at.is_some() {
        expected_macs(server, &system, ctx, &finished)
    } else {
        None
    };
    let mode = match server.annotations().get(MODE_ANNOTATION) {
        None => settings.mode,
        Some(text) => match text.parse() {
            Ok(mode) => mode,
            Err(message) => {
                tracing::warn!(%message, "ignoring the discovery-mode annotation");
                settings.mode
            }
        },
    };
    let (claim, bound_claim) = claim_view(server, ctx).await?;
    let observed = Observed {
        mode,
        claim,
        reclaim_policy: server.spec.reclaim_policy.unwrap_or_default(),
        elders: server
            .spec
            .system_uuid()
            .map(|uuid| ctx.uuids.older_than(&uuid, &name))
            .unwrap_or_default(),
        state: status.state,
        progress: progress.clone(),
        boot_configuration,
        ticket_refused,
        boot_window_open,
        reported_at,
        reported_macs: lowercase_macs(status.network_interfaces.iter().map(|n| &n.mac_address)),
        reported_sections: ReportedSections {
            cpus: !status.processors.is_empty(),
            memory: status.total_system_memory.is_some(),
            identity: status.manufacturer.is_some() || status.serial_number.is_some(),
        },
        expected_macs,
        nic_wait: settings.nic_wait,
        power: server.spec.power,
        power_state: status.power_state,
        timeout,
        now: Timestamp::now(),
    };
    let step = plan(&observed, settings.retry_base);
    tracing::debug!(?step, "planned");
    let discovery_reason = status
        .conditions
        .iter()
        .find(|c| c.type_ == DISCOVERY)
        .map(|c| c.reason.as_str());
    let mut outcome = match step {
        Step::StartDiscovery { attempt } => {
            start_discovery(server, &system, ctx, attempt, &finished).await?
        }
        Step::RestartAfterTicketReuse { attempt, message } => {
            let outcome = start_discovery(server, &system, ctx, attempt, &finished).await?;
            // Said only once the new attempt started; until then the outcome says why not.
            if outcome.boot_configuration_ref.is_some() {
                outcome
                    .discovery(
                        false,
                        conditions::REASON_FETCH_TICKET_REUSED,
                        message.clone(),
                    )
                    .warning(conditions::REASON_FETCH_TICKET_REUSED, message)
            } else {
                outcome
            }
        }
        Step::Inventory => inventory(server, &system, ctx, &finished).await?,
        Step::AwaitBootConfiguration | Step::AwaitBootWindow => {
            // The boot window opens moments after the configuration is Ready, and the boot
            // index wakes the Server when it does: the short requeue is only the backstop.
            let requeue = Duration::from_secs(if step == Step::AwaitBootWindow { 5 } else { 30 });
            // The condition already says so since the discovery started (or why it started
            // again): nothing to write.
            if matches!(
                discovery_reason,
                Some(
                    conditions::REASON_WAITING_FOR_BOOT_CONFIGURATION
                        | conditions::REASON_FETCH_TICKET_REUSED
                )
            ) {
                StepOutcome::wait(requeue)
            } else {
                StepOutcome::wait(requeue)
                    .state(ServerState::Discovery)
                    .discovery(
                        false,
                        conditions::REASON_WAITING_FOR_BOOT_CONFIGURATION,
                        "waiting for the discovery boot configuration to be Ready",
                    )
            }
        }
        Step::RequestBoot => request_boot(&name, &system, ctx, progress.attempt, &finished),
        Step::AwaitReport {
            message,
            reported,
            recheck_at,
        } => {
            let outcome = StepOutcome::wait(recheck_at.map_or(Duration::from_secs(30), |at| {
                until(at).min(Duration::from_secs(30))
            }))
            .state(ServerState::Discovery);
            // `Booting` already says that the probe's report is awaited; only a report
            // that lacks something is news.
            if !reported && discovery_reason == Some(conditions::REASON_BOOTING) {
                outcome
            } else {
                outcome.discovery(false, conditions::REASON_WAITING_FOR_REPORT, message)
            }
        }
        Step::Complete { missing_nics } => {
            complete(server, &system, ctx, missing_nics, &finished).await?
        }
        Step::TimeOut { retry_at, message } => {
            time_out(server, ctx, Some(&system), retry_at, message).await?
        }
        Step::AwaitRetry { at } => {
            let mut outcome = StepOutcome::wait(until(at));
            // The power-off after the timeout failed: the BMC is gone, say so.
            if let Some((BmcOperation::PowerOff, Err(failure))) = &finished {
                outcome = outcome.discovery(
                    false,
                    conditions::REASON_DISCOVERY_TIMED_OUT,
                    format!(
                        "{}; retrying at {at}",
                        timed_out_without_bmc(progress.attempt, timeout, &failure.message)
                    ),
                );
            }
            outcome
        }
        Step::SetPower(action) => set_power(&name, &system, ctx, action, &finished),
        // Looked at again at once: the claim's boot comes next.
        Step::Reserve => StepOutcome::wait(Duration::from_secs(1)).state(ServerState::Reserved),
        Step::Provision => match &bound_claim {
            Some(claim) => {
                provision::step(server, claim, &system, ctx, status.power_state, &finished).await?
            }
            // Planned only with the claim present.
            None => StepOutcome::wait(Duration::from_secs(5)),
        },
        Step::Unreserve => StepOutcome::wait(settings.resync).state(ServerState::Available),
        Step::PowerOffForRelease => power_off_for_release(&name, &system, ctx, &finished),
        Step::Release { retain } => release(retain),
        Step::Rediscover => StepOutcome::wait(Duration::ZERO).state(ServerState::Initial),
        Step::Duplicate { message } => duplicate(server, ctx, &status, message).await?,
        Step::Idle => idle(&name, &system, ctx, status.power_state),
    };
    if let Some((_, result)) = &finished {
        fold_answer(&mut outcome, result);
    }
    if let Some(effects) = deferred_park {
        outcome.annotations.extend(effects.annotations);
        outcome.operation_event = effects.event;
    }
    Ok(outcome)
}

/// Carries out an operation step that calls the BMC (beside the workers, as every BMC call
/// of this reconciler): a reset, or the power-off before parking.
async fn operate(
    server: &Server,
    system: &SystemTarget,
    ctx: &Arc<Context>,
    operation: OperationStep,
    finished: &Option<(BmcOperation, BmcResult)>,
) -> Result<StepOutcome, Error> {
    let name = server.name_any();
    Ok(match operation {
        OperationStep::Reset(reset) => {
            let operation = BmcOperation::SetPower(reset.action);
            match answer_or_start(ctx, &name, system, operation, finished) {
                Some(Ok(_)) => {
                    ctx.power_backoff.succeeded(&name);
                    operation_effects(server, ctx, reset.completed(), Duration::from_secs(10))
                        .await?
                }
                Some(Err(failure)) => {
                    let retry = ctx.power_backoff.failed(&name);
                    operation_effects(server, ctx, reset.failed(&failure.message), retry).await?
                }
                None => StepOutcome::wait(Duration::from_secs(60)),
            }
        }
        OperationStep::PowerOffForParking { action } => {
            match answer_or_start(ctx, &name, system, BmcOperation::SetPower(action), finished) {
                // Looked at again soon: the answer's power state, or the next read, shows Off.
                Some(Ok(_)) => StepOutcome::wait(Duration::from_secs(5)),
                Some(Err(failure)) => {
                    let retry = ctx.power_backoff.failed(&name);
                    tracing::warn!(message = %failure.message, retry_in = ?retry, "cannot power off the server to park it");
                    StepOutcome::wait(retry)
                }
                None => StepOutcome::wait(Duration::from_secs(60)),
            }
        }
        OperationStep::AwaitPowerOff => {
            if !ctx.work.answered_within(&name, Duration::from_secs(5)) {
                start(ctx, &name, system, BmcOperation::ReadPower);
            }
            StepOutcome::wait(Duration::from_secs(5))
        }
        // Handled before the BMC is called.
        OperationStep::Apply(effects) | OperationStep::DeferPark(effects) => {
            operation_effects(server, ctx, effects, Duration::from_secs(1)).await?
        }
        OperationStep::StandDown => StepOutcome::wait(ctx.discovery.resync),
    })
}

/// The outcome that writes an operation's effects. Parking a server that was being
/// discovered also ends that attempt: its boot configuration and token go (the machine is
/// off, and a resumed server starts a fresh attempt).
async fn operation_effects(
    server: &Server,
    ctx: &Context,
    effects: Effects,
    requeue: Duration,
) -> Result<StepOutcome, Error> {
    let mut outcome = StepOutcome::wait(requeue);
    let parking = effects.state == Some(ServerState::Parked);
    outcome.state = effects.state;
    outcome.annotations = effects.annotations;
    outcome.operation_event = effects.event;
    if parking && server.spec.boot_configuration_ref.is_some() {
        remove_boot_configuration(ctx, server).await?;
        outcome.boot_configuration_ref = Some(BootConfigurationRef::Cleared);
        outcome.annotations.extend([
            (STARTED_ANNOTATION, None),
            (TICKET_ANNOTATION, None),
            (BOOTED_ANNOTATION, None),
            (RETRY_ANNOTATION, None),
        ]);
    }
    Ok(outcome)
}

/// A system behind a BMC, as an owned target for operations that outlive the reconcile.
#[derive(Clone)]
struct SystemTarget {
    /// The BMC's name.
    bmc: String,
    driver: BmcDriverPlugin,
    endpoint: BmcEndpoint,
    uri: String,
}

/// A failed driver call as a `BMCReachable` reason and message (without credentials: driver
/// errors never carry them).
fn failure(what: &str, error: &crate::plugins::CallError) -> BmcFailure {
    BmcFailure {
        reason: conditions::REASON_CONNECTION_FAILED,
        message: format!(
            "{what}: {}",
            crate::controllers::report::first_line(&error.to_string())
        ),
    }
}

/// The result of `operation` when it is what finished; otherwise starts it beside the
/// workers (nothing when one runs for `name` already) and gives `None`: the Server is
/// woken when the BMC answered.
fn answer_or_start<'a>(
    ctx: &Arc<Context>,
    name: &str,
    system: &SystemTarget,
    operation: BmcOperation,
    finished: &'a Option<(BmcOperation, BmcResult)>,
) -> Option<&'a BmcResult> {
    match finished {
        Some((done, result)) if *done == operation => Some(result),
        _ => {
            start(ctx, name, system, operation);
            None
        }
    }
}

/// Starts `operation` on `system` beside the workers (nothing when one runs for `name`).
fn start(ctx: &Arc<Context>, name: &str, system: &SystemTarget, operation: BmcOperation) {
    let target = system.clone();
    let inventory = ctx.inventory.clone();
    let boot_target = ctx.discovery.boot_target;
    let future: futures::future::BoxFuture<'static, BmcResult> = match operation.clone() {
        BmcOperation::NetworkBoot { .. } => Box::pin(async move {
            let SystemTarget {
                driver,
                endpoint,
                uri,
                ..
            } = target;
            let boot = BootOverride {
                target: boot_target,
                uefi: true,
                persistent: false,
                http_boot_uri: None,
            };
            driver
                .set_boot_override(&endpoint, &uri, &boot)
                .await
                .map_err(|e| failure("cannot set the one-time network boot", &e))?;
            let on = driver
                .power_state(&endpoint, &uri)
                .await
                .map_err(|e| failure("cannot read the power state", &e))?
                == crate::plugins::types::PowerState::On;
            let action = if on {
                PowerAction::ForceRestart
            } else {
                PowerAction::On
            };
            driver
                .set_power(&endpoint, &uri, action)
                .await
                .map_err(|e| failure("cannot power the server on", &e))?;
            Ok(BmcAnswer::Done(Some(PowerState::On)))
        }),
        BmcOperation::PowerOff => Box::pin(async move {
            target
                .driver
                .set_power(&target.endpoint, &target.uri, PowerAction::ForceOff)
                .await
                .map_err(|e| failure("cannot power the server off", &e))?;
            Ok(BmcAnswer::Done(Some(PowerState::Off)))
        }),
        BmcOperation::SetPower(action) => Box::pin(async move {
            target
                .driver
                .set_power(&target.endpoint, &target.uri, action)
                .await
                .map_err(|e| failure(&format!("cannot apply spec.power ({action:?})"), &e))?;
            // Read back, so the next decision sees where the BMC is now.
            read_power(&target).await
        }),
        BmcOperation::ReadPower => Box::pin(async move { read_power(&target).await }),
        BmcOperation::ReadSystem => Box::pin(async move {
            let system = target
                .driver
                .system(&target.endpoint, &target.uri)
                .await
                .map_err(|e| failure("cannot read the system from the BMC", &e))?;
            let system = Arc::new(system);
            inventory.record_system(&target.bmc, system.clone());
            Ok(BmcAnswer::System(system))
        }),
        // Not recorded in the BMC inventory: the cross-check is its only reader, and NICs
        // are judged on the BMC's probes as without the flag.
        BmcOperation::ReadInventory { power_off } => Box::pin(async move {
            let system = target
                .driver
                .system(&target.endpoint, &target.uri)
                .await
                .map(Arc::new)
                .map_err(|e| failure("cannot read the system's inventory from the BMC", &e));
            let power = if power_off {
                Some(
                    target
                        .driver
                        .set_power(&target.endpoint, &target.uri, PowerAction::ForceOff)
                        .await
                        .map(|()| PowerState::Off)
                        .map_err(|e| failure("cannot power the server off", &e)),
                )
            } else {
                None
            };
            match (system, power) {
                // The BMC did nothing asked: a failure like any operation's.
                (Err(failure), None | Some(Err(_))) => Err(failure),
                (system, power) => Ok(BmcAnswer::Inventory { system, power }),
            }
        }),
    };
    ctx.work.start(name, operation, future);
}

/// The system's power state, as an answer.
async fn read_power(target: &SystemTarget) -> BmcResult {
    target
        .driver
        .power_state(&target.endpoint, &target.uri)
        .await
        .map(|state| BmcAnswer::Power(api_power_state(state)))
        .map_err(|e| failure("cannot read the power state", &e))
}

/// The Server's system as its BMC reported it, for a step that needs it.
enum SystemView {
    /// As the BMC's last probe, or a read just made, reported it.
    Known(Arc<System>),
    /// The BMC's last probe did not list the system.
    Absent,
    /// Being read (beside the workers): the step waits for it.
    Reading,
    /// The read failed.
    Failed(BmcFailure),
}

/// The Server's system: from the result of a read that just finished, else from the BMC's
/// last probe (the BMC reconciler's), else read now, beside the workers — only this system,
/// not the whole BMC.
fn system_view(
    server: &Server,
    system: &SystemTarget,
    ctx: &Arc<Context>,
    finished: &Option<(BmcOperation, BmcResult)>,
) -> SystemView {
    match finished {
        Some((BmcOperation::ReadSystem, Ok(BmcAnswer::System(read)))) => {
            return SystemView::Known(read.clone());
        }
        Some((BmcOperation::ReadSystem, Err(failure))) => {
            return SystemView::Failed(failure.clone());
        }
        _ => {}
    }
    let uuid = server.spec.system_uuid();
    match ctx
        .inventory
        .system(&system.bmc, &system.uri, uuid.as_deref())
    {
        Known::System(found) => SystemView::Known(found),
        Known::Absent => SystemView::Absent,
        Known::Unknown => {
            start(ctx, &server.name_any(), system, BmcOperation::ReadSystem);
            SystemView::Reading
        }
    }
}

/// The MACs of the NICs the system's OS sees, as its BMC reports them: host interfaces and
/// NICs reported disabled or absent are not expected in a probe report. `None` while the
/// system is read, or when it cannot be (the report is then judged again later).
fn expected_macs(
    server: &Server,
    system: &SystemTarget,
    ctx: &Arc<Context>,
    finished: &Option<(BmcOperation, BmcResult)>,
) -> Option<Vec<String>> {
    match system_view(server, system, ctx, finished) {
        SystemView::Known(found) => Some(system_macs(&found)),
        SystemView::Absent | SystemView::Reading | SystemView::Failed(_) => None,
    }
}

/// The MACs (lowercase) of a system's NICs that its OS sees.
fn system_macs(system: &System) -> Vec<String> {
    lowercase_macs(
        system
            .nics
            .iter()
            .filter(|nic| nic.kind == NicKind::System)
            .map(|nic| &nic.mac),
    )
}

/// One-time network boot, then power on: started beside the workers; its answer records
/// the boot on the Server.
fn request_boot(
    name: &str,
    system: &SystemTarget,
    ctx: &Arc<Context>,
    attempt: u32,
    finished: &Option<(BmcOperation, BmcResult)>,
) -> StepOutcome {
    match answer_or_start(
        ctx,
        name,
        system,
        BmcOperation::NetworkBoot { attempt },
        finished,
    ) {
        Some(Ok(_)) => {
            crate::ui::timeline::DiscoverySteps::global().record(
                name,
                crate::ui::timeline::BOOT_REQUESTED,
                k8s_openapi::jiff::Timestamp::now(),
            );
            let mut outcome = StepOutcome::wait(Duration::from_secs(30))
                .state(ServerState::Discovery)
                .discovery(
                    false,
                    conditions::REASON_BOOTING,
                    "one-time network boot set and power on requested; waiting for the probe's report",
                );
            outcome.annotations = vec![(BOOTED_ANNOTATION, Some(attempt.to_string()))];
            outcome
        }
        Some(Err(failure)) => {
            let message = format!("cannot start the discovery boot: {}", failure.message);
            StepOutcome::wait(Duration::from_secs(30))
                .state(ServerState::Discovery)
                .discovery(false, conditions::REASON_BOOT_FAILED, message.clone())
                .warning(conditions::REASON_BOOT_FAILED, message)
        }
        // Woken when the BMC answered; this is only the backstop.
        None => StepOutcome::wait(Duration::from_secs(60)),
    }
}

/// The report is complete: power off (beside the workers) if configured, then boot
/// configuration removed and Available with the power state in one status write. A BMC that
/// cannot power off does not hold the Server back (its `BMCReachable` says why).
async fn complete(
    server: &Server,
    system: &SystemTarget,
    ctx: &Arc<Context>,
    missing_nics: Vec<String>,
    finished: &Option<(BmcOperation, BmcResult)>,
) -> Result<StepOutcome, Error> {
    let name = server.name_any();
    let settings = &ctx.discovery;
    let inventory_check = if settings.inventory_cross_check {
        // The BMC's inventory is read in the operation that also powers the server off:
        // no extra BMC round, and its condition goes into this step's one status write.
        match finished {
            Some((BmcOperation::ReadInventory { .. }, result)) => InventoryCheck::judged(
                result,
                server.status.as_ref().unwrap_or(&Default::default()),
            ),
            _ => {
                let operation = BmcOperation::ReadInventory {
                    power_off: settings.power_off_after,
                };
                start(ctx, &name, system, operation);
                return Ok(StepOutcome::wait(Duration::from_secs(60)));
            }
        }
    } else {
        let powered_off = matches!(finished, Some((BmcOperation::PowerOff, _)));
        if settings.power_off_after && !powered_off {
            start(ctx, &name, system, BmcOperation::PowerOff);
            return Ok(StepOutcome::wait(Duration::from_secs(60)));
        }
        InventoryCheck::without(server.status.as_ref())
    };
    remove_boot_configuration(ctx, server).await?;
    let mut outcome = StepOutcome::wait(settings.resync).state(ServerState::Available);
    outcome.inventory_check = inventory_check;
    outcome.annotations = vec![
        (STARTED_ANNOTATION, None),
        (TICKET_ANNOTATION, None),
        (BOOTED_ANNOTATION, None),
        (RETRY_ANNOTATION, None),
    ];
    outcome.boot_configuration_ref = Some(BootConfigurationRef::Cleared);
    Ok(if missing_nics.is_empty() {
        outcome.discovery(
            true,
            conditions::REASON_DISCOVERED,
            "the probe reported every NIC the BMC knows; the server is Available",
        )
    } else {
        let message = format!(
            "the server is Available, but the probe never saw {} that the BMC lists (waited {}s after the report)",
            missing_nics.join(", "),
            settings.nic_wait.as_secs()
        );
        outcome
            .discovery(true, REASON_DISCOVERED_WITHOUT_NICS, message.clone())
            .warning(conditions::EVENT_NICS_NOT_REPORTED, message)
    })
}

/// In Available, bring the power to `spec.power`: the action runs beside the workers and
/// reads the power back; a BMC that keeps refusing is asked less and less often.
fn set_power(
    name: &str,
    system: &SystemTarget,
    ctx: &Arc<Context>,
    action: PowerAction,
    finished: &Option<(BmcOperation, BmcResult)>,
) -> StepOutcome {
    match answer_or_start(ctx, name, system, BmcOperation::SetPower(action), finished) {
        // Looked at again in 10 s to see the BMC get there.
        Some(Ok(_)) => {
            ctx.power_backoff.succeeded(name);
            StepOutcome::wait(Duration::from_secs(10))
        }
        Some(Err(failure)) => {
            let retry = ctx.power_backoff.failed(name);
            tracing::warn!(message = %failure.message, ?action, retry_in = ?retry, "cannot apply spec.power");
            StepOutcome::wait(retry)
        }
        None => StepOutcome::wait(Duration::from_secs(60)),
    }
}

/// How the claim `server` is bound to stands, and the claim while it stands: read from the
/// claim watch's cache, or from the API server when the cache does not hold it (a claim is
/// never taken for gone unread).
async fn claim_view(
    server: &Server,
    ctx: &Context,
) -> Result<(ClaimView, Option<Arc<ServerClaim>>), Error> {
    let Some(reference) = &server.spec.server_claim_ref else {
        return Ok((ClaimView::Unclaimed, None));
    };
    let claims = Api::<ServerClaim>::namespaced(ctx.client.clone(), &reference.namespace);
    Ok(
        match cached_or_get(
            &ctx.caches.server_claims,
            &claims,
            Some(&reference.namespace),
            &reference.name,
        )
        .await?
        {
            Some(claim) if claim.metadata.deletion_timestamp.is_none() => {
                (ClaimView::Present, Some(claim))
            }
            _ => (ClaimView::Gone, None),
        },
    )
}

/// Its claim is gone: power the machine off beside the workers (a slow BMC delays only this
/// Server); released once the BMC says it is off.
fn power_off_for_release(
    name: &str,
    system: &SystemTarget,
    ctx: &Arc<Context>,
    finished: &Option<(BmcOperation, BmcResult)>,
) -> StepOutcome {
    match answer_or_start(ctx, name, system, BmcOperation::PowerOff, finished) {
        // Looked at again soon: the answer carries the power state read back.
        Some(Ok(_)) => StepOutcome::wait(Duration::from_secs(5)),
        Some(Err(failure)) => {
            let retry = ctx.power_backoff.failed(name);
            tracing::warn!(message = %failure.message, retry_in = ?retry, "cannot power off the released server");
            StepOutcome::wait(retry)
        }
        None => StepOutcome::wait(Duration::from_secs(60)),
    }
}

/// Its claim is gone and the machine is off: kept `Released` (`Retain`), or unbound and
/// discovered again (`Recycle`). Either way the claim's boot configuration is no longer
/// named, and the provisioning progress goes.
fn release(retain: bool) -> StepOutcome {
    let mut outcome = if retain {
        StepOutcome::wait(Duration::from_secs(300)).state(ServerState::Released)
    } else {
        let mut outcome = StepOutcome::wait(Duration::ZERO).state(ServerState::Initial);
        outcome.clear_claim_ref = true;
        outcome
    };
    outcome.boot_configuration_ref = Some(BootConfigurationRef::Cleared);
    outcome.annotations = super::provisioning::ANNOTATIONS
        .iter()
        .map(|key| (*key, None))
        .collect();
    outcome
}

/// Nothing to do but keep `status.powerState` current: read (beside the workers) when it is
/// unknown, on its way, or older than the resync interval.
fn idle(
    name: &str,
    system: &SystemTarget,
    ctx: &Arc<Context>,
    power_state: Option<PowerState>,
) -> StepOutcome {
    let settings = &ctx.discovery;
    let settled = matches!(power_state, Some(PowerState::On | PowerState::Off));
    let interval = if settled {
        settings.resync
    } else {
        Duration::from_secs(10)
    };
    if !ctx.work.answered_within(name, interval) {
        start(ctx, name, system, BmcOperation::ReadPower);
    }
    StepOutcome::wait(interval)
}

/// Another, older Server names the same system UUID: this one is not booted.
async fn duplicate(
    server: &Server,
    ctx: &Arc<Context>,
    status: &crate::api::ServerStatus,
    message: String,
) -> Result<StepOutcome, Error> {
    let mut outcome = StepOutcome::wait(
        // The older Server may go away; look again now and then.
        Duration::from_secs(60),
    )
    .state(ServerState::Initial);
    if server.spec.boot_configuration_ref.is_some() {
        remove_boot_configuration(ctx, server).await?;
        outcome.boot_configuration_ref = Some(BootConfigurationRef::Cleared);
    }
    let already_said = status
        .conditions
        .iter()
        .any(|c| c.type_ == DISCOVERY && c.reason == REASON_DUPLICATE_SYSTEM_UUID);
    if !already_said {
        outcome = outcome.warning(REASON_DUPLICATE_SYSTEM_UUID, message.clone());
    }
    Ok(outcome.discovery(false, REASON_DUPLICATE_SYSTEM_UUID, message))
}

/// A discovery whose time ran out while its BMC cannot be called: when to retry and the
/// `DiscoveryTimedOut` message (naming why the BMC cannot be called); `None` when nothing is
/// overdue.
pub fn overdue_without_bmc(
    state: Option<ServerState>,
    progress: &Progress,
    timeout: Duration,
    now: Timestamp,
    retry_base: Duration,
    why: &str,
) -> Option<(Timestamp, String)> {
    let started = progress
        .started
        .filter(|_| state == Some(ServerState::Discovery))?;
    (after(started, timeout) <= now).then(|| {
        (
            after(now, retry_delay(retry_base, progress.attempt)),
            timed_out_without_bmc(progress.attempt, timeout, why),
        )
    })
}

/// The `DiscoveryTimedOut` message of an attempt whose BMC could not be called to power the
/// server off.
fn timed_out_without_bmc(attempt: u32, timeout: Duration, why: &str) -> String {
    format!(
        "attempt {attempt} timed out after {}s while the BMC cannot be called ({why}); the server could not be powered off",
        timeout.as_secs()
    )
}

/// Ends a discovery attempt that ran out of time: the boot configuration and its Secret are
/// deleted (which revokes the boot token), the server is powered off (beside the workers)
/// when its BMC can be called, the retry time is recorded, and the Server goes to `Error`.
async fn time_out(
    server: &Server,
    ctx: &Arc<Context>,
    system: Option<&SystemTarget>,
    retry_at: Timestamp,
    message: String,
) -> Result<StepOutcome, Error> {
    let name = server.name_any();
    remove_boot_configuration(ctx, server).await?;
    if let Some(system) = system {
        start(ctx, &name, system, BmcOperation::PowerOff);
    }
    let message = format!("{message}; retrying at {retry_at}");
    let mut outcome = StepOutcome::wait(until(retry_at))
        .state(ServerState::Error)
        .discovery(
            false,
            conditions::REASON_DISCOVERY_TIMED_OUT,
            message.clone(),
        )
        .warning(conditions::REASON_DISCOVERY_TIMED_OUT, message);
    outcome.annotations = vec![(RETRY_ANNOTATION, Some(retry_at.to_string()))];
    outcome.boot_configuration_ref = Some(BootConfigurationRef::Cleared);
    Ok(outcome)
}

/// The driver's power state in the API's terms.
fn api_power_state(state: crate::plugins::types::PowerState) -> PowerState {
    use crate::plugins::types::PowerState as Driver;
    match state {
        Driver::On => PowerState::On,
        Driver::Off => PowerState::Off,
        Driver::PoweringOn => PowerState::PoweringOn,
        Driver::PoweringOff => PowerState::PoweringOff,
        Driver::Unknown => PowerState::Unknown,
    }
}

fn until(at: Timestamp) -> Duration {
    let left = at.duration_since(Timestamp::now());
    Duration::try_from(left)
        .unwrap_or_default()
        .max(Duration::from_secs(1))
}

/// Out-of-band discovery: writes what the BMC reports for the system (NICs, identity and the
/// hardware inventory: CPUs, memory, storage, accelerators, BIOS version) as the Server's
/// facts and makes it Available. The system is read with the driver's `get-system` first
/// (beside the workers), since a probe leaves the inventory out.
async fn inventory(
    server: &Server,
    system: &SystemTarget,
    ctx: &Arc<Context>,
    finished: &Option<(BmcOperation, BmcResult)>,
) -> Result<StepOutcome, Error> {
    let name = server.name_any();
    let failed = |message: String| {
        Ok(StepOutcome::wait(Duration::from_secs(30))
            .discovery(false, conditions::REASON_INVENTORY_FAILED, message.clone())
            .warning(conditions::REASON_INVENTORY_FAILED, message))
    };
    let found = match system_view(server, system, ctx, finished) {
        // A probe leaves the hardware out; the driver's `get-system` reads it (once: a
        // driver that reads none is not asked again).
        SystemView::Known(found)
            if found.inventory.is_none()
                && !matches!(finished, Some((BmcOperation::ReadSystem, _))) =>
        {
            start(ctx, &name, system, BmcOperation::ReadSystem);
            return Ok(StepOutcome::wait(Duration::from_secs(60)));
        }
        SystemView::Known(found) => found,
        SystemView::Reading => return Ok(StepOutcome::wait(Duration::from_secs(60))),
        SystemView::Failed(failure) => return failed(failure.message),
        SystemView::Absent => {
            return failed(String::from(
                "the BMC no longer reports this Server's system",
            ));
        }
    };
    let facts = inventory_facts(&found);
    let message = super::hardware_facts::summary(&facts);
    crate::registry::write_facts(
        &ctx.client,
        &name,
        &facts,
        conditions::REASON_OUT_OF_BAND_INVENTORY,
        &message,
    )
    .await?;
    let mut outcome = StepOutcome::wait(ctx.discovery.resync).state(ServerState::Available);
    // No probe report to compare the BMC's inventory with.
    outcome.inventory_check = InventoryCheck::without(server.status.as_ref());
    if server.spec.boot_configuration_ref.is_some() {
        remove_boot_configuration(ctx, server).await?;
        outcome.boot_configuration_ref = Some(BootConfigurationRef::Cleared);
    }
    Ok(outcome.discovery(true, conditions::REASON_DISCOVERED_OUT_OF_BAND, message))
}

/// The Server facts a BMC's view of a system gives (see [`super::hardware_facts`]).
pub fn inventory_facts(system: &System) -> crate::api::ServerStatus {
    super::hardware_facts::facts(system)
}

/// Creates the discovery ignition (new token), boot configuration and Secret; the outcome
/// records the attempt and names the boot configuration on the Server. When discovery cannot
/// start, the outcome says why.
async fn start_discovery(
    server: &Server,
    system: &SystemTarget,
    ctx: &Arc<Context>,
    attempt: u32,
    finished: &Option<(BmcOperation, BmcResult)>,
) -> Result<StepOutcome, Error> {
    let name = server.name_any();
    let settings = &ctx.discovery;
    let cannot = |reason: &'static str, message: String| {
        Ok(StepOutcome::wait(Duration::from_secs(60))
            .discovery(false, reason, message.clone())
            .warning(reason, message))
    };
    let Some(image) = &settings.image else {
        return cannot(
            conditions::REASON_NO_DISCOVERY_IMAGE,
            String::from(
                "no discovery image is configured; start ferrometal with --discovery-image",
            ),
        );
    };
    let Some(generator) = ctx.catalog.ignition_generator() else {
        return cannot(
            conditions::REASON_NO_IGNITION_GENERATOR,
            String::from("no ignition-generator plugin is installed"),
        );
    };
    let Some(uuid) = server.spec.system_uuid() else {
        return cannot(
            conditions::REASON_SYSTEM_UUID_MISSING,
            String::from("the Server has no spec.systemUUID"),
        );
    };
    // The ignition names the system's NICs, as the BMC reports them (the system is read
    // first when the BMC was not probed since the operator started; a system that cannot be
    // read leaves them out).
    let macs = match system_view(server, system, ctx, finished) {
        SystemView::Known(found) => system_macs(&found),
        SystemView::Reading => return Ok(StepOutcome::wait(Duration::from_secs(60))),
        SystemView::Absent | SystemView::Failed(_) => Vec::new(),
    };
    let token = match crate::random_token() {
        Ok(token) => token,
        Err(error) => {
            return cannot(
                conditions::REASON_TOKEN_FAILED,
                format!("cannot read /dev/urandom: {error}"),
            );
        }
    };
    let ticket = crate::boot::index::Ticket::of(&token).fingerprint;
    let request = IgnitionRequest {
        facts: ServerFacts {
            system_uuid: uuid.to_ascii_lowercase(),
            hostname: Some(name.clone()),
            macs,
            labels: server
                .labels()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        },
        registry_url: settings.registry_url.clone(),
        boot_token: token.clone(),
        ssh_authorized_keys: settings.ssh_authorized_keys.clone(),
        settings: settings.ignition_settings.clone(),
    };
    let ignition = match generator.generate(&request).await {
        Ok(ignition) => ignition,
        Err(error) => {
            return cannot(
                conditions::REASON_IGNITION_FAILED,
                format!(
                    "the ignition generator failed: {}",
                    crate::controllers::report::first_line(&error.to_string())
                ),
            );
        }
    };
    // The Secret first, so that the boot configuration finds it when it is first evaluated
    // (the other way round, it would be marked SecretNotFound for a moment: one more read
    // and status write per discovery). Both are owned by the Server.
    let owner = server.controller_owner_ref(&()).map(|o| vec![o]);
    let secret = Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(settings.namespace.clone()),
            owner_references: owner.clone(),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            (IGNITION_KEY.to_owned(), ByteString(ignition.into_bytes())),
            (BOOT_TOKEN_KEY.to_owned(), ByteString(token.into_bytes())),
        ])),
        type_: Some(String::from("Opaque")),
        ..Secret::default()
    };
    let mut secret_value = serde_json::to_value(&secret).unwrap_or_default();
    secret_value["apiVersion"] = json!("v1");
    secret_value["kind"] = json!("Secret");
    Api::<Secret>::namespaced(ctx.client.clone(), &settings.namespace)
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&secret_value),
        )
        .await?;
    let sbc = json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1",
        "kind": "ServerBootConfiguration",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "annotations": { TYPE_ANNOTATION: "Internal" },
            "ownerReferences": owner,
        },
        "spec": {
            "serverRef": { "name": name },
            "image": image,
            "ignitionSecretRef": { "name": name },
        },
    });
    Api::<ServerBootConfiguration>::namespaced(ctx.client.clone(), &settings.namespace)
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&sbc),
        )
        .await?;
    let mut outcome = StepOutcome::wait(Duration::from_secs(30))
        .state(ServerState::Discovery)
        .discovery(
            false,
            conditions::REASON_WAITING_FOR_BOOT_CONFIGURATION,
            format!("attempt {attempt}: discovery boot configuration created with image {image}"),
        );
    let now = Timestamp::now();
    crate::ui::timeline::DiscoverySteps::global().record(
        &server.name_any(),
        crate::ui::timeline::started(attempt),
        now,
    );
    outcome.annotations = vec![
        (ATTEMPT_ANNOTATION, Some(attempt.to_string())),
        (STARTED_ANNOTATION, Some(now.to_string())),
        (TICKET_ANNOTATION, Some(ticket)),
        (BOOTED_ANNOTATION, None),
        (RETRY_ANNOTATION, None),
    ];
    outcome.boot_configuration_ref = Some(BootConfigurationRef::Discovery);
    Ok(outcome)
}

/// Deletes the discovery boot configuration and its Secret (which ends the boot token).
async fn remove_boot_configuration(ctx: &Context, server: &Server) -> Result<(), Error> {
    let namespace = &ctx.discovery.namespace;
    let name = server.name_any();
    for result in [
        Api::<ServerBootConfiguration>::namespaced(ctx.client.clone(), namespace)
            .delete(&name, &DeleteParams::default())
            .await
            .map(|_| ()),
        Api::<Secret>::namespaced(ctx.client.clone(), namespace)
            .delete(&name, &DeleteParams::default())
            .await
            .map(|_| ()),
    ] {
        match result {
            Ok(()) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// Writes a step's outcome: one merge patch of the Server's annotations and spec reference
/// (when they change), one server-side apply of its state, power state and the reconciler's
/// conditions (when they change; the registry's fields and condition are left alone), and
/// the Events of a changed `Discovery` condition.
async fn write_outcome(
    server: &Server,
    ctx: &Context,
    outcome: StepOutcome,
) -> Result<Action, Error> {
    let name = server.name_any();
    let servers = Api::<Server>::all(ctx.client.clone());
    let annotations = server.annotations();
    let mut changed_annotations = serde_json::Map::new();
    for (key, value) in &outcome.annotations {
        if annotations.get(*key) != value.as_ref() {
            changed_annotations.insert(
                (*key).to_owned(),
                value
                    .clone()
                    .map_or(serde_json::Value::Null, serde_json::Value::String),
            );
        }
    }
    let mut patch = serde_json::Map::new();
    if !changed_annotations.is_empty() {
        patch.insert(
            String::from("metadata"),
            json!({ "annotations": changed_annotations }),
        );
    }
    let current_ref = server.spec.boot_configuration_ref.as_ref();
    match &outcome.boot_configuration_ref {
        Some(BootConfigurationRef::Discovery)
            if current_ref
                .is_none_or(|r| r.name != name || r.namespace != ctx.discovery.namespace) =>
        {
            patch.insert(
                String::from("spec"),
                json!({ "bootConfigurationRef": {
                    "namespace": ctx.discovery.namespace,
                    "name": name,
                }}),
            );
        }
        Some(BootConfigurationRef::Claim(config))
            if current_ref
                .is_none_or(|r| r.name != config.name || r.namespace != config.namespace) =>
        {
            patch.insert(
                String::from("spec"),
                json!({ "bootConfigurationRef": {
                    "namespace": config.namespace,
                    "name": config.name,
                }}),
            );
        }
        Some(BootConfigurationRef::Cleared) if current_ref.is_some() => {
            patch.insert(
                String::from("spec"),
                json!({ "bootConfigurationRef": null }),
            );
        }
        _ => {}
    }
    if outcome.clear_claim_ref && server.spec.server_claim_ref.is_some() {
        let spec = patch
            .entry(String::from("spec"))
            .or_insert_with(|| json!({}));
        spec["serverClaimRef"] = serde_json::Value::Null;
    }
    if !patch.is_empty() {
        let written = servers
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::Value::Object(patch)),
            )
            .await?;
        ctx.written
            .record(&name, written.metadata.resource_version.as_deref());
    }

    let current = server.status.clone().unwrap_or_default();
    let mut owned: Vec<Condition> = current
        .conditions
        .iter()
        .filter(|c| [DISCOVERY, BMC_REACHABLE, INVENTORY_CONSISTENT].contains(&c.type_.as_str()))
        .cloned()
        .collect();
    let now = Time(Timestamp::now());
    let mut set = |kind: &str, change: &Option<ConditionChange>| {
        change.as_ref().is_some_and(|change| {
            conditions::set(
                &mut owned,
                kind,
                change.status,
                change.reason,
                &change.message,
                server.metadata.generation,
                now.clone(),
            )
        })
    };
    let discovery_changed = set(DISCOVERY, &outcome.discovery);
    let reachable_changed = set(BMC_REACHABLE, &outcome.reachable);
    let inventory_changed = match &outcome.inventory_check {
        InventoryCheck::Unchanged => false,
        InventoryCheck::Set(verdict) => conditions::set_judged(
            &mut owned,
            INVENTORY_CONSISTENT,
            verdict.status,
            verdict.reason,
            &verdict.message,
            server.metadata.generation,
            now.clone(),
        ),
        InventoryCheck::Removed => {
            let before = owned.len();
            owned.retain(|c| c.type_ != INVENTORY_CONSISTENT);
            owned.len() != before
        }
    };
    let state = outcome.state.or(current.state);
    let power_state = outcome.power_state.or(current.power_state);
    if discovery_changed
        || reachable_changed
        || inventory_changed
        || current.state != state
        || current.power_state != power_state
    {
        let mut status = serde_json::Map::new();
        if let Some(state) = state {
            status.insert(String::from("state"), json!(state));
        }
        if let Some(power_state) = power_state {
            status.insert(String::from("powerState"), json!(power_state));
        }
        status.insert(String::from("conditions"), json!(owned));
        let written =
            super::status::apply(&servers, &name, MANAGER, serde_json::Value::Object(status))
                .await?;
        // `None`: deleted meanwhile; its deletion event comes next.
        if let Some(written) = written {
            ctx.written
                .record(&name, written.metadata.resource_version.as_deref());
        }
    }
    if discovery_changed && let Some((reason, note)) = &outcome.warning {
        super::report::publish(
            &ctx.client,
            &ctx.reporter,
            &server.object_ref(&()),
            EventType::Warning,
            (reason, note),
            "Discover",
        )
        .await;
    }
    if let Some(event) = &outcome.operation_event {
        super::report::publish(
            &ctx.client,
            &ctx.reporter,
            &server.object_ref(&()),
            event.type_,
            (event.reason, &event.message),
            "Operate",
        )
        .await;
    }
    record_discovery(
        &ctx.metrics,
        &name,
        &discovery_milestones(server, &outcome, now.0),
        now.0,
    );
    Ok(Action::requeue(outcome.requeue))
}

/// What a written step outcome means for the discovery metrics (pure: `before` is the
/// Server the step was planned on).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiscoveryMilestones {
    /// The network boot of this attempt was just requested, this long after the attempt
    /// started (the end of [`DiscoveryPhase::BootConfiguration`]).
    pub boot_requested: Option<(u32, SignedDuration)>,
    /// The attempt has a report, which arrived then (the end of [`DiscoveryPhase::Boot`],
    /// timed from a boot request this process made).
    pub reported: Option<(u32, Timestamp)>,
    /// The Server just became Available in-band: how long after the report (the
    /// [`DiscoveryPhase::Completion`]) and after the attempt's start.
    pub available: Option<(Option<SignedDuration>, SignedDuration)>,
    /// The attempt just timed out.
    pub timed_out: bool,
}

/// The milestones `outcome` reaches from `before` at `now`.
pub fn discovery_milestones(
    before: &Server,
    outcome: &StepOutcome,
    now: Timestamp,
) -> DiscoveryMilestones {
    let status = before.status.as_ref();
    let state = status.and_then(|s| s.state);
    let progress = Progress::from_annotations(before.annotations());
    let reported = status
        .and_then(reported_at)
        .filter(|at| progress.reported(Some(*at)));
    let attempt = progress.attempt.to_string();
    let boot_requested = progress
        .started
        .filter(|_| !progress.boot_requested)
        .filter(|_| {
            outcome
                .annotations
                .iter()
                .any(|(key, value)| *key == BOOTED_ANNOTATION && value.as_ref() == Some(&attempt))
        })
        .map(|started| (progress.attempt, now.duration_since(started)));
    let discovering = state == Some(ServerState::Discovery);
    // In-band: an out-of-band inventory (a Server switched to it mid-discovery) is no boot.
    let discovered_in_band = outcome.discovery.as_ref().is_some_and(|change| {
        [
            conditions::REASON_DISCOVERED,
            REASON_DISCOVERED_WITHOUT_NICS,
        ]
        .contains(&change.reason)
    });
    let available = progress
        .started
        .filter(|_| discovering && discovered_in_band)
        .filter(|_| outcome.state == Some(ServerState::Available))
        .map(|started| {
            (
                reported.map(|at| now.duration_since(at)),
                now.duration_since(started),
            )
        });
    let timed_out = state != Some(ServerState::Error)
        && outcome.state == Some(ServerState::Error)
        && outcome
            .discovery
            .as_ref()
            .is_some_and(|change| change.reason == conditions::REASON_DISCOVERY_TIMED_OUT);
    DiscoveryMilestones {
        boot_requested,
        reported: reported
            .filter(|_| discovering)
            .map(|at| (progress.attempt, at)),
        available,
        timed_out,
    }
}

/// Records `milestones` of Server `name` in the discovery metrics.
fn record_discovery(
    metrics: &ControllerMetrics,
    name: &str,
    milestones: &DiscoveryMilestones,
    now: Timestamp,
) {
    if let Some((attempt, span)) = milestones.boot_requested {
        metrics.discovery_phase(DiscoveryPhase::BootConfiguration, span);
        metrics.boot_requested(name, attempt, now);
    }
    if let Some((attempt, at)) = milestones.reported
        && let Some(requested) = metrics.take_boot_request(name, attempt)
    {
        metrics.discovery_phase(DiscoveryPhase::Boot, at.duration_since(requested));
    }
    if let Some((completion, total)) = milestones.available {
        if let Some(span) = completion {
            metrics.discovery_phase(DiscoveryPhase::Completion, span);
        }
        metrics.discovered(total);
        metrics.forget_boot_request(name);
    }
    if milestones.timed_out {
        metrics.discovery_timed_out();
        metrics.forget_boot_request(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(60);

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("time")
    }

    fn observed(state: Option<ServerState>) -> Observed {
        Observed {
            state,
            progress: Progress::default(),
            boot_configuration: None,
            ticket_refused: None,
            boot_window_open: false,
            reported_at: None,
            reported_macs: Vec::new(),
            reported_sections: ReportedSections {
                cpus: true,
                memory: true,
                identity: true,
            },
            expected_macs: None,
            nic_wait: Duration::from_secs(120),
            power: None,
            power_state: Some(PowerState::Off),
            timeout: Duration::from_secs(1800),
            mode: DiscoveryMode::InBand,
            elders: Vec::new(),
            claim: ClaimView::Unclaimed,
            reclaim_policy: ReclaimPolicy::Recycle,
            now: at(100),
        }
    }

    fn discovering(attempt: u32, boot_requested: bool) -> Observed {
        Observed {
            progress: Progress {
                attempt,
                started: Some(at(0)),
                boot_requested,
                retry_at: None,
                ticket: None,
            },
            boot_configuration: Some(Some(ServerBootConfigurationState::Ready)),
            boot_window_open: true,
            ..observed(Some(ServerState::Discovery))
        }
    }

    #[test]
    fn a_refused_second_use_of_the_ticket_restarts_the_attempt_it_belongs_to() {
        let refused = |second: i64| Observed {
            ticket_refused: Some((
                at(second),
                String::from("used from 10.0.0.9, then presented again from 10.0.0.5"),
            )),
            ..discovering(3, true)
        };
        assert_eq!(
            plan(&refused(5), BASE),
            Step::RestartAfterTicketReuse {
                attempt: 4,
                message: String::from(
                    "attempt 3: used from 10.0.0.9, then presented again from 10.0.0.5"
                ),
            }
        );
        assert!(
            matches!(plan(&refused(0), BASE), Step::AwaitReport { .. }),
            "a refusal from the second the attempt started belongs to the one before"
        );
    }

    #[test]
    fn a_new_or_initial_server_starts_its_first_discovery() {
        assert_eq!(
            plan(&observed(None), BASE),
            Step::StartDiscovery { attempt: 1 }
        );
        assert_eq!(
            plan(&observed(Some(ServerState::Initial)), BASE),
            Step::StartDiscovery { attempt: 1 }
        );
        // Its start reached the annotations but not the status (a crash, a failed write):
        // started again under the same number, not counted as another attempt.
        let interrupted = Observed {
            state: Some(ServerState::Initial),
            ..discovering(2, false)
        };
        assert_eq!(
            plan(&interrupted, BASE),
            Step::StartDiscovery { attempt: 2 }
        );
    }

    #[test]
    fn discovery_waits_for_the_boot_configuration_then_boots_once() {
        let pending = Observed {
            boot_configuration: Some(Some(ServerBootConfigurationState::Error)),
            ..discovering(1, false)
        };
        assert_eq!(plan(&pending, BASE), Step::AwaitBootConfiguration);
        let unserved = Observed {
            boot_window_open: false,
            ..discovering(1, false)
        };
        assert_eq!(
            plan(&unserved, BASE),
            Step::AwaitBootWindow,
            "Ready, but the boot server does not serve the attempt yet: no power-on"
        );
        let late = Observed {
            now: at(1800),
            ..unserved
        };
        assert!(matches!(
            plan(&late, BASE),
            Step::TimeOut { message, .. } if message.contains("waiting for the boot server to serve")
        ));
        assert_eq!(plan(&discovering(1, false), BASE), Step::RequestBoot);
        assert!(matches!(
            plan(&discovering(1, true), BASE),
            Step::AwaitReport { message, reported: false, .. } if message.contains("waiting for the probe")
        ));
    }

    #[test]
    fn a_lost_boot_configuration_or_lost_progress_starts_over_with_the_same_attempt() {
        let lost = Observed {
            boot_configuration: None,
            ..discovering(2, true)
        };
        assert_eq!(plan(&lost, BASE), Step::StartDiscovery { attempt: 2 });
        let no_start = Observed {
            progress: Progress {
                attempt: 2,
                ..Progress::default()
            },
            ..observed(Some(ServerState::Discovery))
        };
        assert_eq!(plan(&no_start, BASE), Step::StartDiscovery { attempt: 2 });
    }

    #[test]
    fn a_fresh_report_with_every_nic_completes_discovery() {
        let complete = Observed {
            reported_at: Some(at(50)),
            reported_macs: vec![
                String::from("aa:00:00:00:00:01"),
                String::from("aa:00:00:00:00:02"),
            ],
            expected_macs: Some(vec![String::from("aa:00:00:00:00:01")]),
            ..discovering(1, true)
        };
        assert_eq!(
            plan(&complete, BASE),
            Step::Complete {
                missing_nics: Vec::new()
            }
        );
    }

    #[test]
    fn a_boot_configuration_maps_to_its_cluster_scoped_server() {
        let mut config: ServerBootConfiguration = serde_json::from_value(serde_json::json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1",
            "kind": "ServerBootConfiguration",
            "metadata": {"name": "s1", "namespace": "default", "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": "u0"},
                {"apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Server", "name": "s1",
                 "uid": "u1", "controller": true}
            ]},
            "spec": {"serverRef": {"name": "s1"}, "image": "i"}
        }))
        .expect("config");
        let key = owner(&config).expect("owner");
        assert_eq!(key, ObjectRef::<Server>::new("s1"));
        assert_eq!(key.namespace, None);
        config.metadata.owner_references = None;
        assert_eq!(owner(&config), None);
    }

    #[test]
    fn a_report_within_the_second_discovery_started_is_fresh() {
        // The report's condition time is the start's second, truncated.
        let started = at(7)
            .checked_add(SignedDuration::from_millis(900))
            .expect("time");
        let same_second = Observed {
            progress: Progress {
                started: Some(started),
                ..discovering(1, true).progress
            },
            reported_at: Some(at(7)),
            reported_macs: vec![String::from("aa:00:00:00:00:01")],
            expected_macs: Some(vec![String::from("aa:00:00:00:00:01")]),
            ..discovering(1, true)
        };
        assert_eq!(
            plan(&same_second, BASE),
            Step::Complete {
                missing_nics: Vec::new()
            }
        );
        let second_before = Observed {
            reported_at: Some(at(6)),
            ..same_second
        };
        assert!(matches!(
            plan(&second_before, BASE),
            Step::AwaitReport { .. }
        ));
    }

    #[test]
    fn an_old_or_incomplete_report_keeps_waiting_and_says_what_is_missing() {
        let old = Observed {
            reported_at: Some(at(-10)),
            reported_macs: vec![String::from("aa:00:00:00:00:01")],
            expected_macs: Some(vec![String::from("aa:00:00:00:00:01")]),
            ..discovering(1, true)
        };
        assert!(matches!(plan(&old, BASE), Step::AwaitReport { .. }));
        let incomplete = Observed {
            reported_at: Some(at(50)),
            reported_macs: vec![String::from("aa:00:00:00:00:01")],
            expected_macs: Some(vec![
                String::from("aa:00:00:00:00:01"),
                String::from("aa:00:00:00:00:09"),
            ]),
            ..discovering(1, true)
        };
        // Waits for the missing NIC until 120 s after the report, then completes without it
        // and says so: a NIC that never shows in the OS must not stall discovery.
        assert!(matches!(
            plan(&incomplete, BASE),
            Step::AwaitReport { message, reported: true, recheck_at: Some(due) }
                if message.contains("aa:00:00:00:00:09") && due == at(170)
        ));
        let waited = Observed {
            now: at(170),
            ..incomplete.clone()
        };
        assert_eq!(
            plan(&waited, BASE),
            Step::Complete {
                missing_nics: vec![String::from("NIC aa:00:00:00:00:09")]
            }
        );
        // Never past the discovery timeout, whatever the wait: the timeout does not win over
        // a report that only lacks NICs.
        let late_report = Observed {
            reported_at: Some(at(1790)),
            now: at(1800),
            ..incomplete
        };
        assert_eq!(
            plan(&late_report, BASE),
            Step::Complete {
                missing_nics: vec![String::from("NIC aa:00:00:00:00:09")]
            }
        );
    }

    #[test]
    fn a_report_without_cpus_memory_or_identity_is_not_complete() {
        let partial = Observed {
            reported_at: Some(at(50)),
            reported_macs: vec![String::from("aa:00:00:00:00:01")],
            reported_sections: ReportedSections {
                cpus: true,
                memory: false,
                identity: false,
            },
            expected_macs: Some(vec![String::from("aa:00:00:00:00:01")]),
            ..discovering(1, true)
        };
        assert!(matches!(
            plan(&partial, BASE),
            Step::AwaitReport { message, reported: true, recheck_at: None } if message.ends_with("without memory, DMI identity")
        ));
    }

    #[test]
    fn no_report_in_time_times_out_with_a_doubling_retry() {
        let late = Observed {
            now: at(1800),
            ..discovering(3, true)
        };
        match plan(&late, BASE) {
            Step::TimeOut { retry_at, message } => {
                assert_eq!(retry_at, at(1800 + 240), "60 s doubled twice for attempt 3");
                assert!(
                    message.contains("attempt 3 timed out after 1800s"),
                    "{message}"
                );
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
    }

    #[test]
    fn an_error_waits_for_its_retry_time_then_starts_the_next_attempt() {
        let waiting = Observed {
            progress: Progress {
                attempt: 1,
                retry_at: Some(at(200)),
                ..Progress::default()
            },
            ..observed(Some(ServerState::Error))
        };
        assert_eq!(plan(&waiting, BASE), Step::AwaitRetry { at: at(200) });
        let due = Observed {
            now: at(200),
            ..waiting
        };
        assert_eq!(plan(&due, BASE), Step::StartDiscovery { attempt: 2 });
    }

    #[test]
    fn available_servers_follow_spec_power() {
        let available = |power, state| Observed {
            power,
            power_state: Some(state),
            ..observed(Some(ServerState::Available))
        };
        assert_eq!(
            plan(&available(Some(Power::On), PowerState::Off), BASE),
            Step::SetPower(PowerAction::On)
        );
        assert_eq!(
            plan(&available(Some(Power::Off), PowerState::On), BASE),
            Step::SetPower(PowerAction::GracefulShutdown)
        );
        assert_eq!(
            plan(&available(Some(Power::On), PowerState::On), BASE),
            Step::Idle
        );
        assert_eq!(plan(&available(None, PowerState::On), BASE), Step::Idle);
        // spec.power does not drive a claimed server (its claim's power does).
        let reserved = Observed {
            power: Some(Power::On),
            claim: ClaimView::Present,
            ..observed(Some(ServerState::Reserved))
        };
        assert_eq!(plan(&reserved, BASE), Step::Provision);
    }

    #[test]
    fn out_of_band_servers_take_the_inventory_until_available() {
        for state in [
            None,
            Some(ServerState::Initial),
            Some(ServerState::Discovery),
            Some(ServerState::Error),
        ] {
            let oob = Observed {
                mode: DiscoveryMode::OutOfBand,
                ..observed(state)
            };
            assert_eq!(plan(&oob, BASE), Step::Inventory, "{state:?}");
        }
        let available = Observed {
            mode: DiscoveryMode::OutOfBand,
            ..observed(Some(ServerState::Available))
        };
        assert_eq!(plan(&available, BASE), Step::Idle);
        assert_eq!("out-of-band".parse(), Ok(DiscoveryMode::OutOfBand));
        assert!("sideways".parse::<DiscoveryMode>().is_err());
    }

    #[test]
    fn a_server_with_an_older_twin_is_not_discovered_and_names_it() {
        let elder = Claimant {
            created: Some(at(0)),
            name: String::from("bmc-a-system-0"),
            bmc: Some(String::from("bmc-a")),
        };
        for state in [
            None,
            Some(ServerState::Initial),
            Some(ServerState::Discovery),
            Some(ServerState::Error),
        ] {
            for mode in [DiscoveryMode::InBand, DiscoveryMode::OutOfBand] {
                let twin = Observed {
                    elders: vec![elder.clone()],
                    mode,
                    ..discovering(1, true)
                };
                let twin = Observed { state, ..twin };
                assert!(
                    matches!(
                        plan(&twin, BASE),
                        Step::Duplicate { message }
                            if message.contains("bmc-a-system-0 (BMC bmc-a)")
                    ),
                    "{state:?} {mode:?}"
                );
            }
        }
        // An Available Server stays as it is.
        let available = Observed {
            elders: vec![elder],
            ..observed(Some(ServerState::Available))
        };
        assert_eq!(plan(&available, BASE), Step::Idle);
    }

    #[test]
    fn a_discovery_whose_bmc_cannot_be_called_still_times_out() {
        let progress = discovering(2, true).progress;
        let timeout = Duration::from_secs(1800);
        let overdue = |state, now| {
            overdue_without_bmc(state, &progress, timeout, now, BASE, "connection refused")
        };
        assert_eq!(overdue(Some(ServerState::Discovery), at(1799)), None);
        let (retry_at, message) = overdue(Some(ServerState::Discovery), at(1800)).expect("overdue");
        assert_eq!(retry_at, at(1800 + 120), "60 s doubled once for attempt 2");
        assert!(
            message.contains("attempt 2 timed out after 1800s")
                && message.contains("(connection refused)"),
            "{message}"
        );
        for state in [
            None,
            Some(ServerState::Initial),
            Some(ServerState::Error),
            Some(ServerState::Available),
        ] {
            assert_eq!(overdue(state, at(5000)), None, "{state:?}");
        }
    }

    #[test]
    fn the_reconcilers_own_status_writes_do_not_change_what_starts_a_reconcile() {
        let condition = |type_: &str, second: i64| Condition {
            type_: type_.to_owned(),
            status: String::from("True"),
            reason: String::from("R"),
            message: String::from("m"),
            observed_generation: None,
            last_transition_time: Time(at(second)),
        };
        let mut server: Server = serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1",
            "kind": "Server",
            "metadata": { "name": "s", "generation": 1 },
            "spec": {},
        }))
        .expect("a Server");
        let before = fingerprint(&server);
        let status = server.status.get_or_insert_with(Default::default);
        status.state = Some(ServerState::Discovery);
        status.power_state = Some(PowerState::On);
        status.conditions = vec![condition(DISCOVERY, 1), condition(BMC_REACHABLE, 1)];
        assert_eq!(
            fingerprint(&server),
            before,
            "state, power and own conditions"
        );
        let status = server.status.get_or_insert_with(Default::default);
        status.conditions.push(condition(PROBE_REPORTED, 2));
        let reported = fingerprint(&server);
        assert_ne!(reported, before, "a probe report starts a reconcile");
        server
            .annotations_mut()
            .insert(TIMEOUT_ANNOTATION.to_owned(), String::from("60"));
        assert_ne!(fingerprint(&server), reported, "so does an annotation");
        server.metadata.generation = Some(2);
        assert_ne!(fingerprint(&server), reported, "and a spec change");
    }

    /// A system whose BMC lists two NICs of its own and no inventory.
    fn listed_system() -> Arc<System> {
        let nic = |mac: &str| crate::plugins::types::Nic {
            mac: mac.to_owned(),
            name: None,
            kind: NicKind::System,
            link_up: None,
        };
        Arc::new(System {
            uri: String::from("/redfish/v1/Systems/1"),
            uuid: None,
            manufacturer: None,
            model: None,
            serial: None,
            power: crate::plugins::types::PowerState::On,
            nics: vec![nic("52:54:00:00:00:01"), nic("52:54:00:00:00:02")],
            boot_targets: Vec::new(),
            boot_override: true,
            inventory: None,
        })
    }

    fn refused(message: &str) -> BmcFailure {
        BmcFailure {
            reason: conditions::REASON_CONNECTION_FAILED,
            message: message.to_owned(),
        }
    }

    #[test]
    fn the_inventory_read_at_the_end_judges_the_report_or_says_why_it_cannot() {
        let report = crate::api::ServerStatus {
            network_interfaces: vec![crate::api::server::NetworkInterface {
                name: String::from("eno1"),
                mac_address: String::from("52:54:00:00:00:01"),
                ..Default::default()
            }],
            ..Default::default()
        };
        let read = Ok(BmcAnswer::Inventory {
            system: Ok(listed_system()),
            power: Some(Ok(PowerState::Off)),
        });
        let InventoryCheck::Set(verdict) = InventoryCheck::judged(&read, &report) else {
            panic!("a read is judged");
        };
        assert_eq!(
            (verdict.status, verdict.reason),
            (Some(false), conditions::REASON_INVENTORY_DIFFERS)
        );
        assert!(
            verdict.message.contains(
                "NIC 52:54:00:00:00:02 (nic1) listed by the BMC was not seen by the probe"
            ),
            "{}",
            verdict.message
        );
        for unread in [
            Ok(BmcAnswer::Inventory {
                system: Err(refused(
                    "cannot read the system's inventory from the BMC: 500",
                )),
                power: Some(Ok(PowerState::Off)),
            }),
            Err(refused(
                "cannot read the system's inventory from the BMC: 500",
            )),
        ] {
            let InventoryCheck::Set(verdict) = InventoryCheck::judged(&unread, &report) else {
                panic!("an unread inventory is said to be");
            };
            assert_eq!(
                (verdict.status, verdict.reason),
                (None, conditions::REASON_BMC_INVENTORY_UNAVAILABLE)
            );
            assert!(verdict.message.ends_with(": 500"), "{}", verdict.message);
        }
    }

    #[test]
    fn a_discovery_without_the_check_removes_only_a_condition_an_earlier_one_left() {
        assert_eq!(InventoryCheck::without(None), InventoryCheck::Unchanged);
        let mut status = crate::api::ServerStatus::default();
        assert_eq!(
            InventoryCheck::without(Some(&status)),
            InventoryCheck::Unchanged
        );
        conditions::set_judged(
            &mut status.conditions,
            INVENTORY_CONSISTENT,
            Some(true),
            conditions::REASON_CONSISTENT,
            "agree",
            None,
            Time(at(0)),
        );
        assert_eq!(status.conditions[0].status, "True");
        assert_eq!(
            InventoryCheck::without(Some(&status)),
            InventoryCheck::Removed
        );
    }

    #[test]
    fn an_inventory_read_tells_the_power_it_left_or_why_the_bmc_refused_the_power_off() {
        let mut outcome = StepOutcome::wait(Duration::ZERO);
        fold_answer(
            &mut outcome,
            &Ok(BmcAnswer::Inventory {
                system: Ok(listed_system()),
                power: Some(Ok(PowerState::Off)),
            }),
        );
        assert_eq!(outcome.power_state, Some(PowerState::Off));
        assert_eq!(outcome.reachable, Some(reachable()));
        let mut outcome = StepOutcome::wait(Duration::ZERO);
        fold_answer(
            &mut outcome,
            &Ok(BmcAnswer::Inventory {
                system: Ok(listed_system()),
                power: Some(Err(refused("cannot power the server off: 409"))),
            }),
        );
        assert_eq!(outcome.power_state, None);
        assert_eq!(
            outcome.reachable,
            Some(ConditionChange::new(
                false,
                conditions::REASON_CONNECTION_FAILED,
                "cannot power the server off: 409"
            ))
        );
        let mut outcome = StepOutcome::wait(Duration::ZERO);
        fold_answer(
            &mut outcome,
            &Ok(BmcAnswer::Inventory {
                system: Err(refused("cannot read")),
                power: None,
            }),
        );
        assert_eq!(
            (outcome.power_state, outcome.reachable),
            (None, Some(reachable()))
        );
    }

    #[test]
    fn progress_is_read_back_from_annotations() {
        let annotations = BTreeMap::from([
            (ATTEMPT_ANNOTATION.to_owned(), String::from("2")),
            (STARTED_ANNOTATION.to_owned(), at(5).to_string()),
            (BOOTED_ANNOTATION.to_owned(), String::from("1")),
        ]);
        let progress = Progress::from_annotations(&annotations);
        assert_eq!(progress.attempt, 2);
        assert_eq!(progress.started, Some(at(5)));
        assert!(
            !progress.boot_requested,
            "the boot was for the previous attempt"
        );
        assert_eq!(retry_delay(BASE, 1), BASE);
        assert_eq!(retry_delay(BASE, 30), Duration::from_secs(3600));
    }

    /// A Server in `state` in attempt 2, started at 0, with the boot requested or not and a
    /// report that arrived at `reported` (if any).
    fn milestone_server(state: ServerState, boot_requested: bool, reported: Option<i64>) -> Server {
        let mut annotations = serde_json::json!({
            ATTEMPT_ANNOTATION: "2",
            STARTED_ANNOTATION: at(0).to_string(),
        });
        if boot_requested {
            annotations[BOOTED_ANNOTATION] = serde_json::json!("2");
        }
        let conditions: Vec<serde_json::Value> = reported
            .map(|second| {
                json!({
                    "type": PROBE_REPORTED,
                    "status": "True",
                    "reason": conditions::REASON_REPORT_RECEIVED,
                    "message": "",
                    "lastTransitionTime": at(second).to_string(),
                })
            })
            .into_iter()
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1",
            "kind": "Server",
            "metadata": { "name": "s", "annotations": annotations },
            "spec": { "systemUUID": "38947555-7742-3448-3784-823347823834" },
            "status": { "state": state, "conditions": conditions },
        }))
        .expect("a Server")
    }

    #[test]
    fn the_discovery_milestones_of_an_outcome_end_their_phases_once() {
        let now = at(100);
        let wait = StepOutcome::wait(Duration::from_secs(30));
        let discovering = milestone_server(ServerState::Discovery, false, None);
        assert_eq!(
            discovery_milestones(&discovering, &wait, now),
            DiscoveryMilestones::default(),
            "nothing reached"
        );

        let mut booted = wait.clone().state(ServerState::Discovery);
        booted.annotations = vec![(BOOTED_ANNOTATION, Some(String::from("2")))];
        assert_eq!(
            discovery_milestones(&discovering, &booted, now).boot_requested,
            Some((2, SignedDuration::from_secs(100))),
            "the boot configuration phase ends at the boot request"
        );
        let already = milestone_server(ServerState::Discovery, true, None);
        assert_eq!(
            discovery_milestones(&already, &booted, now).boot_requested,
            None,
            "a boot recorded before is not counted again"
        );

        let reported = milestone_server(ServerState::Discovery, true, Some(70));
        assert_eq!(
            discovery_milestones(&reported, &wait, now),
            DiscoveryMilestones {
                reported: Some((2, at(70))),
                ..Default::default()
            }
        );
        let previous_attempts = milestone_server(ServerState::Discovery, true, Some(-10));
        assert_eq!(
            discovery_milestones(&previous_attempts, &wait, now),
            DiscoveryMilestones::default(),
            "a report of an earlier attempt ends nothing"
        );

        let available = wait.clone().state(ServerState::Available).discovery(
            true,
            conditions::REASON_DISCOVERED,
            "Available",
        );
        assert_eq!(
            discovery_milestones(&reported, &available, now).available,
            Some((
                Some(SignedDuration::from_secs(30)),
                SignedDuration::from_secs(100)
            )),
            "completion from the report, the whole discovery from the attempt's start"
        );
        let out_of_band = milestone_server(ServerState::Initial, false, None);
        assert_eq!(
            discovery_milestones(&out_of_band, &available, now).available,
            None,
            "only in-band discoveries are timed"
        );
        let inventory = wait.clone().state(ServerState::Available).discovery(
            true,
            conditions::REASON_DISCOVERED_OUT_OF_BAND,
            "out-of-band",
        );
        assert_eq!(
            discovery_milestones(&reported, &inventory, now).available,
            None,
            "a Server switched to out-of-band mid-discovery was not booted to the end"
        );

        let timed_out = wait.clone().state(ServerState::Error).discovery(
            false,
            conditions::REASON_DISCOVERY_TIMED_OUT,
            "timed out",
        );
        assert!(discovery_milestones(&discovering, &timed_out, now).timed_out);
        let in_error = milestone_server(ServerState::Error, false, None);
        assert!(
            !discovery_milestones(&in_error, &timed_out, now).timed_out,
            "a timeout is counted when it happens, not while the Server waits in Error"
        );
    }

    #[test]
    fn recorded_milestones_time_the_boot_from_this_process_request() {
        let metrics = ControllerMetrics::default();
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let booted = DiscoveryMilestones {
            boot_requested: Some((2, SignedDuration::from_secs(40))),
            ..Default::default()
        };
        record_discovery(&metrics, "s", &booted, at(40));
        let reported = DiscoveryMilestones {
            reported: Some((2, at(160))),
            ..Default::default()
        };
        record_discovery(&metrics, "s", &reported, at(165));
        record_discovery(&metrics, "s", &reported, at(170));
        record_discovery(
            &metrics,
            "s",
            &DiscoveryMilestones {
                available: Some((
                    Some(SignedDuration::from_secs(5)),
                    SignedDuration::from_secs(175),
                )),
                ..Default::default()
            },
            at(175),
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for expected in [
            "ferrometal_discovery_phase_duration_seconds_sum{phase=\"boot_configuration\"} 40.0",
            "ferrometal_discovery_phase_duration_seconds_sum{phase=\"boot\"} 120.0",
            "ferrometal_discovery_phase_duration_seconds_count{phase=\"boot\"} 1",
            "ferrometal_discovery_phase_duration_seconds_sum{phase=\"completion\"} 5.0",
            "ferrometal_discovery_duration_seconds_sum 175.0",
        ] {
            assert!(text.contains(expected), "{expected} in\n{text}");
        }
    }

    #[test]
    fn a_claimed_server_is_reserved_and_released_by_its_reclaim_policy() {
        let claimed = |state, claim, power_state, reclaim_policy| Observed {
            claim,
            power_state,
            reclaim_policy,
            ..observed(Some(state))
        };
        use ClaimView::{Gone, Present, Unclaimed};
        use ReclaimPolicy::{Recycle, Retain};
        use ServerState::{Available, Released, Reserved};
        let on = Some(PowerState::On);
        let off = Some(PowerState::Off);
        for (observed, expected) in [
            (claimed(Available, Present, off, Recycle), Step::Reserve),
            // Bound, then the claim went before the Server was Reserved: reserved first,
            // released next.
            (claimed(Available, Gone, off, Recycle), Step::Reserve),
            (claimed(Reserved, Present, on, Recycle), Step::Provision),
            (claimed(Reserved, Unclaimed, off, Recycle), Step::Unreserve),
            (
                claimed(Reserved, Gone, on, Recycle),
                Step::PowerOffForRelease,
            ),
            (
                claimed(Reserved, Gone, None, Retain),
                Step::PowerOffForRelease,
            ),
            (
                claimed(Reserved, Gone, off, Recycle),
                Step::Release { retain: false },
            ),
            (
                claimed(Reserved, Gone, off, Retain),
                Step::Release { retain: true },
            ),
            (claimed(Released, Gone, off, Retain), Step::Idle),
            (
                claimed(Released, Gone, on, Retain),
                Step::SetPower(PowerAction::GracefulShutdown),
            ),
            (claimed(Released, Unclaimed, off, Retain), Step::Rediscover),
        ] {
            assert_eq!(plan(&observed, BASE), expected, "{observed:?}");
        }
        // Recycling clears the claim reference and starts over from Initial: the next
        // owner gets facts verified after the last one.
        let recycled = release(false);
        assert_eq!(recycled.state, Some(ServerState::Initial));
        assert!(recycled.clear_claim_ref);
        let retained = release(true);
        assert_eq!(retained.state, Some(ServerState::Released));
        assert!(!retained.clear_claim_ref);
        assert_eq!(
            plan(
                &claimed(ServerState::Initial, Unclaimed, off, Recycle),
                BASE
            ),
            Step::StartDiscovery { attempt: 1 }
        );
    }

    /// Any observed state, within the ranges a Server meets (times in seconds around
    /// [`at`]'s origin).
    fn any_observed() -> impl proptest::strategy::Strategy<Value = Observed> {
        use proptest::prelude::*;
        let state = prop_oneof![
            Just(None),
            Just(Some(ServerState::Initial)),
            Just(Some(ServerState::Discovery)),
            Just(Some(ServerState::Available)),
            Just(Some(ServerState::Reserved)),
            Just(Some(ServerState::Released)),
            Just(Some(ServerState::Error)),
            Just(Some(ServerState::Parked)),
        ];
        let claim = prop_oneof![
            Just(ClaimView::Unclaimed),
            Just(ClaimView::Present),
            Just(ClaimView::Gone),
        ];
        let reclaim = prop_oneof![Just(ReclaimPolicy::Recycle), Just(ReclaimPolicy::Retain)];
        let sbc = prop_oneof![
            Just(None),
            Just(Some(None)),
            Just(Some(Some(ServerBootConfigurationState::Pending))),
            Just(Some(Some(ServerBootConfigurationState::Ready))),
            Just(Some(Some(ServerBootConfigurationState::Error))),
        ];
        let time = || proptest::option::of(0i64..4000);
        let power = proptest::option::of(prop_oneof![Just(Power::On), Just(Power::Off)]);
        let power_state = proptest::option::of(prop_oneof![
            Just(PowerState::On),
            Just(PowerState::Off),
            Just(PowerState::PoweringOn),
        ]);
        let macs = proptest::collection::vec(0u8..4, 0..4).prop_map(|macs| {
            macs.iter()
                .map(|m| format!("52:54:00:00:00:0{m}"))
                .collect()
        });
        (
            (state, 0u32..5, time(), any::<bool>(), time(), sbc),
            (time(), any::<bool>(), time(), macs.clone()),
            (
                proptest::option::of(macs),
                any::<[bool; 3]>(),
                power,
                power_state,
            ),
            (1u64..3600, any::<bool>(), any::<bool>(), 0i64..4000),
            (claim, reclaim),
        )
            .prop_map(
                |(
                    (state, attempt, started, boot_requested, retry_at, boot_configuration),
                    (refused, boot_window_open, reported, reported_macs),
                    (expected_macs, [cpus, memory, identity], power, power_state),
                    (timeout, out_of_band, elder, now),
                    (claim, reclaim_policy),
                )| Observed {
                    state,
                    progress: Progress {
                        attempt,
                        started: started.map(at),
                        boot_requested: boot_requested && attempt > 0,
                        retry_at: retry_at.map(at),
                        ticket: None,
                    },
                    boot_configuration,
                    ticket_refused: refused.map(|t| (at(t), String::from("refused"))),
                    boot_window_open,
                    reported_at: reported.map(at),
                    reported_macs,
                    reported_sections: ReportedSections {
                        cpus,
                        memory,
                        identity,
                    },
                    expected_macs,
                    nic_wait: Duration::from_secs(120),
                    power,
                    power_state,
                    timeout: Duration::from_secs(timeout),
                    mode: if out_of_band {
                        DiscoveryMode::OutOfBand
                    } else {
                        DiscoveryMode::InBand
                    },
                    elders: if elder {
                        vec![Claimant {
                            created: Some(at(0)),
                            name: String::from("elder"),
                            bmc: None,
                        }]
                    } else {
                        Vec::new()
                    },
                    claim,
                    reclaim_policy,
                    now: at(now),
                },
            )
    }

    proptest::proptest! {
        #[test]
        fn every_observed_state_plans_a_step_that_keeps_the_invariants(
            observed in any_observed()
        ) {
            let step = plan(&observed, BASE);
            let deadline = observed
                .progress
                .started
                .map(|started| after(started, observed.timeout));
            let discovering = observed.state == Some(ServerState::Discovery);
            match &step {
                // The machine is powered on for discovery only when the boot server serves
                // this attempt's configuration, once, in time, for an undisputed UUID.
                Step::RequestBoot => {
                    proptest::prop_assert!(discovering);
                    proptest::prop_assert_eq!(
                        observed.boot_configuration,
                        Some(Some(ServerBootConfigurationState::Ready))
                    );
                    proptest::prop_assert!(observed.boot_window_open);
                    proptest::prop_assert!(!observed.progress.boot_requested);
                    proptest::prop_assert!(observed.elders.is_empty());
                    proptest::prop_assert_eq!(observed.mode, DiscoveryMode::InBand);
                    proptest::prop_assert!(deadline.is_some_and(|d| observed.now < d));
                }
                Step::Complete { .. } => {
                    proptest::prop_assert!(discovering);
                    proptest::prop_assert!(observed.progress.reported(observed.reported_at));
                }
                Step::TimeOut { retry_at, .. } => {
                    proptest::prop_assert!(discovering);
                    proptest::prop_assert!(deadline.is_some_and(|d| observed.now >= d));
                    proptest::prop_assert!(*retry_at > observed.now);
                }
                // `spec.power` is applied only to an Available Server nobody claimed; a
                // Released one is kept off.
                Step::SetPower(action) if observed.state == Some(ServerState::Released) => {
                    proptest::prop_assert_eq!(*action, PowerAction::GracefulShutdown);
                    proptest::prop_assert_ne!(observed.claim, ClaimView::Unclaimed);
                }
                Step::SetPower(action) => {
                    proptest::prop_assert_eq!(observed.state, Some(ServerState::Available));
                    proptest::prop_assert_eq!(observed.claim, ClaimView::Unclaimed);
                    let wanted = match action {
                        PowerAction::On => Some(Power::On),
                        _ => Some(Power::Off),
                    };
                    proptest::prop_assert_eq!(observed.power, wanted);
                }
                Step::Reserve => {
                    proptest::prop_assert_eq!(observed.state, Some(ServerState::Available));
                    proptest::prop_assert_ne!(observed.claim, ClaimView::Unclaimed);
                }
                Step::Unreserve => {
                    proptest::prop_assert_eq!(observed.state, Some(ServerState::Reserved));
                    proptest::prop_assert_eq!(observed.claim, ClaimView::Unclaimed);
                }
                // A released machine is off before anyone else can claim it.
                Step::PowerOffForRelease => {
                    proptest::prop_assert_eq!(observed.claim, ClaimView::Gone);
                    proptest::prop_assert_ne!(observed.power_state, Some(PowerState::Off));
                }
                Step::Release { retain } => {
                    proptest::prop_assert_eq!(observed.state, Some(ServerState::Reserved));
                    proptest::prop_assert_eq!(observed.claim, ClaimView::Gone);
                    proptest::prop_assert_eq!(observed.power_state, Some(PowerState::Off));
                    proptest::prop_assert_eq!(*retain, observed.reclaim_policy == ReclaimPolicy::Retain);
                }
                Step::Provision => {
                    proptest::prop_assert_eq!(observed.state, Some(ServerState::Reserved));
                    proptest::prop_assert_eq!(observed.claim, ClaimView::Present);
                }
                Step::Rediscover => {
                    proptest::prop_assert_eq!(observed.state, Some(ServerState::Released));
                    proptest::prop_assert_eq!(observed.claim, ClaimView::Unclaimed);
                }
                Step::StartDiscovery { attempt } | Step::RestartAfterTicketReuse { attempt, .. } => {
                    proptest::prop_assert!(*attempt >= 1);
                    proptest::prop_assert!(*attempt >= observed.progress.attempt);
                    proptest::prop_assert!(observed.elders.is_empty());
                }
                Step::Duplicate { .. } => {
                    proptest::prop_assert!(!observed.elders.is_empty());
                }
                Step::Inventory => {
                    proptest::prop_assert_eq!(observed.mode, DiscoveryMode::OutOfBand);
                }
                Step::AwaitBootConfiguration
                | Step::AwaitBootWindow
                | Step::AwaitReport { .. }
                | Step::AwaitRetry { .. }
                | Step::Idle => {}
            }
            // A Server with an older namesake of its UUID is never booted or discovered.
            if !observed.elders.is_empty()
                && matches!(
                    observed.state,
                    None | Some(ServerState::Initial | ServerState::Discovery | ServerState::Error)
                )
            {
                proptest::prop_assert!(matches!(step, Step::Duplicate { .. }), "{:?}", step);
            }
        }
    }
}
