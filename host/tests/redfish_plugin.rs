//! The bundled `redfish` driver through the real runtime against real Redfish services:
//! sushy-emulator (live, TLS + Basic auth, one or many systems, delayed power changes, a
//! minimal feature set) and sushy-static serving DMTF's multi-system mockup.

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
async fn power_on_waits_out_the_emulators_delayed_apply_and_off_works_too() {
    let bmc = bmc(1, FeatureSet::Full).await;
    let redfish = redfish();
    let uri = format!("/redfish/v1/Systems/{}", system(0).uuid);
    let waiting = endpoint(&bmc, "rf-pw", &[("power-wait-seconds", "30")]);
    redfish
        .set_power(&waiting, &uri, PowerAction::On)
        .await
        .expect("power on");
    assert_eq!(
        redfish.power_state(&waiting, &uri).await.expect("state"),
        PowerState::On
    );
    redfish
        .set_power(&waiting, &uri, PowerAction::ForceOff)
        .await
        .expect("force off");
    assert_eq!(
        redfish.power_state(&waiting, &uri).await.expect("state"),
        PowerState::Off
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
async fn the_cli_drives_a_bmc_probe_power_and_pxe_override() {
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
