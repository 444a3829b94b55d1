//! Server classification: the configured `server-classifier` plugins sort each discovered
//! Server into the site's hardware profiles, and the operator applies what they say —
//! labels, taints and an `unclaimable` verdict — under its own field manager
//! ([`MANAGER`]), with a `Classified` condition that says what was applied or why not.
//!
//! - **When.** A Server is classified once discovery has given it facts (state past
//!   `Discovery`, with processors or NICs), and again whenever its facts, the labels a person
//!   set, or the classifiers (their components and settings) change: the digest of all of
//!   them is kept in the [`CLASSIFICATION_ANNOTATION`] with what was applied.
//! - **Several classifiers** run in the configured order over the same facts; a later one's
//!   label wins over an earlier one's, taints are merged (one per key and effect), and the
//!   Server is unclaimable when any of them says so (every reason is kept).
//! - **Nothing of a person's is lost.** The annotation records which labels and taints the
//!   classifiers applied: a later classification removes only those. `spec.taints` is one
//!   list to the API server, so the classifier writes it whole — the person's taints kept,
//!   its own replaced — guarded by the resource version it read. `spec.unclaimable` is only
//!   ever set to `true`; the classifier withdraws its `true` by leaving the field out.
//! - **A failing classifier** (an error, a panic, its deadline or memory limit) leaves
//!   everything as it was: the condition turns `False` with the plugin's message, a Warning
//!   Event is published, and the Server is tried again after a backoff.
//! - **Holding** (`--hold-until-classified`): a Server seen before its first classification
//!   is made unclaimable at once, so no claim binds it before the classifiers have spoken.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Error;
use crate::api::conditions;
use crate::api::server::{Taint, TaintEffect};
use crate::api::{BMC, Server, ServerState};
use crate::plugins::server_classifier::{
    AcceleratorFacts, BmcFacts, Classification, ClassifierInput, DriveFacts, NicFacts,
    ProcessorFacts, ServerClassifierPlugin,
};
use crate::registry::quantity_bytes;
use crate::telemetry::ControllerMetrics;

/// Field manager of the classifier's writes.
pub const MANAGER: &str = "ferrometal-classifier";
/// What the classifiers applied to a Server, as JSON ([`Applied`]).
pub const CLASSIFICATION_ANNOTATION: &str = "ferrometal.dev/classification";
/// The reason a held Server is unclaimable.
pub const HELD_REASON: &str = "waiting for classification";
/// The `Classified` message of a held Server.
const HELD_MESSAGE: &str = "unclaimable until the server-classifier plugins have classified the facts its discovery gives (--hold-until-classified)";
/// Servers classified at once (classification is plugin work on the CPU: no I/O waits).
pub const CONCURRENCY: u16 = 4;
/// A condition message is cut at this many bytes.
const MESSAGE_LIMIT: usize = 1024;

/// One configured classifier with its settings.
#[derive(Clone)]
pub struct Classifier {
    /// The loaded plugin.
    pub plugin: ServerClassifierPlugin,
    /// Its settings (`plugins.<name>.settings`).
    pub settings: Vec<(String, String)>,
}

impl Classifier {
    fn name(&self) -> &str {
        &self.plugin.identity().name
    }
}

/// What the classification controller needs.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The BMCs (the BMC controller's watch cache): a Server's BMC identity.
    pub bmcs: Store<BMC>,
    /// The classifiers, in the configured order.
    pub classifiers: Vec<Classifier>,
    /// Digest of the classifiers' components and settings (part of every facts digest).
    pub classifiers_digest: String,
    /// Hold Servers unclaimable until their first classification.
    pub hold: bool,
    /// Event reporter.
    pub reporter: Reporter,
    /// Reconcile metrics.
    pub metrics: ControllerMetrics,
    /// Retry delays after failures, per Server.
    pub backoff: super::backoff::ErrorBackoff,
}

impl Context {
    /// The digest of `classifiers` (names, component digests and settings, in order).
    pub fn digest_of(classifiers: &[Classifier]) -> String {
        short_digest(
            &classifiers
                .iter()
                .map(|c| (c.name(), &c.plugin.identity().digest, &c.settings))
                .collect::<Vec<_>>(),
        )
    }
}

/// What the classifiers last applied to a Server (the [`CLASSIFICATION_ANNOTATION`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Applied {
    /// Digest of the facts and classifiers it was computed from; empty while held.
    pub facts: String,
    /// Label keys the classifiers set.
    pub labels: BTreeSet<String>,
    /// Taints the classifiers set, by key and effect.
    pub taints: BTreeSet<(String, TaintEffectName)>,
    /// Why the classifiers made the Server unclaimable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unclaimable: Option<String>,
}

/// A taint effect as the annotation names it (`NoBind` is the default).
pub type TaintEffectName = String;

fn effect_name(effect: Option<TaintEffect>) -> TaintEffectName {
    format!("{:?}", effect.unwrap_or(TaintEffect::NoBind))
}

impl Applied {
    /// What the annotation of `server` says was applied; `None` when it never was (or the
    /// annotation is unreadable, which is treated as never: the next write replaces it).
    pub fn of(server: &Server) -> Option<Self> {
        server
            .annotations()
            .get(CLASSIFICATION_ANNOTATION)
            .and_then(|text| serde_json::from_str(text).ok())
    }
}

/// The classifiers' outputs merged in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Labels to set.
    pub labels: BTreeMap<String, String>,
    /// Taints to set.
    pub taints: Vec<Taint>,
    /// Why the Server may not be claimed (`classifier: reason`, joined), if any says so.
    pub unclaimable: Option<String>,
}

/// Merges the classifiers' outputs, in the order they ran: a later label wins, taints are
/// one per key and effect (a later value wins), every unclaimable reason is kept.
pub fn merge(results: &[(String, Classification)]) -> Verdict {
    let mut verdict = Verdict::default();
    let mut reasons: Vec<String> = Vec::new();
    for (classifier, classification) in results {
        for (key, value) in &classification.labels {
            verdict.labels.insert(key.clone(), value.clone());
        }
        for taint in &classification.taints {
            let taint = Taint {
                key: taint.key.clone(),
                value: taint.value.clone(),
                effect: Some(taint.effect),
            };
            match verdict
                .taints
                .iter_mut()
                .find(|t| t.key == taint.key && t.effect == taint.effect)
            {
                Some(existing) => *existing = taint,
                None => verdict.taints.push(taint),
            }
        }
        if let Some(reason) = &classification.unclaimable {
            reasons.push(format!("{classifier}: {reason}"));
        }
    }
    if !reasons.is_empty() {
        verdict.unclaimable = Some(reasons.join("; "));
    }
    verdict
}

/// What to do with a Server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing: not discovered yet (and not to be held), or classified with these facts.
    Nothing,
    /// Make it unclaimable until it is classified.
    Hold,
    /// Run the classifiers over `input`; `digest` identifies input and classifiers.
    Classify {
        /// The facts the classifiers get.
        input: Box<ClassifierInput>,
        /// Digest of the input and the classifiers.
        digest: String,
    },
}

/// Decides what to do with `server` (pure): `bmc` is its BMC, if known.
pub fn plan(server: &Server, bmc: Option<&BMC>, classifiers_digest: &str, hold: bool) -> Plan {
    if server.metadata.deletion_timestamp.is_some()
        || super::operations::is_ignored(server.annotations())
    {
        return Plan::Nothing;
    }
    let applied = Applied::of(server);
    if !discovered(server) {
        return if hold && applied.is_none() {
            Plan::Hold
        } else {
            Plan::Nothing
        };
    }
    let applied = applied.unwrap_or_default();
    let input = input(server, bmc, &applied.labels);
    let digest = short_digest(&(&input, classifiers_digest));
    if applied.facts == digest {
        Plan::Nothing
    } else {
        Plan::Classify {
            input: Box::new(input),
            digest,
        }
    }
}

/// Whether discovery has given `server` its facts.
fn discovered(server: &Server) -> bool {
    let Some(status) = &server.status else {
        return false;
    };
    !matches!(
        status.state,
        None | Some(ServerState::Initial) | Some(ServerState::Discovery)
    ) && (!status.processors.is_empty() || !status.network_interfaces.is_empty())
}

/// The facts a classifier gets: the Server's inventory, the labels not set by a classifier
/// (`own` are), and its BMC's identity.
pub fn input(server: &Server, bmc: Option<&BMC>, own: &BTreeSet<String>) -> ClassifierInput {
    let status = server.status.clone().unwrap_or_default();
    ClassifierInput {
        name: server.name_any(),
        system_uuid: server.spec.system_uuid(),
        manufacturer: status.manufacturer,
        model: status.model,
        serial_number: status.serial_number,
        sku: status.sku,
        bios_version: status.bios_version,
        processors: status
            .processors
            .iter()
            .map(|p| ProcessorFacts {
                model: p.model.clone(),
                architecture: p.architecture.clone(),
                cores: p.total_cores.and_then(|n| u32::try_from(n).ok()),
                threads: p.total_threads.and_then(|n| u32::try_from(n).ok()),
            })
            .collect(),
        total_memory_bytes: status.total_system_memory.as_ref().and_then(quantity_bytes),
        drives: status
            .storages
            .iter()
            .flat_map(|storage| &storage.drives)
            .map(|drive| DriveFacts {
                name: Some(drive.name.clone()),
                model: drive.model.clone(),
                media_type: drive.media_type.clone(),
                capacity_bytes: drive.capacity.as_ref().and_then(quantity_bytes),
            })
            .collect(),
        accelerators: status
            .accelerators
            .iter()
            .map(|a| AcceleratorFacts {
                name: a.name.clone(),
                class: a.class.clone(),
                vendor: a.vendor.clone(),
                model: a.model.clone(),
                vendor_id: a.vendor_id.clone(),
                device_id: a.device_id.clone(),
            })
            .collect(),
        nics: status
            .network_interfaces
            .iter()
            .map(|nic| NicFacts {
                name: nic.name.clone(),
                mac: nic.mac_address.clone(),
                link_up: nic.carrier_status.as_deref().map(|s| s == "up"),
            })
            .collect(),
        labels: server
            .labels()
            .iter()
            .filter(|(key, _)| !own.contains(*key))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
        bmc: bmc.map(|bmc| {
            let status = bmc.status.clone().unwrap_or_default();
            BmcFacts {
                name: bmc.name_any(),
                manufacturer: status.manufacturer,
                model: status.model,
                firmware_version: status.firmware_version,
            }
        }),
    }
}

/// The server-side apply that makes `server` carry `verdict` (`None`: hold it), and the
/// annotation's new record. Guarded by the resource version the decision was made on.
pub fn desired(
    server: &Server,
    verdict: Option<&Verdict>,
    digest: &str,
) -> (serde_json::Value, Applied) {
    let previous = Applied::of(server).unwrap_or_default();
    let applied = match verdict {
        Some(verdict) => Applied {
            facts: digest.to_owned(),
            labels: verdict.labels.keys().cloned().collect(),
            taints: BTreeSet::new(),
            unclaimable: verdict.unclaimable.clone(),
        },
        None => Applied {
            unclaimable: Some(HELD_REASON.to_owned()),
            ..previous.clone()
        },
    };
    let mut applied = applied;
    let mut spec = serde_json::Map::new();
    if let Some(verdict) = verdict {
        // The person's taints (every taint the classifiers did not set), then the
        // classifiers' own; one the person set too stays the person's.
        let mut taints: Vec<Taint> = server
            .spec
            .taints
            .iter()
            .filter(|t| {
                !previous
                    .taints
                    .contains(&(t.key.clone(), effect_name(t.effect)))
            })
            .cloned()
            .collect();
        for taint in &verdict.taints {
            let key = (taint.key.clone(), effect_name(taint.effect));
            if !taints
                .iter()
                .any(|t| (t.key.clone(), effect_name(t.effect)) == key)
            {
                taints.push(taint.clone());
                applied.taints.insert(key);
            }
        }
        if !applied.taints.is_empty() || !previous.taints.is_empty() {
            spec.insert(String::from("taints"), json!(taints));
        }
    }
    if applied.unclaimable.is_some() {
        spec.insert(String::from("unclaimable"), json!(true));
    }
    let labels: BTreeMap<&String, &String> = verdict
        .map(|v| v.labels.iter().collect())
        .unwrap_or_default();
    let patch = json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1",
        "kind": "Server",
        "metadata": {
            "name": server.name_any(),
            "resourceVersion": server.resource_version(),
            "labels": labels,
            "annotations": {
                CLASSIFICATION_ANNOTATION: serde_json::to_string(&applied).unwrap_or_default(),
            },
        },
        "spec": spec,
    });
    (patch, applied)
}

/// The `Classified` condition's message for a classification that succeeded.
pub fn summary(classifiers: &[&str], verdict: &Verdict) -> String {
    let labels: Vec<String> = verdict
        .labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    let taints: Vec<String> = verdict
        .taints
        .iter()
        .map(|t| {
            let effect = effect_name(t.effect);
            match &t.value {
                Some(value) => format!("{}={value}:{effect}", t.key),
                None => format!("{}:{effect}", t.key),
            }
        })
        .collect();
    let mut message = format!("classified by {}", classifiers.join(", "));
    message.push_str(&if labels.is_empty() {
        String::from("; no labels")
    } else {
        format!("; labels {}", labels.join(", "))
    });
    if !taints.is_empty() {
        message.push_str(&format!("; taints {}", taints.join(", ")));
    }
    message.push_str(&match &verdict.unclaimable {
        Some(reason) => format!("; unclaimable ({reason})"),
        None => String::from("; claimable"),
    });
    bounded(message)
}

fn bounded(mut message: String) -> String {
    if message.len() > MESSAGE_LIMIT {
        let mut end = MESSAGE_LIMIT;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

/// The first 16 bytes of the SHA-256 of `value`'s JSON, hex.
fn short_digest(value: &impl Serialize) -> String {
    let json = serde_json::to_vec(value).unwrap_or_default();
    Sha256::digest(&json)[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// What of a Server its classification depends on: facts, labels, state, what was applied,
/// deletion and the operation annotation (not its conditions or power).
pub fn fingerprint(server: &Server) -> u64 {
    let status = server.status.as_ref();
    super::triggers::fingerprint((
        &server.metadata.labels,
        server
            .annotations()
            .get(CLASSIFICATION_ANNOTATION)
            .map(String::as_str),
        server
            .annotations()
            .get(super::operations::OPERATION_ANNOTATION)
            .map(String::as_str),
        server.metadata.deletion_timestamp.is_some(),
        status.map(|s| {
            serde_json::to_string(&(
                s.state,
                &s.manufacturer,
                &s.model,
                &s.serial_number,
                &s.sku,
                &s.bios_version,
                &s.processors,
                &s.total_system_memory,
                &s.storages,
                &s.accelerators,
                s.network_interfaces
                    .iter()
                    .map(|n| (&n.name, &n.mac_address, &n.carrier_status))
                    .collect::<Vec<_>>(),
            ))
            .unwrap_or_default()
        }),
    ))
}

/// Reconciles one Server's classification.
#[tracing::instrument(skip_all, fields(server = %server.name_any()))]
pub async fn reconcile(server: Arc<Server>, ctx: Arc<Context>) -> Result<Action, Error> {
    let timer = ctx.metrics.reconcile("classification");
    let result = reconcile_inner(&server, &ctx).await;
    timer.finish(result.is_ok());
    result
}

/// Retries a failed reconcile after the Server's backoff.
pub fn error_policy(server: Arc<Server>, error: &Error, ctx: Arc<Context>) -> Action {
    super::backoff::retry_after(
        "classification",
        &server.name_any(),
        error,
        &ctx.backoff,
        &ctx.metrics,
    )
}

async fn reconcile_inner(server: &Server, ctx: &Context) -> Result<Action, Error> {
    let bmc = server
        .spec
        .bmc_ref
        .as_ref()
        .and_then(|r| ctx.bmcs.get(&ObjectRef::new(&r.name)));
    let key = server.name_any();
    let (verdict, digest) = match plan(server, bmc.as_deref(), &ctx.classifiers_digest, ctx.hold) {
        Plan::Nothing => return Ok(Action::await_change()),
        Plan::Hold => {
            let (patch, _) = desired(server, None, "");
            if !apply(ctx, server, &patch).await? {
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
            publish(
                ctx,
                server,
                (
                    false,
                    conditions::REASON_HELD_UNTIL_CLASSIFIED,
                    HELD_MESSAGE,
                ),
            )
            .await?;
            return Ok(Action::await_change());
        }
        Plan::Classify { input, digest } => match classify(ctx, &input).await {
            Ok(verdict) => (verdict, digest),
            Err(message) => {
                publish(
                    ctx,
                    server,
                    (false, conditions::REASON_CLASSIFIER_FAILED, &message),
                )
                .await?;
                let delay = ctx.backoff.failed(&key);
                tracing::warn!(%message, retry_in = ?delay, "classification failed");
                return Ok(Action::requeue(delay));
            }
        },
    };
    let (patch, _) = desired(server, Some(&verdict), &digest);
    if !apply(ctx, server, &patch).await? {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    ctx.backoff.succeeded(&key);
    let names: Vec<&str> = ctx.classifiers.iter().map(Classifier::name).collect();
    publish(
        ctx,
        server,
        (
            true,
            conditions::REASON_CLASSIFIED,
            &summary(&names, &verdict),
        ),
    )
    .await?;
    Ok(Action::await_change())
}

/// Runs every classifier over `input`, in order; the first failure is the message.
async fn classify(ctx: &Context, input: &ClassifierInput) -> Result<Verdict, String> {
    let mut results = Vec::with_capacity(ctx.classifiers.len());
    for classifier in &ctx.classifiers {
        match classifier
            .plugin
            .classify(input, &classifier.settings)
            .await
        {
            Ok(classification) => results.push((classifier.name().to_owned(), classification)),
            Err(error) => {
                return Err(bounded(format!(
                    "classifier {} failed: {}; labels, taints and unclaimable left as they were",
                    classifier.name(),
                    super::report::first_line(&error.to_string())
                )));
            }
        }
    }
    Ok(merge(&results))
}

/// Applies `patch`; `false` when the Server changed since it was read (it is looked at
/// again once the cache has the change).
async fn apply(ctx: &Context, server: &Server, patch: &serde_json::Value) -> Result<bool, Error> {
    let servers: Api<Server> = Api::all(ctx.client.clone());
    match servers
        .patch(
            &server.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(true),
        Err(error) => Err(error.into()),
    }
}

/// Writes the `Classified` condition when it changes, with a Warning Event when it turns
/// (or stays, with news) False.
async fn publish(
    ctx: &Context,
    server: &Server,
    (value, reason, message): (bool, &str, &str),
) -> Result<(), Error> {
    let mut now: Vec<Condition> = server
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    if !conditions::set(
        &mut now,
        conditions::CLASSIFIED,
        value,
        reason,
        message,
        server.metadata.generation,
        Time(k8s_openapi::jiff::Timestamp::now()),
    ) {
        return Ok(());
    }
    let condition = now
        .into_iter()
        .find(|c| c.type_ == conditions::CLASSIFIED)
        .expect("just set");
    let servers: Api<Server> = Api::all(ctx.client.clone());
    if super::status::apply(
        &servers,
        &server.name_any(),
        MANAGER,
        json!({"conditions": [condition]}),
    )
    .await?
    .is_none()
    {
        return Ok(());
    }
    if reason != conditions::REASON_HELD_UNTIL_CLASSIFIED {
        super::report::ready_event(
            &ctx.client,
            &ctx.reporter,
            &server.object_ref(&()),
            (value, reason, message),
            "Classify",
        )
        .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::server::{Processor, ServerStatus};
    use crate::plugins::server_classifier::ClassifierTaint;
    use kube::api::ObjectMeta;

    fn server(state: Option<ServerState>) -> Server {
        let spec =
            serde_json::from_value(json!({"systemUUID": "5a1e0000-0000-4000-8000-000000000001"}))
                .expect("a spec");
        let mut server = Server::new("s1", spec);
        server.metadata.resource_version = Some(String::from("7"));
        server.status = Some(ServerStatus {
            state,
            model: Some(String::from("SimServer 2U")),
            processors: vec![Processor {
                id: String::from("CPU0"),
                model: Some(String::from("Xeon")),
                total_cores: Some(16),
                ..Default::default()
            }],
            ..Default::default()
        });
        server
    }

    fn annotated(mut server: Server, applied: &Applied) -> Server {
        server.metadata.annotations = Some(BTreeMap::from([(
            CLASSIFICATION_ANNOTATION.to_owned(),
            serde_json::to_string(applied).expect("json"),
        )]));
        server
    }

    fn taint(key: &str, value: Option<&str>) -> ClassifierTaint {
        ClassifierTaint {
            key: key.to_owned(),
            value: value.map(str::to_owned),
            effect: TaintEffect::NoBind,
        }
    }

    fn classification(
        labels: &[(&str, &str)],
        taints: Vec<ClassifierTaint>,
        unclaimable: Option<&str>,
    ) -> Classification {
        Classification {
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            taints,
            unclaimable: unclaimable.map(str::to_owned),
        }
    }

    #[test]
    fn later_classifiers_win_labels_and_taint_values_and_every_reason_is_kept() {
        let verdict = merge(&[
            (
                String::from("first"),
                classification(
                    &[("sku", "small"), ("rack", "a")],
                    vec![taint("burn-in", None)],
                    Some("needs firmware"),
                ),
            ),
            (
                String::from("second"),
                classification(
                    &[("sku", "large")],
                    vec![taint("burn-in", Some("gpu"))],
                    Some("gpu untested"),
                ),
            ),
        ]);
        assert_eq!(
            verdict.labels,
            BTreeMap::from([
                (String::from("rack"), String::from("a")),
                (String::from("sku"), String::from("large")),
            ])
        );
        assert_eq!(verdict.taints.len(), 1);
        assert_eq!(verdict.taints[0].value.as_deref(), Some("gpu"));
        assert_eq!(
            verdict.unclaimable.as_deref(),
            Some("first: needs firmware; second: gpu untested")
        );
    }

    #[test]
    fn servers_without_facts_are_held_only_when_asked_and_only_once() {
        let new = server(Some(ServerState::Discovery));
        assert_eq!(plan(&new, None, "c", false), Plan::Nothing);
        assert_eq!(plan(&new, None, "c", true), Plan::Hold);
        let (_, held) = desired(&new, None, "");
        assert_eq!(held.unclaimable.as_deref(), Some(HELD_REASON));
        assert_eq!(plan(&annotated(new, &held), None, "c", true), Plan::Nothing);
    }

    #[test]
    fn discovered_servers_are_classified_until_the_digest_matches() {
        let discovered = server(Some(ServerState::Available));
        let Plan::Classify { input, digest } = plan(&discovered, None, "c", false) else {
            panic!("a discovered Server is classified");
        };
        assert_eq!(input.processors[0].cores, Some(16));
        let (_, applied) = desired(&discovered, Some(&Verdict::default()), &digest);
        let classified = annotated(discovered.clone(), &applied);
        assert_eq!(plan(&classified, None, "c", false), Plan::Nothing);
        // Other classifiers (or settings) classify again.
        assert!(matches!(
            plan(&classified, None, "d", false),
            Plan::Classify { .. }
        ));
        // So does a label a person sets, but not one the classifiers set.
        let mut labelled = classified.clone();
        labelled.metadata.labels = Some(BTreeMap::from([(
            String::from("burn-in"),
            String::from("done"),
        )]));
        assert!(matches!(
            plan(&labelled, None, "c", false),
            Plan::Classify { .. }
        ));
        let applied_label = Applied {
            labels: BTreeSet::from([String::from("sku")]),
            ..Applied::default()
        };
        let mut own = discovered;
        own.metadata.labels = Some(BTreeMap::from([(
            String::from("sku"),
            String::from("large"),
        )]));
        let digest_with_own_label = match plan(&annotated(own, &applied_label), None, "c", false) {
            Plan::Classify { digest: d, .. } => d,
            Plan::Nothing | Plan::Hold => panic!("classified"),
        };
        assert_eq!(digest_with_own_label, digest);
    }

    #[test]
    fn a_deleted_or_ignored_server_is_left_alone() {
        let mut deleted = server(Some(ServerState::Available));
        deleted.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        assert_eq!(plan(&deleted, None, "c", true), Plan::Nothing);
        let mut ignored = server(Some(ServerState::Discovery));
        ignored.metadata = ObjectMeta {
            annotations: Some(BTreeMap::from([(
                super::super::operations::OPERATION_ANNOTATION.to_owned(),
                String::from("ignore"),
            )])),
            ..ignored.metadata
        };
        assert_eq!(plan(&ignored, None, "c", true), Plan::Nothing);
    }

    #[test]
    fn a_persons_taints_stay_and_the_classifiers_old_ones_go() {
        let mut server = annotated(
            server(Some(ServerState::Available)),
            &Applied {
                facts: String::from("old"),
                taints: BTreeSet::from([(String::from("burn-in"), String::from("NoBind"))]),
                ..Applied::default()
            },
        );
        server.spec.taints = vec![
            Taint {
                key: String::from("burn-in"),
                value: None,
                effect: Some(TaintEffect::NoBind),
            },
            Taint {
                key: String::from("maintenance"),
                value: Some(String::from("rack-7")),
                effect: None,
            },
        ];
        let verdict = merge(&[(
            String::from("profiles"),
            classification(&[("sku", "large")], vec![taint("firmware", None)], None),
        )]);
        let (patch, applied) = desired(&server, Some(&verdict), "new");
        let keys: Vec<&str> = patch["spec"]["taints"]
            .as_array()
            .expect("taints written")
            .iter()
            .map(|t| t["key"].as_str().expect("key"))
            .collect();
        assert_eq!(keys, ["maintenance", "firmware"]);
        assert_eq!(
            applied.taints,
            BTreeSet::from([(String::from("firmware"), String::from("NoBind"))])
        );
        assert!(
            patch["spec"].get("unclaimable").is_none(),
            "claimable: the field is withdrawn, never set to false"
        );
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
        assert_eq!(patch["metadata"]["labels"]["sku"], "large");
    }

    #[test]
    fn taints_are_left_out_when_the_classifiers_never_set_any() {
        let server = server(Some(ServerState::Available));
        let (patch, _) = desired(&server, Some(&Verdict::default()), "d");
        assert!(patch["spec"].get("taints").is_none(), "{patch}");
    }

    #[test]
    fn an_unclaimable_verdict_sets_the_flag_and_the_message_says_why() {
        let verdict = merge(&[(
            String::from("profiles"),
            classification(
                &[("sku", "gpu")],
                vec![taint("burn-in", None)],
                Some("gpu not burnt in"),
            ),
        )]);
        let (patch, applied) = desired(&server(Some(ServerState::Available)), Some(&verdict), "d");
        assert_eq!(patch["spec"]["unclaimable"], true);
        assert_eq!(
            applied.unclaimable.as_deref(),
            Some("profiles: gpu not burnt in")
        );
        assert_eq!(
            summary(&["profiles"], &verdict),
            "classified by profiles; labels sku=gpu; taints burn-in:NoBind; unclaimable (profiles: gpu not burnt in)"
        );
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let message = bounded("é".repeat(MESSAGE_LIMIT));
        assert!(message.len() <= MESSAGE_LIMIT + '…'.len_utf8());
        assert!(message.ends_with('…'));
    }
}
