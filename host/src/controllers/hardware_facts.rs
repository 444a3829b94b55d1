//! The Server facts a BMC's view of a system gives (out-of-band discovery): the same
//! metal-operator status fields the in-band probe fills, plus `accelerators`.
//!
//! Units and shapes follow the registry's reading of a probe report
//! ([`crate::registry::status_from_report`]), so that one machine discovered either way has
//! the same `processors`, `totalSystemMemory` and `storages` where the BMC reports what the
//! probe sees: quantities in binary units when exact, a NIC's link as `up`/`down`.
//!
//! Which PCI functions are accelerators is decided here for both discoveries
//! ([`pci_accelerator`]): the registry classifies a report's PCI devices with the same rules
//! and writes the same field values.

use crate::api::ServerStatus;
use crate::api::server::{
    Accelerator, NetworkInterface, Processor, Storage, StorageDrive, StorageVolume,
};
use crate::plugins::hardware::Inventory;
use crate::plugins::types::System;
use crate::registry::quantity;

/// PCIe device classes that make a device an accelerator (Redfish `DeviceClass`).
const ACCELERATOR_CLASSES: [&str; 3] =
    ["DisplayController", "ProcessingAccelerators", "Coprocessor"];

/// PCI vendors whose display controller is the BMC's own VGA, never an accelerator:
/// ASPEED (`0x1a03`) and Matrox (`0x102b`), in [`pci_id`]'s form.
const BMC_VGA_VENDORS: [&str; 2] = ["0x1a03", "0x102b"];

/// Redfish `DeviceClass` names of the PCI base classes `0x00` to `0x13`, in order (PCI Code
/// and ID Assignment Specification; Redfish `PCIeFunction.DeviceClass`).
const DEVICE_CLASSES: [&str; 20] = [
    "UnclassifiedDevice",
    "MassStorageController",
    "NetworkController",
    "DisplayController",
    "MultimediaController",
    "MemoryController",
    "Bridge",
    "CommunicationController",
    "GenericSystemPeripheral",
    "InputDeviceController",
    "DockingStation",
    "Processor",
    "SerialBusController",
    "WirelessController",
    "IntelligentController",
    "SatelliteCommunicationsController",
    "EncryptionController",
    "SignalProcessingController",
    "ProcessingAccelerators",
    "NonEssentialInstrumentation",
];

/// The Redfish `DeviceClass` of a PCI class code as sysfs writes it (`0x030200`: class,
/// subclass, programming interface; `0x` optional): named by the base class, as a BMC names
/// it (`0x03…` `DisplayController`, `0x12…` `ProcessingAccelerators`, `0x40…`
/// `Coprocessor`). `None` when the code is not six hex digits.
pub fn device_class(class_code: &str) -> Option<&'static str> {
    let code = class_code.trim();
    let digits = code
        .strip_prefix("0x")
        .or_else(|| code.strip_prefix("0X"))
        .unwrap_or(code);
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let code = u32::from_str_radix(digits, 16).ok()?;
    Some(match code >> 16 {
        base @ 0x00..=0x13 => DEVICE_CLASSES[base as usize],
        0x40 => "Coprocessor",
        0xff => "UnassignedClass",
        _ => "Other",
    })
}

/// Whether PCI vendor id `id` (any form [`pci_id`] reads) makes a display controller the
/// BMC's own VGA ([`BMC_VGA_VENDORS`]), never an accelerator.
pub fn bmc_vga_vendor(id: &str) -> bool {
    pci_id(id).is_some_and(|id| BMC_VGA_VENDORS.contains(&id.as_str()))
}

/// A PCI vendor or device id in one form for both discoveries: `0x` and four lowercase hex
/// digits (`0x10de`), whether the source wrote `0x10DE` (a BMC) or `10de` (a probe report).
/// Text that is no such id is kept as written; empty text is no id.
pub fn pci_id(text: &str) -> Option<String> {
    let text = text.trim();
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    match u16::from_str_radix(digits, 16) {
        Ok(id) if digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(format!("{id:#06x}"))
        }
        _ => (!text.is_empty()).then(|| text.to_owned()),
    }
}

/// A PCI function as a source describes it: a PCIe device the BMC lists (out-of-band) or a
/// PCI device in metalprobe's report (in-band).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PciFunction<'a> {
    /// The name the source gives it: the BMC's device name, or the PCI address in a report.
    pub name: &'a str,
    /// Redfish `DeviceClass` (a report's class code through [`device_class`]).
    pub device_class: Option<&'a str>,
    /// Vendor name.
    pub vendor: Option<&'a str>,
    /// Model (product) name.
    pub model: Option<&'a str>,
    /// PCI vendor id, in any form [`pci_id`] reads.
    pub vendor_id: Option<&'a str>,
    /// PCI device id, likewise.
    pub device_id: Option<&'a str>,
}

fn text(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The accelerator a PCI function is, if it is one: of an accelerator class
/// (`DisplayController`, `ProcessingAccelerators`, `Coprocessor`) and not a BMC's VGA. Both
/// discoveries take their accelerators' PCI devices through here, so one device gives the
/// same `status.accelerators` entry either way: ids as [`pci_id`] writes them, a blank vendor
/// or model left out.
pub fn pci_accelerator(function: &PciFunction<'_>) -> Option<Accelerator> {
    let class = function.device_class.map(str::trim)?;
    let vendor_id = function.vendor_id.and_then(pci_id);
    let bmc_vga = class == "DisplayController" && vendor_id.as_deref().is_some_and(bmc_vga_vendor);
    (ACCELERATOR_CLASSES.contains(&class) && !bmc_vga).then(|| Accelerator {
        name: function.name.trim().to_owned(),
        class: Some(class.to_owned()),
        vendor: text(function.vendor),
        model: text(function.model),
        vendor_id,
        device_id: function.device_id.and_then(pci_id),
    })
}

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

/// Processors that are not CPUs (GPUs, FPGAs, ...), then PCIe devices that are accelerators
/// ([`pci_accelerator`]) and that no such processor already stands for.
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
                vendor_id: pcie.and_then(|d| d.vendor_id.as_deref().and_then(pci_id)),
                device_id: pcie.and_then(|d| d.device_id.as_deref().and_then(pci_id)),
            }
        })
        .collect();
    found.extend(
        inventory
            .pcie_devices
            .iter()
            .filter(|d| !linked.contains(&d.id.as_str()))
            .filter_map(|d| {
                pci_accelerator(&PciFunction {
                    name: d
                        .name
                        .as_deref()
                        .unwrap_or_else(|| d.id.rsplit('/').next().unwrap_or_default()),
                    device_class: d.device_class.as_deref(),
                    vendor: d.manufacturer.as_deref(),
                    model: d.model.as_deref(),
                    vendor_id: d.vendor_id.as_deref(),
                    device_id: d.device_id.as_deref(),
                })
            }),
    );
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::hardware::{
        Drive, PcieDevice, Processor as DriverProcessor, Storage as DriverStorage,
    };
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

    #[rstest::rstest]
    #[case::gpu_3d_controller("0x030200", Some("DisplayController"))]
    #[case::vga_without_prefix("030000", Some("DisplayController"))]
    #[case::processing_accelerator("0x120000", Some("ProcessingAccelerators"))]
    #[case::coprocessor("0x400000", Some("Coprocessor"))]
    #[case::processor_subclass_coprocessor("0x0b4000", Some("Processor"))]
    #[case::network("0x020000", Some("NetworkController"))]
    #[case::unassigned("0xff0000", Some("UnassignedClass"))]
    #[case::reserved("0x200000", Some("Other"))]
    #[case::too_short("0x0302", None)]
    #[case::not_hex("0xgpu000", None)]
    #[case::signed("+30200", None)]
    #[case::empty("", None)]
    fn pci_class_codes_are_named_by_their_base_class_as_redfish_does(
        #[case] code: &str,
        #[case] class: Option<&str>,
    ) {
        assert_eq!(device_class(code), class);
    }

    #[rstest::rstest]
    #[case::redfish("0x10de", Some("0x10de"))]
    #[case::redfish_upper_case("0X10DE", Some("0x10de"))]
    #[case::probe_report("10de", Some("0x10de"))]
    #[case::padded(" 1a03\n", Some("0x1a03"))]
    #[case::not_an_id("N/A", Some("N/A"))]
    #[case::signed("+10d", Some("+10d"))]
    #[case::empty(" ", None)]
    fn pci_ids_take_one_form_from_either_source(#[case] text: &str, #[case] id: Option<&str>) {
        assert_eq!(pci_id(text).as_deref(), id);
    }

    #[test]
    fn a_pci_function_is_an_accelerator_by_class_unless_it_is_a_bmc_vga() {
        let function = |class: &'static str, vendor_id: &'static str| PciFunction {
            name: "0000:41:00.0",
            device_class: Some(class),
            vendor: Some("NVIDIA Corporation"),
            model: Some(" "),
            vendor_id: Some(vendor_id),
            device_id: Some("2330"),
        };
        assert_eq!(
            pci_accelerator(&function("DisplayController", "10DE")),
            Some(Accelerator {
                name: String::from("0000:41:00.0"),
                class: Some(String::from("DisplayController")),
                vendor: Some(String::from("NVIDIA Corporation")),
                model: None,
                vendor_id: Some(String::from("0x10de")),
                device_id: Some(String::from("0x2330")),
            })
        );
        assert!(pci_accelerator(&function("ProcessingAccelerators", "0x1da3")).is_some());
        assert!(pci_accelerator(&function("Coprocessor", "0x8086")).is_some());
        assert_eq!(
            pci_accelerator(&function("DisplayController", "1a03")),
            None
        );
        assert_eq!(
            pci_accelerator(&function("DisplayController", "0x102B")),
            None
        );
        assert!(
            pci_accelerator(&function("ProcessingAccelerators", "0x1a03")).is_some(),
            "only a BMC vendor's display controller is its VGA"
        );
        assert_eq!(
            pci_accelerator(&function("NetworkController", "0x15b3")),
            None
        );
        assert_eq!(
            pci_accelerator(&PciFunction {
                device_class: None,
                ..function("", "0x10de")
            }),
            None,
            "no class, no accelerator"
        );
    }
}
