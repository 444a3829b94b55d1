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

/// The Server's simulated machine.
fn machine(lab: &Lab, server: &Server) -> std::sync::Arc<ferrometal_sim::Machine> {
    let uuid = server
        .spec
        .system_uuid()
        .expect("a system UUID")
        .to_string();
    lab.fleet
        .machine(&uuid)
        .expect("the simulated machine")
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claimed_server_boots_the_claims_os_and_follows_the_claims_power() {
    let lab = Lab::start(common::lab_options("claim-boot", 2, 1, 0), |line| {
        eprintln!("lab: {line}")
    })
    .await
    .expect("the lab starts");
    if let Err(message) = lab.until_available(2, LIMIT, POLL).await {
        panic!("{message}");
    }
    let client = lab.control_plane.client().await.expect("client");
    let servers: Api<Server> = Api::all(client.clone());
    let claims: Api<ServerClaim> = Api::namespaced(client.clone(), NAMESPACE);
    let configurations: Api<ferrometal::api::ServerBootConfiguration> =
        Api::namespaced(client.clone(), NAMESPACE);
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), NAMESPACE);
    // The claimant's ignition: an OS that is not the discovery system (no metalprobe).
    let ignition = json!({
        "ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "/etc/ferrometal-claim", "contents": {"source": "data:,web-1"}}]},
    });
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "web-1-ignition", "namespace": NAMESPACE},
                "stringData": {"ignition": ignition.to_string()},
            }))
            .expect("a Secret"),
        )
        .await
        .expect("create the ignition Secret");
    let server_name = servers
        .list(&ListParams::default())
        .await
        .expect("list")
        .items[0]
        .name_any();
    claims
        .create(
            &PostParams::default(),
            &claim(
                "web-1",
                json!({"power": "On", "image": lab.discovery_image,
                       "ignitionSecretRef": {"name": "web-1-ignition"},
                       "serverRef": {"name": server_name}}),
            ),
        )
        .await
        .expect("create the claim");
    until_reason(&claims, "web-1", "ServerBound").await;

    // The claim's boot configuration: named like the claim, in its namespace, the claim's.
    let claim_uid = claims.get("web-1").await.expect("read").uid();
    let sbc = common::eventually("the claim's boot configuration", || {
        let configurations = configurations.clone();
        async move { configurations.get_opt("web-1").await.ok().flatten() }
    })
    .await;
    assert_eq!(sbc.spec.server_ref.name, server_name);
    assert_eq!(
        sbc.spec.image.as_deref(),
        Some(lab.discovery_image.as_str())
    );
    let owner = &sbc.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("ServerClaim", Some(true))
    );
    assert_eq!(Some(owner.uid.clone()), claim_uid);

    // The machine boots the claim's OS with the claimant's ignition.
    let server = servers.get(&server_name).await.expect("read");
    let booted = machine(&lab, &server);
    common::eventually("the machine runs the claim's OS", || {
        let booted = booted.clone();
        async move { (booted.phase() == ferrometal_sim::Phase::Running).then_some(()) }
    })
    .await;
    assert_eq!(booted.running_ignition(), Some(ignition));
    let server = servers.get(&server_name).await.expect("read");
    assert_eq!(state(&server).as_deref(), Some("Reserved"));
    let reference = server
        .spec
        .boot_configuration_ref
        .clone()
        .expect("a reference");
    assert_eq!(
        (reference.namespace.as_str(), reference.name.as_str()),
        (NAMESPACE, "web-1")
    );
    assert_eq!(
        server
            .annotations()
            .get("ferrometal.dev/provision-attempt")
            .map(String::as_str),
        Some("1")
    );
    // The claim's OS holds the attempt's boot token, but the registry takes no report from
    // it: only a discovery writes the Server's facts.
    let token_secret = secrets
        .get("web-1-boot-token")
        .await
        .expect("the attempt's token");
    let token = String::from_utf8(token_secret.data.expect("data")["boot-token"].0.clone())
        .expect("a text token");
    let uuid = server
        .spec
        .system_uuid()
        .expect("a system UUID")
        .to_string();
    let answer = reqwest::Client::new()
        .post(format!("{}/register", lab.boot_url))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(json!({"systemUUID": uuid, "data": {}}).to_string())
        .send()
        .await
        .expect("the registry answers");
    assert_eq!(answer.status().as_u16(), 403, "{:?}", answer.text().await);

    // The boot server recorded the fetch on the claim's configuration (batched, so soon).
    common::eventually("the ignition fetch recorded", || {
        let configurations = configurations.clone();
        async move {
            let fetched = configurations.get("web-1").await.ok()?;
            fetched
                .status?
                .conditions
                .iter()
                .any(|c| c.type_ == "IgnitionDataFetched" && c.status == "True")
                .then_some(())
        }
    })
    .await;

    // The claim's power follows: Off powers the machine off, On boots it again (attempt 2).
    claims
        .patch(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"power": "Off"}})),
        )
        .await
        .expect("power off");
    common::eventually("the machine is off", || {
        let booted = booted.clone();
        async move { (booted.phase() == ferrometal_sim::Phase::Off).then_some(()) }
    })
    .await;
    claims
        .patch(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"power": "On"}})),
        )
        .await
        .expect("power on");
    common::eventually("the machine runs the claim's OS again", || {
        let servers = servers.clone();
        let booted = booted.clone();
        let name = server_name.clone();
        async move {
            let server = servers.get(&name).await.ok()?;
            (booted.phase() == ferrometal_sim::Phase::Running
                && server
                    .annotations()
                    .get("ferrometal.dev/provision-attempt")
                    .map(String::as_str)
                    == Some("2"))
            .then_some(())
        }
    })
    .await;

    // Deleting the claim: the boot configuration and token go at once, the machine is
    // powered off and, recycled, discovered again.
    claims
        .delete("web-1", &DeleteParams::default())
        .await
        .expect("delete the claim");
    common::eventually("the claim's boot configuration is gone", || {
        let configurations = configurations.clone();
        let secrets = secrets.clone();
        async move {
            let sbc = configurations.get_opt("web-1").await.ok()?;
            let token = secrets.get_opt("web-1-boot-token").await.ok()?;
            (sbc.is_none() && token.is_none()).then_some(())
        }
    })
    .await;
    until_all(&servers, std::slice::from_ref(&server_name), "Available").await;
    let server = servers.get(&server_name).await.expect("read");
    assert!(server.spec.server_claim_ref.is_none());
    assert!(server.spec.boot_configuration_ref.is_none());
    assert!(
        !server
            .annotations()
            .contains_key("ferrometal.dev/provision-attempt")
    );
    assert_eq!(
        server
            .annotations()
            .get("ferrometal.dev/discovery-attempt")
            .map(String::as_str),
        Some("2"),
        "recycled through a fresh discovery"
    );
}

fn state(server: &Server) -> Option<String> {
    server
        .status
        .as_ref()
        .and_then(|s| s.state)
        .map(|s| format!("{s:?}"))
}
