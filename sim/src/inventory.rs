//! The hardware inventory a simulated BMC reports for its machine (Redfish `Processors`,
//! `Memory`, `Storage`, `PCIeDevices`, `BiosVersion`), consistent with what the machine's
//! metalprobe reports in-band (see `testenv::FakeMachine`, which writes the tree metalprobe
//! reads): one CPU per package with vendor `GenuineIntel`, model `Fake CPU @ 2.00GHz` and one
//! thread per core, the memory size, the disks with their kernel names, vendor and model,
//! and BIOS version `1.0`. So the same fleet discovered in-band and out-of-band has the same
//! metal-operator status fields. Fields the probe cannot see (CPU architecture, drive
//! protocol, states) are left out for the same reason.

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

/// PCIe devices: the NIC and the disk controller, as `(id, name, class, vendor, device)`.
const PCIE_DEVICES: [(&str, &str, &str, &str, &str); 2] = [
    (
        "NIC",
        "Simulated NIC",
        "NetworkController",
        "0x8086",
        "0x1572",
    ),
    (
        "SATA",
        "Simulated SATA controller",
        "MassStorageController",
        "0x8086",
        "0xa182",
    ),
];

/// Adds the inventory's links and `BiosVersion` to the system document at `base`.
pub fn add_links(document: &mut Value, base: &str) {
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
                PCIE_DEVICES
                    .iter()
                    .map(|(id, ..)| link(&format!("{base}/PCIeDevices/{id}")))
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
                .map(|(name, ..)| link(&format!("{path}/Drives/{name}")))
                .collect::<Vec<_>>(),
        })),
        ["Storage", "1", "Drives", name] => {
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
            let (id, name, ..) = PCIE_DEVICES.iter().find(|(d, ..)| d == id)?;
            Some(json!({
                "@odata.id": path,
                "Id": id,
                "Name": name,
                "Manufacturer": "Intel Corporation",
                "Links": {"PCIeFunctions": [link(&format!("{path}/PCIeFunctions/0"))]},
            }))
        }
        ["PCIeDevices", id, "PCIeFunctions", "0"] => {
            let (_, _, class, vendor, device) = PCIE_DEVICES.iter().find(|(d, ..)| d == id)?;
            Some(json!({
                "@odata.id": path,
                "Id": "0",
                "DeviceClass": class,
                "VendorId": vendor,
                "DeviceId": device,
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
}
