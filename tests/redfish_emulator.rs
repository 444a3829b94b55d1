//! The real Redfish emulator: sushy-emulator processes started by the harness serve Systems
//! over TLS with HTTP Basic auth and refuse wrong credentials.

use serde_json::Value;
use testenv::{BasicAuth, FakeSystem, PowerState, SushyEmulator, SushyOptions};
use tokio::sync::OnceCell;

mod common;
use common::assert_stopped;

const UUIDS: [&str; 2] = [
    "3f2d9a52-8f4a-4b8e-9d0c-6a1e2b3c4d01",
    "3f2d9a52-8f4a-4b8e-9d0c-6a1e2b3c4d02",
];

fn systems() -> Vec<FakeSystem> {
    UUIDS
        .iter()
        .enumerate()
        .map(|(i, uuid)| FakeSystem {
            uuid: (*uuid).to_owned(),
            name: format!("node-{i}"),
            power_state: if i == 0 {
                PowerState::Off
            } else {
                PowerState::On
            },
            boot_mode: Default::default(),
            macs: vec![
                format!("52:54:00:aa:00:0{i}"),
                format!("52:54:00:bb:00:0{i}"),
            ],
        })
        .collect()
}

/// One TLS + Basic auth BMC shared by the tests of this binary.
async fn bmc() -> &'static SushyEmulator {
    static BMC: OnceCell<SushyEmulator> = OnceCell::const_new();
    BMC.get_or_init(|| async {
        SushyEmulator::start(SushyOptions {
            systems: systems(),
            auth: Some(BasicAuth {
                username: "admin".into(),
                password: "s3cret".into(),
            }),
            tls: true,
            ..Default::default()
        })
        .await
        .expect("sushy-emulator starts")
    })
    .await
}

async fn get(bmc: &SushyEmulator, path: &str, password: Option<&str>) -> reqwest::Response {
    let client = bmc.http_client().expect("client");
    let mut request = client.get(format!("{}{path}", bmc.base_url()));
    if let Some(password) = password {
        request = request.basic_auth("admin", Some(password));
    }
    request.send().await.expect("request")
}

async fn json(bmc: &SushyEmulator, path: &str) -> Value {
    let response = get(bmc, path, Some("s3cret")).await;
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.expect("JSON body")
}

#[tokio::test]
async fn systems_are_read_over_tls_with_basic_auth() {
    let bmc = bmc().await;
    assert!(bmc.base_url().starts_with("https://127.0.0.1:"));

    let collection = json(bmc, "/redfish/v1/Systems").await;
    let mut members: Vec<String> = collection["Members"]
        .as_array()
        .expect("Members")
        .iter()
        .map(|member| member["@odata.id"].as_str().expect("@odata.id").to_owned())
        .collect();
    members.sort();
    let expected: Vec<String> = UUIDS
        .iter()
        .map(|uuid| format!("/redfish/v1/Systems/{uuid}"))
        .collect();
    assert_eq!(members, expected);

    for (system, path) in systems().iter().zip(&members) {
        let body = json(bmc, path).await;
        assert_eq!(body["UUID"], system.uuid.as_str());
        let power = match system.power_state {
            PowerState::On => "On",
            PowerState::Off => "Off",
        };
        assert_eq!(body["PowerState"], power);

        let nics = json(bmc, &format!("{path}/EthernetInterfaces")).await;
        let mut ids: Vec<String> = nics["Members"]
            .as_array()
            .expect("Members")
            .iter()
            .map(|m| {
                m["@odata.id"]
                    .as_str()
                    .expect("id")
                    .rsplit('/')
                    .next()
                    .expect("last")
                    .to_owned()
            })
            .collect();
        ids.sort();
        assert_eq!(ids, system.macs, "EthernetInterface ids are the MACs");
    }
}

#[tokio::test]
async fn a_wrong_password_gets_401() {
    let bmc = bmc().await;
    let response = get(bmc, "/redfish/v1/Systems", Some("wrong")).await;
    assert_eq!(response.status(), 401);
    let response = get(bmc, "/redfish/v1/Systems", None).await;
    assert_eq!(response.status(), 401, "no credentials at all");
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_bmc_ca_is_refused() {
    let bmc = bmc().await;
    let untrusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .expect("client");
    let result = untrusting
        .get(format!("{}/redfish/v1/", bmc.base_url()))
        .send()
        .await;
    assert!(
        result.is_err(),
        "TLS verification fails without the BMC's CA"
    );
}

#[tokio::test]
async fn every_emulator_has_its_own_systems() {
    let emulators = SushyEmulator::start_many(2, |i| SushyOptions {
        systems: vec![FakeSystem {
            uuid: UUIDS[i].to_owned(),
            name: format!("solo-{i}"),
            power_state: PowerState::Off,
            boot_mode: Default::default(),
            macs: vec![format!("52:54:00:cc:00:0{i}")],
        }],
        ..Default::default()
    })
    .await
    .expect("start two emulators");
    for (i, emulator) in emulators.iter().enumerate() {
        assert!(emulator.base_url().starts_with("http://"));
        let client = emulator.http_client().expect("client");
        let body: Value = client
            .get(format!("{}/redfish/v1/Systems", emulator.base_url()))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        assert_eq!(body["Members@odata.count"], 1);
        assert_eq!(
            body["Members"][0]["@odata.id"],
            format!("/redfish/v1/Systems/{}", UUIDS[i])
        );
    }
}

#[tokio::test]
async fn a_dropped_emulator_stops_and_leaves_nothing_behind() {
    let emulator = SushyEmulator::start(SushyOptions {
        systems: vec![FakeSystem {
            uuid: UUIDS[0].to_owned(),
            name: "short-lived".into(),
            power_state: PowerState::Off,
            boot_mode: Default::default(),
            macs: vec!["52:54:00:dd:00:01".into()],
        }],
        ..Default::default()
    })
    .await
    .expect("sushy-emulator starts");
    let (port, pid) = (emulator.port(), emulator.pid());
    let run_dir = emulator.run_dir().to_path_buf();
    assert!(run_dir.exists(), "the emulator has its own state directory");
    drop(emulator);

    assert_stopped(port, &[pid], &run_dir).await;
}
