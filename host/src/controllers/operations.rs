//! The `metal.ironcore.dev/operation` annotation on a Server: one-shot requests a person (or
//! another system) makes of the Server reconciler, with metal-operator's values. This module
//! only decides; the Server reconciler asks [`plan_operation`] before its own `plan()` and
//! carries the step out.
//!
//! Precedence, as in metal-operator's `handleAnnotationOperations`:
//!
//! 1. `ignore` skips the whole reconcile ([`is_ignored`]; [`plan_operation`] leaves it alone).
//! 2. `unpark` removes the `parked` marker (and is consumed on a server that is not parked).
//! 3. A parked server (marker set) stays `Parked` and stands down; any other recognised
//!    operation is dropped with a Warning `ParkedOperationDropped` (`park` silently: it is
//!    already done).
//! 4. A `Parked` server without the marker resumes its pre-park state.
//! 5. `park` parks from a parkable state (power off first), or waits for one.
//! 6. The reset operations issue one `ComputerSystem.Reset`.
//! 7. `retry` starts the next discovery attempt of a server in `Error` at once.
//! 8. Any other value is dropped with a Warning `UnsupportedOperation`.
//!
//! Departures from metal-operator (docs/claims.md): `force-on-server` issues `On` (the
//! driver ABI has no `ForceOn`); `retry` has a meaning on a Server (metal-operator treats it
//! as unsupported there); parking is allowed during discovery too (Initial, Discovery,
//! Error), and such a server resumes through a fresh discovery attempt; the pre-park state is
//! recorded on the Server (`metal.ironcore.dev/pre-park-state`) instead of being guessed from
//! the claim reference; a deferred park is announced once, not on every pass.

use std::collections::BTreeMap;

use kube::runtime::events::EventType;

use crate::api::ServerState;
use crate::api::common::PowerState;
use crate::plugins::types::PowerAction;

/// Annotation (set by people): the operation to perform on a Server.
pub const OPERATION_ANNOTATION: &str = "metal.ironcore.dev/operation";
/// Annotation (controller-owned): the Server is parked. Its presence counts, as in
/// metal-operator; ferrometal writes [`PARKED_VALUE`].
pub const PARKED_ANNOTATION: &str = "metal.ironcore.dev/parked";
/// The value ferrometal writes into [`PARKED_ANNOTATION`].
pub const PARKED_VALUE: &str = "true";
/// Annotation (controller-owned, ferrometal's own): the state a parked Server had when it
/// was parked, so that unparking returns it there (metal-operator infers it from the claim
/// reference, which cannot tell a discovering server from an Available one).
pub const PRE_PARK_STATE_ANNOTATION: &str = "metal.ironcore.dev/pre-park-state";
/// Annotation (controller-owned): the Warning `ParkDeferred` was published for the pending
/// `park`, so it is not repeated on every pass.
pub const PARK_DEFERRED_ANNOTATION: &str = "ferrometal.dev/park-deferred";

/// Operation value: skip every reconcile of the Server while it is set.
pub const IGNORE: &str = "ignore";
/// Operation value: start the next discovery attempt of a Server in `Error` now.
pub const RETRY: &str = "retry";
/// Operation value: power the Server off and take it out of the lifecycle.
pub const PARK: &str = "park";
/// Operation value: return a parked Server to the lifecycle.
pub const UNPARK: &str = "unpark";
/// Operation value: `ComputerSystem.Reset` `GracefulRestart`.
pub const GRACEFUL_RESTART_SERVER: &str = "graceful-restart-server";
/// Operation value: `ComputerSystem.Reset` `ForceRestart`.
pub const HARD_RESTART_SERVER: &str = "hard-restart-server";
/// Operation value: `ComputerSystem.Reset` `PowerCycle`.
pub const POWER_CYCLE_SERVER: &str = "power-cycle-server";
/// Operation value: `ComputerSystem.Reset` `ForceOff`.
pub const FORCE_OFF_SERVER: &str = "force-off-server";
/// Operation value: power on (`ForceOn` in metal-operator, `On` here: the driver ABI has
/// no `ForceOn`, and `On` is what every Redfish BMC offers).
pub const FORCE_ON_SERVER: &str = "force-on-server";

/// Normal Event: the Server was powered off and parked.
pub const REASON_PARKED: &str = "Parked";
/// Normal Event: `unpark` removed the parked marker; the Server resumes on the next pass.
pub const REASON_UNPARKING: &str = "Unparking";
/// Normal Event: a Parked Server without the parked marker went back to its pre-park state.
pub const REASON_RESUMED: &str = "Resumed";
/// Warning Event (once per request): `park` waits until the Server reaches a parkable state.
pub const REASON_PARK_DEFERRED: &str = "ParkDeferred";
/// Warning Event: an operation on a parked Server was dropped.
pub const REASON_PARKED_OPERATION_DROPPED: &str = "ParkedOperationDropped";
/// Warning Event: the operation value is not one ferrometal knows; it was dropped.
pub const REASON_UNSUPPORTED_OPERATION: &str = "UnsupportedOperation";
/// Normal Event: a reset operation was accepted by the BMC.
pub const REASON_OPERATION_COMPLETED: &str = "OperationCompleted";
/// Warning Event: the BMC refused a reset operation (or could not be called); it is tried
/// again on the next pass.
pub const REASON_OPERATION_FAILED: &str = "OperationFailed";
/// Normal Event: `retry` started the next discovery attempt of a Server in `Error`.
pub const REASON_DISCOVERY_RETRIED: &str = "DiscoveryRetried";
/// Warning Event: `retry` on a Server that is not in `Error`; it was dropped.
pub const REASON_RETRY_NOT_APPLICABLE: &str = "RetryNotApplicable";

/// The states a Server can be parked from: metal-operator's (Available, Reserved) and the
/// discovery states, so that a server can be parked to fix its firmware settings before it
/// is discovered (metal-operator #1119).
pub const PARKABLE_STATES: [ServerState; 5] = [
    ServerState::Initial,
    ServerState::Discovery,
    ServerState::Error,
    ServerState::Available,
    ServerState::Reserved,
];

/// A reset operation: one `ComputerSystem.Reset` of the Server's system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResetOperation {
    /// `graceful-restart-server`.
    GracefulRestart,
    /// `hard-restart-server`.
    HardRestart,
    /// `power-cycle-server`.
    PowerCycle,
    /// `force-off-server`.
    ForceOff,
    /// `force-on-server`.
    ForceOn,
}

impl ResetOperation {
    /// Every reset operation.
    pub const ALL: [ResetOperation; 5] = [
        Self::GracefulRestart,
        Self::HardRestart,
        Self::PowerCycle,
        Self::ForceOff,
        Self::ForceOn,
    ];

    /// The power action the driver is asked for.
    pub fn action(self) -> PowerAction {
        match self {
            Self::GracefulRestart => PowerAction::GracefulRestart,
            Self::HardRestart => PowerAction::ForceRestart,
            Self::PowerCycle => PowerAction::PowerCycle,
            Self::ForceOff => PowerAction::ForceOff,
            Self::ForceOn => PowerAction::On,
        }
    }

    /// The annotation value.
    pub fn value(self) -> &'static str {
        match self {
            Self::GracefulRestart => GRACEFUL_RESTART_SERVER,
            Self::HardRestart => HARD_RESTART_SERVER,
            Self::PowerCycle => POWER_CYCLE_SERVER,
            Self::ForceOff => FORCE_OFF_SERVER,
            Self::ForceOn => FORCE_ON_SERVER,
        }
    }
}

/// A parsed `metal.ironcore.dev/operation` value. Values are matched exactly, as in
/// metal-operator (`Park` is unsupported).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `ignore`.
    Ignore,
    /// `retry`.
    Retry,
    /// `park`.
    Park,
    /// `unpark`.
    Unpark,
    /// One of the reset operations.
    Reset(ResetOperation),
    /// Any other value (kept to name it in the Warning).
    Unsupported(String),
}

impl From<&str> for Operation {
    fn from(value: &str) -> Self {
        match value {
            IGNORE => Self::Ignore,
            RETRY => Self::Retry,
            PARK => Self::Park,
            UNPARK => Self::Unpark,
            other => ResetOperation::ALL
                .into_iter()
                .find(|reset| reset.value() == other)
                .map_or_else(|| Self::Unsupported(other.to_owned()), Self::Reset),
        }
    }
}

impl Operation {
    /// The annotation value.
    pub fn value(&self) -> &str {
        match self {
            Self::Ignore => IGNORE,
            Self::Retry => RETRY,
            Self::Park => PARK,
            Self::Unpark => UNPARK,
            Self::Reset(reset) => reset.value(),
            Self::Unsupported(value) => value,
        }
    }
}

/// The Server's operation, if its annotation is set and not empty (metal-operator treats an
/// empty value as none).
pub fn parse(annotations: &BTreeMap<String, String>) -> Option<Operation> {
    annotations
        .get(OPERATION_ANNOTATION)
        .filter(|value| !value.is_empty())
        .map(|value| Operation::from(value.as_str()))
}

/// Whether the Server asks to be left alone entirely (`ignore`): the reconciler must not
/// write, power or boot anything, nor call [`plan_operation`].
pub fn is_ignored(annotations: &BTreeMap<String, String>) -> bool {
    annotations.get(OPERATION_ANNOTATION).map(String::as_str) == Some(IGNORE)
}

/// Whether the parked marker is set (its presence counts, whatever its value).
pub fn is_parked(annotations: &BTreeMap<String, String>) -> bool {
    annotations.contains_key(PARKED_ANNOTATION)
}

/// The recorded pre-park state, if it is a state name.
pub fn pre_park_state(annotations: &BTreeMap<String, String>) -> Option<ServerState> {
    annotations
        .get(PRE_PARK_STATE_ANNOTATION)
        .and_then(|name| state_from_name(name))
}

/// Whether a Server in `state` (`None`: new, i.e. Initial) may be parked now.
pub fn is_parkable(state: Option<ServerState>) -> bool {
    PARKABLE_STATES.contains(&state.unwrap_or(ServerState::Initial))
}

/// A state's name as the API spells it.
pub fn state_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Initial => "Initial",
        ServerState::Discovery => "Discovery",
        ServerState::Available => "Available",
        ServerState::Reserved => "Reserved",
        ServerState::Released => "Released",
        ServerState::Error => "Error",
        ServerState::Parked => "Parked",
    }
}

fn state_from_name(name: &str) -> Option<ServerState> {
    [
        ServerState::Initial,
        ServerState::Discovery,
        ServerState::Available,
        ServerState::Reserved,
        ServerState::Released,
        ServerState::Error,
        ServerState::Parked,
    ]
    .into_iter()
    .find(|state| state_name(*state) == name)
}

/// What [`plan_operation`] decides from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OperationView {
    /// `status.state` (`None` for a new Server, treated as Initial).
    pub state: Option<ServerState>,
    /// The requested operation ([`parse`]).
    pub operation: Option<Operation>,
    /// Whether the parked marker is set ([`is_parked`]).
    pub parked: bool,
    /// The recorded pre-park state ([`pre_park_state`]).
    pub pre_park_state: Option<ServerState>,
    /// The power state the BMC reports (`None`: not known).
    pub power_state: Option<PowerState>,
    /// Whether `spec.serverClaimRef` is set.
    pub claimed: bool,
    /// Whether the `ParkDeferred` Warning was already published for the pending `park`
    /// ([`PARK_DEFERRED_ANNOTATION`] is set).
    pub park_deferred_noted: bool,
}

impl OperationView {
    /// The view of a Server with these annotations, state, power state and claim.
    pub fn of(
        annotations: &BTreeMap<String, String>,
        state: Option<ServerState>,
        power_state: Option<PowerState>,
        claimed: bool,
    ) -> Self {
        Self {
            state,
            operation: parse(annotations),
            parked: is_parked(annotations),
            pre_park_state: pre_park_state(annotations),
            power_state,
            claimed,
            park_deferred_noted: annotations.contains_key(PARK_DEFERRED_ANNOTATION),
        }
    }
}

/// An Event to publish on the Server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationEvent {
    /// Normal or Warning.
    pub type_: EventType,
    /// One of this module's `REASON_*` constants.
    pub reason: &'static str,
    /// What a person reads.
    pub message: String,
}

impl OperationEvent {
    fn normal(reason: &'static str, message: String) -> Self {
        Self {
            type_: EventType::Normal,
            reason,
            message,
        }
    }

    fn warning(reason: &'static str, message: String) -> Self {
        Self {
            type_: EventType::Warning,
            reason,
            message,
        }
    }
}

/// Writes a step asks for, in the shape of the Server reconciler's step outcome: one write
/// of the annotations, one of the state, at most one Event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Effects {
    /// Annotations to set (`Some`) or remove (`None`).
    pub annotations: Vec<(&'static str, Option<String>)>,
    /// The new `status.state` (`None`: unchanged).
    pub state: Option<ServerState>,
    /// The Event to publish.
    pub event: Option<OperationEvent>,
}

impl Effects {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.annotations.is_empty() && self.state.is_none() && self.event.is_none()
    }

    /// Whether the effects set annotation `key` (to any value).
    pub fn sets(&self, key: &str) -> bool {
        self.annotations
            .iter()
            .any(|(k, value)| *k == key && value.is_some())
    }

    /// Whether the effects remove annotation `key`.
    pub fn removes(&self, key: &str) -> bool {
        self.annotations
            .iter()
            .any(|(k, value)| *k == key && value.is_none())
    }

    fn remove(mut self, key: &'static str) -> Self {
        if !self.removes(key) {
            self.annotations.push((key, None));
        }
        self
    }
}

/// A reset to issue, and what to write after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetStep {
    /// The requested operation.
    pub operation: ResetOperation,
    /// The action the driver is asked for.
    pub action: PowerAction,
    /// Whether a stale [`PARK_DEFERRED_ANNOTATION`] goes with the request.
    pub clear_park_deferred: bool,
}

impl ResetStep {
    /// The BMC accepted the reset: the request is consumed, with a Normal Event.
    pub fn completed(&self) -> Effects {
        let effects = Effects {
            annotations: vec![(OPERATION_ANNOTATION, None)],
            state: None,
            event: Some(OperationEvent::normal(
                REASON_OPERATION_COMPLETED,
                format!(
                    "{}: the BMC accepted reset {:?}",
                    self.operation.value(),
                    self.action
                ),
            )),
        };
        if self.clear_park_deferred {
            effects.remove(PARK_DEFERRED_ANNOTATION)
        } else {
            effects
        }
    }

    /// The reset failed (`error` says why): the request stays to be tried again, with a
    /// Warning Event.
    pub fn failed(&self, error: &str) -> Effects {
        let effects = Effects {
            annotations: Vec::new(),
            state: None,
            event: Some(OperationEvent::warning(
                REASON_OPERATION_FAILED,
                format!(
                    "{}: reset {:?} failed, tried again on the next pass: {error}",
                    self.operation.value(),
                    self.action
                ),
            )),
        };
        if self.clear_park_deferred {
            effects.remove(PARK_DEFERRED_ANNOTATION)
        } else {
            effects
        }
    }
}

/// What the operation annotation asks of this pass. `None` from [`plan_operation`]: nothing,
/// go on with the normal reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationStep {
    /// Write the effects and end the pass (the write brings the next one).
    Apply(Effects),
    /// The Server is parked: end the pass without touching power, boot or state (nothing
    /// to write; look again at the resync).
    StandDown,
    /// A `park` that waits for a parkable state: write the effects (the first time the
    /// Warning and its marker, later nothing) and go on with the normal reconcile, so the
    /// Server gets to a parkable state.
    DeferPark(Effects),
    /// Parking: the Server is not off; ask the BMC for `action` and look again soon
    /// (nothing is written; asking again while the BMC is slow is harmless).
    PowerOffForParking {
        /// `GracefulShutdown` where an owner's OS may run (Available, Reserved),
        /// `ForceOff` where only the discovery image does or the system is paused.
        action: PowerAction,
    },
    /// Parking: the Server is powering off; look again soon.
    AwaitPowerOff,
    /// Issue the reset, then write [`ResetStep::completed`] or [`ResetStep::failed`], and
    /// end the pass.
    Reset(ResetStep),
}

/// Decides what the operation annotation (and the parked marker) ask of this pass; pure
/// (the module documentation gives the precedence, the tests every case).
pub fn plan_operation(view: &OperationView) -> Option<OperationStep> {
    let step = decide(view);
    // The deferral marker belongs to a pending `park` only; anything else clears it (but
    // `ignore` writes nothing at all).
    if !view.park_deferred_noted || view.operation == Some(Operation::Ignore) {
        return step;
    }
    match step {
        Some(
            OperationStep::DeferPark(_)
            | OperationStep::PowerOffForParking { .. }
            | OperationStep::AwaitPowerOff,
        ) => step,
        Some(OperationStep::Apply(effects)) => Some(OperationStep::Apply(
            effects.remove(PARK_DEFERRED_ANNOTATION),
        )),
        Some(OperationStep::Reset(reset)) => Some(OperationStep::Reset(ResetStep {
            clear_park_deferred: true,
            ..reset
        })),
        Some(OperationStep::StandDown) | None => Some(OperationStep::Apply(
            Effects::default().remove(PARK_DEFERRED_ANNOTATION),
        )),
    }
}

fn decide(view: &OperationView) -> Option<OperationStep> {
    let state = view.state.unwrap_or(ServerState::Initial);
    let operation = view.operation.as_ref();
    if operation == Some(&Operation::Ignore) {
        return None;
    }
    if operation == Some(&Operation::Unpark) {
        let effects = Effects {
            annotations: vec![(OPERATION_ANNOTATION, None)],
            state: None,
            event: None,
        };
        if !view.parked {
            // Nothing to unpark: the request is consumed (metal-operator).
            return Some(OperationStep::Apply(effects));
        }
        return Some(OperationStep::Apply(Effects {
            event: Some(OperationEvent::normal(
                REASON_UNPARKING,
                String::from(
                    "unpark requested: the parked marker is removed and the server resumes",
                ),
            )),
            ..effects.remove(PARKED_ANNOTATION)
        }));
    }
    if view.parked {
        let restore = (state != ServerState::Parked).then_some(ServerState::Parked);
        return match operation {
            None if restore.is_none() => Some(OperationStep::StandDown),
            None => Some(OperationStep::Apply(Effects {
                annotations: Vec::new(),
                state: restore,
                event: None,
            })),
            Some(Operation::Unsupported(value)) => {
                Some(OperationStep::Apply(unsupported(value, restore)))
            }
            Some(Operation::Park) => Some(OperationStep::Apply(Effects {
                annotations: vec![(OPERATION_ANNOTATION, None)],
                state: restore,
                event: None,
            })),
            Some(other) => Some(OperationStep::Apply(Effects {
                annotations: vec![(OPERATION_ANNOTATION, None)],
                state: restore,
                event: Some(OperationEvent::warning(
                    REASON_PARKED_OPERATION_DROPPED,
                    format!(
                        "operation {:?} dropped because the server is parked; unpark it first",
                        other.value()
                    ),
                )),
            })),
        };
    }
    if state == ServerState::Parked {
        return Some(OperationStep::Apply(resume(view)));
    }
    match operation {
        None | Some(Operation::Ignore | Operation::Unpark) => None,
        Some(Operation::Park) => Some(park(view, state)),
        Some(Operation::Reset(reset)) => Some(OperationStep::Reset(ResetStep {
            operation: *reset,
            action: reset.action(),
            clear_park_deferred: false,
        })),
        Some(Operation::Retry) if state == ServerState::Error => {
            Some(OperationStep::Apply(Effects {
                annotations: vec![
                    (OPERATION_ANNOTATION, None),
                    (super::server::RETRY_ANNOTATION, None),
                ],
                state: None,
                event: Some(OperationEvent::normal(
                    REASON_DISCOVERY_RETRIED,
                    String::from("retry requested: the next discovery attempt starts now"),
                )),
            }))
        }
        Some(Operation::Retry) => Some(OperationStep::Apply(Effects {
            annotations: vec![(OPERATION_ANNOTATION, None)],
            state: None,
            event: Some(OperationEvent::warning(
                REASON_RETRY_NOT_APPLICABLE,
                format!(
                    "retry applies to a server in Error only (this one is {}); dropped",
                    state_name(state)
                ),
            )),
        })),
        Some(Operation::Unsupported(value)) => Some(OperationStep::Apply(unsupported(value, None))),
    }
}

fn unsupported(value: &str, state: Option<ServerState>) -> Effects {
    Effects {
        annotations: vec![(OPERATION_ANNOTATION, None)],
        state,
        event: Some(OperationEvent::warning(
            REASON_UNSUPPORTED_OPERATION,
            format!(
                "unsupported operation {value:?} dropped; supported: {IGNORE}, {RETRY}, {PARK}, {UNPARK}, {GRACEFUL_RESTART_SERVER}, {HARD_RESTART_SERVER}, {POWER_CYCLE_SERVER}, {FORCE_OFF_SERVER}, {FORCE_ON_SERVER}"
            ),
        )),
    }
}

/// A `park` request on a Server that is not parked and not in `Parked`.
fn park(view: &OperationView, state: ServerState) -> OperationStep {
    if !is_parkable(Some(state)) {
        if view.park_deferred_noted {
            return OperationStep::DeferPark(Effects::default());
        }
        return OperationStep::DeferPark(Effects {
            annotations: vec![(PARK_DEFERRED_ANNOTATION, Some(state_name(state).to_owned()))],
            state: None,
            event: Some(OperationEvent::warning(
                REASON_PARK_DEFERRED,
                format!(
                    "park deferred: a server in {} cannot be parked; it is parked once it reaches Initial, Discovery, Error, Available or Reserved",
                    state_name(state)
                ),
            )),
        });
    }
    match view.power_state {
        Some(PowerState::Off) => OperationStep::Apply(Effects {
            annotations: vec![
                (PARKED_ANNOTATION, Some(PARKED_VALUE.to_owned())),
                (
                    PRE_PARK_STATE_ANNOTATION,
                    Some(state_name(state).to_owned()),
                ),
                (OPERATION_ANNOTATION, None),
            ],
            state: Some(ServerState::Parked),
            event: Some(OperationEvent::normal(
                REASON_PARKED,
                format!("parked from {}, powered off", state_name(state)),
            )),
        }),
        Some(PowerState::PoweringOff) => OperationStep::AwaitPowerOff,
        Some(PowerState::Paused) => OperationStep::PowerOffForParking {
            action: PowerAction::ForceOff,
        },
        _ => OperationStep::PowerOffForParking {
            action: match state {
                ServerState::Available | ServerState::Reserved => PowerAction::GracefulShutdown,
                _ => PowerAction::ForceOff,
            },
        },
    }
}

/// A `Parked` Server whose marker is gone goes back to where it was parked from.
fn resume(view: &OperationView) -> Effects {
    let claimed_or_available = if view.claimed {
        ServerState::Reserved
    } else {
        ServerState::Available
    };
    let target = match view.pre_park_state {
        Some(ServerState::Available) => ServerState::Available,
        Some(ServerState::Reserved) => claimed_or_available,
        // A fresh discovery attempt: the facts of an interrupted one are not trusted.
        Some(ServerState::Initial | ServerState::Discovery | ServerState::Error) => {
            ServerState::Initial
        }
        // Not recorded (parked by metal-operator, or by hand): metal-operator's rule.
        Some(ServerState::Released | ServerState::Parked) | None => claimed_or_available,
    };
    Effects {
        annotations: vec![(PRE_PARK_STATE_ANNOTATION, None)],
        state: Some(target),
        event: Some(OperationEvent::normal(
            REASON_RESUMED,
            format!("resumed from Parked to {}", state_name(target)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rstest::rstest;

    use super::*;

    const STATES: [Option<ServerState>; 8] = [
        None,
        Some(ServerState::Initial),
        Some(ServerState::Discovery),
        Some(ServerState::Available),
        Some(ServerState::Reserved),
        Some(ServerState::Released),
        Some(ServerState::Error),
        Some(ServerState::Parked),
    ];

    const REASONS: [&str; 10] = [
        REASON_PARKED,
        REASON_UNPARKING,
        REASON_RESUMED,
        REASON_PARK_DEFERRED,
        REASON_PARKED_OPERATION_DROPPED,
        REASON_UNSUPPORTED_OPERATION,
        REASON_OPERATION_COMPLETED,
        REASON_OPERATION_FAILED,
        REASON_DISCOVERY_RETRIED,
        REASON_RETRY_NOT_APPLICABLE,
    ];

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn view(state: Option<ServerState>, operation: Option<&str>, parked: bool) -> OperationView {
        OperationView {
            state,
            operation: operation.map(Operation::from),
            parked,
            power_state: Some(PowerState::Off),
            ..OperationView::default()
        }
    }

    /// A step in a few characters: `-` (nothing), the Event's reason (or `write`) with
    /// `->State` for a state change, or the variant.
    fn summary(step: &Option<OperationStep>) -> String {
        let effects = |effects: &Effects| {
            let what = effects.event.as_ref().map_or(
                if effects.is_empty() {
                    "nothing"
                } else {
                    "write"
                },
                |e| e.reason,
            );
            match effects.state {
                Some(state) => format!("{what}->{}", state_name(state)),
                None => what.to_owned(),
            }
        };
        match step {
            None => String::from("-"),
            Some(OperationStep::Apply(e)) => effects(e),
            Some(OperationStep::DeferPark(e)) => format!("Defer:{}", effects(e)),
            Some(OperationStep::StandDown) => String::from("StandDown"),
            Some(OperationStep::PowerOffForParking { action }) => format!("PowerOff({action:?})"),
            Some(OperationStep::AwaitPowerOff) => String::from("AwaitPowerOff"),
            Some(OperationStep::Reset(reset)) => format!("Reset({:?})", reset.action),
        }
    }

    #[rstest]
    #[case::ignore("ignore", Operation::Ignore)]
    #[case::retry("retry", Operation::Retry)]
    #[case::park("park", Operation::Park)]
    #[case::unpark("unpark", Operation::Unpark)]
    #[case::graceful(
        "graceful-restart-server",
        Operation::Reset(ResetOperation::GracefulRestart)
    )]
    #[case::hard("hard-restart-server", Operation::Reset(ResetOperation::HardRestart))]
    #[case::cycle("power-cycle-server", Operation::Reset(ResetOperation::PowerCycle))]
    #[case::off("force-off-server", Operation::Reset(ResetOperation::ForceOff))]
    #[case::on("force-on-server", Operation::Reset(ResetOperation::ForceOn))]
    #[case::capitalised("Park", Operation::Unsupported(String::from("Park")))]
    #[case::bmc_restart(
        "graceful-restart-bmc",
        Operation::Unsupported(String::from("graceful-restart-bmc"))
    )]
    #[case::padded(" park", Operation::Unsupported(String::from(" park")))]
    fn every_value_parses_exactly(#[case] value: &str, #[case] expected: Operation) {
        assert_eq!(
            parse(&annotations(&[(OPERATION_ANNOTATION, value)])),
            Some(expected.clone())
        );
        assert_eq!(expected.value(), value, "the value round-trips");
    }

    #[test]
    fn a_missing_or_empty_annotation_is_no_operation() {
        assert_eq!(parse(&BTreeMap::new()), None);
        assert_eq!(parse(&annotations(&[(OPERATION_ANNOTATION, "")])), None);
        assert_eq!(parse(&annotations(&[("other", "park")])), None);
    }

    #[test]
    fn only_the_exact_ignore_value_ignores_the_server() {
        assert!(is_ignored(&annotations(&[(
            OPERATION_ANNOTATION,
            "ignore"
        )])));
        assert!(!is_ignored(&annotations(&[(
            OPERATION_ANNOTATION,
            "Ignore"
        )])));
        assert!(!is_ignored(&annotations(&[(OPERATION_ANNOTATION, "park")])));
        assert!(!is_ignored(&BTreeMap::new()));
    }

    #[rstest]
    #[case::graceful(ResetOperation::GracefulRestart, PowerAction::GracefulRestart)]
    #[case::hard(ResetOperation::HardRestart, PowerAction::ForceRestart)]
    #[case::cycle(ResetOperation::PowerCycle, PowerAction::PowerCycle)]
    #[case::off(ResetOperation::ForceOff, PowerAction::ForceOff)]
    #[case::on_is_on_because_the_abi_has_no_force_on(ResetOperation::ForceOn, PowerAction::On)]
    fn each_reset_operation_asks_the_driver_for_its_action(
        #[case] operation: ResetOperation,
        #[case] action: PowerAction,
    ) {
        assert_eq!(operation.action(), action);
        let step = plan_operation(&view(
            Some(ServerState::Available),
            Some(operation.value()),
            false,
        ));
        assert_eq!(
            step,
            Some(OperationStep::Reset(ResetStep {
                operation,
                action,
                clear_park_deferred: false,
            }))
        );
    }

    /// Columns: no state (new), Initial, Discovery, Available, Reserved, Released, Error,
    /// Parked. The server is not parked and Off.
    #[test]
    fn every_value_in_every_state_of_a_server_that_is_not_parked() {
        let resumed = "Resumed->Available";
        let unsupported = "UnsupportedOperation";
        let not_error = "RetryNotApplicable";
        let parks = "Parked->Parked";
        let table: [(Option<&str>, [&str; 8]); 11] = [
            (None, ["-", "-", "-", "-", "-", "-", "-", resumed]),
            (Some("ignore"), ["-"; 8]),
            (
                Some("retry"),
                [
                    not_error,
                    not_error,
                    not_error,
                    not_error,
                    not_error,
                    not_error,
                    "DiscoveryRetried",
                    resumed,
                ],
            ),
            (
                Some("park"),
                [
                    parks,
                    parks,
                    parks,
                    parks,
                    parks,
                    "Defer:ParkDeferred",
                    parks,
                    resumed,
                ],
            ),
            (Some("unpark"), ["write"; 8]),
            (
                Some("graceful-restart-server"),
                [
                    "Reset(GracefulRestart)",
                    "Reset(GracefulRestart)",
                    "Reset(GracefulRestart)",
                    "Reset(GracefulRestart)",
                    "Reset(GracefulRestart)",
                    "Reset(GracefulRestart)",
                    "Reset(GracefulRestart)",
                    resumed,
                ],
            ),
            (
                Some("hard-restart-server"),
                [
                    "Reset(ForceRestart)",
                    "Reset(ForceRestart)",
                    "Reset(ForceRestart)",
                    "Reset(ForceRestart)",
                    "Reset(ForceRestart)",
                    "Reset(ForceRestart)",
                    "Reset(ForceRestart)",
                    resumed,
                ],
            ),
            (
                Some("power-cycle-server"),
                [
                    "Reset(PowerCycle)",
                    "Reset(PowerCycle)",
                    "Reset(PowerCycle)",
                    "Reset(PowerCycle)",
                    "Reset(PowerCycle)",
                    "Reset(PowerCycle)",
                    "Reset(PowerCycle)",
                    resumed,
                ],
            ),
            (
                Some("force-off-server"),
                [
                    "Reset(ForceOff)",
                    "Reset(ForceOff)",
                    "Reset(ForceOff)",
                    "Reset(ForceOff)",
                    "Reset(ForceOff)",
                    "Reset(ForceOff)",
                    "Reset(ForceOff)",
                    resumed,
                ],
            ),
            (
                Some("force-on-server"),
                [
                    "Reset(On)",
                    "Reset(On)",
                    "Reset(On)",
                    "Reset(On)",
                    "Reset(On)",
                    "Reset(On)",
                    "Reset(On)",
                    resumed,
                ],
            ),
            (
                Some("reboot-please"),
                [
                    unsupported,
                    unsupported,
                    unsupported,
                    unsupported,
                    unsupported,
                    unsupported,
                    unsupported,
                    resumed,
                ],
            ),
        ];
        for (operation, row) in table {
            for (state, expected) in STATES.into_iter().zip(row) {
                assert_eq!(
                    summary(&plan_operation(&view(state, operation, false))),
                    expected,
                    "{operation:?} in {state:?}"
                );
            }
        }
    }

    /// A parked server stays Parked (restored if its state was lost) whatever it is asked,
    /// except to unpark.
    #[test]
    fn every_value_in_every_state_of_a_parked_server() {
        let values = [
            None,
            Some("ignore"),
            Some("retry"),
            Some("park"),
            Some("unpark"),
            Some("graceful-restart-server"),
            Some("hard-restart-server"),
            Some("power-cycle-server"),
            Some("force-off-server"),
            Some("force-on-server"),
            Some("reboot-please"),
        ];
        for operation in values {
            for state in STATES {
                let restore = if state == Some(ServerState::Parked) {
                    ""
                } else {
                    "->Parked"
                };
                let expected = match operation {
                    None if restore.is_empty() => String::from("StandDown"),
                    None => format!("write{restore}"),
                    Some("ignore") => String::from("-"),
                    Some("unpark") => String::from("Unparking"),
                    Some("park") => format!("write{restore}"),
                    Some("reboot-please") => format!("UnsupportedOperation{restore}"),
                    Some(_) => format!("ParkedOperationDropped{restore}"),
                };
                let step = plan_operation(&view(state, operation, true));
                assert_eq!(summary(&step), expected, "{operation:?} in {state:?}");
                if let Some(OperationStep::Apply(effects)) = &step {
                    assert!(
                        effects.removes(OPERATION_ANNOTATION) == operation.is_some(),
                        "{operation:?} in {state:?}: a request is consumed"
                    );
                    assert_eq!(
                        effects.removes(PARKED_ANNOTATION),
                        operation == Some("unpark")
                    );
                }
            }
        }
    }

    #[test]
    fn the_parkable_states_are_metal_operators_and_the_discovery_states() {
        let parkable: Vec<Option<ServerState>> =
            STATES.into_iter().filter(|s| is_parkable(*s)).collect();
        assert_eq!(
            parkable,
            vec![
                None,
                Some(ServerState::Initial),
                Some(ServerState::Discovery),
                Some(ServerState::Available),
                Some(ServerState::Reserved),
                Some(ServerState::Error),
            ]
        );
    }

    #[test]
    fn parking_powers_off_first_and_parks_once_off() {
        let parking = |state, power_state| {
            plan_operation(&OperationView {
                power_state,
                ..view(Some(state), Some(PARK), false)
            })
        };
        for (state, power_state, expected) in [
            (
                ServerState::Available,
                Some(PowerState::On),
                "PowerOff(GracefulShutdown)",
            ),
            (
                ServerState::Reserved,
                Some(PowerState::PoweringOn),
                "PowerOff(GracefulShutdown)",
            ),
            (
                ServerState::Reserved,
                Some(PowerState::Unknown),
                "PowerOff(GracefulShutdown)",
            ),
            (ServerState::Available, None, "PowerOff(GracefulShutdown)"),
            (
                ServerState::Available,
                Some(PowerState::Paused),
                "PowerOff(ForceOff)",
            ),
            (
                ServerState::Discovery,
                Some(PowerState::On),
                "PowerOff(ForceOff)",
            ),
            (ServerState::Initial, None, "PowerOff(ForceOff)"),
            (
                ServerState::Error,
                Some(PowerState::On),
                "PowerOff(ForceOff)",
            ),
            (
                ServerState::Reserved,
                Some(PowerState::PoweringOff),
                "AwaitPowerOff",
            ),
            (
                ServerState::Discovery,
                Some(PowerState::Off),
                "Parked->Parked",
            ),
        ] {
            assert_eq!(
                summary(&parking(state, power_state)),
                expected,
                "{state:?} {power_state:?}"
            );
        }
        assert_eq!(
            parking(ServerState::Reserved, Some(PowerState::Off)),
            Some(OperationStep::Apply(Effects {
                annotations: vec![
                    (PARKED_ANNOTATION, Some(String::from("true"))),
                    (PRE_PARK_STATE_ANNOTATION, Some(String::from("Reserved"))),
                    (OPERATION_ANNOTATION, None),
                ],
                state: Some(ServerState::Parked),
                event: Some(OperationEvent {
                    type_: EventType::Normal,
                    reason: REASON_PARKED,
                    message: String::from("parked from Reserved, powered off"),
                }),
            }))
        );
    }

    #[test]
    fn a_new_server_is_parked_as_initial() {
        let step = plan_operation(&view(None, Some(PARK), false));
        let Some(OperationStep::Apply(effects)) = step else {
            panic!("not parked: {step:?}");
        };
        assert!(
            effects
                .annotations
                .contains(&(PRE_PARK_STATE_ANNOTATION, Some(String::from("Initial"))))
        );
    }

    #[test]
    fn unparking_removes_the_marker_and_the_request_and_the_next_pass_resumes() {
        let mut annotations = annotations(&[
            (OPERATION_ANNOTATION, UNPARK),
            (PARKED_ANNOTATION, PARKED_VALUE),
            (PRE_PARK_STATE_ANNOTATION, "Available"),
        ]);
        let observe = |annotations: &BTreeMap<String, String>| {
            OperationView::of(
                annotations,
                Some(ServerState::Parked),
                Some(PowerState::Off),
                false,
            )
        };
        let Some(OperationStep::Apply(effects)) = plan_operation(&observe(&annotations)) else {
            panic!("unpark not applied");
        };
        assert!(effects.removes(OPERATION_ANNOTATION) && effects.removes(PARKED_ANNOTATION));
        assert_eq!(effects.state, None);
        assert_eq!(
            effects.event.as_ref().map(|e| (e.type_, e.reason)),
            Some((EventType::Normal, REASON_UNPARKING))
        );
        for (key, value) in &effects.annotations {
            match value {
                Some(value) => annotations.insert((*key).to_owned(), value.clone()),
                None => annotations.remove(*key),
            };
        }
        let Some(OperationStep::Apply(resumed)) = plan_operation(&observe(&annotations)) else {
            panic!("not resumed");
        };
        assert_eq!(resumed.state, Some(ServerState::Available));
        assert!(resumed.removes(PRE_PARK_STATE_ANNOTATION));
        assert_eq!(
            resumed.event.map(|e| (e.type_, e.reason, e.message)),
            Some((
                EventType::Normal,
                REASON_RESUMED,
                String::from("resumed from Parked to Available")
            ))
        );
    }

    #[rstest]
    #[case::available(Some(ServerState::Available), false, ServerState::Available)]
    #[case::available_even_if_claimed(Some(ServerState::Available), true, ServerState::Available)]
    #[case::reserved_and_still_claimed(Some(ServerState::Reserved), true, ServerState::Reserved)]
    #[case::reserved_but_released(Some(ServerState::Reserved), false, ServerState::Available)]
    #[case::initial(Some(ServerState::Initial), false, ServerState::Initial)]
    #[case::discovery_starts_afresh(Some(ServerState::Discovery), false, ServerState::Initial)]
    #[case::error_starts_afresh(Some(ServerState::Error), true, ServerState::Initial)]
    #[case::unrecorded_unclaimed(None, false, ServerState::Available)]
    #[case::unrecorded_claimed(None, true, ServerState::Reserved)]
    #[case::never_parkable(Some(ServerState::Released), false, ServerState::Available)]
    fn a_parked_server_without_the_marker_resumes_its_pre_park_state(
        #[case] pre_park_state: Option<ServerState>,
        #[case] claimed: bool,
        #[case] target: ServerState,
    ) {
        let step = plan_operation(&OperationView {
            pre_park_state,
            claimed,
            ..view(Some(ServerState::Parked), None, false)
        });
        let Some(OperationStep::Apply(effects)) = step else {
            panic!("not resumed: {step:?}");
        };
        assert_eq!(effects.state, Some(target));
        assert_eq!(effects.annotations, vec![(PRE_PARK_STATE_ANNOTATION, None)]);
    }

    #[test]
    fn a_deferred_park_is_announced_once_and_its_marker_goes_with_the_request() {
        let released = view(Some(ServerState::Released), Some(PARK), false);
        let Some(OperationStep::DeferPark(first)) = plan_operation(&released) else {
            panic!("not deferred");
        };
        assert!(first.sets(PARK_DEFERRED_ANNOTATION));
        assert!(!first.removes(OPERATION_ANNOTATION), "the request stays");
        assert_eq!(
            first.event.map(|e| (e.type_, e.reason)),
            Some((EventType::Warning, REASON_PARK_DEFERRED))
        );
        let noted = OperationView {
            park_deferred_noted: true,
            ..released
        };
        assert_eq!(
            plan_operation(&noted),
            Some(OperationStep::DeferPark(Effects::default()))
        );
        // Once parkable: powering off keeps the marker, parking removes it.
        let available_on = OperationView {
            state: Some(ServerState::Available),
            power_state: Some(PowerState::On),
            ..noted.clone()
        };
        assert_eq!(
            summary(&plan_operation(&available_on)),
            "PowerOff(GracefulShutdown)"
        );
        let available_off = OperationView {
            power_state: Some(PowerState::Off),
            ..available_on
        };
        let Some(OperationStep::Apply(parked)) = plan_operation(&available_off) else {
            panic!("not parked");
        };
        assert!(parked.removes(PARK_DEFERRED_ANNOTATION) && parked.sets(PARKED_ANNOTATION));
        // A request withdrawn or replaced takes the marker with it.
        let withdrawn = OperationView {
            operation: None,
            ..noted.clone()
        };
        assert_eq!(
            plan_operation(&withdrawn),
            Some(OperationStep::Apply(Effects {
                annotations: vec![(PARK_DEFERRED_ANNOTATION, None)],
                ..Effects::default()
            }))
        );
        let replaced = OperationView {
            operation: Some(Operation::Reset(ResetOperation::ForceOff)),
            ..noted
        };
        let Some(OperationStep::Reset(reset)) = plan_operation(&replaced) else {
            panic!("no reset");
        };
        assert!(reset.completed().removes(PARK_DEFERRED_ANNOTATION));
        assert!(reset.failed("boom").removes(PARK_DEFERRED_ANNOTATION));
    }

    #[test]
    fn a_reset_consumes_the_request_on_success_and_keeps_it_on_failure() {
        let reset = ResetStep {
            operation: ResetOperation::PowerCycle,
            action: PowerAction::PowerCycle,
            clear_park_deferred: false,
        };
        assert_eq!(
            reset.completed(),
            Effects {
                annotations: vec![(OPERATION_ANNOTATION, None)],
                state: None,
                event: Some(OperationEvent {
                    type_: EventType::Normal,
                    reason: REASON_OPERATION_COMPLETED,
                    message: String::from("power-cycle-server: the BMC accepted reset PowerCycle"),
                }),
            }
        );
        let failed = reset.failed("reset type PowerCycle is not offered");
        assert!(failed.annotations.is_empty(), "the request stays");
        let event = failed.event.expect("event");
        assert_eq!(
            (event.type_, event.reason),
            (EventType::Warning, REASON_OPERATION_FAILED)
        );
        assert!(
            event.message.contains("is not offered"),
            "{}",
            event.message
        );
    }

    #[test]
    fn retry_in_error_clears_the_wait_so_the_next_attempt_starts_now() {
        let step = plan_operation(&view(Some(ServerState::Error), Some(RETRY), false));
        let Some(OperationStep::Apply(effects)) = step else {
            panic!("no retry: {step:?}");
        };
        assert!(effects.removes(OPERATION_ANNOTATION));
        assert!(effects.removes(super::super::server::RETRY_ANNOTATION));
        assert_eq!(effects.state, None);
        let step = plan_operation(&view(Some(ServerState::Available), Some(RETRY), false));
        let Some(OperationStep::Apply(refused)) = step else {
            panic!("retry not refused: {step:?}");
        };
        assert!(refused.removes(OPERATION_ANNOTATION));
        let message = refused.event.expect("warning").message;
        assert!(message.contains("Error only"), "{message}");
    }

    #[test]
    fn an_unsupported_value_is_named_in_the_warning_and_dropped() {
        let step = plan_operation(&view(
            Some(ServerState::Available),
            Some("graceful-restart-bmc"),
            false,
        ));
        let Some(OperationStep::Apply(effects)) = step else {
            panic!("not dropped: {step:?}");
        };
        assert_eq!(effects.annotations, vec![(OPERATION_ANNOTATION, None)]);
        let event = effects.event.expect("warning");
        assert_eq!(event.type_, EventType::Warning);
        assert!(
            event.message.contains("\"graceful-restart-bmc\""),
            "{}",
            event.message
        );
    }

    #[test]
    fn the_view_reads_the_annotations() {
        let observed = OperationView::of(
            &annotations(&[
                (OPERATION_ANNOTATION, "park"),
                (PARKED_ANNOTATION, ""),
                (PRE_PARK_STATE_ANNOTATION, "Discovery"),
                (PARK_DEFERRED_ANNOTATION, "Released"),
            ]),
            Some(ServerState::Parked),
            Some(PowerState::Off),
            true,
        );
        assert_eq!(
            observed,
            OperationView {
                state: Some(ServerState::Parked),
                operation: Some(Operation::Park),
                parked: true,
                pre_park_state: Some(ServerState::Discovery),
                power_state: Some(PowerState::Off),
                claimed: true,
                park_deferred_noted: true,
            }
        );
        assert_eq!(
            pre_park_state(&annotations(&[(PRE_PARK_STATE_ANNOTATION, "Nowhere")])),
            None
        );
    }

    #[test]
    fn state_names_are_the_api_spelling() {
        for state in STATES.into_iter().flatten() {
            assert_eq!(
                serde_json::to_value(state).expect("serialise"),
                serde_json::Value::from(state_name(state))
            );
            assert_eq!(state_from_name(state_name(state)), Some(state));
        }
    }

    fn any_view() -> impl Strategy<Value = OperationView> {
        let state = proptest::sample::select(STATES.to_vec());
        let value = prop_oneof![
            Just(IGNORE.to_owned()),
            Just(RETRY.to_owned()),
            Just(PARK.to_owned()),
            Just(UNPARK.to_owned()),
            Just(GRACEFUL_RESTART_SERVER.to_owned()),
            Just(HARD_RESTART_SERVER.to_owned()),
            Just(POWER_CYCLE_SERVER.to_owned()),
            Just(FORCE_OFF_SERVER.to_owned()),
            Just(FORCE_ON_SERVER.to_owned()),
            ".{0,12}",
        ];
        let power = proptest::option::of(proptest::sample::select(vec![
            PowerState::On,
            PowerState::Off,
            PowerState::Paused,
            PowerState::PoweringOn,
            PowerState::PoweringOff,
            PowerState::Unknown,
        ]));
        (
            state.clone(),
            proptest::option::of(value),
            any::<bool>(),
            state,
            power,
            any::<[bool; 2]>(),
        )
            .prop_map(
                |(state, value, parked, pre_park_state, power_state, [claimed, noted])| {
                    OperationView {
                        state,
                        operation: value.as_deref().map(Operation::from),
                        parked,
                        pre_park_state,
                        power_state,
                        claimed,
                        park_deferred_noted: noted,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn plan_operation_never_panics_and_never_both_parks_and_resets(view in any_view()) {
            let step = plan_operation(&view);
            let effects = match &step {
                Some(OperationStep::Apply(e) | OperationStep::DeferPark(e)) => Some(e.clone()),
                Some(OperationStep::Reset(reset)) => {
                    prop_assert!(!view.parked, "a parked server is never reset");
                    prop_assert_eq!(
                        view.operation.clone(),
                        Some(Operation::Reset(reset.operation))
                    );
                    prop_assert!(!reset.completed().sets(PARKED_ANNOTATION));
                    prop_assert!(!reset.failed("x").sets(PARKED_ANNOTATION));
                    None
                }
                Some(OperationStep::PowerOffForParking { action }) => {
                    prop_assert_eq!(view.operation.clone(), Some(Operation::Park));
                    prop_assert!(matches!(
                        action,
                        PowerAction::GracefulShutdown | PowerAction::ForceOff
                    ));
                    None
                }
                Some(OperationStep::AwaitPowerOff) => {
                    prop_assert_eq!(view.operation.clone(), Some(Operation::Park));
                    None
                }
                Some(OperationStep::StandDown) => {
                    prop_assert!(view.parked);
                    None
                }
                None => None,
            };
            if view.operation == Some(Operation::Ignore) {
                prop_assert_eq!(&step, &None);
            }
            if let Some(effects) = effects {
                if effects.sets(PARKED_ANNOTATION) {
                    prop_assert_eq!(view.operation.clone(), Some(Operation::Park));
                    prop_assert_eq!(view.power_state, Some(PowerState::Off));
                    prop_assert!(is_parkable(view.state) && !view.parked);
                    prop_assert_eq!(effects.state, Some(ServerState::Parked));
                }
                if view.parked && view.operation != Some(Operation::Unpark) {
                    prop_assert!(!effects.removes(PARKED_ANNOTATION));
                    prop_assert!(effects.state.is_none_or(|s| s == ServerState::Parked));
                }
                for (key, _) in &effects.annotations {
                    let writes = effects.annotations.iter().filter(|(k, _)| k == key).count();
                    prop_assert_eq!(writes, 1, "{} written twice", key);
                }
                if let Some(event) = &effects.event {
                    prop_assert!(REASONS.contains(&event.reason), "{}", event.reason);
                }
            }
        }
    }
}
