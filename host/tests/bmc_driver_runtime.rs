//! BMC driver plugins through the real runtime against a real Redfish emulator
//! (sushy-emulator over TLS with Basic auth): `bmc-http` reaches the BMC of the call and
//! nowhere else, credentials stay in the host unless `credentials/reveal` is granted, and
//! calls against slow BMCs end at their deadline.

use std::time::Duration;

use ferrometal::plugins::bmc_driver::{BmcDriverPlugin, DEFAULT_LIMITS};
use ferrometal::plugins::types::{BmcEndpoint, GuestError, PowerState, TlsPolicy};
use ferrometal::plugins::{
    CallError, CallErrorKind, Limits, LoadError, PluginMetrics, PluginRuntime, RuntimeConfig,
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
    // Denials are answers, not crashes: the same plugin and others keep being served.
    assert_eq!(
        driver.info().await.expect("info").name,
        "driver-escape-origin"
    );
    let identity = crate::driver(&runtime, "driver-minimal")
        .probe(&endpoint(bmc, "redfish-pw"))
        .await
        .expect("probe after the denials");
    assert_eq!(identity.systems.len(), 1);
}

#[tokio::test]
async fn reveal_works_only_when_declared_and_granted() {
    let bmc = bmc().await;
    let path = testenv::components::component("driver-reveal").expect("built");

    let metrics = PluginMetrics::default();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let ungranted = PluginRuntime::new(RuntimeConfig::default(), metrics).expect("engine");
    let denied = ungranted.load_bmc_driver(&path).expect_err("not granted");
    assert!(
        matches!(&denied, LoadError::CapabilityDenied { capability, .. } if capability == "credentials/reveal"),
        "{denied}"
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains(r#"ferrometal_plugin_capability_denials_total{plugin="driver-reveal",capability="credentials/reveal"} 1"#),
        "{text}"
    );
    // The runtime that refused it keeps loading and serving other drivers.
    let identity = driver(&ungranted, "driver-minimal")
        .probe(&endpoint(bmc, "redfish-pw"))
        .await
        .expect("probe after the refusal");
    assert_eq!(identity.systems.len(), 1);

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

/// A real socket that accepts connections and never answers: a wedged BMC.
struct SilentBmc {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl SilentBmc {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Self { port, task }
    }

    fn endpoint(&self) -> BmcEndpoint {
        http_endpoint(self.port)
    }
}

impl Drop for SilentBmc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn http_endpoint(port: u16) -> BmcEndpoint {
    BmcEndpoint {
        scheme: "http".to_owned(),
        host: "127.0.0.1".to_owned(),
        port,
        tls: TlsPolicy::Insecure,
        username: "admin".to_owned(),
        password: "x".to_owned(),
        manufacturer_hint: None,
        settings: Vec::new(),
    }
}

fn with_deadline(driver: BmcDriverPlugin, deadline: Duration) -> BmcDriverPlugin {
    driver.with_limits(Limits {
        deadline,
        ..DEFAULT_LIMITS
    })
}

/// A well-behaved driver call on `runtime` against a fresh answering BMC succeeds.
async fn still_serves(runtime: &PluginRuntime) {
    let healthy = Observer::start(
        Duration::ZERO,
        br#"{"Members":[]}"#.to_vec(),
        Counters::default(),
    )
    .await;
    let identity = driver(runtime, "driver-minimal")
        .probe(&healthy.endpoint())
        .await
        .expect("the host keeps serving other calls");
    assert!(identity.systems.is_empty());
}

#[tokio::test]
async fn a_bmc_that_never_answers_ends_the_call_at_its_deadline() {
    let silent = SilentBmc::start().await;
    let runtime = runtime(&[]);
    let driver = with_deadline(
        driver(&runtime, "driver-minimal"),
        Duration::from_millis(800),
    );
    let error = driver
        .probe(&silent.endpoint())
        .await
        .expect_err("deadline");
    assert!(
        matches!(&error.kind, CallErrorKind::Timeout(d) if *d == Duration::from_millis(800)),
        "{error}"
    );
    assert!(error.to_string().contains("timed out"), "{error}");
    // Ended by the deadline inside the call, not by the outer timeout's margin.
    assert_eq!(runtime.metrics().calls_abandoned(), 0);
    still_serves(&runtime).await;
}

#[tokio::test]
async fn a_driver_that_keeps_calling_its_bmc_past_its_deadline_is_ended_with_a_timeout() {
    // The fixture loops on requests and would report success with the first error it got:
    // only the host ending the call turns it into a timeout.
    let slow = Observer::start(
        Duration::from_millis(150),
        br#"{}"#.to_vec(),
        Counters::default(),
    )
    .await;
    let silent = SilentBmc::start().await;
    let runtime = runtime(&[]);
    let deadline = Duration::from_millis(700);
    let stubborn = with_deadline(driver(&runtime, "driver-slow-host-call"), deadline);

    for endpoint in [slow.endpoint(), silent.endpoint()] {
        let started = std::time::Instant::now();
        let error = stubborn.probe(&endpoint).await.expect_err("past deadline");
        assert!(
            matches!(&error.kind, CallErrorKind::Timeout(d) if *d == deadline),
            "{error}"
        );
        assert!(
            started.elapsed() >= deadline,
            "not ended before its deadline"
        );
        assert_eq!(
            runtime.metrics().calls_abandoned(),
            0,
            "ended by the deadline inside the call, not by the outer timeout"
        );
    }
    assert!(
        slow.served() >= 3,
        "the plugin kept calling: {}",
        slow.served()
    );
    // The same plugin still serves a call that needs no BMC, and other plugins serve theirs.
    assert_eq!(
        stubborn.info().await.expect("info").name,
        "driver-slow-host-call"
    );
    still_serves(&runtime).await;
}

/// A loopback HTTP/1.1 server that answers every request with one reply after `delay` and
/// records how many requests it served, and how many at once: a misbehaving or instrumented
/// BMC for what sushy-emulator cannot show (concurrency, oversized or streamed bodies,
/// redirects).
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
    served: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// What an [`Observer`] answers.
#[derive(Clone)]
struct Reply {
    /// Status line and extra header lines, e.g. `302 Found\r\nLocation: /x`.
    status_and_headers: String,
    body: Vec<u8>,
    /// Send the body chunked, without `Content-Length`, in pieces as a streaming BMC would.
    chunked: bool,
}

impl Reply {
    fn json(body: Vec<u8>) -> Self {
        Self {
            status_and_headers: String::from("200 OK\r\nContent-Type: application/json"),
            body,
            chunked: false,
        }
    }
}

impl Observer {
    async fn start(delay: Duration, body: Vec<u8>, counters: Counters) -> Self {
        Self::start_with(delay, Reply::json(body), counters).await
    }

    async fn start_with(delay: Duration, reply: Reply, counters: Counters) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let reply = Arc::new(reply);
        let (current, max, served) = (
            counters.current.clone(),
            counters.max.clone(),
            counters.served.clone(),
        );
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (current, max, served, reply) =
                    (current.clone(), max.clone(), served.clone(), reply.clone());
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
                        served.fetch_add(1, Ordering::SeqCst);
                        let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        current.fetch_sub(1, Ordering::SeqCst);
                        let framing = if reply.chunked {
                            String::from("Transfer-Encoding: chunked")
                        } else {
                            format!("Content-Length: {}", reply.body.len())
                        };
                        let head =
                            format!("HTTP/1.1 {}\r\n{framing}\r\n\r\n", reply.status_and_headers);
                        if socket.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let written = if reply.chunked {
                            let mut ok = true;
                            for piece in reply.body.chunks(64 << 10) {
                                let frame = format!("{:x}\r\n", piece.len());
                                ok = socket.write_all(frame.as_bytes()).await.is_ok()
                                    && socket.write_all(piece).await.is_ok()
                                    && socket.write_all(b"\r\n").await.is_ok();
                                if !ok {
                                    break;
                                }
                            }
                            ok && socket.write_all(b"0\r\n\r\n").await.is_ok()
                        } else {
                            socket.write_all(&reply.body).await.is_ok()
                        };
                        if !written {
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

    fn served(&self) -> usize {
        self.counters
            .served
            .load(std::sync::atomic::Ordering::SeqCst)
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

#[tokio::test]
async fn a_streamed_response_over_8_mib_without_content_length_is_refused() {
    let streaming = Observer::start_with(
        Duration::ZERO,
        Reply {
            chunked: true,
            ..Reply::json(vec![b' '; (8 << 20) + 1])
        },
        Counters::default(),
    )
    .await;
    let runtime = runtime(&[]);
    let driver = driver(&runtime, "driver-minimal");
    let error = driver
        .probe(&streaming.endpoint())
        .await
        .expect_err("too large");
    assert!(
        matches!(&error.kind, CallErrorKind::Plugin(GuestError::BmcFault { message, .. }) if message.contains("larger than 8388608 bytes")),
        "{error}"
    );
    still_serves(&runtime).await;
}

#[tokio::test]
async fn redirects_reach_the_plugin_and_are_not_followed() {
    // Where the redirect points: another origin serving a valid (empty) collection.
    let elsewhere = Observer::start(
        Duration::ZERO,
        br#"{"Members":[]}"#.to_vec(),
        Counters::default(),
    )
    .await;
    for location in [
        format!("http://127.0.0.1:{}/redfish/v1/Systems", elsewhere.port),
        String::from("/redfish/v1/Other"),
    ] {
        let redirecting = Observer::start_with(
            Duration::ZERO,
            Reply {
                status_and_headers: format!("302 Found\r\nLocation: {location}"),
                body: b"moved".to_vec(),
                chunked: false,
            },
            Counters::default(),
        )
        .await;
        let runtime = runtime(&[]);
        let error = driver(&runtime, "driver-minimal")
            .probe(&redirecting.endpoint())
            .await
            .expect_err("a 302 is not a collection");
        assert!(
            matches!(
                &error.kind,
                CallErrorKind::Plugin(GuestError::BmcFault {
                    http_status: Some(302),
                    ..
                })
            ),
            "{location}: {error}"
        );
        assert_eq!(
            redirecting.served(),
            1,
            "{location}: no request was repeated"
        );
    }
    assert_eq!(
        elsewhere.served(),
        0,
        "the host never followed the redirect"
    );
}

#[tokio::test]
async fn insecure_tls_must_be_asked_for_explicitly() {
    let bmc = bmc().await;
    let runtime = runtime(&[]);
    let driver = driver(&runtime, "driver-minimal");
    // `ferrometal run` without --bmc-ca-file or --bmc-insecure-tls trusts no certificate.
    let mut endpoint = endpoint(bmc, "redfish-pw");
    endpoint.tls = TlsPolicy::CaBundle(String::new());
    let error = driver.probe(&endpoint).await.expect_err("untrusted");
    assert!(
        matches!(&error.kind, CallErrorKind::Plugin(GuestError::Unreachable(Some(m))) if m.contains("TLS")),
        "{error}"
    );
    endpoint.tls = TlsPolicy::Insecure;
    let identity = driver.probe(&endpoint).await.expect("insecure TLS");
    assert_eq!(identity.systems[0].uuid.as_deref(), Some(UUID));
}

fn capped_runtime(max_concurrent_calls: usize) -> PluginRuntime {
    PluginRuntime::new(
        RuntimeConfig {
            max_concurrent_calls,
            ..RuntimeConfig::default()
        },
        PluginMetrics::default(),
    )
    .expect("engine")
}

#[tokio::test]
async fn the_global_cap_bounds_calls_in_flight() {
    let shared = Counters::default();
    let mut bmcs = Vec::new();
    for _ in 0..6 {
        bmcs.push(
            Observer::start(
                Duration::from_millis(250),
                br#"{"Members":[]}"#.to_vec(),
                shared.clone(),
            )
            .await,
        );
    }
    let runtime = capped_runtime(2);
    let driver = driver(&runtime, "driver-minimal");
    let endpoints: Vec<BmcEndpoint> = bmcs.iter().map(Observer::endpoint).collect();
    let calls = futures::future::join_all(endpoints.iter().map(|e| driver.probe(e)));
    let sample = async {
        tokio::time::sleep(Duration::from_millis(120)).await;
        runtime.metrics().calls_in_flight()
    };
    let (results, in_flight) = tokio::join!(calls, sample);
    for result in results {
        result.expect("probe");
    }
    assert_eq!(in_flight, 2, "the gauge shows the cap reached");
    assert_eq!(
        bmcs[0].max_in_flight(),
        2,
        "six BMCs, but two calls at a time"
    );
    assert_eq!(runtime.metrics().calls_in_flight(), 0);
}

#[tokio::test]
async fn calls_queued_behind_a_wedged_bmc_do_not_starve_other_bmcs() {
    let wedged = SilentBmc::start().await;
    let healthy = Observer::start(
        Duration::ZERO,
        br#"{"Members":[]}"#.to_vec(),
        Counters::default(),
    )
    .await;
    let runtime = capped_runtime(2);
    let stuck = with_deadline(driver(&runtime, "driver-minimal"), Duration::from_secs(5));
    let queued: Vec<_> = (0..4)
        .map(|_| {
            let (driver, endpoint) = (stuck.clone(), wedged.endpoint());
            tokio::spawn(async move { driver.probe(&endpoint).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // One call holds the wedged BMC; the three queued behind it hold no global slot.
    assert_eq!(runtime.metrics().calls_in_flight(), 1);
    // The wedged calls end only at their 5 s deadline: a starved call would wait for them.
    let identity = tokio::time::timeout(
        Duration::from_secs(4),
        driver(&runtime, "driver-minimal").probe(&healthy.endpoint()),
    )
    .await
    .expect("not starved by the wedged BMC's queue")
    .expect("probe");
    assert!(identity.systems.is_empty());
    for call in &queued {
        assert!(!call.is_finished(), "still waiting on the wedged BMC");
    }
    for call in queued {
        call.abort();
    }
}

/// A BMC that accepts connections and answers none until it is dropped (which closes them):
/// a driver call against it sits in a host call, holding its memory, for as long as the test
/// wants.
struct GatedBmc {
    port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl GatedBmc {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let task = tokio::spawn({
            let accepted = accepted.clone();
            async move {
                let mut held = Vec::new();
                while let Ok((socket, _)) = listener.accept().await {
                    held.push(socket);
                    accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        Self {
            port,
            accepted,
            task,
        }
    }

    fn endpoint(&self) -> BmcEndpoint {
        http_endpoint(self.port)
    }

    /// Connections a driver opened to it.
    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for GatedBmc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `check` every 10 ms until it holds, for at most 30 s.
async fn until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..3000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

/// A call's outcome was not a refusal for lack of budget memory.
fn assert_not_refused_for_memory<T: std::fmt::Debug>(outcome: &Result<T, CallError>) {
    assert!(
        !matches!(
            outcome,
            Err(error) if matches!(error.kind, CallErrorKind::MemoryBudgetExhausted { .. })
        ),
        "{outcome:?}"
    );
}

/// Waits until every byte plugins held is back in the budget.
async fn all_memory_given_back(metrics: &PluginMetrics) {
    until("all plugin memory is given back", || {
        metrics.memory_in_use() == 0
    })
    .await;
}

fn budgeted_runtime(memory_budget_bytes: usize, metrics: PluginMetrics) -> PluginRuntime {
    PluginRuntime::new(
        RuntimeConfig {
            memory_budget_bytes,
            ..RuntimeConfig::default()
        },
        metrics,
    )
    .expect("engine")
}

#[tokio::test]
async fn a_call_that_would_grow_past_the_memory_budget_fails_instead_of_allocating() {
    const BUDGET: usize = 32 << 20;
    let metrics = PluginMetrics::default();
    let runtime = budgeted_runtime(BUDGET, metrics.clone());
    assert_eq!(runtime.memory_budget(), BUDGET);

    // A driver call sits in its BMC request, holding its memory.
    let gate = GatedBmc::start().await;
    let holder = driver(&runtime, "driver-minimal");
    let endpoint = gate.endpoint();
    let held = tokio::spawn(async move { holder.probe(&endpoint).await });
    until("the driver's request reached its BMC", || {
        gate.accepted() > 0
    })
    .await;
    let held_by_driver = usize::try_from(metrics.memory_in_use()).expect("positive");
    assert!(held_by_driver > 0, "the running driver's memory is charged");

    // A plugin allowed four times the budget grows until the budget, not its limit, stops it.
    let path = testenv::components::component("lookup-memory-bomb").expect("built");
    let bomb = runtime
        .load_credential_lookup(&path)
        .expect("load")
        .with_limits(Limits {
            memory_bytes: 4 * BUDGET,
            deadline: Duration::from_secs(10),
        });
    let error = bomb
        .lookup("52:54:00:00:00:01", &[])
        .await
        .expect_err("the bomb cannot have all it wants");
    let CallErrorKind::MemoryBudgetExhausted {
        budget_bytes,
        requested_bytes,
        held_bytes,
    } = error.kind
    else {
        panic!("not refused by the budget: {error}");
    };
    assert_eq!(budget_bytes, BUDGET);
    assert!(
        held_bytes + held_by_driver <= BUDGET,
        "both calls together stayed within the budget: {held_bytes} + {held_by_driver}"
    );
    assert!(
        held_bytes > BUDGET / 2,
        "it got what the driver left: {held_bytes}"
    );
    assert!(requested_bytes < 4 * BUDGET, "{requested_bytes}");
    assert!(
        error
            .to_string()
            .contains("the plugin memory budget of 33554432 bytes is used up"),
        "{error}"
    );
    assert!(
        metrics.memory_in_use() >= i64::try_from(held_by_driver).expect("fits"),
        "the refused call gave back what it had, the driver keeps its share"
    );

    // The driver's call is unharmed: it ends when its BMC goes away, and every byte returns.
    drop(gate);
    let outcome = held.await.expect("task");
    assert_not_refused_for_memory(&outcome);
    all_memory_given_back(&metrics).await;
}

#[tokio::test]
async fn a_call_waits_for_memory_while_the_budget_is_taken_and_runs_once_it_comes_back() {
    // What one probe of the driver holds at most, on a runtime with room to spare.
    let answering = Observer::start(
        Duration::ZERO,
        br#"{"Members":[]}"#.to_vec(),
        Counters::default(),
    )
    .await;
    let roomy = driver(&runtime(&[]), "driver-minimal");
    roomy.probe(&answering.endpoint()).await.expect("probe");
    let peak = roomy.peak_memory();
    assert!(peak >= 2 * 65536, "a component needs a few pages: {peak}");

    // A budget with room for one such call, not two.
    let metrics = PluginMetrics::default();
    let runtime = budgeted_runtime(peak + peak / 2, metrics.clone());
    let driver = driver(&runtime, "driver-minimal");
    driver
        .probe(&answering.endpoint())
        .await
        .expect("learns its peak");
    let peak = driver.peak_memory();
    let budget = runtime.memory_budget();
    assert!(
        peak <= budget && 2 * peak > budget,
        "peak {peak}, budget {budget}"
    );

    let (first_bmc, second_bmc) = (GatedBmc::start().await, GatedBmc::start().await);
    let first = tokio::spawn({
        let (driver, endpoint) = (driver.clone(), first_bmc.endpoint());
        async move { driver.probe(&endpoint).await }
    });
    until("the first call reached its BMC", || {
        first_bmc.accepted() > 0
    })
    .await;
    let second = tokio::spawn({
        let (driver, endpoint) = (driver.clone(), second_bmc.endpoint());
        async move { driver.probe(&endpoint).await }
    });
    until("the second call waits for memory", || {
        metrics.calls_waiting_for_memory() == 1
    })
    .await;
    assert_eq!(second_bmc.accepted(), 0, "the second call has not started");
    assert_eq!(metrics.calls_in_flight(), 1, "and holds no call slot");

    drop(first_bmc);
    let first = first.await.expect("task");
    until("the second call reached its BMC", || {
        second_bmc.accepted() > 0
    })
    .await;
    assert_eq!(metrics.calls_waiting_for_memory(), 0);
    drop(second_bmc);
    let second = second.await.expect("task");
    for outcome in [first, second] {
        assert_not_refused_for_memory(&outcome);
    }
    all_memory_given_back(&metrics).await;
}
