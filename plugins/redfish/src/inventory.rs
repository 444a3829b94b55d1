//! A system's hardware from Redfish: processors, memory, storage (with `SimpleStorage` and
//! HPE's `SmartStorage` as fallbacks), PCIe devices (on the system, else its chassis), BIOS
//! version and SKU. Read only for `get-system`; `probe` never pays for it.
//!
//! A collection the BMC does not implement (404, 405, 501, as sushy-emulator answers for
//! processors and memory; a 500 where the quirks table says so) is empty; any other failure fails the read, so an inventory is
//! never silently partial because the BMC was busy.
//!
//! Collections (processors, memory, storage, volumes, a chassis' PCIe devices, a device's
//! PCIe functions) are read with `$expand` where the BMC offers it ([`crate::expand`]): one
//! request for the collection and its members. Drives and the PCIe devices a system lists
//! are plain arrays of links, not collections, and cost a GET each as before.

use ferrometal_plugin_sdk::bmc_driver::http::{Transport, decode};
use ferrometal_plugin_sdk::bmc_driver::{
    Drive, Inventory, MemoryModule, PcieDevice, Processor, Storage, Volume,
};
use ferrometal_plugin_sdk::types::PluginError;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::expand::{Collections, Member, from_body, members};
use crate::inventory_model as m;
use crate::model::{Link, Status};
use crate::quirks::{Quirk, quirks_for};

const MIB: u64 = 1 << 20;

/// The BMC of a call, and which answers mean "not implemented here".
pub struct Reader<'a, T> {
    http: &'a T,
    /// How the call reads collections.
    collections: &'a Collections,
    /// Also read a `500` as "not implemented" ([`Quirk::InventoryServerErrors`]).
    server_error_is_missing: bool,
}

impl<T: Transport> Reader<'_, T> {
    /// Whether `status` means the BMC does not implement the resource.
    fn missing(&self, status: u16) -> bool {
        matches!(status, 404 | 405 | 501) || (self.server_error_is_missing && status == 500)
    }

    /// Reads `path`, or `None` when the BMC does not implement it.
    fn optional<D: DeserializeOwned>(&self, path: &str) -> Result<Option<D>, PluginError> {
        let response = crate::driver::get(self.http, path)?;
        if self.missing(response.status) {
            return Ok(None);
        }
        decode(&response).map(Some)
    }

    /// The members of the collection at `path` (with their bodies where the BMC expanded
    /// them), or `None` when the BMC does not implement it.
    fn collection(&self, path: &str) -> Result<Option<Vec<Member>>, PluginError> {
        let response = self.collections.get(self.http, path)?;
        if self.missing(response.status) {
            return Ok(None);
        }
        members(&response).map(Some)
    }

    /// The members of the collection at `link`, each read; none when it is missing.
    fn members<D: DeserializeOwned>(
        &self,
        link: Option<&Link>,
    ) -> Result<Vec<(String, D)>, PluginError> {
        let Some(link) = link else {
            return Ok(Vec::new());
        };
        let Some(members) = self.collection(&link.id)? else {
            return Ok(Vec::new());
        };
        self.read_each(members)
    }

    /// Every resource `links` points to, with its path; a member that is gone (404) is
    /// skipped.
    fn read_all<D: DeserializeOwned>(
        &self,
        links: &[Link],
    ) -> Result<Vec<(String, D)>, PluginError> {
        self.read_each(links.iter().map(Member::from).collect())
    }

    /// Every member, from its inline body or read on its own, with its path; a member that
    /// is gone (404) is skipped.
    fn read_each<D: DeserializeOwned>(
        &self,
        members: Vec<Member>,
    ) -> Result<Vec<(String, D)>, PluginError> {
        let mut read = Vec::with_capacity(members.len());
        for member in members {
            if let Some(resource) = self.member(member)? {
                read.push(resource);
            }
        }
        Ok(read)
    }

    /// One member, from its inline body or read on its own; `None` when it is gone.
    fn member<D: DeserializeOwned>(
        &self,
        member: Member,
    ) -> Result<Option<(String, D)>, PluginError> {
        let resource = match member.body {
            Some(body) => Some(from_body(&member.id, body)?),
            None => self.optional(&member.id)?,
        };
        Ok(resource.map(|resource| (member.id, resource)))
    }
}

/// A whole number from JSON (integers, and floats without a fraction) that fits in `u64`.
pub fn whole(value: Option<&Value>) -> Option<u64> {
    let value = value?;
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < u64::MAX as f64)
            .map(|f| f as u64)
    })
}

fn small(value: Option<&Value>) -> Option<u32> {
    whole(value).and_then(|n| u32::try_from(n).ok())
}

/// The last segment of a resource path (a name for resources that carry none).
fn last_segment(path: &str) -> String {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn absent(status: &Status) -> bool {
    status.state.as_deref() == Some("Absent")
}

/// Reads the hardware of the system whose resource is `system` (its JSON, already read).
pub fn read(
    http: &impl Transport,
    collections: &Collections,
    system: &Value,
) -> Result<Inventory, PluginError> {
    let links: m::SystemInventoryLinks = serde_json::from_value(system.clone()).unwrap_or_default();
    let manufacturer = system.get("Manufacturer").and_then(Value::as_str);
    let model = system.get("Model").and_then(Value::as_str);
    // Only rows without a firmware condition: the manager is not read for the inventory.
    let quirks = quirks_for(manufacturer, model, None);
    let reader = Reader {
        http,
        collections,
        server_error_is_missing: quirks.contains(&Quirk::InventoryServerErrors),
    };
    let processors = processors(&reader, links.processors.as_ref())?;
    let memory = memory(&reader, links.memory.as_ref())?;
    let total_memory_bytes = total_memory(&memory, &links.memory_summary, &quirks);
    let storage = storage(&reader, &links, &quirks)?;
    let pcie_devices = pcie_devices(&reader, &links)?;
    Ok(Inventory {
        bios_version: links.bios_version.filter(|v| !v.trim().is_empty()),
        sku: links.sku.filter(|v| !v.trim().is_empty()),
        processors,
        total_memory_bytes,
        memory,
        storage,
        pcie_devices,
    })
}

/// Present processors, in the collection's order.
fn processors(
    reader: &Reader<'_, impl Transport>,
    link: Option<&Link>,
) -> Result<Vec<Processor>, PluginError> {
    Ok(reader
        .members::<m::Processor>(link)?
        .into_iter()
        .filter(|(_, p)| !absent(&p.status))
        .map(|(path, p)| Processor {
            id: p.id.unwrap_or_else(|| last_segment(&path)),
            processor_type: p.processor_type,
            architecture: p.architecture,
            instruction_set: p.instruction_set,
            manufacturer: p.manufacturer,
            model: p.model,
            max_speed_mhz: small(p.max_speed_mhz.as_ref()),
            total_cores: small(p.total_cores.as_ref()),
            total_threads: small(p.total_threads.as_ref()),
            pcie_device: p.links.pcie_device.map(|link| link.id),
        })
        .collect())
}

/// Memory modules and slots.
fn memory(
    reader: &Reader<'_, impl Transport>,
    link: Option<&Link>,
) -> Result<Vec<MemoryModule>, PluginError> {
    Ok(reader
        .members::<m::Memory>(link)?
        .into_iter()
        .map(|(path, module)| MemoryModule {
            id: module.id.unwrap_or_else(|| last_segment(&path)),
            capacity_bytes: whole(module.capacity_mib.as_ref())
                .and_then(|mib| mib.checked_mul(MIB))
                .filter(|bytes| *bytes > 0),
            device_type: module.device_type,
            manufacturer: module.manufacturer,
            part_number: module.part_number,
            operating_speed_mhz: small(module.operating_speed_mhz.as_ref()),
            state: module.status.state,
        })
        .collect())
}

/// The present modules' capacities added up, else the system's `MemorySummary` (unless the
/// vendor's summary is known to be unreliable).
pub fn total_memory(
    modules: &[MemoryModule],
    summary: &m::MemorySummary,
    quirks: &[Quirk],
) -> Option<u64> {
    let sum: u64 = modules
        .iter()
        .filter(|module| module.state.as_deref() != Some("Absent"))
        .filter_map(|module| module.capacity_bytes)
        .sum();
    if sum > 0 {
        return Some(sum);
    }
    if quirks.contains(&Quirk::UnreliableMemorySummary) {
        return None;
    }
    summary
        .total_gib
        .filter(|gib| gib.is_finite() && *gib > 0.0)
        .map(|gib| (gib * 1024.0).round() as u64 * MIB)
}

/// Storage subsystems: `Storage`, else `SimpleStorage`, else (HPE) `SmartStorage`.
fn storage(
    reader: &Reader<'_, impl Transport>,
    links: &m::SystemInventoryLinks,
    quirks: &[Quirk],
) -> Result<Vec<Storage>, PluginError> {
    let mut found = Vec::new();
    for (path, subsystem) in reader.members::<m::Storage>(links.storage.as_ref())? {
        let drives = reader
            .read_all::<m::Drive>(&subsystem.drives)?
            .into_iter()
            .filter(|(_, drive)| !absent(&drive.status))
            .map(|(path, drive)| Drive {
                name: drive
                    .name
                    .or(drive.id)
                    .unwrap_or_else(|| last_segment(&path)),
                media_type: drive.media_type,
                protocol: drive.protocol,
                capacity_bytes: whole(drive.capacity_bytes.as_ref()),
                manufacturer: drive.manufacturer,
                model: drive.model,
                serial: drive.serial_number,
                state: drive.status.state,
            })
            .collect();
        let volumes = reader
            .members::<m::Volume>(subsystem.volumes.as_ref())?
            .into_iter()
            .map(|(path, volume)| Volume {
                name: volume
                    .name
                    .or(volume.id)
                    .unwrap_or_else(|| last_segment(&path)),
                capacity_bytes: whole(volume.capacity_bytes.as_ref()),
                raid_type: volume.raid_type,
                volume_usage: volume.volume_usage,
                state: volume.status.state,
            })
            .collect();
        found.push(Storage {
            name: subsystem
                .name
                .or(subsystem.id)
                .unwrap_or_else(|| last_segment(&path)),
            state: subsystem.status.state,
            drives,
            volumes,
        });
    }
    if found.iter().any(|s| !s.drives.is_empty()) {
        return Ok(found);
    }
    let simple = simple_storage(reader, links.simple_storage.as_ref())?;
    if simple.iter().any(|s| !s.drives.is_empty()) {
        return Ok(simple);
    }
    if quirks.contains(&Quirk::HpeSmartStorage)
        && let Some(link) = links
            .oem
            .pointer("/Hpe/Links/SmartStorage/@odata.id")
            .and_then(Value::as_str)
    {
        let smart = crate::hpe_storage::read(reader.http, reader.collections, link)?;
        if !smart.is_empty() {
            return Ok(smart);
        }
    }
    // Controllers without drives are still worth recording.
    Ok(if found.is_empty() { simple } else { found })
}

/// `SimpleStorage` controllers and their devices.
fn simple_storage(
    reader: &Reader<'_, impl Transport>,
    link: Option<&Link>,
) -> Result<Vec<Storage>, PluginError> {
    Ok(reader
        .members::<m::SimpleStorage>(link)?
        .into_iter()
        .map(|(path, controller)| Storage {
            name: controller
                .name
                .or(controller.id)
                .unwrap_or_else(|| last_segment(&path)),
            state: controller.status.state,
            drives: controller
                .devices
                .into_iter()
                .filter(|device| !absent(&device.status))
                .enumerate()
                .map(|(n, device)| Drive {
                    name: device.name.unwrap_or_else(|| format!("Device {n}")),
                    capacity_bytes: whole(device.capacity_bytes.as_ref()),
                    manufacturer: device.manufacturer,
                    model: device.model,
                    state: device.status.state,
                    ..Drive::default()
                })
                .collect(),
            volumes: Vec::new(),
        })
        .collect())
}

/// PCIe devices the system lists, else those of its chassis, each with its first function's
/// class and ids.
fn pcie_devices(
    reader: &Reader<'_, impl Transport>,
    links: &m::SystemInventoryLinks,
) -> Result<Vec<PcieDevice>, PluginError> {
    let mut device_links: Vec<Member> = links.pcie_devices.iter().map(Member::from).collect();
    if device_links.is_empty() {
        for chassis in &links.links.chassis {
            let Some(chassis) = reader.optional::<m::Chassis>(&chassis.id)? else {
                continue;
            };
            if let Some(link) = &chassis.pcie_devices
                && let Some(members) = reader.collection(&link.id)?
            {
                device_links.extend(members);
            }
        }
    }
    let mut seen = Vec::new();
    device_links.retain(|member| {
        let new = !seen.contains(&member.id);
        seen.push(member.id.clone());
        new
    });
    let mut devices = Vec::new();
    for (path, device) in reader.read_each::<m::PcieDevice>(device_links)? {
        if absent(&device.status) {
            continue;
        }
        let function = match &device.functions {
            Some(collection) => reader
                .collection(&collection.id)?
                .and_then(|members| members.into_iter().next()),
            None => device.links.functions.first().map(Member::from),
        };
        let function = match function {
            Some(member) => reader
                .member::<m::PcieFunction>(member)?
                .map(|(_, function)| function)
                .unwrap_or_default(),
            None => m::PcieFunction::default(),
        };
        devices.push(PcieDevice {
            id: path,
            name: device.name,
            manufacturer: device.manufacturer,
            model: device.model,
            device_class: function.device_class,
            vendor_id: function.vendor_id,
            device_id: function.device_id,
            state: device.status.state,
        });
    }
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::canned::Canned;
    use crate::expand::Expand;

    const S: &str = "/redfish/v1/Systems/1";

    /// The inventory as read from a BMC that does not advertise `$expand`.
    fn plain(http: &Canned, system: &Value) -> Result<Inventory, PluginError> {
        read(http, &Collections::new(Expand::Off), system)
    }

    fn system(extra: Value) -> Value {
        let mut system = json!({
            "Manufacturer": "Contoso",
            "BiosVersion": "P79 v1.45",
            "SKU": "8675309",
            "Processors": {"@odata.id": format!("{S}/Processors")},
            "Memory": {"@odata.id": format!("{S}/Memory")},
            "MemorySummary": {"TotalSystemMemoryGiB": 999},
            "Storage": {"@odata.id": format!("{S}/Storage")},
            "Links": {"Chassis": [{"@odata.id": "/redfish/v1/Chassis/1"}]}
        });
        for (key, value) in extra.as_object().expect("object") {
            system[key] = value.clone();
        }
        system
    }

    fn collection(members: &[&str]) -> String {
        json!({"Members": members.iter().map(|m| json!({"@odata.id": m})).collect::<Vec<_>>()})
            .to_string()
    }

    #[test]
    fn cpus_memory_storage_and_pcie_devices_are_read_with_their_capacities_and_classes() {
        let p = format!("{S}/Processors");
        let mem = format!("{S}/Memory");
        let st = format!("{S}/Storage");
        let answers = vec![
            (format!("Get {p}"), 200, collection(&[&format!("{p}/CPU1"), &format!("{p}/CPU2"), &format!("{p}/GPU1")])),
            (format!("Get {p}/CPU1"), 200, json!({"Id":"CPU1","ProcessorType":"CPU","ProcessorArchitecture":"x86","InstructionSet":"x86-64","Manufacturer":"Intel(R) Corporation","Model":"Xeon","MaxSpeedMHz":2300,"TotalCores":16,"TotalThreads":32,"Status":{"State":"Enabled"}}).to_string()),
            (format!("Get {p}/CPU2"), 200, json!({"Id":"CPU2","Status":{"State":"Absent"}}).to_string()),
            (format!("Get {p}/GPU1"), 200, json!({"Id":"GPU1","ProcessorType":"GPU","Model":"TU102","Links":{"PCIeDevice":{"@odata.id":"/redfish/v1/Chassis/1/PCIeDevices/GPU"}}}).to_string()),
            (format!("Get {mem}"), 200, collection(&[&format!("{mem}/DIMM1"), &format!("{mem}/DIMM2")])),
            (format!("Get {mem}/DIMM1"), 200, json!({"Id":"DIMM1","CapacityMiB":32768,"MemoryDeviceType":"DDR4","Status":{"State":"Enabled"}}).to_string()),
            (format!("Get {mem}/DIMM2"), 200, json!({"Id":"DIMM2","CapacityMiB":0,"Status":{"State":"Absent"}}).to_string()),
            (format!("Get {st}"), 200, collection(&[&format!("{st}/1")])),
            (format!("Get {st}/1"), 200, json!({"Id":"1","Name":"RAID","Status":{"State":"Enabled"},"Drives":[{"@odata.id":"/redfish/v1/Chassis/1/Drives/D0"}],"Volumes":{"@odata.id":format!("{st}/1/Volumes")}}).to_string()),
            (String::from("Get /redfish/v1/Chassis/1/Drives/D0"), 200, json!({"MediaType":"SSD","Protocol":"NVMe","CapacityBytes":960_000_000_000u64,"Model":"PM9A3","Status":{"State":"Enabled"}}).to_string()),
            (format!("Get {st}/1/Volumes"), 200, collection(&[&format!("{st}/1/Volumes/1")])),
            (format!("Get {st}/1/Volumes/1"), 200, json!({"Name":"Boot","CapacityBytes":2.305_843_009_213_694e19,"RAIDType":"RAID1"}).to_string()),
            (String::from("Get /redfish/v1/Chassis/1"), 200, json!({"PCIeDevices":{"@odata.id":"/redfish/v1/Chassis/1/PCIeDevices"}}).to_string()),
            (String::from("Get /redfish/v1/Chassis/1/PCIeDevices"), 200, collection(&["/redfish/v1/Chassis/1/PCIeDevices/GPU"])),
            (String::from("Get /redfish/v1/Chassis/1/PCIeDevices/GPU"), 200, json!({"Name":"GPU","Manufacturer":"NVIDIA","PCIeFunctions":{"@odata.id":"/redfish/v1/Chassis/1/PCIeDevices/GPU/PCIeFunctions"}}).to_string()),
            (String::from("Get /redfish/v1/Chassis/1/PCIeDevices/GPU/PCIeFunctions"), 200, collection(&["/redfish/v1/Chassis/1/PCIeDevices/GPU/PCIeFunctions/0"])),
            (String::from("Get /redfish/v1/Chassis/1/PCIeDevices/GPU/PCIeFunctions/0"), 200, json!({"DeviceClass":"DisplayController","VendorId":"0x10de","DeviceId":"0x1e04"}).to_string()),
        ];
        let answers: Vec<(&str, u16, &str)> = answers
            .iter()
            .map(|(path, status, body)| (path.as_str(), *status, body.as_str()))
            .collect();
        let http = Canned::new(&answers);
        let inventory = plain(&http, &system(json!({}))).expect("inventory");
        assert_eq!(inventory.bios_version.as_deref(), Some("P79 v1.45"));
        assert_eq!(inventory.sku.as_deref(), Some("8675309"));
        let ids: Vec<&str> = inventory.processors.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["CPU1", "GPU1"], "the absent socket is left out");
        assert_eq!(inventory.processors[0].total_threads, Some(32));
        assert_eq!(inventory.processors[0].architecture.as_deref(), Some("x86"));
        assert_eq!(
            inventory.processors[1].pcie_device.as_deref(),
            Some("/redfish/v1/Chassis/1/PCIeDevices/GPU")
        );
        assert_eq!(
            inventory.total_memory_bytes,
            Some(32 << 30),
            "the modules count, not the summary"
        );
        assert_eq!(inventory.memory.len(), 2, "empty slots are listed");
        assert_eq!(inventory.storage.len(), 1);
        let storage = &inventory.storage[0];
        assert_eq!(storage.name, "RAID");
        assert_eq!(
            storage.drives[0].name, "D0",
            "a drive without a name is named by its path"
        );
        assert_eq!(storage.drives[0].capacity_bytes, Some(960_000_000_000));
        assert_eq!(storage.volumes[0].capacity_bytes, None, "beyond u64");
        assert_eq!(storage.volumes[0].raid_type.as_deref(), Some("RAID1"));
        let gpu = &inventory.pcie_devices[0];
        assert_eq!(gpu.device_class.as_deref(), Some("DisplayController"));
        assert_eq!(gpu.vendor_id.as_deref(), Some("0x10de"));
    }

    #[test]
    fn simple_storage_stands_in_and_the_summary_gives_the_memory_when_modules_are_not_listed() {
        let http = Canned::new(&[
            (
                "Get /redfish/v1/Systems/1/SimpleStorage",
                200,
                r#"{"Members":[{"@odata.id":"/redfish/v1/Systems/1/SimpleStorage/1"}]}"#,
            ),
            (
                "Get /redfish/v1/Systems/1/SimpleStorage/1",
                200,
                r#"{"Name":"SATA","Devices":[{"Name":"Bay 1","Model":"3000GT8","CapacityBytes":4000000000000},{"Name":"Bay 2","Status":{"State":"Absent"}}]}"#,
            ),
        ]);
        let bladed = json!({
            "MemorySummary": {"TotalSystemMemoryGiB": 0.25},
            "SimpleStorage": {"@odata.id": "/redfish/v1/Systems/1/SimpleStorage"}
        });
        let inventory = plain(&http, &bladed).expect("inventory");
        assert_eq!(inventory.total_memory_bytes, Some(256 << 20));
        assert_eq!(inventory.storage[0].name, "SATA");
        assert_eq!(inventory.storage[0].drives.len(), 1);
        assert_eq!(
            inventory.storage[0].drives[0].capacity_bytes,
            Some(4_000_000_000_000)
        );
        assert!(inventory.processors.is_empty() && inventory.pcie_devices.is_empty());
    }

    #[test]
    fn a_dell_summary_is_not_trusted_for_the_memory_total() {
        let dell =
            json!({"Manufacturer": "Dell Inc.", "MemorySummary": {"TotalSystemMemoryGiB": 206}});
        let inventory = plain(&Canned::new(&[]), &dell).expect("inventory");
        assert_eq!(inventory.total_memory_bytes, None);
    }

    #[test]
    fn collections_the_bmc_does_not_implement_are_empty_and_other_failures_fail() {
        let http = Canned::new(&[
            ("Get /redfish/v1/Systems/1/Processors", 501, ""),
            ("Get /redfish/v1/Systems/1/Memory", 404, ""),
            (
                "Get /redfish/v1/Systems/1/Storage",
                200,
                r#"{"Members":[]}"#,
            ),
            ("Get /redfish/v1/Chassis/1", 404, ""),
        ]);
        let inventory = plain(&http, &system(json!({}))).expect("inventory");
        assert!(inventory.processors.is_empty());
        assert_eq!(
            inventory.total_memory_bytes,
            Some(999 << 30),
            "no modules: the summary"
        );
        let http = Canned::new(&[(
            "Get /redfish/v1/Systems/1/Processors",
            500,
            r#"{"error":{"code":"Base.1.8.InternalError","message":"busy"}}"#,
        )]);
        let error = plain(&http, &system(json!({}))).expect_err("a busy BMC");
        assert!(
            matches!(
                error,
                PluginError::BmcFault {
                    http_status: Some(500),
                    ..
                }
            ),
            "{error:?}"
        );
        // sushy-emulator answers 500 for the storage it has none of.
        let http = Canned::new(&[
            ("Get /redfish/v1/Systems/1/Processors", 501, ""),
            ("Get /redfish/v1/Systems/1/Memory", 501, ""),
            (
                "Get /redfish/v1/Systems/1/Storage",
                500,
                r#"{"error":{"code":"Base.1.0.GeneralError","message":"Error finding storage collection by UUID"}}"#,
            ),
            ("Get /redfish/v1/Chassis/1", 404, ""),
        ]);
        let sushy = system(json!({"Manufacturer": "Sushy Emulator"}));
        assert!(plain(&http, &sushy).expect("inventory").storage.is_empty());
        let error = plain(&http, &system(json!({}))).expect_err("elsewhere a fault");
        assert!(
            matches!(
                error,
                PluginError::BmcFault {
                    http_status: Some(500),
                    ..
                }
            ),
            "{error:?}"
        );
    }

    const LEVEL_1: &str = "?$expand=.($levels=1)";

    fn expanded(http: &Canned, system: &Value) -> Result<Inventory, PluginError> {
        read(
            http,
            &Collections::new(Expand::NoLinks { levels: true }),
            system,
        )
    }

    #[test]
    fn a_chassis_pcie_collection_and_a_device_s_functions_come_inline_when_expanded() {
        let c = "/redfish/v1/Chassis/1/PCIeDevices";
        let http = Canned::new(&[
            (
                "Get /redfish/v1/Chassis/1",
                200,
                r#"{"PCIeDevices":{"@odata.id":"/redfish/v1/Chassis/1/PCIeDevices"}}"#,
            ),
            (
                &format!("Get {c}{LEVEL_1}"),
                200,
                &json!({"Members": [
                    {"@odata.id": format!("{c}/GPU"), "Name": "GPU",
                     "PCIeFunctions": {"@odata.id": format!("{c}/GPU/PCIeFunctions")}},
                    {"@odata.id": format!("{c}/NIC"), "Name": "NIC",
                     "Links": {"PCIeFunctions": [{"@odata.id": format!("{c}/NIC/PCIeFunctions/0")}]}},
                ]})
                .to_string(),
            ),
            (
                &format!("Get {c}/GPU/PCIeFunctions{LEVEL_1}"),
                200,
                &json!({"Members": [
                    {"@odata.id": format!("{c}/GPU/PCIeFunctions/0"), "DeviceClass": "DisplayController"},
                    {"@odata.id": format!("{c}/GPU/PCIeFunctions/1"), "DeviceClass": "Other"},
                ]})
                .to_string(),
            ),
            (
                &format!("Get {c}/NIC/PCIeFunctions/0"),
                200,
                r#"{"DeviceClass":"NetworkController"}"#,
            ),
        ]);
        let bare = json!({"Links": {"Chassis": [{"@odata.id": "/redfish/v1/Chassis/1"}]}});
        let inventory = expanded(&http, &bare).expect("inventory");
        let classes: Vec<(&str, Option<&str>)> = inventory
            .pcie_devices
            .iter()
            .map(|d| (d.id.as_str(), d.device_class.as_deref()))
            .collect();
        assert_eq!(
            classes,
            [
                (
                    "/redfish/v1/Chassis/1/PCIeDevices/GPU",
                    Some("DisplayController")
                ),
                (
                    "/redfish/v1/Chassis/1/PCIeDevices/NIC",
                    Some("NetworkController")
                )
            ],
            "the first function of each"
        );
        assert_eq!(http.sent.borrow().len(), 4);
    }

    #[test]
    fn a_501_to_an_expanded_collection_is_read_plainly_and_expansion_stops() {
        let p = format!("{S}/Processors");
        let mem = format!("{S}/Memory");
        let http = Canned::new(&[
            (&format!("Get {p}{LEVEL_1}"), 501, ""),
            (&format!("Get {p}"), 501, ""),
            (
                &format!("Get {mem}"),
                200,
                &collection(&[&format!("{mem}/DIMM1")]),
            ),
            (
                &format!("Get {mem}/DIMM1"),
                200,
                r#"{"Id":"DIMM1","CapacityMiB":1024}"#,
            ),
        ]);
        let system = json!({
            "Processors": {"@odata.id": p},
            "Memory": {"@odata.id": mem},
        });
        let inventory = expanded(&http, &system).expect("inventory");
        assert!(inventory.processors.is_empty(), "not implemented: none");
        assert_eq!(inventory.total_memory_bytes, Some(1 << 30));
        let paths = http.paths();
        assert_eq!(
            paths,
            [
                format!("{p}{LEVEL_1}"),
                p.clone(),
                mem.clone(),
                format!("{mem}/DIMM1")
            ]
        );
    }

    #[test]
    fn hpe_smart_array_drives_are_read_from_smart_storage() {
        let smart = "/redfish/v1/Systems/1/SmartStorage/";
        let controllers = "/redfish/v1/Systems/1/SmartStorage/ArrayControllers/";
        let http = Canned::new(&[
            ("Get /redfish/v1/Systems/1/Storage", 200, r#"{"Members":[]}"#),
            ("Get /redfish/v1/Chassis/1", 200, "{}"),
            (&format!("Get {smart}"), 200, &json!({"Links":{"ArrayControllers":{"@odata.id":controllers}}}).to_string()),
            (&format!("Get {controllers}"), 200, &collection(&[&format!("{controllers}0/")])),
            (&format!("Get {controllers}0/"), 200, &json!({"Model":"HPE Smart Array P408i-a SR Gen10","Status":{"State":"Enabled"},"Links":{"PhysicalDrives":{"@odata.id":format!("{controllers}0/DiskDrives/")},"LogicalDrives":{"@odata.id":format!("{controllers}0/LogicalDrives/")}}}).to_string()),
            (&format!("Get {controllers}0/DiskDrives/"), 200, &collection(&[&format!("{controllers}0/DiskDrives/0/")])),
            (&format!("Get {controllers}0/DiskDrives/0/"), 200, r#"{"Id":"0","Location":"1I:1:1","CapacityMiB":915715,"MediaType":"SSD","InterfaceType":"SATA","Model":"MK000960GWXFF"}"#),
            (&format!("Get {controllers}0/LogicalDrives/"), 200, &collection(&[&format!("{controllers}0/LogicalDrives/1/")])),
            (&format!("Get {controllers}0/LogicalDrives/1/"), 200, r#"{"Id":"1","LogicalDriveName":"boot","CapacityMiB":915683,"Raid":"1"}"#),
        ]);
        let hpe = system(json!({
            "Manufacturer": "HPE",
            "Processors": null, "Memory": null,
            "Oem": {"Hpe": {"Links": {"SmartStorage": {"@odata.id": smart}}}}
        }));
        let inventory = plain(&http, &hpe).expect("inventory");
        let storage = &inventory.storage[0];
        assert_eq!(storage.name, "HPE Smart Array P408i-a SR Gen10");
        assert_eq!(storage.drives[0].name, "1I:1:1");
        assert_eq!(storage.drives[0].capacity_bytes, Some(915_715 << 20));
        assert_eq!(storage.volumes[0].raid_type.as_deref(), Some("RAID1"));
        // Another vendor's OEM tree is never walked.
        let http = Canned::new(&[
            (
                "Get /redfish/v1/Systems/1/Storage",
                200,
                r#"{"Members":[]}"#,
            ),
            ("Get /redfish/v1/Chassis/1", 200, "{}"),
        ]);
        let contoso = system(json!({
            "Processors": null, "Memory": null,
            "Oem": {"Hpe": {"Links": {"SmartStorage": {"@odata.id": smart}}}}
        }));
        assert!(
            plain(&http, &contoso)
                .expect("inventory")
                .storage
                .is_empty()
        );
    }
}
