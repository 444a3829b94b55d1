//! Out-of-band inventory through the real `redfish` component (issue #29, item 1): the
//! driver's `get-system` against DMTF's public mockups served by sushy-static and against the
//! project's simulator, turned into Server status fields the way out-of-band discovery does
//! (`controllers::hardware_facts`). What is expected is computed here from the mockups' JSON
//! files (and from the simulated machines' specs), never written down by hand.

use std::path::PathBuf;
use std::time::Duration;

use ferrometal::api::ServerStatus;
use ferrometal::controllers::hardware_facts::facts;
use ferrometal::plugins::bmc_driver::BmcDriverPlugin;
use ferrometal::plugins::types::{BmcEndpoint, System, TlsPolicy};
use ferrometal::plugins::{PluginMetrics, PluginRuntime, RuntimeConfig};
use ferrometal::registry::quantity;
use serde_json::Value;
use testenv::SushyStatic;

fn redfish() -> BmcDriverPlugin {
    redfish_counted(PluginMetrics::default())
}

/// The driver, counting into `metrics` (see [`bmc_requests`]).
fn redfish_counted(metrics: PluginMetrics) -> BmcDriverPlugin {
    let runtime = PluginRuntime::new(
        RuntimeConfig {
            granted_capabilities: vec![String::from("credentials/reveal")],
            ..RuntimeConfig::default()
        },
        metrics,
    )
    .expect("engine");
    let path = testenv::components::component("redfish").expect("built by `make plugins`");
    runtime.load_bmc_driver(&path).expect("load redfish")
}

/// The BMC requests counted in `metrics` so far (`ferrometal_bmc_requests_total`, every
/// method and outcome): what a sushy-static mockup, which counts nothing, was asked.
fn bmc_requests(metrics: &PluginMetrics) -> u64 {
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    text.lines()
        .filter(|line| line.starts_with("ferrometal_bmc_requests_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn endpoint(host: &str, port: u16, password: &str) -> BmcEndpoint {
    BmcEndpoint {
        scheme: "http".into(),
        host: host.into(),
        port,
        tls: TlsPolicy::Insecure,
        username: "admin".into(),
        password: password.into(),
        manufacturer_hint: None,
        settings: Vec::new(),
    }
}

async fn get_system(endpoint: &BmcEndpoint, uri: &str) -> System {
    tokio::time::timeout(Duration::from_secs(60), redfish().system(endpoint, uri))
        .await
        .expect("in time")
        .expect("get-system")
}

// ---- DMTF mockups ----

/// A mockup directory, read the way sushy-static serves it.
struct Mockup(PathBuf);

const MIB: u64 = 1 << 20;

impl Mockup {
    fn named(name: &str) -> Self {
        Self(
            testenv::tools::workspace_root()
                .join("tests/data/redfish")
                .join(name),
        )
    }

    /// The resource at `path` (`/redfish/v1/…`), if the mockup has it.
    fn doc(&self, path: &str) -> Option<Value> {
        let relative = path.trim_start_matches("/redfish/v1").trim_matches('/');
        let file = self.0.join(relative).join("index.json");
        let text = std::fs::read_to_string(file).ok()?;
        Some(serde_json::from_str(&text).expect("mockup JSON"))
    }

    /// The resources an `{"@odata.id"}` link's collection lists.
    fn members(&self, link: &Value) -> Vec<(String, Value)> {
        let Some(collection) = link["@odata.id"].as_str().and_then(|p| self.doc(p)) else {
            return Vec::new();
        };
        self.each(&collection["Members"])
    }

    /// The resources an array of links points to.
    fn each(&self, links: &Value) -> Vec<(String, Value)> {
        links
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|link| {
                let path = link["@odata.id"].as_str()?.to_owned();
                let doc = self.doc(&path)?;
                Some((path, doc))
            })
            .collect()
    }

    fn systems(&self) -> Vec<String> {
        let root = self.doc("/redfish/v1").expect("service root");
        self.members(&root["Systems"])
            .into_iter()
            .map(|(path, _)| path)
            .collect()
    }
}

fn present(doc: &Value) -> bool {
    doc["Status"]["State"] != "Absent"
}

fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

fn last_segment(path: &str) -> String {
    path.rsplit('/').next().unwrap_or_default().to_owned()
}

/// A name as the driver picks it: `Name`, else `Id`, else the path's last segment.
fn name(path: &str, doc: &Value) -> String {
    text(&doc["Name"])
        .or_else(|| text(&doc["Id"]))
        .unwrap_or_else(|| last_segment(path))
}

/// A CPU as compared: `(id, model, architecture, cores, threads)`.
type Cpu = (
    String,
    Option<String>,
    Option<String>,
    Option<i32>,
    Option<i32>,
);
/// A drive or volume as compared: `(name, capacity)`.
type Part = (String, Option<String>);
/// A storage subsystem as compared: `(name, drives, volumes)`.
type Subsystem = (String, Vec<Part>, Vec<Part>);

/// What a mockup system's JSON says, in the shape of the status fields compared.
#[derive(Debug, PartialEq)]
struct Hardware {
    bios_version: Option<String>,
    /// Every present CPU.
    cpus: Vec<Cpu>,
    memory: Option<String>,
    storages: Vec<Subsystem>,
    /// `(name, class)` of every accelerator.
    accelerators: Vec<(String, Option<String>)>,
}

fn capacity(value: &Value) -> Option<String> {
    value.as_u64().map(|bytes| quantity(bytes).0)
}

/// The hardware of the mockup system at `uri`, from its JSON.
fn expected(mockup: &Mockup, uri: &str) -> Hardware {
    let system = mockup.doc(uri).expect("system");
    let processors: Vec<Value> = mockup
        .members(&system["Processors"])
        .into_iter()
        .map(|(_, p)| p)
        .filter(present)
        .collect();
    let is_cpu = |p: &Value| p["ProcessorType"].is_null() || p["ProcessorType"] == "CPU";
    let int = |v: &Value| v.as_i64().map(|n| n as i32);
    let modules_mib: u64 = mockup
        .members(&system["Memory"])
        .iter()
        .filter(|(_, m)| present(m))
        .filter_map(|(_, m)| m["CapacityMiB"].as_u64())
        .sum();
    let memory = if modules_mib > 0 {
        Some(modules_mib * MIB)
    } else {
        system["MemorySummary"]["TotalSystemMemoryGiB"]
            .as_f64()
            .filter(|gib| *gib > 0.0)
            .map(|gib| (gib * 1024.0).round() as u64 * MIB)
    };
    let mut storages: Vec<_> = mockup
        .members(&system["Storage"])
        .into_iter()
        .map(|(path, storage)| {
            let drives = mockup
                .each(&storage["Drives"])
                .into_iter()
                .filter(|(_, d)| present(d))
                .map(|(path, d)| (name(&path, &d), capacity(&d["CapacityBytes"])))
                .collect::<Vec<_>>();
            let volumes = mockup
                .members(&storage["Volumes"])
                .into_iter()
                .map(|(path, v)| (name(&path, &v), capacity(&v["CapacityBytes"])))
                .collect();
            (name(&path, &storage), drives, volumes)
        })
        .collect();
    if storages.iter().all(|(_, drives, _)| drives.is_empty()) {
        storages = mockup
            .members(&system["SimpleStorage"])
            .into_iter()
            .map(|(path, controller)| {
                let drives = controller["Devices"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|d| present(d))
                    .map(|d| {
                        (
                            text(&d["Name"]).unwrap_or_default(),
                            capacity(&d["CapacityBytes"]),
                        )
                    })
                    .collect();
                (name(&path, &controller), drives, Vec::new())
            })
            .collect();
    }
    Hardware {
        bios_version: text(&system["BiosVersion"]),
        cpus: processors
            .iter()
            .filter(|p| is_cpu(p))
            .map(|p| {
                (
                    text(&p["Id"]).unwrap_or_default(),
                    text(&p["Model"]),
                    text(&p["ProcessorArchitecture"]),
                    int(&p["TotalCores"]),
                    int(&p["TotalThreads"]),
                )
            })
            .collect(),
        memory: memory.map(|bytes| quantity(bytes).0),
        storages,
        accelerators: processors
            .iter()
            .filter(|p| !is_cpu(p))
            .map(|p| {
                (
                    text(&p["Id"]).unwrap_or_default(),
                    text(&p["ProcessorType"]),
                )
            })
            .collect(),
    }
}

/// The same, read from the Server status fields out-of-band discovery writes.
fn reported(status: &ServerStatus) -> Hardware {
    Hardware {
        bios_version: status.bios_version.clone(),
        cpus: status
            .processors
            .iter()
            .map(|p| {
                (
                    p.id.clone(),
                    p.model.clone(),
                    p.architecture.clone(),
                    p.total_cores,
                    p.total_threads,
                )
            })
            .collect(),
        memory: status.total_system_memory.as_ref().map(|q| q.0.clone()),
        storages: status
            .storages
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.drives
                        .iter()
                        .map(|d| (d.name.clone(), d.capacity.as_ref().map(|q| q.0.clone())))
                        .collect(),
                    s.volumes
                        .iter()
                        .map(|v| (v.name.clone(), v.capacity.as_ref().map(|q| q.0.clone())))
                        .collect(),
                )
            })
            .collect(),
        accelerators: status
            .accelerators
            .iter()
            .map(|a| (a.name.clone(), a.class.clone()))
            .collect(),
    }
}

/// Reads every system of mockup `name` out-of-band and checks it against the mockup's JSON;
/// returns what was read, for checks particular to the mockup.
async fn every_system_matches(name: &str) -> Vec<(System, Hardware)> {
    let mockup = Mockup::named(name);
    let service = SushyStatic::start(&mockup.0).await.expect("sushy-static");
    let endpoint = endpoint("127.0.0.1", service.port(), "unused");
    let metrics = PluginMetrics::default();
    let driver = redfish_counted(metrics.clone());
    let mut read = Vec::new();
    for uri in mockup.systems() {
        let before = bmc_requests(&metrics);
        let system = tokio::time::timeout(Duration::from_secs(60), driver.system(&endpoint, &uri))
            .await
            .expect("in time")
            .expect("get-system");
        eprintln!(
            "DMTF {name} {uri}: get-system with inventory = {} Redfish requests",
            bmc_requests(&metrics) - before
        );
        let inventory = system
            .inventory
            .as_ref()
            .expect("get-system reads the inventory");
        let want = expected(&mockup, &uri);
        let got = reported(&facts(&system));
        assert_eq!(got, want, "{name} {uri}");
        let pcie_links = mockup.doc(&uri).expect("system")["PCIeDevices"]
            .as_array()
            .map_or(0, Vec::len);
        if pcie_links > 0 {
            assert_eq!(inventory.pcie_devices.len(), pcie_links, "{name} {uri}");
        }
        read.push((system, want));
    }
    assert!(!read.is_empty(), "{name} has systems");
    read
}

#[tokio::test]
async fn dmtfs_tower_mockup_gives_cpus_dimms_drives_volumes_and_gpus() {
    let read = every_system_matches("public-tower").await;
    let (system, want) = &read[0];
    assert!(!want.cpus.is_empty() && want.memory.is_some());
    assert!(
        want.storages
            .iter()
            .any(|(_, drives, _)| !drives.is_empty())
    );
    assert!(
        want.storages
            .iter()
            .any(|(_, _, volumes)| !volumes.is_empty())
    );
    assert!(!want.accelerators.is_empty(), "the tower has GPUs");
    let inventory = system.inventory.as_ref().expect("inventory");
    assert!(
        inventory
            .memory
            .iter()
            .any(|m| m.state.as_deref() == Some("Absent")),
        "empty DIMM slots are listed but not counted"
    );
    let status = facts(system);
    assert!(
        status
            .network_interfaces
            .iter()
            .all(|n| n.carrier_status.is_none()),
        "the tower's NICs state no LinkStatus"
    );
}

#[tokio::test]
async fn dmtfs_local_storage_mockup_gives_a_raid_controller_with_drives_and_volumes() {
    let read = every_system_matches("public-localstorage").await;
    let (system, want) = &read[0];
    assert!(want.storages[0].1.len() > 1 && !want.storages[0].2.is_empty());
    let status = facts(system);
    assert!(
        status
            .network_interfaces
            .iter()
            .any(|n| n.carrier_status.as_deref() == Some("up")),
        "LinkUp becomes carrier up: {:?}",
        status.network_interfaces
    );
}

#[tokio::test]
async fn dmtfs_bladed_mockup_gives_simple_storage_and_the_memory_summary_per_blade() {
    let read = every_system_matches("public-bladed").await;
    assert!(read.len() > 1);
    for (_, want) in &read {
        assert!(!want.cpus.is_empty(), "{want:?}");
        assert!(want.memory.is_some(), "from MemorySummary: {want:?}");
        assert!(!want.storages.is_empty(), "from SimpleStorage: {want:?}");
    }
}

// ---- the project's simulator ----

#[tokio::test]
async fn simulated_machines_report_their_spec_out_of_band_and_what_it_costs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet = ferrometal_sim::Fleet::start(ferrometal_sim::FleetOptions {
        spec: ferrometal_sim::FleetSpec {
            seed: 29,
            bmcs: 3,
            systems_per_bmc: 2,
            first_bmc: 2900,
            // Machine 5801 (the first BMC's second system) has a GPU.
            oddities: vec![(5801, ferrometal_sim::Oddity::Gpu)],
            ..ferrometal_sim::FleetSpec::default()
        },
        work_dir: dir.path().join("machines"),
        ..ferrometal_sim::FleetOptions::default()
    })
    .await
    .expect("simulated fleet");
    let password = ferrometal_sim::FleetSpec::default().password;
    let mut gpus_read = 0;
    for bmc in fleet.bmcs() {
        let address = bmc.address().expect("listening");
        let endpoint = endpoint(&address.ip().to_string(), address.port(), &password);
        for (n, machine) in bmc.machines().iter().enumerate() {
            let spec = machine.spec();
            let before = bmc.requests();
            let system = get_system(&endpoint, &format!("/redfish/v1/Systems/{}", n + 1)).await;
            let cost = bmc.requests() - before;
            let status = facts(&system);
            let (packages, cores) = spec.cpus;
            assert_eq!(status.processors.len(), packages as usize);
            assert!(status.processors.iter().all(|p| {
                p.total_cores == Some(cores as i32) && p.total_threads == Some(cores as i32)
            }));
            assert_eq!(
                status.total_system_memory,
                Some(quantity(spec.memory_mib * MIB))
            );
            let drives: Vec<Part> = status
                .storages
                .iter()
                .flat_map(|s| &s.drives)
                .map(|d| (d.name.clone(), d.capacity.as_ref().map(|q| q.0.clone())))
                .collect();
            let want: Vec<Part> = spec
                .disks
                .iter()
                .map(|(name, bytes, _)| (name.clone(), Some(quantity(*bytes).0)))
                .collect();
            assert_eq!(drives, want);
            assert_eq!(status.bios_version.as_deref(), Some("1.0"));
            let devices = ferrometal_sim::inventory::pcie_devices(spec);
            let gpus: Vec<_> = devices
                .iter()
                .filter(|d| d.id.starts_with("GPU"))
                .map(|d| {
                    (
                        d.name.clone(),
                        Some(d.device_class.to_owned()),
                        Some(d.manufacturer.to_owned()),
                        Some(d.vendor_id.to_owned()),
                        Some(d.device_id.to_owned()),
                    )
                })
                .collect();
            assert_eq!(gpus.len(), spec.gpus);
            let accelerators: Vec<_> = status
                .accelerators
                .iter()
                .map(|a| {
                    (
                        a.name.clone(),
                        a.class.clone(),
                        a.vendor.clone(),
                        a.vendor_id.clone(),
                        a.device_id.clone(),
                    )
                })
                .collect();
            assert_eq!(accelerators, gpus, "the GPUs and nothing else");
            gpus_read += accelerators.len();
            assert_eq!(
                system.inventory.as_ref().map(|i| i.pcie_devices.len()),
                Some(devices.len()),
                "the NIC, the disk controller and the GPUs"
            );
            let carriers: Vec<Option<&str>> = status
                .network_interfaces
                .iter()
                .map(|n| n.carrier_status.as_deref())
                .collect();
            assert_eq!(carriers, [Some("up"), Some("down")]);
            eprintln!(
                "{} ({} CPU package(s), {} disk(s), {} GPU(s)): get-system with inventory = {cost} Redfish requests",
                spec.model,
                packages,
                spec.disks.len(),
                spec.gpus
            );
        }
    }
    assert_eq!(
        gpus_read, 1,
        "the GPU machine's GPU was read as an accelerator"
    );
}
