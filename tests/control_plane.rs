//! The real control plane: a kube client creates, watches, updates and deletes objects in a
//! kube-apiserver backed by etcd, and kubectl works with the harness's kubeconfig.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use testenv::ControlPlane;

mod common;
use common::{assert_stopped, ensure_namespace};

const WATCH_TIMEOUT: Duration = Duration::from_secs(30);

async fn namespace(client: &Client, name: &str) -> Api<ConfigMap> {
    ensure_namespace(client, name).await;
    Api::namespaced(client.clone(), name)
}

fn config_map(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        data: Some([("state".to_owned(), value.to_owned())].into()),
        ..Default::default()
    }
}

fn state_of(config_map: &ConfigMap) -> Option<&str> {
    config_map.data.as_ref()?.get("state").map(String::as_str)
}

#[tokio::test]
async fn a_client_creates_watches_updates_and_deletes_an_object() {
    let control_plane = ControlPlane::shared().await.expect("control plane starts");
    let _logs = control_plane.logs_on_failure();
    let client = control_plane.client().await.expect("client");
    let api = namespace(&client, "control-plane-watch").await;

    let config = watcher::Config::default().fields("metadata.name=server-0");
    let mut events = watcher::watcher(api.clone(), config).boxed();
    // The initial list of an empty selection completes before anything is created.
    loop {
        match tokio::time::timeout(WATCH_TIMEOUT, events.try_next()).await {
            Ok(Ok(Some(Event::InitDone))) => break,
            Ok(Ok(Some(_))) => {}
            other => panic!("watch did not start: {other:?}"),
        }
    }

    api.create(&PostParams::default(), &config_map("server-0", "Initial"))
        .await
        .expect("create");
    let seen = next_object(&mut events).await;
    assert_eq!(state_of(&seen), Some("Initial"));

    let patch = serde_json::json!({ "data": { "state": "Available" } });
    api.patch("server-0", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    let seen = next_object(&mut events).await;
    assert_eq!(state_of(&seen), Some("Available"));

    api.delete("server-0", &DeleteParams::default())
        .await
        .expect("delete");
    match tokio::time::timeout(WATCH_TIMEOUT, events.try_next()).await {
        Ok(Ok(Some(Event::Delete(deleted)))) => {
            assert_eq!(deleted.metadata.name.as_deref(), Some("server-0"));
        }
        other => panic!("expected a delete event, got {other:?}"),
    }
    assert!(api.get_opt("server-0").await.expect("get").is_none());
}

async fn next_object(
    events: &mut (impl futures::Stream<Item = Result<Event<ConfigMap>, watcher::Error>> + Unpin),
) -> ConfigMap {
    match tokio::time::timeout(WATCH_TIMEOUT, events.try_next()).await {
        Ok(Ok(Some(Event::Apply(object)))) => object,
        other => panic!("expected an applied object, got {other:?}"),
    }
}

#[tokio::test]
async fn objects_survive_in_etcd_across_clients() {
    let control_plane = ControlPlane::shared().await.expect("control plane starts");
    let _logs = control_plane.logs_on_failure();
    let writer = control_plane.client().await.expect("client");
    let api = namespace(&writer, "control-plane-persist").await;
    api.create(&PostParams::default(), &config_map("bmc-0", "Enabled"))
        .await
        .expect("create");
    drop(writer);

    let reader = control_plane.client().await.expect("second client");
    let api: Api<ConfigMap> = Api::namespaced(reader, "control-plane-persist");
    let read = api.get("bmc-0").await.expect("get");
    assert_eq!(state_of(&read), Some("Enabled"));
}

#[tokio::test]
async fn rbac_denies_an_unprivileged_user() {
    let control_plane = ControlPlane::shared().await.expect("control plane starts");
    let _logs = control_plane.logs_on_failure();
    let client = control_plane.client().await.expect("client");
    let namespaces: Api<Namespace> = Api::all(client);
    // The admin may list namespaces...
    let list = namespaces
        .list(&Default::default())
        .await
        .expect("admin lists");
    assert!(
        list.items
            .iter()
            .any(|ns| ns.metadata.name.as_deref() == Some("default"))
    );
    // ...and impersonating a user with no bindings is forbidden: RBAC is really enforced.
    let output = control_plane
        .kubectl()
        .expect("kubectl")
        .args(["get", "secrets", "--as=nobody", "-n", "default"])
        .output()
        .expect("run kubectl");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Forbidden") || stderr.contains("forbidden"),
        "{stderr}"
    );
}

#[tokio::test]
async fn kubectl_works_with_the_written_kubeconfig() {
    let control_plane = ControlPlane::shared().await.expect("control plane starts");
    let _logs = control_plane.logs_on_failure();
    let output = control_plane
        .kubectl()
        .expect("kubectl")
        .args(["get", "namespace", "default", "-o", "name"])
        .output()
        .expect("run kubectl");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.trim(), "namespace/default");
}

#[tokio::test]
async fn a_dropped_control_plane_stops_its_servers() {
    let options = testenv::ControlPlaneOptions {
        crds_dir: None,
        ..Default::default()
    };
    let control_plane = ControlPlane::start_with(options).await.expect("start");
    let port: u16 = control_plane
        .server_url()
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("port in server URL");
    let run_dir = control_plane.run_dir().to_path_buf();
    let pids = control_plane.pids();
    drop(control_plane);

    assert_stopped(port, &pids, &run_dir).await;
}

#[tokio::test]
async fn every_crd_of_the_repository_is_installed_and_established() {
    let control_plane = ControlPlane::shared().await.expect("control plane starts");
    let _logs = control_plane.logs_on_failure();
    let client = control_plane.client().await.expect("client");

    let mut expected: Vec<String> = ferrometal::api::crds()
        .into_iter()
        .filter_map(|crd| crd.metadata.name)
        .collect();
    expected.sort();
    let mut installed = control_plane.crds().to_vec();
    installed.sort();
    assert_eq!(
        installed, expected,
        "the harness installs every CRD in crds/"
    );

    let api: Api<CustomResourceDefinition> = Api::all(client);
    for name in &expected {
        let crd = api.get(name).await.expect("CRD exists");
        let established = crd
            .status
            .and_then(|status| status.conditions)
            .unwrap_or_default()
            .into_iter()
            .any(|condition| condition.type_ == "Established" && condition.status == "True");
        assert!(established, "{name} is Established");
    }
}
