//! HPE's OEM `SmartStorage` (iLO 4 and iLO 5): drives behind a Smart Array controller are
//! listed only there, not in the DMTF `Storage` collection (Swordfish-Powershell-Toolkit
//! #19, idrac_exporter #136). Layout, from HPE's iLO RESTful API reference:
//! `SmartStorage` → `Links.ArrayControllers` → each controller's `Links.PhysicalDrives`
//! (`DiskDrive`) and `Links.LogicalDrives` (`LogicalDrive`).

use ferrometal_plugin_sdk::bmc_driver::http::{Transport, get_json};
use ferrometal_plugin_sdk::bmc_driver::{Drive, Storage, Volume};
use ferrometal_plugin_sdk::types::PluginError;
use serde_json::Value;

use crate::expand::{Collections, members};
use crate::inventory_model as m;
use crate::model::Link;

const MIB: u64 = 1 << 20;

/// Every member of the collection at `collection` (expanded where the BMC offers it).
fn each<T: serde::de::DeserializeOwned>(
    http: &impl Transport,
    collections: &Collections,
    collection: Option<&Link>,
) -> Result<Vec<T>, PluginError> {
    let Some(link) = collection else {
        return Ok(Vec::new());
    };
    members(&collections.get(http, &link.id)?)?
        .into_iter()
        .map(|member| member.read(http))
        .collect()
}

fn mib(value: Option<&Value>) -> Option<u64> {
    crate::inventory::whole(value).and_then(|n| n.checked_mul(MIB))
}

/// The Smart Array controllers under `smart_storage` as storage subsystems.
pub fn read(
    http: &impl Transport,
    collections: &Collections,
    smart_storage: &str,
) -> Result<Vec<Storage>, PluginError> {
    let root: Value = get_json(http, smart_storage)?;
    let controllers = root
        .pointer("/Links/ArrayControllers/@odata.id")
        .and_then(Value::as_str)
        .map(|id| Link { id: id.to_owned() });
    let mut found = Vec::new();
    for (n, controller) in each::<m::HpeArrayController>(http, collections, controllers.as_ref())?
        .into_iter()
        .enumerate()
    {
        let drives =
            each::<m::HpeDiskDrive>(http, collections, controller.links.physical_drives.as_ref())?
                .into_iter()
                .filter(|drive| drive.status.state.as_deref() != Some("Absent"))
                .map(|drive| Drive {
                    name: drive.location.or(drive.id).unwrap_or_default(),
                    media_type: drive.media_type,
                    protocol: drive.interface_type,
                    capacity_bytes: mib(drive.capacity_mib.as_ref()),
                    manufacturer: None,
                    model: drive.model,
                    serial: drive.serial_number,
                    state: drive.status.state,
                })
                .collect();
        let volumes = each::<m::HpeLogicalDrive>(
            http,
            collections,
            controller.links.logical_drives.as_ref(),
        )?
        .into_iter()
        .map(|volume| Volume {
            name: volume.name.or(volume.id).unwrap_or_default(),
            capacity_bytes: mib(volume.capacity_mib.as_ref()),
            raid_type: volume.raid.map(|raid| format!("RAID{raid}")),
            volume_usage: None,
            state: volume.status.state,
        })
        .collect();
        found.push(Storage {
            name: controller
                .model
                .or(controller.name)
                .unwrap_or_else(|| format!("Smart Array {n}")),
            state: controller.status.state,
            drives,
            volumes,
        });
    }
    Ok(found)
}
