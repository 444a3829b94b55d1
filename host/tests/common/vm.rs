//! Helpers of the real-VM tests (`real_boot.rs`, `uefi_http_boot.rs`): a simulated BMC in
//! front of the VMs applied as a BMC object, the wait for `Available`, consoles, quantities.
#![allow(dead_code)] // Only the VM tests use these.

use std::time::{Duration, Instant};

use ferrometal::api::Server;
use kube::Api;
use kube::api::ListParams;

/// The VM tests run one at a time: emulated VMs are CPU-bound, and a test that shares the
/// CPUs with another's VMs can miss its timeouts.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Bytes of a Kubernetes quantity as the registry writes them (`512Mi`, `3Gi`, `1234`).
pub fn bytes(quantity: &str) -> u64 {
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

/// The Server's state as text (`Available`, …; empty before it has one).
pub fn state(server: &Server) -> String {
    server
        .status
        .as_ref()
        .and_then(|s| s.state.as_ref())
        .map(|s| format!("{s:?}"))
        .unwrap_or_default()
}

/// The VM's console log, lossily decoded (OVMF writes terminal escapes).
pub fn console(machine: &ferrometal_sim::Machine) -> String {
    std::fs::read(machine.console().expect("a VM machine"))
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// The last `lines` lines of the VM's console, headed by its path.
pub fn console_tail(machine: &ferrometal_sim::Machine, lines: usize) -> String {
    let text = console(machine);
    let all: Vec<&str> = text.lines().collect();
    format!(
        "--- {} (last {lines} lines) ---\n{}",
        machine.console().expect("a VM machine").display(),
        all[all.len().saturating_sub(lines)..].join("\n")
    )
}

/// Applies BMC `name` (with its BMCSecret) for the simulated BMC in front of the VMs, over
/// plain HTTP with the simulator's credentials.
pub fn apply_bmc(control_plane: &testenv::ControlPlane, name: &str, bmc: &ferrometal_sim::Bmc) {
    let address = bmc.address().expect("BMC address");
    super::kubectl_apply(
        control_plane,
        &format!(
            "apiVersion: metal.ironcore.dev/v1alpha1\nkind: BMCSecret\nmetadata: {{name: {name}}}\n\
             stringData: {{username: admin, password: sim-password}}\n---\n\
             apiVersion: metal.ironcore.dev/v1alpha1\nkind: BMC\nmetadata: {{name: {name}}}\n\
             spec:\n  access: {{macAddress: '{}', ip: '{}'}}\n  bmcSecretRef: {{name: {name}}}\n\
             \x20 protocol: {{name: Redfish, port: {}, scheme: http}}\n",
            bmc.spec().mac,
            address.ip(),
            address.port()
        ),
    );
}

/// The first Server to become `Available` within `timeout`; on timeout, fails with the
/// Servers' summary and what `explain` adds (operator log, console).
pub async fn first_available(
    client: &kube::Client,
    timeout: Duration,
    explain: impl Fn() -> String,
) -> Server {
    let servers: Api<Server> = Api::all(client.clone());
    let deadline = Instant::now() + timeout;
    loop {
        let list = servers
            .list(&ListParams::default())
            .await
            .expect("list")
            .items;
        if let Some(server) = list.iter().find(|s| state(s) == "Available") {
            return server.clone();
        }
        if Instant::now() > deadline {
            panic!(
                "no Server became Available within {timeout:?}:\n{}\n{}",
                super::server_summary(&list),
                explain()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Checks the hardware facts the discovery system reported against what QEMU gave the VM:
/// CPU threads, memory a little under what it was given (the firmware and kernel keep
/// some), and the virtio disk's exact size.
pub fn assert_hardware(
    status: &ferrometal::api::ServerStatus,
    shape: &ferrometal_sim::vm::VmShape,
) {
    let threads: i32 = status
        .processors
        .iter()
        .filter_map(|p| p.total_threads)
        .sum();
    assert_eq!(threads, shape.cpus as i32, "{:?}", status.processors);
    let memory = bytes(&status.total_system_memory.as_ref().expect("memory").0);
    let configured = shape.memory_mib << 20;
    assert!(
        memory < configured && memory > configured * 6 / 10,
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
}
