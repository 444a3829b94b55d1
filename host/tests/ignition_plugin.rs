//! The bundled `ignition` plugin through the real runtime; its output is checked with CoreOS
//! Ignition's own validator (`ignition-validate`, built from Go modules by `make setup`).

use std::process::Command;

use ferrometal::plugins::ignition_generator::{
    IgnitionGeneratorPlugin, IgnitionRequest, ServerFacts,
};
use ferrometal::plugins::{PluginMetrics, PluginRuntime, RuntimeConfig};

fn generator() -> IgnitionGeneratorPlugin {
    let runtime =
        PluginRuntime::new(RuntimeConfig::default(), PluginMetrics::default()).expect("engine");
    let path = testenv::components::component("ignition").expect("built by `make plugins`");
    runtime
        .load_ignition_generator(&path)
        .expect("load ignition")
}

fn request(settings: &[(&str, &str)]) -> IgnitionRequest {
    IgnitionRequest {
        facts: ServerFacts {
            system_uuid: "8f0b8c34-2b1e-4c5e-9a61-0d9a3c2f7e01".into(),
            hostname: Some("node-1".into()),
            macs: vec!["52:54:00:12:34:56".into()],
            labels: Vec::new(),
        },
        registry_url: "http://10.0.0.1:8082/registry".into(),
        boot_token: "3q2+7w==".into(),
        ssh_authorized_keys: vec![
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample admin@example".into(),
        ],
        settings: settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// Runs the real validator on `ignition`; `Err` carries its report.
fn ignition_validate(ignition: &str) -> Result<(), String> {
    let validator = testenv::tools::ignition_validate()
        .require()
        .expect("ignition-validate (make setup)");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config.ign");
    std::fs::write(&file, ignition).expect("write");
    let output = Command::new(validator)
        .arg(&file)
        .output()
        .expect("run ignition-validate");
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[test]
fn the_validator_really_rejects_broken_ignition() {
    let broken =
        r#"{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"relative/path"}]}}"#;
    let report = ignition_validate(broken).expect_err("relative path");
    assert!(report.contains("path not absolute"), "{report}");
}

#[tokio::test]
async fn the_discovery_ignition_is_valid_deterministic_and_carries_the_probe() {
    let generator = generator();
    let settings = [
        ("metalprobe-url", "http://10.0.0.1:8082/assets/metalprobe"),
        ("metalprobe-sha512", &"ab".repeat(64)),
        ("password-hash", "$6$rounds=4096$salt$hash"),
        (
            "ssh-authorized-keys",
            "# the on-call key\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOncall oncall@example\n",
        ),
    ];
    let request = request(&settings);
    generator
        .validate_settings(&request.settings)
        .await
        .expect("settings");
    let ignition = generator.generate(&request).await.expect("generate");
    ignition_validate(&ignition).unwrap_or_else(|report| panic!("{report}\n{ignition}"));
    assert_eq!(
        generator.generate(&request).await.expect("again"),
        ignition,
        "the same request renders the same bytes"
    );

    let document: serde_json::Value = serde_json::from_str(&ignition).expect("JSON");
    let unit = document["systemd"]["units"][0]["contents"]
        .as_str()
        .expect("unit");
    assert!(
        unit.contains("--registry-url=http://10.0.0.1:8082/registry"),
        "{unit}"
    );
    assert!(
        unit.contains("--server-uuid=8f0b8c34-2b1e-4c5e-9a61-0d9a3c2f7e01"),
        "{unit}"
    );
    assert!(
        unit.contains("--token-file=/etc/metalprobe/token"),
        "{unit}"
    );
    let files = document["storage"]["files"].as_array().expect("files");
    assert_eq!(
        files[0]["contents"]["source"],
        "http://10.0.0.1:8082/assets/metalprobe"
    );
    assert_eq!(files[1]["mode"], 0o600);
    let user = &document["passwd"]["users"][0];
    assert_eq!(user["name"], "metal");
    assert_eq!(user["passwordHash"], "$6$rounds=4096$salt$hash");
    let keys: Vec<&str> = user["sshAuthorizedKeys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|key| key.as_str())
        .collect();
    assert_eq!(
        keys.last(),
        Some(&"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOncall oncall@example"),
        "the setting's key comes after the request's: {keys:?}"
    );
    assert_eq!(
        keys.len(),
        request.ssh_authorized_keys.len() + 1,
        "{keys:?}"
    );
}

#[tokio::test]
async fn missing_settings_are_a_clear_error() {
    let error = generator()
        .generate(&request(&[]))
        .await
        .expect_err("no metalprobe-url");
    assert!(error.to_string().contains("\"metalprobe-url\""), "{error}");
}
