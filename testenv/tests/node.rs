//! The harness's node: a Pod from a locally built image runs and becomes Ready, Services
//! reach it through kube-proxy (from another Pod, from a Pod to itself and from a
//! hostNetwork Pod), Pods on the Pod network and on the host's reach kube-apiserver through
//! the `kubernetes` Service with their in-cluster settings, and stopping the node and its
//! control plane leaves nothing on the machine.

use std::io::Write;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServiceAccount};
use kube::Api;
use kube::api::{DeleteParams, ListParams, LogParams, PostParams};
use testenv::node::{ArchiveFormat, BUSYBOX_IMAGE, Node, NodeOptions};
use testenv::{ControlPlane, ControlPlaneOptions};

const NAMESPACE: &str = "node-test";

/// Prints past libtest's capture, like the harness's own progress lines.
fn say(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "node test: {line}");
}

fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("valid object")
}

/// Polls `check` every 250 ms until it returns `Some`, failing after `limit` with `what`.
async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A ClusterIP Service on port 80 for the Pods labelled `app=<name>`, port 8080.
async fn create_service(services: &Api<Service>, name: &str) -> String {
    let service = services
        .create(
            &PostParams::default(),
            &from_json(serde_json::json!({
                "metadata": { "name": name },
                "spec": {
                    "selector": { "app": name },
                    "ports": [{ "port": 80, "targetPort": 8080 }],
                },
            })),
        )
        .await
        .unwrap_or_else(|error| panic!("create service {name}: {error}"));
    service
        .spec
        .and_then(|spec| spec.cluster_ip)
        .expect("a cluster IP")
}

/// A shell function `fetch ADDRESS` that GETs `http://ADDRESS/` with busybox `nc` (its
/// `wget` crashes), printing the response; it tries for 30 s.
const FETCH: &str = "fetch() { i=0; while [ $i -lt 30 ]; do \
    page=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 \"$1\" 80); \
    [ -n \"$page\" ] && echo \"$page\" && return 0; i=$((i+1)); sleep 1; done; return 1; };";

/// A shell command that sends plain HTTP to kube-apiserver at the in-cluster address kubelet
/// sets (`KUBERNETES_SERVICE_HOST`, the `kubernetes` Service) and prints what it answers
/// ("Client sent an HTTP request to an HTTPS server"), then says whether the ServiceAccount
/// token is mounted.
const API: &str = "echo \"API at $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT\"; \
    printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 \"$KUBERNETES_SERVICE_HOST\" \"$KUBERNETES_SERVICE_PORT\"; \
    [ -s /var/run/secrets/kubernetes.io/serviceaccount/token ] && echo token mounted";

/// Waits until Pod `name` has finished; its phase and its logs (read through kubelet).
async fn finished(pods: &Api<Pod>, name: &str) -> (String, String) {
    let phase = eventually(
        Duration::from_secs(60),
        &format!("Pod {name} finished"),
        || async {
            let pod = pods.get(name).await.ok()?;
            let phase = pod.status?.phase?;
            (phase == "Succeeded" || phase == "Failed").then_some(phase)
        },
    )
    .await;
    let logs = pods
        .logs(name, &LogParams::default())
        .await
        .unwrap_or_else(|error| panic!("logs of {name} through kubelet: {error}"));
    (phase, logs)
}

fn pod_is_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|status| status.phase.as_deref()) == Some("Running")
        && status
            .and_then(|status| status.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|condition| condition.type_ == "Ready" && condition.status == "True")
            })
}

#[tokio::test]
async fn a_pod_serves_through_a_service_and_the_node_leaves_nothing_behind() {
    if !testenv::netns::available() {
        say(format_args!("skipped: a node needs root"));
        return;
    }
    let netns_before = std::fs::read_dir("/run/netns").map_or(0, |entries| entries.count());
    let options = ControlPlaneOptions {
        crds_dir: None,
        node: true,
        ..ControlPlaneOptions::default()
    };
    let bridge = options.node_network.bridge.clone();
    let control_plane = ControlPlane::start_with(options)
        .await
        .expect("control plane for a node");
    let node_ip = control_plane
        .node_network()
        .expect("the node's network")
        .ip();
    assert_eq!(
        control_plane.api_address(),
        node_ip,
        "kube-apiserver listens on the node's bridge address"
    );
    let node = Node::start(&control_plane, NodeOptions::default())
        .await
        .expect("node");
    assert_eq!(node.ip(), node_ip);
    say(format_args!(
        "node start-up: {:.1}s",
        node.started_in().as_secs_f64()
    ));
    let imported = node
        .import_busybox(ArchiveFormat::Oci)
        .expect("import the busybox image");
    assert_eq!(imported.reference, BUSYBOX_IMAGE);

    let client = control_plane.client().await.expect("client");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &from_json(serde_json::json!({ "metadata": { "name": NAMESPACE } })),
        )
        .await
        .expect("create namespace");
    // Pods are admitted only once kube-controller-manager made the namespace's account.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    eventually(
        Duration::from_secs(30),
        "the default ServiceAccount",
        || async { accounts.get_opt("default").await.ok().flatten() },
    )
    .await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let web_ip = create_service(&services, "web").await;
    let hairpin_ip = create_service(&services, "hairpin").await;
    let started = Instant::now();
    pods.create(
        &PostParams::default(),
        &from_json(serde_json::json!({
            "metadata": { "name": "web", "labels": { "app": "web" } },
            "spec": {
                "containers": [{
                    "name": "httpd",
                    "image": BUSYBOX_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                    "ports": [{ "containerPort": 8080 }],
                    "readinessProbe": {
                        "httpGet": { "path": "/", "port": 8080 },
                        "periodSeconds": 1,
                    },
                }],
            },
        })),
    )
    .await
    .expect("create the web Pod");
    let web = eventually(
        Duration::from_secs(60),
        "the web Pod Running and Ready",
        || async { pods.get("web").await.ok().filter(pod_is_ready) },
    )
    .await;
    say(format_args!(
        "web Pod Ready {:.1}s after it was created, at {}",
        started.elapsed().as_secs_f64(),
        web.status
            .and_then(|status| status.pod_ip)
            .unwrap_or_default()
    ));

    // The client serves too, behind the `hairpin` Service, and reaches itself through it:
    // kube-proxy sends that connection back out of the bridge port it came in on. It
    // reaches kube-apiserver through the `kubernetes` Service with the in-cluster settings
    // kubelet gives every container.
    let script =
        format!("httpd -p 8080 -h /www; {FETCH} fetch {web_ip} && fetch {hairpin_ip} && {API}");
    pods.create(
        &PostParams::default(),
        &from_json(serde_json::json!({
            "metadata": { "name": "client", "labels": { "app": "hairpin" } },
            "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "client",
                    "image": BUSYBOX_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", script],
                }],
            },
        })),
    )
    .await
    .expect("create the client Pod");
    let (phase, logs) = finished(&pods, "client").await;
    assert_eq!(phase, "Succeeded", "client output: {logs}");
    assert_eq!(
        logs.matches("ferrometal test image").count(),
        2,
        "one page through each Service: {logs}"
    );
    assert!(
        logs.contains("API at 10.0.0.1:443"),
        "the in-cluster settings name the kubernetes Service: {logs}"
    );
    assert!(
        logs.contains("HTTP request to an HTTPS server"),
        "kube-apiserver answered through the kubernetes Service: {logs}"
    );
    assert!(logs.contains("token mounted"), "{logs}");

    // A hostNetwork Pod (as the operator runs to serve DHCP) reaches the Service from the
    // host's network namespace, and kube-apiserver through the `kubernetes` Service with
    // the in-cluster settings, unchanged.
    let script = format!("{FETCH} fetch {web_ip} && {API}");
    pods.create(
        &PostParams::default(),
        &from_json(serde_json::json!({
            "metadata": { "name": "host-client" },
            "spec": {
                "hostNetwork": true,
                "restartPolicy": "Never",
                "containers": [{
                    "name": "client",
                    "image": BUSYBOX_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", script],
                }],
            },
        })),
    )
    .await
    .expect("create the hostNetwork Pod");
    let (phase, logs) = finished(&pods, "host-client").await;
    assert_eq!(phase, "Succeeded", "host-client output: {logs}");
    assert!(logs.contains("ferrometal test image"), "{logs}");
    assert!(
        logs.contains("HTTP request to an HTTPS server"),
        "kube-apiserver answered: {logs}"
    );
    assert!(logs.contains("token mounted"), "{logs}");

    pods.delete_collection(
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
        &ListParams::default(),
    )
    .await
    .expect("delete the Pods");
    eventually(Duration::from_secs(30), "the Pods gone", || async {
        pods.list(&ListParams::default())
            .await
            .ok()
            .filter(|list| list.items.is_empty())
    })
    .await;
    for name in ["web", "hairpin"] {
        services
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete a Service");
    }

    let started = Instant::now();
    drop(node);
    say(format_args!(
        "node stopped and cleaned up in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    // The bridge kube-apiserver listens on goes with the control plane (which prints its
    // logs itself when dropped during a panic).
    drop(control_plane);
    let leftovers = testenv::node::leftovers(&bridge);
    assert!(leftovers.is_empty(), "the node left {leftovers:?}");
    assert!(
        !std::path::Path::new("/sys/class/net/cni0").exists(),
        "no cni0 bridge"
    );
    let netns_after = std::fs::read_dir("/run/netns").map_or(0, |entries| entries.count());
    assert_eq!(
        netns_after, netns_before,
        "network namespaces in /run/netns"
    );
}
