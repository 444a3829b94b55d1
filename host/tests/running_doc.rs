//! docs/running.md as a newcomer meets it: its first example, run as written (only the two
//! file paths point into the test's directory), serves a Redfish BMC through the bundled
//! driver; one SIGINT logs one shutdown line; and a restart on the same ports right after
//! the first process has exited comes up.

use std::process::Command;
use std::time::Duration;

use ferrometal::api::{BMC, Endpoint, EndpointSpec, Server};
use kube::Api;
use kube::api::{ListParams, PostParams};
mod common;
use common::eventually;
use testenv::ControlPlane;

const UUID: &str = "7a1c0f3e-0000-4000-8000-00000000d0c1";

/// The arguments of the first `ferrometal run` example of docs/running.md, after `ferrometal`.
fn documented_example() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/running.md");
    let doc = std::fs::read_to_string(path).expect("docs/running.md");
    let block = doc
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/running.md starts with a sh example");
    let line = block
        .lines()
        .find(|line| line.starts_with("ferrometal run"))
        .expect("the first example runs `ferrometal run`");
    line.split_whitespace().skip(1).map(String::from).collect()
}

/// The documented example with its two file paths (`--plugin-dir`, `--mac-db`) replaced by
/// `plugins` and `macdb`; every other argument is the doc's.
fn documented_command(plugins: &std::path::Path, macdb: &std::path::Path) -> Command {
    let mut args = documented_example();
    for (flag, value) in [("--plugin-dir", plugins), ("--mac-db", macdb)] {
        let at = args
            .iter()
            .position(|arg| arg == flag)
            .unwrap_or_else(|| panic!("the example passes {flag}: {args:?}"));
        args[at + 1] = value.display().to_string();
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrometal"));
    command.args(args);
    command
}

/// A plugin directory with the bundled plugins (what the container image installs) and a
/// MAC database that sends `52:54:00:d0` to `bmc` with its Basic-auth credentials.
fn installation(dir: &std::path::Path, bmc_port: u16) -> (std::path::PathBuf, std::path::PathBuf) {
    let plugins = common::plugin_dir(dir, &["redfish", "macdb", "ignition"]);
    let macdb = dir.join("macdb.yaml");
    std::fs::write(
        &macdb,
        format!(
            "macPrefixes:\n\
             - macPrefix: \"52:54:00:d0\"\n  manufacturer: Sushy\n  protocol: Redfish\n  protocolScheme: http\n  port: {bmc_port}\n  type: bmc\n  defaultCredentials:\n  - username: admin\n    password: bmc-pw\n"
        ),
    )
    .expect("write macdb");
    (plugins, macdb)
}

/// Starts the documented example against `control_plane`, with the servers on the given
/// ports (set through their environment variables, so the arguments stay the doc's).
fn start(
    control_plane: &ControlPlane,
    plugins: &std::path::Path,
    macdb: &std::path::Path,
    (metrics_port, boot_port): (u16, u16),
) -> testenv::Program {
    let mut command = documented_command(plugins, macdb);
    command
        .env("KUBECONFIG", control_plane.kubeconfig_path())
        .env(
            "FERROMETAL_METRICS_BIND_ADDRESS",
            format!("127.0.0.1:{metrics_port}"),
        )
        .env(
            "FERROMETAL_BOOT_BIND_ADDRESS",
            format!("127.0.0.1:{boot_port}"),
        )
        .env("FERROMETAL_BMC_RESYNC_SECONDS", "2")
        .env("FERROMETAL_LOG", "info");
    testenv::Program::start("ferrometal-run", command).expect("start ferrometal run")
}

/// Waits until `operator` says it runs (its controllers and signal handling are up) and its
/// health endpoint and boot server answer.
async fn wait_until_up(operator: &mut testenv::Program, (metrics_port, boot_port): (u16, u16)) {
    eventually("ferrometal run up", || {
        let running = operator.ensure_running();
        let log = operator.log();
        async move {
            if let Err(error) = running {
                panic!("ferrometal run exited: {error}");
            }
            if !log.contains(concat!(
                "ferrometal ",
                env!("CARGO_PKG_VERSION"),
                " running"
            )) {
                return None;
            }
            let health = reqwest::get(format!("http://127.0.0.1:{metrics_port}/healthz"))
                .await
                .ok()?;
            let boot = reqwest::get(format!("http://127.0.0.1:{boot_port}/ipxe"))
                .await
                .ok()?;
            (health.status().is_success() && boot.status().is_success()).then_some(())
        }
    })
    .await;
}

fn free_ports() -> (u16, u16) {
    (
        testenv::net::free_port().expect("port"),
        testenv::net::free_port().expect("port"),
    )
}

#[tokio::test]
async fn the_first_example_of_running_md_serves_a_redfish_bmc_through_the_bundled_driver() {
    let control_plane = ControlPlane::shared().await.expect("control plane");
    let _logs = control_plane.logs_on_failure();
    let client = control_plane.client().await.expect("client");
    let bmc = common::emulated_bmc(&[(UUID, vec![String::from("52:54:00:d0:00:10")])], false).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (plugins, macdb) = installation(dir.path(), bmc.port());
    let ports = free_ports();
    let mut operator = start(control_plane, &plugins, &macdb, ports);
    wait_until_up(&mut operator, ports).await;

    Api::<Endpoint>::all(client.clone())
        .create(
            &PostParams::default(),
            &Endpoint::new(
                "doc-example",
                EndpointSpec {
                    mac_address: "52:54:00:d0:00:01".into(),
                    ip: "127.0.0.1".into(),
                },
            ),
        )
        .await
        .expect("create endpoint");
    let bmcs: Api<BMC> = Api::all(client.clone());
    let ready = eventually("the BMC probed", || async {
        let condition = bmcs
            .get_opt("doc-example")
            .await
            .ok()??
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        Some((condition.status, condition.reason, condition.message))
    })
    .await;
    assert_eq!(
        (ready.0.as_str(), ready.1.as_str()),
        ("True", "Connected"),
        "{}",
        ready.2
    );
    let servers = eventually("the BMC's Server", || async {
        let servers: Vec<Server> = Api::<Server>::all(client.clone())
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .filter(|s| s.spec.bmc_ref.as_ref().map(|r| r.name.as_str()) == Some("doc-example"))
            .collect();
        (!servers.is_empty()).then_some(servers)
    })
    .await;
    assert_eq!(servers[0].spec.system_uuid.as_deref(), Some(UUID));

    let log = operator.log();
    assert!(
        !log.contains("plugin not loaded"),
        "every bundled plugin loads with the documented flags:\n{log}"
    );
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", ports.0))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    let probed = r#"ferrometal_plugin_calls_total{plugin="redfish",world="bmc-driver",operation="probe",outcome="ok"}"#;
    assert!(
        metrics.contains(probed),
        "{probed} missing from:\n{metrics}"
    );
}

/// A "BMC" that accepts connections and never answers, so a probe of it stays in flight
/// until the driver call's deadline. Returns its port, a count of accepted connections and
/// the task holding them (abort it to close them).
async fn silent_bmc() -> (
    u16,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(stream);
        }
    });
    (port, accepted, task)
}

#[tokio::test]
async fn one_sigint_logs_one_line_and_a_restart_right_after_it_binds_the_same_ports() {
    // A private control plane: no other test's operator reconciles here.
    let control_plane = ControlPlane::start().await.expect("control plane");
    let _logs = control_plane.logs_on_failure();
    let client = control_plane.client().await.expect("client");
    let (bmc_port, accepted, bmc) = silent_bmc().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (plugins, macdb) = installation(dir.path(), bmc_port);
    let ports = free_ports();

    let mut first = start(&control_plane, &plugins, &macdb, ports);
    wait_until_up(&mut first, ports).await;
    // A reconcile in flight when the signal comes: the probe of a BMC that never answers.
    Api::<Endpoint>::all(client.clone())
        .create(
            &PostParams::default(),
            &Endpoint::new(
                "silent",
                EndpointSpec {
                    mac_address: "52:54:00:d0:00:02".into(),
                    ip: "127.0.0.1".into(),
                },
            ),
        )
        .await
        .expect("create endpoint");
    eventually("the probe of the silent BMC in flight", || {
        let accepted = accepted.load(std::sync::atomic::Ordering::SeqCst);
        async move { (accepted > 0).then_some(()) }
    })
    .await;

    first.interrupt().expect("SIGINT");
    // The signal was taken (kube's own prompt counts too, so this waits the same way on an
    // operator that still lets each controller handle signals).
    eventually("the shutdown line", || {
        let log = first.log();
        async move { (log.contains("shutting down") || log.contains("ctrl+c")).then_some(()) }
    })
    .await;
    // Restarted at once, while the first still waits for its probe: the ports are free.
    let mut second = start(&control_plane, &plugins, &macdb, ports);
    wait_until_up(&mut second, ports).await;

    // Closing the silent BMC's connections ends the probe, and with it the first process.
    // Awaiting the aborted task is what drops it (and its connections): the wait below
    // blocks this test's only runtime thread.
    bmc.abort();
    let _ = bmc.await;
    let status = first
        .wait_for_exit(Duration::from_secs(90))
        .expect("wait")
        .unwrap_or_else(|| panic!("still running after SIGINT:\n{}", first.log()));
    assert!(status.success(), "{status}:\n{}", first.log());
    let log = first.log();
    let shutdown_lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("shutting down") || line.contains("ctrl+c"))
        .collect();
    assert_eq!(
        shutdown_lines.len(),
        1,
        "one line for one SIGINT, not one per controller:\n{log}"
    );
    assert!(
        shutdown_lines[0].contains("SIGINT"),
        "{}",
        shutdown_lines[0]
    );
    second
        .ensure_running()
        .expect("the restarted operator keeps running");
}
