//! The Helm chart and running several replicas, with the real helm and a real control plane:
//! `helm lint` and `helm template` (default and production values, values the schema or the
//! templates refuse), `helm install`/`upgrade`/`uninstall` against the API server, the
//! chart's RBAC proven sufficient by running `ferrometal run` with its ServiceAccount's token
//! through a whole discovery (and proven narrow by requests it must not make), and leader
//! election between two operator processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ferrometal::api::Server;
use ferrometal_sim::lab::{Lab, LabOptions};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde_json::Value;
use testenv::{ControlPlane, ControlPlaneOptions, Program};

mod common;

/// A lab whose operator and BMC objects the test starts and applies itself.
fn lab_options(name: &str, bmcs: usize, dhcp_bmcs: usize) -> LabOptions {
    LabOptions {
        apply_bmcs: false,
        start_operator: false,
        ..common::lab_options(name, bmcs, 2, dhcp_bmcs)
    }
}

const RELEASE_NAMESPACE: &str = "ferrometal-system";

fn chart() -> PathBuf {
    ferrometal_sim::lab::chart::chart_dir()
}

fn production_values() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/chart-values-production.yaml")
}

/// Runs helm (against `kubeconfig` if given) and returns its output.
fn helm(args: &[&str], kubeconfig: Option<&Path>) -> Output {
    ferrometal_sim::lab::chart::helm_command(kubeconfig)
        .expect("helm is installed")
        .args(args)
        .output()
        .expect("run helm")
}

/// Runs helm and fails the test with its output if it fails.
fn helm_ok(args: &[&str], kubeconfig: Option<&Path>) -> String {
    let output = helm(args, kubeconfig);
    assert!(
        output.status.success(),
        "helm {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The objects `helm template` renders.
fn template(extra: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut args = vec![
        "template",
        "ferrometal",
        chart.to_str().expect("path"),
        "--namespace",
        RELEASE_NAMESPACE,
    ];
    args.extend_from_slice(extra);
    let text = helm_ok(&args, None);
    serde_saphyr::from_multiple::<Value>(&text)
        .expect("helm template renders YAML")
        .into_iter()
        .filter(|object| !object.is_null())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

fn container(objects: &[Value]) -> &Value {
    &find(objects, "Deployment", "ferrometal")["spec"]["template"]["spec"]["containers"][0]
}

fn args(objects: &[Value]) -> Vec<String> {
    container(objects)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn the_chart_lints_and_renders_safe_defaults() {
    let chart = chart();
    let chart = chart.to_str().expect("path");
    helm_ok(&["lint", "--strict", chart], None);
    let values = production_values();
    helm_ok(
        &[
            "lint",
            "--strict",
            chart,
            "-f",
            values.to_str().expect("path"),
        ],
        None,
    );

    let objects = template(&[]);
    let mut kinds: Vec<String> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "Lease",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
    let args = args(&objects);
    for expected in [
        "--leader-elect",
        "--leader-election-namespace=ferrometal-system",
        "--namespace=ferrometal-system",
        "--plugin-dir=/usr/lib/ferrometal/plugins",
        // Half the default 512Mi memory limit for plugins, the rest for the operator.
        "--plugin-memory-budget-mib=256",
        "--metrics-bind-address=0.0.0.0:8080",
        "--boot-bind-address=0.0.0.0:8082",
    ] {
        assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
    }
    assert!(
        !args.iter().any(|a| a.starts_with("--dhcp-config")),
        "no DHCP by default"
    );
    let deployment = find(&objects, "Deployment", "ferrometal");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(pod["hostNetwork"].is_null());
    let security = &container(&objects)["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    assert!(security["capabilities"]["add"].is_null());
    assert_eq!(
        container(&objects)["readinessProbe"]["httpGet"]["path"],
        "/readyz"
    );
    assert_eq!(
        container(&objects)["livenessProbe"]["httpGet"]["path"],
        "/healthz"
    );

    // Secrets only in the boot namespace; nothing cluster-wide can touch them.
    let cluster_role = find(&objects, "ClusterRole", "ferrometal");
    assert!(
        !cluster_role["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .any(|rule| rule["resources"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r == "secrets"))),
        "the ClusterRole grants no Secrets: {cluster_role}"
    );
    let boot_role = find(&objects, "Role", "ferrometal-boot");
    assert_eq!(boot_role["metadata"]["namespace"], RELEASE_NAMESPACE);
    // The leader Lease is the release's, so `helm uninstall` removes it.
    let lease = find(&objects, "Lease", "ferrometal-leader");
    assert_eq!(lease["metadata"]["namespace"], RELEASE_NAMESPACE);
}

#[test]
fn production_values_render_dhcp_replicas_and_monitoring() {
    let values = production_values();
    let objects = template(&["-f", values.to_str().expect("path")]);
    let deployment = find(&objects, "Deployment", "ferrometal");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"], 0,
        "host ports: no surge"
    );
    assert_eq!(
        pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert_eq!(pod["securityContext"]["runAsUser"], 0);
    let security = &container(&objects)["securityContext"];
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    assert_eq!(
        security["capabilities"]["add"],
        serde_json::json!(["NET_BIND_SERVICE"])
    );
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(
        container(&objects)["image"],
        "ghcr.io/ferrometal/ferrometal@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    let args = args(&objects);
    for expected in [
        "--dhcp-config=/etc/ferrometal/config/dhcp.yaml",
        "--mac-db=/etc/ferrometal/macdb/macdb.yaml",
        "--namespace=metal-boot",
        "--plugin-dir=/etc/ferrometal/plugins",
        "--boot-server-url=http://10.0.0.1:8082",
        "--discovery-image=ghcr.io/ironcore-dev/os-images/discovery:1.0",
        "--bmc-ca-file=/etc/ferrometal/bmc-ca/ca.crt",
        "--bmc-default-scheme=https",
        "--plugin-memory-budget-mib=384",
    ] {
        assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
    }

    // The configuration files the operator reads are what it accepts.
    let config = find(&objects, "ConfigMap", "ferrometal-config");
    let dhcp = config["data"]["dhcp.yaml"].as_str().expect("dhcp.yaml");
    ferrometal::dhcp::config::DhcpConfig::parse(dhcp).expect("the rendered DHCP config parses");
    assert!(dhcp.contains("leaseFile: /var/lib/ferrometal/dhcp/leases.json"));
    let plugins = config["data"]["plugins.yaml"]
        .as_str()
        .expect("plugins.yaml");
    let catalog = ferrometal::plugins::catalog::CatalogConfig::from_yaml(plugins)
        .expect("the rendered plugin config parses");
    assert!(catalog.digests.contains_key("redfish"));
    assert_eq!(
        catalog.plugins["redfish"].settings_list(),
        [
            (String::from("auth"), String::from("session")),
            (String::from("power-wait-seconds"), String::from("30")),
        ],
        "per-plugin settings reach the operator's plugin configuration as written"
    );
    assert!(
        config["data"]["macdb.yaml"]
            .as_str()
            .expect("macdb.yaml")
            .contains("52:54:00")
    );

    let dhcp_service = find(&objects, "Service", "ferrometal-dhcp");
    assert_eq!(dhcp_service["spec"]["ports"][0]["protocol"], "UDP");
    assert_eq!(
        find(&objects, "Role", "ferrometal-boot")["metadata"]["namespace"],
        "metal-boot"
    );
    let monitor = find(&objects, "ServiceMonitor", "ferrometal");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    find(&objects, "PodDisruptionBudget", "ferrometal");
}

#[test]
fn plugins_from_a_registry_get_their_trust_roots_login_and_artifact_cache() {
    let values = tempfile::NamedTempFile::new().expect("values file");
    std::fs::write(
        values.path(),
        format!(
            "plugins:\n  trustRoots: [{{name: acme, configMap: acme-keys}}, {{name: site, secret: site-keys}}]\n  registryAuthSecret: registry-logins\n  artifactCache: {{persistentVolumeClaim: {{claimName: ferrometal-plugins}}}}\n  config:\n    verification:\n      allOf: [{{name: acme, keyFile: /etc/ferrometal/trust/acme/cosign.pub}}]\n    plugins:\n      acme-redfish:\n        image: oci://registry.example/acme/redfish:1.2.0@sha256:{}\n        world: bmc-driver\n",
            "5f".repeat(32)
        ),
    )
    .expect("write values");
    let objects = template(&["-f", values.path().to_str().expect("path")]);
    let mounts: Vec<(String, String)> = container(&objects)["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or_default().to_owned(),
                m["mountPath"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for (name, path) in [
        ("trust-acme", "/etc/ferrometal/trust/acme"),
        ("trust-site", "/etc/ferrometal/trust/site"),
        ("registry-auth", "/etc/ferrometal/registry"),
        ("plugin-artifacts", "/var/cache/ferrometal-artifacts"),
    ] {
        assert!(
            mounts.contains(&(name.to_owned(), path.to_owned())),
            "{name} at {path}: {mounts:?}"
        );
    }
    let volumes =
        &find(&objects, "Deployment", "ferrometal")["spec"]["template"]["spec"]["volumes"];
    let volume = |name: &str| {
        volumes
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
            .clone()
    };
    assert_eq!(volume("trust-acme")["configMap"]["name"], "acme-keys");
    assert_eq!(volume("trust-site")["secret"]["secretName"], "site-keys");
    assert_eq!(
        volume("registry-auth")["secret"]["secretName"],
        "registry-logins"
    );
    assert_eq!(
        volume("plugin-artifacts")["persistentVolumeClaim"]["claimName"],
        "ferrometal-plugins"
    );
    // The operator accepts the plugin configuration the chart writes, with the paths it mounts.
    let config = find(&objects, "ConfigMap", "ferrometal-config")["data"]["plugins.yaml"]
        .as_str()
        .expect("plugins.yaml")
        .to_owned();
    let parsed = ferrometal::plugins::catalog::CatalogConfig::from_yaml(&config)
        .unwrap_or_else(|error| panic!("{error}:\n{config}"));
    assert_eq!(
        parsed.registry.auth_file.as_deref(),
        Some(Path::new("/etc/ferrometal/registry/.dockerconfigjson"))
    );
    assert_eq!(
        parsed.artifact_dir.as_deref(),
        Some(Path::new("/var/cache/ferrometal-artifacts"))
    );
    assert!(parsed.plugins["acme-redfish"].image.is_some());
}

#[test]
fn values_the_chart_cannot_honour_are_refused_with_the_reason() {
    let chart = chart();
    let chart = chart.to_str().expect("path");
    for (set, expected) in [
        ("replicaCount=two", "/replicaCount"),
        ("discovery.mode=inband", "in-band"),
        ("dhcp.enable=true", "additional properties 'enable'"),
        (
            "plugins.config.digests.redfish=abc",
            "/plugins/config/digests/redfish",
        ),
        ("discovery.image=ghcr.io/x/y:1", "needs bootServer.url"),
        (
            "replicaCount=2,leaderElection.enabled=false",
            "needs leaderElection.enabled",
        ),
        ("plugins.source=configMap", "needs plugins.configMap"),
        ("plugins.memoryBudgetMiB=8", "/plugins/memoryBudgetMiB"),
        ("dhcp.enabled=true", "needs dhcp.config"),
        (
            "plugins.config.plugins.acme.image=oci://r.example/acme:1",
            "/plugins/config/plugins/acme/image",
        ),
        ("plugins.trustRoots[0].name=acme", "/plugins/trustRoots/0"),
    ] {
        let output = helm(&["template", "ferrometal", chart, "--set", set], None);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "--set {set} was accepted");
        assert!(
            stderr.contains(expected),
            "--set {set}: expected {expected:?} in:\n{stderr}"
        );
    }
}

#[tokio::test]
async fn helm_install_upgrade_and_uninstall_against_the_api_server() {
    let control_plane = ControlPlane::start_with(ControlPlaneOptions {
        crds_dir: None,
        ..ControlPlaneOptions::default()
    })
    .await
    .expect("control plane");
    let _logs = control_plane.logs_on_failure();
    let kubeconfig = control_plane.kubeconfig_path();
    let client = control_plane.client().await.expect("client");
    let chart = chart();
    let chart = chart.to_str().expect("path");
    helm_ok(
        &[
            "install",
            "ferrometal",
            chart,
            "--namespace",
            RELEASE_NAMESPACE,
            "--create-namespace",
        ],
        Some(kubeconfig),
    );

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in ferrometal::api::crds() {
        let name = crd.name_any();
        let installed = crds.get(&name).await.expect("the chart installs the CRD");
        let established = installed
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "{name} is established");
    }
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), RELEASE_NAMESPACE);
    let deployment = deployments.get("ferrometal").await.expect("Deployment");
    assert_eq!(deployment.spec.and_then(|s| s.replicas), Some(1));
    Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(
        client.clone(),
        RELEASE_NAMESPACE,
    )
    .get("ferrometal")
    .await
    .expect("ServiceAccount");
    Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(client.clone())
        .get("ferrometal")
        .await
        .expect("ClusterRole");
    Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), RELEASE_NAMESPACE)
        .get("ferrometal-boot")
        .await
        .expect("boot Service");

    helm_ok(
        &[
            "upgrade",
            "ferrometal",
            chart,
            "--namespace",
            RELEASE_NAMESPACE,
            "--reuse-values",
            "--set",
            "replicaCount=2",
        ],
        Some(kubeconfig),
    );
    let deployment = deployments.get("ferrometal").await.expect("Deployment");
    assert_eq!(deployment.spec.and_then(|s| s.replicas), Some(2));

    helm_ok(
        &["uninstall", "ferrometal", "--namespace", RELEASE_NAMESPACE],
        Some(kubeconfig),
    );
    assert!(
        deployments
            .get_opt("ferrometal")
            .await
            .expect("read")
            .is_none(),
        "uninstall removes the Deployment"
    );
    assert!(
        crds.get_opt("servers.metal.ironcore.dev")
            .await
            .expect("read")
            .is_some(),
        "uninstall keeps the CRDs (and so every Server)"
    );
}

/// Waits until `count` Servers are Available, printing the operators' logs if they never are.
async fn until_available(lab: &Lab, count: usize, operators: &[&Program]) {
    let servers: Api<Server> = Api::all(lab.client.clone());
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut summary = String::new();
    while Instant::now() < deadline {
        if let Ok(list) = servers.list(&ListParams::default()).await {
            summary = common::server_summary(&list.items);
            let available = list
                .items
                .iter()
                .filter(|s| {
                    s.status
                        .as_ref()
                        .and_then(|s| s.state.as_ref())
                        .is_some_and(|state| format!("{state:?}") == "Available")
                })
                .count();
            if available >= count {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let logs: Vec<String> = operators.iter().map(|p| p.log_tail(60)).collect();
    panic!(
        "{count} Servers did not become Available:\n{}\noperator logs:\n{}",
        summary,
        logs.join("\n----\n")
    );
}

/// Runs kubectl against the lab's control plane as the user of `kubeconfig` (the admin's
/// when `None`).
fn kubectl(lab: &Lab, kubeconfig: Option<&Path>, args: &[&str]) -> Output {
    let mut command = lab.control_plane.kubectl().expect("kubectl");
    if let Some(kubeconfig) = kubeconfig {
        command.env("KUBECONFIG", kubeconfig);
    }
    command.args(args).output().expect("run kubectl")
}

/// Writes a kubeconfig for the control plane that authenticates with `token`.
fn token_kubeconfig(lab: &Lab, token: &str) -> PathBuf {
    let path = lab.work_dir().join("serviceaccount.kubeconfig");
    std::fs::copy(lab.kubeconfig(), &path).expect("copy kubeconfig");
    let kubectl = |args: &[&str]| {
        let output = kubectl(lab, Some(&path), args);
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let token = format!("--token={token}");
    kubectl(&["config", "set-credentials", "ferrometal-sa", &token]);
    kubectl(&["config", "set-context", "--current", "--user=ferrometal-sa"]);
    path
}

#[tokio::test]
async fn the_charts_service_account_runs_a_whole_discovery_and_nothing_more() {
    // One BMC announced by DHCP (Endpoint → default credentials → BMCSecret and BMC), one
    // applied with spec.access; both discovered in-band through the boot server.
    let lab = Lab::start(lab_options("rbac", 2, 1), |line| eprintln!("lab: {line}"))
        .await
        .expect("the lab starts");
    let chart = chart();
    helm_ok(
        &[
            "install",
            "ferrometal",
            chart.to_str().expect("path"),
            "--namespace",
            RELEASE_NAMESPACE,
            "--create-namespace",
        ],
        Some(&lab.kubeconfig()),
    );
    let output = kubectl(
        &lab,
        None,
        &[
            "create",
            "token",
            "ferrometal",
            "--namespace",
            RELEASE_NAMESPACE,
            "--duration",
            "1h",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let kubeconfig = token_kubeconfig(&lab, &token);

    // The chart's arguments that matter for permissions: its boot namespace and its Lease.
    let operator = lab
        .spawn_operator(
            "ferrometal-sa",
            &[
                ("--namespace", RELEASE_NAMESPACE.to_owned()),
                ("--leader-elect", String::new()),
                ("--leader-election-namespace", RELEASE_NAMESPACE.to_owned()),
            ],
            Some(&kubeconfig),
        )
        .expect("start ferrometal run");
    lab.apply_bmcs(1..2, None).await.expect("apply BMC");
    until_available(&lab, 4, &[&operator]).await;
    // The chart's ServiceAccount binds a claim in its namespace (claims are watched there,
    // Servers patched, the claim's status written).
    let claims: Api<ferrometal::api::ServerClaim> =
        Api::namespaced(lab.client.clone(), RELEASE_NAMESPACE);
    let server = Api::<ferrometal::api::Server>::all(lab.client.clone())
        .list(&ListParams::default())
        .await
        .expect("servers")
        .items[0]
        .metadata
        .name
        .clone()
        .expect("name");
    let claim: ferrometal::api::ServerClaim = serde_json::from_value(serde_json::json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1",
        "kind": "ServerClaim",
        "metadata": {"name": "chart-claim", "namespace": RELEASE_NAMESPACE},
        "spec": {"power": "Off", "image": "os:latest", "serverRef": {"name": server}},
    }))
    .expect("claim");
    claims
        .create(&kube::api::PostParams::default(), &claim)
        .await
        .expect("create a claim");
    common::eventually("the chart's operator binds the claim", || {
        let claims = claims.clone();
        async move {
            let claim = claims.get("chart-claim").await.ok()?;
            (claim.status?.phase? == ferrometal::api::server_claim::ServerClaimPhase::Bound)
                .then_some(())
        }
    })
    .await;
    let log = operator.log_tail(10_000);
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the operator was refused something it needs:\n{}",
        log.lines()
            .filter(|l| l.to_lowercase().contains("forbidden"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(lab.client.clone(), "default");
    assert!(
        !events
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
            .is_empty(),
        "the operator published Events about cluster-scoped objects"
    );

    // What the ServiceAccount must not do.
    let can_i = |args: &[&str]| {
        let output = kubectl(
            &lab,
            Some(&kubeconfig),
            &[&["auth", "can-i"], args].concat(),
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    assert_eq!(can_i(&["get", "secrets", "-n", RELEASE_NAMESPACE]), "yes");
    for forbidden in [
        ["get", "secrets", "-n", "kube-system"],
        ["list", "secrets", "-n", "default"],
        ["delete", "servers", "-n", "default"],
        ["delete", "serverclaims", "-n", RELEASE_NAMESPACE],
        ["create", "pods", "-n", RELEASE_NAMESPACE],
        ["update", "clusterroles", "-n", "default"],
    ] {
        assert_eq!(can_i(&forbidden), "no", "can-i {forbidden:?}");
    }
    let output = kubectl(
        &lab,
        Some(&kubeconfig),
        &["get", "secrets", "--namespace", "kube-system"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "reading Secrets elsewhere works");
    assert!(
        stderr.contains("Forbidden") || stderr.contains("forbidden"),
        "{stderr}"
    );
}

/// The value of the sample `name` (with labels as written) on a metrics page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
}

async fn metrics(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics page")
}

async fn holder(lab: &Lab) -> Option<String> {
    Api::<Lease>::namespaced(lab.client.clone(), RELEASE_NAMESPACE)
        .get_opt("ferrometal-leader")
        .await
        .ok()
        .flatten()
        .and_then(|lease| lease.spec?.holder_identity)
        .filter(|holder| !holder.is_empty())
}

/// Starts a replica of `ferrometal run` with leader election under `identity`, out-of-band
/// discovery (its Servers need only their BMC, not the boot server of a replica that dies),
/// a lease of `lease_seconds` renewed a second before expiry, and metrics on `metrics_port`.
fn elected_replica(lab: &Lab, identity: &str, metrics_port: u16, lease_seconds: u64) -> Program {
    let boot_port = testenv::net::free_port().expect("port");
    lab.spawn_operator(
        &format!("ferrometal-{identity}"),
        &[
            ("--boot-bind-address", format!("127.0.0.1:{boot_port}")),
            (
                "--metrics-bind-address",
                format!("127.0.0.1:{metrics_port}"),
            ),
            ("--discovery-mode", String::from("out-of-band")),
            ("--leader-elect", String::new()),
            ("--leader-election-namespace", RELEASE_NAMESPACE.to_owned()),
            ("--leader-election-identity", identity.to_owned()),
            ("--leader-election-lease-seconds", lease_seconds.to_string()),
            ("--leader-election-renew-seconds", String::from("1")),
        ],
        None,
    )
    .expect("start ferrometal run")
}

/// Waits until the Lease names `identity`, failing with `operator`'s log after `timeout`.
async fn until_leader(lab: &Lab, operator: &Program, identity: &str, timeout: Duration) {
    let started = Instant::now();
    while holder(lab).await.as_deref() != Some(identity) {
        assert!(
            started.elapsed() < timeout,
            "{identity} did not lead within {timeout:?}:\n{}",
            operator.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_operators_elect_one_leader_and_hand_over_when_it_dies() {
    let lab = Lab::start(lab_options("leader", 2, 0), |line| eprintln!("lab: {line}"))
        .await
        .expect("the lab starts");
    let lease_seconds = 4;
    let replica = |identity: &str, metrics_port: u16| {
        elected_replica(&lab, identity, metrics_port, lease_seconds)
    };
    kubectl(&lab, None, &["create", "namespace", RELEASE_NAMESPACE]);
    let (first_port, second_port) = (
        testenv::net::free_port().expect("port"),
        testenv::net::free_port().expect("port"),
    );
    let first = replica("first", first_port);
    until_leader(&lab, &first, "first", Duration::from_secs(60)).await;
    let second = replica("second", second_port);

    lab.apply_bmcs(0..1, None).await.expect("apply BMC");
    until_available(&lab, 2, &[&first, &second]).await;
    let (leader, standby) = (metrics(first_port).await, metrics(second_port).await);
    assert_eq!(sample(&leader, "ferrometal_leader"), Some(1.0), "{leader}");
    assert_eq!(
        sample(&standby, "ferrometal_leader"),
        Some(0.0),
        "{standby}"
    );
    for controller in ["endpoint", "bmc", "server"] {
        let name =
            format!("ferrometal_reconciles_total{{controller=\"{controller}\",outcome=\"ok\"}}");
        // (No Endpoints here: the BMCs are applied with spec.access.)
        assert!(
            controller == "endpoint" || sample(&leader, &name).is_some_and(|n| n > 0.0),
            "the leader reconciles {controller}s"
        );
        assert_eq!(
            sample(&standby, &name),
            None,
            "the standby reconciles no {controller}s:\n{standby}"
        );
    }

    // The leader dies without releasing its lease; the standby takes over once it expires.
    drop(first);
    let killed = Instant::now();
    // The lease expires at most `lease_seconds` after the kill; the rest is slack for a
    // loaded machine.
    until_leader(
        &lab,
        &second,
        "second",
        Duration::from_secs(lease_seconds * 3),
    )
    .await;
    eprintln!(
        "handover {:?} after the leader died (lease {lease_seconds} s)",
        killed.elapsed()
    );
    lab.apply_bmcs(1..2, None).await.expect("apply BMC");
    until_available(&lab, 4, &[&second]).await;
    let page = metrics(second_port).await;
    assert_eq!(sample(&page, "ferrometal_leader"), Some(1.0), "{page}");

    // A leader stopped with SIGTERM finishes its work, gives the lease up and exits cleanly.
    let mut second = second;
    let third = replica("third", testenv::net::free_port().expect("port"));
    let status = Command::new("kill")
        .args(["-TERM", &second.pid().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        match second.ensure_running() {
            Ok(()) => {
                assert!(Instant::now() < deadline, "SIGTERM did not stop the leader");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => break error.to_string(),
        }
    };
    assert!(exit.contains("exit status: 0"), "{exit}");
    assert!(
        second.log_tail(20).contains("released the leader lease"),
        "{}",
        second.log_tail(20)
    );
    until_leader(&lab, &third, "third", Duration::from_secs(30)).await;
}

/// `(user agent, resource, verb, HTTP code, received at)` of each write in the API server's
/// audit log.
fn audited_writes(lab: &Lab) -> Vec<(String, String, String, u16, k8s_openapi::jiff::Timestamp)> {
    let path = lab
        .control_plane
        .audit_log_path()
        .expect("the lab keeps an audit log");
    let text = std::fs::read_to_string(path).expect("read the audit log");
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|event| {
            Some((
                event["userAgent"].as_str()?.to_owned(),
                event["objectRef"]["resource"].as_str()?.to_owned(),
                event["verb"].as_str()?.to_owned(),
                u16::try_from(event["responseStatus"]["code"].as_u64()?).ok()?,
                event["requestReceivedTimestamp"].as_str()?.parse().ok()?,
            ))
        })
        .collect()
}

#[tokio::test]
async fn a_leader_frozen_past_its_lease_writes_nothing_once_the_standby_took_over() {
    let lab = Lab::start(
        LabOptions {
            audit_log: true,
            ..lab_options("frozen", 6, 0)
        },
        |line| eprintln!("lab: {line}"),
    )
    .await
    .expect("the lab starts");
    let lease_seconds = 4;
    let replica = |identity: &str| {
        elected_replica(
            &lab,
            identity,
            testenv::net::free_port().expect("port"),
            lease_seconds,
        )
    };
    kubectl(&lab, None, &["create", "namespace", RELEASE_NAMESPACE]);
    let mut first = replica("first");
    until_leader(&lab, &first, "first", Duration::from_secs(60)).await;
    let second = replica("second");
    // Slow BMCs: the leader has BMC calls in flight, and answers to write, when it freezes.
    for bmc in lab.fleet.bmcs() {
        bmc.set_faults(ferrometal_sim::Faults {
            latency: Duration::from_millis(1500),
            ..ferrometal_sim::Faults::default()
        });
    }
    lab.apply_bmcs(0..6, None).await.expect("apply BMCs");
    let servers: Api<Server> = Api::all(lab.client.clone());
    let started = Instant::now();
    while servers
        .list(&ListParams::default())
        .await
        .map_or(true, |list| list.items.is_empty())
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no Server appeared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Frozen mid-discovery for three lease durations: the standby takes over meanwhile.
    let signal = |name: &str, pid: u32| {
        let status = Command::new("kill")
            .args([name, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {name} {pid}");
    };
    signal("-STOP", first.pid());
    let frozen_at = k8s_openapi::jiff::Timestamp::now();
    until_leader(
        &lab,
        &second,
        "second",
        Duration::from_secs(lease_seconds * 4),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(lease_seconds)).await;
    signal("-CONT", first.pid());
    // It learns at its next renewal that it lost the lease, and exits.
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        match first.ensure_running() {
            Ok(()) => {
                assert!(
                    Instant::now() < deadline,
                    "the old leader kept running:\n{}",
                    first.log_tail(40)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => break error.to_string(),
        }
    };
    assert!(!exit.contains("exit status: 0"), "{exit}");
    until_available(&lab, 6, &[&second]).await;

    let writes = audited_writes(&lab);
    let by = |identity: &str| format!("({identity})");
    // The takeover: the standby's first successful write of the Lease after the freeze.
    let takeover = writes
        .iter()
        .filter(|(agent, resource, _, code, at)| {
            agent.ends_with(&by("second"))
                && resource == "leases"
                && (200..300).contains(code)
                && *at > frozen_at
        })
        .map(|(.., at)| *at)
        .min()
        .expect("the standby wrote the lease");
    let late: Vec<_> = writes
        .iter()
        .filter(|(agent, resource, _, _, at)| {
            agent.ends_with(&by("first")) && resource != "leases" && *at > takeover
        })
        .collect();
    assert!(
        late.is_empty(),
        "the old leader wrote after the takeover at {takeover}: {late:#?}\n{}",
        first.log_tail(40)
    );
    let before = writes
        .iter()
        .filter(|(agent, resource, ..)| agent.ends_with(&by("first")) && resource != "leases")
        .count();
    assert!(before > 0, "the audit log names the first replica's writes");
    let fenced = first.log_tail(400).matches("write fenced off").count();
    eprintln!(
        "{before} writes of the old leader before the takeover; {fenced} fenced off after it woke"
    );
}

/// The shared libraries an ELF binary needs (`readelf -d`).
fn needed_libraries(binary: &Path) -> Vec<String> {
    let output = Command::new("readelf")
        .arg("-d")
        .arg(binary)
        .output()
        .expect("run readelf (binutils)");
    assert!(output.status.success(), "readelf {}", binary.display());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .filter_map(|line| Some(line.split_once('[')?.1.trim_end_matches(']').to_owned()))
        .collect()
}

#[test]
fn the_image_definition_packages_what_the_chart_expects() {
    // What gcr.io/distroless/cc-debian12 provides: glibc (with libm) and libgcc_s.
    let provided = [
        "libc.so.6",
        "libm.so.6",
        "libgcc_s.so.1",
        "ld-linux-x86-64.so.2",
        "ld-linux-aarch64.so.1",
    ];
    let binaries = [
        PathBuf::from(env!("CARGO_BIN_EXE_ferrometal")),
        testenv::components::workspace_binary("metalprobe").expect("metalprobe is built"),
    ];
    for binary in &binaries {
        let needed = needed_libraries(binary);
        assert!(
            !needed.is_empty(),
            "{} is dynamically linked",
            binary.display()
        );
        let missing: Vec<&String> = needed
            .iter()
            .filter(|library| !provided.contains(&library.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "{} needs {missing:?}, which the runtime image does not have; add them to the \
             Containerfile's base or docs/install.md",
            binary.display()
        );
    }

    let containerfile =
        std::fs::read_to_string(testenv::tools::workspace_root().join("Containerfile"))
            .expect("read Containerfile");
    let values = std::fs::read_to_string(chart().join("values.yaml")).expect("read values.yaml");
    let metalprobe = "/usr/lib/ferrometal/metalprobe";
    assert!(values.contains(&format!("metalprobeBinary: {metalprobe}")));
    assert!(containerfile.contains(&format!("/out{metalprobe}")));
    assert!(containerfile.contains(&format!(
        "/out{}",
        ferrometal::plugins::catalog::DEFAULT_PLUGIN_DIR
    )));
    for plugin in ["redfish", "macdb", "ignition"] {
        testenv::components::component(plugin).expect("the bundled plugin is built");
        assert!(
            containerfile.contains(&format!("target/components/{plugin}.wasm")),
            "the image bundles {plugin}.wasm"
        );
    }
}

/// Keys of `value` (under `path`) that docs/install.md does not name; a documented key
/// covers everything below it.
fn undocumented_values(path: &str, value: &Value, doc: &str, missing: &mut Vec<String>) {
    if !path.is_empty() && doc.contains(&format!("`{path}`")) {
        return;
    }
    match value.as_object() {
        Some(children) if !children.is_empty() => {
            for (key, child) in children {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                undocumented_values(&child_path, child, doc, missing);
            }
        }
        _ => missing.push(path.to_owned()),
    }
}

#[test]
fn every_chart_value_is_documented_in_the_install_guide() {
    let values: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(chart().join("values.yaml")).expect("read values.yaml"),
    )
    .expect("values.yaml parses");
    let doc = std::fs::read_to_string(testenv::tools::workspace_root().join("docs/install.md"))
        .expect("read docs/install.md");
    let mut missing = Vec::new();
    undocumented_values("", &values, &doc, &mut missing);
    assert!(
        missing.is_empty(),
        "values.yaml keys missing from docs/install.md's Values table: {missing:?}"
    );
}
