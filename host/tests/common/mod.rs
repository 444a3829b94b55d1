//! Shared helpers of the host's integration tests.

pub mod vm;

use std::future::Future;
use std::time::Duration;

/// Polls `probe` every 100 ms until it returns `Some`, for at most 60 s.
#[allow(dead_code)] // Not every test binary waits this way.
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

/// Lab options for the end-to-end tests: `bmcs` simulated BMCs with `systems_per_bmc` systems
/// each (seed 42), the first `dhcp_bmcs` announced by DHCP and the rest applied at start, the
/// real `ferrometal` and `metalprobe` binaries and plugins, fast resyncs, and a fresh work
/// directory named after `name`.
#[allow(dead_code)] // Only the tests that start a lab use it.
pub fn lab_options(
    name: &str,
    bmcs: usize,
    systems_per_bmc: usize,
    dhcp_bmcs: usize,
) -> ferrometal_sim::lab::LabOptions {
    remove_abandoned_lab_dirs();
    let work_dir =
        std::env::temp_dir().join(format!("ferrometal-lab-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work_dir);
    ferrometal_sim::lab::LabOptions {
        fleet: ferrometal_sim::FleetSpec {
            seed: 42,
            bmcs,
            systems_per_bmc,
            ..ferrometal_sim::FleetSpec::default()
        },
        dhcp_bmcs,
        tls: false,
        apply_bmcs: true,
        start_operator: true,
        vms: Vec::new(),
        behaviour: ferrometal_sim::MachineBehaviour::default(),
        ferrometal: env!("CARGO_BIN_EXE_ferrometal").into(),
        metalprobe: testenv::components::workspace_binary("metalprobe")
            .expect("metalprobe is built"),
        components: testenv::components::component("redfish")
            .expect("plugins are built (cargo xtask plugins)")
            .parent()
            .expect("component directory")
            .to_owned(),
        operator_args: [
            "--credential-retry-seconds",
            "1",
            "--server-resync-seconds",
            "2",
            "--bmc-resync-seconds",
            "3",
        ]
        .map(String::from)
        .into_iter()
        // Compiled plugins are shared by every lab, as the chart's cache keeps them across
        // restarts: an operator starts without compiling the same components again.
        .chain([
            String::from("--plugin-cache-dir"),
            std::env::temp_dir()
                .join("ferrometal-lab-plugin-cache")
                .display()
                .to_string(),
        ])
        .collect(),
        operator_log: String::from("info,ferrometal=debug"),
        work_dir,
        audit_log: false,
        hold_dhcp_bmcs: false,
        node: false,
        ipv6: false,
    }
}

/// Removes the work directories of labs whose test process has ended (`ferrometal-lab-<name>-
/// <pid>` of a pid that no longer runs): a lab keeps its directory for the logs in it, and
/// nothing else would ever remove it.
fn remove_abandoned_lab_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix("ferrometal-lab-"))
            .and_then(|rest| rest.rsplit_once('-'))
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// One line per Server: name, state and its conditions' reasons and messages, for failure
/// reports.
#[allow(dead_code)] // Only the tests that wait for Servers use it.
pub fn server_summary(servers: &[ferrometal::api::Server]) -> String {
    use kube::ResourceExt;
    servers
        .iter()
        .map(|server| {
            let status = server.status.clone().unwrap_or_default();
            format!(
                "{}: {:?} {:?}",
                server.name_any(),
                status.state,
                status
                    .conditions
                    .iter()
                    .map(|c| (&c.reason, &c.message))
                    .collect::<Vec<_>>()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Pushes a minimal discovery image (a kernel and an initramfs layer, IronCore media types)
/// as `discovery:1`.
#[allow(dead_code)] // Only the tests that boot machines use it.
pub async fn push_discovery_image(registry: &testenv::OciRegistry) -> testenv::PushedImage {
    registry
        .push_image(
            "discovery:1",
            &[
                ("application/vnd.ironcore.image.kernel", b"kernel"),
                ("application/vnd.ironcore.image.initramfs", b"initramfs"),
            ],
        )
        .await
        .expect("push discovery image")
}

/// The condition of `type_` on the Endpoint `name`, once it has one.
#[allow(dead_code)] // Only the discovery tests use it.
pub async fn endpoint_condition(
    endpoints: &kube::Api<ferrometal::api::Endpoint>,
    name: &str,
    type_: &str,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    endpoints
        .get(name)
        .await
        .ok()?
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)
}

/// The Server's discovery attempt (its annotation), 0 before the first.
#[allow(dead_code)] // Only the fleet tests count attempts.
pub fn attempt(server: &ferrometal::api::Server) -> u32 {
    use kube::ResourceExt;
    server
        .annotations()
        .get("ferrometal.dev/discovery-attempt")
        .and_then(|a| a.parse().ok())
        .unwrap_or(0)
}
