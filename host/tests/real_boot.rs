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

const GIB: u64 = 1 << 30;

/// Bytes of a Kubernetes quantity as the registry writes them (`512Mi`, `3Gi`, `1234`).
fn bytes(quantity: &str) -> u64 {
    let units = [
        ("Ki", 1u64 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
    ];
    for (suffix, factor) in units {
        if let Some(number) = quantity.strip_suffix(suffix) {
            return number.parse::<u64>().expect("quantity number") * factor;
        }
    }
    quantity.parse().expect("plain quantity")
}

fn state(server: &Server) -> String {
    server
        .status
        .as_ref()
        .and_then(|s| s.state.as_ref())
        .map(|s| format!("{s:?}"))
        .unwrap_or_default()
}

#[tokio::test]
async fn real_vms_boot_the_discovery_image_and_report_what_they_are() {
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
                    "ferrometal.dev/discovery-timeout-seconds": "45"}}})),
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

    let consoles = |lab: &Lab| {
        machines
            .iter()
            .map(|m| {
                let path = ferrometal_sim::vm::VmOptions::debian(
                    shapes.clone(),
                    lab.work_dir().join("vms"),
                )
                .console(m.spec().index);
                format!(
                    "--- {} ---\n{}",
                    path.display(),
                    std::fs::read_to_string(&path).unwrap_or_default()
                )
            })
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
                .any(|s| s.name_any() == name(slot) && state(s) == wanted)
        };
        if settled(0, "Available") && settled(1, "Available") && settled(2, "Error") {
            break list;
        }
        if Instant::now() > deadline {
            panic!(
                "the VMs did not settle:\n{}\noperator log:\n{}\nconsoles:\n{}",
                common::server_summary(&list),
                lab.operator_log_tail(40),
                consoles(&lab)
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
        let threads: i32 = status
            .processors
            .iter()
            .filter_map(|p| p.total_threads)
            .sum();
        assert_eq!(threads, shape.cpus as i32, "{:?}", status.processors);
        let memory = bytes(&status.total_system_memory.as_ref().expect("memory").0);
        let configured = shape.memory_mib << 20;
        assert!(
            memory < configured && memory > configured * 7 / 10,
            "MemTotal as the guest saw it ({memory}) is a little under the {configured} QEMU gave it"
        );
        let disk = status.storages[0]
            .drives
            .iter()
            .find(|d| d.name == "vda")
            .expect("the virtio disk");
        assert_eq!(
            bytes(&disk.capacity.as_ref().expect("capacity").0),
            shape.disk_bytes
        );
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
    let console = consoles(&lab);
    assert!(
        console.contains("corrupted the token"),
        "the guest ran the corrupted-token fault:\n{console}"
    );
    assert!(
        console.contains("403"),
        "metalprobe's report was refused:\n{console}"
    );
    // The consoles and sparse disks are kept only when the test fails.
    let work_dir = lab.work_dir().to_owned();
    drop(lab);
    let _ = std::fs::remove_dir_all(work_dir);
}
