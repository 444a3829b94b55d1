//! One simulated fleet discovered in-band (boot, metalprobe, registry) and out-of-band
//! (`--discovery-mode out-of-band`: the BMC's inventory through the redfish driver's
//! `get-system`) ends with the same metal-operator status fields on every Server (issue #29,
//! item 1): identity, `biosVersion`, `processors`, `totalSystemMemory`, `storages`, and the
//! network interfaces' names, MACs and link states. Addresses (`ips`) and LLDP neighbours are
//! left out of the comparison: only a booted machine has them.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrometal::api::{Server, ServerStatus};
use ferrometal_sim::lab::{Lab, LabOptions};
use kube::Api;
use kube::api::ListParams;

mod common;

const BMCS: usize = 4;
const SYSTEMS_PER_BMC: usize = 2;
const SERVERS: usize = BMCS * SYSTEMS_PER_BMC;
const LIMIT: Duration = Duration::from_secs(300);

/// The metal-operator fields both discoveries fill, without what only a boot can see.
fn comparable(status: &ServerStatus) -> ServerStatus {
    ServerStatus {
        manufacturer: status.manufacturer.clone(),
        model: status.model.clone(),
        serial_number: status.serial_number.clone(),
        sku: status.sku.clone(),
        bios_version: status.bios_version.clone(),
        processors: status.processors.clone(),
        total_system_memory: status.total_system_memory.clone(),
        storages: status.storages.clone(),
        accelerators: status.accelerators.clone(),
        network_interfaces: status
            .network_interfaces
            .iter()
            .map(|nic| ferrometal::api::server::NetworkInterface {
                name: nic.name.clone(),
                mac_address: nic.mac_address.clone(),
                carrier_status: nic.carrier_status.clone(),
                ..Default::default()
            })
            .collect(),
        ..ServerStatus::default()
    }
}

/// Discovers the fleet with `args` added to the operator's and returns the comparable
/// status of every Server by system UUID.
async fn discover(name: &str, args: &[&str]) -> BTreeMap<String, ServerStatus> {
    let options = common::lab_options(name, BMCS, SYSTEMS_PER_BMC, 0);
    let mut operator_args = options.operator_args.clone();
    operator_args.extend(args.iter().map(|arg| (*arg).to_owned()));
    let lab = Lab::start(
        LabOptions {
            operator_args,
            ..options
        },
        |line| eprintln!("lab {name}: {line}"),
    )
    .await
    .expect("the lab starts");
    if let Err(message) = lab
        .until_available(SERVERS, LIMIT, Duration::from_millis(200))
        .await
    {
        panic!("{name}: {message}");
    }
    let servers: Api<Server> = Api::all(lab.client.clone());
    servers
        .list(&ListParams::default())
        .await
        .expect("list Servers")
        .items
        .into_iter()
        .map(|server| {
            let uuid = server.spec.system_uuid().expect("a system UUID");
            (uuid, comparable(&server.status.unwrap_or_default()))
        })
        .collect()
}

#[tokio::test]
async fn one_fleet_discovered_in_band_and_out_of_band_has_the_same_metal_operator_fields() {
    let in_band = discover("modes-in-band", &[]).await;
    let out_of_band = discover("modes-out-of-band", &["--discovery-mode", "out-of-band"]).await;
    assert_eq!(in_band.len(), SERVERS);
    for (uuid, status) in &in_band {
        assert!(
            !status.processors.is_empty()
                && status.total_system_memory.is_some()
                && !status.storages.is_empty()
                && status.bios_version.is_some(),
            "in-band found the hardware of {uuid}: {status:?}"
        );
        assert_eq!(
            out_of_band.get(uuid),
            Some(status),
            "system {uuid}: out-of-band (left) differs from in-band (right)"
        );
    }
}
