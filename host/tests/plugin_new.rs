//! The plugin author's road, for real: `ferrometal plugin new` writes a crate for each world,
//! its native unit tests pass under `cargo test`, `ferrometal plugin build` builds it with
//! Debian's wasm toolchain, `plugin inspect` reports the world, and `plugin call` runs it (the
//! driver against a real sushy-emulator).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testenv::{BasicAuth, FakeSystem, SushyEmulator, SushyOptions};

const UUID: &str = "5d7c0a4e-2b1f-4c39-9e8a-3f6b1d2c4e50";

fn ferrometal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrometal"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("FERROMETAL_PLUGIN_SDK")
        .output()
        .expect("run ferrometal")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Stable directories under the workspace's target/, so Debian's std build and the native
/// dependencies are compiled once, not per run.
fn cache(name: &str) -> PathBuf {
    testenv::tools::workspace_root().join("target").join(name)
}

/// `plugin new`, native `cargo test`, `plugin build`, `plugin inspect`: the component's path.
fn new_test_build_inspect(dir: &Path, world: &str, name: &str) -> String {
    let crate_dir = dir.join(name);
    let crate_arg = crate_dir.to_string_lossy().into_owned();
    let created = ferrometal(&["plugin", "new", world, name, "--dir", &crate_arg]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert!(text(&created.stdout).contains(&format!("created {world} plugin `{name}`")));
    let manifest = crate_dir.join("Cargo.toml");

    // The crate's own tests, natively, with the cargo running this test.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let tests = Command::new(cargo)
        .args(["test", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(cache("plugin-new-native"))
        .output()
        .expect("cargo test");
    let summary = text(&tests.stdout);
    assert!(
        tests.status.success() && summary.contains("test result: ok."),
        "{summary}\n{}",
        text(&tests.stderr)
    );
    assert!(
        !summary.contains("ok. 0 passed"),
        "the template has tests: {summary}"
    );

    let native_lock = std::fs::read(crate_dir.join("Cargo.lock")).expect("cargo test wrote it");
    let built = ferrometal(&[
        "plugin",
        "build",
        "--manifest-path",
        &manifest.to_string_lossy(),
        "--target-dir",
        &cache("plugin-new-wasm").to_string_lossy(),
    ]);
    assert!(built.status.success(), "{}", text(&built.stderr));
    let component = text(&built.stdout).trim().to_owned();
    assert!(
        component.ends_with(&format!(
            "/wasm32-wasip2/debug/{}.wasm",
            name.replace('-', "_")
        )),
        "{component}"
    );
    assert_eq!(
        std::fs::read(crate_dir.join("Cargo.lock")).expect("still there"),
        native_lock,
        "Debian's cargo keeps a lockfile of its own"
    );

    let inspected = ferrometal(&["plugin", "inspect", &component]);
    assert!(inspected.status.success(), "{}", text(&inspected.stderr));
    let inspection: serde_json::Value = serde_json::from_slice(&inspected.stdout).expect("JSON");
    assert_eq!(inspection["world"], world);
    assert_eq!(inspection["abiStatus"], "supported");
    assert_eq!(inspection["deniedImports"], serde_json::json!([]));
    component
}

#[tokio::test]
async fn a_new_driver_builds_and_probes_a_real_emulated_bmc() {
    let dir = tempfile::tempdir().expect("tempdir");
    let component = {
        let dir = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            new_test_build_inspect(&dir, "bmc-driver", "acme-driver")
        })
        .await
        .expect("join")
    };
    let bmc = SushyEmulator::start(SushyOptions {
        systems: vec![FakeSystem {
            uuid: UUID.to_owned(),
            name: "new-driver-node".to_owned(),
            power_state: testenv::PowerState::On,
            boot_mode: Default::default(),
            macs: vec!["52:54:00:0d:00:01".to_owned()],
        }],
        auth: Some(BasicAuth {
            username: "admin".to_owned(),
            password: "road-secret".to_owned(),
        }),
        ..Default::default()
    })
    .await
    .expect("sushy-emulator");
    let password = dir.path().join("password");
    std::fs::write(&password, "road-secret\n").expect("write password");
    // Settings after the operation, as an author writes them.
    let args: Vec<String> = [
        "plugin",
        "call",
        &component,
        "probe",
        "--bmc",
        bmc.base_url(),
        "--user",
        "admin",
        "--password-file",
        &password.to_string_lossy(),
        "--setting",
        "colour=blue",
        "--deadline",
        "20",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    let probe = tokio::task::spawn_blocking(move || {
        ferrometal(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .expect("join");
    assert!(probe.status.success(), "{}", text(&probe.stderr));
    let identity: serde_json::Value = serde_json::from_slice(&probe.stdout).expect("JSON");
    assert_eq!(identity["systems"][0]["uuid"], UUID);
    assert_eq!(identity["systems"][0]["power"], "On");
}

#[test]
fn a_new_credential_lookup_builds_and_answers_with_its_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let component = new_test_build_inspect(dir.path(), "credential-lookup", "acme-lookup");
    let answer = ferrometal(&[
        "plugin",
        "call",
        &component,
        "lookup",
        "--mac",
        "52-54-00-12-34-56",
        "--setting",
        "port=8443",
    ]);
    assert!(answer.status.success(), "{}", text(&answer.stderr));
    let profile: serde_json::Value = serde_json::from_slice(&answer.stdout).expect("JSON");
    assert_eq!(profile["manufacturer"], "QEMU");
    assert_eq!(profile["port"], 8443);

    // A plugin error is one line, without a host backtrace (RUST_BACKTRACE=1 is set) or
    // colour codes.
    let refused = ferrometal(&["plugin", "call", &component, "lookup", "--mac", "nonsense"]);
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: plugin acme-lookup"), "{stderr}");
    assert!(
        stderr.contains("invalid input: \"nonsense\" is not a MAC address"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}

#[test]
fn a_new_ignition_generator_builds_and_renders_checked_ignition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let component = new_test_build_inspect(dir.path(), "ignition-generator", "acme-ignition");
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").expect("write token");
    let rendered = ferrometal(&[
        "plugin",
        "call",
        &component,
        "generate",
        "--uuid",
        UUID,
        "--registry-url",
        "http://10.0.0.1:8080",
        "--boot-token-file",
        &token.to_string_lossy(),
        "--setting",
        "user=core",
    ]);
    assert!(rendered.status.success(), "{}", text(&rendered.stderr));
    let ignition: serde_json::Value = serde_json::from_slice(&rendered.stdout).expect("JSON");
    assert_eq!(ignition["ignition"]["version"], "3.4.0");
    assert_eq!(ignition["passwd"]["users"][0]["name"], "core");
}

#[test]
fn a_new_server_classifier_builds_and_its_answers_are_checked_by_the_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let component = new_test_build_inspect(dir.path(), "server-classifier", "acme-classifier");
    let facts = dir.path().join("facts.json");
    std::fs::write(
        &facts,
        r#"{"name": "server-1", "totalMemoryBytes": 549755813888, "accelerators": [{"name": "gpu0"}]}"#,
    )
    .expect("write facts");
    let facts = facts.to_string_lossy().into_owned();
    let classify = |setting: &str| {
        ferrometal(&[
            "plugin",
            "call",
            &component,
            "classify",
            "--facts",
            &facts,
            "--setting",
            setting,
        ])
    };
    let classified = classify("prefix=acme.example");
    assert!(classified.status.success(), "{}", text(&classified.stderr));
    let classification: serde_json::Value =
        serde_json::from_slice(&classified.stdout).expect("JSON");
    assert_eq!(classification["labels"]["acme.example/memory"], "large");
    assert_eq!(
        classification["taints"][0]["key"],
        "acme.example/accelerator"
    );
    assert_eq!(classification["taints"][0]["effect"], "NoBind");

    // The template does not check its prefix; the host checks every answer.
    let refused = classify("prefix=ferrometal.dev");
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("classify: plugin error: returned an invalid classification: label key \"ferrometal.dev/memory\" uses the prefix ferrometal.dev, which is reserved for the operator"),
        "{stderr}"
    );
}

#[test]
fn a_plugin_that_opens_sockets_is_refused_at_build_time_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let crate_dir = dir.path().join("sockety");
    let created = ferrometal(&[
        "plugin",
        "new",
        "credential-lookup",
        "sockety",
        "--dir",
        &crate_dir.to_string_lossy(),
    ]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let source = crate_dir.join("src/lib.rs");
    let code = std::fs::read_to_string(&source).expect("read");
    let code = code.replacen(
        "let mac = normalise(mac)?;",
        "let _ = std::net::TcpStream::connect(\"192.0.2.1:80\");\n        let mac = normalise(mac)?;",
        1,
    );
    std::fs::write(&source, code).expect("write");
    let built = ferrometal(&[
        "plugin",
        "build",
        "--manifest-path",
        &crate_dir.join("Cargo.toml").to_string_lossy(),
        "--target-dir",
        &cache("plugin-new-wasm").to_string_lossy(),
    ]);
    assert!(!built.status.success());
    let stderr = text(&built.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: the plugin (or a dependency) opens sockets itself")
            && last.contains("plugins get no sockets"),
        "{stderr}"
    );
}

#[test]
fn new_refuses_an_existing_directory_and_a_bad_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = dir.path().to_string_lossy().into_owned();
    let existing = ferrometal(&["plugin", "new", "bmc-driver", "x", "--dir", &taken]);
    assert!(!existing.status.success());
    assert!(
        text(&existing.stderr).contains("already exists"),
        "{}",
        text(&existing.stderr)
    );

    let target = dir.path().join("fresh").to_string_lossy().into_owned();
    let bad = ferrometal(&["plugin", "new", "bmc-driver", "My_Driver", "--dir", &target]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("is not a plugin name"),
        "{}",
        text(&bad.stderr)
    );
    assert!(!dir.path().join("fresh").exists(), "nothing written");
}
