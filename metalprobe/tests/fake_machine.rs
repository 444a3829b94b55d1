//! The real metalprobe binary against a generated machine tree (`--dry-run` prints the
//! report it would send).

use std::process::Command;

use metalprobe::report::Registration;
use testenv::{FakeMachine, FakeNic, FakePciDevice};

fn machine() -> FakeMachine {
    FakeMachine {
        uuid: String::from("2F1A8E6C-0000-4000-8000-0000000000C1"),
        manufacturer: String::from("Contoso"),
        model: String::from("3500"),
        serial: String::from("SN-1"),
        nics: vec![
            FakeNic {
                name: String::from("eth0"),
                mac: String::from("52:54:00:AB:00:01"),
                ipv4: Some((String::from("10.20.0.5"), 24)),
                link_up: true,
            },
            FakeNic {
                name: String::from("eth1"),
                mac: String::from("52:54:00:ab:00:02"),
                ipv4: None,
                link_up: false,
            },
        ],
        cpus: (2, 4),
        memory_kib: 16 * 1024 * 1024,
        disks: vec![(String::from("sda"), 480 * 1000 * 1000 * 1000, false)],
        pci_devices: vec![FakePciDevice {
            address: String::from("0000:41:00.0"),
            vendor: String::from("0x10de"),
            device: String::from("0x2330"),
            class: String::from("0x030200"),
            subsystem_vendor: String::from("0x10de"),
            subsystem_device: String::from("0x16c1"),
            numa_node: 0,
        }],
    }
}

#[test]
fn the_report_describes_the_machine() {
    let root = tempfile::tempdir().expect("temp dir");
    machine().write(root.path()).expect("fake tree");
    let output = Command::new(env!("CARGO_BIN_EXE_metalprobe"))
        .args([
            "--registry-url",
            "http://127.0.0.1:9",
            "--dry-run",
            "--root",
        ])
        .arg(root.path())
        .output()
        .expect("metalprobe runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Registration = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report.system_uuid, "2f1a8e6c-0000-4000-8000-0000000000c1");
    let data = report.data;
    assert_eq!(data.system_info.system_information.manufacturer, "Contoso");
    assert_eq!(data.system_info.system_information.serial_number, "SN-1");
    let nics: Vec<(&str, &str, Vec<String>, &str)> = data
        .network_interfaces
        .iter()
        .map(|n| {
            (
                n.name.as_str(),
                n.mac_address.as_str(),
                n.ip_addresses.clone(),
                n.carrier_status.as_str(),
            )
        })
        .collect();
    assert_eq!(
        nics,
        [
            (
                "eth0",
                "52:54:00:ab:00:01",
                vec![String::from("10.20.0.5")],
                "up"
            ),
            ("eth1", "52:54:00:ab:00:02", vec![], "down"),
        ],
        "loopback is left out, MACs are lowercase"
    );
    assert_eq!(data.cpu.len(), 2);
    assert_eq!(data.cpu[0].total_cores, 4);
    assert_eq!(data.memory[0].size, 16 * 1024 * 1024 * 1024);
    assert_eq!(data.storage.len(), 1, "loop devices are left out");
    assert_eq!(data.storage[0].size_bytes, 480 * 1000 * 1000 * 1000);
    let gpu = &data.pci_devices[0];
    assert_eq!(
        (
            gpu.address.as_str(),
            gpu.vendor.as_str(),
            gpu.vendor_id.as_str(),
            gpu.product_id.as_str(),
            gpu.class.as_str()
        ),
        (
            "0000:41:00.0",
            "NVIDIA Corporation",
            "10de",
            "2330",
            "0x030200"
        )
    );
    assert!(!data.timestamp.is_empty());
}

#[test]
fn an_unreachable_registry_is_a_clear_failure_after_the_given_attempts() {
    let root = tempfile::tempdir().expect("temp dir");
    machine().write(root.path()).expect("fake tree");
    let port = testenv::net::free_port().expect("port");
    let output = Command::new(env!("CARGO_BIN_EXE_metalprobe"))
        .arg("--registry-url")
        .arg(format!("http://127.0.0.1:{port}"))
        .args(["--attempts", "2", "--root"])
        .arg(root.path())
        .output()
        .expect("metalprobe runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("could not take the report after 2 attempts"),
        "{stderr}"
    );
}
