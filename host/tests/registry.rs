//! The registry in `ferrometal run` against Go: reports marshalled by Go's `encoding/json` from
//! metal-operator's registry types (nil slices, zero values, `omitempty`, a zero time written
//! as `null`) are accepted in both registry modes, and the `GET /systems/<uuid>` answer
//! decodes into those types with Go. The Go side is `tests/data/go-registry` (standard library
//! only, built offline with the local toolchain); the committed fixtures the unit tests read
//! are compared with what it writes.
//!
//! The modes: by default every request carries the boot's token (the scheme in any case);
//! with `--registry-allow-unauthenticated` (metal-operator's own metalprobe) requests without
//! one are accepted too, a wrong one still refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ferrometal::api::{Server, ServerBootConfiguration};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};
mod common;
use common::eventually;
use testenv::{ControlPlane, OciRegistry};

const NAMESPACE: &str = "registry-test";
/// The machine the Go program reports for.
const UUID: &str = "2e6f0000-0000-4000-8000-000000000001";
const SERVER: &str = "go-reporter";
const TOKEN: &str = "registry-test-token";

/// The Go program's directory.
fn go_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/go-registry")
}

/// Builds the Go program into `dir` with the local toolchain and no network.
fn build_go(dir: &Path) -> PathBuf {
    let binary = dir.join("goregistry");
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(go_dir())
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOWORK", "off")
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .output()
        .expect("Go is installed (`cargo xtask setup` needs it too)");
    assert!(
        built.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    binary
}

/// The registration Go marshals for `case`.
fn go_marshal(go: &Path, case: &str) -> String {
    let output = Command::new(go)
        .args(["marshal", case])
        .output()
        .expect("goregistry runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// What Go decodes from `answer` into metal-operator's `registry.Server`, marshalled again.
fn go_decode(go: &Path, answer: &[u8]) -> Value {
    use std::io::Write;
    let mut child = Command::new(go)
        .arg("decode")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("goregistry runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(answer)
        .expect("write the answer");
    let output = child.wait_with_output().expect("goregistry ends");
    assert!(
        output.status.success(),
        "Go cannot read the answer {}: {}",
        String::from_utf8_lossy(answer),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("Go's JSON")
}

struct Fixture {
    client: Client,
    base_url: String,
    http: reqwest::Client,
    go: PathBuf,
}

impl Fixture {
    /// `ferrometal run` serving the boot server and the registry on `port`.
    fn operator(
        &self,
        control_plane: &ControlPlane,
        registry: &str,
        extra: &[&str],
    ) -> testenv::Program {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferrometal"));
        command
            .arg("run")
            .args(["--plugin-dir", "/nonexistent"])
            .args(["--metrics-bind-address", "127.0.0.1:0"])
            .args(["--namespace", NAMESPACE])
            .arg("--boot-bind-address")
            .arg(self.base_url.trim_start_matches("http://"))
            .arg("--boot-server-url")
            .arg(&self.base_url)
            .args(["--boot-allowed-registries", registry])
            .args(["--boot-insecure-registries", registry])
            .args(extra)
            .env("KUBECONFIG", control_plane.kubeconfig_path())
            .env("FERROMETAL_LOG", "info,ferrometal=debug");
        testenv::Program::start("ferrometal-run", command).expect("start ferrometal run")
    }

    /// `POST /register` with `body` and, if given, `authorization`: (status, answer).
    async fn register(&self, body: &str, authorization: Option<&str>) -> (u16, String) {
        let mut request = self
            .http
            .post(format!("{}/register", self.base_url))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.expect("registry answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// Waits until the registry serves the machine (the operator indexed its boot).
    async fn served(&self, authorization: Option<&str>) {
        eventually("the registry to serve the machine", || async {
            let response = self
                .http
                .get(format!("{}/systems/{UUID}", self.base_url))
                .header("authorization", authorization.unwrap_or(""))
                .send()
                .await
                .ok()?;
            // 503 while the boot index is being filled after the start.
            let starting = response.status() == 503;
            let text = response.text().await.ok()?;
            (!starting && !text.contains("is not being discovered")).then_some(())
        })
        .await;
    }

    /// `GET /systems/<uuid>` as metal-operator's controller does, decoded by Go.
    async fn systems(&self, authorization: Option<&str>) -> Value {
        let mut request = self.http.get(format!("{}/systems/{UUID}", self.base_url));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.expect("registry answers");
        assert_eq!(response.status(), 200);
        go_decode(&self.go, &response.bytes().await.expect("body"))
    }

    /// The Server's status once its `ProbeReported` message satisfies `done`.
    async fn reported(&self, done: impl Fn(&str) -> bool) -> ferrometal::api::server::ServerStatus {
        let servers: Api<Server> = Api::all(self.client.clone());
        eventually("the report in the Server's status", || async {
            let status = servers.get(SERVER).await.ok()?.status?;
            let reported = status
                .conditions
                .iter()
                .find(|c| c.type_ == "ProbeReported")?;
            done(&reported.message).then_some(status)
        })
        .await
    }
}

#[tokio::test]
async fn reports_go_writes_are_accepted_and_the_answer_reads_in_go() {
    let control_plane = ControlPlane::shared().await.expect("control plane");
    let _logs = control_plane.logs_on_failure();
    let client = control_plane.client().await.expect("client");
    let dir = tempfile::tempdir().expect("temp dir");

    // The Go program writes what the committed fixtures hold.
    let go = build_go(dir.path());
    let cases: BTreeMap<&str, String> = ["probe", "zero", "null-time"]
        .into_iter()
        .map(|case| (case, go_marshal(&go, case)))
        .collect();
    for (case, marshalled) in &cases {
        let fixture = std::fs::read_to_string(go_dir().join(format!("{case}.json")))
            .expect("committed fixture");
        assert_eq!(
            marshalled, &fixture,
            "{case}.json differs from what Go writes; regenerate it with `go run . marshal {case} > {case}.json` there"
        );
    }
    assert!(cases["probe"].contains(r#""ipAddresses":null"#));
    assert!(cases["probe"].contains(r#""capabilities":null"#));
    assert!(cases["probe"].contains(r#""neighbors":null"#));
    assert!(cases["null-time"].contains(r#""timestamp":null"#));

    // A machine being booted: Server, ignition Secret with its token, ready SBC.
    let registry = OciRegistry::start().await.expect("OCI registry");
    let image = common::push_discovery_image(&registry).await;
    common::create_namespace(&client, NAMESPACE).await;
    let server: Server = serde_json::from_value(json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1",
        "kind": "Server",
        "metadata": {"name": SERVER},
        // The Server names its boot configuration: only that one is served for it.
        "spec": {"systemUUID": UUID,
                 "bootConfigurationRef": {"namespace": NAMESPACE, "name": SERVER}},
    }))
    .expect("server");
    Api::<Server>::all(client.clone())
        .create(&PostParams::default(), &server)
        .await
        .expect("create server");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(SERVER.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            (
                String::from("ignition"),
                ByteString(br#"{"ignition":{"version":"3.4.0"}}"#.to_vec()),
            ),
            (
                String::from("boot-token"),
                ByteString(TOKEN.as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
    let sbc: ServerBootConfiguration = serde_json::from_value(json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1",
        "kind": "ServerBootConfiguration",
        "metadata": {"name": SERVER, "namespace": NAMESPACE},
        "spec": {"serverRef": {"name": SERVER}, "image": image.reference,
                 "ignitionSecretRef": {"name": SERVER}},
    }))
    .expect("sbc");
    Api::<ServerBootConfiguration>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &sbc)
        .await
        .expect("create sbc");

    let port = testenv::net::free_port().expect("port");
    let fixture = Fixture {
        client: client.clone(),
        base_url: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
        go,
    };

    // Default mode: the token is required; the scheme is matched in any case.
    let operator = fixture.operator(control_plane, registry.host(), &[]);
    let lower = format!("bearer {TOKEN}");
    let upper = format!("BEARER {TOKEN}");
    fixture.served(Some(&lower)).await;
    assert_eq!(fixture.register(&cases["probe"], None).await.0, 401);
    let (status, answer) = fixture.register(&cases["probe"], Some(&lower)).await;
    assert_eq!(status, 201, "{answer}");
    let facts = fixture
        .reported(|message| message.ends_with("collected at 2026-01-02T03:04:05Z"))
        .await;
    let macs: Vec<_> = facts
        .network_interfaces
        .iter()
        .map(|n| n.mac_address.as_str())
        .collect();
    assert_eq!(macs, ["52:54:00:2e:00:01", "52:54:00:2e:00:02"]);
    assert_eq!(facts.network_interfaces[0].ips, ["10.0.0.5", "fd00::5"]);
    assert!(
        facts.network_interfaces[1].ips.is_empty(),
        "nil ipAddresses: none"
    );
    assert_eq!(
        facts.network_interfaces[0].neighbors[0]
            .system_name
            .as_deref(),
        Some("leaf-1")
    );
    assert_eq!(facts.processors[0].total_cores, Some(4));
    assert_eq!(
        facts.total_system_memory.map(|q| q.0).as_deref(),
        Some("16Gi")
    );
    assert_eq!(facts.storages[0].drives[0].name, "sda");
    assert_eq!(facts.sku.as_deref(), Some("SKU-1"));

    // metal-operator's controller reads the answer into its types.
    let seen = fixture.systems(Some(&upper)).await;
    let timestamp = seen["timestamp"].as_str().expect("a timestamp Go parsed");
    let arrival: k8s_openapi::jiff::Timestamp = timestamp.parse().expect("RFC 3339");
    assert!(
        arrival > "2026-01-02T03:04:05Z".parse().expect("time"),
        "the arrival, not the machine's clock"
    );
    assert_eq!(seen["cpu"][0]["totalCores"], 4);
    assert_eq!(seen["cpu"][0]["totalHardwareThreads"], 8);
    assert_eq!(seen["memory"][0]["size"], 16u64 << 30);
    assert_eq!(seen["storage"][0]["sizeBytes"], 64u64 << 30);
    assert_eq!(
        seen["networkInterfaces"][1]["macAddress"],
        "52:54:00:2e:00:02"
    );
    assert_eq!(seen["lldp"][0]["neighbors"][0]["portId"], "Ethernet1/7");
    assert_eq!(
        seen["systemInfo"]["systemInformation"]["serialNumber"],
        "SN-1"
    );

    // A zero-value report (every slice nil, no timestamp) replaces it, and says so.
    let (status, answer) = fixture.register(&cases["zero"], Some(&upper)).await;
    assert_eq!(status, 201, "{answer}");
    let facts = fixture
        .reported(|message| message.contains("no collection time stated"))
        .await;
    assert!(facts.network_interfaces.is_empty() && facts.processors.is_empty());
    let seen = fixture.systems(Some(&lower)).await;
    assert!(seen["timestamp"].is_string(), "{seen}");
    drop(operator);

    // Compatibility mode: metal-operator's metalprobe sends no token.
    let _operator = fixture.operator(
        control_plane,
        registry.host(),
        &["--registry-allow-unauthenticated"],
    );
    fixture.served(None).await;
    let (status, answer) = fixture.register(&cases["null-time"], None).await;
    assert_eq!(status, 201, "{answer}");
    let facts = fixture
        .reported(|message| {
            message.starts_with("metalprobe reported 1 network interfaces, 1 CPUs")
                && message.contains("no collection time stated")
        })
        .await;
    assert_eq!(facts.network_interfaces[0].mac_address, "52:54:00:2e:00:01");
    assert!(facts.network_interfaces[0].ips.is_empty());
    assert!(facts.network_interfaces[0].neighbors.is_empty());
    assert_eq!(facts.processors[0].total_cores, Some(2));
    let seen = fixture.systems(None).await;
    assert!(seen["timestamp"].is_string(), "{seen}");
    assert_eq!(seen["cpu"][0]["totalCores"], 2);
    assert_eq!(
        fixture
            .register(&cases["probe"], Some("Bearer wrong"))
            .await
            .0,
        403,
        "a wrong token is still refused"
    );
    let (status, answer) = fixture.register(&cases["probe"], None).await;
    assert_eq!(status, 201, "{answer}");
    fixture
        .reported(|message| message.ends_with("collected at 2026-01-02T03:04:05Z"))
        .await;
}
