//! The provisioning boot of a Reserved Server: the I/O of [`crate::controllers::provisioning`]'s
//! plan (name the claim's boot configuration, make each attempt's token, request the network
//! boot once the boot server serves the attempt, follow the claim's power).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{
    BootConfigurationRef, Context, MANAGER, StepOutcome, SystemTarget, answer_or_start, idle,
    set_power,
};
use crate::api::common::PowerState;
use crate::api::{ServerBootConfiguration, ServerClaim, conditions};
use crate::boot::index::{ConfigKey, Ticket};
use crate::controllers::Error;
use crate::controllers::bmc_work::{BmcOperation, BmcResult};
use crate::controllers::bootconfig::BOOT_TOKEN_KEY;
use crate::controllers::caches::cached_or_get;
use crate::controllers::operations::OperationEvent;
use crate::controllers::provisioning::{
    self, ATTEMPT_ANNOTATION, BOOTED_ANNOTATION, BootAttempt, ProvisionStep, ProvisionView,
    STARTED_ANNOTATION, TICKET_ANNOTATION,
};
use crate::plugins::types::PowerAction;

/// One provisioning step of `server`, Reserved by `claim` (which exists).
pub(super) async fn step(
    server: &crate::api::Server,
    claim: &ServerClaim,
    system: &SystemTarget,
    ctx: &Arc<Context>,
    power_state: Option<PowerState>,
    finished: &Option<(BmcOperation, BmcResult)>,
) -> Result<StepOutcome, Error> {
    let name = server.name_any();
    let Some(reference) = &server.spec.server_claim_ref else {
        return Ok(StepOutcome::wait(Duration::from_secs(5)));
    };
    // The claim's boot configuration is named like the claim, in its namespace.
    let config = ConfigKey {
        namespace: reference.namespace.clone(),
        name: reference.name.clone(),
    };
    let configurations =
        Api::<ServerBootConfiguration>::namespaced(ctx.client.clone(), &config.namespace);
    let sbc = cached_or_get(
        &ctx.caches.boot_configurations,
        &configurations,
        Some(&config.namespace),
        &config.name,
    )
    .await?;
    let progress = BootAttempt::from_annotations(server.annotations());
    let window_open = progress.open_attempt().is_some_and(|attempt| {
        ctx.boot_index
            .serves_provisioning(&config, attempt, progress.ticket.as_deref())
    });
    let view = ProvisionView {
        claim_power: claim.spec.power,
        names_configuration: server
            .spec
            .boot_configuration_ref
            .as_ref()
            .is_some_and(|r| r.namespace == config.namespace && r.name == config.name),
        configuration: sbc
            .as_ref()
            .map(|sbc| sbc.status.as_ref().and_then(|s| s.state)),
        progress: progress.clone(),
        window_open,
        power_state,
    };
    let planned = provisioning::plan(&view);
    tracing::debug!(?planned, "provisioning");
    Ok(match planned {
        ProvisionStep::NameConfiguration => {
            let mut outcome = StepOutcome::wait(Duration::from_secs(5));
            outcome.boot_configuration_ref = Some(BootConfigurationRef::Claim(config));
            outcome
        }
        // The claim controller makes it; the boot configuration controller makes it Ready;
        // a change of either wakes the claim, not this Server: look again soon.
        ProvisionStep::AwaitConfiguration => StepOutcome::wait(Duration::from_secs(5)),
        ProvisionStep::StartAttempt { attempt } => {
            let Some(sbc) = sbc else {
                return Ok(StepOutcome::wait(Duration::from_secs(5)));
            };
            start_attempt(ctx, &config, &sbc, attempt).await?
        }
        // The boot index wakes the Server when the window opens; this is the backstop.
        ProvisionStep::AwaitWindow => StepOutcome::wait(Duration::from_secs(5)),
        ProvisionStep::RequestBoot => request_boot(&name, system, ctx, progress.attempt, finished),
        ProvisionStep::PowerOff => {
            set_power(&name, system, ctx, PowerAction::GracefulShutdown, finished)
        }
        ProvisionStep::Idle => idle(&name, system, ctx, power_state),
    })
}

/// Makes attempt `attempt`'s boot token (in the Secret the claim's configuration names,
/// owned by the configuration) and records its ticket on the Server: the boot server serves
/// the configuration from then on, to a machine presenting that attempt's ticket.
async fn start_attempt(
    ctx: &Context,
    config: &ConfigKey,
    sbc: &ServerBootConfiguration,
    attempt: u32,
) -> Result<StepOutcome, Error> {
    let token = match crate::random_token() {
        Ok(token) => token,
        Err(error) => {
            tracing::error!(%error, "cannot read /dev/urandom for a boot token");
            return Ok(StepOutcome::wait(Duration::from_secs(60)));
        }
    };
    let secret_name = provisioning::token_secret_name(&config.name);
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name,
            "namespace": config.namespace,
            "ownerReferences": [{
                "apiVersion": "metal.ironcore.dev/v1alpha1",
                "kind": "ServerBootConfiguration",
                "name": sbc.name_any(),
                "uid": sbc.uid().unwrap_or_default(),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "data": { BOOT_TOKEN_KEY: ByteString(token.clone().into_bytes()) },
    });
    Api::<Secret>::namespaced(ctx.client.clone(), &config.namespace)
        .patch(
            &secret_name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await?;
    let mut outcome = StepOutcome::wait(Duration::from_secs(5));
    outcome.annotations = vec![
        (ATTEMPT_ANNOTATION, Some(attempt.to_string())),
        (STARTED_ANNOTATION, Some(Timestamp::now().to_string())),
        (TICKET_ANNOTATION, Some(Ticket::of(&token).fingerprint)),
        (BOOTED_ANNOTATION, None),
    ];
    tracing::info!(attempt, config = %config, "provisioning attempt started");
    Ok(outcome)
}

/// One-time network boot, then power on (restart when on), beside the workers.
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
            let mut outcome = StepOutcome::wait(Duration::from_secs(30));
            outcome.annotations = vec![(BOOTED_ANNOTATION, Some(attempt.to_string()))];
            outcome
        }
        Some(Err(failure)) => {
            let retry = ctx.power_backoff.failed(name);
            let message = format!(
                "cannot start the provisioning boot (attempt {attempt}): {}",
                failure.message
            );
            tracing::warn!(%message, retry_in = ?retry);
            let mut outcome = StepOutcome::wait(retry);
            outcome.operation_event = Some(OperationEvent {
                type_: kube::runtime::events::EventType::Warning,
                reason: conditions::REASON_BOOT_FAILED,
                message,
            });
            outcome
        }
        None => StepOutcome::wait(Duration::from_secs(60)),
    }
}
