//! `ferrometal plugin …` as a plugin author uses it: inspect a component, validate it, and
//! call a driver against a real Redfish emulator over TLS.

use std::process::{Command, Output};

use testenv::{BasicAuth, FakeSystem, SushyEmulator, SushyOptions};

const UUID: &str = "0a4f3b7e-61c2-4d3a-8e1f-7c9b2d5e6f10";

fn ferrometal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrometal"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run ferrometal")
}

fn component(name: &str) -> String {
    testenv::components::component(name)
        .expect("built by `make plugins`")
        .to_string_lossy()
        .into_owned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn inspect_shows_world_abi_capabilities_and_interfaces() {
    let output = ferrometal(&["plugin", "inspect", &component("driver-reveal")]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let inspection: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(inspection["world"], "bmc-driver");
    assert_eq!(inspection["abiStatus"], "supported");
    assert_eq!(inspection["capabilities"][0], "credentials/reveal");
    assert_eq!(inspection["exports"][0], "ferrometal:plugin/driver@0.1.0");
    assert_eq!(inspection["digest"].as_str().map(str::len), Some(64));
}

#[test]
fn validate_loads_like_the_operator_and_names_missing_grants() {
    let file = component("driver-reveal");
    let refused = ferrometal(&["plugin", "validate", &file]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr)
            .contains("requests capability `credentials/reveal`, which is not granted")
    );

    let granted = ferrometal(&["plugin", "validate", &file, "--grant", "credentials/reveal"]);
    assert!(granted.status.success(), "{}", text(&granted.stderr));
    assert!(text(&granted.stdout).contains("ok: bmc-driver driver-reveal"));

    let bad_setting = ferrometal(&[
        "plugin",
        "validate",
        &component("lookup-echo"),
        "--setting",
        "colour=blue",
    ]);
    assert!(!bad_setting.status.success());
    assert!(text(&bad_setting.stderr).contains("unknown setting \"colour\""));

    // `--settings KEY=PATH` (alias of `--setting-file`) reads the value from a file.
    let dir = tempfile::tempdir().expect("tempdir");
    let port = dir.path().join("port");
    std::fs::write(&port, "8443").expect("write");
    let port = format!("port={}", port.display());
    let colour = format!("colour={}", dir.path().join("port").display());
    let from_file = ferrometal(&[
        "plugin",
        "validate",
        &component("lookup-echo"),
        "--settings",
        &port,
    ]);
    assert!(from_file.status.success(), "{}", text(&from_file.stderr));
    let bad_file = ferrometal(&[
        "plugin",
        "validate",
        &component("lookup-echo"),
        "--settings",
        &colour,
    ]);
    assert!(!bad_file.status.success());
    assert!(text(&bad_file.stderr).contains("unknown setting \"colour\""));
    let missing = ferrometal(&[
        "plugin",
        "validate",
        &component("lookup-echo"),
        "--settings",
        "port=/nonexistent/port",
    ]);
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("cannot read /nonexistent/port"),
        "{}",
        text(&missing.stderr)
    );
}

#[test]
fn the_plugin_call_cap_of_run_must_be_at_least_one() {
    let output = ferrometal(&["run", "--plugin-max-concurrent-calls", "0"]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("--plugin-max-concurrent-calls") && stderr.contains("0 is not in 1.."),
        "{stderr}"
    );
}

#[tokio::test]
async fn call_probes_a_real_bmc_and_reports_wrong_credentials() {
    let bmc = SushyEmulator::start(SushyOptions {
        systems: vec![FakeSystem {
            uuid: UUID.to_owned(),
            name: "cli-node".to_owned(),
            power_state: testenv::PowerState::On,
            boot_mode: Default::default(),
            macs: vec!["52:54:00:0c:11:01".to_owned()],
        }],
        auth: Some(BasicAuth {
            username: "admin".to_owned(),
            password: "cli-secret".to_owned(),
        }),
        tls: true,
        ..Default::default()
    })
    .await
    .expect("sushy-emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, bmc.ca_cert_pem().expect("TLS")).expect("write CA");
    let password = dir.path().join("password");
    std::fs::write(&password, "cli-secret\n").expect("write password");
    let url = bmc.base_url().to_owned();
    let driver = component("driver-minimal");
    let args = |password: &std::path::Path| {
        vec![
            "plugin".to_owned(),
            "call".to_owned(),
            driver.clone(),
            "probe".to_owned(),
            "--bmc".to_owned(),
            url.clone(),
            "--username".to_owned(),
            "admin".to_owned(),
            "--password-file".to_owned(),
            password.to_string_lossy().into_owned(),
            "--ca-file".to_owned(),
            ca.to_string_lossy().into_owned(),
        ]
    };

    let probe_args = args(&password);
    let probe = tokio::task::spawn_blocking(move || {
        ferrometal(&probe_args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .expect("join");
    assert!(probe.status.success(), "{}", text(&probe.stderr));
    let identity: serde_json::Value = serde_json::from_slice(&probe.stdout).expect("JSON");
    assert_eq!(identity["systems"][0]["uuid"], UUID);
    assert_eq!(identity["systems"][0]["power"], "On");
    assert!(
        !text(&probe.stdout).contains("cli-secret"),
        "the password is never printed"
    );

    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "nope\n").expect("write");
    let wrong_args = args(&wrong);
    let refused = tokio::task::spawn_blocking(move || {
        ferrometal(&wrong_args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .expect("join");
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("probe: unauthorized"), "{stderr}");
    assert!(!stderr.contains("nope"), "the wrong password is not echoed");
}

#[test]
fn list_shows_installed_plugins_selection_and_problems() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("plugins.yaml");
    std::fs::write(
        &config,
        "drivers:\n  Redfish: [driver-reveal, driver-minimal]\ncredentialLookup: lookup-echo\n",
    )
    .expect("write config");
    let (dir, config_file) = (
        testenv::components::components_dir()
            .to_string_lossy()
            .into_owned(),
        config.to_string_lossy().into_owned(),
    );
    let list = |extra: &[&str]| {
        let mut args = vec!["plugin", "list", "--dir", &dir, "--config", &config_file];
        args.extend_from_slice(extra);
        ferrometal(&args)
    };
    let output = list(&[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("Redfish                    → driver-minimal"),
        "{stdout}"
    );
    assert!(
        stdout.contains("credential lookup          → lookup-echo"),
        "{stdout}"
    );
    assert!(
        stdout.contains("driver_reveal.wasm: it requests capability `credentials/reveal`"),
        "{stdout}"
    );

    // With the grant, the vendor overlay listed first wins.
    let granted = list(&["--grant", "credentials/reveal"]);
    assert!(text(&granted.stdout).contains("Redfish                    → driver-reveal"));

    // Per-plugin options: a grant to one plugin loads it; a plugin not installed is named.
    std::fs::write(
        &config,
        "drivers:\n  Redfish: [driver-reveal]\nplugins:\n  driver-reveal: {grants: [credentials/reveal]}\n  ghost: {settings: {a: b}}\n",
    )
    .expect("write config");
    let options = list(&[]);
    let stdout = text(&options.stdout);
    assert!(
        stdout.contains("Redfish                    → driver-reveal"),
        "{stdout}"
    );
    assert!(
        stdout.contains("configuration problems")
            && stdout
                .contains("configures plugin ghost (under `plugins`), but there is no ghost.wasm"),
        "{stdout}"
    );

    std::fs::write(&config, "credentialLookups: lookup-echo\n").expect("write config");
    let typo = ferrometal(&["plugin", "list", "--config", &config.to_string_lossy()]);
    assert!(!typo.status.success());
    assert!(
        text(&typo.stderr).contains("credentialLookups"),
        "{}",
        text(&typo.stderr)
    );
}

#[tokio::test]
async fn the_driver_from_the_plugin_guide_probes_an_emulated_bmc() {
    // `make plugins` builds the tutorial crate exactly as docs/plugins.md writes it; this is
    // its step 6, against an emulator without authentication.
    let bmc = SushyEmulator::start(SushyOptions::default())
        .await
        .expect("sushy-emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let password = dir.path().join("password");
    std::fs::write(&password, "anything\n").expect("write password");
    let args = vec![
        "plugin".to_owned(),
        "call".to_owned(),
        component("my-driver"),
        "probe".to_owned(),
        "--bmc".to_owned(),
        bmc.base_url().to_owned(),
        // As docs/plugins.md writes it: `--user`, the alias of `--username`.
        "--user".to_owned(),
        "admin".to_owned(),
        "--password-file".to_owned(),
        password.to_string_lossy().into_owned(),
    ];
    let output = tokio::task::spawn_blocking(move || {
        ferrometal(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .expect("join");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let identity: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    // sushy-emulator's default fake system.
    assert_eq!(
        identity["systems"][0]["uuid"],
        "27946b59-9e44-4fa7-8e91-f3527a1ef094"
    );
}

/// A loopback TCP server on its own thread that counts connections and answers each with
/// `reply` (an HTTP/1.1 response, `Connection: close`), or closes them unanswered.
struct CountingServer {
    port: u16,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CountingServer {
    fn start(reply: Option<&'static str>) -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(body) = reply else { continue };
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { port, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn bmc_requests_ignore_the_proxy_environment() {
    let proxy = CountingServer::start(None);
    let bmc = CountingServer::start(Some(r#"{"Members":[]}"#));
    let dir = tempfile::tempdir().expect("tempdir");
    let password = dir.path().join("password");
    std::fs::write(&password, "secret\n").expect("write password");
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrometal"));
    command
        .args(["plugin", "call", &component("driver-minimal"), "probe"])
        .arg("--bmc")
        .arg(format!("http://127.0.0.1:{}", bmc.port))
        .args(["--username", "admin", "--password-file"])
        .arg(&password)
        .env("RUST_BACKTRACE", "0");
    for variable in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        command.env(variable, &proxy_url);
    }
    command.env_remove("NO_PROXY").env_remove("no_proxy");
    let output = command.output().expect("run ferrometal");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let identity: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(identity["systems"], serde_json::json!([]));
    assert!(bmc.connections() > 0, "the request went to the BMC");
    assert_eq!(
        proxy.connections(),
        0,
        "and not through the proxy the environment names"
    );
}

#[test]
fn inspect_and_validate_name_each_import_that_is_always_denied() {
    let file = component("lookup-sockets");
    let inspected = ferrometal(&["plugin", "inspect", &file]);
    assert!(inspected.status.success(), "{}", text(&inspected.stderr));
    let inspection: serde_json::Value = serde_json::from_slice(&inspected.stdout).expect("JSON");
    let denied: Vec<&str> = inspection["deniedImports"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    // The instance network and the network interface it uses: both named.
    assert_eq!(denied.len(), 2, "{denied:?}");
    assert!(
        denied
            .iter()
            .all(|import| import.starts_with("wasi:sockets/")),
        "{denied:?}"
    );
    let warning = |import: &str| {
        format!("warning: {file} imports `{import}`, which ferrometal never provides")
    };
    for import in &denied {
        assert!(
            text(&inspected.stderr).contains(&warning(import)),
            "{}",
            text(&inspected.stderr)
        );
    }

    let validated = ferrometal(&["plugin", "validate", &file]);
    assert!(!validated.status.success(), "refused at load");
    let stderr = text(&validated.stderr);
    for import in &denied {
        assert!(stderr.contains(&warning(import)), "{stderr}");
    }
    assert!(
        stderr.contains(&format!(
            "error: cannot load plugin {file}: it imports `wasi:sockets/"
        )),
        "{stderr}"
    );

    // A plugin without such imports gets no warning.
    let clean = ferrometal(&["plugin", "inspect", &component("lookup-echo")]);
    assert!(
        !text(&clean.stderr).contains("warning"),
        "{}",
        text(&clean.stderr)
    );
}

#[test]
fn call_takes_its_settings_before_or_after_the_operation() {
    let file = component("lookup-echo");
    let mac = "52:54:00:00:00:01";
    for args in [
        vec![
            "plugin",
            "call",
            &file,
            "--setting",
            "log=on",
            "lookup",
            "--mac",
            mac,
        ],
        vec![
            "plugin",
            "call",
            &file,
            "lookup",
            "--mac",
            mac,
            "--setting",
            "log=on",
        ],
    ] {
        let output = ferrometal(&args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            text(&output.stderr)
        );
        // lookup-echo logs only with `log=on`: the setting reached the plugin either way.
        assert!(
            text(&output.stderr).contains("looking up a MAC"),
            "{args:?}: {}",
            text(&output.stderr)
        );
    }
    let without = ferrometal(&["plugin", "call", &file, "lookup", "--mac", mac]);
    assert!(without.status.success(), "{}", text(&without.stderr));
    assert!(!text(&without.stderr).contains("looking up a MAC"));
}

#[test]
fn call_classifies_a_server_from_a_facts_file_and_validate_checks_the_rules() {
    let file = component("profiles");
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../plugins/profiles/rules.example.yaml"
    );
    let rules_setting = format!("rules={rules}");
    let dir = tempfile::tempdir().expect("tempdir");
    let facts = dir.path().join("facts.json");
    std::fs::write(
        &facts,
        r#"{
  "name": "gpu-1",
  "processors": [{"model": "AMD EPYC 9654 96-Core Processor", "cores": 96}],
  "totalMemoryBytes": 1099511627776,
  "drives": [{"name": "nvme0n1", "mediaType": "SSD"}],
  "accelerators": [{"name": "0000:41:00.0", "vendor": "NVIDIA Corporation", "vendorId": "0x10de"}],
  "labels": {"topology.example.com/rack": "r1"}
}"#,
    )
    .expect("write facts");
    let facts = facts.to_string_lossy().into_owned();

    let classified = ferrometal(&[
        "plugin",
        "call",
        &file,
        "classify",
        "--facts",
        &facts,
        "--setting-file",
        &rules_setting,
    ]);
    assert!(classified.status.success(), "{}", text(&classified.stderr));
    let classification: serde_json::Value =
        serde_json::from_slice(&classified.stdout).expect("JSON");
    assert_eq!(
        classification,
        serde_json::json!({
            "labels": {"hardware.example.com/sku": "gpu-large"},
            "taints": [
                {"key": "hardware.example.com/gpu", "value": "nvidia", "effect": "NoBind"},
                {"key": "hardware.example.com/burn-in", "effect": "NoBind"},
            ],
            "unclaimable": null,
        })
    );

    let validated = ferrometal(&[
        "plugin",
        "validate",
        &file,
        "--setting-file",
        &rules_setting,
    ]);
    assert!(validated.status.success(), "{}", text(&validated.stderr));
    assert!(
        text(&validated.stdout)
            .contains("ok: server-classifier profiles loads and accepts the settings")
    );
    let refused = ferrometal(&[
        "plugin",
        "validate",
        &file,
        "--setting",
        "rules=profiles: [{name: big, match: {disks: {min: 9, max: 1}}}]",
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("profiles[0] (big).match.disks: min (9) is above max (1)"),
        "{}",
        text(&refused.stderr)
    );

    let typo = dir.path().join("typo.json");
    std::fs::write(&typo, r#"{"name": "s", "totalMemory": 1}"#).expect("write");
    let unread = ferrometal(&[
        "plugin",
        "call",
        &file,
        "classify",
        "--facts",
        &typo.to_string_lossy(),
        "--setting-file",
        &rules_setting,
    ]);
    assert!(!unread.status.success());
    let stderr = text(&unread.stderr);
    assert!(
        stderr.contains("is not a server's facts")
            && stderr.contains("unknown field `totalMemory`"),
        "{stderr}"
    );

    let crashed = ferrometal(&[
        "plugin",
        "call",
        &component("classifier-panic"),
        "classify",
        "--facts",
        &facts,
    ]);
    assert!(!crashed.status.success());
    let stderr = text(&crashed.stderr);
    assert!(
        stderr.contains("classify: crashed") && stderr.contains("no rule for a server like gpu-1"),
        "{stderr}"
    );
}

#[test]
fn list_shows_the_classifiers_in_order_and_a_listed_one_that_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).expect("create");
    for name in ["profiles", "classifier-panic", "classifier-endless-loop"] {
        std::fs::copy(component(name), plugins.join(format!("{name}.wasm"))).expect("copy");
    }
    let config = dir.path().join("plugins.yaml");
    std::fs::write(
        &config,
        "classifiers: [classifier-endless-loop, classifier-panic, ghost]\n",
    )
    .expect("write config");
    let output = ferrometal(&[
        "plugin",
        "list",
        "--dir",
        &plugins.to_string_lossy(),
        "--config",
        &config.to_string_lossy(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("  server-classifier   profiles "),
        "{stdout}"
    );
    assert!(
        stdout.contains("classifiers (in order)     → classifier-endless-loop, classifier-panic\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("lists classifier ghost under `classifiers`, but there is no ghost.wasm"),
        "{stdout}"
    );
}
