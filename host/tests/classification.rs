//! Server classification against the real control plane, `ferrometal run`, a simulated fleet
//! and the real server-classifier components (issue #29, item 4): the bundled `profiles`
//! classifier labels and taints a mixed fleet as its rules say, keeps a person's taints and
//! follows a person's burn-in label; misbehaving classifiers (panic, endless loop, memory
//! bomb) leave the Servers unlabelled and held with a `Classified=False` condition while
//! discovery and claims go on.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrometal::api::server::TaintEffect;
use ferrometal::api::{Server, ServerClaim};
use ferrometal_sim::Oddity;
use ferrometal_sim::lab::Lab;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(300);
const SKU: &str = "hardware.example.com/sku";
const BURN_IN: &str = "hardware.example.com/burn-in";

/// Rules of the `profiles` classifier for the simulated shapes (every simulated CPU is a
/// "Fake CPU"): GPUs first, then by disks and memory; the 1U shape matches no profile.
const RULES: &str = r#"profiles:
- name: gpu
  match:
    acceleratorVendor: "0x10de"
  labels:
    hardware.example.com/sku: gpu
- name: storage
  match:
    disks: {min: 3}
  labels:
    hardware.example.com/sku: storage
- name: large
  match:
    cpuModel: fake cpu
    memory: {min: 200Gi}
  labels:
    hardware.example.com/sku: large
- name: edge
  match:
    memory: {max: 20Gi}
    disks: 1
  labels:
    hardware.example.com/sku: edge
  taints:
  - key: hardware.example.com/remote-site
- name: unknown
  unclaimable: no hardware profile matches this server
burnIn:
  key: hardware.example.com/burn-in
"#;

/// The plugin configuration naming `classifiers` (with the rules for `profiles`).
fn plugin_config(dir: &Path, file: &str, classifiers: &[&str]) -> PathBuf {
    let indented: String = RULES
        .lines()
        .map(|line| format!("        {line}\n"))
        .collect();
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!(
            "classifiers: [{}]\nplugins:\n  profiles:\n    settings:\n      rules: |\n{indented}",
            classifiers.join(", ")
        ),
    )
    .expect("write the plugin configuration");
    path
}

/// A lab whose operator runs `classifiers` with `--hold-until-classified`; machines 0 and 5
/// carry a GPU.
async fn lab(name: &str, bmcs: usize, classifiers: &[&str]) -> Lab {
    let mut options = common::lab_options(name, bmcs, 2, 0);
    options.fleet.oddities = vec![(0, Oddity::Gpu), (5, Oddity::Gpu)];
    // The lab copies its own plugins into this directory; the classifiers go beside them.
    common::plugin_dir(
        &options.work_dir,
        &[
            "profiles",
            "classifier-panic",
            "classifier-endless-loop",
            "classifier-memory-bomb",
        ],
    );
    let config = plugin_config(&options.work_dir, "plugins.yaml", classifiers);
    options.operator_args.extend([
        String::from("--plugin-config"),
        config.display().to_string(),
        String::from("--hold-until-classified"),
    ]);
    let lab = Lab::start(options, |line| eprintln!("lab {name}: {line}"))
        .await
        .expect("the lab starts");
    if let Err(message) = lab.until_available(bmcs * 2, LIMIT, POLL).await {
        panic!("{message}");
    }
    lab
}

/// A Server's `Classified` condition: (status, reason, message).
fn classified(server: &Server) -> Option<(String, String, String)> {
    server
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Classified")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until every Server's `Classified` condition has `reason` and satisfies `also`;
/// returns the Servers.
async fn until_classified(lab: &Lab, reason: &str, also: impl Fn(&Server) -> bool) -> Vec<Server> {
    let servers: Api<Server> = Api::all(lab.client.clone());
    let mut last = Vec::new();
    for _ in 0..(LIMIT.as_millis() / POLL.as_millis()) {
        last = servers
            .list(&ListParams::default())
            .await
            .expect("list Servers")
            .items;
        if !last.is_empty()
            && last.iter().all(|server| {
                classified(server).is_some_and(|(_, found, _)| found == reason) && also(server)
            })
        {
            return last;
        }
        tokio::time::sleep(POLL).await;
    }
    let seen: Vec<String> = last
        .iter()
        .map(|s| format!("{}: {:?}", s.name_any(), classified(s)))
        .collect();
    panic!(
        "not every Server Classified with {reason}: {seen:#?}\noperator log:\n{}",
        lab.operator_log_tail(60)
    );
}

/// What the rules make of a machine: its SKU label (none: unclaimable) and whether it is
/// tainted for burn-in.
fn expected(lab: &Lab, server: &Server) -> (Option<&'static str>, bool) {
    let uuid = server.spec.system_uuid().expect("a system UUID");
    let machine = lab.fleet.machine(&uuid).expect("a simulated machine");
    let spec = machine.spec();
    let sku = if spec.gpus > 0 {
        Some("gpu")
    } else {
        match spec.model.as_str() {
            "SimStorage 4U" => Some("storage"),
            "SimServer 2U" => Some("large"),
            "SimEdge" => Some("edge"),
            _ => None,
        }
    };
    (sku, spec.gpus > 0)
}

fn taint_keys(server: &Server) -> Vec<&str> {
    server.spec.taints.iter().map(|t| t.key.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_classifier_labels_and_taints_a_mixed_fleet_as_its_rules_say() {
    let lab = lab("classify", 4, &["profiles"]).await;
    let servers: Api<Server> = Api::all(lab.client.clone());
    let classified_fleet = until_classified(&lab, "Classified", |_| true).await;
    assert_eq!(classified_fleet.len(), 8);

    let mut skus: BTreeMap<Option<&str>, usize> = BTreeMap::new();
    for server in &classified_fleet {
        let name = server.name_any();
        let (sku, burn_in) = expected(&lab, server);
        *skus.entry(sku).or_default() += 1;
        assert_eq!(
            server.labels().get(SKU).map(String::as_str),
            sku,
            "{name}: {:?}",
            classified(server)
        );
        assert_eq!(
            taint_keys(server).contains(&BURN_IN),
            burn_in,
            "{name}: GPU servers are tainted until burn-in: {:?}",
            server.spec.taints
        );
        assert_eq!(
            taint_keys(server).contains(&"hardware.example.com/remote-site"),
            sku == Some("edge"),
            "{name}: {:?}",
            server.spec.taints
        );
        let (_, _, message) = classified(server).expect("classified");
        match sku {
            // The catch-all profile's verdict: unclaimable, with its reason.
            None => {
                assert_eq!(server.spec.unclaimable, Some(true), "{name}");
                assert!(
                    message.contains("unclaimable (profiles: no hardware profile matches"),
                    "{name}: {message}"
                );
            }
            // Held until classified, then released: the classifier withdraws its `true`.
            Some(_) => {
                assert_ne!(server.spec.unclaimable, Some(true), "{name}: {message}");
                assert!(message.contains("; claimable"), "{name}: {message}");
            }
        }
    }
    // The fleet is mixed: GPUs and at least two other profiles.
    assert!(
        skus.get(&Some("gpu")).copied().unwrap_or_default() == 2 && skus.len() >= 3,
        "{skus:?}"
    );

    // A person taints a GPU server for maintenance, then marks its burn-in done: it is
    // classified again, loses the burn-in taint and keeps the person's.
    let gpu = classified_fleet
        .iter()
        .find(|s| expected(&lab, s).1)
        .expect("a GPU server")
        .name_any();
    let mut taints = servers.get(&gpu).await.expect("read").spec.taints;
    taints.push(ferrometal::api::server::Taint {
        key: String::from("maintenance"),
        value: Some(String::from("rack-7")),
        effect: Some(TaintEffect::NoBind),
    });
    servers
        .patch(
            &gpu,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": taints}})),
        )
        .await
        .expect("a person's taint");
    servers
        .patch(
            &gpu,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {BURN_IN: "done"}}})),
        )
        .await
        .expect("burn-in done");
    let done = common::eventually("the burn-in taint to go", async || {
        let server = servers.get(&gpu).await.ok()?;
        (!taint_keys(&server).contains(&BURN_IN)).then_some(server)
    })
    .await;
    assert_eq!(taint_keys(&done), ["maintenance"], "{:?}", done.spec.taints);
    assert_eq!(done.labels().get(SKU).map(String::as_str), Some("gpu"));
    assert_eq!(done.labels().get(BURN_IN).map(String::as_str), Some("done"));
}

#[tokio::test(flavor = "multi_thread")]
async fn misbehaving_classifiers_leave_servers_unlabelled_and_held_and_harm_nothing_else() {
    let mut lab = lab("classify-misbehaving", 2, &["classifier-panic"]).await;
    let servers: Api<Server> = Api::all(lab.client.clone());
    let claims: Api<ServerClaim> = Api::namespaced(lab.client.clone(), "default");
    let unlabelled_and_held = |server: &Server| {
        !server.labels().contains_key(SKU) && server.spec.unclaimable == Some(true)
    };

    // Discovery finished for every Server (`lab` waited for Available); the classifier
    // failed on each, which stays held and unlabelled.
    let failed = until_classified(&lab, "ClassifierFailed", unlabelled_and_held).await;
    for server in &failed {
        let (status, _, message) = classified(server).expect("condition");
        assert_eq!(status, "False");
        assert!(
            message.starts_with("classifier classifier-panic failed: plugin classifier-panic")
                && message.contains("crashed")
                && !message.contains('\n'),
            "{message}"
        );
    }
    // A claim waits: every Server is held.
    claims
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "metal.ironcore.dev/v1alpha1",
                "kind": "ServerClaim",
                "metadata": {"name": "waits", "namespace": "default"},
                "spec": {"power": "Off", "image": "os:latest", "serverSelector": {},
                    // The GPU server's burn-in taint is tolerated: only the hold keeps
                    // the claim waiting.
                    "tolerations": [{"key": BURN_IN, "operator": "Exists"}]},
            }))
            .expect("a claim"),
        )
        .await
        .expect("create the claim");
    let message = common::eventually("the claim to wait", async || {
        let claim = claims.get("waits").await.ok()?;
        let bound = claim
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Bound")?;
        (bound.reason == "NoServerAvailable").then_some(bound.message)
    })
    .await;
    assert!(message.contains("unclaimable"), "{message}");

    // An endless loop, then a memory bomb: each ends in its own message, nothing else moves.
    for (classifier, says) in [
        ("classifier-endless-loop", "timed out after"),
        ("classifier-memory-bomb", "exceeded its memory limit"),
    ] {
        restart_with(&mut lab, classifier).await;
        let failed = until_classified(&lab, "ClassifierFailed", |server| {
            unlabelled_and_held(server)
                && classified(server).is_some_and(|(_, _, message)| message.contains(says))
        })
        .await;
        assert_eq!(failed.len(), 4);
        assert!(
            failed.iter().all(|s| s
                .status
                .as_ref()
                .and_then(|st| st.state)
                .is_some_and(|st| format!("{st:?}") == "Available")),
            "discovery's outcome stays"
        );
    }

    // With a working classifier they are classified: the GPU server is released (the
    // others match no profile and stay unclaimable), and the claim binds it.
    restart_with(&mut lab, "profiles").await;
    let classified_fleet = until_classified(&lab, "Classified", |_| true).await;
    let gpu = classified_fleet
        .iter()
        .find(|s| s.labels().get(SKU).is_some_and(|sku| sku == "gpu"))
        .expect("the GPU server has its profile")
        .name_any();
    let bound = common::eventually("the claim to bind", async || {
        let claim = claims.get("waits").await.ok()?;
        claim.spec.server_ref.map(|server| server.name)
    })
    .await;
    assert_eq!(bound, gpu);
    assert!(
        servers
            .get(&gpu)
            .await
            .expect("read")
            .spec
            .server_claim_ref
            .is_some()
    );
}

/// Stops the lab's operator and starts it again with `classifier` as its only classifier
/// (the plugin configuration it was started with, rewritten).
async fn restart_with(lab: &mut Lab, classifier: &str) {
    let operator = lab.operator().expect("the lab runs the operator");
    operator.interrupt().expect("SIGINT");
    operator
        .wait_for_exit(Duration::from_secs(60))
        .expect("wait")
        .expect("the operator stops");
    plugin_config(lab.work_dir(), "plugins.yaml", &[classifier]);
    lab.restart_operator().expect("the operator starts again");
}
