//! The chart's Pod for real: the operator image `cargo xtask image` builds, installed with
//! the real chart by the real helm onto a real node (containerd, kubelet, kube-scheduler,
//! kube-proxy; `testenv::Node`), discovering a simulated fleet from inside its Pod.
//!
//! One test, in steps, because one node runs on a machine at a time and every step needs it:
//!
//! 1. `helm install` into a namespace that enforces the `restricted` Pod Security level: the
//!    Pod runs and becomes Ready on the Pod network, reaches kube-apiserver through the
//!    `kubernetes` Service and the BMCs and the OCI registry on the node's IP, and takes
//!    Servers to Available; machines reach its boot server through the boot Service's
//!    NodePort.
//! 2. `kubectl rollout restart` while Servers are being discovered loses nothing.
//! 3. Readiness fails while the boot index cannot sync (the boot namespace's RoleBinding
//!    removed): the new Pod stays out of the Services and the rollout waits; it completes once
//!    the binding is back.
//! 4. The metrics Service answers through kube-proxy.
//! 5. Two replicas elect one leader and hand over when the leader's Pod is deleted.
//! 6. `helm uninstall` leaves nothing but the CRDs and the objects they hold.
//! 7. The DHCP mode (hostNetwork, root with only `CAP_NET_BIND_SERVICE`) serves DHCP on port
//!    67 and onboards a BMC that announces itself by DHCP, to Available; uninstalled again.
//!
//! Needs root (the node) and the image archive (`cargo xtask image`, which `make test` runs
//! first). About two minutes.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use ferrometal::api::{BMC, Endpoint, Server, ServerBootConfiguration};
use ferrometal_sim::lab::chart::{merge_values, operator_image_archive};
use ferrometal_sim::lab::{Lab, LabOptions};
use ferrometal_sim::{DhcpPorts, Fleet, FleetOptions, FleetSpec, MachineBehaviour};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ListParams, LogParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

mod common;

/// The restricted (non-DHCP) release and its namespace.
const RELEASE: &str = "ferrometal";
const NAMESPACE: &str = "ferrometal-system";
/// The DHCP-mode release's namespace (host networking needs the `privileged` level).
const DHCP_NAMESPACE: &str = "ferrometal-dhcp";
/// The operator's Pods, by the chart's selector labels.
const SELECTOR: &str = "app.kubernetes.io/name=ferrometal,app.kubernetes.io/instance=ferrometal";
/// Simulated BMCs (two systems each) applied as BMC objects over the steps.
const BMCS: usize = 6;
const SYSTEMS_PER_BMC: usize = 2;

/// Prints past libtest's capture, with the time since the test started.
fn say(started: Instant, line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "cluster {:>6.1}s: {line}",
        started.elapsed().as_secs_f64()
    );
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("valid object")
}

/// Polls `check` every 250 ms until it returns `Some`; after `limit`, fails with `what` and
/// what `diagnose` says.
async fn wait_for<T, F, Fut, D, DFut>(limit: Duration, what: &str, mut check: F, diagnose: D) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
    D: FnOnce() -> DFut,
    DFut: Future<Output = String>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if started.elapsed() > limit {
            panic!("{what} within {limit:?}:\n{}", diagnose().await);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The cluster the steps share: the lab (control plane, node, registry, fleet).
struct Cluster {
    lab: Lab,
    started: Instant,
    /// The operator image's name as imported (the chart's default reference).
    image: String,
}

impl Cluster {
    fn say(&self, line: std::fmt::Arguments<'_>) {
        say(self.started, line);
    }

    fn kubectl(&self, args: &[&str]) -> String {
        self.lab
            .kubectl(args)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.lab.client.clone(), namespace)
    }

    /// The operator's Pods that are not being deleted.
    async fn operator_pods(&self, namespace: &str) -> Vec<Pod> {
        self.pods(namespace)
            .list(&ListParams::default().labels(SELECTOR))
            .await
            .map(|list| list.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|pod| pod.metadata.deletion_timestamp.is_none())
            .collect()
    }

    /// What to look at when a step fails: the Pods, their events and the operator's logs.
    async fn diagnostics(&self, namespace: &str) -> String {
        let mut text = self
            .lab
            .kubectl(&[
                "get",
                "pods,deployments,endpointslices,leases",
                "-n",
                namespace,
                "-o",
                "wide",
            ])
            .unwrap_or_else(|error| error.to_string());
        text.push_str(
            &self
                .lab
                .kubectl(&["get", "events", "-n", namespace, "--sort-by=.lastTimestamp"])
                .unwrap_or_else(|error| error.to_string()),
        );
        for pod in self.operator_pods(namespace).await {
            let name = pod.name_any();
            let logs = self
                .pods(namespace)
                .logs(
                    &name,
                    &LogParams {
                        tail_lines: Some(40),
                        ..LogParams::default()
                    },
                )
                .await
                .unwrap_or_else(|error| error.to_string());
            text.push_str(&format!("\n--- log of {name} ---\n{logs}"));
        }
        text
    }

    /// Waits until the Deployment has rolled out: `replicas` Pods of its current template,
    /// all Ready, and no other. Returns them.
    async fn until_rolled_out(&self, namespace: &str, replicas: i32) -> Vec<Pod> {
        let deployments: Api<Deployment> = Api::namespaced(self.lab.client.clone(), namespace);
        wait_for(
            Duration::from_secs(120),
            &format!("{replicas} ready operator Pods in {namespace}"),
            || async {
                let status = deployments.get(RELEASE).await.ok()?.status?;
                let done = status.replicas == Some(replicas)
                    && status.updated_replicas == Some(replicas)
                    && status.ready_replicas == Some(replicas)
                    && status.available_replicas == Some(replicas);
                let pods = self.operator_pods(namespace).await;
                (done && pods.len() == replicas as usize && pods.iter().all(is_ready))
                    .then_some(pods)
            },
            || self.diagnostics(namespace),
        )
        .await
    }

    /// Waits until `count` Servers in all are Available.
    async fn until_available(&self, count: usize, namespace: &str) {
        let servers: Api<Server> = Api::all(self.lab.client.clone());
        wait_for(
            Duration::from_secs(120),
            &format!("{count} Servers Available"),
            || async {
                let list = servers.list(&ListParams::default()).await.ok()?;
                (list.items.iter().filter(|s| is_available(s)).count() >= count).then_some(())
            },
            || async {
                let list = servers
                    .list(&ListParams::default())
                    .await
                    .map(|list| list.items)
                    .unwrap_or_default();
                format!(
                    "{}\n{}",
                    common::server_summary(&list),
                    self.diagnostics(namespace).await
                )
            },
        )
        .await;
    }

    /// The leader Lease's holder, if any.
    async fn leader(&self, namespace: &str) -> Option<String> {
        Api::<Lease>::namespaced(self.lab.client.clone(), namespace)
            .get_opt("ferrometal-leader")
            .await
            .ok()
            .flatten()?
            .spec?
            .holder_identity
            .filter(|holder| !holder.is_empty())
    }

    /// Creates `name` enforcing the Pod Security level `level`.
    async fn create_namespace(&self, name: &str, level: &str) {
        Api::<Namespace>::all(self.lab.client.clone())
            .create(
                &PostParams::default(),
                &from_json(json!({
                    "metadata": {
                        "name": name,
                        "labels": {
                            "pod-security.kubernetes.io/enforce": level,
                            "pod-security.kubernetes.io/enforce-version": "latest",
                        },
                    },
                })),
            )
            .await
            .unwrap_or_else(|error| panic!("create namespace {name}: {error}"));
    }
}

fn is_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
}

fn is_available(server: &Server) -> bool {
    server
        .status
        .as_ref()
        .and_then(|status| status.state.as_ref())
        .is_some_and(|state| format!("{state:?}") == "Available")
}

fn pod_ip(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|status| status.pod_ip.clone())
        .expect("a Pod IP")
}

async fn get_text(url: &str) -> Result<(u16, String), String> {
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|error| error.to_string())?
        .get(url)
        .send()
        .await
        .map_err(|error| format!("GET {url}: {error}"))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|error| format!("GET {url}: {error}"))?;
    Ok((status, body))
}

/// The value of the sample `name` (with labels as written) on a metrics page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
}

#[tokio::test]
async fn the_chart_runs_the_operator_image_in_pods() {
    if !testenv::netns::available() {
        eprintln!("skipped: the test node needs root (CI runs as root)");
        return;
    }
    let archive = operator_image_archive();
    assert!(
        archive.is_file(),
        "{} is missing: build the operator image with `cargo xtask image` (`make test` does)",
        archive.display()
    );
    let started = Instant::now();
    let lab = Lab::start(
        LabOptions {
            node: true,
            start_operator: false,
            apply_bmcs: false,
            behaviour: MachineBehaviour {
                // Long enough for the rollout below to land while machines boot.
                boot_delay: Duration::from_secs(2),
                power_delay: Duration::from_millis(300),
                ..MachineBehaviour::default()
            },
            ..common::lab_options("cluster", BMCS, SYSTEMS_PER_BMC, 0)
        },
        |line| say(started, format_args!("lab: {line}")),
    )
    .await
    .expect("the lab starts");
    let images = lab.import_operator_image(None).expect("import the image");
    let cluster = Cluster {
        lab,
        started,
        image: images.first().cloned().expect("an image imported"),
    };
    // A stale archive tests an old operator: `cargo xtask image` rebuilds it.
    let age = std::fs::metadata(&archive)
        .and_then(|metadata| metadata.modified())
        .ok()
        .and_then(|built| built.elapsed().ok())
        .map_or(0, |age| age.as_secs() / 60);
    cluster.say(format_args!(
        "control plane and node up; imported {images:?} from {} (built {age} min ago)",
        archive.display()
    ));

    restricted_install_discovers_from_inside_the_pod(&cluster).await;
    a_rollout_restart_during_discovery_loses_nothing(&cluster).await;
    readiness_fails_until_the_boot_index_can_sync(&cluster).await;
    the_metrics_service_answers(&cluster).await;
    two_replicas_elect_one_leader_and_hand_over(&cluster).await;
    helm_uninstall_leaves_nothing_but_the_crds(&cluster, NAMESPACE).await;
    the_dhcp_mode_onboards_a_bmc_announced_by_dhcp(&cluster).await;
    helm_uninstall_leaves_nothing_but_the_crds(&cluster, DHCP_NAMESPACE).await;
    cluster.say(format_args!("done"));
}

/// Step 1.
async fn restricted_install_discovers_from_inside_the_pod(cluster: &Cluster) {
    let lab = &cluster.lab;
    cluster.create_namespace(NAMESPACE, "restricted").await;
    // The level is enforced: a Pod on the host's network is refused.
    let refused = cluster
        .pods(NAMESPACE)
        .create(
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            &from_json(json!({
                "metadata": { "name": "host-network" },
                "spec": {
                    "hostNetwork": true,
                    "containers": [{ "name": "c", "image": "x" }],
                },
            })),
        )
        .await
        .expect_err("a hostNetwork Pod in a restricted namespace");
    assert!(
        refused.to_string().contains("violates PodSecurity"),
        "{refused}"
    );

    let mut values = lab.chart_values();
    merge_values(
        &mut values,
        &json!({
            // A boot lost in the rollout below is retried within a minute, not half an hour.
            "discovery": { "timeoutSeconds": 60, "retrySeconds": 1 },
        }),
    );
    let installed = Instant::now();
    lab.install_chart(RELEASE, NAMESPACE, &values, &[])
        .unwrap_or_else(|error| panic!("{error}"));
    let pods = cluster.until_rolled_out(NAMESPACE, 1).await;
    let pod = &pods[0];
    cluster.say(format_args!(
        "helm install: Pod {} Running and Ready {:.1}s later, at {}",
        pod.name_any(),
        installed.elapsed().as_secs_f64(),
        pod_ip(pod)
    ));
    let spec = pod.spec.as_ref().expect("spec");
    assert_ne!(spec.host_network, Some(true));
    let container = &spec.containers[0];
    assert_eq!(container.image.as_ref(), Some(&cluster.image));
    assert_eq!(container.image_pull_policy.as_deref(), Some("Never"));
    let node_ip = lab.require_node().expect("node").ip();
    let network = lab
        .control_plane
        .node_network()
        .expect("the node's network")
        .pod_subnet();
    let ip: std::net::Ipv4Addr = pod_ip(pod).parse().expect("an IPv4 Pod IP");
    assert!(network.contains(&ip) && ip != node_ip, "on the Pod network");

    lab.apply_bmcs(0..2, None).await.expect("apply BMCs");
    let applied = Instant::now();
    cluster
        .until_available(2 * SYSTEMS_PER_BMC, NAMESPACE)
        .await;
    cluster.say(format_args!(
        "{} Servers Available {:.1}s after their BMCs were applied, discovered from inside the Pod",
        2 * SYSTEMS_PER_BMC,
        applied.elapsed().as_secs_f64()
    ));
    let log = cluster
        .pods(NAMESPACE)
        .logs(&pod.name_any(), &LogParams::default())
        .await
        .expect("the operator's log through kubelet");
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the operator was refused something:\n{log}"
    );
}

/// Step 2.
async fn a_rollout_restart_during_discovery_loses_nothing(cluster: &Cluster) {
    let lab = &cluster.lab;
    let servers: Api<Server> = Api::all(lab.client.clone());
    lab.apply_bmcs(2..4, None).await.expect("apply BMCs");
    let in_flight = wait_for(
        Duration::from_secs(60),
        "a Server of the new BMCs in Discovery",
        || async {
            let list = servers.list(&ListParams::default()).await.ok()?;
            let booting = list
                .items
                .iter()
                .filter(|s| {
                    s.status
                        .as_ref()
                        .and_then(|status| status.state.as_ref())
                        .is_some_and(|state| format!("{state:?}") == "Discovery")
                })
                .count();
            (booting > 0).then(|| list.items.iter().filter(|s| !is_available(s)).count())
        },
        || cluster.diagnostics(NAMESPACE),
    )
    .await;
    let old = cluster.operator_pods(NAMESPACE).await;
    let old_name = old
        .first()
        .map(ResourceExt::name_any)
        .expect("the operator's Pod");
    let restarted = Instant::now();
    cluster.kubectl(&["rollout", "restart", "deployment", RELEASE, "-n", NAMESPACE]);
    cluster.say(format_args!(
        "kubectl rollout restart with {in_flight} Servers not yet Available"
    ));
    let new = cluster.until_rolled_out(NAMESPACE, 1).await;
    cluster.say(format_args!(
        "rolled out in {:.1}s",
        restarted.elapsed().as_secs_f64()
    ));
    // The old leader finishes its reconciles, releases the Lease and exits; the new Pod
    // leads at once.
    let new_name = new[0].name_any();
    let old_log = std::cell::RefCell::new(String::new());
    wait_for(
        Duration::from_secs(25),
        "the new Pod leading (the old leader releases the Lease when it stops)",
        || async {
            if let Ok(log) = cluster
                .pods(NAMESPACE)
                .logs(&old_name, &LogParams::default())
                .await
            {
                *old_log.borrow_mut() = log;
            }
            cluster
                .leader(NAMESPACE)
                .await
                .filter(|holder| holder.starts_with(&format!("{new_name}_")))
        },
        || async {
            let log = old_log.borrow();
            let lines: Vec<&str> = log.lines().collect();
            format!(
                "the old leader {old_name}'s log ends (a task that does not stop on SIGTERM keeps it holding the Lease until kubelet kills it):\n{}",
                lines[lines.len().saturating_sub(30)..].join("\n")
            )
        },
    )
    .await;
    cluster.say(format_args!(
        "{new_name} leads {:.1}s after the restart",
        restarted.elapsed().as_secs_f64(),
    ));
    cluster
        .until_available(4 * SYSTEMS_PER_BMC, NAMESPACE)
        .await;
    cluster.say(format_args!(
        "all {} Servers Available {:.1}s after the restart",
        4 * SYSTEMS_PER_BMC,
        restarted.elapsed().as_secs_f64()
    ));
    let findings = lost_or_left_over(cluster, 4, NAMESPACE).await;
    assert!(findings.is_empty(), "after the rollout: {findings:#?}");
}

/// What is missing, doubled or left over once the first `bmcs` BMCs are discovered: a
/// machine without exactly one Available Server carrying its report, a BMC missing, a
/// ServerBootConfiguration or ignition Secret left in the boot namespace.
async fn lost_or_left_over(cluster: &Cluster, bmcs: usize, namespace: &str) -> Vec<String> {
    let client = cluster.lab.client.clone();
    let servers = Api::<Server>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("Servers")
        .items;
    let mut findings = Vec::new();
    let mut by_uuid: BTreeMap<String, Vec<&Server>> = BTreeMap::new();
    for server in &servers {
        let uuid = server.spec.system_uuid.clone().unwrap_or_default();
        by_uuid.entry(uuid.to_lowercase()).or_default().push(server);
    }
    let fleet = &cluster.lab.fleet;
    for machine in fleet.bmcs()[..bmcs].iter().flat_map(|bmc| bmc.machines()) {
        let spec = machine.spec();
        match by_uuid.get(&spec.uuid.to_lowercase()).map(Vec::as_slice) {
            None | Some([]) => findings.push(format!("no Server for machine {}", spec.uuid)),
            Some([server]) => {
                let status = serde_json::to_value(server.status.as_ref()).unwrap_or_default();
                let macs: Vec<String> = status["networkInterfaces"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|nic| nic["macAddress"].as_str().map(str::to_lowercase))
                    .collect();
                if !is_available(server)
                    || !spec.macs.iter().all(|mac| macs.contains(mac))
                    || status["serialNumber"] != spec.serial.as_str()
                    || machine.acknowledged_reports().is_empty()
                {
                    findings.push(format!(
                        "{} does not hold machine {}'s report: {status}",
                        server.name_any(),
                        spec.uuid
                    ));
                }
            }
            Some(several) => findings.push(format!(
                "{} Servers for machine {}",
                several.len(),
                spec.uuid
            )),
        }
    }
    let bmc_objects = Api::<BMC>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("BMCs")
        .items;
    for bmc in &fleet.bmcs()[..bmcs] {
        let name = format!("sim-bmc-{}", bmc.spec().index);
        if !bmc_objects.iter().any(|object| object.name_any() == name) {
            findings.push(format!("no BMC {name}"));
        }
    }
    for configuration in Api::<ServerBootConfiguration>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .expect("ServerBootConfigurations")
    {
        findings.push(format!(
            "ServerBootConfiguration {} left",
            configuration.name_any()
        ));
    }
    for secret in Api::<Secret>::namespaced(client, namespace)
        .list(&ListParams::default())
        .await
        .expect("Secrets")
    {
        // Helm's release records are the only Secrets expected.
        if secret.type_.as_deref() != Some("helm.sh/release.v1") {
            findings.push(format!("Secret {} left", secret.name_any()));
        }
    }
    findings
}

/// Step 3.
async fn readiness_fails_until_the_boot_index_can_sync(cluster: &Cluster) {
    // The previous step's rollout may still be removing its old Pod.
    let mut old = cluster.operator_pods(NAMESPACE).await;
    for _ in 0..120 {
        if old.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        old = cluster.operator_pods(NAMESPACE).await;
    }
    assert_eq!(
        old.len(),
        1,
        "the rollout left more than one operator Pod:\n{}",
        cluster.diagnostics(NAMESPACE).await
    );
    let old_ip = pod_ip(&old[0]);
    // Without its RoleBinding in the boot namespace, a new Pod cannot list the
    // ServerBootConfigurations, so its boot index never syncs.
    cluster.kubectl(&["delete", "rolebinding", "ferrometal-boot", "-n", NAMESPACE]);
    cluster.kubectl(&["rollout", "restart", "deployment", RELEASE, "-n", NAMESPACE]);
    let new = wait_for(
        Duration::from_secs(60),
        "the new Pod running, not Ready",
        || async {
            let pods = cluster.operator_pods(NAMESPACE).await;
            pods.into_iter().find(|pod| {
                pod.name_any() != old[0].name_any()
                    && pod
                        .status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .is_some_and(|c| c.iter().all(|c| c.started == Some(true)))
            })
        },
        || cluster.diagnostics(NAMESPACE),
    )
    .await;
    let new_name = new.name_any();
    let new_ip = pod_ip(&new);
    let readyz = format!("http://{new_ip}:8080/readyz");
    let (code, body) = wait_for(
        Duration::from_secs(30),
        "/readyz saying what it waits for",
        || async {
            get_text(&readyz)
                .await
                .ok()
                .filter(|(code, body)| *code == 503 && body.contains("boot index"))
        },
        || cluster.diagnostics(NAMESPACE),
    )
    .await;
    let events: Api<Event> = Api::namespaced(cluster.lab.client.clone(), NAMESPACE);
    let unhealthy = wait_for(
        Duration::from_secs(30),
        "kubelet's readiness probe failing",
        || async {
            let list = events
                .list(
                    &ListParams::default()
                        .fields(&format!("involvedObject.name={new_name},reason=Unhealthy")),
                )
                .await
                .ok()?;
            list.items.into_iter().find_map(|event| {
                // (Before it listened, the probe's connection was refused.)
                event
                    .message
                    .filter(|m| m.contains("Readiness probe failed") && m.contains("503"))
            })
        },
        || cluster.diagnostics(NAMESPACE),
    )
    .await;
    // The rollout waits: the old Pod still serves, the new one is in no Service.
    let pods = cluster.operator_pods(NAMESPACE).await;
    if !pods
        .iter()
        .any(|pod| pod.name_any() == old[0].name_any() && is_ready(pod))
    {
        panic!(
            "the old Pod {} stopped serving:\n{}",
            old[0].name_any(),
            cluster.diagnostics(NAMESPACE).await
        );
    }
    let slices: Api<EndpointSlice> = Api::namespaced(cluster.lab.client.clone(), NAMESPACE);
    let ready: Vec<String> = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=ferrometal-boot"))
        .await
        .expect("EndpointSlices")
        .items
        .into_iter()
        .flat_map(|slice| slice.endpoints.unwrap_or_default())
        .filter(|endpoint| {
            endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(false)
        })
        .flat_map(|endpoint| endpoint.addresses)
        .collect();
    assert_eq!(ready, [old_ip], "only the old Pod behind the boot Service");
    cluster.say(format_args!(
        "new Pod {new_name} not Ready (/readyz {code}: {}; kubelet: {unhealthy}); the old Pod serves",
        body.trim()
    ));

    // Helm puts the binding back; the new Pod becomes Ready and the rollout completes.
    let restored = Instant::now();
    let chart = ferrometal_sim::lab::chart::chart_dir();
    cluster
        .lab
        .helm(&[
            "upgrade",
            RELEASE,
            chart.to_str().expect("path"),
            "--namespace",
            NAMESPACE,
            "--reuse-values",
        ])
        .unwrap_or_else(|error| panic!("{error}"));
    cluster.until_rolled_out(NAMESPACE, 1).await;
    cluster.say(format_args!(
        "RoleBinding restored by helm upgrade; rolled out {:.1}s later",
        restored.elapsed().as_secs_f64()
    ));
}

/// Step 4.
async fn the_metrics_service_answers(cluster: &Cluster) {
    let service = Api::<Service>::namespaced(cluster.lab.client.clone(), NAMESPACE)
        .get("ferrometal-metrics")
        .await
        .expect("the metrics Service");
    let ip = service
        .spec
        .and_then(|spec| spec.cluster_ip)
        .expect("a cluster IP");
    // The Pod rolled out last took the Lease from its predecessor a moment ago.
    let reconciled = "ferrometal_reconciles_total{controller=\"server\",outcome=\"ok\"}";
    let page = wait_for(
        Duration::from_secs(30),
        "the metrics Service answering with the leader's metrics",
        || async {
            let (code, page) = get_text(&format!("http://{ip}:8080/metrics")).await.ok()?;
            (code == 200
                && sample(&page, "ferrometal_leader") == Some(1.0)
                && sample(&page, reconciled).is_some_and(|n| n > 0.0))
            .then_some(page)
        },
        || cluster.diagnostics(NAMESPACE),
    )
    .await;
    cluster.say(format_args!(
        "the metrics Service ({ip}:8080) answers: {} lines",
        page.lines().count()
    ));
}

/// Step 5.
async fn two_replicas_elect_one_leader_and_hand_over(cluster: &Cluster) {
    let chart = ferrometal_sim::lab::chart::chart_dir();
    cluster
        .lab
        .helm(&[
            "upgrade",
            RELEASE,
            chart.to_str().expect("path"),
            "--namespace",
            NAMESPACE,
            "--reuse-values",
            "--set",
            "replicaCount=2",
        ])
        .unwrap_or_else(|error| panic!("{error}"));
    let pods = cluster.until_rolled_out(NAMESPACE, 2).await;
    cluster.kubectl(&["get", "poddisruptionbudget", RELEASE, "-n", NAMESPACE]);
    let holder = wait_for(
        Duration::from_secs(30),
        "a leader",
        || cluster.leader(NAMESPACE),
        || cluster.diagnostics(NAMESPACE),
    )
    .await;
    let leads = |pod: &Pod| holder.starts_with(&format!("{}_", pod.name_any()));
    let leader = pods.iter().find(|pod| leads(pod)).unwrap_or_else(|| {
        panic!(
            "the holder {holder} is one of {:?}",
            pods.iter().map(ResourceExt::name_any).collect::<Vec<_>>()
        )
    });
    let standby = pods.iter().find(|pod| !leads(pod)).expect("a standby");
    for (pod, expected) in [(leader, 1.0), (standby, 0.0)] {
        let (_, page) = get_text(&format!("http://{}:8080/metrics", pod_ip(pod)))
            .await
            .expect("scrape a replica");
        assert_eq!(
            sample(&page, "ferrometal_leader"),
            Some(expected),
            "{}: {page}",
            pod.name_any()
        );
    }

    let deleted = Instant::now();
    cluster.kubectl(&[
        "delete",
        "pod",
        &leader.name_any(),
        "-n",
        NAMESPACE,
        "--wait=false",
    ]);
    // The leader releases the Lease when it stops; the standby (which looks again when the
    // Lease it saw would have expired) or the Pod replacing the deleted one takes it, well
    // before a Lease left to expire (15 s after the last renewal) would be free.
    let deleted_name = leader.name_any();
    let new_holder = wait_for(
        Duration::from_secs(25),
        "another replica leading",
        || async {
            cluster
                .leader(NAMESPACE)
                .await
                .filter(|holder| !holder.starts_with(&format!("{deleted_name}_")))
        },
        || cluster.diagnostics(NAMESPACE),
    )
    .await;
    cluster.say(format_args!(
        "leader {deleted_name} deleted; {new_holder} leads {:.1}s later",
        deleted.elapsed().as_secs_f64()
    ));
    cluster.lab.apply_bmcs(4..5, None).await.expect("apply BMC");
    cluster
        .until_available(5 * SYSTEMS_PER_BMC, NAMESPACE)
        .await;
    cluster.say(format_args!("the new leader discovered another BMC"));
    cluster.until_rolled_out(NAMESPACE, 2).await;
}

/// Every object of a namespaced kind in `namespace`, as `kind/name`.
fn everything_in(cluster: &Cluster, namespace: &str, selector: Option<&str>) -> Vec<String> {
    let kinds = cluster.kubectl(&[
        "api-resources",
        "--verbs=list",
        "--namespaced=true",
        "-o",
        "name",
    ]);
    let kinds: Vec<&str> = kinds.lines().collect();
    let mut args = vec!["get", "-n", namespace, "-o", "name", "--ignore-not-found"];
    let joined = kinds.join(",");
    args.insert(1, &joined);
    if let Some(selector) = selector {
        args.extend(["-l", selector]);
    }
    cluster.kubectl(&args).lines().map(str::to_owned).collect()
}

/// Steps 6 and 7's end.
async fn helm_uninstall_leaves_nothing_but_the_crds(cluster: &Cluster, namespace: &str) {
    let uninstalled = Instant::now();
    cluster
        .lab
        .helm(&["uninstall", RELEASE, "--namespace", namespace, "--wait"])
        .unwrap_or_else(|error| panic!("{error}"));
    wait_for(
        Duration::from_secs(60),
        "the operator's Pods gone",
        || async {
            let pods = cluster
                .pods(namespace)
                .list(&ListParams::default().labels(SELECTOR))
                .await
                .ok()?;
            pods.items.is_empty().then_some(())
        },
        || cluster.diagnostics(namespace),
    )
    .await;
    // What every namespace has, and Events (which expire by themselves).
    let expected = |object: &String| {
        object == "configmap/kube-root-ca.crt"
            || object == "serviceaccount/default"
            || object.starts_with("event/")
            || object.starts_with("event.events.k8s.io/")
    };
    let left: Vec<String> = everything_in(cluster, namespace, None)
        .into_iter()
        .filter(|object| !expected(object))
        .collect();
    assert!(left.is_empty(), "left in {namespace}: {left:?}");
    let instance = format!("app.kubernetes.io/instance={RELEASE}");
    let elsewhere = everything_in(cluster, "default", Some(&instance));
    assert!(elsewhere.is_empty(), "left in default: {elsewhere:?}");
    let kinds = cluster.kubectl(&[
        "api-resources",
        "--verbs=list",
        "--namespaced=false",
        "-o",
        "name",
    ]);
    let kinds = kinds.lines().collect::<Vec<_>>().join(",");
    let cluster_wide = cluster.kubectl(&["get", &kinds, "-l", &instance, "-o", "name"]);
    assert!(
        cluster_wide.trim().is_empty(),
        "cluster-scoped objects left: {cluster_wide}"
    );
    for crd in ferrometal::api::crds() {
        cluster.kubectl(&["get", "crd", &crd.name_any()]);
    }
    assert!(
        !Api::<Server>::all(cluster.lab.client.clone())
            .list(&ListParams::default())
            .await
            .expect("Servers")
            .items
            .is_empty(),
        "the CRDs keep their objects"
    );
    cluster.say(format_args!(
        "helm uninstall ({namespace}) left nothing but the CRDs and their objects ({:.1}s)",
        uninstalled.elapsed().as_secs_f64()
    ));
}

/// A free UDP port on loopback.
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .map(|address| address.port())
        .expect("a UDP port")
}

/// The effective capabilities and user of the process whose command line holds `needle`.
fn process_credentials(needle: &str) -> Option<(String, String)> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().parse::<u32>().is_ok())
        .find_map(|entry| {
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if !cmdline.contains(needle) {
                return None;
            }
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix(name))
                    .map(|value| {
                        value
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned()
                    })
            };
            Some((field("Uid:")?, field("CapEff:")?))
        })
}

/// Step 7.
async fn the_dhcp_mode_onboards_a_bmc_announced_by_dhcp(cluster: &Cluster) {
    let lab = &cluster.lab;
    cluster.create_namespace(DHCP_NAMESPACE, "privileged").await;
    // The DHCP server listens on loopback, where the simulated BMC announces itself, on the
    // real port 67; the boot server and metrics on ports of their own, on loopback and the
    // node's IP (never every address of the host).
    let client_port = free_udp_port();
    let boot_port = testenv::net::free_port().expect("port");
    let metrics_port = testenv::net::free_port().expect("port");
    let boot_url = format!("http://127.0.0.1:{boot_port}");
    let fleet = Fleet::start(FleetOptions {
        spec: FleetSpec {
            seed: 67,
            bmcs: 1,
            systems_per_bmc: SYSTEMS_PER_BMC,
            first_bmc: 500,
            ..FleetSpec::default()
        },
        dhcp_bmcs: 1,
        dhcp: Some(DhcpPorts {
            server: 67,
            client: client_port,
        }),
        machine_dhcp: true,
        hold_dhcp_bmcs: true,
        work_dir: lab.work_dir().join("dhcp-machines"),
        ..FleetOptions::default()
    })
    .await
    .expect("the DHCP fleet");
    let mut values = lab.chart_values();
    merge_values(
        &mut values,
        &json!({
            "dhcp": {
                "enabled": true,
                "config": {
                    "interfaces": [{ "name": "lo", "serverAddress": "127.0.0.1" }],
                    "subnets": [{
                        "network": "127.0.0.0",
                        "prefix": 8,
                        "rangeStart": "127.3.0.1",
                        "rangeEnd": "127.3.0.254",
                        "leaseSeconds": 600,
                    }],
                    "onboarding": { "macPrefixes": [ferrometal_sim::BMC_MAC_PREFIX] },
                    "boot": { "ipxeUrl": format!("{boot_url}/ipxe") },
                    "clientPort": client_port,
                },
            },
            "bootServer": {
                "url": boot_url,
                "port": boot_port,
                "bindAddress": "127.0.0.1",
                "service": { "type": "ClusterIP" },
            },
            "metrics": { "port": metrics_port, "bindAddress": "$(POD_IP)" },
            "macDatabase": { "content": lab.mac_database(fleet.port()) },
        }),
    );
    let installed = Instant::now();
    lab.install_chart(RELEASE, DHCP_NAMESPACE, &values, &[])
        .unwrap_or_else(|error| panic!("{error}"));
    let pods = cluster.until_rolled_out(DHCP_NAMESPACE, 1).await;
    let pod = &pods[0];
    assert_eq!(
        pod.spec.as_ref().and_then(|spec| spec.host_network),
        Some(true)
    );
    let node_ip = lab.require_node().expect("node").ip().to_string();
    assert_eq!(pod_ip(pod), node_ip, "a hostNetwork Pod has the node's IP");
    // Root, with every capability dropped but NET_BIND_SERVICE (bit 10).
    let (uid, capabilities) = process_credentials("--dhcp-config=/etc/ferrometal/config/dhcp.yaml")
        .expect("the operator's process on the host");
    assert_eq!(uid, "0");
    assert_eq!(
        capabilities, "0000000000000400",
        "only CAP_NET_BIND_SERVICE"
    );
    cluster.say(format_args!(
        "DHCP mode: Pod {} Ready {:.1}s after helm install, on the host's network as root with only CAP_NET_BIND_SERVICE",
        pod.name_any(),
        installed.elapsed().as_secs_f64()
    ));

    fleet.release_dhcp_bmcs(1);
    let bmc = &fleet.bmcs()[0];
    let name = format!("dhcp-{}", bmc.spec().mac.replace(':', ""));
    let endpoints: Api<Endpoint> = Api::all(lab.client.clone());
    let endpoint = wait_for(
        Duration::from_secs(60),
        "the BMC's Endpoint",
        || async { endpoints.get_opt(&name).await.ok().flatten() },
        || cluster.diagnostics(DHCP_NAMESPACE),
    )
    .await;
    let leased = bmc
        .address()
        .map(|address| address.ip().to_string())
        .expect("the BMC listens on its lease");
    assert_eq!(endpoint.spec.ip, leased);
    assert!(leased.starts_with("127.3.0."), "{leased} from the pool");
    let servers: Api<Server> = Api::all(lab.client.clone());
    wait_for(
        Duration::from_secs(120),
        "the DHCP-announced BMC's Servers Available",
        || async {
            let list = servers.list(&ListParams::default()).await.ok()?;
            let available = list
                .items
                .iter()
                .filter(|server| {
                    serde_json::to_value(&server.spec).unwrap_or_default()["bmcRef"]["name"]
                        == name.as_str()
                        && is_available(server)
                })
                .count();
            (available == SYSTEMS_PER_BMC).then_some(())
        },
        || async {
            let list = servers
                .list(&ListParams::default())
                .await
                .map(|list| list.items)
                .unwrap_or_default();
            format!(
                "{}\n{}",
                common::server_summary(&list),
                cluster.diagnostics(DHCP_NAMESPACE).await
            )
        },
    )
    .await;
    let page = get_text(&format!("http://{node_ip}:{metrics_port}/metrics"))
        .await
        .expect("metrics on the node's IP")
        .1;
    assert!(
        sample(&page, "ferrometal_dhcp_packets_total{outcome=\"ack\"}").is_some_and(|n| n > 0.0),
        "{page}"
    );
    cluster.say(format_args!(
        "BMC {name} announced itself by DHCP ({leased}), became an Endpoint and a BMC; its {SYSTEMS_PER_BMC} Servers booted through DHCP to Available"
    ));
    drop(fleet);
}
