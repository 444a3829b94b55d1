//! `ferrometal run` against a real control plane: Endpoints are onboarded through the bundled
//! `macdb` plugin (DHCP-based discovery up to the BMC and its BMCSecret).

use std::process::Command;

use ferrometal::api::{BMC, BMCSecret, Endpoint, EndpointSpec};
use kube::Api;
use kube::api::PostParams;
mod common;
use common::eventually;
use testenv::ControlPlane;

/// Starts `ferrometal run` (killed with the test; its log is printed if the test fails).
fn start_operator(control_plane: &ControlPlane, dir: &std::path::Path) -> testenv::Program {
    // Only the bundled lookup plugin, so it is the active one without configuration.
    let plugins = common::plugin_dir(dir, &["macdb"]);
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrometal"));
    command
        .arg("run")
        .arg("--plugin-dir")
        .arg(&plugins)
        .arg("--mac-db")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/macdb.yaml"
        ))
        .env("KUBECONFIG", control_plane.kubeconfig_path())
        .args(["--metrics-bind-address", "127.0.0.1:0"])
        .args(["--boot-bind-address", "127.0.0.1:0"])
        .env("FERROMETAL_LOG", "info,ferrometal=debug");
    testenv::Program::start("ferrometal-run", command).expect("start ferrometal run")
}

fn endpoint(name: &str, mac: &str) -> Endpoint {
    Endpoint::new(
        name,
        EndpointSpec {
            mac_address: mac.into(),
            ip: "127.0.0.1".into(),
        },
    )
}

#[tokio::test]
async fn endpoints_are_onboarded_or_reported_and_rotated_secrets_are_kept() {
    let control_plane = ControlPlane::shared().await.expect("control plane");
    let _logs = control_plane.logs_on_failure();
    let client = control_plane.client().await.expect("client");
    let dir = tempfile::tempdir().expect("tempdir");
    let _operator = start_operator(control_plane, dir.path());
    let endpoints: Api<Endpoint> = Api::all(client.clone());
    let bmcs: Api<BMC> = Api::all(client.clone());
    let secrets: Api<BMCSecret> = Api::all(client.clone());

    // A user rotated the credentials before the Endpoint appeared: they must survive.
    secrets
        .create(
            &PostParams::default(),
            &BMCSecret::with_credentials("ep-rotated", "admin", "rotated"),
        )
        .await
        .expect("create secret");

    for (name, mac) in [
        ("ep-known", "52:54:00:12:34:56"),
        ("ep-unknown", "00:00:5E:00:53:01"),
        ("ep-rotated", "52-54-00-12-34-57"),
    ] {
        endpoints
            .create(&PostParams::default(), &endpoint(name, mac))
            .await
            .expect("create endpoint");
    }

    let bmc = eventually("BMC ep-known", || async {
        bmcs.get_opt("ep-known").await.ok().flatten()
    })
    .await;
    assert_eq!(
        bmc.spec.endpoint_ref.as_ref().map(|r| r.name.as_str()),
        Some("ep-known")
    );
    assert_eq!(bmc.spec.bmc_secret_ref.name, "ep-known");
    assert_eq!(bmc.spec.protocol.port, 8443);
    assert_eq!(
        serde_json::to_value(&bmc.spec.protocol).expect("json"),
        serde_json::json!({"name": "Redfish", "port": 8443, "scheme": "https"})
    );
    let owner = &bmc.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Endpoint", "ep-known")
    );

    let secret = eventually("BMCSecret ep-known", || async {
        secrets.get_opt("ep-known").await.ok().flatten()
    })
    .await;
    assert_eq!(secret.value("username").as_deref(), Some(&b"admin"[..]));
    assert_eq!(
        secret.value("password").as_deref(),
        Some(&b"admin"[..]),
        "the first default credential"
    );

    let ready = eventually("ep-known Ready", || async {
        let endpoint = endpoints.get("ep-known").await.ok()?;
        let condition = endpoint
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (condition.status == "True").then_some(condition)
    })
    .await;
    assert_eq!(ready.reason, "BMCCreated");
    assert!(ready.observed_generation.is_some());

    let unknown = eventually("ep-unknown reported", || {
        common::endpoint_condition(&endpoints, "ep-unknown", "Ready")
    })
    .await;
    assert_eq!(
        (unknown.status.as_str(), unknown.reason.as_str()),
        ("False", "UnknownMACAddress")
    );
    assert!(
        unknown.message.contains("00:00:5E:00:53:01"),
        "{}",
        unknown.message
    );
    assert!(
        bmcs.get_opt("ep-unknown").await.expect("get").is_none(),
        "nothing created for an unknown MAC"
    );

    eventually("BMC ep-rotated", || async {
        bmcs.get_opt("ep-rotated").await.ok().flatten()
    })
    .await;
    let kept = secrets.get("ep-rotated").await.expect("secret");
    assert_eq!(
        kept.value("password").as_deref(),
        Some(&b"rotated"[..]),
        "rotated credentials are never overwritten"
    );

    // The event a person sees in `kubectl describe endpoint ep-unknown`.
    let output = control_plane
        .kubectl()
        .expect("kubectl")
        .args([
            "get",
            "events",
            "-A",
            "--field-selector",
            "involvedObject.name=ep-unknown",
            "-o",
            "jsonpath={.items[*].reason}",
        ])
        .output()
        .expect("kubectl");
    let reasons = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(reasons.contains("UnknownMACAddress"), "events: {reasons:?}");
}

#[test]
fn run_refuses_to_start_without_the_crds() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let control_plane = runtime
        .block_on(ControlPlane::start_with(testenv::ControlPlaneOptions {
            crds_dir: None,
            ..Default::default()
        }))
        .expect("bare control plane");
    let output = Command::new(env!("CARGO_BIN_EXE_ferrometal"))
        .arg("run")
        .env("KUBECONFIG", control_plane.kubeconfig_path())
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("kubectl apply -f crds/"), "{stderr}");
}
