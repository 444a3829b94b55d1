//! The bundled `redfish` driver through the real runtime against real Redfish services:
//! sushy-emulator (live, TLS + Basic auth, one or many systems, delayed power changes, a
//! minimal feature set), the project's simulator with vendor profiles (sessions, HPE- and
//! Supermicro-X10-shaped boot override rules, injected HTML and 5xx faults), and
//! sushy-static serving DMTF's bladed, tower and local-storage mockups.

use std::time::Duration;

use ferrometal::plugins::bmc_driver::BmcDriverPlugin;
use ferrometal::plugins::types::{
    BmcEndpoint, BootOverride, BootTarget, GuestError, PowerAction, PowerState, TlsPolicy,
};
use ferrometal::plugins::{CallErrorKind, PluginMetrics, PluginRuntime, RuntimeConfig};
use testenv::{BasicAuth, FakeSystem, FeatureSet, SushyEmulator, SushyOptions, SushyStatic};

fn redfish() -> BmcDriverPlugin {
    let runtime = PluginRuntime::new(
        RuntimeConfig {
            granted_capabilities: vec![String::from("credentials/reveal")],
            ..RuntimeConfig::default()
        },
        PluginMetrics::default(),
    )
    .expect("engine");
    let path = testenv::components::component("redfish").expect("built by `make plugins`");
    runtime.load_bmc_driver(&path).expect("load redfish")
}

fn system(i: usize) -> FakeSystem {
    FakeSystem {
        uuid: format!("6c1d7a40-93f1-4a55-8a3e-0000000000{i:02}"),
        name: format!("rf-node-{i}"),
        power_state: testenv::PowerState::Off,
        boot_mode: Default::default(),
        macs: vec![format!("52:54:00:ee:00:{i:02x}")],
    }
}

async fn bmc(systems: usize, feature_set: FeatureSet) -> SushyEmulator {
    SushyEmulator::start(SushyOptions {
        systems: (0..systems).map(system).collect(),
        auth: Some(BasicAuth {
            username: "admin".into(),
            password: "rf-pw".into(),
        }),
        tls: true,
        feature_set,
        listen: None,
    })
    .await
    .expect("sushy-emulator")
}

fn endpoint(bmc: &SushyEmulator, password: &str, settings: &[(&str, &str)]) -> BmcEndpoint {
    BmcEndpoint {
        scheme: "https".into(),
        host: "127.0.0.1".into(),
        port: bmc.port(),
        tls: TlsPolicy::CaBundle(bmc.ca_cert_pem().expect("TLS").to_owned()),
        username: "admin".into(),
        password: password.into(),
        manufacturer_hint: None,
        settings: settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

#[tokio::test]
async fn probe_reads_the_manager_and_every_system_behind_one_bmc() {
    let bmc = bmc(3, FeatureSet::Full).await;
    let identity = redfish()
        .probe(&endpoint(&bmc, "rf-pw", &[]))
        .await
        .expect("probe");
    assert!(identity.manager_uuid.is_some(), "{identity:?}");
    let mut uuids: Vec<String> = identity
        .systems
        .iter()
        .filter_map(|s| s.uuid.clone())
        .collect();
    uuids.sort();
    assert_eq!(uuids, (0..3).map(|i| system(i).uuid).collect::<Vec<_>>());
    for found in &identity.systems {
        let expected = (0..3)
            .map(system)
            .find(|s| Some(&s.uuid) == found.uuid.as_ref())
            .expect("known system");
        assert_eq!(found.power, PowerState::Off);
        assert_eq!(found.nics.len(), 1);
        assert_eq!(found.nics[0].mac, expected.macs[0]);
    }
}

#[tokio::test]
async fn get_system_reads_one_system_of_a_chassis_and_names_an_unknown_one() {
    let bmc = bmc(3, FeatureSet::Full).await;
    let redfish = redfish();
    let endpoint = endpoint(&bmc, "rf-pw", &[]);
    let wanted = system(1);
    let uri = format!("/redfish/v1/Systems/{}", wanted.uuid);
    let found = redfish.system(&endpoint, &uri).await.expect("get-system");
    assert_eq!(found.uri, uri);
    assert_eq!(found.uuid.as_deref(), Some(wanted.uuid.as_str()));
    assert_eq!(found.power, PowerState::Off);
    let macs: Vec<&str> = found.nics.iter().map(|n| n.mac.as_str()).collect();
    assert_eq!(macs, [wanted.macs[0].as_str()]);

    let error = redfish
        .system(&endpoint, "/redfish/v1/Systems/no-such-system")
        .await
        .expect_err("an unknown system");
    let message = error.to_string();
    assert!(message.contains("get-system"), "{message}");
    assert!(
        matches!(
            error.kind,
            CallErrorKind::Plugin(GuestError::BmcFault {
                http_status: Some(404),
                ..
            })
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_wrong_password_is_unauthorized_and_sessions_need_a_session_service() {
    let bmc = bmc(1, FeatureSet::Full).await;
    let redfish = redfish();
    let error = redfish
        .probe(&endpoint(&bmc, "nope", &[]))
        .await
        .expect_err("401");
    assert!(
        matches!(
            error.kind,
            CallErrorKind::Plugin(GuestError::Unauthorized(_))
        ),
        "{error}"
    );

    let error = redfish
        .probe(&endpoint(&bmc, "rf-pw", &[("auth", "session")]))
        .await
        .expect_err("no SessionService in sushy's fake driver");
    assert!(
        error
            .to_string()
            .contains("no SessionService; use auth=basic"),
        "{error}"
    );
}

#[tokio::test]
async fn a_one_time_pxe_override_round_trips_and_reports_what_the_bmc_stored() {
    let bmc = bmc(1, FeatureSet::Full).await;
    let uri = format!("/redfish/v1/Systems/{}", system(0).uuid);
    let stored = redfish()
        .set_boot_override(
            &endpoint(&bmc, "rf-pw", &[]),
            &uri,
            &BootOverride {
                target: BootTarget::Pxe,
                uefi: true,
                persistent: false,
                http_boot_uri: None,
            },
        )
        .await
        .expect("override");
    assert_eq!(stored.target, BootTarget::Pxe);
    assert!(stored.uefi);
    assert!(
        stored.persistent,
        "sushy-emulator stores Once but reads back Continuous; the driver reports what it read"
    );
}

#[tokio::test]
async fn a_minimal_feature_set_still_probes() {
    let bmc = bmc(1, FeatureSet::Minimum).await;
    let identity = redfish()
        .probe(&endpoint(&bmc, "rf-pw", &[]))
        .await
        .expect("probe with missing resources");
    assert_eq!(identity.systems.len(), 1);
    assert_eq!(
        identity.systems[0].uuid.as_deref(),
        Some(system(0).uuid.as_str())
    );
}

#[tokio::test]
async fn dmtfs_bladed_mockup_lists_every_blade() {
    let mockup = testenv::tools::workspace_root().join("tests/data/redfish/public-bladed");
    let service = SushyStatic::start(&mockup).await.expect("sushy-static");
    let endpoint = BmcEndpoint {
        scheme: "http".into(),
        host: "127.0.0.1".into(),
        port: service.port(),
        tls: TlsPolicy::Insecure,
        username: "admin".into(),
        password: "unused".into(),
        manufacturer_hint: None,
        settings: Vec::new(),
    };
    let identity = tokio::time::timeout(Duration::from_secs(60), redfish().probe(&endpoint))
        .await
        .expect("in time")
        .expect("probe");
    let collection: serde_json::Value =
        reqwest::get(format!("{}/redfish/v1/Systems", service.base_url()))
            .await
            .expect("GET")
            .json()
            .await
            .expect("json");
    let expected = collection["Members"].as_array().expect("members").len();
    assert!(expected > 1, "the bladed mockup has several systems");
    assert_eq!(identity.systems.len(), expected);
    assert!(
        identity
            .systems
            .iter()
            .all(|s| s.uri.starts_with("/redfish/v1/Systems/"))
    );
    assert!(
        identity.firmware.is_some(),
        "manager firmware is read: {identity:?}"
    );
}

/// Runs `ferrometal plugin call <redfish> <args>` and returns stdout, failing on error.
fn cli(bmc: &SushyEmulator, dir: &std::path::Path, args: &[&str]) -> String {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, bmc.ca_cert_pem().expect("TLS")).expect("write CA");
    let password = dir.join("password");
    std::fs::write(&password, "rf-pw\n").expect("write password");
    let redfish = testenv::components::component("redfish").expect("built");
    let (operation, rest) = args.split_first().expect("operation");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ferrometal"))
        .args(["plugin", "call"])
        .arg(&redfish)
        .args([
            "--grant",
            "credentials/reveal",
            "--setting",
            "power-wait-seconds=30",
        ])
        .arg(operation)
        .args([
            "--bmc",
            bmc.base_url(),
            "--username",
            "admin",
            "--password-file",
        ])
        .arg(&password)
        .arg("--ca-file")
        .arg(&ca)
        .args(rest)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run ferrometal");
    assert!(
        output.status.success(),
        "ferrometal plugin call {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn the_cli_drives_a_bmc_probe_get_system_power_and_pxe_override() {
    let bmc = bmc(1, FeatureSet::Full).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let uri = format!("/redfish/v1/Systems/{}", system(0).uuid);
    let bmc = std::sync::Arc::new(bmc);
    let run = |args: Vec<String>| {
        let (bmc, path) = (bmc.clone(), path.clone());
        tokio::task::spawn_blocking(move || {
            cli(
                &bmc,
                &path,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            )
        })
    };

    let probe: serde_json::Value =
        serde_json::from_str(&run(vec!["probe".into()]).await.expect("join")).expect("JSON");
    assert_eq!(probe["systems"][0]["uri"], uri.as_str());
    assert!(
        probe["systems"][0]["bootTargets"]
            .as_array()
            .is_some_and(|targets| targets.contains(&serde_json::json!("Pxe"))),
        "{probe}"
    );

    let read: serde_json::Value = serde_json::from_str(
        &run(vec!["get-system".into(), "--system".into(), uri.clone()])
            .await
            .expect("join"),
    )
    .expect("JSON");
    assert_eq!(read["uri"], uri.as_str());
    assert_eq!(read["nics"][0]["mac"], system(0).macs[0].as_str());

    let on = run(vec![
        "set-power".into(),
        "--system".into(),
        uri.clone(),
        "--action".into(),
        "on".into(),
    ]);
    assert_eq!(on.await.expect("join").trim(), "ok");
    let state = run(vec!["power-state".into(), "--system".into(), uri.clone()]);
    assert_eq!(state.await.expect("join").trim(), "\"On\"");

    let off = run(vec![
        "set-power".into(),
        "--system".into(),
        uri.clone(),
        "--action".into(),
        "force-off".into(),
    ]);
    assert_eq!(off.await.expect("join").trim(), "ok");

    let pxe = run(vec![
        "set-boot-override".into(),
        "--system".into(),
        uri.clone(),
        "--target".into(),
        "pxe".into(),
        "--uefi".into(),
    ]);
    let stored: serde_json::Value = serde_json::from_str(&pxe.await.expect("join")).expect("JSON");
    assert_eq!(stored["target"], "Pxe");
}

// ---- vendor-shaped BMCs from the project's simulator ----

/// One simulated BMC (plain HTTP) presenting itself as `profile`, with its scratch space.
async fn sim_bmc(
    first_bmc: usize,
    profile: ferrometal_sim::Profile,
    behaviour: ferrometal_sim::MachineBehaviour,
) -> (ferrometal_sim::Fleet, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet = ferrometal_sim::Fleet::start(ferrometal_sim::FleetOptions {
        spec: ferrometal_sim::FleetSpec {
            seed: 6,
            first_bmc,
            ..ferrometal_sim::FleetSpec::default()
        },
        profile,
        behaviour,
        work_dir: dir.path().join("machines"),
        ..ferrometal_sim::FleetOptions::default()
    })
    .await
    .expect("simulated BMC");
    (fleet, dir)
}

fn sim_endpoint(fleet: &ferrometal_sim::Fleet, settings: &[(&str, &str)]) -> BmcEndpoint {
    let address = fleet.bmcs()[0].address().expect("listening");
    BmcEndpoint {
        scheme: "http".into(),
        host: address.ip().to_string(),
        port: address.port(),
        tls: TlsPolicy::Insecure,
        username: "admin".into(),
        password: ferrometal_sim::FleetSpec::default().password,
        manufacturer_hint: None,
        settings: settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

const SIM_SYSTEM: &str = "/redfish/v1/Systems/1";

fn pxe_once(uefi: bool) -> BootOverride {
    BootOverride {
        target: BootTarget::Pxe,
        uefi,
        persistent: false,
        http_boot_uri: None,
    }
}

fn clear() -> BootOverride {
    BootOverride {
        target: BootTarget::None,
        ..pxe_once(true)
    }
}

#[tokio::test]
async fn sessions_are_shared_within_a_call_and_always_logged_out() {
    let (fleet, _dir) = sim_bmc(
        66_000,
        ferrometal_sim::Profile {
            reset_types: vec!["On", "ForceOff"],
            ..ferrometal_sim::Profile::default()
        },
        Default::default(),
    )
    .await;
    let bmc = &fleet.bmcs()[0];
    let session = sim_endpoint(&fleet, &[("auth", "session")]);
    let redfish = redfish();

    let before = bmc.requests();
    let identity = redfish.probe(&session).await.expect("probe over a session");
    assert_eq!(identity.systems.len(), 1);
    assert!(bmc.requests() - before > 4, "the probe made many requests");
    assert_eq!(bmc.sessions_created(), 1, "one session for the whole call");
    assert_eq!(bmc.open_sessions(), 0, "and it was logged out");

    // The operation fails after the login: the BMC does not offer the reset type.
    let error = redfish
        .set_power(&session, SIM_SYSTEM, PowerAction::PowerCycle)
        .await
        .expect_err("PowerCycle is not offered");
    assert!(
        matches!(
            error.kind,
            CallErrorKind::Plugin(GuestError::Unsupported(_))
        ),
        "{error}"
    );
    // The BMC faults after the login: no such system.
    let error = redfish
        .power_state(&session, "/redfish/v1/Systems/99")
        .await
        .expect_err("404");
    assert!(
        matches!(
            &error.kind,
            CallErrorKind::Plugin(GuestError::BmcFault { http_status: Some(404), message_id: Some(id), .. })
                if id == "Base.1.8.ResourceMissingAtURI"
        ),
        "{error}"
    );
    assert_eq!(bmc.sessions_created(), 3);
    assert_eq!(bmc.open_sessions(), 0, "failed calls log out too");

    let mut wrong = session.clone();
    wrong.password = "nope".into();
    let error = redfish.probe(&wrong).await.expect_err("bad password");
    assert!(
        matches!(
            error.kind,
            CallErrorKind::Plugin(GuestError::Unauthorized(_))
        ),
        "{error}"
    );
    assert_eq!(bmc.open_sessions(), 0);
}

#[tokio::test]
async fn an_hpe_like_bmc_is_cleared_with_a_pxe_target_and_never_gets_a_mode() {
    let (fleet, _dir) = sim_bmc(
        66_010,
        ferrometal_sim::Profile::hpe_ilo5(),
        Default::default(),
    )
    .await;
    let machine = &fleet.bmcs()[0].machines()[0];
    let endpoint = sim_endpoint(&fleet, &[("auth", "session")]);
    let redfish = redfish();
    // Legacy differs from the stored UEFI mode; iLO 5 refuses writing the mode (400), so
    // the driver must leave it out.
    let stored = redfish
        .set_boot_override(&endpoint, SIM_SYSTEM, &pxe_once(false))
        .await
        .expect("one-time PXE on iLO 5");
    assert_eq!(stored.target, BootTarget::Pxe);
    assert!(!stored.persistent);
    assert!(stored.uefi, "the BMC kept its UEFI mode and says so");

    // iLO refuses Disabled with target None (400 iLO.2.30.UnsupportedOperation).
    let stored = redfish
        .set_boot_override(&endpoint, SIM_SYSTEM, &clear())
        .await
        .expect("clearing on HPE");
    assert_eq!(stored.target, BootTarget::None);
    let settings = machine.boot_settings();
    assert_eq!(
        (settings.enabled.as_str(), settings.target.as_str()),
        ("Disabled", "Pxe")
    );
    assert_eq!(fleet.bmcs()[0].open_sessions(), 0);
}

#[tokio::test]
async fn a_bmc_without_a_boot_mode_still_takes_a_one_time_override() {
    let (fleet, _dir) = sim_bmc(
        66_020,
        ferrometal_sim::Profile::supermicro_x10(),
        Default::default(),
    )
    .await;
    let stored = redfish()
        .set_boot_override(&sim_endpoint(&fleet, &[]), SIM_SYSTEM, &pxe_once(true))
        .await
        .expect("the PATCH names no mode");
    assert_eq!(stored.target, BootTarget::Pxe);
    assert!(!stored.persistent, "the simulator stores Once as sent");
    let settings = fleet.bmcs()[0].machines()[0].boot_settings();
    assert_eq!(
        (settings.target.as_str(), settings.enabled.as_str()),
        ("Pxe", "Once")
    );
}

#[tokio::test]
async fn html_bodies_and_5xx_are_bmc_faults_and_the_next_call_works() {
    let (fleet, _dir) = sim_bmc(
        66_030,
        ferrometal_sim::Profile::default(),
        Default::default(),
    )
    .await;
    let bmc = &fleet.bmcs()[0];
    let endpoint = sim_endpoint(&fleet, &[]);
    let redfish = redfish();
    for (faults, status, id) in [
        (
            ferrometal_sim::Faults {
                server_error_burst: 1,
                ..Default::default()
            },
            500,
            Some("Base.1.8.InternalError"),
        ),
        (
            ferrometal_sim::Faults {
                server_error_rate: 1.0,
                ..Default::default()
            },
            503,
            Some("Base.1.8.ServiceTemporarilyUnavailable"),
        ),
        (
            ferrometal_sim::Faults {
                html_rate: 1.0,
                ..Default::default()
            },
            200,
            None,
        ),
    ] {
        bmc.set_faults(faults);
        let error = redfish.probe(&endpoint).await.expect_err("fault");
        match &error.kind {
            CallErrorKind::Plugin(GuestError::BmcFault {
                http_status,
                message_id,
                message,
            }) => {
                assert_eq!(*http_status, Some(status), "{error}");
                assert_eq!(message_id.as_deref(), id, "{error}");
                if id.is_none() {
                    assert!(message.contains("Session expired"), "{message}");
                }
            }
            other => panic!("not a BMC fault: {other:?}"),
        }
        bmc.set_faults(ferrometal_sim::Faults::default());
        let identity = redfish.probe(&endpoint).await.expect("the next call works");
        assert_eq!(identity.systems.len(), 1);
    }
}

#[tokio::test]
async fn a_uefi_http_override_round_trips_with_its_uri_and_clears() {
    let (fleet, _dir) = sim_bmc(
        66_040,
        ferrometal_sim::Profile::default(),
        Default::default(),
    )
    .await;
    let endpoint = sim_endpoint(&fleet, &[]);
    let redfish = redfish();
    let uri = "http://boot.example/uki.efi";
    let stored = redfish
        .set_boot_override(
            &endpoint,
            SIM_SYSTEM,
            &BootOverride {
                target: BootTarget::UefiHttp,
                http_boot_uri: Some(uri.into()),
                ..pxe_once(true)
            },
        )
        .await
        .expect("HTTP boot");
    assert_eq!(stored.target, BootTarget::UefiHttp);
    assert_eq!(stored.http_boot_uri.as_deref(), Some(uri));
    let stored = redfish
        .set_boot_override(&endpoint, SIM_SYSTEM, &clear())
        .await
        .expect("clear");
    assert_eq!(stored.target, BootTarget::None);
    assert_eq!(
        fleet.bmcs()[0].machines()[0].boot_settings().enabled,
        "Disabled"
    );
}

#[tokio::test]
async fn the_power_wait_ends_within_its_budget_and_still_logs_out() {
    let (fleet, _dir) = sim_bmc(
        66_050,
        ferrometal_sim::Profile::default(),
        ferrometal_sim::MachineBehaviour {
            power_delay: Duration::from_secs(120),
            ..Default::default()
        },
    )
    .await;
    let redfish = redfish();
    let error = redfish
        .validate_settings(&[("power-wait-seconds".into(), "60".into())])
        .await
        .expect_err("past the call deadline");
    assert!(error.to_string().contains("0 to 45"), "{error}");

    let endpoint = sim_endpoint(&fleet, &[("auth", "session"), ("power-wait-seconds", "3")]);
    let error = redfish
        .set_power(&endpoint, SIM_SYSTEM, PowerAction::On)
        .await
        .expect_err("the machine takes two minutes");
    // The driver's own answer, not the host's Timeout: the wait ended inside the call.
    assert!(
        matches!(&error.kind, CallErrorKind::Plugin(GuestError::Other(Some(m))) if m.contains("still Off")),
        "{error}"
    );
    assert_eq!(fleet.bmcs()[0].open_sessions(), 0);
}

/// The probe and `get-system` of one simulated server with two NICs, on the same BMC with
/// and without `$expand` in its root: the expanded GETs reach the BMC as the driver wrote
/// them (a mangled query would be refused and read plainly, at a cost), read the same, and
/// save a request per collection member.
#[tokio::test]
async fn an_advertised_expand_reads_the_same_with_fewer_requests() {
    let redfish = redfish();
    let mut reads = Vec::new();
    for expand_query in [true, false] {
        let (fleet, _dir) = sim_bmc(
            66_060,
            ferrometal_sim::Profile {
                expand_query,
                ..ferrometal_sim::Profile::default()
            },
            Default::default(),
        )
        .await;
        let bmc = &fleet.bmcs()[0];
        let endpoint = sim_endpoint(&fleet, &[]);
        let before = bmc.requests();
        let identity = redfish.probe(&endpoint).await.expect("probe");
        let probe = bmc.requests() - before;
        let before = bmc.requests();
        let system = redfish
            .system(&endpoint, SIM_SYSTEM)
            .await
            .expect("get-system");
        let get_system = bmc.requests() - before;
        let spec = bmc.machines()[0].spec();
        assert_eq!(system.nics.len(), 2);
        assert!(system.inventory.is_some());
        eprintln!(
            "expand {expand_query}: probe {probe} requests, get-system {get_system} ({} disks)",
            spec.disks.len()
        );
        reads.push((identity, system, probe, get_system, spec.disks.len()));
    }
    let (expanded, plain) = (&reads[0], &reads[1]);
    assert_eq!(expanded.0, plain.0, "the probe reads the same");
    assert_eq!(expanded.1, plain.1, "get-system reads the same");
    // Root, Systems with the system inline, its NICs inline, the manager.
    assert_eq!((expanded.2, plain.2), (4, 7), "probe requests");
    // Root, system, NICs, processors, memory, storage, a GET per drive, two PCIe devices and
    // their functions (linked from the system, not collections) against a GET per member.
    let disks = u64::try_from(expanded.4).expect("fits");
    assert_eq!(expanded.3, 10 + disks, "get-system requests with $expand");
    assert!(
        plain.3 >= expanded.3 + 6,
        "{} against {}",
        plain.3,
        expanded.3
    );
}

// ---- sushy-emulator: power actions and boot override edges ----

#[tokio::test]
async fn power_actions_wait_out_the_emulators_delayed_apply() {
    let bmc = bmc(1, FeatureSet::Full).await;
    let redfish = redfish();
    let uri = format!("/redfish/v1/Systems/{}", system(0).uuid);
    let waiting = endpoint(&bmc, "rf-pw", &[("power-wait-seconds", "40")]);
    for (action, settled) in [
        (PowerAction::On, PowerState::On),
        (PowerAction::GracefulRestart, PowerState::On),
        (PowerAction::GracefulShutdown, PowerState::Off),
        (PowerAction::On, PowerState::On),
        (PowerAction::ForceOff, PowerState::Off),
    ] {
        redfish
            .set_power(&waiting, &uri, action)
            .await
            .unwrap_or_else(|error| panic!("{action:?}: {error}"));
        assert_eq!(
            redfish.power_state(&waiting, &uri).await.expect("state"),
            settled,
            "after {action:?}"
        );
    }
}

#[tokio::test]
async fn uefi_http_on_the_emulator_leaves_the_uri_out_and_reports_its_fallback() {
    let bmc = bmc(1, FeatureSet::Full).await;
    let redfish = redfish();
    let uri = format!("/redfish/v1/Systems/{}", system(0).uuid);
    let endpoint = endpoint(&bmc, "rf-pw", &[]);
    // With the URI sushy-emulator answers 400 (it tries to download it); the quirk leaves
    // it out, and the emulator then stores Pxe, which is what the driver reports.
    let stored = redfish
        .set_boot_override(
            &endpoint,
            &uri,
            &BootOverride {
                target: BootTarget::UefiHttp,
                http_boot_uri: Some("http://127.0.0.1:9/uki.efi".into()),
                ..pxe_once(true)
            },
        )
        .await
        .expect("HTTP boot without the URI");
    assert_eq!(stored.target, BootTarget::Pxe);
    assert_eq!(stored.http_boot_uri, None);
    let stored = redfish
        .set_boot_override(&endpoint, &uri, &clear())
        .await
        .expect("clear");
    assert_eq!(stored.target, BootTarget::None);
}

// ---- DMTF mockups of other shapes under sushy-static ----

async fn probe_mockup(name: &str) -> ferrometal::plugins::types::Identity {
    let mockup = testenv::tools::workspace_root()
        .join("tests/data/redfish")
        .join(name);
    let service = SushyStatic::start(&mockup).await.expect("sushy-static");
    let endpoint = BmcEndpoint {
        scheme: "http".into(),
        host: "127.0.0.1".into(),
        port: service.port(),
        tls: TlsPolicy::Insecure,
        username: "admin".into(),
        password: "unused".into(),
        manufacturer_hint: None,
        settings: Vec::new(),
    };
    tokio::time::timeout(Duration::from_secs(60), redfish().probe(&endpoint))
        .await
        .expect("in time")
        .expect("probe")
}

#[tokio::test]
async fn dmtfs_tower_and_local_storage_mockups_probe_as_declared() {
    for (name, uri, model, firmware, macs) in [
        (
            "public-tower",
            "/redfish/v1/Systems/437XR1238R2",
            "3500",
            "1.45.455b66-rev4",
            &["fb:aa:1d:4e:d0:7a", "fb:aa:1d:4e:d0:7c"][..],
        ),
        (
            "public-localstorage",
            "/redfish/v1/Systems/437XR1138R2",
            "3500RX",
            "1.00",
            // The second NIC's MACAddress differs from its permanent one; the current wins.
            &["12:44:6a:3b:04:11", "aa:bb:cc:dd:ee:00"][..],
        ),
    ] {
        let identity = probe_mockup(name).await;
        assert_eq!(identity.firmware.as_deref(), Some(firmware), "{name}");
        assert_eq!(
            identity.manager_uuid.as_deref(),
            Some("58893887-8974-2487-2389-841168418919"),
            "{name}"
        );
        assert_eq!(identity.systems.len(), 1, "{name}");
        let system = &identity.systems[0];
        assert_eq!(system.uri, uri);
        assert_eq!(
            system.uuid.as_deref(),
            Some("38947555-7742-3448-3784-823347823834")
        );
        assert_eq!(system.manufacturer.as_deref(), Some("Contoso"));
        assert_eq!(system.model.as_deref(), Some(model));
        assert_eq!(system.power, PowerState::On);
        let mut found: Vec<&str> = system.nics.iter().map(|n| n.mac.as_str()).collect();
        found.sort();
        assert_eq!(found, macs, "{name}");
        assert!(
            system.boot_targets.iter().any(|t| t == "Pxe")
                && system.boot_targets.iter().any(|t| t == "UefiTarget"),
            "{name}: {:?}",
            system.boot_targets
        );
    }
}

/// Every file of the tree under `root`, relative, sorted.
fn tree(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path.strip_prefix(root).expect("inside").to_path_buf());
            }
        }
    }
    files.sort();
    files
}

#[test]
fn the_mockup_copies_match_the_shared_originals() {
    let shared = std::path::Path::new("/work/shared/fixtures/redfish");
    if !shared.is_dir() {
        eprintln!(
            "no shared fixtures at {}; nothing to compare",
            shared.display()
        );
        return;
    }
    let copies = testenv::tools::workspace_root().join("tests/data/redfish");
    for name in ["public-bladed", "public-tower", "public-localstorage"] {
        let (original, copy) = (shared.join(name), copies.join(name));
        let files = tree(&original);
        assert_eq!(files, tree(&copy), "{name}: the file lists differ");
        for file in files {
            assert!(
                std::fs::read(original.join(&file)).expect("original")
                    == std::fs::read(copy.join(&file)).expect("copy"),
                "{name}/{} differs from the shared original",
                file.display()
            );
        }
    }
}
