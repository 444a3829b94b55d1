//! ServerClaims against the real control plane, `ferrometal run` and a simulated fleet:
//! binding (by selector and by name, taints, `unclaimable`), no double binding under a race
//! of more claims than Servers, and release by each reclaim policy.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ferrometal::api::{Server, ServerClaim};
use ferrometal_sim::lab::{Lab, LabOptions};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const NAMESPACE: &str = "default";
const SERVERS: usize = 30;
const CLAIMS: usize = 50;
const LIMIT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(500);

async fn lab() -> Lab {
    let mut operator_args = common::lab_options("claims", 6, 5, 0).operator_args;
    // More claims reconciled at once than the default, so that they race.
    operator_args.extend(["--claim-concurrency", "16"].map(String::from));
    let lab = Lab::start(
        LabOptions {
            operator_args,
            ..common::lab_options("claims", 6, 5, 0)
        },
        |line| eprintln!("lab: {line}"),
    )
    .await
    .expect("the lab starts");
    if let Err(message) = lab.until_available(SERVERS, LIMIT, POLL).await {
        panic!("{message}");
    }
    lab
}

fn claim(name: &str, spec: serde_json::Value) -> ServerClaim {
    serde_json::from_value(json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1",
        "kind": "ServerClaim",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }))
    .expect("a claim")
}

/// The claim's `Bound` condition: (status, reason, message).
fn bound_condition(claim: &ServerClaim) -> Option<(String, String, String)> {
    claim
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Bound")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until claim `name`'s `Bound` condition has `reason`, and returns it.
async fn until_reason(
    claims: &Api<ServerClaim>,
    name: &str,
    reason: &str,
) -> (ServerClaim, String) {
    let mut last = None;
    for _ in 0..600 {
        let claim = claims.get(name).await.expect("read the claim");
        if let Some((_, found, message)) = bound_condition(&claim) {
            if found == reason {
                return (claim, message);
            }
            last = Some((found, message));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("claim {name} never got Bound reason {reason}; last: {last:?}");
}

/// Waits until every Server is in `state`.
async fn until_all(servers: &Api<Server>, names: &[String], state: &str) {
    for _ in 0..(LIMIT.as_millis() / POLL.as_millis()) {
        let listed = servers.list(&ListParams::default()).await.expect("list");
        let matching = listed
            .iter()
            .filter(|s| names.contains(&s.name_any()))
            .filter(|s| {
                s.status
                    .as_ref()
                    .and_then(|st| st.state)
                    .is_some_and(|st| format!("{st:?}") == state)
            })
            .count();
        if matching == names.len() {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    let listed = servers.list(&ListParams::default()).await.expect("list");
    let states: Vec<String> = listed
        .iter()
        .filter(|s| names.contains(&s.name_any()))
        .map(|s| {
            format!(
                "{}: {:?}",
                s.name_any(),
                s.status.as_ref().and_then(|st| st.state)
            )
        })
        .collect();
    panic!("not every Server {state}: {states:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn claims_bind_each_server_once_and_release_it_by_its_reclaim_policy() {
    let lab = lab().await;
    let client = lab.control_plane.client().await.expect("client");
    let servers: Api<Server> = Api::all(client.clone());
    let claims: Api<ServerClaim> = Api::namespaced(client.clone(), NAMESPACE);
    let names: Vec<String> = servers
        .list(&ListParams::default())
        .await
        .expect("list")
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(names.len(), SERVERS);
    for name in &names {
        servers
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"pool": "race"}}})),
            )
            .await
            .expect("label the Server");
    }

    // 50 claims for 30 Servers, created at once.
    let created = futures::future::join_all((0..CLAIMS).map(|i| {
        let claims = claims.clone();
        async move {
            claims
                .create(
                    &PostParams::default(),
                    &claim(
                        &format!("race-{i}"),
                        json!({"power": "Off", "image": "os:latest",
                               "serverSelector": {"matchLabels": {"pool": "race"}}}),
                    ),
                )
                .await
        }
    }))
    .await;
    for result in created {
        result.expect("create a claim");
    }
    // Each claim settles: Bound, or Unbound because no Server is left.
    let mut bound = BTreeMap::new();
    let mut unbound = Vec::new();
    for i in 0..CLAIMS {
        let name = format!("race-{i}");
        let settled = common::eventually(&format!("claim {name} settles"), || {
            let claims = claims.clone();
            let name = name.clone();
            async move {
                let claim = claims.get(&name).await.ok()?;
                let (_, reason, message) = bound_condition(&claim)?;
                match reason.as_str() {
                    "ServerBound" => Some(Ok(claim.spec.server_ref.clone()?.name)),
                    // Settled only once nothing is claimable any more.
                    "NoServerAvailable" if message.contains("30 bound to other claims") => {
                        Some(Err(message))
                    }
                    _ => None,
                }
            }
        })
        .await;
        match settled {
            Ok(server) => {
                bound.insert(name, server);
            }
            Err(message) => unbound.push((name, message)),
        }
    }
    eprintln!("unbound: {:?}", unbound.first());
    assert_eq!(bound.len(), SERVERS, "bound claims: {bound:?}");
    assert_eq!(unbound.len(), CLAIMS - SERVERS);
    // No Server bound by two claims, and each bound Server names its claim back.
    let distinct: BTreeSet<&String> = bound.values().collect();
    assert_eq!(distinct.len(), SERVERS, "a Server bound twice: {bound:?}");
    for server in servers.list(&ListParams::default()).await.expect("list") {
        let reference = server
            .spec
            .server_claim_ref
            .clone()
            .unwrap_or_else(|| panic!("Server {} is bound to no claim", server.name_any()));
        assert_eq!(
            bound.get(&reference.name),
            Some(&server.name_any()),
            "Server {} names claim {} which names another Server",
            server.name_any(),
            reference.name
        );
    }
    for (name, _) in &unbound {
        let claim = claims.get(name).await.expect("read the claim");
        assert_eq!(
            claim
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .map(|p| format!("{p:?}")),
            Some(String::from("Unbound"))
        );
        assert!(claim.spec.server_ref.is_none(), "{claim:?}");
    }
    until_all(&servers, &names, "Reserved").await;

    // Release: one Server keeps its facts (Retain) until a person clears the claim
    // reference; the others go back through discovery (Recycle, the default). A waiting
    // claim takes a recycled Server once it is Available again.
    let retained = names[0].clone();
    servers
        .patch(
            &retained,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"reclaimPolicy": "Retain"}})),
        )
        .await
        .expect("set Retain");
    let retained_claim = bound
        .iter()
        .find(|(_, server)| **server == retained)
        .map(|(claim, _)| claim.clone())
        .expect("the retained Server's claim");
    for claim in bound.keys() {
        claims
            .delete(claim, &DeleteParams::default())
            .await
            .expect("delete a claim");
    }
    common::eventually("the deleted claims are gone", || {
        let claims = claims.clone();
        let bound = bound.clone();
        async move {
            let left = claims.list(&ListParams::default()).await.ok()?;
            left.iter()
                .all(|c| !bound.contains_key(&c.name_any()))
                .then_some(())
        }
    })
    .await;
    until_all(&servers, std::slice::from_ref(&retained), "Released").await;
    let released = servers.get(&retained).await.expect("read");
    assert_eq!(
        released
            .status
            .as_ref()
            .and_then(|s| s.power_state)
            .map(|p| format!("{p:?}")),
        Some(String::from("Off")),
        "a released Server is off"
    );
    assert_eq!(
        released
            .spec
            .server_claim_ref
            .as_ref()
            .map(|r| r.name.clone()),
        Some(retained_claim),
        "Retain keeps the claim reference until a person clears it"
    );
    // The 20 waiting claims take 20 of the 29 recycled Servers after their re-discovery.
    let recycled: Vec<String> = names[1..].to_vec();
    common::eventually("the waiting claims bind recycled Servers", || {
        let claims = claims.clone();
        async move {
            let left = claims.list(&ListParams::default()).await.ok()?;
            let bound = left
                .iter()
                .filter(|c| bound_condition(c).is_some_and(|(_, r, _)| r == "ServerBound"))
                .count();
            (bound == CLAIMS - SERVERS).then_some(())
        }
    })
    .await;
    for server in servers.list(&ListParams::default()).await.expect("list") {
        if server.name_any() == retained {
            continue;
        }
        assert!(recycled.contains(&server.name_any()));
        // Recycled through a fresh discovery: a second attempt.
        assert_eq!(
            server
                .annotations()
                .get("ferrometal.dev/discovery-attempt")
                .map(String::as_str),
            Some("2"),
            "Server {} was not discovered again",
            server.name_any()
        );
    }
    // Reserved follows binding on the Server's next reconcile.
    common::eventually("20 Servers Reserved again", || {
        let servers = servers.clone();
        async move {
            let listed = servers.list(&ListParams::default()).await.ok()?;
            let reserved = listed
                .iter()
                .filter(|s| {
                    s.status
                        .as_ref()
                        .and_then(|st| st.state)
                        .map(|st| format!("{st:?}"))
                        == Some(String::from("Reserved"))
                })
                .count();
            (reserved == CLAIMS - SERVERS).then_some(())
        }
    })
    .await;

    // A person clears the retained Server's claim reference: discovered again, Available.
    servers
        .patch(
            &retained,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"serverClaimRef": null}})),
        )
        .await
        .expect("clear the claim reference");
    until_all(&servers, std::slice::from_ref(&retained), "Available").await;

    // By name: taints keep a claim away unless tolerated; unclaimable Servers are refused.
    let free: Vec<String> = servers
        .list(&ListParams::default())
        .await
        .expect("list")
        .iter()
        .filter(|s| s.spec.server_claim_ref.is_none())
        .map(ResourceExt::name_any)
        .collect();
    let (tainted, unclaimable) = (free[0].clone(), free[1].clone());
    servers
        .patch(
            &tainted,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": [{"key": "burn-in", "value": "pending"}]}})),
        )
        .await
        .expect("taint");
    servers
        .patch(
            &unclaimable,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unclaimable": true}})),
        )
        .await
        .expect("mark unclaimable");
    claims
        .create(
            &PostParams::default(),
            &claim(
                "intolerant",
                json!({"power": "Off", "image": "os:latest", "serverRef": {"name": tainted}}),
            ),
        )
        .await
        .expect("create");
    let (_, message) = until_reason(&claims, "intolerant", "ServerNotClaimable").await;
    assert!(message.contains("burn-in"), "{message}");
    claims
        .create(
            &PostParams::default(),
            &claim(
                "refused",
                json!({"power": "Off", "image": "os:latest", "serverRef": {"name": unclaimable}}),
            ),
        )
        .await
        .expect("create");
    let (_, message) = until_reason(&claims, "refused", "ServerNotClaimable").await;
    assert!(message.contains("unclaimable"), "{message}");
    claims
        .delete("intolerant", &DeleteParams::default())
        .await
        .expect("delete");
    claims
        .create(
            &PostParams::default(),
            &claim(
                "tolerant",
                json!({"power": "Off", "image": "os:latest", "serverRef": {"name": tainted},
                       "tolerations": [{"key": "burn-in", "operator": "Exists"}]}),
            ),
        )
        .await
        .expect("create");
    let (claim_now, _) = until_reason(&claims, "tolerant", "ServerBound").await;
    assert_eq!(
        claim_now
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .map(|p| format!("{p:?}")),
        Some(String::from("Bound"))
    );
    let missing = "no-such-server";
    claims
        .create(
            &PostParams::default(),
            &claim(
                "dangling",
                json!({"power": "Off", "image": "os:latest", "serverRef": {"name": missing}}),
            ),
        )
        .await
        .expect("create");
    let (_, message) = until_reason(&claims, "dangling", "ServerNotFound").await;
    assert!(message.contains(missing), "{message}");

    // metal-operator's serverclaim-sample, as upstream writes it (its Server name has a
    // trailing space): the claim waits for that Server by its trimmed name.
    common::kubectl_apply(
        &lab.control_plane,
        "apiVersion: metal.ironcore.dev/v1alpha1\nkind: ServerClaim\nmetadata:\n  name: serverclaim-sample\n  namespace: default\nspec:\n  serverRef:\n    name: endpoint-sample-system-0 \n  image: os-image:latest\n  ignitionSecretRef:\n    name: ignition-sample\n  power: \"On\"\n",
    );
    let (_, message) = until_reason(&claims, "serverclaim-sample", "ServerNotFound").await;
    assert!(
        message.contains("Server endpoint-sample-system-0 does not exist"),
        "{message}"
    );
}
