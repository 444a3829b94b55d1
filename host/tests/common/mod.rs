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
