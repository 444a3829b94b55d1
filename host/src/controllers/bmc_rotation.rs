//! The BMC reconciler's credential rotation: observes the BMCSecret, asks
//! [`rotation::plan`] what to do, and does it. API writes happen in the reconcile; BMC calls
//! run beside the workers in the BMC's [`BmcWork`] slot (the one its probes use), and the
//! next reconcile takes their result. No password ever reaches a log line, Event, condition
//! or error message: messages come from the plan and from the driver's (redacted) errors.

use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::Error;
use super::bmc::{Context, ProbeResult};
use super::bmc_work::Answer;
use super::connection::Connection;
use super::rotation::{
    self, Candidate, Failure, Finished, Logins, Observed, Phase, Progress, Step, Timing, WaitFor,
};
use crate::api::bmc_secret::{PASSWORD_KEY, USERNAME_KEY};
use crate::api::{BMC, BMCSecret, conditions};
use crate::controllers::credentials::INDEX_ANNOTATION;
use crate::plugins::accounts::AccountPassword;
use crate::plugins::types::GuestError;
use crate::plugins::{CallError, CallErrorKind};

/// BMCSecret annotation: why the last rotation failed (no secret in it).
pub const FAILURE_ANNOTATION: &str = "ferrometal.dev/credential-rotation-failure";
/// How long a rotation in progress (or due) may take before it counts as overdue.
pub const OVERDUE_AFTER: Duration = Duration::from_secs(3600);

/// A BMC operation of the BMC reconciler: a probe (tagged with its connection's
/// fingerprint) or a step of a rotation (tagged with the fingerprint of the passwords it was
/// started for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BmcTask {
    /// A probe.
    Probe(u64),
    /// A rotation's call.
    Rotation(u64, RotationCall),
}

/// The BMC calls of a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationCall {
    /// Read the account policy with the current password.
    Policy,
    /// Set the pending password, logged in with the current one.
    Set,
    /// A fresh login with a candidate.
    Verify(Candidate),
}

/// What a [`BmcTask`] gave.
#[derive(Debug)]
pub enum BmcTaskResult {
    /// A probe's result.
    Probe(ProbeResult),
    /// A rotation call's result.
    Rotation(Finished),
}

impl Answer for BmcTaskResult {
    fn answered(&self) -> bool {
        match self {
            Self::Probe(result) => result.is_ok(),
            Self::Rotation(Finished::Policy(result)) => result.is_ok(),
            Self::Rotation(Finished::Set(result) | Finished::Verify(_, result)) => result.is_ok(),
        }
    }
}

/// A condition to publish: (status, reason, message).
pub type ConditionChange = (bool, &'static str, String);

/// What the rotation's turn leaves for the rest of the reconcile.
#[derive(Debug, Clone)]
pub struct Turn {
    /// Whether the probe goes on (no rotation in progress).
    pub proceed: bool,
    /// Look again within this long.
    pub requeue: Duration,
    /// The `CredentialsRotated` condition, when there is one to show.
    pub condition: Option<ConditionChange>,
}

/// Whether this BMCSecret may be rotated for `bmc`: `Err(why)` when not.
pub fn eligibility(secret: &BMCSecret, bmc: &BMC, users: &[String]) -> Result<(), String> {
    let name = secret.name_any();
    if secret.immutable == Some(true) {
        return Err(format!("BMCSecret {name} is immutable"));
    }
    match secret
        .annotations()
        .get(rotation::OPT_IN_ANNOTATION)
        .map(String::as_str)
    {
        Some("false") => {
            return Err(format!(
                "BMCSecret {name} opts out ({}: \"false\")",
                rotation::OPT_IN_ANNOTATION
            ));
        }
        Some("true") => {}
        _ if secret.annotations().contains_key(INDEX_ANNOTATION) => {}
        _ => {
            return Err(format!(
                "BMCSecret {name} was written by a person; annotate it {}: \"true\" to let ferrometal rotate it",
                rotation::OPT_IN_ANNOTATION
            ));
        }
    }
    let others: Vec<&str> = users
        .iter()
        .map(String::as_str)
        .filter(|other| *other != bmc.name_any())
        .collect();
    if !others.is_empty() {
        return Err(format!(
            "BMCSecret {name} is also used by BMC {}; a shared secret is never rotated",
            others.join(", ")
        ));
    }
    Ok(())
}

fn annotation_time(secret: &BMCSecret, key: &str) -> Option<Timestamp> {
    secret.annotations().get(key).and_then(|t| t.parse().ok())
}

fn text(secret: &BMCSecret, key: &str) -> Option<String> {
    secret
        .value(key)
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

/// Whether the BMC's `Ready` is `True`.
fn connected(bmc: &BMC) -> bool {
    bmc.status.as_ref().is_some_and(|status| {
        status
            .conditions
            .iter()
            .any(|c| c.type_ == conditions::READY && c.status == "True")
    })
}

/// The BMC asks for a rotation.
fn requested(bmc: &BMC) -> bool {
    bmc.annotations()
        .get(rotation::OPERATION_ANNOTATION)
        .is_some_and(|op| op == rotation::ROTATE_OPERATION)
}

/// How a driver call's error counts for a rotation (its text is the driver's, from which the
/// host removed any password it was given).
fn failure(error: &CallError) -> Failure {
    let message = super::report::first_line(&error.kind.to_string());
    match &error.kind {
        CallErrorKind::Plugin(GuestError::Unauthorized(_)) => Failure::Refused,
        CallErrorKind::Plugin(GuestError::InvalidInput(_)) => Failure::Rejected(message),
        CallErrorKind::Plugin(GuestError::BmcFault {
            http_status: Some(status),
            ..
        }) if (400..500).contains(status) && *status != 401 => Failure::Rejected(message),
        CallErrorKind::Plugin(GuestError::Unsupported(_)) => Failure::Unsupported(message),
        _ => Failure::Failed(message),
    }
}

/// A new password: random bytes from the kernel ([`crate::random_token`]) made to fit the
/// policy.
fn new_password(policy: &crate::plugins::accounts::AccountPolicy) -> Option<String> {
    let mut random = Vec::new();
    for _ in 0..4 {
        random.extend(hex::decode(crate::random_token().ok()?).ok()?);
    }
    rotation::password_from(policy, &random)
}

/// The rotation's turn in a reconcile of `bmc`. `finished` is the BMC's finished operation,
/// if it was a rotation's.
pub async fn turn(
    bmc: &BMC,
    connection: &Connection<'_>,
    ctx: &Context,
    finished: Option<(RotationCall, u64, Finished)>,
) -> Result<Turn, Error> {
    let name = bmc.name_any();
    let secret = &connection.secret;
    let now = Timestamp::now();
    let pending = text(secret, rotation::PENDING_PASSWORD_KEY);
    let annotations = secret.annotations();
    let progress = pending.as_ref().map(|_| {
        Progress::decode(
            annotations
                .get(rotation::PHASE_ANNOTATION)
                .map_or("setting", String::as_str),
            annotations
                .get(rotation::LOCKOUT_ANNOTATION)
                .map(String::as_str),
        )
    });
    let logins = Logins::decode(
        annotations
            .get(rotation::LOGINS_ANNOTATION)
            .map(String::as_str),
    );
    let endpoint = &connection.endpoint;
    let state = super::triggers::fingerprint((
        &endpoint.host,
        endpoint.port,
        &endpoint.username,
        &endpoint.password,
        &pending,
    ));
    let finished = finished
        .filter(|(_, of, _)| *of == state)
        .map(|(_, _, finished)| finished);
    let users: Vec<String> = ctx
        .caches
        .bmcs
        .state()
        .iter()
        .filter(|other| other.spec.bmc_secret_ref.name == secret.name_any())
        .map(|other| other.name_any())
        .collect();
    let eligible = eligibility(secret, bmc, &users);
    let timing = Timing {
        schedule: ctx.rotation,
        requested: requested(bmc),
        connected: connected(bmc),
        created: secret.metadata.creation_timestamp.as_ref().map(|t| t.0),
        rotated_at: annotation_time(secret, rotation::ROTATED_AT_ANNOTATION),
        failed_at: annotation_time(secret, rotation::FAILED_AT_ANNOTATION),
    };
    let due = rotation::due(&timing, now);
    let overdue = eligible.is_ok()
        && (progress.is_some_and(|p| p.phase == Phase::Uncertain)
            || scheduled_since(&timing)
                .is_some_and(|since| rotation::after(since, OVERDUE_AFTER) <= now));
    ctx.metrics.rotation_overdue(&name, overdue);
    let observed = Observed {
        now,
        eligible,
        due,
        progress,
        logins,
        finished,
        running: ctx.probes.running(&name),
    };
    let step = rotation::plan(&observed);
    tracing::debug!(?step, "credential rotation");
    let secrets: Api<BMCSecret> = Api::all(ctx.client.clone());
    let secret_name = secret.name_any();
    let patch = |body: serde_json::Value| {
        let secrets = secrets.clone();
        let secret_name = secret_name.clone();
        async move {
            secrets
                .patch(&secret_name, &PatchParams::default(), &Patch::Merge(&body))
                .await
        }
    };
    let in_progress =
        |message: String| Some((false, conditions::REASON_CREDENTIALS_ROTATING, message));
    let soon = Duration::from_secs(1);
    let resync = ctx.settings.resync;
    let until = |at: Timestamp| {
        Duration::try_from(at.duration_since(Timestamp::now()))
            .unwrap_or_default()
            .max(soon)
    };
    Ok(match step {
        Step::Idle(next) => Turn {
            proceed: true,
            requeue: next.map_or(resync, until).min(resync),
            condition: idle_condition(secret, &timing, next, observed.eligible.is_ok()),
        },
        Step::NotEligible(why) => {
            clear_request(bmc, ctx).await?;
            Turn {
                proceed: true,
                requeue: resync,
                condition: Some((false, conditions::REASON_NOT_ELIGIBLE, why)),
            }
        }
        Step::Start(cause) => {
            start(ctx, &name, connection, state, RotationCall::Policy, None);
            Turn {
                proceed: false,
                requeue: resync,
                condition: in_progress(format!(
                    "rotation started ({}): reading the BMC's account policy",
                    cause.label()
                )),
            }
        }
        Step::StorePending(policy) => {
            let Some(password) = new_password(&policy) else {
                return Ok(Turn {
                    proceed: true,
                    requeue: resync,
                    condition: Some((
                        false,
                        conditions::REASON_ROTATION_FAILED,
                        String::from("cannot read random bytes from /dev/urandom"),
                    )),
                });
            };
            let lockout = rotation::Lockout::from_policy(&policy);
            patch(json!({
                "metadata": { "annotations": {
                    rotation::PHASE_ANNOTATION: Progress { phase: Phase::Pending, attempt: 0, lockout }.encode_phase(),
                    rotation::LOCKOUT_ANNOTATION: lockout.encode(),
                }},
                "data": { rotation::PENDING_PASSWORD_KEY: ByteString(password.into_bytes()) },
            }))
            .await?;
            Turn {
                proceed: false,
                requeue: soon,
                condition: in_progress(String::from(
                    "a new password is stored as pending; it is set on the BMC next",
                )),
            }
        }
        Step::Send => {
            let mut progress = observed.progress.expect("a send is planned in progress");
            progress.phase = Phase::Setting;
            progress.attempt += 1;
            reserve(&patch, progress, logins, now).await?;
            start(ctx, &name, connection, state, RotationCall::Set, pending);
            Turn {
                proceed: false,
                requeue: resync,
                condition: in_progress(format!(
                    "setting the new password on the BMC (attempt {})",
                    progress.attempt
                )),
            }
        }
        Step::Verify(candidate) => {
            let mut progress = observed.progress.expect("a login is planned in progress");
            progress.phase = match candidate {
                Candidate::Pending => Phase::Setting,
                Candidate::Current => Phase::ProbeCurrent,
            };
            reserve(&patch, progress, logins, now).await?;
            start(
                ctx,
                &name,
                connection,
                state,
                RotationCall::Verify(candidate),
                pending,
            );
            Turn {
                proceed: false,
                requeue: resync,
                condition: in_progress(format!(
                    "logging in with the {} password to learn which one the BMC has",
                    match candidate {
                        Candidate::Pending => "new",
                        Candidate::Current => "previous",
                    }
                )),
            }
        }
        Step::Commit => {
            let password = pending.expect("a commit is planned in progress");
            patch(json!({
                "metadata": { "annotations": {
                    rotation::PHASE_ANNOTATION: null,
                    rotation::LOCKOUT_ANNOTATION: null,
                    rotation::FAILED_AT_ANNOTATION: null,
                    FAILURE_ANNOTATION: null,
                    rotation::ROTATED_AT_ANNOTATION: now.to_string(),
                }},
                "data": {
                    USERNAME_KEY: ByteString(endpoint.username.clone().into_bytes()),
                    PASSWORD_KEY: ByteString(password.into_bytes()),
                    rotation::PENDING_PASSWORD_KEY: null,
                },
                // A person's `stringData` would otherwise show the old password (`data`
                // wins when both have a key).
                "stringData": {
                    PASSWORD_KEY: null,
                    rotation::PENDING_PASSWORD_KEY: null,
                },
            }))
            .await?;
            ctx.metrics.credential_rotation("succeeded");
            tracing::info!(secret = %secret_name, "BMC credentials rotated");
            clear_request(bmc, ctx).await?;
            let rotated = Timing {
                rotated_at: Some(now),
                failed_at: None,
                requested: false,
                ..timing
            };
            Turn {
                proceed: false,
                requeue: soon,
                condition: idle_condition(secret, &rotated, next_due(&rotated), true),
            }
        }
        Step::PendingRefused => {
            let mut progress = observed.progress.expect("planned in progress");
            progress.phase = Phase::ProbeCurrent;
            patch(json!({ "metadata": { "annotations": {
                rotation::PHASE_ANNOTATION: progress.encode_phase(),
            }}}))
            .await?;
            Turn {
                proceed: false,
                requeue: soon,
                condition: in_progress(String::from(
                    "the BMC refused the new password; the previous one is tried next",
                )),
            }
        }
        Step::Resend => {
            let mut progress = observed.progress.expect("a resend is planned in progress");
            progress.phase = Phase::Pending;
            patch(json!({ "metadata": { "annotations": {
                rotation::PHASE_ANNOTATION: progress.encode_phase(),
            }}}))
            .await?;
            Turn {
                proceed: false,
                requeue: soon,
                condition: in_progress(String::from(
                    "the BMC still has the previous password; the new one is sent again",
                )),
            }
        }
        Step::RollBack(why) => {
            patch(json!({
                "metadata": { "annotations": {
                    rotation::PHASE_ANNOTATION: null,
                    rotation::LOCKOUT_ANNOTATION: null,
                    rotation::FAILED_AT_ANNOTATION: now.to_string(),
                    FAILURE_ANNOTATION: why,
                }},
                "data": { rotation::PENDING_PASSWORD_KEY: null },
            }))
            .await?;
            ctx.metrics.credential_rotation("failed");
            tracing::warn!(secret = %secret_name, reason = %why, "BMC credential rotation rolled back");
            Turn {
                proceed: false,
                requeue: soon,
                condition: Some((
                    false,
                    conditions::REASON_ROTATION_FAILED,
                    format!("rolled back, the previous password still works: {why}"),
                )),
            }
        }
        Step::Abort(why) => {
            patch(json!({ "metadata": { "annotations": {
                rotation::FAILED_AT_ANNOTATION: now.to_string(),
                FAILURE_ANNOTATION: why,
            }}}))
            .await?;
            ctx.metrics.credential_rotation("failed");
            Turn {
                proceed: true,
                requeue: resync,
                condition: Some((
                    false,
                    conditions::REASON_ROTATION_FAILED,
                    format!(
                        "{why}; tried again in {} minutes",
                        rotation::RETRY_AFTER_FAILURE.as_secs() / 60
                    ),
                )),
            }
        }
        Step::GiveUp => {
            let mut progress = observed.progress.expect("giving up is planned in progress");
            progress.phase = Phase::Uncertain;
            patch(json!({ "metadata": { "annotations": {
                rotation::PHASE_ANNOTATION: progress.encode_phase(),
            }}}))
            .await?;
            ctx.metrics.credential_rotation("uncertain");
            Turn {
                proceed: false,
                requeue: soon,
                condition: Some(uncertain(logins.last.unwrap_or(now))),
            }
        }
        Step::Wait(WaitFor::Operation) => Turn {
            proceed: observed.progress.is_none(),
            requeue: resync,
            condition: None,
        },
        Step::Wait(WaitFor::LoginBudget(at)) => Turn {
            proceed: false,
            requeue: until(at),
            condition: in_progress(format!(
                "waiting until {at} before the next login: the failed logins this rotation may have caused reach what the BMC's lockout threshold allows"
            )),
        },
        Step::Wait(WaitFor::Retry(why, at)) => Turn {
            proceed: false,
            requeue: until(at),
            condition: in_progress(format!("{why}; tried again at {at}")),
        },
        Step::Wait(WaitFor::Uncertain(at)) => Turn {
            proceed: false,
            requeue: until(at).min(Duration::from_secs(3600)),
            condition: Some(uncertain(
                at.checked_sub(
                    k8s_openapi::jiff::SignedDuration::try_from(rotation::UNCERTAIN_RETRY)
                        .unwrap_or_default(),
                )
                .unwrap_or(at),
            )),
        },
    })
}

fn uncertain(since: Timestamp) -> ConditionChange {
    (
        false,
        conditions::REASON_CREDENTIALS_UNCERTAIN,
        format!(
            "the BMC refused both the previous and the new password (last tried {since}); they are tried again at {}, or set the BMC's password as the BMCSecret's password and remove its {} key",
            rotation::after(since, rotation::UNCERTAIN_RETRY),
            rotation::PENDING_PASSWORD_KEY
        ),
    )
}

/// When the schedule wanted the next rotation, ignoring failures (for "overdue").
fn scheduled_since(timing: &Timing) -> Option<Timestamp> {
    match (timing.schedule.mode, timing.rotated_at) {
        (rotation::Mode::Off, _) => None,
        (rotation::Mode::Onboarding, None) => timing.created,
        (rotation::Mode::Onboarding, Some(last)) => timing
            .schedule
            .interval
            .map(|interval| rotation::after(last, interval)),
    }
}

fn next_due(timing: &Timing) -> Option<Timestamp> {
    scheduled_since(timing)
}

/// The condition of a BMC without a rotation in progress: the last rotation's result (none
/// when there never was one).
fn idle_condition(
    secret: &BMCSecret,
    timing: &Timing,
    next: Option<Timestamp>,
    eligible: bool,
) -> Option<ConditionChange> {
    if !eligible {
        return None;
    }
    let next = match next {
        Some(at) => format!("next rotation due at {at}"),
        None => String::from("no rotation scheduled"),
    };
    match (timing.rotated_at, timing.failed_at) {
        (rotated, Some(failed)) if rotated.is_none_or(|r| r < failed) => Some((
            false,
            conditions::REASON_ROTATION_FAILED,
            format!(
                "the rotation at {failed} failed, the previous password still works: {}; {next}",
                secret
                    .annotations()
                    .get(FAILURE_ANNOTATION)
                    .map_or("no reason recorded", String::as_str)
            ),
        )),
        (Some(rotated), _) => Some((
            true,
            conditions::REASON_ROTATED,
            format!("rotated at {rotated}; {next}"),
        )),
        (None, _) => None,
    }
}

/// Reserves a login (and stores the phase) before it is made.
async fn reserve<F, Fut>(
    patch: &F,
    progress: Progress,
    logins: Logins,
    now: Timestamp,
) -> Result<(), Error>
where
    F: Fn(serde_json::Value) -> Fut,
    Fut: Future<Output = Result<BMCSecret, kube::Error>>,
{
    let logins = logins.reserve(progress.lockout, now);
    patch(json!({ "metadata": { "annotations": {
        rotation::PHASE_ANNOTATION: progress.encode_phase(),
        rotation::LOGINS_ANNOTATION: logins.encode(),
    }}}))
    .await?;
    Ok(())
}

/// Starts `call` beside the workers; the BMC is reconciled again when it ends.
fn start(
    ctx: &Context,
    name: &str,
    connection: &Connection<'_>,
    state: u64,
    call: RotationCall,
    pending: Option<String>,
) {
    let driver = connection.driver.clone();
    let current = connection.endpoint.clone();
    let task = BmcTask::Rotation(state, call);
    ctx.probes.start(
        name,
        task,
        Box::pin(async move {
            let with_pending = || {
                let mut endpoint = current.clone();
                endpoint.password = pending.clone().unwrap_or_default();
                endpoint
            };
            let result = match call {
                RotationCall::Policy => Finished::Policy(
                    driver
                        .account_policy(&current)
                        .await
                        .map_err(|e| failure(&e)),
                ),
                RotationCall::Set => {
                    let account = AccountPassword {
                        username: current.username.clone(),
                        password: pending.clone().unwrap_or_default(),
                        create_with_role: None,
                    };
                    Finished::Set(
                        driver
                            .set_account_password(&current, &account)
                            .await
                            .map(|_| ())
                            .map_err(|e| failure(&e)),
                    )
                }
                RotationCall::Verify(candidate) => {
                    let endpoint = match candidate {
                        Candidate::Current => current.clone(),
                        Candidate::Pending => with_pending(),
                    };
                    Finished::Verify(
                        candidate,
                        driver
                            .account_policy(&endpoint)
                            .await
                            .map(|_| ())
                            .map_err(|e| failure(&e)),
                    )
                }
            };
            BmcTaskResult::Rotation(result)
        }),
    );
}

/// Removes `metal.ironcore.dev/operation: rotate-credentials` from the BMC (only if the BMC
/// is still the version this reconcile saw: a newer request stays).
async fn clear_request(bmc: &BMC, ctx: &Context) -> Result<(), Error> {
    if !requested(bmc) {
        return Ok(());
    }
    let patch = json!({ "metadata": {
        "resourceVersion": bmc.resource_version(),
        "annotations": { rotation::OPERATION_ANNOTATION: null },
    }});
    match Api::<BMC>::all(ctx.client.clone())
        .patch(
            &bmc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Changed meanwhile: the next reconcile sees the newer version.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::BMCSpec;
    use crate::api::common::{LocalObjectReference, Protocol, ProtocolName};
    use std::collections::BTreeMap;

    fn bmc(name: &str) -> BMC {
        BMC::new(
            name,
            BMCSpec {
                bmc_uuid: None,
                endpoint_ref: None,
                access: None,
                bmc_secret_ref: LocalObjectReference {
                    name: String::from("s"),
                },
                protocol: Protocol {
                    name: ProtocolName::Redfish,
                    port: 443,
                    scheme: None,
                },
                console_protocol: None,
                hostname: None,
            },
        )
    }

    fn secret(annotations: &[(&str, &str)]) -> BMCSecret {
        let mut secret = BMCSecret::with_credentials("s", "admin", "pw");
        secret.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        );
        secret
    }

    #[test]
    fn only_database_written_or_opted_in_unshared_mutable_secrets_are_rotated() {
        let mine = vec![String::from("b")];
        assert!(eligibility(&secret(&[(INDEX_ANNOTATION, "0")]), &bmc("b"), &mine).is_ok());
        let person = eligibility(&secret(&[]), &bmc("b"), &mine).expect_err("a person's");
        assert!(person.contains(rotation::OPT_IN_ANNOTATION), "{person}");
        assert!(
            eligibility(
                &secret(&[(rotation::OPT_IN_ANNOTATION, "true")]),
                &bmc("b"),
                &mine
            )
            .is_ok()
        );
        assert!(
            eligibility(
                &secret(&[
                    (INDEX_ANNOTATION, "0"),
                    (rotation::OPT_IN_ANNOTATION, "false")
                ]),
                &bmc("b"),
                &mine
            )
            .is_err(),
            "opted out"
        );
        let shared = vec![String::from("b"), String::from("c")];
        let refused = eligibility(&secret(&[(INDEX_ANNOTATION, "0")]), &bmc("b"), &shared)
            .expect_err("shared");
        assert!(refused.contains("also used by BMC c"), "{refused}");
        let mut immutable = secret(&[(INDEX_ANNOTATION, "0")]);
        immutable.immutable = Some(true);
        assert!(eligibility(&immutable, &bmc("b"), &mine).is_err());
    }

    #[test]
    fn driver_errors_map_to_what_they_say_about_the_password() {
        use crate::plugins::{PluginIdentity, World};
        let error = |kind| CallError {
            plugin: PluginIdentity {
                name: "redfish".into(),
                path: "/p/redfish.wasm".into(),
                digest: "0".repeat(64),
                world: World::BmcDriver,
                abi: "0.1.0".into(),
                sdk: "0.1.0".into(),
                capabilities: Vec::new(),
            },
            operation: "set-account-password",
            kind,
        };
        assert_eq!(
            failure(&error(CallErrorKind::Plugin(GuestError::Unauthorized(
                None
            )))),
            Failure::Refused
        );
        assert!(matches!(
            failure(&error(CallErrorKind::Plugin(GuestError::BmcFault {
                http_status: Some(400),
                message_id: None,
                message: "rules".into()
            }))),
            Failure::Rejected(_)
        ));
        assert!(matches!(
            failure(&error(CallErrorKind::Plugin(GuestError::BmcFault {
                http_status: Some(503),
                message_id: None,
                message: "busy".into()
            }))),
            Failure::Failed(_)
        ));
        assert!(matches!(
            failure(&error(CallErrorKind::Timeout(Duration::from_secs(60)))),
            Failure::Failed(_)
        ));
    }

    #[test]
    fn a_rotated_secret_shows_its_last_rotation_and_the_next() {
        let now: Timestamp = "2026-11-01T00:00:00Z".parse().expect("time");
        let timing = Timing {
            schedule: rotation::Schedule {
                mode: rotation::Mode::Onboarding,
                interval: Some(Duration::from_secs(86_400)),
            },
            requested: false,
            connected: true,
            created: None,
            rotated_at: Some(now),
            failed_at: None,
        };
        let (ok, reason, message) =
            idle_condition(&secret(&[]), &timing, next_due(&timing), true).expect("shown");
        assert!(ok);
        assert_eq!(reason, conditions::REASON_ROTATED);
        assert_eq!(
            message,
            "rotated at 2026-11-01T00:00:00Z; next rotation due at 2026-11-02T00:00:00Z"
        );
        let failed = Timing {
            failed_at: Some(rotation::after(now, Duration::from_secs(60))),
            ..timing
        };
        let (ok, reason, _) = idle_condition(
            &secret(&[(FAILURE_ANNOTATION, "the BMC refused the new password")]),
            &failed,
            None,
            true,
        )
        .expect("shown");
        assert_eq!((ok, reason), (false, conditions::REASON_ROTATION_FAILED));
        assert_eq!(idle_condition(&secret(&[]), &timing, None, false), None);
    }
}
