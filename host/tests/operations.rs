//! The `metal.ironcore.dev/operation` annotation on Servers against the real control plane,
//! `ferrometal run` and a simulated fleet: park and unpark (during discovery and from
//! Available), `retry` of a timed-out discovery, the five power operations as the simulated
//! BMC receives them, `ignore`, and values that are not supported.

mod common;

use std::time::Duration;

use ferrometal::api::Server;
use ferrometal_sim::Probe;
use ferrometal_sim::lab::{Lab, LabOptions};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const OPERATION: &str = "metal.ironcore.dev/operation";
const PARKED: &str = "metal.ironcore.dev/parked";
const PRE_PARK: &str = "metal.ironcore.dev/pre-park-state";
const ATTEMPT: &str = "ferrometal.dev/discovery-attempt";

/// Polls `probe` every 200 ms for at most `limit`.
async fn within<T, F: Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    mut probe: impl FnMut() -> F,
) -> T {
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn state(server: &Server) -> Option<String> {
    server
        .status
        .as_ref()
        .and_then(|s| s.state)
        .map(|s| format!("{s:?}"))
}

struct Fixture {
    lab: Lab,
    servers: Api<Server>,
    events: Api<Event>,
}

impl Fixture {
    async fn annotate(&self, server: &str, key: &str, value: Option<&str>) {
        self.servers
            .patch(
                server,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {key: value}}})),
            )
            .await
            .expect("annotate the Server");
    }

    async fn until_state(&self, server: &str, wanted: &str) -> Server {
        let servers = self.servers.clone();
        within(
            &format!("{server} {wanted}"),
            Duration::from_secs(180),
            || {
                let servers = servers.clone();
                async move {
                    let found = servers.get(server).await.ok()?;
                    (state(&found).as_deref() == Some(wanted)).then_some(found)
                }
            },
        )
        .await
    }

    /// Waits until the operation annotation is gone from `server`.
    async fn until_consumed(&self, server: &str) -> Server {
        let servers = self.servers.clone();
        within(
            &format!("the operation on {server} to be consumed"),
            Duration::from_secs(60),
            || {
                let servers = servers.clone();
                async move {
                    let found = servers.get(server).await.ok()?;
                    (!found.annotations().contains_key(OPERATION)).then_some(found)
                }
            },
        )
        .await
    }

    /// Waits for an Event about `server` with `reason`, and returns its note.
    async fn until_event(&self, server: &str, reason: &str) -> String {
        let events = self.events.clone();
        within(
            &format!("Event {reason} on {server}"),
            Duration::from_secs(60),
            || {
                let events = events.clone();
                async move {
                    events
                        .list(&ListParams::default())
                        .await
                        .ok()?
                        .items
                        .into_iter()
                        .find(|e| {
                            e.reason.as_deref() == Some(reason)
                                && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                                    == Some(server)
                        })
                        .map(|e| e.note.unwrap_or_default())
                }
            },
        )
        .await
    }

    /// The reset types the simulated BMC received for `server`'s system.
    async fn resets(&self, server: &str) -> Vec<String> {
        let found = self.servers.get(server).await.expect("read the Server");
        let uuid = found.spec.system_uuid().expect("a system UUID").to_string();
        self.lab
            .fleet
            .machine(&uuid)
            .expect("the simulated machine")
            .resets()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn operation_annotations_park_retry_reset_and_ignore_as_documented() {
    let lab = Lab::start(
        LabOptions {
            apply_bmcs: false,
            ..common::lab_options("operations", 2, 3, 0)
        },
        |line| eprintln!("lab: {line}"),
    )
    .await
    .expect("the lab starts");
    // BMC 0's machines never report: their Servers stay in Discovery (to park one and time
    // out another there) until a step below lets them report.
    let silent: Vec<_> = lab.fleet.bmcs()[0].machines().to_vec();
    for machine in &silent {
        machine.set_probe(Probe::Never);
    }
    lab.apply_bmcs(0..2, None).await.expect("apply the BMCs");
    let client = lab.control_plane.client().await.expect("client");
    let fixture = Fixture {
        servers: Api::all(client.clone()),
        events: Api::namespaced(client.clone(), "default"),
        lab,
    };
    let (parked, timed_out) = ("sim-bmc-0-system-0", "sim-bmc-0-system-1");

    // Park during discovery: the attempt ends (boot configuration gone), the machine is off.
    fixture.until_state(parked, "Discovery").await;
    fixture.annotate(parked, OPERATION, Some("park")).await;
    // Time out another server's attempt: it goes to Error with a retry far ahead.
    fixture.until_state(timed_out, "Discovery").await;
    fixture
        .annotate(
            timed_out,
            "ferrometal.dev/discovery-timeout-seconds",
            Some("1"),
        )
        .await;
    let server = fixture.until_state(parked, "Parked").await;
    assert_eq!(
        server.annotations().get(PARKED).map(String::as_str),
        Some("true")
    );
    assert_eq!(
        server.annotations().get(PRE_PARK).map(String::as_str),
        Some("Discovery")
    );
    assert!(!server.annotations().contains_key(OPERATION));
    assert!(server.spec.boot_configuration_ref.is_none(), "{server:?}");
    assert_eq!(
        server
            .status
            .as_ref()
            .and_then(|s| s.power_state)
            .map(|p| format!("{p:?}")),
        Some(String::from("Off"))
    );
    fixture.until_event(parked, "Parked").await;
    let configurations: Api<ferrometal::api::ServerBootConfiguration> =
        Api::namespaced(client.clone(), "default");
    assert!(
        configurations
            .get_opt(parked)
            .await
            .expect("read")
            .is_none(),
        "the parked server's discovery boot configuration is gone"
    );
    // While parked, other operations are dropped with a Warning, and nothing reaches the BMC.
    let resets_parked = fixture.resets(parked).await;
    fixture
        .annotate(parked, OPERATION, Some("force-on-server"))
        .await;
    fixture.until_consumed(parked).await;
    fixture.until_event(parked, "ParkedOperationDropped").await;
    assert_eq!(
        fixture.resets(parked).await,
        resets_parked,
        "a parked server's BMC was asked for a reset"
    );

    // retry: the timed-out server starts its next attempt at once, not at its retry time.
    let errored = fixture.until_state(timed_out, "Error").await;
    let retry_at: k8s_openapi::jiff::Timestamp = errored
        .annotations()
        .get("ferrometal.dev/discovery-retry-at")
        .expect("a retry time")
        .parse()
        .expect("a timestamp");
    fixture
        .annotate(timed_out, "ferrometal.dev/discovery-timeout-seconds", None)
        .await;
    // From now on BMC 0's machines report (a machine takes its probe's behaviour when it is
    // powered on for the next attempt).
    for machine in &silent {
        machine.set_probe(Probe::Report);
    }
    fixture.annotate(timed_out, OPERATION, Some("retry")).await;
    // Attempt 2 starts before the retry time the timeout set.
    let servers = fixture.servers.clone();
    within("attempt 2 to start", Duration::from_secs(60), || {
        let servers = servers.clone();
        async move {
            let server = servers.get(timed_out).await.ok()?;
            (server.annotations().get(ATTEMPT).map(String::as_str) == Some("2")).then_some(())
        }
    })
    .await;
    assert!(
        k8s_openapi::jiff::Timestamp::now() < retry_at,
        "the retry waited for its backoff ({retry_at})"
    );
    let retried = fixture.until_state(timed_out, "Available").await;
    assert_eq!(
        retried.annotations().get(ATTEMPT).map(String::as_str),
        Some("2")
    );
    fixture.until_event(timed_out, "DiscoveryRetried").await;

    // unpark: a server parked during discovery is discovered afresh.
    fixture.annotate(parked, OPERATION, Some("unpark")).await;
    let resumed = fixture.until_state(parked, "Available").await;
    assert!(!resumed.annotations().contains_key(PARKED));
    assert!(!resumed.annotations().contains_key(PRE_PARK));
    assert_eq!(
        resumed.annotations().get(ATTEMPT).map(String::as_str),
        Some("2")
    );
    fixture.until_event(parked, "Resumed").await;

    // The power operations, as the simulated BMC receives them.
    let powered = "sim-bmc-1-system-0";
    fixture.until_state(powered, "Available").await;
    for (operation, reset) in [
        ("force-on-server", "On"),
        ("graceful-restart-server", "GracefulRestart"),
        ("hard-restart-server", "ForceRestart"),
        ("power-cycle-server", "PowerCycle"),
        ("force-off-server", "ForceOff"),
    ] {
        let before = fixture.resets(powered).await.len();
        fixture.annotate(powered, OPERATION, Some(operation)).await;
        fixture.until_consumed(powered).await;
        let resets = fixture.resets(powered).await;
        assert_eq!(
            resets.get(before).map(String::as_str),
            Some(reset),
            "{operation}: the BMC received {:?}",
            &resets[before.min(resets.len())..]
        );
    }
    let note = fixture.until_event(powered, "OperationCompleted").await;
    assert!(note.contains("accepted"), "{note}");

    // Park from Available (a graceful shutdown of an owner's OS would come first: the
    // machine is on after the force-on above).
    let available = "sim-bmc-1-system-1";
    fixture.until_state(available, "Available").await;
    fixture.annotate(available, OPERATION, Some("park")).await;
    let server = fixture.until_state(available, "Parked").await;
    assert_eq!(
        server.annotations().get(PRE_PARK).map(String::as_str),
        Some("Available")
    );
    fixture.annotate(available, OPERATION, Some("unpark")).await;
    let server = fixture.until_state(available, "Available").await;
    // Parked from Available, it comes back as it was: no new discovery.
    assert_eq!(
        server.annotations().get(ATTEMPT).map(String::as_str),
        Some("1")
    );

    // ignore: hands off while set — spec.power is not applied — and on again after.
    let ignored = "sim-bmc-1-system-2";
    fixture.until_state(ignored, "Available").await;
    fixture.annotate(ignored, OPERATION, Some("ignore")).await;
    let before = fixture.resets(ignored).await.len();
    fixture
        .servers
        .patch(
            ignored,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"power": "On"}})),
        )
        .await
        .expect("power on");
    // The server resyncs every 2 s in this lab: several passes go by.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        fixture.resets(ignored).await.len(),
        before,
        "an ignored server was powered"
    );
    fixture.annotate(ignored, OPERATION, None).await;
    let servers = fixture.servers.clone();
    within(
        "the ignored server powered on once released",
        Duration::from_secs(60),
        || {
            let servers = servers.clone();
            async move {
                let server = servers.get(ignored).await.ok()?;
                (server
                    .status?
                    .power_state
                    .map(|p| format!("{p:?}"))
                    .as_deref()
                    == Some("On"))
                .then_some(())
            }
        },
    )
    .await;
    assert!(fixture.resets(ignored).await.len() > before);

    // An unknown value is dropped with a Warning naming it.
    fixture
        .annotate(ignored, OPERATION, Some("reboot-please"))
        .await;
    fixture.until_consumed(ignored).await;
    let note = fixture.until_event(ignored, "UnsupportedOperation").await;
    assert!(note.contains("reboot-please"), "{note}");
}
