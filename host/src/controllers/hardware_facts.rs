//! The Server facts a BMC's view of a system gives (out-of-band discovery): the same
//! metal-operator status fields the in-band probe fills, plus `accelerators`.
//!
//! Units and shapes follow the registry's reading of a probe report
//! ([`crate::registry::status_from_report`]), so that one machine discovered either way has
//! the same `processors`, `totalSystemMemory` and `storages` where the BMC reports what the
//! probe sees: quantities in binary units when exact, a NIC's link as `up`/`down`.

use crate::api::ServerStatus;
use crate::api::server::{
    Accelerator, NetworkInterface, Processor, Storage, StorageDrive, StorageVolume,
};
use crate::plugins::hardware::{Inventory, PcieDevice};
use crate::plugins::types::System;
use crate::registry::quantity;

/// PCIe device classes that make a device an accelerator (Redfish `DeviceClass`).
const ACCELERATOR_CLASSES: [&str; 3] =
    ["DisplayController", "ProcessingAccelerators", "Coprocessor"];

/// PCI vendors whose display controller is the BMC's own VGA, never an accelerator:
/// ASPEED (`0x1a03`) and Matrox (`0x102b`).
const BMC_VGA_VENDORS: [&str; 2] = ["0x1a03", "0x102b"];

/// The Server facts a BMC's view of a system gives: NICs (with their link where the BMC
/// says), manufacturer, model and serial number, and, when the driver read the inventory,
/// BIOS version, SKU, CPUs, memory, storage and accelerators.
pub fn facts(system: &System) -> ServerStatus {
    let mut status = ServerStatus {
        manufacturer: system.manufacturer.clone(),
        model: system.model.clone(),
        serial_number: system.serial.clone(),
        network_interfaces: system
            .nics
            .iter()
            .enumerate()
            .map(|(index, nic)| NetworkInterface {
                name: nic.name.clone().unwrap_or_else(|| format!("nic{index}")),
                mac_address: nic.mac.to_ascii_lowercase(),
                carrier_status: nic
                    .link_up
                    .map(|up| String::from(if up { "up" } else { "down" })),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    if let Some(inventory) = &system.inventory {
        status.bios_version = inventory.bios_version.clone();
        status.sku = inventory.sku.clone();
        status.processors = cpus(inventory);
        status.total_system_memory = inventory.total_memory_bytes.map(quantity);
        status.storages = storages(inventory);
        status.accelerators = accelerators(inventory);
    }
    status
}

/// The `ProbeReported` and `Discovery` message of an out-of-band discovery: what the BMC
/// reported, and what it did not.
pub fn summary(facts: &ServerStatus) -> String {
    let drives: usize = facts.storages.iter().map(|s| s.drives.len()).sum();
    let mut message = format!(
        "out-of-band: the BMC reported {} NIC(s), {} CPU(s), {} memory, {drives} drive(s), {} accelerator(s)",
        facts.network_interfaces.len(),
        facts.processors.len(),
        facts
            .total_system_memory
            .as_ref()
            .map_or("no", |memory| memory.0.as_str()),
        facts.accelerators.len(),
    );
    if facts.processors.is_empty() || facts.total_system_memory.is_none() {
        message.push_str("; CPUs or memory the BMC does not report need an in-band discovery");
    }
    message
}

/// Whether a Redfish `ProcessorType` is a CPU (a missing type is taken for one).
fn is_cpu(processor_type: Option<&str>) -> bool {
    matches!(processor_type, None | Some("CPU"))
}

fn int(value: Option<u32>) -> Option<i32> {
    value.and_then(|v| i32::try_from(v).ok())
}

fn cpus(inventory: &Inventory) -> Vec<Processor> {
    inventory
        .processors
        .iter()
        .filter(|p| is_cpu(p.processor_type.as_deref()))
        .map(|p| Processor {
            id: p.id.clone(),
            type_: Some(
                p.processor_type
                    .clone()
                    .unwrap_or_else(|| String::from("CPU")),
            ),
            architecture: p.architecture.clone(),
            instruction_set: p.instruction_set.clone(),
            manufacturer: p.manufacturer.clone(),
            model: p.model.clone(),
            max_speed_mhz: int(p.max_speed_mhz),
            total_cores: int(p.total_cores),
            total_threads: int(p.total_threads),
        })
        .collect()
}

fn storages(inventory: &Inventory) -> Vec<Storage> {
    inventory
        .storage
        .iter()
        .map(|s| Storage {
            name: s.name.clone(),
            state: s.state.clone(),
            volumes: s
                .volumes
                .iter()
                .map(|v| StorageVolume {
                    name: v.name.clone(),
                    capacity: v.capacity_bytes.map(quantity),
                    state: v.state.clone(),
                    raid_type: v.raid_type.clone(),
                    volume_usage: v.volume_usage.clone(),
                })
                .collect(),
            drives: s
                .drives
                .iter()
                .map(|d| StorageDrive {
                    name: d.name.clone(),
                    media_type: d.media_type.clone(),
                    type_: d.protocol.clone(),
                    capacity: d.capacity_bytes.map(quantity),
                    vendor: d.manufacturer.clone(),
                    model: d.model.clone(),
                    state: d.state.clone(),
                })
                .collect(),
        })
        .collect()
}

/// Whether a PCIe device is an accelerator: of an accelerator class, and not the BMC's VGA.
fn is_accelerator(device: &PcieDevice) -> bool {
    let class = device.device_class.as_deref().unwrap_or_default();
    let vendor = device
        .vendor_id
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    ACCELERATOR_CLASSES.contains(&class)
        && !(class == "DisplayController" && BMC_VGA_VENDORS.contains(&vendor.as_str()))
}

/// Processors that are not CPUs (GPUs, FPGAs, ...), then PCIe devices of an accelerator
/// class that no such processor already stands for.
fn accelerators(inventory: &Inventory) -> Vec<Accelerator> {
    let processors = inventory
        .processors
        .iter()
        .filter(|p| !is_cpu(p.processor_type.as_deref()));
    let linked: Vec<&str> = processors
        .clone()
        .filter_map(|p| p.pcie_device.as_deref())
        .collect();
    let device =
        |id: Option<&str>| id.and_then(|id| inventory.pcie_devices.iter().find(|d| d.id == id));
    let mut found: Vec<Accelerator> = processors
        .map(|p| {
            let pcie = device(p.pcie_device.as_deref());
            Accelerator {
                name: p.id.clone(),
                class: p.processor_type.clone(),
                vendor: p.manufacturer.clone(),
                model: p.model.clone(),
                vendor_id: pcie.and_then(|d| d.vendor_id.clone()),
                device_id: pcie.and_then(|d| d.device_id.clone()),
            }
        })
        .collect();
    found.extend(
        inventory
            .pcie_devices
            .iter()
            .filter(|d| is_accelerator(d) && !linked.contains(&d.id.as_str()))
            .map(|d| Accelerator {
                name: d
                    .name
                    .clone()
                    .unwrap_or_else(|| d.id.rsplit('/').next().unwrap_or_default().to_owned()),
                class: d.device_class.clone(),
                vendor: d.manufacturer.clone(),
                model: d.model.clone(),
                vendor_id: d.vendor_id.clone(),
                device_id: d.device_id.clone(),
            }),
    );
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::hardware::{Drive, Processor as DriverProcessor, Storage as DriverStorage};
    use crate::plugins::types::{Nic, NicKind, PowerState};

    fn system(inventory: Option<Inventory>) -> System {
        System {
            uri: String::from("/redfish/v1/Systems/1"),
            uuid: None,
            manufacturer: Some(String::from("Contoso")),
            model: None,
            serial: Some(String::from("S1")),
            power: PowerState::Off,
            nics: vec![
                Nic {
                    mac: String::from("AA:BB:CC:00:00:01"),
                    name: Some(String::from("eno1")),
                    kind: NicKind::System,
                    link_up: Some(true),
                },
                Nic {
                    mac: String::from("aa:bb:cc:00:00:02"),
                    name: None,
                    kind: NicKind::System,
                    link_up: None,
                },
            ],
            boot_targets: Vec::new(),
            boot_override: true,
            inventory,
        }
    }

    fn gpu(id: &str, pcie: Option<&str>) -> DriverProcessor {
        DriverProcessor {
            id: id.to_owned(),
            processor_type: Some(String::from("GPU")),
            manufacturer: Some(String::from("NVIDIA")),
            model: Some(String::from("H100")),
            pcie_device: pcie.map(str::to_owned),
            ..DriverProcessor::default()
        }
    }

    fn pcie(id: &str, class: &str, vendor: &str) -> PcieDevice {
        PcieDevice {
            id: id.to_owned(),
            name: Some(id.to_owned()),
            device_class: Some(class.to_owned()),
            vendor_id: Some(vendor.to_owned()),
            device_id: Some(String::from("0x2330")),
            ..PcieDevice::default()
        }
    }

    #[test]
    fn without_an_inventory_only_nics_and_identity_are_facts() {
        let status = facts(&system(None));
        assert!(summary(&status).contains("2 NIC(s), 0 CPU(s), no memory"));
        assert!(summary(&status).contains("need an in-band discovery"));
        assert_eq!(
            status.network_interfaces[0].mac_address,
            "aa:bb:cc:00:00:01"
        );
        assert_eq!(
            status.network_interfaces[0].carrier_status.as_deref(),
            Some("up")
        );
        assert_eq!(status.network_interfaces[1].name, "nic1");
        assert_eq!(status.network_interfaces[1].carrier_status, None);
        assert!(status.processors.is_empty() && status.total_system_memory.is_none());
    }

    #[test]
    fn cpus_memory_and_storage_become_metal_operator_fields_and_accelerators_our_own() {
        let inventory = Inventory {
            bios_version: Some(String::from("1.0")),
            processors: vec![
                DriverProcessor {
                    id: String::from("CPU1"),
                    processor_type: Some(String::from("CPU")),
                    total_cores: Some(16),
                    total_threads: Some(32),
                    ..DriverProcessor::default()
                },
                DriverProcessor {
                    id: String::from("0"),
                    ..DriverProcessor::default()
                },
                gpu("GPU1", Some("/pcie/gpu1")),
                gpu("GPU2", None),
            ],
            total_memory_bytes: Some(96 << 30),
            storage: vec![DriverStorage {
                name: String::from("RAID"),
                drives: vec![Drive {
                    name: String::from("sda"),
                    media_type: Some(String::from("SSD")),
                    protocol: Some(String::from("SATA")),
                    capacity_bytes: Some(480_000_000_000),
                    ..Drive::default()
                }],
                ..DriverStorage::default()
            }],
            pcie_devices: vec![
                pcie("/pcie/gpu1", "DisplayController", "0x10de"),
                pcie("/pcie/vga", "DisplayController", "0x1A03"),
                pcie("/pcie/npu", "ProcessingAccelerators", "0x1e52"),
                pcie("/pcie/nic", "NetworkController", "0x15b3"),
            ],
            ..Inventory::default()
        };
        let status = facts(&system(Some(inventory)));
        assert_eq!(status.bios_version.as_deref(), Some("1.0"));
        let cpus: Vec<(&str, Option<&str>)> = status
            .processors
            .iter()
            .map(|p| (p.id.as_str(), p.type_.as_deref()))
            .collect();
        assert_eq!(cpus, [("CPU1", Some("CPU")), ("0", Some("CPU"))]);
        assert_eq!(status.processors[0].total_threads, Some(32));
        assert_eq!(status.total_system_memory, Some(quantity(96 << 30)));
        assert_eq!(status.storages[0].drives[0].type_.as_deref(), Some("SATA"));
        assert_eq!(
            status.storages[0].drives[0].capacity,
            Some(quantity(480_000_000_000))
        );
        let accelerators: Vec<(&str, Option<&str>, Option<&str>)> = status
            .accelerators
            .iter()
            .map(|a| (a.name.as_str(), a.class.as_deref(), a.vendor_id.as_deref()))
            .collect();
        assert_eq!(
            accelerators,
            [
                ("GPU1", Some("GPU"), Some("0x10de")),
                ("GPU2", Some("GPU"), None),
                ("/pcie/npu", Some("ProcessingAccelerators"), Some("0x1e52")),
            ],
            "a GPU is counted once, the BMC's VGA and the NIC not at all"
        );
    }
}
