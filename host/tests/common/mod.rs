//! Shared helpers of the host's integration tests.

use std::future::Future;
use std::time::Duration;

/// Polls `probe` every 100 ms until it returns `Some`, for at most 60 s.
pub async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    for _ in 0..600 {
        if let Some(value) = probe().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A plugin directory under `dir` holding the named components (built by `make plugins`).
#[allow(dead_code)] // Not every test binary runs the operator.
pub fn plugin_dir(dir: &std::path::Path, names: &[&str]) -> std::path::PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugin dir");
    for name in names {
        let component = testenv::components::component(name).expect("built by `make plugins`");
        std::fs::copy(&component, plugins.join(format!("{name}.wasm"))).expect("copy plugin");
    }
    plugins
}

/// Creates namespace `name` (tests sharing a control plane keep to their own).
#[allow(dead_code)] // Only the tests of namespaced objects need one.
pub async fn create_namespace(client: &kube::Client, name: &str) {
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("namespace");
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .create(&kube::api::PostParams::default(), &namespace)
        .await
        .expect("create namespace");
}

/// `kubectl apply` of `yaml` against `control_plane`, as a user would; panics with kubectl's
/// message if it is refused.
#[allow(dead_code)] // Only tests that apply YAML use it.
pub fn kubectl_apply(control_plane: &testenv::ControlPlane, yaml: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("objects.yaml");
    std::fs::write(&path, yaml).expect("write objects");
    let applied = control_plane
        .kubectl()
        .expect("kubectl")
        .args(["apply", "-f"])
        .arg(&path)
        .output()
        .expect("kubectl runs");
    assert!(
        applied.status.success(),
        "kubectl apply refused:\n{yaml}\n{}",
        String::from_utf8_lossy(&applied.stderr)
    );
}

/// A sushy-emulator BMC with Basic auth `admin`/`bmc-pw` and one powered-off system per
/// `(uuid, MACs)`.
#[allow(dead_code)] // Not every test binary talks to a BMC.
pub async fn emulated_bmc(systems: &[(&str, Vec<String>)], tls: bool) -> testenv::SushyEmulator {
    testenv::SushyEmulator::start(testenv::SushyOptions {
        systems: systems
            .iter()
            .enumerate()
            .map(|(i, (uuid, macs))| testenv::FakeSystem {
                uuid: (*uuid).to_owned(),
                name: format!("machine-{i}"),
                power_state: testenv::PowerState::Off,
                boot_mode: Default::default(),
                macs: macs.clone(),
            })
            .collect(),
        auth: Some(testenv::BasicAuth {
            username: "admin".into(),
            password: "bmc-pw".into(),
        }),
        tls,
        ..Default::default()
    })
    .await
    .expect("sushy-emulator")
}
