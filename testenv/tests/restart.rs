//! The harness's crashes and restarts, as the kill campaign (`host/tests/chaos.rs`) uses
//! them: etcd and kube-apiserver killed with `SIGKILL` and started again keep every object
//! and their address; a stopped OCI registry refuses connections and, started again, serves
//! what it held.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;

/// A ConfigMap named `name` in `default`.
async fn create(config_maps: &Api<ConfigMap>, name: &str) {
    let config_map: ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))
            .expect("config map");
    config_maps
        .create(&PostParams::default(), &config_map)
        .await
        .unwrap_or_else(|error| panic!("create {name}: {error}"));
}

#[tokio::test]
async fn a_restarted_etcd_and_apiserver_keep_every_object_and_their_address() {
    let mut control_plane = testenv::ControlPlane::start().await.expect("control plane");
    // One client throughout: the restarted servers are where it knows them.
    let client = control_plane.client().await.expect("client");
    let config_maps: Api<ConfigMap> = Api::namespaced(client, "default");
    create(&config_maps, "before-the-crashes").await;

    let [apiserver, etcd] = control_plane.pids();
    control_plane
        .restart_etcd(Duration::from_millis(500))
        .await
        .expect("etcd starts again");
    assert_ne!(control_plane.pids()[1], etcd, "etcd is a new process");
    create(&config_maps, "after-etcd").await;

    control_plane
        .restart_apiserver(Duration::from_millis(500))
        .await
        .expect("kube-apiserver starts again");
    assert_ne!(
        control_plane.pids()[0],
        apiserver,
        "kube-apiserver is a new process"
    );
    for name in ["before-the-crashes", "after-etcd"] {
        config_maps
            .get(name)
            .await
            .unwrap_or_else(|error| panic!("{name} after both restarts: {error}"));
    }
}

#[tokio::test]
async fn a_stopped_registry_refuses_and_started_again_serves_what_it_held() {
    let mut registry = testenv::OciRegistry::start().await.expect("registry");
    let image = registry
        .push_image(
            "outage:1",
            &[("application/vnd.ironcore.image.kernel", b"kernel")],
        )
        .await
        .expect("push");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let manifest = format!("http://{}/v2/outage/manifests/1", registry.host());
    let get = || {
        http.get(&manifest)
            .header("Accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
    };

    registry.stop().expect("stop");
    assert!(!registry.is_running());
    assert!(get().await.is_err(), "a stopped registry answered");

    registry.resume().await.expect("start again");
    assert!(registry.is_running());
    let response = get().await.expect("the registry answers again");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("docker-content-digest")
            .and_then(|digest| digest.to_str().ok()),
        Some(image.digest.as_str()),
        "the same manifest as before the outage"
    );
}
