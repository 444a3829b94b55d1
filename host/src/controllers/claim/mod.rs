//! The ServerClaim controller: binds a claim to one Server (by `spec.serverRef`, or by
//! `spec.serverSelector` among the claimable Servers) and keeps `status.phase` and the
//! `Bound` condition.
//!
//! Binding never binds two claims to one Server nor one claim to two Servers, with stale
//! caches, racing reconciles and restarts (docs/claims.md, "Binding"):
//!
//! 1. **Intent** — the claim records the one Server it is binding in the annotation
//!    [`BINDING_ANNOTATION`] (with the finalizer, one write guarded by the claim's resource
//!    version). A claim with `spec.serverRef` has its intent already.
//! 2. **Bind** — the Server's `spec.serverClaimRef` is set by a patch guarded by the
//!    Server's resource version on which claimability was judged: if the Server changed in
//!    between (another claim bound it, it powered on, it was tainted), the API server refuses
//!    the write with a conflict. `serverClaimRef` is immutable once set (CEL).
//! 3. **Record** — `spec.serverRef` names the Server and the intent goes (one guarded write).
//!
//! The intent moves to another Server only after a read from the API server (not the cache)
//! shows that the Server it names is not this claim's: so a claim binds only the Server its
//! intent names, whichever process acts on it.

pub mod select;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use self::select::{ClaimKey, Refusal};
use super::Error;
use super::watch_index::WatchIndex;
use super::written::Freshness;
use crate::api::conditions;
use crate::api::server_claim::ServerClaimPhase;
use crate::api::{Server, ServerBootConfiguration, ServerClaim};
use crate::telemetry::ControllerMetrics;

/// Field manager of the claim controller's writes.
pub const MANAGER: &str = "ferrometal-serverclaim";
/// Finalizer on claims (metal-operator's name): the claim's boot configuration goes before
/// the claim does.
pub const FINALIZER: &str = "metal.ironcore.dev/serverclaim";
/// On a claim with a selector: the Server it is binding (step 1 of the protocol).
pub const BINDING_ANNOTATION: &str = "ferrometal.dev/binding-server";

/// At most this many Servers are tried per reconcile before the claim waits for a change.
const TRIES_PER_RECONCILE: usize = 8;

/// What the claim controller needs.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The Servers (the Server controller's watch cache).
    pub servers: Store<Server>,
    /// The discovery namespace's boot configurations (the Server controller's watch cache):
    /// a claim's configuration in that namespace is read from here.
    pub boot_configurations: Store<ServerBootConfiguration>,
    /// Servers by the claim they are bound to (`namespace/name`), from the Server watch.
    pub servers_by_claim: Arc<WatchIndex<Server, String>>,
    /// Event reporter.
    pub reporter: Reporter,
    /// Reconcile and binding metrics.
    pub metrics: ControllerMetrics,
    /// Retry delays after failures, per claim.
    pub backoff: super::backoff::ErrorBackoff,
    /// The resource versions this controller's writes left each claim at: a claim the
    /// cache shows older is looked at again once the cache has caught up.
    pub written: super::written::WrittenVersions,
}

/// The entries of [`Context::servers_by_claim`]: a bound Server under its claim's key.
pub fn claim_of(server: &Server) -> Vec<(String, String)> {
    ClaimKey::bound_to(server)
        .map(|claim| vec![(claim.to_string(), server.name_any())])
        .unwrap_or_default()
}

/// What of a claim its reconciler acts on: spec, annotations, finalizers and deletion (not
/// its own status writes).
pub fn fingerprint(claim: &ServerClaim) -> u64 {
    super::triggers::fingerprint((
        claim.metadata.generation,
        &claim.metadata.annotations,
        &claim.metadata.finalizers,
        claim.metadata.deletion_timestamp.is_some(),
    ))
}

/// What of a Server claims act on: whether and by whom it can be claimed.
pub fn claimability_fingerprint(server: &Server) -> u64 {
    let status = server.status.as_ref();
    super::triggers::fingerprint((
        &server
            .spec
            .server_claim_ref
            .as_ref()
            .map(|r| (&r.namespace, &r.name)),
        status.and_then(|s| s.state).map(|s| format!("{s:?}")),
        status.and_then(|s| s.power_state).map(|s| format!("{s:?}")),
        server.spec.unclaimable,
        serde_json::to_string(&server.spec.taints).unwrap_or_default(),
        &server.metadata.labels,
        server.metadata.deletion_timestamp.is_some(),
    ))
}

/// Reconciles one claim.
#[tracing::instrument(skip_all, fields(claim = %super::object_key(&*claim)))]
pub async fn reconcile(claim: Arc<ServerClaim>, ctx: Arc<Context>) -> Result<Action, Error> {
    let timer = ctx.metrics.reconcile("serverclaim");
    let key = super::object_key(&*claim);
    let result = reconcile_inner(&claim, &ctx).await;
    if result.is_ok() {
        ctx.backoff.succeeded(&key);
    }
    timer.finish(result.is_ok());
    result
}

/// Retries a failed reconcile after the claim's backoff.
pub fn error_policy(claim: Arc<ServerClaim>, error: &Error, ctx: Arc<Context>) -> Action {
    super::backoff::retry_after(
        "serverclaim",
        &super::object_key(&*claim),
        error,
        &ctx.backoff,
        &ctx.metrics,
    )
}

/// The `Bound` condition to publish: status, reason, message.
type Verdict = (bool, &'static str, String);

async fn reconcile_inner(cached: &ServerClaim, ctx: &Context) -> Result<Action, Error> {
    // `metal.ironcore.dev/operation: ignore` freezes a claim as it does a Server.
    if super::operations::is_ignored(cached.annotations()) {
        return Ok(Action::await_change());
    }
    let namespace = cached.namespace().unwrap_or_default();
    let claims: Api<ServerClaim> = Api::namespaced(ctx.client.clone(), &namespace);
    let servers: Api<Server> = Api::all(ctx.client.clone());
    let id = super::object_key(cached);
    let mut claim = match ctx
        .written
        .freshness(&id, cached.metadata.resource_version.as_deref())
    {
        Freshness::Current => cached.clone(),
        // Its own last write has not reached the cache yet; its watch event comes soon.
        Freshness::Behind => return Ok(Action::requeue(Duration::from_secs(1))),
        Freshness::Unknown => match claims.get_opt(&cached.name_any()).await? {
            Some(claim) => claim,
            None => return Ok(Action::await_change()),
        },
    };
    let key = ClaimKey::of(&claim);
    if claim.metadata.deletion_timestamp.is_some() {
        ctx.written.forget(&id);
        if claim.finalizers().iter().any(|f| f == FINALIZER) {
            // The boot server stops serving the claim's OS at once; the Server powers the
            // machine off and is released on its own (no worker waits for the BMC here).
            remove_boot_configuration(&ctx.client, &claim).await?;
            let finalizers: Vec<&String> = claim
                .finalizers()
                .iter()
                .filter(|f| *f != FINALIZER)
                .collect();
            claims
                .patch(
                    &claim.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {
                        "resourceVersion": claim.resource_version(),
                        "finalizers": finalizers,
                    }})),
                )
                .await?;
        }
        return Ok(Action::await_change());
    }
    let bound = ctx.servers_by_claim.get(&key.to_string());
    let mut retry_soon = false;
    let verdict = if bound.len() > 1 {
        (
            false,
            conditions::REASON_BOUND_TWICE,
            format!(
                "Servers {} all name this claim in spec.serverClaimRef; clear the wrong ones",
                bound.join(", ")
            ),
        )
    } else if let Some(name) = claim
        .spec
        .server_ref
        .as_ref()
        .map(|r| r.name.trim().to_owned())
    {
        if !claim.finalizers().iter().any(|f| f == FINALIZER) {
            claim = write_intent(&claims, &claim, None).await?;
        }
        bind_named(ctx, &servers, &key, &claim, &name).await?
    } else if let Some(selector) = &claim.spec.server_selector {
        match select::selector(selector) {
            Err(why) => (
                false,
                conditions::REASON_INVALID_SELECTOR,
                format!("spec.serverSelector is invalid: {why}"),
            ),
            Ok(selector) => {
                let (verdict, contended) =
                    bind_selected(ctx, &claims, &servers, &key, &mut claim, &selector, bound)
                        .await?;
                retry_soon = contended;
                verdict
            }
        }
    } else {
        (
            false,
            conditions::REASON_NO_SERVER_NAMED,
            String::from("the claim names neither spec.serverRef nor spec.serverSelector"),
        )
    };
    if claim.resource_version() != cached.resource_version() {
        ctx.written.record(&id, claim.resource_version().as_deref());
    }
    if verdict.0
        && let Some(server) = &claim.spec.server_ref
    {
        apply_boot_configuration(ctx, &claim, server.name.trim()).await?;
    }
    publish(ctx, &claims, &claim, verdict).await?;
    // A Server that was being bound by another claim may be free again in a moment (that
    // claim bound another); nothing else would wake this claim for it.
    Ok(Action::requeue(Duration::from_secs(if retry_soon {
        2
    } else {
        300
    })))
}

/// Binds the Server `name` that `spec.serverRef` names.
async fn bind_named(
    ctx: &Context,
    servers: &Api<Server>,
    key: &ClaimKey,
    claim: &ServerClaim,
    name: &str,
) -> Result<Verdict, Error> {
    let Some(server) = super::caches::cached_or_get(&ctx.servers, servers, None, name).await?
    else {
        return Ok(
            if claim.status.as_ref().and_then(|s| s.phase) == Some(ServerClaimPhase::Bound) {
                (
                    false,
                    conditions::REASON_SERVER_GONE,
                    format!(
                        "Server {name} was deleted; spec.serverRef is immutable: delete this claim and claim anew"
                    ),
                )
            } else {
                (
                    false,
                    conditions::REASON_SERVER_NOT_FOUND,
                    format!("Server {name} does not exist"),
                )
            },
        );
    };
    match bind(ctx, servers, key, claim, server).await? {
        Ok(()) => Ok(bound_to(name)),
        Err(refusal) => Ok((
            false,
            conditions::REASON_SERVER_NOT_CLAIMABLE,
            format!("Server {name} cannot be claimed: {}", refusal.describe()),
        )),
    }
}

/// Binds one of the Servers the selector selects: the one the intent names, or the first
/// claimable candidate in the claim's order. Also says whether a candidate was contended
/// (worth looking again soon).
async fn bind_selected(
    ctx: &Context,
    claims: &Api<ServerClaim>,
    servers: &Api<Server>,
    key: &ClaimKey,
    claim: &mut ServerClaim,
    selector: &kube::core::Selector,
    bound: Vec<String>,
) -> Result<(Verdict, bool), Error> {
    // Bound before (a reconcile that bound and could not record it): record it.
    if let Some(server) = bound.first() {
        *claim = record(claims, claim, server).await?;
        return Ok((bound_to(server), false));
    }
    let intent = claim.annotations().get(BINDING_ANNOTATION).cloned();
    let mut refusals: std::collections::BTreeMap<&'static str, usize> = Default::default();
    let mut candidates: Vec<Arc<Server>> = Vec::new();
    for server in ctx.servers.state() {
        if !select::selects(selector, server.labels())
            || intent
                .as_ref()
                .is_some_and(|intent| *intent == server.name_any())
        {
            continue;
        }
        match select::claimability(&server, key, &claim.spec.tolerations) {
            Ok(()) => candidates.push(server),
            Err(refusal) => *refusals.entry(refusal.kind()).or_default() += 1,
        }
    }
    select::order(claim.uid().as_deref().unwrap_or_default(), &mut candidates);
    // The Server a previous reconcile (of this or another process) meant to bind comes
    // first, whatever the cache says of it (the bind judges it again on a fresh read).
    if let Some(intent) = &intent
        && let Some(server) =
            super::caches::cached_or_get(&ctx.servers, servers, None, intent).await?
        && select::selects(selector, server.labels())
    {
        candidates.insert(0, server);
    }
    let mut conflicts = 0;
    let untried = candidates.len().saturating_sub(TRIES_PER_RECONCILE);
    if untried > 0 {
        refusals.insert("not tried yet", untried);
    }
    for server in candidates.into_iter().take(TRIES_PER_RECONCILE) {
        let name = server.name_any();
        if claim.annotations().get(BINDING_ANNOTATION) != Some(&name) {
            // Moving the intent away from another Server is safe only once that Server is
            // known (from the API server, not the cache) not to be this claim's.
            if let Some(previous) = claim.annotations().get(BINDING_ANNOTATION).cloned()
                && let Some(fresh) = servers.get_opt(&previous).await?
                && ClaimKey::bound_to(&fresh).as_ref() == Some(key)
            {
                *claim = record(claims, claim, &previous).await?;
                return Ok((bound_to(&previous), false));
            }
            *claim = write_intent(claims, claim, Some(&name)).await?;
        }
        match bind(ctx, servers, key, claim, server).await? {
            Ok(()) => {
                *claim = record(claims, claim, &name).await?;
                return Ok((bound_to(&name), false));
            }
            Err(refusal) => {
                tracing::debug!(server = %name, why = %refusal.describe(), "candidate taken");
                conflicts += 1;
                *refusals.entry(refusal.kind()).or_default() += 1;
            }
        }
    }
    if conflicts == 0 {
        ctx.metrics.claim_bind("none");
    }
    let total: usize = refusals.values().sum();
    let message = if total == 0 {
        String::from("no Server matches spec.serverSelector")
    } else {
        let counts: Vec<String> = refusals
            .iter()
            .map(|(why, count)| format!("{count} {why}"))
            .collect();
        format!(
            "{total} Servers match spec.serverSelector; none can be claimed: {}",
            counts.join(", ")
        )
    };
    Ok((
        (false, conditions::REASON_NO_SERVER_AVAILABLE, message),
        untried > 0 || refusals.contains_key(Refusal::Contended.kind()),
    ))
}

/// Makes the claim's boot configuration: named like the claim, in its namespace, controlled
/// by it, booting the claim's image with the claimant's ignition and the operator's boot
/// token (in the Secret its annotation names, made per attempt by the Server controller).
/// A configuration of that name that is not the claim's is left alone (with a Warning).
async fn apply_boot_configuration(
    ctx: &Context,
    claim: &ServerClaim,
    server: &str,
) -> Result<(), Error> {
    let namespace = claim.namespace().unwrap_or_default();
    let name = claim.name_any();
    let configurations = Api::<ServerBootConfiguration>::namespaced(ctx.client.clone(), &namespace);
    let existing = super::caches::cached_or_get(
        &ctx.boot_configurations,
        &configurations,
        Some(&namespace),
        &name,
    )
    .await?;
    if let Some(existing) = &existing
        && !controlled_by(
            existing.owner_references(),
            "ServerClaim",
            claim.uid().as_deref(),
        )
    {
        super::report::publish(
            &ctx.client,
            &ctx.reporter,
            &claim.object_ref(&()),
            kube::runtime::events::EventType::Warning,
            (
                "BootConfigurationConflict",
                &format!(
                    "ServerBootConfiguration {namespace}/{name} exists and is not this claim's; the claim's OS is not booted until it is gone"
                ),
            ),
            "Provision",
        )
        .await;
        return Ok(());
    }
    let token_secret = super::provisioning::token_secret_name(&name);
    let desired = json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1",
        "kind": "ServerBootConfiguration",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": { super::provisioning::BOOT_TOKEN_SECRET_ANNOTATION: token_secret },
            "ownerReferences": [{
                "apiVersion": "metal.ironcore.dev/v1alpha1",
                "kind": "ServerClaim",
                "name": name,
                "uid": claim.uid().unwrap_or_default(),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "serverRef": { "name": server },
            "image": claim.spec.image,
            "ignitionSecretRef": claim.spec.ignition_secret_ref.as_ref().map(|r| json!({"name": r.name})),
        },
    });
    let unchanged = existing.as_ref().is_some_and(|existing| {
        existing.spec.server_ref.name == server
            && existing.spec.image.as_deref() == Some(claim.spec.image.as_str())
            && existing.spec.ignition_secret_ref.as_ref().map(|r| &r.name)
                == claim.spec.ignition_secret_ref.as_ref().map(|r| &r.name)
            && existing
                .annotations()
                .get(super::provisioning::BOOT_TOKEN_SECRET_ANNOTATION)
                == Some(&token_secret)
    });
    if !unchanged {
        configurations
            .patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&desired),
            )
            .await?;
    }
    Ok(())
}

/// Deletes the claim's boot configuration and its boot token Secret (each only if it is
/// the claim's).
async fn remove_boot_configuration(client: &Client, claim: &ServerClaim) -> Result<(), Error> {
    let namespace = claim.namespace().unwrap_or_default();
    let name = claim.name_any();
    let configurations = Api::<ServerBootConfiguration>::namespaced(client.clone(), &namespace);
    if let Some(sbc) = configurations.get_opt(&name).await?
        && controlled_by(
            sbc.owner_references(),
            "ServerClaim",
            claim.uid().as_deref(),
        )
    {
        ignore_gone(
            configurations
                .delete(&name, &DeleteParams::default())
                .await
                .map(|_| ()),
        )?;
        let secrets = Api::<Secret>::namespaced(client.clone(), &namespace);
        let token_secret = super::provisioning::token_secret_name(&name);
        if let Some(secret) = secrets.get_opt(&token_secret).await?
            && controlled_by(
                secret.owner_references(),
                "ServerBootConfiguration",
                sbc.uid().as_deref(),
            )
        {
            ignore_gone(
                secrets
                    .delete(&token_secret, &DeleteParams::default())
                    .await
                    .map(|_| ()),
            )?;
        }
    }
    Ok(())
}

/// Whether `owners` name a controller of `kind` with `uid`.
fn controlled_by(
    owners: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference],
    kind: &str,
    uid: Option<&str>,
) -> bool {
    owners
        .iter()
        .any(|o| o.controller == Some(true) && o.kind == kind && Some(o.uid.as_str()) == uid)
}

/// A deletion that found nothing to delete succeeded.
fn ignore_gone(result: Result<(), kube::Error>) -> Result<(), Error> {
    match result {
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        other => Ok(other?),
    }
}

/// The `Bound` verdict for a bound claim.
fn bound_to(server: &str) -> Verdict {
    (
        true,
        conditions::REASON_SERVER_BOUND,
        format!("bound to Server {server}"),
    )
}

/// Sets `spec.serverClaimRef` of `server` to the claim, guarded by the resource version on
/// which it was judged claimable. A conflict is judged again on the Server read fresh: it
/// may be ours (a retry of a write that went through), or still claimable.
async fn bind(
    ctx: &Context,
    servers: &Api<Server>,
    key: &ClaimKey,
    claim: &ServerClaim,
    server: Arc<Server>,
) -> Result<Result<(), Refusal>, Error> {
    let mut server = server;
    for _ in 0..2 {
        if ClaimKey::bound_to(&server).as_ref() == Some(key) {
            return Ok(Ok(()));
        }
        if let Err(refusal) = select::claimability(&server, key, &claim.spec.tolerations) {
            return Ok(Err(refusal));
        }
        let patch = json!({
            "metadata": {"resourceVersion": server.resource_version()},
            "spec": {"serverClaimRef": {"namespace": key.namespace, "name": key.name}},
        });
        match servers
            .patch(
                &server.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(_) => {
                ctx.metrics.claim_bind("bound");
                tracing::info!(server = %server.name_any(), "bound");
                return Ok(Ok(()));
            }
            Err(kube::Error::Api(status)) if status.code == 409 || status.code == 422 => {
                ctx.metrics.claim_bind("conflict");
                match servers.get_opt(&server.name_any()).await? {
                    Some(fresh) => server = Arc::new(fresh),
                    None => return Ok(Err(Refusal::Deleting)),
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
    // Changed twice while being bound: another claim is after it.
    Ok(Err(Refusal::Contended))
}

/// Adds the finalizer and (for a selector claim) the intent to bind `server`, guarded by the
/// claim's resource version.
async fn write_intent(
    claims: &Api<ServerClaim>,
    claim: &ServerClaim,
    server: Option<&str>,
) -> Result<ServerClaim, Error> {
    let mut finalizers = claim.finalizers().to_vec();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        finalizers.push(FINALIZER.to_owned());
    }
    let mut metadata = json!({
        "resourceVersion": claim.resource_version(),
        "finalizers": finalizers,
    });
    if let Some(server) = server {
        metadata["annotations"] = json!({ BINDING_ANNOTATION: server });
    }
    Ok(claims
        .patch(
            &claim.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": metadata })),
        )
        .await?)
}

/// Records the bound Server in `spec.serverRef` and drops the intent.
async fn record(
    claims: &Api<ServerClaim>,
    claim: &ServerClaim,
    server: &str,
) -> Result<ServerClaim, Error> {
    if claim
        .spec
        .server_ref
        .as_ref()
        .is_some_and(|r| r.name == server)
    {
        return Ok(claim.clone());
    }
    let mut finalizers = claim.finalizers().to_vec();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        finalizers.push(FINALIZER.to_owned());
    }
    Ok(claims
        .patch(
            &claim.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {
                    "resourceVersion": claim.resource_version(),
                    "finalizers": finalizers,
                    "annotations": { BINDING_ANNOTATION: null },
                },
                "spec": {"serverRef": {"name": server}},
            })),
        )
        .await?)
}

/// Writes `status.phase` and the `Bound` condition when they change, with a Warning Event
/// when `Bound` turns (or stays, with news) False.
async fn publish(
    ctx: &Context,
    claims: &Api<ServerClaim>,
    claim: &ServerClaim,
    (value, reason, message): Verdict,
) -> Result<(), Error> {
    let phase = if value {
        ServerClaimPhase::Bound
    } else {
        ServerClaimPhase::Unbound
    };
    let status = claim.status.clone().unwrap_or_default();
    let mut conditions_now: Vec<Condition> = status.conditions.clone();
    let changed = conditions::set(
        &mut conditions_now,
        conditions::BOUND,
        value,
        reason,
        &message,
        claim.metadata.generation,
        Time(k8s_openapi::jiff::Timestamp::now()),
    );
    if !changed && status.phase == Some(phase) {
        return Ok(());
    }
    let bound = conditions_now
        .into_iter()
        .find(|c| c.type_ == conditions::BOUND)
        .expect("just set");
    crate::controllers::status::apply(
        claims,
        &claim.name_any(),
        MANAGER,
        json!({"phase": phase, "conditions": [bound]}),
    )
    .await?;
    if changed {
        super::report::ready_event(
            &ctx.client,
            &ctx.reporter,
            &claim.object_ref(&()),
            (value, reason, &message),
            "Bind",
        )
        .await;
    }
    Ok(())
}

/// The claims a Server event concerns: the one it is bound to, and the ones that name it in
/// `spec.serverRef` (from `by_server_ref`); and, when it can be claimed now, every claim still
/// waiting for a Server (`waiting`).
pub fn claims_of_server(
    server: &Server,
    by_server_ref: &WatchIndex<ServerClaim, (String, String)>,
) -> Vec<ObjectRef<ServerClaim>> {
    let mut claims: Vec<ObjectRef<ServerClaim>> = Vec::new();
    if let Some(claim) = ClaimKey::bound_to(server) {
        claims.push(ObjectRef::new(&claim.name).within(&claim.namespace));
    }
    for (namespace, name) in by_server_ref.get(&server.name_any()) {
        claims.push(ObjectRef::new(&name).within(&namespace));
    }
    let free = select::claimability(
        server,
        &ClaimKey {
            namespace: String::new(),
            name: String::new(),
        },
        &[],
    );
    // A Server that became claimable (or tainted: some claims tolerate it) wakes the claims
    // that wait for one.
    if matches!(free, Ok(()) | Err(Refusal::TaintsNotTolerated(_))) {
        for (namespace, name) in by_server_ref.get(WAITING) {
            claims.push(ObjectRef::new(&name).within(&namespace));
        }
    }
    claims
}

/// The key under which [`claim_entries`] files claims without a Server yet.
pub const WAITING: &str = "\u{0}waiting";

/// The entries of the claim index: a claim under the Server its `spec.serverRef` names, or
/// under [`WAITING`] while it names none (a selector claim not bound yet).
pub fn claim_entries(claim: &ServerClaim) -> Vec<(String, (String, String))> {
    let id = (claim.namespace().unwrap_or_default(), claim.name_any());
    match &claim.spec.server_ref {
        Some(server) => vec![(server.name.trim().to_owned(), id)],
        None if claim.metadata.deletion_timestamp.is_none() => vec![(WAITING.to_owned(), id)],
        None => Vec::new(),
    }
}
