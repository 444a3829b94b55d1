//! The hardware inventory a simulated BMC reports for its machine (Redfish `Processors`,
//! `Memory`, `Storage`, `PCIeDevices`, `BiosVersion`), consistent with what the machine's
//! metalprobe reports in-band (see `testenv::FakeMachine`, which writes the tree metalprobe
//! reads): one CPU per package with vendor `GenuineIntel`, model `Fake CPU @ 2.00GHz` and one
//! thread per core, the memory size, the disks with their kernel names, vendor and model,
//! and BIOS version `1.0`. So the same fleet discovered in-band and out-of-band has the same
//! metal-operator status fields. Fields the probe cannot see (CPU architecture, drive
//! protocol, states) are left out for the same reason. The PCIe devices ([`pcie_devices`]: a
//! NIC, a SATA controller and the GPUs of [`crate::Oddity::Gpu`]) are also written to the
//! machine's sysfs, so both discoveries find the same accelerators.

use serde_json::{Map, Value, json};

use crate::spec::MachineSpec;

/// BIOS version every simulated machine reports, in-band (`testenv::FakeMachine`) and here.
pub const BIOS_VERSION: &str = "1.0";
/// CPU vendor, as `/proc/cpuinfo`'s `vendor_id` in the machine's tree says.
pub const CPU_VENDOR: &str = "GenuineIntel";
/// CPU model, as `/proc/cpuinfo`'s `model name` in the machine's tree says.
pub const CPU_MODEL: &str = "Fake CPU @ 2.00GHz";
/// Disk vendor and model, as sysfs says in the machine's tree.
pub const DISK_VENDOR: &str = "ferrometal";
/// Disk model.
pub const DISK_MODEL: &str = "FAKE DISK";
/// The storage subsystem's name: the in-band probe groups every block device under one
/// `metalprobe` entry, and the simulated BMC names its only subsystem the same way.
pub const STORAGE_NAME: &str = "metalprobe";

/// The top-level resources of a system this module answers for.
pub const SECTIONS: [&str; 4] = ["Processors", "Memory", "Storage", "PCIeDevices"];

fn link(path: &str) -> Value {
    json!({ "@odata.id": path })
}

fn collection(path: &str, members: impl Iterator<Item = String>) -> Value {
    let members: Vec<Value> = members.map(|member| link(&member)).collect();
    json!({
        "@odata.id": path,
        "Members@odata.count": members.len(),
        "Members": members,
    })
}

/// Memory modules: two per CPU package sharing the memory evenly, plus one empty slot.
fn modules(spec: &MachineSpec) -> (u64, u64) {
    let count = u64::from(spec.cpus.0.max(1)) * 2;
    if spec.memory_mib.is_multiple_of(count) {
        (count, spec.memory_mib / count)
    } else {
        (1, spec.memory_mib)
    }
}

/// One PCIe device of a simulated machine, as its BMC lists it and its sysfs holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcieDevice {
    /// Redfish `Id`.
    pub id: String,
    /// Redfish `Name`.
    pub name: String,
    /// Vendor name, as Redfish `Manufacturer` and as metalprobe names the vendor.
    pub manufacturer: &'static str,
    /// PCI address of the device's function, its directory in `/sys/bus/pci/devices`.
    pub address: String,
    /// PCI class code, as sysfs writes it (`0x030200`).
    pub class_code: &'static str,
    /// Redfish `DeviceClass` of that class code.
    pub device_class: &'static str,
    /// PCI vendor id (`0x10de`).
    pub vendor_id: &'static str,
    /// PCI device id.
    pub device_id: &'static str,
    /// Subsystem vendor id.
    pub subsystem_vendor_id: &'static str,
    /// Subsystem device id.
    pub subsystem_id: &'static str,
    /// NUMA node the device hangs off.
    pub numa_node: i32,
}

/// The PCIe devices of a machine: an Intel NIC and SATA controller, then one NVIDIA H100
/// (`10de:2330`, a 3D controller) per [`crate::Oddity::Gpu`], spread over the CPU packages.
/// A GPU's Redfish `Name` is its PCI address, the name the machine's sysfs gives it (the
/// in-band probe has no product names), and it has no `Model`: so the accelerator both
/// discoveries report is the same. Real BMCs name devices their own way.
pub fn pcie_devices(spec: &MachineSpec) -> Vec<PcieDevice> {
    let mut devices = vec![
        PcieDevice {
            id: String::from("NIC"),
            name: String::from("Simulated NIC"),
            manufacturer: "Intel Corporation",
            address: String::from("0000:18:00.0"),
            class_code: "0x020000",
            device_class: "NetworkController",
            vendor_id: "0x8086",
            device_id: "0x1572",
            subsystem_vendor_id: "0x8086",
            subsystem_id: "0x0006",
            numa_node: 0,
        },
        PcieDevice {
            id: String::from("SATA"),
            name: String::from("Simulated SATA controller"),
            manufacturer: "Intel Corporation",
            address: String::from("0000:00:17.0"),
            class_code: "0x010601",
            device_class: "MassStorageController",
            vendor_id: "0x8086",
            device_id: "0xa182",
            subsystem_vendor_id: "0x8086",
            subsystem_id: "0x7270",
            numa_node: 0,
        },
    ];
    let packages = spec.cpus.0.max(1) as usize;
    devices.extend((0..spec.gpus).map(|n| {
        let address = format!("0000:{:02x}:00.0", 0x41 + n);
        PcieDevice {
            id: format!("GPU{n}"),
            name: address.clone(),
            manufacturer: "NVIDIA Corporation",
            address,
            class_code: "0x030200",
            device_class: "DisplayController",
            vendor_id: "0x10de",
            device_id: "0x2330",
            subsystem_vendor_id: "0x10de",
            subsystem_id: "0x16c1",
            numa_node: i32::try_from(n % packages).unwrap_or(0),
        }
    }));
    devices
}

/// Adds the inventory's links and `BiosVersion` to the document of system `spec` at `base`.
pub fn add_links(document: &mut Value, base: &str, spec: &MachineSpec) {
    let Some(system) = document.as_object_mut() else {
        return;
    };
    let extra: Map<String, Value> = [
        ("BiosVersion", json!(BIOS_VERSION)),
        ("Processors", link(&format!("{base}/Processors"))),
        ("Memory", link(&format!("{base}/Memory"))),
        ("Storage", link(&format!("{base}/Storage"))),
        (
            "PCIeDevices",
            Value::Array(
                pcie_devices(spec)
                    .iter()
                    .map(|device| link(&format!("{base}/PCIeDevices/{}", device.id)))
                    .collect(),
            ),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    system.extend(extra);
}

/// The document at `base` + `rest` (a GET), or `None` when there is none.
pub fn get(base: &str, spec: &MachineSpec, rest: &[&str]) -> Option<Value> {
    let path = format!("{base}/{}", rest.join("/"));
    let (packages, cores) = spec.cpus;
    match rest {
        ["Processors"] => Some(collection(
            &path,
            (0..packages).map(|n| format!("{path}/{n}")),
        )),
        ["Processors", n] => {
            let n: u32 = n.parse().ok().filter(|n| *n < packages)?;
            Some(json!({
                "@odata.id": path,
                "Id": n.to_string(),
                "Name": format!("Processor {n}"),
                "ProcessorType": "CPU",
                "Manufacturer": CPU_VENDOR,
                "Model": CPU_MODEL,
                "TotalCores": cores,
                "TotalThreads": cores,
            }))
        }
        ["Memory"] => {
            let (count, _) = modules(spec);
            Some(collection(
                &path,
                (0..=count).map(|n| format!("{path}/DIMM{n}")),
            ))
        }
        ["Memory", dimm] => {
            let n: u64 = dimm.strip_prefix("DIMM")?.parse().ok()?;
            let (count, size) = modules(spec);
            let (capacity, state) = match n {
                n if n < count => (size, "Enabled"),
                n if n == count => (0, "Absent"),
                _ => return None,
            };
            Some(json!({
                "@odata.id": path,
                "Id": format!("DIMM{n}"),
                "CapacityMiB": capacity,
                "MemoryDeviceType": "DDR5",
                "Status": {"State": state},
            }))
        }
        ["Storage"] => Some(collection(&path, std::iter::once(format!("{path}/1")))),
        ["Storage", "1"] => Some(json!({
            "@odata.id": path,
            "Id": "1",
            "Name": STORAGE_NAME,
            "Drives": spec
                .disks
                .iter()
                // Disks only the OS sees ([`crate::Oddity::OsOnlyDisk`]) are not listed.
                .filter(|(name, ..)| !spec.bmc_unlisted_disks.contains(name))
                .map(|(name, ..)| link(&format!("{path}/Drives/{name}")))
                .collect::<Vec<_>>(),
        })),
        ["Storage", "1", "Drives", name] => {
            if spec
                .bmc_unlisted_disks
                .iter()
                .any(|unlisted| unlisted == name)
            {
                return None;
            }
            let (name, bytes, rotational) = spec.disks.iter().find(|(n, ..)| n == name)?;
            Some(json!({
                "@odata.id": path,
                "Id": name,
                "Name": name,
                "MediaType": if *rotational { "HDD" } else { "SSD" },
                "CapacityBytes": bytes,
                "Manufacturer": DISK_VENDOR,
                "Model": DISK_MODEL,
            }))
        }
        ["PCIeDevices", id] => {
            let device = pcie_devices(spec).into_iter().find(|d| d.id == *id)?;
            Some(json!({
                "@odata.id": path,
                "Id": device.id,
                "Name": device.name,
                "Manufacturer": device.manufacturer,
                "Links": {"PCIeFunctions": [link(&format!("{path}/PCIeFunctions/0"))]},
            }))
        }
        ["PCIeDevices", id, "PCIeFunctions", "0"] => {
            let device = pcie_devices(spec).into_iter().find(|d| d.id == *id)?;
            Some(json!({
                "@odata.id": path,
                "Id": "0",
                "DeviceClass": device.device_class,
                "ClassCode": device.class_code,
                "VendorId": device.vendor_id,
                "DeviceId": device.device_id,
                "SubsystemVendorId": device.subsystem_vendor_id,
                "SubsystemId": device.subsystem_id,
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::FleetSpec;

    #[test]
    fn the_memory_modules_add_up_to_the_machine_s_memory_with_one_empty_slot() {
        let fleet = FleetSpec {
            bmcs: 8,
            ..FleetSpec::default()
        };
        for bmc in fleet.generate() {
            let spec = &bmc.systems[0];
            let base = "/redfish/v1/Systems/1";
            let members = get(base, spec, &["Memory"]).expect("collection")["Members"]
                .as_array()
                .expect("members")
                .len();
            let mut total = 0;
            let mut absent = 0;
            for n in 0..members {
                let dimm = get(base, spec, &["Memory", &format!("DIMM{n}")]).expect("dimm");
                total += dimm["CapacityMiB"].as_u64().expect("capacity");
                absent += usize::from(dimm["Status"]["State"] == "Absent");
            }
            assert_eq!(total, spec.memory_mib);
            assert_eq!(absent, 1);
            let drives = get(base, spec, &["Storage", "1"]).expect("storage")["Drives"]
                .as_array()
                .expect("drives")
                .len();
            assert_eq!(drives, spec.disks.len());
            assert!(get(base, spec, &["Processors", &spec.cpus.0.to_string()]).is_none());
        }
    }

    #[test]
    fn a_disk_only_the_os_sees_is_neither_listed_nor_served() {
        let spec = FleetSpec {
            oddities: vec![(0, crate::Oddity::OsOnlyDisk)],
            ..FleetSpec::default()
        }
        .machine(0);
        let base = "/redfish/v1/Systems/1";
        let hidden = spec.bmc_unlisted_disks[0].clone();
        let drives = get(base, &spec, &["Storage", "1"]).expect("storage")["Drives"]
            .as_array()
            .expect("drives")
            .len();
        assert_eq!(drives, spec.disks.len() - 1);
        assert!(get(base, &spec, &["Storage", "1", "Drives", &hidden]).is_none());
        assert!(get(base, &spec, &["Storage", "1", "Drives", &spec.disks[0].0]).is_some());
    }

    #[test]
    fn a_gpu_machine_s_bmc_lists_each_gpu_as_a_display_controller_named_by_its_address() {
        let spec = FleetSpec {
            oddities: vec![(0, crate::Oddity::Gpu), (0, crate::Oddity::Gpu)],
            ..FleetSpec::default()
        }
        .machine(0);
        let base = "/redfish/v1/Systems/1";
        let mut system = json!({});
        add_links(&mut system, base, &spec);
        let links: Vec<&str> = system["PCIeDevices"]
            .as_array()
            .expect("links")
            .iter()
            .filter_map(|l| l["@odata.id"].as_str())
            .collect();
        assert_eq!(
            links,
            [
                "/redfish/v1/Systems/1/PCIeDevices/NIC",
                "/redfish/v1/Systems/1/PCIeDevices/SATA",
                "/redfish/v1/Systems/1/PCIeDevices/GPU0",
                "/redfish/v1/Systems/1/PCIeDevices/GPU1",
            ]
        );
        let gpu = get(base, &spec, &["PCIeDevices", "GPU1"]).expect("GPU1");
        assert_eq!(gpu["Name"], "0000:42:00.0");
        assert_eq!(gpu["Manufacturer"], "NVIDIA Corporation");
        assert!(gpu.get("Model").is_none());
        let function =
            get(base, &spec, &["PCIeDevices", "GPU1", "PCIeFunctions", "0"]).expect("function");
        assert_eq!(function["DeviceClass"], "DisplayController");
        assert_eq!(function["ClassCode"], "0x030200");
        assert_eq!(function["VendorId"], "0x10de");
        assert!(get(base, &spec, &["PCIeDevices", "GPU2"]).is_none());
        let plain = FleetSpec::default().machine(0);
        assert_eq!(pcie_devices(&plain).len(), 2, "no GPU without the oddity");
    }
}
