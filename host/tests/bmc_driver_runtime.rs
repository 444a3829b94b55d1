//! BMC driver plugins through the real runtime against a real Redfish emulator
//! (sushy-emulator over TLS with Basic auth): `bmc-http` reaches the BMC of the call and
//! nowhere else, credentials stay in the host unless `credentials/reveal` is granted, and
//! calls against slow BMCs end at their deadline.

use std::time::Duration;

use ferrometal::plugins::bmc_driver::{BmcDriverPlugin, DEFAULT_LIMITS};
use ferrometal::plugins::types::{BmcEndpoint, GuestError, PowerState, TlsPolicy};
use ferrometal::plugins::{
    CallErrorKind, Limits, LoadError, PluginMetrics, PluginRuntime, RuntimeConfig,
};
use testenv::{BasicAuth, FakeSystem, SushyEmulator, SushyOptions};
use tokio::sync::OnceCell;

const UUID: &str = "8f0b8c34-2b1e-4c5e-9a61-0d9a3c2f7e01";
const MAC: &str = "52:54:00:12:34:56";

async fn bmc() -> &'static SushyEmulator {
    static BMC: OnceCell<SushyEmulator> = OnceCell::const_new();
    BMC.get_or_init(|| async {
        SushyEmulator::start(SushyOptions {
            systems: vec![FakeSystem {
                uuid: UUID.to_owned(),
                name: "node-a".to_owned(),
                power_state: testenv::PowerState::Off,
                boot_mode: Default::default(),
                macs: vec![MAC.to_owned()],
            }],
            auth: Some(BasicAuth {
                username: "admin".to_owned(),
                password: "redfish-pw".to_owned(),
            }),
            tls: true,
            ..Default::default()
        })
        .await
        .expect("sushy-emulator")
    })
    .await
}

fn endpoint(bmc: &SushyEmulator, password: &str) -> BmcEndpoint {
    BmcEndpoint {
        scheme: "https".to_owned(),
        host: "127.0.0.1".to_owned(),
        port: bmc.port(),
        tls: TlsPolicy::CaBundle(bmc.ca_cert_pem().expect("TLS").to_owned()),
        username: "admin".to_owned(),
        password: password.to_owned(),
        manufacturer_hint: None,
        settings: Vec::new(),
    }
}

fn runtime(granted: &[&str]) -> PluginRuntime {
    PluginRuntime::new(
        RuntimeConfig {
            granted_capabilities: granted.iter().map(|c| (*c).to_owned()).collect(),
            ..RuntimeConfig::default()
        },
        PluginMetrics::default(),
    )
    .expect("engine")
}

fn driver(runtime: &PluginRuntime, name: &str) -> BmcDriverPlugin {
    let path = testenv::components::component(name).expect("built by `make plugins`");
    runtime
        .load_bmc_driver(&path)
        .unwrap_or_else(|error| panic!("load {name}: {error}"))
}

#[tokio::test]
async fn a_driver_probes_a_real_bmc_over_tls_with_basic_auth() {
    let bmc = bmc().await;
    let runtime = runtime(&[]);
    let driver = driver(&runtime, "driver-minimal");
    assert_eq!(driver.info().await.expect("info").name, "driver-minimal");

    let identity = driver
        .probe(&endpoint(bmc, "redfish-pw"))
        .await
        .expect("probe");
    assert_eq!(identity.systems.len(), 1);
    let system = &identity.systems[0];
    assert_eq!(system.uuid.as_deref(), Some(UUID));
    assert_eq!(system.uri, format!("/redfish/v1/Systems/{UUID}"));
    assert_eq!(system.power, PowerState::Off);
    assert_eq!(system.nics.len(), 1);
    assert_eq!(system.nics[0].mac.to_ascii_lowercase(), MAC);

    let power = driver
        .power_state(&endpoint(bmc, "redfish-pw"), &system.uri)
        .await
        .expect("power state");
    assert_eq!(power, PowerState::Off);

    let unsupported = driver
        .set_power(
            &endpoint(bmc, "redfish-pw"),
            &system.uri,
            ferrometal::plugins::types::PowerAction::On,
        )
        .await
        .expect_err("not implemented by this driver");
    assert!(matches!(
        unsupported.kind,
        CallErrorKind::Plugin(GuestError::Unsupported(_))
    ));
}

#[tokio::test]
async fn wrong_credentials_come_back_as_unauthorized() {
    let bmc = bmc().await;
    let runtime = runtime(&[]);
    let driver = driver(&runtime, "driver-minimal");
    let error = driver
        .probe(&endpoint(bmc, "wrong"))
        .await
        .expect_err("401");
    assert!(
        matches!(
            error.kind,
            CallErrorKind::Plugin(GuestError::Unauthorized(_))
        ),
        "{error}"
    );
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_failure() {
    let bmc = bmc().await;
    let runtime = runtime(&[]);
    let driver = driver(&runtime, "driver-minimal");
    let other_ca = testenv::CertificateAuthority::new("someone-else").expect("ca");
    let mut endpoint = endpoint(bmc, "redfish-pw");
    endpoint.tls = TlsPolicy::CaBundle(other_ca.cert_pem());
    let error = driver.probe(&endpoint).await.expect_err("untrusted");
    let text = error.to_string();
    assert!(
        matches!(&error.kind, CallErrorKind::Plugin(GuestError::Unreachable(Some(m))) if m.contains("TLS")),
        "{text}"
    );
}

#[tokio::test]
async fn requests_outside_the_bmc_origin_are_denied_and_counted() {
    let bmc = bmc().await;
    let metrics = PluginMetrics::default();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let runtime = PluginRuntime::new(RuntimeConfig::default(), metrics).expect("engine");
    let driver = driver(&runtime, "driver-escape-origin");
    let error = driver
        .probe(&endpoint(bmc, "redfish-pw"))
        .await
        .expect_err("report");
    let CallErrorKind::Plugin(GuestError::Other(Some(report))) = &error.kind else {
        panic!("unexpected {error}");
    };
    let outcomes: Vec<&str> = report.split(',').collect();
    assert_eq!(outcomes.len(), 7);
    assert!(outcomes.iter().all(|o| *o == "denied"), "{report}");

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains(r#"ferrometal_plugin_capability_denials_total{plugin="driver-escape-origin",capability="bmc-http"} 7"#),
        "{text}"
    );
}

#[tokio::test]
async fn reveal_works_only_when_declared_and_granted() {
    let bmc = bmc().await;
    let path = testenv::components::component("driver-reveal").expect("built");

    let denied = runtime(&[])
        .load_bmc_driver(&path)
        .expect_err("not granted");
    assert!(
        matches!(&denied, LoadError::CapabilityDenied { capability, .. } if capability == "credentials/reveal"),
        "{denied}"
    );

    let granted = runtime(&["credentials/reveal"]);
    let driver = granted.load_bmc_driver(&path).expect("granted");
    let identity = driver
        .probe(&endpoint(bmc, "redfish-pw"))
        .await
        .expect("probe");
    assert_eq!(identity.serial.as_deref(), Some("password-length-10"));

    let undeclared = testenv::components::component("driver-reveal-undeclared").expect("built");
    let error = granted
        .load_bmc_driver(&undeclared)
        .expect_err("uses reveal without declaring it");
    assert!(
        matches!(error, LoadError::CapabilityDenied { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_bmc_that_never_answers_ends_the_call_at_its_deadline() {
    // A real socket that accepts connections and never answers, like a wedged BMC.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let runtime = runtime(&[]);
    let driver = driver(&runtime, "driver-minimal").with_limits(Limits {
        deadline: Duration::from_millis(800),
        ..DEFAULT_LIMITS
    });
    let endpoint = BmcEndpoint {
        scheme: "http".to_owned(),
        host: "127.0.0.1".to_owned(),
        port,
        tls: TlsPolicy::Insecure,
        username: "admin".to_owned(),
        password: "x".to_owned(),
        manufacturer_hint: None,
        settings: Vec::new(),
    };
    let error = driver.probe(&endpoint).await.expect_err("deadline");
    assert!(
        matches!(
            &error.kind,
            CallErrorKind::Timeout(_) | CallErrorKind::Plugin(GuestError::Unreachable(Some(_)))
        ),
        "{error}"
    );
    assert!(error.to_string().contains("timed out"), "{error}");
    silent.abort();
}
