//! One simulated fleet discovered in-band (boot, metalprobe, registry) and out-of-band
//! (`--discovery-mode out-of-band`: the BMC's inventory through the redfish driver's
//! `get-system`) ends with the same metal-operator status fields on every Server (issue #29,
//! items 1 and 2): identity, `biosVersion`, `processors`, `totalSystemMemory`, `storages`, the
//! network interfaces' names, MACs and link states, and `accelerators` (ferrometal's own: some
//! machines have GPUs, `Oddity::Gpu`, which the BMC lists and the machine's sysfs holds).
//! Addresses (`ips`) and LLDP neighbours are left out of the comparison: only a booted machine
//! has them.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrometal::api::{Server, ServerStatus};
use ferrometal_sim::Oddity;
use ferrometal_sim::lab::{Lab, LabOptions};
use kube::Api;
use kube::api::ListParams;

mod common;

const BMCS: usize = 4;
const SYSTEMS_PER_BMC: usize = 2;
const SERVERS: usize = BMCS * SYSTEMS_PER_BMC;
const LIMIT: Duration = Duration::from_secs(300);
/// Machines with GPUs: one on machine 1, two on machine 6.
const GPUS: [(usize, Oddity); 3] = [(1, Oddity::Gpu), (6, Oddity::Gpu), (6, Oddity::Gpu)];

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
/// status of every Server by system UUID, and the number of GPUs of each machine by system
/// UUID.
async fn discover(
    name: &str,
    args: &[&str],
) -> (BTreeMap<String, ServerStatus>, BTreeMap<String, usize>) {
    let mut options = common::lab_options(name, BMCS, SYSTEMS_PER_BMC, 0);
    options.fleet.oddities = GPUS.to_vec();
    let gpus = options
        .fleet
        .generate()
        .into_iter()
        .flat_map(|bmc| bmc.systems)
        .map(|machine| (machine.uuid, machine.gpus))
        .collect();
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
    let statuses = servers
        .list(&ListParams::default())
        .await
        .expect("list Servers")
        .items
        .into_iter()
        .map(|server| {
            let uuid = server.spec.system_uuid().expect("a system UUID");
            (uuid, comparable(&server.status.unwrap_or_default()))
        })
        .collect();
    (statuses, gpus)
}

#[tokio::test]
async fn one_fleet_discovered_in_band_and_out_of_band_has_the_same_metal_operator_fields() {
    let (in_band, gpus) = discover("modes-in-band", &[]).await;
    let (out_of_band, _) =
        discover("modes-out-of-band", &["--discovery-mode", "out-of-band"]).await;
    assert_eq!(in_band.len(), SERVERS);
    assert_eq!(gpus.values().sum::<usize>(), GPUS.len());
    for (uuid, status) in &in_band {
        assert!(
            !status.processors.is_empty()
                && status.total_system_memory.is_some()
                && !status.storages.is_empty()
                && status.bios_version.is_some(),
            "in-band found the hardware of {uuid}: {status:?}"
        );
        let found: Vec<(Option<&str>, Option<&str>, Option<&str>)> = status
            .accelerators
            .iter()
            .map(|a| {
                (
                    a.class.as_deref(),
                    a.vendor_id.as_deref(),
                    a.device_id.as_deref(),
                )
            })
            .collect();
        let want = gpus.get(uuid).copied().unwrap_or_default();
        assert_eq!(
            found,
            vec![(Some("DisplayController"), Some("0x10de"), Some("0x2330")); want],
            "in-band found the {want} GPU(s) of {uuid} and nothing else as an accelerator"
        );
        assert_eq!(
            out_of_band.get(uuid),
            Some(status),
            "system {uuid}: out-of-band (left) differs from in-band (right)"
        );
    }
}
