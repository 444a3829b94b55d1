//! The bundled `macdb` credential-lookup plugin through the real runtime and the CLI.

use std::process::Command;

use ferrometal::plugins::credential_lookup::CredentialLookupPlugin;
use ferrometal::plugins::types::GuestError;
use ferrometal::plugins::{CallErrorKind, PluginMetrics, PluginRuntime, RuntimeConfig};

fn database() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/macdb.yaml"
    ))
    .expect("tests/data/macdb.yaml")
}

fn settings() -> Vec<(String, String)> {
    vec![(String::from("database"), database())]
}

fn macdb() -> CredentialLookupPlugin {
    let runtime =
        PluginRuntime::new(RuntimeConfig::default(), PluginMetrics::default()).expect("engine");
    let path = testenv::components::component("macdb").expect("built by `make plugins`");
    runtime.load_credential_lookup(&path).expect("load macdb")
}

#[tokio::test]
async fn metal_operators_database_format_is_served_with_longest_prefix_match() {
    let macdb = macdb();
    macdb
        .validate_settings(&settings())
        .await
        .expect("valid database");

    let foo = macdb
        .lookup("23:11:8A:33:CF:EA", &settings())
        .await
        .expect("lookup")
        .expect("metal-operator's sample MAC");
    assert_eq!(foo.protocol, "RedfishWithRegistryPatch");
    assert_eq!(foo.port, 8000);
    assert_eq!(foo.console_protocol.as_deref(), Some("SSH"));

    let qemu = macdb
        .lookup("52-54-00-12-34-56", &settings())
        .await
        .expect("lookup")
        .expect("QEMU prefix");
    assert_eq!(qemu.scheme.as_deref(), Some("https"));
    let users: Vec<&str> = qemu
        .default_credentials
        .iter()
        .map(|c| c.username.as_str())
        .collect();
    assert_eq!(
        users,
        ["admin", "root"],
        "all default credentials, in order"
    );

    let lab = macdb
        .lookup("5254.00ab.0001", &settings())
        .await
        .expect("lookup")
        .expect("longer prefix");
    assert_eq!(lab.manufacturer, "QEMU lab");

    assert_eq!(
        macdb
            .lookup("00:00:5e:00:53:01", &settings())
            .await
            .expect("lookup"),
        None,
        "unknown MACs are not an error"
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_error() {
    let macdb = macdb();
    let error = macdb
        .lookup("not-a-mac", &settings())
        .await
        .expect_err("bad MAC");
    assert!(
        matches!(&error.kind, CallErrorKind::Plugin(GuestError::InvalidInput(m)) if m.contains("is not a MAC address")),
        "{error}"
    );

    let broken = vec![(
        String::from("database"),
        String::from(
            "macPrefixes:\n- macPrefix: '23'\n  protocol: Redfish\n  port: 8000\n  type: bmc\n",
        ),
    )];
    let error = macdb
        .validate_settings(&broken)
        .await
        .expect_err("no credentials");
    assert!(
        error.to_string().contains(
            "macPrefixes[0].defaultCredentials: a bmc entry needs at least one credential"
        ),
        "{error}"
    );

    let error = macdb
        .lookup("52:54:00:00:00:01", &[])
        .await
        .expect_err("no database");
    assert!(
        error.to_string().contains("the setting \"database\""),
        "{error}"
    );
}

#[test]
fn the_cli_looks_a_mac_up_in_a_database_file_and_redacts_passwords() {
    let path = testenv::components::component("macdb").expect("built");
    let output = Command::new(env!("CARGO_BIN_EXE_ferrometal"))
        .args(["plugin", "call"])
        .arg(&path)
        .arg("--setting-file")
        .arg(concat!(
            "database=",
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/macdb.yaml"
        ))
        .args(["lookup", "--mac", "52:54:00:aa:bb:cc"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run ferrometal");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let profile: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(profile["port"], 8443);
    assert_eq!(profile["defaultCredentials"][1]["username"], "root");
    assert!(!stdout.contains("calvin"), "passwords are not printed");
}
