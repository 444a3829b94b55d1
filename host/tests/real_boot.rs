//! Real first boots: QEMU virtual machines behind a Redfish BMC of the simulator, real iPXE
//! firmware (Debian's `ipxe.lkrn`), Debian's kernel and an initramfs built from Debian
//! packages (the discovery image, pushed to a real OCI registry and served by ferrometal's
//! image proxy), the discovery ignition applied in the guest by `ferrometal-ignite`, and the
//! real metalprobe reporting what the guest saw. See docs/testing.md.

use std::time::{Duration, Instant};

use ferrometal::api::Server;
use ferrometal_sim::Probe;
use ferrometal_sim::lab::{Lab, LabOptions};
use ferrometal_sim::vm::VmShape;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

mod common;
use common::vm;

const GIB: u64 = 1 << 30;

#[tokio::test]
async fn real_vms_boot_the_discovery_image_and_report_what_they_are() {
    let _one_at_a_time = vm::ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let shapes = vec![
        VmShape {
            cpus: 1,
            memory_mib: 512,
            disk_bytes: GIB,
        },
        VmShape {
            cpus: 2,
            memory_mib: 768,
            disk_bytes: 3 * GIB,
        },
        // Reports with a corrupted token: the registry must refuse it.
        VmShape {
            cpus: 1,
            memory_mib: 512,
            disk_bytes: GIB,
        },
    ];
    let lab = Lab::start(
        LabOptions {
            vms: shapes.clone(),
            apply_bmcs: false,
            ..common::lab_options("real-boot", 0, 1, 0)
        },
        |line| eprintln!("lab: {line}"),
    )
    .await
    .expect("the lab starts");
    let vm_fleet = lab.vm_fleet.as_ref().expect("the VM fleet");
    let machines: Vec<_> = vm_fleet.machines().collect();
    machines[2].set_probe(Probe::WrongToken);
    lab.apply_vm_bmcs().await.expect("apply the VMs' BMC");

    let servers: Api<Server> = Api::all(lab.client.clone());
    let name = |slot: usize| format!("vm-bmc-{}-system-{slot}", ferrometal_sim::lab::VM_FIRST_BMC);
    // The wrong-token machine times out sooner than the default, so the test sees it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let patched = servers
            .patch(
                &name(2),
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {
                    "ferrometal.dev/discovery-timeout-seconds": "60"}}})),
            )
            .await;
        if patched.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Server {} never appeared",
            name(2)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let consoles = || {
        machines
            .iter()
            .map(|m| vm::console_tail(m, 200))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let deadline = Instant::now() + Duration::from_secs(150);
    let list = loop {
        let list = servers
            .list(&ListParams::default())
            .await
            .expect("list Servers")
            .items;
        let settled = |slot: usize, wanted: &str| {
            list.iter()
                .any(|s| s.name_any() == name(slot) && vm::state(s) == wanted)
        };
        if settled(0, "Available") && settled(1, "Available") && settled(2, "Error") {
            break list;
        }
        if Instant::now() > deadline {
            panic!(
                "the VMs did not settle:\n{}\noperator log:\n{}\nconsoles:\n{}",
                common::server_summary(&list),
                lab.operator_log_tail(40),
                consoles()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("settled {:?} after start", started.elapsed());

    for slot in [0, 1] {
        let server = list
            .iter()
            .find(|s| s.name_any() == name(slot))
            .expect("Server");
        let status = server.status.as_ref().expect("status");
        let spec = machines[slot].spec();
        let shape = shapes[slot];
        assert_eq!(
            server
                .spec
                .system_uuid()
                .map(|u| u.to_lowercase())
                .as_deref(),
            Some(spec.uuid.as_str()),
            "the SMBIOS UUID QEMU gave the VM"
        );
        let nic = status
            .network_interfaces
            .iter()
            .find(|nic| nic.name == "eth0")
            .expect("eth0 reported");
        assert_eq!(nic.mac_address, spec.macs[0], "the MAC QEMU gave the VM");
        assert_eq!(
            nic.ips,
            ["10.0.2.15"],
            "the address QEMU's DHCP gave the guest"
        );
        vm::assert_hardware(status, &shape);
        assert!(
            !machines[slot].powered(),
            "the VM is powered off after discovery"
        );
        assert_eq!(machines[slot].phase(), ferrometal_sim::Phase::Off);
    }

    let refused = list
        .iter()
        .find(|s| s.name_any() == name(2))
        .expect("Server");
    let conditions = &refused.status.as_ref().expect("status").conditions;
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Discovery" && c.reason == "DiscoveryTimedOut"),
        "{conditions:?}"
    );
    assert!(
        !conditions.iter().any(|c| c.type_ == "ProbeReported"),
        "no report was accepted: {conditions:?}"
    );
    let console = consoles();
    assert!(
        console.contains("corrupted the token"),
        "the guest ran the corrupted-token fault:\n{console}"
    );
    assert!(
        console.contains("403"),
        "metalprobe's report was refused:\n{console}"
    );

    // A claim on the first VM: it boots again, now with the claim's own ignition, whose unit
    // prints a marker on the console (the discovery image runs enabled units' ExecStart).
    let marker = format!("ferrometal-claim-marker-{}", std::process::id());
    let ignition = json!({
        "ignition": {"version": "3.4.0"},
        "systemd": {"units": [{"name": "marker.service", "enabled": true,
            "contents": format!("[Service]\nType=oneshot\nExecStart=/bin/echo {marker}\n")}]},
    });
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(lab.client.clone(), "default");
    secrets
        .create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "vm-claim-ignition", "namespace": "default"},
                "stringData": {"ignition": ignition.to_string()},
            }))
            .expect("a Secret"),
        )
        .await
        .expect("create the claim's ignition");
    let claims: Api<ferrometal::api::ServerClaim> = Api::namespaced(lab.client.clone(), "default");
    claims
        .create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "metal.ironcore.dev/v1alpha1",
                "kind": "ServerClaim",
                "metadata": {"name": "vm-claim", "namespace": "default"},
                "spec": {"power": "On", "image": lab.discovery_image,
                         "ignitionSecretRef": {"name": "vm-claim-ignition"},
                         "serverRef": {"name": name(0)}},
            }))
            .expect("a claim"),
        )
        .await
        .expect("create the claim");
    let deadline = Instant::now() + Duration::from_secs(150);
    while !vm::console_tail(machines[0], 400).contains(&marker) {
        if Instant::now() > deadline {
            let server = servers.get(&name(0)).await.expect("read");
            panic!(
                "the claimed VM never ran the claim's ignition:\n{}\noperator log:\n{}\nconsole:\n{}",
                common::server_summary(std::slice::from_ref(&server)),
                lab.operator_log_tail(40),
                vm::console_tail(machines[0], 80)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let claimed = servers.get(&name(0)).await.expect("read");
    assert_eq!(vm::state(&claimed), "Reserved");
    let claim = claims.get("vm-claim").await.expect("read the claim");
    assert_eq!(
        claim
            .status
            .and_then(|s| s.phase)
            .map(|p| format!("{p:?}"))
            .as_deref(),
        Some("Bound")
    );
    eprintln!(
        "the claimed VM ran its claim's ignition {:?} after start",
        started.elapsed()
    );

    // The consoles and sparse disks are kept only when the test fails.
    let work_dir = lab.work_dir().to_owned();
    drop(lab);
    let _ = std::fs::remove_dir_all(work_dir);
}

/// A VM on a tap device in a network namespace: its firmware and its discovery system get
/// their addresses and boot file from ferrometal's own DHCP server (on the host end of a veth
/// pair into the namespace), not from QEMU's.
#[tokio::test]
async fn a_vm_boots_through_ferrometals_own_dhcp_server() {
    use ferrometal_sim::vm::{VmNetwork, VmOptions};
    use testenv::netns::{NetworkNamespace, ip};

    let _one_at_a_time = vm::ONE_AT_A_TIME.lock().await;
    if !testenv::netns::available() {
        eprintln!(
            "skipped: network namespaces, tap devices and DHCP's port 67 need root (CI runs as root)"
        );
        return;
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        eprintln!("skipped: this machine has no /dev/net/tun, so VMs cannot have tap devices");
        return;
    }
    let id = std::process::id();
    let net = 60 + id % 100;
    let (namespace, host_if, ns_if) =
        (format!("fm{id}v"), format!("fm{id}vh"), format!("fm{id}vn"));
    let _namespace = NetworkNamespace::create(&namespace);
    ip(&[
        "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &namespace,
    ]);
    let server_ip = format!("10.93.{net}.1");
    ip(&["addr", "add", &format!("{server_ip}/24"), "dev", &host_if]);
    ip(&["link", "set", &host_if, "up"]);
    ip(&["-n", &namespace, "link", "add", "br0", "type", "bridge"]);
    ip(&[
        "-n", &namespace, "link", "set", &ns_if, "master", "br0", "up",
    ]);
    ip(&["-n", &namespace, "link", "set", "br0", "up"]);

    let work_dir = tempfile::tempdir().expect("temp dir");
    let control_plane = testenv::ControlPlane::start().await.expect("control plane");
    let _logs = control_plane.logs_on_failure();
    let client = control_plane.client().await.expect("client");
    let registry = testenv::OciRegistry::start().await.expect("registry");
    let image = testenv::discovery_image::build(&work_dir.path().join("image")).expect("image");
    let pushed = image
        .push(&registry, "ferrometal/discovery:debian")
        .await
        .expect("push");

    let shape = VmShape {
        cpus: 2,
        memory_mib: 512,
        disk_bytes: 2 * GIB,
    };
    let fleet = ferrometal_sim::Fleet::start(ferrometal_sim::FleetOptions {
        spec: ferrometal_sim::FleetSpec {
            seed: 11,
            bmcs: 1,
            systems_per_bmc: 1,
            first_bmc: 61_000,
            ..ferrometal_sim::FleetSpec::default()
        },
        vm: Some(VmOptions {
            network: VmNetwork::Tap {
                namespace: namespace.clone(),
                bridge: String::from("br0"),
            },
            ..VmOptions::debian(vec![shape], work_dir.path().join("vms"))
        }),
        work_dir: work_dir.path().join("machines"),
        ..ferrometal_sim::FleetOptions::default()
    })
    .await
    .expect("the VM fleet starts");
    let machine = fleet.machines().next().expect("one VM").clone();
    let bmc = &fleet.bmcs()[0];

    let boot_port = testenv::net::free_port().expect("port");
    let boot_url = format!("http://{server_ip}:{boot_port}");
    let dhcp_config = work_dir.path().join("dhcp.yaml");
    std::fs::write(
        &dhcp_config,
        format!(
            "interfaces: [{{name: {host_if}, serverAddress: {server_ip}}}]\nleaseFile: {}\n\
             subnets:\n- {{network: 10.93.{net}.0, prefix: 24, rangeStart: 10.93.{net}.100, rangeEnd: 10.93.{net}.120, router: {server_ip}}}\n\
             boot: {{ipxeUrl: '{boot_url}/ipxe'}}\n",
            work_dir.path().join("leases.json").display()
        ),
    )
    .expect("DHCP config");
    let plugins = common::plugin_dir(work_dir.path(), &["redfish", "ignition"]);
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ferrometal"));
    command
        .arg("run")
        .arg("--plugin-dir")
        .arg(&plugins)
        .args(["--grant", "credentials/reveal"])
        .arg("--dhcp-config")
        .arg(&dhcp_config)
        .args(["--metrics-bind-address", "127.0.0.1:0"])
        .args(["--boot-bind-address", &format!("{server_ip}:{boot_port}")])
        .args(["--boot-server-url", &boot_url])
        .args(["--boot-allowed-registries", registry.host()])
        .args(["--boot-insecure-registries", registry.host()])
        .args(["--discovery-image", &pushed.reference])
        .arg("--metalprobe-binary")
        .arg(&image.metalprobe)
        .args(["--boot-kernel-args", "console=ttyS0"])
        .args(["--server-resync-seconds", "2"])
        .env("KUBECONFIG", control_plane.kubeconfig_path())
        .env("FERROMETAL_LOG", "info,ferrometal=debug");
    let operator =
        testenv::Program::start("ferrometal-run", command).expect("start ferrometal run");

    vm::apply_bmc(&control_plane, "tap-bmc", bmc);
    let server = vm::first_available(&client, Duration::from_secs(150), || {
        format!(
            "operator log:\n{}\n{}",
            operator.log_tail(40),
            vm::console_tail(&machine, 200)
        )
    })
    .await;
    let status = server.status.as_ref().expect("status");
    let nic = status
        .network_interfaces
        .iter()
        .find(|nic| nic.name == "eth0")
        .expect("eth0");
    assert_eq!(nic.mac_address, machine.spec().macs[0]);
    assert_eq!(
        nic.ips,
        [format!("10.93.{net}.100")],
        "the first address of ferrometal's pool, not QEMU's 10.0.2.15"
    );
    let threads: i32 = status
        .processors
        .iter()
        .filter_map(|p| p.total_threads)
        .sum();
    assert_eq!(threads, 2);
    // The lease file is keyed by the MAC's hex digits.
    let leases: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(work_dir.path().join("leases.json")).expect("leases"),
    )
    .expect("lease file is JSON");
    let mac_digits = machine.spec().macs[0].replace(':', "");
    assert_eq!(
        leases[&mac_digits]["ip"],
        format!("10.93.{net}.100"),
        "ferrometal's DHCP server leased the VM its address: {leases}"
    );
    // Real iPXE names its SMBIOS UUID in DHCP option 97: the lease binds the machine's boot
    // requests to its address (source binding, on by default), and the boot above came
    // through that binding.
    let leased_uuid = leases[&mac_digits]["uuid"]
        .as_str()
        .and_then(ferrometal::boot::uuid::SystemUuid::parse)
        .unwrap_or_else(|| panic!("iPXE sent no UUID (option 97): {leases}"));
    let machine_uuid =
        ferrometal::boot::uuid::SystemUuid::parse(&machine.spec().uuid).expect("uuid");
    assert!(
        leased_uuid == machine_uuid || leased_uuid == machine_uuid.smbios_swapped(),
        "the lease names {leased_uuid}, the VM is {machine_uuid}"
    );
    drop(operator);
    drop(fleet);
}
