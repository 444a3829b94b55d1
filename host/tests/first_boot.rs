//! The first boot, end to end with real components: a real control plane, a real Redfish BMC
//! (sushy-emulator) with three systems, a real OCI registry with the discovery image, the real
//! redfish and ignition plugins, and the real metalprobe binary run against generated machine
//! trees. The test plays the machines' firmware: it follows the iPXE script the boot server
//! hands out and runs metalprobe the way the discovery system's ignition says.
//!
//! Covered: Initial → Discovery → Available with the probe's facts in status; a wrong token
//! refused; a probe that never reports times out into Error and is retried; the operator
//! restarted during Discovery carries on to Available.

use std::process::Command;
use std::time::Duration;

use ferrometal::api::{Server, ServerBootConfiguration};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
mod common;
use common::eventually;
use ferrometal_sim::firmware;
use testenv::{ControlPlane, FakeMachine, FakeNic, OciRegistry, SushyEmulator};

const NAMESPACE: &str = "first-boot";
/// Discovery reasons once the network boot was requested.
const BOOTED: &str = "Booting|WaitingForReport";
const UUIDS: [&str; 3] = [
    "f1b0000a-0000-4000-8000-000000000001",
    "f1b0000a-0000-4000-8000-000000000002",
    "f1b0000a-0000-4000-8000-000000000003",
];

fn mac(i: usize) -> String {
    format!("52:54:00:f1:00:0{i}")
}

struct Setup {
    client: Client,
    base_url: String,
    plugins: std::path::PathBuf,
    image: String,
    registry_host: String,
    kubeconfig: std::path::PathBuf,
    metrics_port: u16,
}

impl Setup {
    fn operator(&self, port: u16) -> testenv::Program {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferrometal"));
        command
            .arg("run")
            .arg("--plugin-dir")
            .arg(&self.plugins)
            .args(["--grant", "credentials/reveal"])
            .arg("--metrics-bind-address")
            .arg(format!("127.0.0.1:{}", self.metrics_port))
            .args(["--namespace", NAMESPACE])
            .arg("--boot-bind-address")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--boot-server-url")
            .arg(&self.base_url)
            .arg("--boot-allowed-registries")
            .arg(&self.registry_host)
            .arg("--boot-insecure-registries")
            .arg(&self.registry_host)
            .arg("--discovery-image")
            .arg(&self.image)
            // Offered at /metalprobe; the ignition's metalprobe-url points there.
            .arg("--metalprobe-binary")
            .arg(testenv::components::workspace_binary("metalprobe").expect("metalprobe is built"))
            .args(["--discovery-retry-seconds", "1"])
            .args(["--server-resync-seconds", "2"])
            .env("KUBECONFIG", &self.kubeconfig)
            .env("FERROMETAL_LOG", "info,ferrometal=debug");
        testenv::Program::start("ferrometal-run", command).expect("start ferrometal run")
    }

    fn servers(&self) -> Api<Server> {
        Api::all(self.client.clone())
    }

    /// Waits for `server` to be in `state` with a `Discovery` condition whose reason is one
    /// of `reasons` (`|`-separated).
    async fn discovery(&self, server: &str, state: &str, reasons: &str) -> Server {
        let servers = self.servers();
        let mut last = serde_json::Value::Null;
        for _ in 0..900 {
            if let Ok(Some(found)) = servers.get_opt(server).await {
                last = serde_json::to_value(&found.status).unwrap_or_default();
                let condition = last["conditions"]
                    .as_array()
                    .and_then(|list| list.iter().find(|c| c["type"] == "Discovery"));
                if last["state"] == state
                    && condition
                        .is_some_and(|c| reasons.split('|').any(|reason| c["reason"] == reason))
                {
                    return found;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{server} did not reach {state}/{reasons}; last status: {last:#}");
    }

    /// Does what the firmware and the discovery system's ignition do: fetch the iPXE script,
    /// find the ignition URL, fetch the ignition and read the registry URL, the token and
    /// where metalprobe is downloaded from (with the fleet simulator's interpreters).
    async fn boot(&self, uuid: &str) -> Boot {
        let script = reqwest::get(format!("{}/ipxe/{uuid}", self.base_url))
            .await
            .expect("iPXE script")
            .text()
            .await
            .expect("text");
        let steps = firmware::interpret(&script, &Default::default()).expect("iPXE script");
        let ignition_url = steps
            .iter()
            .find_map(|step| match step {
                firmware::Step::Kernel { args, .. } => {
                    firmware::kernel_arg(args, "ignition.config.url")
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no ignition URL in:\n{script}"))
            .to_owned();
        let ignition: serde_json::Value = reqwest::get(&ignition_url)
            .await
            .expect("ignition")
            .json()
            .await
            .expect("ignition JSON");
        let instructions =
            firmware::discovery_instructions(&ignition).expect("metalprobe instructions");
        Boot {
            registry: instructions.registry_url,
            token: instructions.token.expect("token file"),
            probe_url: instructions
                .probe_url
                .expect("metalprobe download in the ignition"),
        }
    }
}

/// What a discovery boot hands the machine.
struct Boot {
    registry: String,
    token: String,
    probe_url: String,
}

/// Downloads metalprobe like the discovery system does, into `dir`, executable.
async fn download_probe(url: &str, dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let binary = reqwest::get(url)
        .await
        .expect("metalprobe download")
        .error_for_status()
        .expect("metalprobe is offered")
        .bytes()
        .await
        .expect("metalprobe bytes");
    let path = dir.join("metalprobe");
    std::fs::write(&path, &binary).expect("write metalprobe");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// Runs the real metalprobe (`binary`) for machine `i` with `token`.
fn metalprobe(
    binary: &std::path::Path,
    i: usize,
    registry: &str,
    token: &str,
) -> std::process::Output {
    let root = tempfile::tempdir().expect("temp dir");
    FakeMachine {
        uuid: UUIDS[i].to_uppercase(),
        manufacturer: String::from("Sushy Emulator"),
        model: String::from("fake"),
        serial: format!("SN-{i}"),
        nics: vec![FakeNic {
            name: String::from("eno1"),
            mac: mac(i),
            ipv4: Some((format!("10.77.0.{}", 10 + i), 24)),
            link_up: true,
        }],
        cpus: (1, 4),
        memory_kib: 8 * 1024 * 1024,
        disks: vec![(String::from("vda"), 64 << 30, false)],
        pci_devices: Vec::new(),
    }
    .write(root.path())
    .expect("machine tree");
    let token_file = root.path().join("token");
    std::fs::write(&token_file, token).expect("token file");
    Command::new(binary)
        .args(["--registry-url", registry, "--attempts", "3", "--root"])
        .arg(root.path())
        .arg("--token-file")
        .arg(&token_file)
        .output()
        .expect("metalprobe runs")
}

/// The system's power state and boot override, as the BMC has them.
async fn bmc_view(bmc: &SushyEmulator, uuid: &str) -> (String, String, String) {
    let system: serde_json::Value = bmc
        .http_client()
        .expect("client")
        .get(format!("{}/redfish/v1/Systems/{uuid}", bmc.base_url()))
        .basic_auth("admin", Some("bmc-pw"))
        .send()
        .await
        .expect("BMC answers")
        .json()
        .await
        .expect("system JSON");
    (
        system["PowerState"].as_str().unwrap_or_default().to_owned(),
        system["Boot"]["BootSourceOverrideTarget"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        system["Boot"]["BootSourceOverrideEnabled"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn servers_are_discovered_through_a_real_first_boot() {
    let control_plane = ControlPlane::shared().await.expect("control plane");
    let _logs = control_plane.logs_on_failure();
    let client = control_plane.client().await.expect("client");
    let registry = OciRegistry::start().await.expect("registry");
    let image = common::push_discovery_image(&registry).await;
    let systems: Vec<(&str, Vec<String>)> = UUIDS
        .iter()
        .enumerate()
        .map(|(i, uuid)| (*uuid, vec![mac(i)]))
        .collect();
    let bmc = common::emulated_bmc(&systems, false).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = common::plugin_dir(dir.path(), &["redfish", "ignition"]);
    common::create_namespace(&client, NAMESPACE).await;
    let port = testenv::net::free_port().expect("port");
    let setup = Setup {
        client: client.clone(),
        base_url: format!("http://127.0.0.1:{port}"),
        plugins,
        image: image.reference.clone(),
        registry_host: registry.host().to_owned(),
        kubeconfig: control_plane.kubeconfig_path().to_owned(),
        metrics_port: testenv::net::free_port().expect("port"),
    };
    let operator = setup.operator(port);

    // The BMC, applied directly (the BMC-based discovery path) → three Servers.
    let objects = format!(
        "apiVersion: metal.ironcore.dev/v1alpha1\nkind: BMCSecret\nmetadata: {{name: fb-bmc}}\nstringData: {{username: admin, password: bmc-pw}}\n\
         ---\napiVersion: metal.ironcore.dev/v1alpha1\nkind: BMC\nmetadata: {{name: fb-bmc}}\nspec:\n  access: {{macAddress: '52:54:00:f1:ff:01', ip: 127.0.0.1}}\n  bmcSecretRef: {{name: fb-bmc}}\n  protocol: {{name: Redfish, port: {}, scheme: http}}\n",
        bmc.port()
    );
    common::kubectl_apply(control_plane, &objects);
    let names: Vec<String> = (0..3).map(|i| format!("fb-bmc-system-{i}")).collect();

    // Machine 2 never reports: a short timeout (per-Server annotation) sends it to Error,
    // from where it is retried.
    eventually("the third Server", || async {
        setup.servers().get_opt(&names[2]).await.ok()?
    })
    .await;
    setup
        .servers()
        .patch(
            &names[2],
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                "ferrometal.dev/discovery-timeout-seconds": "4"
            }}})),
        )
        .await
        .expect("annotate");

    // Machine 0: the discovery boot is set up on the BMC.
    let booting = setup.discovery(&names[0], "Discovery", BOOTED).await;
    assert_eq!(
        booting
            .spec
            .boot_configuration_ref
            .as_ref()
            .map(|r| r.name.as_str()),
        Some(names[0].as_str())
    );
    // sushy-emulator applies power changes seconds late and reads every override back as
    // `Continuous` (a documented quirk), so wait for On and check the target.
    let (_, target, _) = eventually("the BMC to power machine 0 on", || async {
        let view = bmc_view(&bmc, UUIDS[0]).await;
        (view.0 == "On").then_some(view)
    })
    .await;
    assert_eq!(target, "Pxe");

    // The discovery system downloads metalprobe from the boot server: the very binary.
    let boot = setup.boot(UUIDS[0]).await;
    assert_eq!(boot.registry, setup.base_url);
    assert_eq!(boot.probe_url, format!("{}/metalprobe", setup.base_url));
    let probe = download_probe(&boot.probe_url, dir.path()).await;
    let built = testenv::components::workspace_binary("metalprobe").expect("metalprobe is built");
    assert_eq!(
        std::fs::read(&probe).expect("downloaded"),
        std::fs::read(&built).expect("built"),
    );

    // A report with a wrong token is refused, and metalprobe says so.
    let (registry_url, token) = (boot.registry, boot.token);
    let refused = metalprobe(&probe, 0, &registry_url, "not-the-token");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("refused the report: HTTP 403"), "{stderr}");

    // The right token: the facts land in the Server's status and it becomes Available.
    let reported = metalprobe(&probe, 0, &registry_url, &token);
    assert!(
        reported.status.success(),
        "{}",
        String::from_utf8_lossy(&reported.stderr)
    );
    let available = setup.discovery(&names[0], "Available", "Discovered").await;
    let status = available.status.expect("status");
    assert_eq!(status.network_interfaces.len(), 1);
    assert_eq!(status.network_interfaces[0].mac_address, mac(0));
    assert_eq!(status.network_interfaces[0].ips, ["10.77.0.10"]);
    assert_eq!(status.processors.len(), 1);
    assert_eq!(status.processors[0].total_cores, Some(4));
    assert_eq!(
        status.total_system_memory.map(|q| q.0).as_deref(),
        Some("8Gi")
    );
    assert_eq!(status.storages[0].drives[0].name, "vda");
    assert_eq!(status.serial_number.as_deref(), Some("SN-0"));
    assert!(available.spec.boot_configuration_ref.is_none());
    let sbcs: Api<ServerBootConfiguration> = Api::namespaced(client.clone(), NAMESPACE);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    eventually(
        "the discovery boot configuration and token to be gone",
        || async {
            (sbcs.get_opt(&names[0]).await.ok()?.is_none()
                && secrets.get_opt(&names[0]).await.ok()?.is_none())
            .then_some(())
        },
    )
    .await;
    assert_eq!(
        reqwest::get(format!("{}/ipxe/{}", setup.base_url, UUIDS[0]))
            .await
            .expect("boot server")
            .status(),
        404,
        "a discovered machine is no longer served"
    );
    eventually("machine 0 to be powered off after discovery", || async {
        (bmc_view(&bmc, UUIDS[0]).await.0 == "Off").then_some(())
    })
    .await;

    // Machine 2 timed out and went to Error, then was retried.
    let errored = setup
        .discovery(&names[2], "Error", "DiscoveryTimedOut")
        .await;
    let message = errored
        .status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Discovery"))
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(message.contains("timed out after 4s"), "{message}");
    assert!(message.contains("; retrying at "), "{message}");
    eventually("a further discovery attempt", || async {
        let server = setup.servers().get_opt(&names[2]).await.ok()??;
        let attempt: u32 = server
            .annotations()
            .get("ferrometal.dev/discovery-attempt")?
            .parse()
            .ok()?;
        (attempt >= 2).then_some(())
    })
    .await;

    // The operator timed machine 0's discovery phases and counted machine 2's timeout.
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", setup.metrics_port))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    for expected in [
        r#"ferrometal_discovery_phase_duration_seconds_count{phase="boot_configuration"}"#,
        r#"ferrometal_discovery_phase_duration_seconds_count{phase="boot"}"#,
        r#"ferrometal_discovery_phase_duration_seconds_count{phase="completion"}"#,
        "ferrometal_discovery_duration_seconds_count 1",
        r#"ferrometal_servers{state="Available"}"#,
    ] {
        assert!(metrics.contains(expected), "{expected} in:\n{metrics}");
    }
    let timeouts: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("ferrometal_discovery_timeouts_total "))
        .and_then(|value| value.parse().ok())
        .unwrap_or_default();
    assert!(
        timeouts >= 1.0,
        "machine 2's timeout is counted:\n{metrics}"
    );

    // Machine 1: the operator restarts while it is booting; the new one carries on.
    setup.discovery(&names[1], "Discovery", BOOTED).await;
    let Boot {
        registry: registry_url,
        token,
        ..
    } = setup.boot(UUIDS[1]).await;
    drop(operator);
    let _operator = setup.operator(port);
    // The new operator serves the same machine (rebuilt from the API server).
    let again = eventually("the restarted boot server", || async {
        let response = reqwest::get(format!("{}/ipxe/{}", setup.base_url, UUIDS[1]))
            .await
            .ok()?;
        (response.status() == 200).then_some(())?;
        Some(setup.boot(UUIDS[1]).await)
    })
    .await;
    assert_eq!(again.token, token, "the boot token survives the restart");
    let reported = metalprobe(&probe, 1, &registry_url, &token);
    assert!(
        reported.status.success(),
        "{}",
        String::from_utf8_lossy(&reported.stderr)
    );
    setup.discovery(&names[1], "Available", "Discovered").await;
}

/// Out-of-band discovery: the Server takes what the BMC reports and is Available without a
/// boot. It has its own control plane, since an operator owns every Server it sees.
#[tokio::test]
async fn out_of_band_discovery_takes_the_bmc_inventory_without_booting() {
    let control_plane = ControlPlane::start().await.expect("control plane");
    let client = control_plane.client().await.expect("client");
    let uuid = String::from("0b000000-0000-4000-8000-000000000001");
    let bmc = common::emulated_bmc(
        &[(uuid.as_str(), vec![String::from("52:54:00:0B:00:01")])],
        false,
    )
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = common::plugin_dir(dir.path(), &["redfish"]);
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrometal"));
    command
        .arg("run")
        .arg("--plugin-dir")
        .arg(&plugins)
        .args(["--grant", "credentials/reveal"])
        .args(["--metrics-bind-address", "127.0.0.1:0"])
        .args(["--boot-bind-address", "127.0.0.1:0"])
        .args(["--discovery-mode", "out-of-band"])
        .env("KUBECONFIG", control_plane.kubeconfig_path())
        .env("FERROMETAL_LOG", "info,ferrometal=debug");
    let _operator = testenv::Program::start("ferrometal-run", command).expect("start");
    let objects = format!(
        "apiVersion: metal.ironcore.dev/v1alpha1\nkind: BMCSecret\nmetadata: {{name: oob-bmc}}\nstringData: {{username: admin, password: bmc-pw}}\n\
             ---\napiVersion: metal.ironcore.dev/v1alpha1\nkind: BMC\nmetadata: {{name: oob-bmc}}\nspec:\n  access: {{macAddress: '52:54:00:0b:ff:01', ip: 127.0.0.1}}\n  bmcSecretRef: {{name: oob-bmc}}\n  protocol: {{name: Redfish, port: {}, scheme: http}}\n",
        bmc.port()
    );
    common::kubectl_apply(&control_plane, &objects);

    let servers: Api<Server> = Api::all(client.clone());
    let server = eventually("the Server to be Available out-of-band", || async {
        let server = servers.get_opt("oob-bmc-system-0").await.ok()??;
        let status = server.status.clone()?;
        let discovered = status.conditions.iter().any(|c| {
            c.type_ == "Discovery" && c.status == "True" && c.reason == "DiscoveredOutOfBand"
        });
        (status.state == Some(ferrometal::api::ServerState::Available) && discovered)
            .then_some(server)
    })
    .await;
    let status = server.status.expect("status");
    let macs: Vec<&str> = status
        .network_interfaces
        .iter()
        .map(|nic| nic.mac_address.as_str())
        .collect();
    assert_eq!(macs, ["52:54:00:0b:00:01"]);
    assert!(
        Api::<ServerBootConfiguration>::all(client.clone())
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .is_empty(),
        "no boot configuration for an out-of-band discovery"
    );
    let (power, _, _) = bmc_view(&bmc, &uuid).await;
    assert_eq!(power, "Off", "the machine was never booted");
}

/// Settings the ignition generator would reject stop `ferrometal run` at start-up, with the
/// plugin's reason, instead of failing every Server's discovery later.
#[tokio::test]
async fn run_refuses_ignition_settings_the_generator_rejects() {
    let control_plane = ControlPlane::shared().await.expect("control plane");
    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = common::plugin_dir(dir.path(), &["ignition"]);
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferrometal"))
        .arg("run")
        .arg("--plugin-dir")
        .arg(&plugins)
        .args(["--metrics-bind-address", "127.0.0.1:0"])
        .args(["--boot-bind-address", "127.0.0.1:0"])
        .args(["--discovery-image", "ghcr.io/example/discovery:1"])
        .env("KUBECONFIG", control_plane.kubeconfig_path())
        .env("RUST_BACKTRACE", "0")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), child)
        .await
        .expect("ferrometal run exits")
        .expect("ferrometal run starts");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("rejects its settings (plugin configuration and --ignition-setting)")
            && stderr.contains("metalprobe-url"),
        "{stderr}"
    );
}
