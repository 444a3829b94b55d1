//! The fleet simulator over IPv6 (`LabOptions::ipv6`): a real control plane, registry,
//! plugins and `ferrometal run` with its DHCPv6 server on the host's end of a veth pair, and
//! a simulated fleet in a network namespace on the other end. Half the BMCs announce
//! themselves by DHCPv6 (→ Endpoints with their IPv6 address), the other half are applied as
//! BMC objects with static IPv6 addresses; every machine asks DHCPv6 (user class iPXE) for
//! its boot URL and fetches script, kernel, initrd and ignition from the boot server, and
//! posts its report to the registry, at the host's IPv6 address, from its leased address.
//! One more machine (the witness) never reports, so its boot configuration stays to show
//! whom the boot server served (configurations of Available Servers are deleted, often
//! before the fetch record is written on them). Needs root (the namespace and the veth pair).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use ferrometal::api::{BMC, Endpoint, Server, ServerBootConfiguration};
use ferrometal_sim::Probe;
use ferrometal_sim::lab::{Lab, LabOptions};
use kube::api::ListParams;
use kube::{Api, ResourceExt};

mod common;

/// BMCs with one system each: the last one's machine is the witness.
const BMCS: usize = 11;
const DHCP_BMCS: usize = 5;
/// The Servers that reach Available (all but the witness's).
const AVAILABLE: usize = BMCS - 1;

/// The address an `IgnitionDataFetched` message says the ignition was fetched from.
fn fetched_from(message: &str) -> Option<IpAddr> {
    let rest = message.split(" fetched its ignition from ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

fn in_range(address: Ipv6Addr, (first, last): (Ipv6Addr, Ipv6Addr)) -> bool {
    (first..=last).contains(&address)
}

#[tokio::test]
async fn a_fleet_reaches_available_over_ipv6_through_both_discovery_paths() {
    if !testenv::netns::available() {
        eprintln!(
            "skipped: the IPv6 lab's network namespace and veth pair need root (CI runs as root)"
        );
        return;
    }
    let mut lab = Lab::start(
        LabOptions {
            ipv6: true,
            start_operator: false,
            ..common::lab_options("ipv6", BMCS, 1, DHCP_BMCS)
        },
        |line| eprintln!("lab: {line}"),
    )
    .await
    .expect("the IPv6 lab starts");
    // Set before the operator runs, so before the witness's first boot.
    let witness = lab.fleet.machines().last().expect("machines").clone();
    witness.set_probe(Probe::Never);
    lab.run_operator().expect("ferrometal run starts");
    let network = lab.network.as_ref().expect("the IPv6 lab has a network");
    let range = network.dhcp_range();
    let boot_host = network.host_address();
    assert!(
        lab.boot_url.starts_with(&format!("http://[{boot_host}]:")),
        "machines are told the boot server's IPv6 URL: {}",
        lab.boot_url
    );

    if let Err(error) = lab
        .until_available(
            AVAILABLE,
            Duration::from_secs(180),
            Duration::from_millis(250),
        )
        .await
    {
        panic!("{error}\nmachine phases: {:?}", lab.fleet.phases());
    }

    // The BMCs that announced themselves became Endpoints with the address DHCPv6 leased
    // them, from the lab's range, and BMCs at that address.
    let endpoints: Api<Endpoint> = Api::all(lab.client.clone());
    let endpoints = endpoints
        .list(&ListParams::default())
        .await
        .expect("endpoints")
        .items;
    let mut by_mac = BTreeMap::new();
    for endpoint in &endpoints {
        let ip: Ipv6Addr = endpoint.spec.ip.parse().unwrap_or_else(|_| {
            panic!(
                "Endpoint {} holds {:?}, not an IPv6 address",
                endpoint.name_any(),
                endpoint.spec.ip
            )
        });
        assert!(
            in_range(ip, range),
            "{ip} is outside the DHCPv6 range {range:?}"
        );
        by_mac.insert(endpoint.spec.mac_address.to_lowercase(), ip);
    }
    let announced: BTreeMap<String, Ipv6Addr> = lab.fleet.bmcs()[..DHCP_BMCS]
        .iter()
        .map(|bmc| {
            let address = bmc.address().expect("an announced BMC listens");
            let IpAddr::V6(ip) = address.ip() else {
                panic!("BMC {} listens on {address}, not on IPv6", bmc.spec().index)
            };
            (bmc.spec().mac.to_lowercase(), ip)
        })
        .collect();
    assert_eq!(
        by_mac, announced,
        "one Endpoint per announced BMC, at its leased address"
    );

    // The announced BMCs' objects name their Endpoints; the others their static IPv6
    // addresses in the lab's namespace.
    let bmcs: Api<BMC> = Api::all(lab.client.clone());
    let bmcs = bmcs.list(&ListParams::default()).await.expect("bmcs").items;
    assert_eq!(bmcs.len(), BMCS);
    for endpoint in &endpoints {
        let object = bmcs
            .iter()
            .find(|object| object.name_any() == endpoint.name_any())
            .unwrap_or_else(|| panic!("no BMC for Endpoint {}", endpoint.name_any()));
        let reference = object.spec.endpoint_ref.as_ref().map(|r| r.name.as_str());
        assert_eq!(reference, Some(endpoint.name_any().as_str()));
    }
    for bmc in &lab.fleet.bmcs()[DHCP_BMCS..] {
        let index = bmc.spec().index;
        let address = bmc.address().expect("a static BMC listens");
        let expected = Ipv6Addr::from(u128::from(network.static_base()) + index as u128);
        assert_eq!(address.ip(), IpAddr::V6(expected), "static BMC {index}");
        let object = bmcs
            .iter()
            .find(|object| object.name_any() == format!("sim-bmc-{index}"))
            .expect("its BMC object");
        let access = object.spec.access.as_ref().expect("spec.access");
        let json = serde_json::to_value(access).expect("json");
        assert_eq!(json["ip"], expected.to_string(), "BMC sim-bmc-{index}");
    }

    // Every Server carries what its machine's probe saw.
    let servers: Api<Server> = Api::all(lab.client.clone());
    let servers = servers
        .list(&ListParams::default())
        .await
        .expect("servers")
        .items;
    assert_eq!(servers.len(), BMCS);
    let mut leased = BTreeSet::new();
    for machine in lab
        .fleet
        .machines()
        .filter(|m| m.spec().uuid != witness.spec().uuid)
    {
        let spec = machine.spec();
        let server = servers
            .iter()
            .find(|server| {
                server
                    .spec
                    .system_uuid
                    .as_deref()
                    .is_some_and(|uuid| uuid.eq_ignore_ascii_case(&spec.uuid))
            })
            .unwrap_or_else(|| panic!("no Server for machine {}", spec.uuid));
        let status = server.status.as_ref().expect("status");
        assert_eq!(status.serial_number.as_deref(), Some(spec.serial.as_str()));
        let macs: Vec<String> = status
            .network_interfaces
            .iter()
            .map(|nic| nic.mac_address.to_lowercase())
            .collect();
        assert!(macs.contains(&spec.macs[0].to_lowercase()), "{macs:?}");
        // Booted over DHCPv6: leased an address of the lab's range.
        let Some(IpAddr::V6(address)) = machine.leased_address() else {
            panic!(
                "machine {} leased {:?}, not an IPv6 address",
                spec.uuid,
                machine.leased_address()
            );
        };
        assert!(in_range(address, range), "{address} outside {range:?}");
        leased.insert(IpAddr::V6(address));
    }
    assert_eq!(leased.len(), AVAILABLE, "every machine its own address");

    // The witness fetched its ignition over IPv6 from the address DHCPv6 leased it, as its
    // boot configuration records; from another address the boot server does not serve it.
    let sbcs: Api<ServerBootConfiguration> = Api::all(lab.client.clone());
    let mut message = None;
    for _ in 0..600 {
        message = sbcs
            .list(&ListParams::default())
            .await
            .ok()
            .and_then(|list| {
                list.items.iter().find_map(|sbc| {
                    sbc.status
                        .iter()
                        .flat_map(|status| &status.conditions)
                        .find(|c| c.type_ == "IgnitionDataFetched" && c.message.contains(" from "))
                        .map(|c| c.message.clone())
                })
            });
        if message.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let message = message.unwrap_or_else(|| {
        panic!(
            "the witness's ignition fetch was never recorded; operator log:\n{}",
            lab.operator_log_tail(60)
        )
    });
    let Some(IpAddr::V6(address)) = witness.leased_address() else {
        panic!("the witness leased {:?}", witness.leased_address())
    };
    assert!(in_range(address, range), "{address} outside {range:?}");
    assert!(
        !leased.contains(&IpAddr::V6(address)),
        "an address of its own"
    );
    assert_eq!(
        fetched_from(&message),
        Some(IpAddr::V6(address)),
        "{message}"
    );
    let bystander = reqwest::Client::builder()
        .local_address(IpAddr::V6(boot_host))
        .build()
        .expect("an HTTP client");
    let script = bystander
        .get(format!("{}/ipxe/{}", lab.boot_url, witness.spec().uuid))
        .send()
        .await
        .expect("the boot server answers over IPv6");
    assert_eq!(
        script.status(),
        404,
        "the witness's script was served to {boot_host}, not its leased address"
    );
}
