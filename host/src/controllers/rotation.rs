//! Crash-safe, lockout-aware rotation of BMC credentials: the pure decisions.
//!
//! A rotation replaces the password in a BMCSecret (and on its BMC) with a fresh random one.
//! Everything it needs to resume after a crash is in the BMCSecret:
//!
//! 1. the new password is stored first, under [`PENDING_PASSWORD_KEY`], with the phase
//!    `pending` ([`PHASE_ANNOTATION`]): the BMC still has the current password;
//! 2. the phase becomes `setting` before the BMC is asked to change it: from then on either
//!    password may be live;
//! 3. a fresh login with the pending password verifies it; then it is committed (it becomes
//!    `password`, the pending key and phase go).
//!
//! When a restart (or a failed call) leaves the outcome of step 2 unknown, the candidates
//! are tried one login at a time, the pending one first (the change most likely went
//! through), then the current one (phase `probe-current`). Every login that might fail is
//! reserved in [`LOGINS_ANNOTATION`] *before* it is made, so a crash can only over-count:
//! the reservations within the BMC's lockout window never exceed its lockout threshold minus
//! [`LOCKOUT_MARGIN`] ([`Lockout::budget`]), and when they reach it the rotation waits until
//! the window has passed.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::plugins::accounts::AccountPolicy;

/// BMCSecret key of the password being rotated in (present only during a rotation).
pub const PENDING_PASSWORD_KEY: &str = "pending-password";
/// BMCSecret annotation: the rotation's phase and attempt (`setting 1`).
pub const PHASE_ANNOTATION: &str = "ferrometal.dev/credential-rotation-phase";
/// BMCSecret annotation: the BMC's lockout policy as the rotation uses it
/// (`<threshold> <window seconds>`), read when the rotation started.
pub const LOCKOUT_ANNOTATION: &str = "ferrometal.dev/credential-rotation-lockout";
/// BMCSecret annotation: logins that may have failed, reserved before they were made, and
/// when the last was reserved (`<count> <RFC 3339>`).
pub const LOGINS_ANNOTATION: &str = "ferrometal.dev/credential-rotation-logins";
/// BMCSecret annotation: when the last rotation was committed (RFC 3339).
pub const ROTATED_AT_ANNOTATION: &str = "ferrometal.dev/credentials-rotated-at";
/// BMCSecret annotation: when the last rotation failed or was given up (RFC 3339); the next
/// automatic one waits [`RETRY_AFTER_FAILURE`].
pub const FAILED_AT_ANNOTATION: &str = "ferrometal.dev/credential-rotation-failed-at";
/// BMCSecret annotation a person sets to `"true"` to let ferrometal rotate a BMCSecret they
/// wrote (or `"false"` to keep ferrometal from rotating one it wrote).
pub const OPT_IN_ANNOTATION: &str = "ferrometal.dev/rotate-credentials";
/// BMC annotation (metal-operator's, the same key as a Server's operations) whose value
/// [`ROTATE_OPERATION`] asks for a rotation.
pub use super::operations::OPERATION_ANNOTATION;
/// The operation that asks for a rotation now.
pub const ROTATE_OPERATION: &str = "rotate-credentials";

/// Failed logins kept in hand below the BMC's lockout threshold, for logins the rest of the
/// operator makes with a password that just changed (a call queued before the change).
pub const LOCKOUT_MARGIN: u32 = 3;
/// The threshold assumed for a BMC that publishes none.
pub const ASSUMED_THRESHOLD: u32 = 5;
/// The counter-reset window assumed for a BMC that publishes neither lockout duration nor
/// counter reset.
pub const ASSUMED_WINDOW: Duration = Duration::from_secs(30 * 60);
/// Added to the BMC's window: the longest a driver call (and so a login) may take after its
/// reservation, plus slack for clocks.
pub const WINDOW_SLACK: Duration = Duration::from_secs(70);
/// How long a failed or abandoned rotation waits before the next automatic one.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(15 * 60);
/// How long a rotation whose candidates were both refused waits before probing again.
pub const UNCERTAIN_RETRY: Duration = Duration::from_secs(60 * 60);
/// How long an operation that failed (BMC unreachable, 5xx) waits before it is retried.
pub const RETRY_AFTER_ERROR: Duration = Duration::from_secs(30);
/// Sends of one pending password before the rotation is rolled back.
pub const MAX_ATTEMPTS: u32 = 3;
/// Logins reserved in one window for a BMC whose lockout threshold is 0 (never locks): still
/// polite.
const UNLIMITED_BUDGET: u32 = 10;

/// When rotations happen on their own (on demand they always may).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only on demand.
    Off,
    /// Right after the first successful connection with the credential-database default,
    /// and then every interval if one is set.
    Onboarding,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "off" => Ok(Self::Off),
            "onboarding" => Ok(Self::Onboarding),
            other => Err(format!(
                "credential rotation {other:?} is neither off nor onboarding"
            )),
        }
    }
}

/// The operator's rotation policy (`--bmc-credential-rotation`,
/// `--bmc-credential-rotation-interval-hours`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// When rotations happen on their own.
    pub mode: Mode,
    /// Rotate again this long after the last rotation (with [`Mode::Onboarding`]); `None`:
    /// never.
    pub interval: Option<Duration>,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            mode: Mode::Off,
            interval: None,
        }
    }
}

/// Why a rotation is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The secret still holds what the credential database gave.
    Onboarding,
    /// The interval since the last rotation has passed.
    Interval,
    /// The BMC carries `metal.ironcore.dev/operation: rotate-credentials`.
    Requested,
}

impl Cause {
    /// Lower-case name for messages and logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Onboarding => "onboarding",
            Self::Interval => "interval",
            Self::Requested => "requested",
        }
    }
}

/// What decides whether (and since when) a rotation is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The operator's policy.
    pub schedule: Schedule,
    /// The BMC asks for a rotation.
    pub requested: bool,
    /// The BMC's `Ready` is `True`: the current password works.
    pub connected: bool,
    /// When the secret was created.
    pub created: Option<Timestamp>,
    /// When the last rotation was committed.
    pub rotated_at: Option<Timestamp>,
    /// When the last rotation failed.
    pub failed_at: Option<Timestamp>,
}

/// Whether a rotation is due: `Ok((cause, since))`, or `Err(next)`, when the next one is due
/// (`None`: not on its own).
pub fn due(timing: &Timing, now: Timestamp) -> Result<(Cause, Timestamp), Option<Timestamp>> {
    let backoff = timing
        .failed_at
        .map(|failed| after(failed, RETRY_AFTER_FAILURE))
        .filter(|until| *until > now);
    let scheduled = match (timing.schedule.mode, timing.rotated_at) {
        (Mode::Off, _) => None,
        (Mode::Onboarding, None) => Some((Cause::Onboarding, timing.created.unwrap_or(now))),
        (Mode::Onboarding, Some(last)) => timing
            .schedule
            .interval
            .map(|interval| (Cause::Interval, after(last, interval))),
    };
    if timing.requested {
        // A person's request is not held back by an earlier failure.
        return if timing.connected {
            Ok((Cause::Requested, now))
        } else {
            Err(None)
        };
    }
    match scheduled {
        Some((cause, since)) if since <= now && timing.connected => match backoff {
            Some(until) => Err(Some(until)),
            None => Ok((cause, since)),
        },
        Some((_, since)) => Err(Some(since.max(backoff.unwrap_or(since)))),
        None => Err(None),
    }
}

/// The BMC's lockout policy, as far as rotation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// Failed logins that lock the account; 0: never.
    pub threshold: u32,
    /// How long after a failed login the BMC may still count it (its lockout duration or
    /// counter reset, whichever is longer, plus [`WINDOW_SLACK`]).
    pub window: Duration,
}

impl Lockout {
    /// From what the BMC publishes; the worst is assumed for what it does not.
    pub fn from_policy(policy: &AccountPolicy) -> Self {
        let threshold = policy.lockout_threshold.unwrap_or(ASSUMED_THRESHOLD);
        let reset = match policy.lockout_counter_reset_enabled {
            // The counter never resets by time: keep failures apart by a day.
            Some(false) => Some(Duration::from_secs(24 * 3600)),
            _ => policy
                .lockout_counter_reset_after_seconds
                .map(Duration::from_secs),
        };
        let duration = policy
            .lockout_duration_seconds
            .filter(|seconds| *seconds > 0)
            .map(Duration::from_secs);
        let window = match (reset, duration) {
            (None, None) => ASSUMED_WINDOW,
            (reset, duration) => reset.unwrap_or_default().max(duration.unwrap_or_default()),
        };
        Self {
            threshold,
            window: window + WINDOW_SLACK,
        }
    }

    /// Failed logins a rotation may risk within one window.
    pub fn budget(self) -> u32 {
        if self.threshold == 0 {
            UNLIMITED_BUDGET
        } else {
            self.threshold.saturating_sub(LOCKOUT_MARGIN)
        }
    }

    /// The annotation value.
    pub fn encode(self) -> String {
        format!("{} {}", self.threshold, self.window.as_secs())
    }

    /// From the annotation value.
    pub fn decode(text: &str) -> Option<Self> {
        let (threshold, window) = text.split_once(' ')?;
        Some(Self {
            threshold: threshold.parse().ok()?,
            window: Duration::from_secs(window.parse().ok()?),
        })
    }
}

/// Logins reserved (made or about to be made) that may have failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Logins {
    /// How many.
    pub used: u32,
    /// When the last was reserved.
    pub last: Option<Timestamp>,
}

impl Logins {
    /// Those the BMC may still count at `now`.
    pub fn counted(self, lockout: Lockout, now: Timestamp) -> u32 {
        match self.last {
            Some(last) if after(last, lockout.window) > now => self.used,
            _ => 0,
        }
    }

    /// With one more reserved at `now`.
    pub fn reserve(self, lockout: Lockout, now: Timestamp) -> Self {
        Self {
            used: self.counted(lockout, now) + 1,
            last: Some(now),
        }
    }

    /// When the BMC counts none of them any more.
    pub fn clear_at(self, lockout: Lockout) -> Option<Timestamp> {
        self.last.map(|last| after(last, lockout.window))
    }

    /// The annotation value.
    pub fn encode(self) -> String {
        match self.last {
            Some(last) => format!("{} {last}", self.used),
            None => self.used.to_string(),
        }
    }

    /// From the annotation value (absent or unreadable: none).
    pub fn decode(text: Option<&str>) -> Self {
        let Some(text) = text else {
            return Self::default();
        };
        let (used, last) = text.split_once(' ').unwrap_or((text, ""));
        Self {
            used: used.parse().unwrap_or(0),
            last: last.parse().ok(),
        }
    }
}

/// Where a rotation stands, as stored in the BMCSecret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The pending password is stored; the BMC has not been asked to change: the current
    /// password is live.
    Pending,
    /// The BMC may have been asked to change; the pending password is tried first.
    Setting,
    /// The pending password was refused; the current one is tried next.
    ProbeCurrent,
    /// Both were refused; they are tried again after [`UNCERTAIN_RETRY`].
    Uncertain,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Setting => "setting",
            Self::ProbeCurrent => "probe-current",
            Self::Uncertain => "uncertain",
        }
    }
}

/// A rotation in progress: its phase, how many times its password was sent, and the BMC's
/// lockout policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The phase.
    pub phase: Phase,
    /// Sends of the pending password so far.
    pub attempt: u32,
    /// The BMC's lockout policy, read when the rotation started.
    pub lockout: Lockout,
}

impl Progress {
    /// The phase annotation's value.
    pub fn encode_phase(self) -> String {
        format!("{} {}", self.phase.name(), self.attempt)
    }

    /// From the phase and lockout annotations (`None` when either is unreadable: a
    /// pending password without them is treated as [`Phase::Setting`] with the assumed
    /// lockout by the caller).
    pub fn decode(phase: &str, lockout: Option<&str>) -> Self {
        let (name, attempt) = phase.split_once(' ').unwrap_or((phase, "0"));
        let phase = match name {
            "pending" => Phase::Pending,
            "probe-current" => Phase::ProbeCurrent,
            "uncertain" => Phase::Uncertain,
            // Unknown or `setting`: assume the BMC may have either password.
            _ => Phase::Setting,
        };
        Self {
            phase,
            attempt: attempt.parse().unwrap_or(MAX_ATTEMPTS),
            lockout: lockout
                .and_then(Lockout::decode)
                .unwrap_or_else(|| Lockout::from_policy(&AccountPolicy::default())),
        }
    }
}

/// Which stored password a login tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Candidate {
    /// `password`.
    Current,
    /// `pending-password`.
    Pending,
}

/// How a BMC operation of a rotation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The BMC refused the login (HTTP 401).
    Refused,
    /// The BMC refused the change itself (password rules, no such account, 4xx).
    Rejected(String),
    /// The driver or BMC cannot do it.
    Unsupported(String),
    /// Unreachable, timed out, a 5xx, a crashed plugin: whether it happened is unknown.
    Failed(String),
}

/// A BMC operation of a rotation that ended in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// The lockout policy was read with the current password.
    Policy(Result<AccountPolicy, Failure>),
    /// The pending password was sent.
    Set(Result<(), Failure>),
    /// A fresh login with a candidate.
    Verify(Candidate, Result<(), Failure>),
}

/// What the reconcile observed.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Now.
    pub now: Timestamp,
    /// `Err(why)` when this BMCSecret must not be rotated.
    pub eligible: Result<(), String>,
    /// [`due`]'s answer.
    pub due: Result<(Cause, Timestamp), Option<Timestamp>>,
    /// The rotation in progress, if any.
    pub progress: Option<Progress>,
    /// Logins reserved so far.
    pub logins: Logins,
    /// A BMC operation of the rotation (for this BMCSecret's current state) that ended.
    pub finished: Option<Finished>,
    /// A BMC operation for this BMC is running.
    pub running: bool,
}

/// Why a rotation waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitFor {
    /// A BMC operation is running.
    Operation,
    /// The reserved logins reached the budget; the BMC forgets them at this time.
    LoginBudget(Timestamp),
    /// An operation failed (the message says how); retried then.
    Retry(String, Timestamp),
    /// Both candidates were refused; probed again then.
    Uncertain(Timestamp),
}

/// The next step.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// No rotation in progress and none due; the next is due then (`None`: not on its own).
    Idle(Option<Timestamp>),
    /// Not allowed for this BMCSecret (the BMC asked for one); the message says why.
    NotEligible(String),
    /// Read the lockout policy with the current password: a rotation starts.
    Start(Cause),
    /// Store a new pending password (fitting `policy`'s rules) in phase `pending`.
    StorePending(AccountPolicy),
    /// Reserve a login, mark the phase `setting` (attempt + 1) and send the pending password.
    Send,
    /// Reserve a login and try `candidate` (phase `setting` for the pending one,
    /// `probe-current` for the current one).
    Verify(Candidate),
    /// The pending password is live: make it the current one.
    Commit,
    /// The pending password was refused: phase `probe-current`, so the current one is tried
    /// next.
    PendingRefused,
    /// The current password is live and the pending one was not taken: phase `pending`, so
    /// it is sent again.
    Resend,
    /// The current password is live: drop the pending one and record the failure.
    RollBack(String),
    /// Record that both candidates were refused (phase `uncertain`).
    GiveUp,
    /// The rotation could not start: record the failure.
    Abort(String),
    /// Nothing to do now.
    Wait(WaitFor),
}

/// Decides the next step (pure; the tests walk every transition, and a property test crashes
/// the operator at every point).
pub fn plan(observed: &Observed) -> Step {
    let now = observed.now;
    let Some(progress) = observed.progress else {
        return idle(observed);
    };
    if observed.running {
        return Step::Wait(WaitFor::Operation);
    }
    let lockout = progress.lockout;
    // What a login needs: room in the budget.
    let login = |step: Step| {
        if observed.logins.counted(lockout, now) < lockout.budget() {
            step
        } else {
            Step::Wait(WaitFor::LoginBudget(
                observed.logins.clear_at(lockout).unwrap_or(now),
            ))
        }
    };
    let retry = |message: &str| {
        Step::Wait(WaitFor::Retry(
            message.to_owned(),
            after(now, RETRY_AFTER_ERROR),
        ))
    };
    match (progress.phase, &observed.finished) {
        (Phase::Setting, Some(Finished::Set(Ok(())))) => login(Step::Verify(Candidate::Pending)),
        (Phase::Setting, Some(Finished::Set(Err(Failure::Rejected(why)))))
        | (Phase::Setting, Some(Finished::Set(Err(Failure::Unsupported(why))))) => {
            Step::RollBack(format!("the BMC refused the new password: {why}"))
        }
        (Phase::Setting, Some(Finished::Verify(Candidate::Pending, Ok(())))) => Step::Commit,
        // Stored before the next login, which may have to wait for the budget: the finding
        // must not be lost meanwhile.
        (Phase::Setting, Some(Finished::Verify(Candidate::Pending, Err(Failure::Refused)))) => {
            Step::PendingRefused
        }
        (Phase::Setting, Some(Finished::Verify(Candidate::Pending, Err(failure))))
        | (Phase::ProbeCurrent, Some(Finished::Verify(Candidate::Current, Err(failure))))
            if *failure != Failure::Refused =>
        {
            retry(&describe(failure))
        }
        (Phase::ProbeCurrent, Some(Finished::Verify(Candidate::Current, Ok(())))) => {
            if progress.attempt >= MAX_ATTEMPTS {
                Step::RollBack(format!(
                    "the BMC still takes the current password after the new one was sent {} times",
                    progress.attempt
                ))
            } else {
                Step::Resend
            }
        }
        (Phase::ProbeCurrent, Some(Finished::Verify(Candidate::Current, Err(_)))) => Step::GiveUp,
        // Nothing usable ended here (a restart, or a result of another phase).
        (Phase::Pending, _) => {
            if progress.attempt >= MAX_ATTEMPTS {
                Step::RollBack(format!(
                    "the new password was sent {} times without taking",
                    progress.attempt
                ))
            } else {
                login(Step::Send)
            }
        }
        (Phase::Setting, _) => login(Step::Verify(Candidate::Pending)),
        (Phase::ProbeCurrent, _) => login(Step::Verify(Candidate::Current)),
        (Phase::Uncertain, _) => {
            let at = after(observed.logins.last.unwrap_or(now), UNCERTAIN_RETRY);
            if at > now {
                Step::Wait(WaitFor::Uncertain(at))
            } else {
                login(Step::Verify(Candidate::Pending))
            }
        }
    }
}

/// No rotation in progress: start one when due (and allowed).
fn idle(observed: &Observed) -> Step {
    match (&observed.finished, observed.due) {
        (Some(Finished::Policy(Ok(policy))), Ok(_)) => {
            let lockout = Lockout::from_policy(policy);
            if lockout.budget() == 0 {
                Step::Abort(format!(
                    "the BMC locks an account after {} failed logins, which leaves no room for the one failed login a rotation may cost",
                    lockout.threshold
                ))
            } else {
                Step::StorePending(policy.clone())
            }
        }
        (Some(Finished::Policy(Err(failure))), Ok(_)) => Step::Abort(match failure {
            Failure::Refused => {
                String::from("the BMC refused the current credentials when the rotation started")
            }
            other => format!("cannot read the BMC's account policy: {}", describe(other)),
        }),
        (_, Ok((cause, _))) => match &observed.eligible {
            Err(why) if cause == Cause::Requested => Step::NotEligible(why.clone()),
            Err(_) => Step::Idle(None),
            Ok(()) if observed.running => Step::Wait(WaitFor::Operation),
            Ok(()) => Step::Start(cause),
        },
        (_, Err(next)) => Step::Idle(next.filter(|_| observed.eligible.is_ok())),
    }
}

fn describe(failure: &Failure) -> String {
    match failure {
        Failure::Refused => String::from("the BMC refused the login"),
        Failure::Rejected(why) | Failure::Unsupported(why) | Failure::Failed(why) => why.clone(),
    }
}

/// `time + delay`, saturating.
pub fn after(time: Timestamp, delay: Duration) -> Timestamp {
    time.checked_add(SignedDuration::try_from(delay).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// A random password that fits `policy`'s length rules (20 characters unless the BMC wants
/// fewer or more), with upper- and lower-case letters and digits, from `random` bytes
/// (rejection-sampled, so every character is uniform). `None` when `random` ran out.
pub fn password_from(policy: &AccountPolicy, random: &[u8]) -> Option<String> {
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const DIGITS: &[u8] = b"23456789";
    let mut length = 20usize;
    if let Some(max) = policy.max_password_length.filter(|max| *max > 0) {
        length = length.min(max as usize);
    }
    if let Some(min) = policy.min_password_length {
        length = length.max(min as usize);
    }
    let length = length.max(3);
    let all: Vec<u8> = [UPPER, LOWER, DIGITS].concat();
    let mut bytes = random.iter().copied();
    let mut pick = |set: &[u8]| -> Option<u8> {
        // The largest multiple of the set's size that fits a byte.
        let limit = 256 - 256 % set.len();
        bytes
            .by_ref()
            .find(|byte| usize::from(*byte) < limit)
            .map(|byte| set[usize::from(byte) % set.len()])
    };
    // One of each class at random positions, the rest from all.
    let mut chars = Vec::with_capacity(length);
    chars.push(pick(UPPER)?);
    chars.push(pick(LOWER)?);
    chars.push(pick(DIGITS)?);
    while chars.len() < length {
        chars.push(pick(&all)?);
    }
    for i in (1..chars.len()).rev() {
        let j = usize::from(pick(&all)?) % (i + 1);
        chars.swap(i, j);
    }
    String::from_utf8(chars).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("valid")
    }

    fn lockout() -> Lockout {
        Lockout {
            threshold: 10,
            window: Duration::from_secs(130),
        }
    }

    fn progress(phase: Phase, attempt: u32) -> Progress {
        Progress {
            phase,
            attempt,
            lockout: lockout(),
        }
    }

    fn observed(progress: Option<Progress>, finished: Option<Finished>) -> Observed {
        Observed {
            now: at(1000),
            eligible: Ok(()),
            due: Err(None),
            progress,
            logins: Logins::default(),
            finished,
            running: false,
        }
    }

    fn timing(mode: Mode) -> Timing {
        Timing {
            schedule: Schedule {
                mode,
                interval: Some(Duration::from_secs(3600)),
            },
            requested: false,
            connected: true,
            created: Some(at(0)),
            rotated_at: None,
            failed_at: None,
        }
    }

    #[test]
    fn onboarding_is_due_once_connected_and_then_every_interval() {
        let now = at(100);
        assert_eq!(
            due(&timing(Mode::Onboarding), now),
            Ok((Cause::Onboarding, at(0)))
        );
        assert_eq!(
            due(
                &Timing {
                    connected: false,
                    ..timing(Mode::Onboarding)
                },
                now
            ),
            Err(Some(at(0))),
            "not before the first successful connection"
        );
        let rotated = Timing {
            rotated_at: Some(at(50)),
            ..timing(Mode::Onboarding)
        };
        assert_eq!(due(&rotated, now), Err(Some(at(3650))));
        assert_eq!(due(&rotated, at(3650)), Ok((Cause::Interval, at(3650))));
        assert_eq!(due(&timing(Mode::Off), now), Err(None));
        let failed = Timing {
            failed_at: Some(at(90)),
            ..timing(Mode::Onboarding)
        };
        assert_eq!(
            due(&failed, now),
            Err(Some(after(at(90), RETRY_AFTER_FAILURE)))
        );
    }

    #[test]
    fn a_request_is_due_at_once_in_any_mode_even_after_a_failure() {
        let requested = Timing {
            requested: true,
            failed_at: Some(at(90)),
            ..timing(Mode::Off)
        };
        assert_eq!(due(&requested, at(100)), Ok((Cause::Requested, at(100))));
    }

    #[test]
    fn the_budget_keeps_a_margin_below_the_threshold_and_assumes_the_worst() {
        assert_eq!(lockout().budget(), 7);
        let unknown = Lockout::from_policy(&AccountPolicy::default());
        assert_eq!(unknown.threshold, ASSUMED_THRESHOLD);
        assert_eq!(unknown.budget(), 2);
        assert_eq!(unknown.window, ASSUMED_WINDOW + WINDOW_SLACK);
        let sim = Lockout::from_policy(&AccountPolicy {
            lockout_threshold: Some(10),
            lockout_duration_seconds: Some(60),
            lockout_counter_reset_after_seconds: Some(30),
            ..AccountPolicy::default()
        });
        assert_eq!(sim.window, Duration::from_secs(60) + WINDOW_SLACK);
        assert_eq!(Lockout::decode(&sim.encode()), Some(sim));
        let tight = Lockout::from_policy(&AccountPolicy {
            lockout_threshold: Some(3),
            ..AccountPolicy::default()
        });
        assert_eq!(tight.budget(), 0);
        assert!(matches!(
            plan(&Observed {
                due: Ok((Cause::Onboarding, at(0))),
                ..observed(
                    None,
                    Some(Finished::Policy(Ok(AccountPolicy {
                        lockout_threshold: Some(3),
                        ..AccountPolicy::default()
                    })))
                )
            }),
            Step::Abort(_)
        ));
    }

    #[test]
    fn logins_are_forgotten_after_the_window() {
        let logins = Logins::default()
            .reserve(lockout(), at(0))
            .reserve(lockout(), at(10));
        assert_eq!(logins.counted(lockout(), at(100)), 2);
        assert_eq!(logins.counted(lockout(), at(140)), 0);
        assert_eq!(logins.reserve(lockout(), at(140)).used, 1);
        assert_eq!(Logins::decode(Some(&logins.encode())), logins);
        assert_eq!(Logins::decode(None), Logins::default());
    }

    #[test]
    fn phases_survive_their_annotations() {
        for phase in [
            Phase::Pending,
            Phase::Setting,
            Phase::ProbeCurrent,
            Phase::Uncertain,
        ] {
            let stored = progress(phase, 2);
            assert_eq!(
                Progress::decode(&stored.encode_phase(), Some(&lockout().encode())),
                stored
            );
        }
        let unknown = Progress::decode("garbage", None);
        assert_eq!(unknown.phase, Phase::Setting, "unknown: either may be live");
    }

    #[rstest::rstest]
    #[case::nothing_due(Err(None), Ok(()), None, Step::Idle(None))]
    #[case::due(Ok((Cause::Onboarding, at(0))), Ok(()), None, Step::Start(Cause::Onboarding))]
    #[case::policy_read(
        Ok((Cause::Onboarding, at(0))),
        Ok(()),
        Some(Finished::Policy(Ok(AccountPolicy::default()))),
        Step::StorePending(AccountPolicy::default())
    )]
    #[case::current_refused_at_start(
        Ok((Cause::Onboarding, at(0))),
        Ok(()),
        Some(Finished::Policy(Err(Failure::Refused))),
        Step::Abort(String::from("the BMC refused the current credentials when the rotation started"))
    )]
    #[case::person_written_and_requested(
        Ok((Cause::Requested, at(0))),
        Err(String::from("written by a person")),
        None,
        Step::NotEligible(String::from("written by a person"))
    )]
    #[case::person_written_onboarding(
        Ok((Cause::Onboarding, at(0))),
        Err(String::from("written by a person")),
        None,
        Step::Idle(None)
    )]
    fn without_a_rotation_in_progress(
        #[case] due: Result<(Cause, Timestamp), Option<Timestamp>>,
        #[case] eligible: Result<(), String>,
        #[case] finished: Option<Finished>,
        #[case] expected: Step,
    ) {
        let observed = Observed {
            due,
            eligible,
            ..observed(None, finished)
        };
        assert_eq!(plan(&observed), expected);
    }

    #[rstest::rstest]
    #[case::pending_is_sent(Phase::Pending, 0, None, Step::Send)]
    #[case::pending_sent_too_often(
        Phase::Pending,
        MAX_ATTEMPTS,
        None,
        Step::RollBack(format!("the new password was sent {MAX_ATTEMPTS} times without taking"))
    )]
    #[case::sent_then_verified(Phase::Setting, 1, Some(Finished::Set(Ok(()))), Step::Verify(Candidate::Pending))]
    #[case::sent_and_refused_by_rules(
        Phase::Setting,
        1,
        Some(Finished::Set(Err(Failure::Rejected(String::from("too short"))))),
        Step::RollBack(String::from("the BMC refused the new password: too short"))
    )]
    #[case::sent_without_answer(
        Phase::Setting,
        1,
        Some(Finished::Set(Err(Failure::Failed(String::from("timeout"))))),
        Step::Verify(Candidate::Pending)
    )]
    #[case::after_a_restart_pending_first(
        Phase::Setting,
        1,
        None,
        Step::Verify(Candidate::Pending)
    )]
    #[case::pending_works(
        Phase::Setting,
        1,
        Some(Finished::Verify(Candidate::Pending, Ok(()))),
        Step::Commit
    )]
    #[case::pending_refused(
        Phase::Setting,
        1,
        Some(Finished::Verify(Candidate::Pending, Err(Failure::Refused))),
        Step::PendingRefused
    )]
    #[case::current_works(
        Phase::ProbeCurrent,
        1,
        Some(Finished::Verify(Candidate::Current, Ok(()))),
        Step::Resend
    )]
    #[case::current_works_after_the_last_attempt(
        Phase::ProbeCurrent,
        MAX_ATTEMPTS,
        Some(Finished::Verify(Candidate::Current, Ok(()))),
        Step::RollBack(format!("the BMC still takes the current password after the new one was sent {MAX_ATTEMPTS} times"))
    )]
    #[case::both_refused(
        Phase::ProbeCurrent,
        1,
        Some(Finished::Verify(Candidate::Current, Err(Failure::Refused))),
        Step::GiveUp
    )]
    #[case::after_a_restart_current_next(
        Phase::ProbeCurrent,
        1,
        None,
        Step::Verify(Candidate::Current)
    )]
    #[case::a_stale_result_is_ignored(
        Phase::Pending,
        1,
        Some(Finished::Verify(Candidate::Pending, Ok(()))),
        Step::Send
    )]
    fn with_a_rotation_in_progress(
        #[case] phase: Phase,
        #[case] attempt: u32,
        #[case] finished: Option<Finished>,
        #[case] expected: Step,
    ) {
        assert_eq!(
            plan(&observed(Some(progress(phase, attempt)), finished)),
            expected
        );
    }

    #[test]
    fn an_unreachable_bmc_is_retried_later() {
        let step = plan(&observed(
            Some(progress(Phase::Setting, 1)),
            Some(Finished::Verify(
                Candidate::Pending,
                Err(Failure::Failed(String::from("connection refused"))),
            )),
        ));
        assert_eq!(
            step,
            Step::Wait(WaitFor::Retry(
                String::from("connection refused"),
                after(at(1000), RETRY_AFTER_ERROR)
            ))
        );
    }

    #[test]
    fn a_spent_budget_waits_for_the_window_and_a_running_operation_is_awaited() {
        let spent = Logins {
            used: lockout().budget(),
            last: Some(at(990)),
        };
        let waiting = Observed {
            logins: spent,
            ..observed(Some(progress(Phase::Setting, 1)), None)
        };
        assert_eq!(
            plan(&waiting),
            Step::Wait(WaitFor::LoginBudget(after(at(990), lockout().window)))
        );
        let later = Observed {
            now: at(1200),
            ..waiting.clone()
        };
        assert_eq!(plan(&later), Step::Verify(Candidate::Pending));
        let running = Observed {
            running: true,
            ..waiting
        };
        assert_eq!(plan(&running), Step::Wait(WaitFor::Operation));
    }

    #[test]
    fn uncertain_waits_an_hour_before_probing_again() {
        let uncertain = Observed {
            logins: Logins {
                used: 2,
                last: Some(at(900)),
            },
            ..observed(Some(progress(Phase::Uncertain, 1)), None)
        };
        assert_eq!(
            plan(&uncertain),
            Step::Wait(WaitFor::Uncertain(after(at(900), UNCERTAIN_RETRY)))
        );
        let later = Observed {
            now: after(at(900), UNCERTAIN_RETRY),
            ..uncertain
        };
        assert_eq!(plan(&later), Step::Verify(Candidate::Pending));
    }

    #[test]
    fn passwords_fit_the_rules_and_mix_classes() {
        let random: Vec<u8> = (0..=255u8).cycle().take(512).collect();
        let default = password_from(&AccountPolicy::default(), &random).expect("enough");
        assert_eq!(default.len(), 20);
        assert!(default.chars().any(|c| c.is_ascii_uppercase()));
        assert!(default.chars().any(|c| c.is_ascii_lowercase()));
        assert!(default.chars().any(|c| c.is_ascii_digit()));
        let short = AccountPolicy {
            max_password_length: Some(12),
            ..AccountPolicy::default()
        };
        assert_eq!(password_from(&short, &random).expect("enough").len(), 12);
        let long = AccountPolicy {
            min_password_length: Some(24),
            ..AccountPolicy::default()
        };
        assert_eq!(password_from(&long, &random).expect("enough").len(), 24);
        assert_eq!(password_from(&AccountPolicy::default(), &[1, 2]), None);
    }

    /// A model of the BMC, the BMCSecret and the operator's memory, driven by [`plan`] with a
    /// crash (the operator's memory lost, a BMC operation in flight done or not) wherever the
    /// property test says.
    mod model {
        use super::*;

        #[derive(Debug, Clone)]
        pub struct World {
            pub now: Timestamp,
            /// The BMC's password and the times of its failed logins.
            pub bmc: String,
            pub failures: Vec<Timestamp>,
            pub reset_after: Duration,
            pub threshold: u32,
            /// The BMCSecret.
            pub current: String,
            pub pending: Option<String>,
            pub progress: Option<Progress>,
            pub logins: Logins,
            pub rotated: bool,
            pub failed: bool,
            /// The operator's memory.
            pub finished: Option<Finished>,
            pub passwords: u32,
            /// The most failed logins the BMC ever counted at once.
            pub worst: u32,
        }

        impl World {
            pub fn new(threshold: u32) -> Self {
                Self {
                    now: at(0),
                    bmc: String::from("default"),
                    failures: Vec::new(),
                    reset_after: Duration::from_secs(60),
                    threshold,
                    current: String::from("default"),
                    pending: None,
                    progress: None,
                    logins: Logins::default(),
                    rotated: false,
                    failed: false,
                    finished: None,
                    passwords: 0,
                    worst: 0,
                }
            }

            fn policy(&self) -> AccountPolicy {
                AccountPolicy {
                    lockout_threshold: Some(self.threshold),
                    lockout_duration_seconds: Some(60),
                    lockout_counter_reset_after_seconds: Some(self.reset_after.as_secs()),
                    ..AccountPolicy::default()
                }
            }

            /// A login with `password`; failures count until `reset_after` passed since the
            /// last (a success does not reset the count: the worst case).
            fn login(&mut self, password: &str) -> bool {
                if let Some(last) = self.failures.last()
                    && after(*last, self.reset_after) <= self.now
                {
                    self.failures.clear();
                }
                if password == self.bmc {
                    return true;
                }
                self.failures.push(self.now);
                self.worst = self.worst.max(self.failures.len() as u32);
                false
            }

            fn candidate(&self, candidate: Candidate) -> String {
                match candidate {
                    Candidate::Current => self.current.clone(),
                    Candidate::Pending => self.pending.clone().unwrap_or_default(),
                }
            }

            pub fn live_password_is_stored(&self) -> bool {
                self.bmc == self.current || self.pending.as_deref() == Some(&self.bmc)
            }

            pub fn done(&self) -> bool {
                self.rotated && self.progress.is_none() && self.current == self.bmc
            }

            /// One reconcile. `crash` (0 = none, 1 = before the API write, 2 = after it,
            /// 3 = during the BMC operation, which then happened, 4 = during it, which did
            /// not) says where the operator dies; `refuse_set` makes the BMC refuse a send
            /// as unreachable while still applying it.
            pub fn reconcile(&mut self, crash: u8, bmc_drops_answer: bool) {
                let observed = Observed {
                    now: self.now,
                    eligible: Ok(()),
                    due: if self.rotated {
                        Err(None)
                    } else {
                        Ok((Cause::Onboarding, at(0)))
                    },
                    progress: self.progress,
                    logins: self.logins,
                    finished: self.finished.take(),
                    running: false,
                };
                let step = plan(&observed);
                if crash == 1 {
                    return;
                }
                let lockout = self.progress.map(|p| p.lockout);
                match step {
                    Step::Idle(_) | Step::NotEligible(_) | Step::Wait(_) => {}
                    Step::Start(_) => {
                        let ok = self.login(&self.current.clone());
                        self.finished = match crash {
                            0 | 2 => Some(Finished::Policy(if ok {
                                Ok(self.policy())
                            } else {
                                Err(Failure::Refused)
                            })),
                            _ => None,
                        };
                    }
                    Step::StorePending(policy) => {
                        self.passwords += 1;
                        self.pending = Some(format!("new-{}", self.passwords));
                        self.progress = Some(Progress {
                            phase: Phase::Pending,
                            attempt: 0,
                            lockout: Lockout::from_policy(&policy),
                        });
                    }
                    Step::Send => {
                        let lockout = lockout.expect("in progress");
                        let progress = self.progress.as_mut().expect("in progress");
                        progress.phase = Phase::Setting;
                        progress.attempt += 1;
                        self.logins = self.logins.reserve(lockout, self.now);
                        if crash == 2 {
                            return;
                        }
                        let applied = crash != 4;
                        let result = if applied {
                            if self.login(&self.current.clone()) {
                                self.bmc = self.pending.clone().expect("pending");
                                Ok(())
                            } else {
                                Err(Failure::Refused)
                            }
                        } else {
                            Err(Failure::Failed(String::from("lost")))
                        };
                        if crash == 0 {
                            self.finished = Some(Finished::Set(if bmc_drops_answer {
                                Err(Failure::Failed(String::from("no answer")))
                            } else {
                                result
                            }));
                        }
                    }
                    Step::Verify(candidate) => {
                        let lockout = lockout.expect("in progress");
                        let progress = self.progress.as_mut().expect("in progress");
                        progress.phase = match candidate {
                            Candidate::Pending => Phase::Setting,
                            Candidate::Current => Phase::ProbeCurrent,
                        };
                        self.logins = self.logins.reserve(lockout, self.now);
                        if crash == 2 || crash == 4 {
                            return;
                        }
                        let ok = self.login(&self.candidate(candidate));
                        if crash == 0 {
                            self.finished = Some(Finished::Verify(
                                candidate,
                                if ok { Ok(()) } else { Err(Failure::Refused) },
                            ));
                        }
                    }
                    Step::Commit => {
                        self.current = self.pending.take().expect("pending");
                        self.progress = None;
                        self.rotated = true;
                    }
                    Step::Resend => {
                        self.progress.as_mut().expect("in progress").phase = Phase::Pending;
                    }
                    Step::PendingRefused => {
                        self.progress.as_mut().expect("in progress").phase = Phase::ProbeCurrent;
                    }
                    Step::RollBack(_) | Step::Abort(_) => {
                        self.pending = None;
                        self.progress = None;
                        self.failed = true;
                        self.rotated = true;
                    }
                    Step::GiveUp => {
                        self.progress.as_mut().expect("in progress").phase = Phase::Uncertain;
                    }
                }
            }
        }
    }

    proptest::proptest! {
        /// Whatever reconciles the operator dies in, and wherever in them, and however the
        /// BMC answers, the password the BMC takes is always one the BMCSecret holds, the
        /// BMC never counts more failed logins than the budget, and once the crashes stop
        /// the rotation ends committed with the BMCSecret matching the BMC.
        #[test]
        fn no_sequence_of_crashes_loses_the_live_password_or_exceeds_the_login_budget(
            crashes in proptest::collection::vec((0u8..5, proptest::bool::weighted(0.2), 0u64..40), 1..60),
            threshold in 4u32..12,
        ) {
            let mut world = model::World::new(threshold);
            let budget = Lockout::from_policy(&AccountPolicy {
                lockout_threshold: Some(threshold),
                ..AccountPolicy::default()
            }).budget();
            for (crash, drops, seconds) in crashes {
                world.reconcile(crash, drops);
                proptest::prop_assert!(world.live_password_is_stored(), "{world:?}");
                proptest::prop_assert!(world.worst <= budget, "{} failed logins, budget {budget}: {world:?}", world.worst);
                world.now = after(world.now, Duration::from_secs(seconds));
            }
            for _ in 0..200 {
                if world.done() || world.failed {
                    break;
                }
                world.reconcile(0, false);
                proptest::prop_assert!(world.live_password_is_stored(), "{world:?}");
                proptest::prop_assert!(world.worst <= budget, "{world:?}");
                world.now = after(world.now, Duration::from_secs(5));
            }
            proptest::prop_assert!(world.done() || world.failed, "the rotation never ended: {world:?}");
            proptest::prop_assert!(world.live_password_is_stored());
            if world.failed {
                proptest::prop_assert_eq!(&world.current, &world.bmc, "a roll-back keeps the live password current");
            }
        }
    }
}
