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
        matches!(error, LoadError::UndeclaredCapability { .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("uses `credentials/reveal` without declaring it"),
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

/// A loopback HTTP/1.1 server that answers every request with `body` after `delay` and
/// records how many requests it served at once: an instrument for what the host sends, used
/// where sushy-emulator cannot show it (concurrency, oversized bodies).
struct Observer {
    port: u16,
    counters: Counters,
    task: tokio::task::JoinHandle<()>,
}

/// Requests in flight now and at most; observers may share one to count across servers.
#[derive(Clone, Default)]
struct Counters {
    current: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    max: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Observer {
    async fn start(delay: Duration, body: Vec<u8>, counters: Counters) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let body = Arc::new(body);
        let (current, max) = (counters.current.clone(), counters.max.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (current, max, body) = (current.clone(), max.clone(), body.clone());
                tokio::spawn(async move {
                    loop {
                        let mut request = Vec::new();
                        let mut buffer = [0u8; 1024];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match socket.read(&mut buffer).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buffer[..n]),
                            }
                        }
                        let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        current.fetch_sub(1, Ordering::SeqCst);
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        );
                        if socket.write_all(head.as_bytes()).await.is_err()
                            || socket.write_all(&body).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            port,
            counters,
            task,
        }
    }

    fn endpoint(&self) -> BmcEndpoint {
        BmcEndpoint {
            scheme: "http".to_owned(),
            host: "127.0.0.1".to_owned(),
            port: self.port,
            tls: TlsPolicy::Insecure,
            username: "admin".to_owned(),
            password: "x".to_owned(),
            manufacturer_hint: None,
            settings: Vec::new(),
        }
    }

    fn max_in_flight(&self) -> usize {
        self.counters.max.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn one_bmc_gets_one_driver_call_at_a_time_while_others_run_in_parallel() {
    let empty = br#"{"Members":[]}"#.to_vec();
    let first = Observer::start(
        Duration::from_millis(200),
        empty.clone(),
        Counters::default(),
    )
    .await;
    let second = Observer::start(
        Duration::from_millis(200),
        empty.clone(),
        Counters::default(),
    )
    .await;
    let runtime = runtime(&[]);
    let driver = driver(&runtime, "driver-minimal");
    let (a, b) = (first.endpoint(), second.endpoint());
    let calls = [&a, &a, &a, &b, &b, &b].map(|endpoint| driver.probe(endpoint));
    for result in futures::future::join_all(calls).await {
        assert!(result.expect("probe").systems.is_empty());
    }
    assert_eq!(first.max_in_flight(), 1, "calls to one BMC never overlap");
    assert_eq!(second.max_in_flight(), 1, "calls to one BMC never overlap");

    // Two BMCs counted together: their calls do overlap.
    let shared = Counters::default();
    let one = Observer::start(Duration::from_millis(300), empty.clone(), shared.clone()).await;
    let two = Observer::start(Duration::from_millis(300), empty, shared.clone()).await;
    let (one_bmc, two_bmc) = (one.endpoint(), two.endpoint());
    let (x, y) = tokio::join!(driver.probe(&one_bmc), driver.probe(&two_bmc));
    x.expect("probe");
    y.expect("probe");
    assert_eq!(
        one.max_in_flight(),
        2,
        "different BMCs are served in parallel"
    );
}

#[tokio::test]
async fn a_response_over_8_mib_is_refused() {
    let huge = Observer::start(
        Duration::ZERO,
        vec![b' '; (8 << 20) + 1],
        Counters::default(),
    )
    .await;
    let runtime = runtime(&[]);
    let driver = driver(&runtime, "driver-minimal");
    let error = driver.probe(&huge.endpoint()).await.expect_err("too large");
    assert!(
        matches!(&error.kind, CallErrorKind::Plugin(GuestError::BmcFault { message, .. }) if message.contains("larger than 8388608 bytes")),
        "{error}"
    );
}
