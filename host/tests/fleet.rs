//! End to end with the fleet simulator: a real control plane, a real OCI registry, the real
//! plugins and `ferrometal run` (boot server, registry, DHCP server on loopback), and
//! simulated BMCs whose machines network-boot through the boot server and run metalprobe's
//! real collection and report.
//!
//! Covered: both discovery paths (DHCP-announced BMCs → Endpoints, BMCs applied with
//! `spec.access`) to Available, with the simulator's BMCs (several systems per BMC, over TLS)
//! and with sushy-emulator BMCs whose systems simulated machines follow; and, in one fleet, a
//! 5xx burst, wrong credentials, a probe that never reports and an operator restart, each
//! ending in its documented state while the rest of the fleet reaches Available.

use std::time::Duration;

use ferrometal::api::{BMC, Endpoint, Server};
use ferrometal_sim::external::RedfishSystem;
use ferrometal_sim::lab::{BmcAccess, Lab, LabOptions};
use ferrometal_sim::{Faults, FleetSpec, Probe};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

mod common;

use common::attempt;

async fn start(options: LabOptions) -> Lab {
    Lab::start(options, |line| eprintln!("lab: {line}"))
        .await
        .expect("the lab starts")
}

/// Waits until `check` holds for the Servers, printing the operator log if it never does.
async fn until_servers(lab: &Lab, what: &str, check: impl Fn(&[Server]) -> bool) {
    let servers: Api<Server> = Api::all(lab.client.clone());
    let mut last = Vec::new();
    for _ in 0..1200 {
        if let Ok(list) = servers.list(&ListParams::default()).await {
            last = list.items;
            if check(&last) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let summary = common::server_summary(&last);
    let log = lab.operator_log_tail(60);
    // The whole object of one Server that is not Available, to see who wrote what.
    let stuck = last
        .iter()
        .find(|s| !available(s))
        .and_then(|s| serde_json::to_string_pretty(s).ok())
        .unwrap_or_default();
    let failed: Vec<String> = lab
        .fleet
        .machines()
        .filter_map(|machine| match machine.phase() {
            ferrometal_sim::Phase::Failed(error) => {
                Some(format!("{}: {error}", machine.spec().uuid))
            }
            _ => None,
        })
        .collect();
    panic!(
        "{what} did not happen; Servers:\n{}\nmachine phases: {:?}; failed boots:\n{}\nfirst Server not Available:\n{stuck}\noperator log:\n{log}",
        summary,
        lab.fleet.phases(),
        failed.join("\n")
    );
}

fn state(server: &Server) -> Option<String> {
    server
        .status
        .as_ref()
        .and_then(|s| s.state.as_ref())
        .map(|s| format!("{s:?}"))
}

fn available(server: &Server) -> bool {
    state(server).as_deref() == Some("Available")
}

#[tokio::test]
async fn a_fleet_reaches_available_through_both_discovery_paths() {
    let lab = start(LabOptions {
        tls: true,
        ..common::lab_options("paths", 4, 2, 2)
    })
    .await;
    until_servers(&lab, "8 Servers Available", |servers| {
        servers.len() == 8 && servers.iter().all(available)
    })
    .await;

    // The DHCP-announced BMCs went through Endpoints named after their MACs.
    let endpoints = names::<Endpoint>(&lab).await;
    assert_eq!(endpoints, ["dhcp-5254fe000000", "dhcp-5254fe000001"]);
    let bmcs = names::<BMC>(&lab).await;
    assert_eq!(
        bmcs,
        [
            "dhcp-5254fe000000",
            "dhcp-5254fe000001",
            "sim-bmc-2",
            "sim-bmc-3"
        ]
    );

    // Every Server carries what its machine's probe saw, and matches its machine.
    let servers: Api<Server> = Api::all(lab.client.clone());
    let listed = servers
        .list(&ListParams::default())
        .await
        .expect("servers")
        .items;
    for machine in lab.fleet.machines() {
        let spec = machine.spec();
        let server = server_of(&listed, &spec.uuid);
        let status = serde_json::to_value(server.status.as_ref().expect("status")).expect("json");
        assert!(server_macs(server).contains(&spec.macs[0]), "{status:#}");
        assert_eq!(status["serialNumber"], spec.serial.as_str(), "{status:#}");
        assert!(machine.boots() >= 1);
        // Powered on only once its boot server served the attempt: its first request for
        // the script found the window open, and nothing had to be asked twice.
        assert_eq!(
            machine.fetch_retries(),
            0,
            "{} asked before its boot window opened",
            spec.uuid
        );
    }
    // Discovery over, the operator powers the machines off.
    until_servers(&lab, "machines powered off", |_| {
        lab.fleet.machines().all(|machine| !machine.powered())
    })
    .await;

    // A settled fleet stays put: resyncs of BMCs (every 3 s) and Servers (every 2 s) that
    // find nothing to do write nothing, so no reconcile feeds another.
    let versions = || async {
        servers
            .list(&ListParams::default())
            .await
            .expect("servers")
            .iter()
            .map(|s| (s.name_any(), s.resource_version()))
            .collect::<Vec<_>>()
    };
    let before = versions().await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(versions().await, before, "settled Servers were rewritten");
}

/// The names of every object of kind `K`.
async fn names<K>(lab: &Lab) -> Vec<String>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    Api::<K>::all(lab.client.clone())
        .list(&ListParams::default())
        .await
        .expect("list")
        .iter()
        .map(ResourceExt::name_any)
        .collect()
}

/// The Server of the machine with `uuid`.
fn server_of<'a>(servers: &'a [Server], uuid: &str) -> &'a Server {
    servers
        .iter()
        .find(|s| s.spec.system_uuid.as_deref() == Some(uuid))
        .unwrap_or_else(|| panic!("no Server for machine {uuid}"))
}

/// The MACs each Server reports, lowercase.
fn server_macs(server: &Server) -> Vec<String> {
    let status = serde_json::to_value(server.status.as_ref().expect("status")).expect("json");
    status["networkInterfaces"]
        .as_array()
        .expect("networkInterfaces")
        .iter()
        .filter_map(|nic| nic["macAddress"].as_str().map(str::to_lowercase))
        .collect()
}

#[tokio::test]
async fn sushy_emulator_bmcs_with_simulated_machines_reach_available_through_both_paths() {
    // No simulator BMCs: the BMCs are sushy-emulators (fake driver), and simulated machines
    // follow their systems' power state and boot override.
    let lab = start(LabOptions {
        apply_bmcs: false,
        ..common::lab_options("sushy", 0, 1, 0)
    })
    .await;
    let fleet = FleetSpec {
        seed: 7,
        bmcs: 2,
        systems_per_bmc: 1,
        ..FleetSpec::default()
    };
    let specs = fleet.generate();
    let sushy = |spec: &ferrometal_sim::spec::BmcSpec, listen| testenv::SushyOptions {
        systems: spec
            .systems
            .iter()
            .map(|machine| testenv::FakeSystem {
                uuid: machine.uuid.clone(),
                name: format!("sushy-machine-{}", machine.index),
                power_state: testenv::PowerState::Off,
                boot_mode: Default::default(),
                macs: machine.macs.clone(),
            })
            .collect(),
        auth: Some(testenv::BasicAuth {
            username: fleet.username.clone(),
            password: fleet.password.clone(),
        }),
        listen,
        ..Default::default()
    };
    // BMC 0 announces itself: it leases an address from ferrometal's DHCP server and listens
    // there on the port the MAC database names for its prefix. Like a real BMC it asks again
    // until the DHCP server answers: the operator may still be starting (loading and
    // compiling its plugins takes a while on a busy machine).
    let started = std::time::Instant::now();
    let leased = loop {
        match lab.fleet.lease(&specs[0].mac).await {
            Ok(leased) => break leased,
            Err(error) if started.elapsed() < Duration::from_secs(90) => {
                eprintln!("no DHCP lease yet ({error}); asking again");
            }
            Err(error) => panic!("no DHCP lease in 90 s: {error}"),
        }
    };
    let announced =
        testenv::SushyEmulator::start(sushy(&specs[0], Some((leased, lab.fleet.port()).into())))
            .await
            .expect("sushy-emulator on the leased address");
    // BMC 1 is applied with spec.access.
    let applied = testenv::SushyEmulator::start(sushy(&specs[1], None))
        .await
        .expect("sushy-emulator");
    lab.apply_bmc(&BmcAccess {
        name: String::from("sushy-bmc-1"),
        mac: specs[1].mac.clone(),
        ip: String::from("127.0.0.1"),
        port: applied.port(),
        scheme: "http",
        username: fleet.username.clone(),
        password: fleet.password.clone(),
    })
    .await
    .expect("apply the BMC");
    let mut machines = Vec::new();
    for (bmc, emulator) in specs.iter().zip([&announced, &applied]) {
        for machine in &bmc.systems {
            machines.push(lab.fleet.follow_external(
                machine.clone(),
                RedfishSystem {
                    http: emulator.http_client().expect("HTTP client"),
                    base_url: emulator.base_url().to_owned(),
                    username: fleet.username.clone(),
                    password: fleet.password.clone(),
                },
            ));
        }
    }

    until_servers(&lab, "2 Servers Available", |servers| {
        servers.len() == 2 && servers.iter().all(available)
    })
    .await;
    let endpoints = names::<Endpoint>(&lab).await;
    let announced_name = format!("dhcp-{}", specs[0].mac.replace(':', ""));
    assert_eq!(endpoints, [announced_name]);
    let servers = Api::<Server>::all(lab.client.clone())
        .list(&ListParams::default())
        .await
        .expect("servers")
        .items;
    for (machine, _) in &machines {
        let spec = machine.spec();
        let server = server_of(&servers, &spec.uuid);
        assert!(server_macs(server).contains(&spec.macs[0]));
        assert!(
            machine.boots() >= 1,
            "the machine booted through sushy's power-on"
        );
    }
    until_servers(&lab, "machines powered off", |_| {
        machines.iter().all(|(machine, _)| !machine.powered())
    })
    .await;
}

#[tokio::test]
async fn faults_end_in_their_documented_state_and_disturb_nothing_else() {
    let faults = common::lab_options("faults", 5, 1, 0);
    let mut lab = start(LabOptions {
        apply_bmcs: false,
        ..faults
    })
    .await;
    // BMC 0 answers its first requests with a 5xx burst, machine 2 never reports, BMC 1 is
    // given a wrong password.
    lab.fleet.bmcs()[0].set_faults(Faults {
        server_error_burst: 6,
        ..Faults::default()
    });
    lab.fleet.bmcs()[2].machines()[0].set_probe(Probe::Never);
    lab.apply_bmcs(0..1, None).await.expect("apply");
    lab.apply_bmcs(1..2, Some("wrong-password"))
        .await
        .expect("apply");
    lab.apply_bmcs(2..5, None).await.expect("apply");

    // Machine 2's discovery times out after 4 s.
    until_servers(&lab, "the Server of BMC 2", |servers| {
        servers.iter().any(|s| s.name_any() == "sim-bmc-2-system-0")
    })
    .await;
    set_discovery_timeout(&lab, "sim-bmc-2-system-0", 4).await;

    // Restart the operator while Servers are on their way.
    until_servers(&lab, "a Server in Discovery", |servers| {
        servers
            .iter()
            .any(|s| state(s).as_deref() == Some("Discovery"))
    })
    .await;
    lab.restart_operator().expect("restart");

    until_servers(
        &lab,
        "the healthy Servers Available and BMC 2's in Error",
        |servers| {
            let by_name = |name: &str| servers.iter().find(|s| s.name_any() == name);
            [
                "sim-bmc-0-system-0",
                "sim-bmc-3-system-0",
                "sim-bmc-4-system-0",
            ]
            .iter()
            .all(|name| by_name(name).is_some_and(available))
                && by_name("sim-bmc-2-system-0").is_some_and(|s| {
                    state(s).as_deref() == Some("Error")
                        && s.status.as_ref().is_some_and(|status| {
                            status
                                .conditions
                                .iter()
                                .any(|c| c.reason == "DiscoveryTimedOut")
                        })
                })
        },
    )
    .await;

    // Wrong credentials: no Servers, and the BMC says why.
    let bmc = Api::<BMC>::all(lab.client.clone())
        .get("sim-bmc-1")
        .await
        .expect("BMC 1");
    let ready = bmc
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .expect("Ready condition");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "AuthenticationFailed"),
        "{}",
        ready.message
    );
    let servers = Api::<Server>::all(lab.client.clone())
        .list(&ListParams::default())
        .await
        .expect("servers");
    assert!(
        servers
            .iter()
            .all(|s| !s.name_any().starts_with("sim-bmc-1-")),
        "a BMC with wrong credentials has no Servers"
    );
    // The burst was served and outlived.
    assert_eq!(lab.fleet.bmcs()[0].faults().server_error_burst, 0);
    // The restart cost no healthy Server a second discovery attempt.
    let healthy = [
        "sim-bmc-0-system-0",
        "sim-bmc-3-system-0",
        "sim-bmc-4-system-0",
    ];
    for server in servers
        .iter()
        .filter(|s| healthy.contains(&s.name_any().as_str()))
    {
        assert_eq!(
            attempt(server),
            1,
            "{} needed another attempt",
            server.name_any()
        );
    }
}

/// An operator restart in the middle of a fleet discovery is invisible to the machines:
/// the boot server answers `503` + `Retry-After` until its index holds every boot
/// configuration again, the chain script and the ignition fetch try again, and every
/// Server reaches Available on its first attempt with the default discovery timeout.
#[tokio::test]
async fn an_operator_restart_mid_discovery_costs_no_server_a_retry() {
    const SERVERS: usize = 50;
    let mut lab = start(common::lab_options("restart", SERVERS, 1, SERVERS / 2)).await;
    // Restart once some machines are on their way (booting or probing) and some Servers
    // are not in Discovery yet.
    until_servers(&lab, "Servers booting", |servers| {
        let booting = servers
            .iter()
            .filter(|s| {
                s.annotations()
                    .contains_key("ferrometal.dev/discovery-boot-requested")
                    && !available(s)
            })
            .count();
        booting >= 5
    })
    .await;
    lab.restart_operator().expect("restart");
    until_servers(&lab, "every Server Available", |servers| {
        servers.len() == SERVERS && servers.iter().all(available)
    })
    .await;
    let servers = Api::<Server>::all(lab.client.clone())
        .list(&ListParams::default())
        .await
        .expect("servers")
        .items;
    let retried: Vec<String> = servers
        .iter()
        .filter(|s| attempt(s) != 1)
        .map(|s| format!("{} (attempt {})", s.name_any(), attempt(s)))
        .collect();
    if !retried.is_empty() {
        // Why: the Warning Events of those Servers and the operator's lines about them.
        let events = Api::<k8s_openapi::api::core::v1::Event>::all(lab.client.clone())
            .list(&ListParams::default())
            .await
            .map(|list| list.items)
            .unwrap_or_default();
        let log = lab.operator_log();
        let mut why = String::new();
        for server in servers.iter().filter(|s| attempt(s) != 1) {
            let name = server.name_any();
            for event in events
                .iter()
                .filter(|e| e.involved_object.name.as_deref() == Some(name.as_str()))
            {
                why.push_str(&format!(
                    "{name} event {:?}: {:?}\n",
                    event.reason, event.message
                ));
            }
            for line in log.lines().filter(|line| line.contains(&name)).take(40) {
                why.push_str(line);
                why.push('\n');
            }
        }
        panic!("Servers needed a discovery retry: {retried:?}\n{why}");
    }
    let fetch_retries: u32 = lab.fleet.machines().map(|m| m.fetch_retries()).sum();
    eprintln!("machines tried a fetch again {fetch_retries} times across the restart");
}

/// Gives the Server `name` a discovery timeout of its own (its annotation).
async fn set_discovery_timeout(lab: &Lab, name: &str, seconds: u32) {
    Api::<Server>::all(lab.client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                "ferrometal.dev/discovery-timeout-seconds": seconds.to_string()
            }}})),
        )
        .await
        .expect("annotate");
}

/// The `Discovery` condition of a Server: (status, reason, message).
fn discovery_condition(server: &Server) -> Option<(String, String, String)> {
    server
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Discovery")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Hardware as metal-operator's own mockups show it, each ending in its documented state:
/// a DPU-like system without a boot override gets no Server; host-interface, disabled and
/// absent NICs are not waited for; a NIC the OS never sees delays Available only for the
/// bounded wait and is named; two BMCs reporting one system UUID get one discovered Server
/// and one that says why it is not.
#[tokio::test]
async fn odd_hardware_ends_in_its_documented_state() {
    use ferrometal_sim::{BmcOnlyNicKind, Oddity};
    let mut options = common::lab_options("odd", 5, 1, 0);
    options.fleet.oddities = vec![
        (1, Oddity::NoBootOverride),
        (2, Oddity::BmcOnlyNic(BmcOnlyNicKind::HostInterface)),
        (2, Oddity::BmcOnlyNic(BmcOnlyNicKind::Disabled)),
        (2, Oddity::BmcOnlyNic(BmcOnlyNicKind::Absent)),
        (3, Oddity::BmcOnlyNic(BmcOnlyNicKind::Unseen)),
        (4, Oddity::SameUuidAs(0)),
    ];
    options
        .operator_args
        .extend(["--discovery-nic-wait-seconds", "3"].map(String::from));
    let lab = start(options).await;
    let twins = ["sim-bmc-0-system-0", "sim-bmc-4-system-0"];
    until_servers(
        &lab,
        "every Server settled (the twin not discovered)",
        |servers| {
            servers.len() == 4
                && servers.iter().filter(|s| available(s)).count() == 3
                && servers.iter().any(|s| {
                    twins.contains(&s.name_any().as_str())
                        && discovery_condition(s).is_some_and(|c| c.1 == "DuplicateSystemUUID")
                })
        },
    )
    .await;
    let servers: Api<Server> = Api::all(lab.client.clone());
    let listed = servers
        .list(&ListParams::default())
        .await
        .expect("servers")
        .items;
    let names: Vec<String> = listed.iter().map(ResourceExt::name_any).collect();

    // (1) No Server for the system without a boot override; its BMC says why.
    assert!(
        !names.contains(&String::from("sim-bmc-1-system-0")),
        "{names:?}"
    );
    let bmc = Api::<BMC>::all(lab.client.clone())
        .get("sim-bmc-1")
        .await
        .expect("bmc");
    let ready = bmc
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert!(
        ready.message.contains("1 without a boot override skipped"),
        "{}",
        ready.message
    );
    assert_eq!(lab.fleet.machines().nth(1).expect("machine 1").boots(), 0);

    // (2) Host interface, disabled and absent NICs are not expected from the probe.
    let host_interface = server_of(
        &listed,
        &lab.fleet.machines().nth(2).expect("m2").spec().uuid,
    );
    assert_eq!(
        discovery_condition(host_interface).map(|c| c.1).as_deref(),
        Some("Discovered")
    );

    // (3) A NIC the OS never sees: Available after the wait, with the NIC named.
    let unseen = server_of(
        &listed,
        &lab.fleet.machines().nth(3).expect("m3").spec().uuid,
    );
    let (status, reason, message) = discovery_condition(unseen).expect("condition");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "DiscoveredWithoutNICs")
    );
    assert!(message.contains("NIC 52:54:fb:00:00:03"), "{message}");

    // (4) One system UUID, two BMCs: the oldest Server is discovered, the other names it
    // and was never booted.
    let (served, twin): (Vec<&Server>, Vec<&Server>) = listed
        .iter()
        .filter(|s| twins.contains(&s.name_any().as_str()))
        .partition(|s| available(s));
    let (served, twin) = (served[0], twin[0]);
    let (status, _, message) = discovery_condition(twin).expect("condition");
    assert_eq!(status, "False");
    assert!(message.contains(&served.name_any()), "{message}");
    assert_eq!(state(twin).as_deref(), Some("Initial"));
    assert!(twin.spec.boot_configuration_ref.is_none());
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(lab.client.clone(), "default");
    let warned = events
        .list(&ListParams::default().fields(&format!("involvedObject.name={}", twin.name_any())))
        .await
        .expect("events")
        .items
        .into_iter()
        .any(|e| e.reason.as_deref() == Some("DuplicateSystemUUID"));
    assert!(warned, "a Warning Event names the duplicate");
    // No flapping: the twin is left alone from now on.
    let twin_version = twin.resource_version();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        servers
            .get(&twin.name_any())
            .await
            .expect("twin")
            .resource_version(),
        twin_version,
        "the duplicate Server was rewritten"
    );
}

/// A BMC that stops answering while its Server is in Discovery: the discovery still times out
/// (the Server goes to `Error` with `DiscoveryTimedOut` naming why the BMC cannot be called)
/// and its boot configuration and ignition Secret are deleted, so the boot token is revoked.
#[tokio::test]
async fn an_unreachable_bmc_during_discovery_still_times_out_and_revokes_the_token() {
    let lab = start(LabOptions {
        apply_bmcs: false,
        ..common::lab_options("unreachable", 1, 1, 0)
    })
    .await;
    let bmc = lab.fleet.bmcs()[0].clone();
    bmc.machines()[0].set_probe(Probe::Never);
    lab.apply_bmcs(0..1, None).await.expect("apply");
    let name = "sim-bmc-0-system-0";
    until_servers(&lab, "the Server booted for discovery", |servers| {
        servers.iter().any(|s| {
            s.name_any() == name
                && s.annotations()
                    .contains_key("ferrometal.dev/discovery-boot-requested")
        })
    })
    .await;
    // The BMC goes away, and the discovery's time is (nearly) up.
    bmc.set_faults(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    });
    set_discovery_timeout(&lab, name, 3).await;
    let servers: Api<Server> = Api::all(lab.client.clone());
    // The timeout is recorded at once; the message names the BMC once the power-off that
    // follows it has failed.
    until_servers(&lab, "the Server timed out without its BMC", |servers| {
        servers.iter().any(|s| {
            s.name_any() == name
                && state(s).as_deref() == Some("Error")
                && discovery_condition(s).is_some_and(|c| {
                    c.1 == "DiscoveryTimedOut" && c.2.contains("while the BMC cannot be called")
                })
        })
    })
    .await;
    let server = servers.get(name).await.expect("server");
    let (_, _, message) = discovery_condition(&server).expect("condition");
    assert!(
        message.contains("while the BMC cannot be called"),
        "{message}"
    );
    let reachable = server
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "BMCReachable"))
        .expect("BMCReachable");
    assert_eq!(reachable.status, "False");
    assert!(server.spec.boot_configuration_ref.is_none());
    // The token lived in the ignition Secret; both it and the boot configuration are gone.
    let sbcs: Api<ferrometal::api::ServerBootConfiguration> =
        Api::namespaced(lab.client.clone(), "default");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(lab.client.clone(), "default");
    assert!(sbcs.get_opt(name).await.expect("get").is_none());
    assert!(secrets.get_opt(name).await.expect("get").is_none());
}

/// A BMC that answers every request after 20 s holds up only its own Server. With a single
/// Server worker — where one reconcile waiting on that BMC would stall everything — the rest
/// of the fleet reaches Available while the slow BMC has taken at most two requests, and the
/// slow Server's discovery ends in its documented state: Error, `DiscoveryTimedOut`.
#[tokio::test]
async fn a_slow_bmc_delays_only_its_own_server() {
    let mut options = LabOptions {
        apply_bmcs: false,
        ..common::lab_options("slow", 5, 1, 0)
    };
    options
        .operator_args
        .extend(["--server-concurrency", "1"].map(String::from));
    let lab = start(options).await;
    let slow = lab.fleet.bmcs()[0].clone();
    // Its machine never reports, so the slow Server cannot finish by its own report.
    slow.machines()[0].set_probe(Probe::Never);
    lab.apply_bmcs(0..5, None).await.expect("apply");
    let name = "sim-bmc-0-system-0";
    until_servers(&lab, "the slow BMC's Server exists", |servers| {
        servers.iter().any(|s| s.name_any() == name)
    })
    .await;
    slow.set_faults(Faults {
        latency: Duration::from_secs(20),
        ..Faults::default()
    });
    let slowed_at = slow.requests();
    set_discovery_timeout(&lab, name, 25).await;
    until_servers(&lab, "the other 4 Servers Available", |servers| {
        servers
            .iter()
            .filter(|s| s.name_any() != name && available(s))
            .count()
            == 4
    })
    .await;
    let taken = slow.requests() - slowed_at;
    assert!(
        taken <= 2,
        "the rest of the fleet waited for the slow BMC: it took {taken} requests (20 s each) before the others were Available"
    );
    until_servers(&lab, "the slow Server timed out", |servers| {
        servers.iter().any(|s| {
            s.name_any() == name
                && state(s).as_deref() == Some("Error")
                && discovery_condition(s).is_some_and(|c| c.1 == "DiscoveryTimedOut")
        })
    })
    .await;
}

/// Peak resident memory of a process in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Bystanders on the boot network hold 2,000 connections open without a word (opened again
/// as the server closes them) and send a request body a byte at a time, while 20 servers
/// discover through the same boot server: every Server reaches Available, the slow body is
/// cut off, and the operator's memory stays bounded. Loopback only; bounded in count (2,000
/// connections) and in time (until the fleet is Available).
#[tokio::test]
async fn a_flood_of_idle_connections_and_a_slow_body_do_not_stop_discovery() {
    const SERVERS: usize = 20;
    const IDLE: usize = 2000;
    let mut options = LabOptions {
        apply_bmcs: false,
        ..common::lab_options("flood", SERVERS, 1, 0)
    };
    options.operator_args.extend(
        [
            "--boot-header-timeout-seconds",
            "2",
            "--boot-body-timeout-seconds",
            "3",
        ]
        .map(String::from),
    );
    let lab = start(options).await;
    let address: std::net::SocketAddr = lab
        .boot_url
        .trim_start_matches("http://")
        .parse()
        .expect("the boot server's address");

    let flooding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let idle = tokio::spawn({
        let (flooding, opened) = (flooding.clone(), opened.clone());
        async move {
            while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                let mut held = Vec::with_capacity(IDLE);
                for _ in 0..IDLE {
                    if let Ok(stream) = tokio::net::TcpStream::connect(address).await {
                        held.push(stream);
                        opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                // The server closes them after its header timeout; open them again.
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        }
    });
    let cut_off = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let slow = tokio::spawn({
        let (flooding, cut_off) = (flooding.clone(), cut_off.clone());
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
                    continue;
                };
                let head = "POST /register HTTP/1.1\r\nHost: boot\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    continue;
                }
                // A byte every 200 ms until the server gives up on the body.
                let mut answer = [0u8; 64];
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if stream.write_all(b" ").await.is_err() {
                        break;
                    }
                    match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut answer))
                        .await
                    {
                        Ok(Ok(_)) | Ok(Err(_)) => break,
                        Err(_) => {}
                    }
                }
                cut_off.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });

    // The flood is in place before the fleet's BMCs are applied.
    for _ in 0..600 {
        if opened.load(std::sync::atomic::Ordering::Relaxed) >= IDLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    lab.apply_bmcs(0..SERVERS, None).await.expect("apply");
    until_servers(&lab, "every Server Available under the flood", |servers| {
        servers.len() == SERVERS && servers.iter().all(available)
    })
    .await;
    // Let the slow sender be cut off at least once even if the fleet was quick.
    for _ in 0..100 {
        if cut_off.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    idle.abort();
    slow.abort();
    let opened = opened.load(std::sync::atomic::Ordering::Relaxed);
    let cut_off = cut_off.load(std::sync::atomic::Ordering::Relaxed);
    let peak = peak_rss_kib(lab.operator_pid().expect("operator pid"));
    eprintln!(
        "flood: {opened} idle connections opened, slow body cut off {cut_off} times, operator peak RSS {} MiB",
        peak / 1024
    );
    assert!(opened >= IDLE, "the flood opened {opened} connections");
    assert!(cut_off >= 1, "the slow body was never cut off");
    // Bounded: idle connections cost a few KiB each, not a buffer per byte promised.
    assert!(
        peak < 512 * 1024,
        "operator peak RSS {} MiB under the flood",
        peak / 1024
    );
}

/// The ignition URL (with its fetch ticket) on the kernel command line of an iPXE script.
fn ignition_url_of(script: &str) -> Option<String> {
    script
        .split_whitespace()
        .find_map(|word| word.strip_prefix("ignition.config.url="))
        .map(str::to_owned)
}

/// A bystander on the boot network (127.0.0.9) against two discovering servers: before the
/// boot window it learns nothing; in the window it reads the script, and
/// - for server 0 it wins the race for the fetch ticket: the machine's own fetch is refused,
///   the Server records both addresses and starts a new attempt, which succeeds, and the
///   stolen registry token is dead by then;
/// - for server 1 it replays the ticket after the machine used it: refused and recorded,
///   and the Server still ends Available.
///
/// The registry refuses the ticket as a token, and no registry token or ticket shows up in
/// the operator's log, an Event or a condition.
#[tokio::test]
async fn a_bystander_on_the_boot_network_gets_nothing_usable() {
    let mut options = LabOptions {
        apply_bmcs: false,
        ..common::lab_options("bystander", 2, 1, 0)
    };
    // The firmware takes a while to start, as real firmware does: the bystander, polling,
    // reaches the script and ignition of server 0 before its machine does.
    options.behaviour.boot_delay = Duration::from_secs(4);
    let lab = start(options).await;
    let bystander = reqwest::Client::builder()
        .local_address("127.0.0.9".parse::<std::net::IpAddr>().expect("ip"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let base = lab.boot_url.clone();
    let uuids: Vec<String> = lab
        .fleet
        .machines()
        .map(|m| m.spec().uuid.clone())
        .collect();
    // Server 1's BMC answers slowly: its power-on comes seconds after its window opened, so
    // the bystander reads its script first (reading takes nothing: the ticket is used at the
    // ignition fetch).
    lab.fleet.bmcs()[1].set_faults(Faults {
        latency: Duration::from_secs(2),
        ..Faults::default()
    });
    // Every registry token the attempts get, to look for them where they must not be.
    let seen_tokens = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let watching = tokio::spawn({
        let (client, seen) = (lab.client.clone(), seen_tokens.clone());
        async move {
            let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client, "default");
            loop {
                if let Ok(list) = secrets.list(&ListParams::default()).await {
                    for secret in list.items {
                        if let Some(token) = secret.data.as_ref().and_then(|d| d.get("boot-token"))
                        {
                            let token = String::from_utf8_lossy(&token.0).into_owned();
                            seen.lock().expect("tokens").insert(token);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    lab.apply_bmcs(0..1, None).await.expect("apply");
    let servers: Api<Server> = Api::all(lab.client.clone());
    let name = |i: usize| format!("sim-bmc-{i}-system-0");
    // In the window: the bystander reads a script (ticket only, no registry token).
    let script_of = |uuid: String| {
        let (bystander, base) = (bystander.clone(), base.clone());
        async move {
            let mut last = String::new();
            for _ in 0..600 {
                match bystander.get(format!("{base}/ipxe/{uuid}")).send().await {
                    Ok(response) if response.status() == 200 => {
                        return response.text().await.expect("script");
                    }
                    Ok(response) => last = response.status().to_string(),
                    Err(error) => last = error.to_string(),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the window of {uuid} never opened (last answer: {last})");
        }
    };
    let token_of = |i: usize| {
        let client = lab.client.clone();
        async move {
            let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client, "default")
                .get(&format!("sim-bmc-{i}-system-0"))
                .await
                .expect("ignition secret");
            String::from_utf8(secret.data.expect("data")["boot-token"].0.clone()).expect("utf-8")
        }
    };
    let script = tokio::time::timeout(Duration::from_secs(40), script_of(uuids[0].clone()))
        .await
        .unwrap_or_else(|_| panic!("operator log:\n{}", lab.operator_log_tail(80)));
    let stolen_token = token_of(0).await;
    assert!(
        !script.contains(&stolen_token),
        "the script carries the registry token"
    );
    let ticket_url = ignition_url_of(&script).expect("ignition URL");
    let ticket = ticket_url
        .split("ticket=")
        .nth(1)
        .expect("ticket")
        .to_owned();
    // The registry does not take the ticket for a token.
    let bootstate = |bearer: String, uuid: String| {
        let (bystander, base) = (bystander.clone(), base.clone());
        async move {
            bystander
                .post(format!("{base}/bootstate"))
                .bearer_auth(bearer)
                .json(&json!({"systemUUID": uuid, "booted": true}))
                .send()
                .await
                .expect("bootstate")
                .status()
                .as_u16()
        }
    };
    assert_eq!(bootstate(ticket.clone(), uuids[0].clone()).await, 403);
    // Server 0: the bystander fetches first.
    let stolen = bystander.get(&ticket_url).send().await.expect("ignition");
    assert_eq!(stolen.status(), 200, "the bystander was not first");
    until_servers(&lab, "server 0 restarted its attempt", |servers| {
        servers
            .iter()
            .any(|s| s.name_any() == name(0) && attempt(s) == 2)
    })
    .await;
    assert_ne!(
        bootstate(stolen_token.clone(), uuids[0].clone()).await,
        200,
        "the stolen registry token outlived its attempt"
    );

    // Before its attempt: a UUID the bystander read off a label is unknown.
    let unknown = |uuid: String| {
        let (bystander, base) = (bystander.clone(), base.clone());
        async move {
            bystander
                .get(format!("{base}/ipxe/{uuid}"))
                .send()
                .await
                .expect("ipxe")
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        unknown(uuids[1].clone()).await,
        404,
        "served before its attempt"
    );
    lab.apply_bmcs(1..2, None).await.expect("apply");

    // Server 1: the machine fetches first; the bystander's copy is then useless.
    let script = script_of(uuids[1].clone()).await;
    let replay = ignition_url_of(&script).expect("ignition URL");
    let machine = lab.fleet.bmcs()[1].machines()[0].clone();
    let mut replayed = None;
    for _ in 0..6000 {
        // Probing: the machine has its ignition (and has not reported yet).
        if machine.phase() == ferrometal_sim::Phase::Probing {
            replayed = Some(
                bystander
                    .get(&replay)
                    .send()
                    .await
                    .expect("replay")
                    .status(),
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        replayed.map(|s| s.as_u16()),
        Some(403),
        "the replay was served"
    );

    until_servers(&lab, "both Servers Available", |servers| {
        servers.len() == 2 && servers.iter().all(available)
    })
    .await;
    // The reports closed both windows.
    for uuid in &uuids {
        assert_eq!(unknown(uuid.clone()).await, 404, "served after its report");
    }
    let listed = servers.list(&ListParams::default()).await.expect("servers");
    // Server 0 restarted once; server 1 only if the refusal was seen before its machine's
    // report completed it (the machine had its ignition either way).
    let attempts: Vec<u32> = listed.items.iter().map(attempt).collect();
    assert_eq!(attempts[0], 2, "server 0 restarted once");
    assert!(attempts[1] <= 2, "server 1: {attempts:?}");
    // The refusals are on record with both addresses.
    let events = Api::<k8s_openapi::api::core::v1::Event>::all(lab.client.clone())
        .list(&ListParams::default())
        .await
        .expect("events");
    let refusals: Vec<(String, String)> = events
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("FetchTicketReused"))
        .map(|e| {
            (
                e.involved_object.name.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default(),
            )
        })
        .collect();
    let refusal_of = |i: usize| {
        refusals
            .iter()
            .find(|(object, _)| *object == name(i))
            .map(|(_, message)| message.clone())
            .unwrap_or_else(|| panic!("no FetchTicketReused event for server {i}: {refusals:?}"))
    };
    let first = refusal_of(0);
    assert!(
        first.contains("used from 127.0.0.9") && first.contains("again from 127.0.0.1"),
        "{first}"
    );
    let log = lab.operator_log();
    assert!(
        log.lines().any(|line| line.contains(&name(1))
            && line.contains("used from 127.0.0.1, then presented again from 127.0.0.9")),
        "server 1's refusal is not in the operator log"
    );
    // No registry token or ticket anywhere people read.
    watching.abort();
    let tokens: Vec<String> = seen_tokens
        .lock()
        .expect("tokens")
        .iter()
        .cloned()
        .collect();
    assert!(
        tokens.len() >= 3,
        "an attempt of each server and server 0's second: {} tokens seen",
        tokens.len()
    );
    let mut secrets = vec![stolen_token, ticket];
    secrets.extend(tokens.iter().cloned());
    secrets.extend(
        tokens
            .iter()
            .map(|token| ferrometal::boot::index::fetch_ticket(token)),
    );
    let published = serde_json::to_string(&(&events.items, &listed.items)).expect("json");
    let sbcs: Api<ferrometal::api::ServerBootConfiguration> =
        Api::namespaced(lab.client.clone(), "default");
    let sbc_status =
        serde_json::to_string(&sbcs.list(&ListParams::default()).await.expect("sbcs").items)
            .expect("json");
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret in the operator log"
        );
        assert!(
            !published.contains(secret.as_str()),
            "a secret in an Event or Server"
        );
        assert!(
            !sbc_status.contains(secret.as_str()),
            "a secret on a configuration"
        );
    }
}

/// Source binding: once ferrometal's DHCP server has leased a machine its address (here
/// 127.2.x.y on loopback; the simulated firmware sends its UUID as option 97 and fetches
/// from the leased address), the script, ignition and registry accept that machine only
/// from there: a bystander at 127.0.0.9 is answered as for an unknown machine, and the
/// configuration records the attempt with both addresses.
#[tokio::test]
async fn a_machine_leased_by_ferrometal_is_served_only_at_its_leased_address() {
    let lab = start(common::lab_options("binding", 1, 1, 1)).await;
    let machine = lab.fleet.machines().next().expect("machine").clone();
    // It never reports, so its boot window stays open for the bystander.
    machine.set_probe(Probe::Never);
    let uuid = machine.spec().uuid.clone();
    let sbcs: Api<ferrometal::api::ServerBootConfiguration> =
        Api::namespaced(lab.client.clone(), "default");
    let condition = |type_: &'static str| {
        let sbcs = sbcs.clone();
        async move {
            let list = sbcs.list(&ListParams::default()).await.ok()?;
            list.items.iter().find_map(|sbc| {
                sbc.status
                    .as_ref()?
                    .conditions
                    .iter()
                    .find(|c| c.type_ == type_)
                    .map(|c| c.message.clone())
            })
        }
    };
    let mut fetched = None;
    for _ in 0..1200 {
        fetched = condition("IgnitionDataFetched").await;
        if fetched.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fetched = fetched.unwrap_or_else(|| {
        panic!(
            "the machine never fetched its ignition; operator log:\n{}",
            lab.operator_log_tail(60)
        )
    });
    assert!(
        fetched.contains("from 127.2."),
        "the machine fetched from its leased address: {fetched}"
    );

    let bystander = reqwest::Client::builder()
        .local_address("127.0.0.9".parse::<std::net::IpAddr>().expect("ip"))
        .build()
        .expect("client");
    let script = bystander
        .get(format!("{}/ipxe/{uuid}", lab.boot_url))
        .send()
        .await
        .expect("ipxe");
    assert_eq!(script.status(), 404, "the bystander got the script");
    let report = bystander
        .post(format!("{}/bootstate", lab.boot_url))
        .bearer_auth("anything")
        .json(&json!({"systemUUID": uuid, "booted": true}))
        .send()
        .await
        .expect("bootstate");
    assert_eq!(report.status(), 404, "the registry heard the bystander");
    let mut refused = None;
    for _ in 0..100 {
        refused = condition("SourceAddressRefused").await;
        if refused.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = refused.expect("the refusal is recorded on the configuration");
    assert!(
        refused.contains("came from 127.0.0.9") && refused.contains("leased 127.2."),
        "{refused}"
    );
}
