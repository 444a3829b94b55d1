//! The cross-check of a Server's two inventories (issue #29, item 3), end to end: a small
//! simulated fleet discovered in-band by `ferrometal run --inventory-cross-check`, one
//! machine with a disk its BMC's Redfish `Storage` does not list (the simulator's
//! `Oddity::OsOnlyDisk`). That machine becomes Available with `InventoryConsistent=False`
//! naming the disk, the others with `True`; the same fleet discovered without the flag has no
//! such condition at all. Both runs count what the flag costs: API writes (none more: the
//! condition goes into the completion's status write) and Redfish requests (the driver's
//! `get-system` with the inventory, once per discovery), with the operator's default resyncs
//! as in `api_budget.rs`, so that the counts do not vary with time.

use std::time::Duration;

use ferrometal::api::Server;
use ferrometal::api::conditions::{
    INVENTORY_CONSISTENT, REASON_CONSISTENT, REASON_INVENTORY_DIFFERS,
};
use ferrometal_sim::lab::{ApiRequests, Lab, LabOptions};
use ferrometal_sim::{FleetSpec, Oddity};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

mod common;

/// Single-system BMCs in the fleet.
const SERVERS: usize = 4;
/// The machine with a disk only its OS sees.
const ODD: usize = 1;
/// How long the fleet may take to become Available (it takes seconds).
const LIMIT: Duration = Duration::from_secs(180);
/// How often the Servers are looked at meanwhile.
const POLL: Duration = Duration::from_millis(100);
/// The most Redfish requests per server the flag may add: the redfish driver's `get-system`
/// with the inventory of a simulated machine (the system, its NICs, processors, memory
/// modules, storage, drives and PCIe devices, one GET each). A ratchet at today's count
/// (17.0 for this fleet: 30 per server with the flag, 13 without), as docs/running.md says.
const MAX_EXTRA_REDFISH_PER_SERVER: f64 = 18.0;
/// API writes per server may differ by this much between two runs of one fleet (a write
/// retried on a conflict); the flag itself adds none.
const WRITE_NOISE_PER_SERVER: f64 = 0.5;

/// One discovery of the fleet: its Servers and what it cost.
struct Discovery {
    servers: Vec<Server>,
    writes_per_server: f64,
    redfish_per_server: f64,
}

/// The fleet, with machine [`ODD`]'s extra disk.
fn fleet(options: &LabOptions) -> FleetSpec {
    FleetSpec {
        oddities: vec![(ODD, Oddity::OsOnlyDisk)],
        ..options.fleet.clone()
    }
}

/// Discovers the fleet in-band with `args` added to the operator's (default resyncs) and
/// counts the API writes and Redfish requests per server from the operator's start until
/// every Server is Available.
async fn discover(name: &str, args: &[&str]) -> Discovery {
    let options = common::lab_options(name, SERVERS, 1, 0);
    let mut lab = Lab::start(
        LabOptions {
            fleet: fleet(&options),
            apply_bmcs: false,
            start_operator: false,
            operator_args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            ..options
        },
        |line| eprintln!("lab {name}: {line}"),
    )
    .await
    .expect("the lab starts");
    let api_before = lab
        .api_requests()
        .await
        .expect("read the API server's metrics");
    let redfish_before = lab.redfish_requests();
    lab.run_operator().expect("ferrometal run starts");
    lab.apply_bmcs(0..SERVERS, None)
        .await
        .expect("apply the BMCs");
    if let Err(message) = lab.until_available(SERVERS, LIMIT, POLL).await {
        panic!("{name}: {message}");
    }
    let api = lab
        .api_requests()
        .await
        .expect("read the API server's metrics")
        .since(&api_before)
        .since(&ApiRequests::applied_bmcs(
            u64::try_from(SERVERS).expect("fits"),
        ))
        .of_ferrometal();
    let redfish = lab.redfish_requests() - redfish_before;
    eprintln!("{name}:\n{}", api.breakdown(SERVERS));
    let servers = Api::<Server>::all(lab.client.clone())
        .list(&ListParams::default())
        .await
        .expect("list Servers")
        .items;
    Discovery {
        servers,
        writes_per_server: api.writes() as f64 / SERVERS as f64,
        redfish_per_server: redfish as f64 / SERVERS as f64,
    }
}

fn inventory_consistent(server: &Server) -> Option<&Condition> {
    server
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == INVENTORY_CONSISTENT)
}

#[tokio::test]
async fn a_disk_the_bmc_does_not_list_is_named_on_its_server_and_only_with_the_flag() {
    let options = common::lab_options("inventory-check-spec", SERVERS, 1, 0);
    let odd = fleet(&options).machine(ODD);
    let hidden = odd.bmc_unlisted_disks[0].clone();

    let checked = discover("inventory-check", &["--inventory-cross-check"]).await;
    let summary = common::server_summary(&checked.servers);
    assert_eq!(checked.servers.len(), SERVERS, "{summary}");
    for server in &checked.servers {
        let is_odd = server
            .spec
            .system_uuid()
            .is_some_and(|uuid| uuid.eq_ignore_ascii_case(&odd.uuid));
        let condition = inventory_consistent(server).unwrap_or_else(|| {
            panic!(
                "{} has no InventoryConsistent:\n{summary}",
                server.name_any()
            )
        });
        if is_odd {
            assert_eq!(
                (condition.status.as_str(), condition.reason.as_str()),
                ("False", REASON_INVENTORY_DIFFERS),
                "{}: {}",
                server.name_any(),
                condition.message
            );
            assert!(
                condition.message.contains(&format!(
                    "disk {hidden} (960 GB, SSD, FAKE DISK) seen by the probe is missing from the BMC's inventory"
                )),
                "the message names the disk: {}",
                condition.message
            );
            assert!(
                !condition.message.contains("listed by the BMC"),
                "and nothing else: {}",
                condition.message
            );
        } else {
            assert_eq!(
                (condition.status.as_str(), condition.reason.as_str()),
                ("True", REASON_CONSISTENT),
                "{}: {}",
                server.name_any(),
                condition.message
            );
            assert!(
                condition.message.contains("agree on")
                    && condition.message.contains("CPU package(s)")
                    && condition.message.contains("disk(s)")
                    && condition.message.contains("NIC(s)"),
                "{}",
                condition.message
            );
        }
    }
    assert!(
        checked
            .servers
            .iter()
            .filter(|s| inventory_consistent(s).is_some_and(|c| c.status == "False"))
            .count()
            == 1,
        "only the odd machine differs:\n{summary}"
    );

    let unchecked = discover("inventory-unchecked", &[]).await;
    assert_eq!(unchecked.servers.len(), SERVERS);
    for server in &unchecked.servers {
        assert!(
            inventory_consistent(server).is_none(),
            "{} has InventoryConsistent without the flag",
            server.name_any()
        );
    }

    let extra_redfish = checked.redfish_per_server - unchecked.redfish_per_server;
    eprintln!(
        "per server: {:.2} API writes and {:.2} Redfish requests with --inventory-cross-check, \
         {:.2} and {:.2} without ({extra_redfish:.2} Redfish requests more)",
        checked.writes_per_server,
        checked.redfish_per_server,
        unchecked.writes_per_server,
        unchecked.redfish_per_server,
    );
    assert!(
        checked.writes_per_server <= unchecked.writes_per_server + WRITE_NOISE_PER_SERVER,
        "the cross-check added API writes: {:.2} per server with it, {:.2} without",
        checked.writes_per_server,
        unchecked.writes_per_server
    );
    assert!(
        extra_redfish > 0.0 && extra_redfish <= MAX_EXTRA_REDFISH_PER_SERVER,
        "the cross-check costs {extra_redfish:.2} Redfish requests per server (at most {MAX_EXTRA_REDFISH_PER_SERVER})"
    );
}
