//! Both discovery paths up to Servers, with `ferrometal run`, a real control plane and a real
//! Redfish BMC (sushy-emulator over TLS with Basic auth): an Endpoint with a known MAC, and a
//! BMC applied directly with `spec.access`; plus wrong credentials, an unreachable BMC and an
//! operator restart (after convergence and in the middle of an onboarding).

use std::process::Command;
use std::time::Duration;

use ferrometal::api::{BMC, BMCSecret, Endpoint, EndpointSpec, Server};
use kube::Api;
use kube::api::{ListParams, PostParams};
mod common;
use common::eventually;
use testenv::{ControlPlane, SushyEmulator};

const UUIDS: [&str; 2] = [
    "1d3c5e7a-0000-4000-8000-00000000aa01",
    "1d3c5e7a-0000-4000-8000-00000000aa02",
];

fn start_operator(
    control_plane: &ControlPlane,
    dir: &std::path::Path,
    bmc: &SushyEmulator,
    metrics_port: u16,
) -> testenv::Program {
    let plugins = common::plugin_dir(dir, &["macdb", "redfish"]);
    let macdb = dir.join("macdb.yaml");
    std::fs::write(
        &macdb,
        format!(
            "macPrefixes:\n\
             - macPrefix: \"52:54:00:dd\"\n  manufacturer: Sushy\n  protocol: Redfish\n  protocolScheme: https\n  port: {port}\n  type: bmc\n  defaultCredentials:\n  - username: admin\n    password: bmc-pw\n\
             - macPrefix: \"52:54:00:de\"\n  protocol: Redfish\n  protocolScheme: https\n  port: {port}\n  type: bmc\n  defaultCredentials:\n  - username: admin\n    password: factory-default\n  - username: admin\n    password: bmc-pw\n\
             - macPrefix: \"52:54:00:df\"\n  protocol: Redfish\n  protocolScheme: https\n  port: {port}\n  type: bmc\n  defaultCredentials:\n  - username: admin\n    password: one\n  - username: root\n    password: two\n",
            port = bmc.port()
        ),
    )
    .expect("write macdb");
    let ca = dir.join("bmc-ca.pem");
    std::fs::write(&ca, bmc.ca_cert_pem().expect("TLS")).expect("write CA");
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrometal"));
    command
        .arg("run")
        .arg("--plugin-dir")
        .arg(&plugins)
        .arg("--mac-db")
        .arg(&macdb)
        .args([
            "--grant",
            "credentials/reveal",
            "--bmc-resync-seconds",
            "2",
            "--credential-retry-seconds",
            "1",
        ])
        .arg("--bmc-ca-file")
        .arg(&ca)
        .arg("--metrics-bind-address")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .args(["--boot-bind-address", "127.0.0.1:0"])
        .env("KUBECONFIG", control_plane.kubeconfig_path())
        .env("FERROMETAL_LOG", "info,ferrometal=debug");
    testenv::Program::start("ferrometal-run", command).expect("start ferrometal run")
}

async fn servers_of(servers: &Api<Server>, bmc: &str) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = servers
        .list(&ListParams::default())
        .await
        .expect("list servers")
        .items
        .into_iter()
        .filter(|s| s.spec.bmc_ref.as_ref().map(|r| r.name.as_str()) == Some(bmc))
        .map(|s| {
            (
                s.metadata.name.unwrap_or_default(),
                s.spec.system_uuid.unwrap_or_default(),
            )
        })
        .collect();
    found.sort();
    found
}

fn expected(bmc: &str) -> Vec<(String, String)> {
    vec![
        (format!("{bmc}-system-0"), UUIDS[0].to_owned()),
        (format!("{bmc}-system-1"), UUIDS[1].to_owned()),
    ]
}

async fn ready_reason(bmcs: &Api<BMC>, name: &str) -> Option<(String, String, String)> {
    let bmc = bmcs.get_opt(name).await.ok()??;
    let condition = bmc
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")?;
    Some((condition.status, condition.reason, condition.message))
}

fn bmc_yaml(name: &str, port: u16, secret: &str) -> String {
    format!(
        "apiVersion: metal.ironcore.dev/v1alpha1\nkind: BMC\nmetadata: {{name: {name}}}\nspec:\n  access: {{macAddress: '02:00:00:00:00:01', ip: 127.0.0.1}}\n  bmcSecretRef: {{name: {secret}}}\n  protocol: {{name: Redfish, port: {port}, scheme: https}}\n"
    )
}

#[tokio::test]
async fn both_discovery_paths_reach_servers_and_failures_are_reported() {
    let control_plane = ControlPlane::shared().await.expect("control plane");
    let _logs = control_plane.logs_on_failure();
    let client = control_plane.client().await.expect("client");
    let systems: Vec<(&str, Vec<String>)> = UUIDS
        .iter()
        .enumerate()
        .map(|(i, uuid)| (*uuid, vec![format!("52:54:00:dd:10:0{i}")]))
        .collect();
    let bmc = common::emulated_bmc(&systems, true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics_port = testenv::net::free_port().expect("port");
    let operator = start_operator(control_plane, dir.path(), &bmc, metrics_port);
    let endpoints: Api<Endpoint> = Api::all(client.clone());
    let bmcs: Api<BMC> = Api::all(client.clone());
    let servers: Api<Server> = Api::all(client.clone());
    let secrets: Api<BMCSecret> = Api::all(client.clone());

    // (a) DHCP-based: an Endpoint with a known MAC prefix.
    endpoints
        .create(
            &PostParams::default(),
            &Endpoint::new(
                "bmc-from-dhcp",
                EndpointSpec {
                    mac_address: "52:54:00:dd:00:01".into(),
                    ip: "127.0.0.1".into(),
                },
            ),
        )
        .await
        .expect("create endpoint");
    let found = eventually("Servers of bmc-from-dhcp", || async {
        let found = servers_of(&servers, "bmc-from-dhcp").await;
        (found.len() == 2).then_some(found)
    })
    .await;
    assert_eq!(found, expected("bmc-from-dhcp"));
    let (status, reason, _) = eventually("bmc-from-dhcp Ready", || {
        ready_reason(&bmcs, "bmc-from-dhcp")
    })
    .await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Connected"));
    let status = bmcs
        .get("bmc-from-dhcp")
        .await
        .expect("bmc")
        .status
        .expect("status");
    assert_eq!(status.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(status.mac_address.as_deref(), Some("52:54:00:dd:00:01"));
    assert_eq!(status.state.as_deref(), Some("Enabled"));
    let server = servers.get("bmc-from-dhcp-system-0").await.expect("server");
    assert_eq!(
        server.spec.system_uri.as_deref(),
        Some(format!("/redfish/v1/Systems/{}", UUIDS[0]).as_str())
    );
    let owner = &server.metadata.owner_references.expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("BMC", "bmc-from-dhcp")
    );

    // (b) BMC-based: applied directly with spec.access and a user's BMCSecret.
    secrets
        .create(
            &PostParams::default(),
            &BMCSecret::with_credentials("direct-creds", "admin", "bmc-pw"),
        )
        .await
        .expect("secret");
    let apply = |yaml: String| {
        let mut kubectl = control_plane.kubectl().expect("kubectl");
        kubectl.args(["apply", "-f", "-"]);
        async move {
            let output = tokio::task::spawn_blocking(move || {
                use std::io::Write;
                let mut child = kubectl
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("kubectl");
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(yaml.as_bytes())
                    .expect("write");
                child.wait_with_output().expect("wait")
            })
            .await
            .expect("join");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    };
    apply(bmc_yaml("bmc-direct", bmc.port(), "direct-creds")).await;
    let found = eventually("Servers of bmc-direct", || async {
        let found = servers_of(&servers, "bmc-direct").await;
        (found.len() == 2).then_some(found)
    })
    .await;
    assert_eq!(found, expected("bmc-direct"));

    // (c) Wrong credentials and an unreachable BMC are reported; nothing is created for them.
    secrets
        .create(
            &PostParams::default(),
            &BMCSecret::with_credentials("wrong-creds", "admin", "nope"),
        )
        .await
        .expect("secret");
    apply(bmc_yaml("bmc-wrong-password", bmc.port(), "wrong-creds")).await;
    let closed = testenv::net::free_port().expect("port");
    apply(bmc_yaml("bmc-unreachable", closed, "direct-creds")).await;
    let (status, reason, message) = eventually("bmc-wrong-password reported", || {
        ready_reason(&bmcs, "bmc-wrong-password")
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "AuthenticationFailed"),
        "{message}"
    );
    let (status, reason, message) = eventually("bmc-unreachable reported", || {
        ready_reason(&bmcs, "bmc-unreachable")
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ConnectionFailed"),
        "{message}"
    );
    assert!(servers_of(&servers, "bmc-wrong-password").await.is_empty());
    assert!(servers_of(&servers, "bmc-unreachable").await.is_empty());
    // The healthy BMCs are unaffected.
    assert_eq!(
        ready_reason(&bmcs, "bmc-direct")
            .await
            .map(|r| r.1)
            .as_deref(),
        Some("Connected")
    );

    // metal-operator's own BMC sample shape: `spec.access` with only the IP. It is served like
    // any other BMC, and its status names no MAC.
    apply(format!(
        "apiVersion: metal.ironcore.dev/v1alpha1\nkind: BMC\nmetadata: {{name: bmc-ip-only}}\nspec:\n  access: {{ip: 127.0.0.1}}\n  bmcSecretRef: {{name: direct-creds}}\n  protocol: {{name: Redfish, port: {}, scheme: https}}\n",
        bmc.port()
    ))
    .await;
    let found = eventually("Servers of bmc-ip-only", || async {
        let found = servers_of(&servers, "bmc-ip-only").await;
        (found.len() == 2).then_some(found)
    })
    .await;
    assert_eq!(found, expected("bmc-ip-only"));
    let status = bmcs
        .get("bmc-ip-only")
        .await
        .expect("bmc")
        .status
        .expect("status");
    assert_eq!(
        (status.mac_address.as_deref(), status.ip.as_deref()),
        (None, Some("127.0.0.1"))
    );

    // A BMC no installed driver serves was never reached: its state must not say Enabled.
    apply(format!(
        "apiVersion: metal.ironcore.dev/v1alpha1\nkind: BMC\nmetadata: {{name: bmc-ipmi}}\nspec:\n  access: {{ip: 127.0.0.1}}\n  bmcSecretRef: {{name: direct-creds}}\n  protocol: {{name: IPMI, port: {}}}\n",
        bmc.port()
    ))
    .await;
    let (status, reason, message) =
        eventually("bmc-ipmi reported", || ready_reason(&bmcs, "bmc-ipmi")).await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "DriverFailed"),
        "{message}"
    );
    let status = bmcs
        .get("bmc-ipmi")
        .await
        .expect("bmc")
        .status
        .expect("status");
    assert_eq!(status.state.as_deref(), Some("Error"));
    assert_eq!(
        status.power_state,
        Some(ferrometal::api::common::PowerState::Unknown)
    );
    // An Endpoint the schema accepts without a MAC (as metal-operator's does) is reported,
    // not onboarded.
    endpoints
        .create(
            &PostParams::default(),
            &Endpoint::new(
                "endpoint-without-mac",
                EndpointSpec {
                    mac_address: String::new(),
                    ip: "127.0.0.1".into(),
                },
            ),
        )
        .await
        .expect("create endpoint");
    let endpoint_ready = eventually("endpoint-without-mac reported", || {
        common::endpoint_condition(&endpoints, "endpoint-without-mac", "Ready")
    })
    .await;
    assert_eq!(
        (
            endpoint_ready.status.as_str(),
            endpoint_ready.reason.as_str()
        ),
        ("False", "Incomplete"),
        "{}",
        endpoint_ready.message
    );
    assert!(
        bmcs.get_opt("endpoint-without-mac")
            .await
            .expect("get")
            .is_none()
    );

    // (c) Default credentials: the first is refused and the second works; or all are refused.
    for (name, mac) in [
        ("bmc-second-credential", "52:54:00:de:00:01"),
        ("bmc-no-credential", "52:54:00:df:00:01"),
    ] {
        endpoints
            .create(
                &PostParams::default(),
                &Endpoint::new(
                    name,
                    EndpointSpec {
                        mac_address: mac.into(),
                        ip: "127.0.0.1".into(),
                    },
                ),
            )
            .await
            .expect("create endpoint");
    }
    let found = eventually("Servers of bmc-second-credential", || async {
        let found = servers_of(&servers, "bmc-second-credential").await;
        (found.len() == 2).then_some(found)
    })
    .await;
    assert_eq!(found, expected("bmc-second-credential"));
    let secret = secrets.get("bmc-second-credential").await.expect("secret");
    assert_eq!(secret.value("password").as_deref(), Some(&b"bmc-pw"[..]));
    assert_eq!(
        secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("ferrometal.dev/default-credential-index"))
            .map(String::as_str),
        Some("1"),
        "the secret records which default credential worked"
    );
    let (status, reason, message) = eventually("bmc-no-credential exhausted", || async {
        let reported = ready_reason(&bmcs, "bmc-no-credential").await?;
        reported
            .2
            .contains("all 2 default credentials")
            .then_some(reported)
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "AuthenticationFailed"),
        "{message}"
    );

    // What the operator counted, on its metrics endpoint.
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    for expected in [
        r#"ferrometal_reconciles_total{controller="bmc",outcome="ok"}"#,
        r#"ferrometal_reconciles_total{controller="endpoint",outcome="ok"}"#,
        r#"ferrometal_bmc_probes_total{reason="Connected"}"#,
        r#"ferrometal_bmc_probes_total{reason="AuthenticationFailed"}"#,
        r#"ferrometal_bmc_probes_total{reason="ConnectionFailed"}"#,
        r#"ferrometal_plugin_calls_total{plugin="redfish",world="bmc-driver",operation="probe",outcome="ok"}"#,
        // The driver's HTTP requests, by plugin, method and outcome (never by BMC).
        r#"ferrometal_bmc_requests_total{plugin="redfish",method="GET",outcome="2xx"}"#,
        r#"ferrometal_bmc_request_duration_seconds_count{plugin="redfish",method="GET"}"#,
        // The fleet gauges, counted from the watch caches.
        r#"ferrometal_bmcs{reason="Connected"}"#,
        r#"ferrometal_bmcs{reason="AuthenticationFailed"}"#,
        r#"ferrometal_servers{state="Initial"}"#,
        r#"ferrometal_server_longest_in_state_seconds{state="Discovery"}"#,
        r#"metal_server_reconciliation_total{result="success"}"#,
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from:\n{metrics}"
        );
    }
    let health = reqwest::get(format!("http://127.0.0.1:{metrics_port}/healthz"))
        .await
        .expect("healthz");
    assert!(health.status().is_success());

    // An IP change on the Endpoint reaches the BMC (here to an address nothing answers on).
    let patch = serde_json::json!({ "spec": { "ip": "127.0.0.2" } });
    endpoints
        .patch(
            "bmc-from-dhcp",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("patch endpoint");
    eventually("the new IP on bmc-from-dhcp", || async {
        let status = bmcs.get("bmc-from-dhcp").await.ok()?.status?;
        (status.ip.as_deref() == Some("127.0.0.2")).then_some(())
    })
    .await;
    let (status, reason, message) =
        eventually("bmc-from-dhcp unreachable at its new IP", || async {
            let reported = ready_reason(&bmcs, "bmc-from-dhcp").await?;
            (reported.0 == "False").then_some(reported)
        })
        .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ConnectionFailed"),
        "{message}"
    );
    assert_eq!(
        servers_of(&servers, "bmc-from-dhcp").await,
        expected("bmc-from-dhcp"),
        "a failed probe leaves existing Servers alone"
    );

    // (d) Restart the operator: after several resyncs, still exactly the same Servers.
    drop(operator);
    let operator = start_operator(
        control_plane,
        &dir.path().join("again"),
        &bmc,
        testenv::net::free_port().expect("port"),
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        servers_of(&servers, "bmc-from-dhcp").await,
        expected("bmc-from-dhcp")
    );
    assert_eq!(
        servers_of(&servers, "bmc-direct").await,
        expected("bmc-direct")
    );

    // ... and in the middle of an onboarding: the Endpoint's BMC exists, its Servers may not
    // yet. The next operator finishes the job with no duplicates.
    endpoints
        .create(
            &PostParams::default(),
            &Endpoint::new(
                "bmc-mid-restart",
                EndpointSpec {
                    mac_address: "52:54:00:dd:00:03".into(),
                    ip: "127.0.0.1".into(),
                },
            ),
        )
        .await
        .expect("create endpoint");
    eventually("the BMC of bmc-mid-restart", || async {
        bmcs.get_opt("bmc-mid-restart").await.ok()?
    })
    .await;
    drop(operator);
    let _operator = start_operator(
        control_plane,
        &dir.path().join("third"),
        &bmc,
        testenv::net::free_port().expect("port"),
    );
    let found = eventually("Servers of bmc-mid-restart", || async {
        let found = servers_of(&servers, "bmc-mid-restart").await;
        (found.len() == 2).then_some(found)
    })
    .await;
    assert_eq!(found, expected("bmc-mid-restart"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        servers_of(&servers, "bmc-mid-restart").await,
        expected("bmc-mid-restart"),
        "no duplicates after further resyncs"
    );
    assert!(
        secrets
            .get_opt("bmc-mid-restart")
            .await
            .expect("get")
            .is_some()
    );
}

/// With Kubernetes' garbage collector running (kube-controller-manager), deleting an owner
/// removes what ferrometal made for it: a BMC takes its Servers along, an Endpoint its BMC,
/// BMCSecret and (through the BMC) Servers. A BMC deleted while its Endpoint stays is made
/// again from the Endpoint.
#[tokio::test]
async fn deleting_owners_removes_what_was_discovered_for_them() {
    let control_plane = ControlPlane::start_with(testenv::ControlPlaneOptions {
        garbage_collector: true,
        ..Default::default()
    })
    .await
    .expect("control plane with garbage collector");
    let client = control_plane.client().await.expect("client");
    let systems: Vec<(&str, Vec<String>)> = UUIDS
        .iter()
        .enumerate()
        .map(|(i, uuid)| (*uuid, vec![format!("52:54:00:dd:20:0{i}")]))
        .collect();
    let bmc = common::emulated_bmc(&systems, true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics_port = testenv::net::free_port().expect("port");
    let _operator = start_operator(&control_plane, dir.path(), &bmc, metrics_port);
    let endpoints: Api<Endpoint> = Api::all(client.clone());
    let bmcs: Api<BMC> = Api::all(client.clone());
    let servers: Api<Server> = Api::all(client.clone());
    let secrets: Api<BMCSecret> = Api::all(client.clone());

    // A BMC applied directly: deleting it deletes its Servers.
    secrets
        .create(
            &PostParams::default(),
            &BMCSecret::with_credentials("gc-direct", "admin", "bmc-pw"),
        )
        .await
        .expect("secret");
    common::kubectl_apply(
        &control_plane,
        &bmc_yaml("gc-direct", bmc.port(), "gc-direct"),
    );
    eventually("Servers of gc-direct", || async {
        (servers_of(&servers, "gc-direct").await.len() == 2).then_some(())
    })
    .await;
    bmcs.delete("gc-direct", &Default::default())
        .await
        .expect("delete BMC");
    eventually("the Servers of the deleted BMC to be collected", || async {
        servers_of(&servers, "gc-direct")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(
        bmcs.get_opt("gc-direct").await.expect("get").is_none(),
        "not made again"
    );

    // An Endpoint's BMC deleted alone comes back from the Endpoint; deleting the Endpoint
    // removes BMC, BMCSecret and Servers.
    endpoints
        .create(
            &PostParams::default(),
            &Endpoint::new(
                "gc-endpoint",
                EndpointSpec {
                    mac_address: "52:54:00:dd:00:09".into(),
                    ip: "127.0.0.1".into(),
                },
            ),
        )
        .await
        .expect("create endpoint");
    eventually("Servers of gc-endpoint", || async {
        (servers_of(&servers, "gc-endpoint").await.len() == 2).then_some(())
    })
    .await;
    let first = bmcs.get("gc-endpoint").await.expect("bmc").metadata.uid;
    bmcs.delete("gc-endpoint", &Default::default())
        .await
        .expect("delete BMC");
    eventually("the Endpoint's BMC to be made again", || async {
        let again = bmcs.get_opt("gc-endpoint").await.ok()??;
        (again.metadata.uid != first && again.metadata.deletion_timestamp.is_none()).then_some(())
    })
    .await;
    endpoints
        .delete("gc-endpoint", &Default::default())
        .await
        .expect("delete endpoint");
    eventually(
        "everything made for the Endpoint to be collected",
        || async {
            let gone = bmcs.get_opt("gc-endpoint").await.ok()?.is_none()
                && secrets.get_opt("gc-endpoint").await.ok()?.is_none()
                && servers_of(&servers, "gc-endpoint").await.is_empty();
            gone.then_some(())
        },
    )
    .await;
}
