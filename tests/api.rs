//! The `metal.ironcore.dev/v1alpha1` CRDs in a real API server: metal-operator's YAML applies
//! unchanged, bad objects are rejected with messages in the user's words, and kubectl shows
//! useful columns and explanations.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use ferrometal::api::{BMC, Endpoint, Server, ServerBootConfiguration};
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;
use testenv::ControlPlane;

mod common;
use common::ensure_namespace;

fn seed_dir() -> PathBuf {
    testenv::tools::workspace_root()
        .join("examples")
        .join("seed")
}

fn kubectl(control_plane: &ControlPlane, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command: Command = control_plane.kubectl().expect("kubectl");
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("run kubectl");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("kubectl output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every leaf of `expected` equals the value at the same path in `actual`.
fn assert_contains(actual: &Value, expected: &Value, path: &str) {
    match expected {
        Value::Object(fields) => {
            for (key, value) in fields {
                assert_contains(&actual[key], value, &format!("{path}.{key}"));
            }
        }
        _ => assert_eq!(actual, expected, "value at {path}"),
    }
}

#[tokio::test]
async fn seed_examples_apply_unchanged_and_read_back_with_the_same_values() {
    let control_plane = ControlPlane::shared().await.expect("control plane");
    let _logs = control_plane.logs_on_failure();
    let client = control_plane.client().await.expect("client");

    let mut documents = Vec::new();
    for entry in std::fs::read_dir(seed_dir()).expect("examples/seed") {
        let path = entry.expect("entry").path();
        let yaml = std::fs::read_to_string(&path).expect("read example");
        let document: Value = serde_saphyr::from_str(&yaml).expect("parse example");
        if let Some(namespace) = document["metadata"]["namespace"].as_str() {
            ensure_namespace(&client, namespace).await;
        }
        documents.push((path, document));
    }
    assert_eq!(documents.len(), 5, "one example per kind");

    let dir = seed_dir();
    let applied = kubectl(
        control_plane,
        &["apply", "-f", dir.to_str().expect("utf-8 path")],
        None,
    );
    assert!(
        applied.status.success(),
        "kubectl apply of the seed examples failed:\n{}",
        text(&applied.stderr)
    );

    for (path, document) in &documents {
        let (group, version) = document["apiVersion"]
            .as_str()
            .and_then(|v| v.split_once('/'))
            .expect("apiVersion");
        let kind = document["kind"].as_str().expect("kind");
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let name = document["metadata"]["name"].as_str().expect("name");
        let api: Api<DynamicObject> = match document["metadata"]["namespace"].as_str() {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let stored = api
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let stored = serde_json::to_value(&stored).expect("json");
        assert_contains(
            &stored["spec"],
            &document["spec"],
            &format!("{}: spec", path.display()),
        );
    }

    // The Rust types read what metal-operator users write.
    let server = Api::<Server>::all(client.clone())
        .get("my-server")
        .await
        .expect("server");
    assert_eq!(
        server.spec.system_uuid().as_deref(),
        Some("123e4567-e89b-12d3-a456-426614174000"),
        "the deprecated spec.uuid stands in for spec.systemUUID"
    );
    let bmc = Api::<BMC>::all(client.clone())
        .get("my-bmc-inline")
        .await
        .expect("bmc");
    assert_eq!(bmc.spec.access.expect("access").ip, "192.168.100.10");
    let endpoint = Api::<Endpoint>::all(client.clone())
        .get("device-12345")
        .await
        .expect("endpoint");
    assert_eq!(endpoint.spec.mac_address, "00:1A:2B:3C:4D:5E");
    let sbc = Api::<ServerBootConfiguration>::namespaced(client.clone(), "defauilt")
        .get("my-server-boot-config")
        .await
        .expect("sbc");
    assert_eq!(sbc.spec.server_ref.name, "my-server");
}

/// (what is wrong, manifest, words the API server's answer must contain)
const INVALID: &[(&str, &str, &str)] = &[
    (
        "Endpoint with a short MAC",
        "kind: Endpoint\nmetadata: {name: bad-mac}\nspec: {macAddress: '00:1A:2B:3C:4D', ip: 10.0.0.1}",
        "must be a MAC address of six hex byte pairs",
    ),
    (
        "Endpoint with an IP out of range",
        "kind: Endpoint\nmetadata: {name: bad-ip}\nspec: {macAddress: '00:1A:2B:3C:4D:5E', ip: 192.168.100.300}",
        "must be an IPv4 or IPv6 address",
    ),
    (
        "Endpoint without an IP",
        "kind: Endpoint\nmetadata: {name: no-ip}\nspec: {macAddress: '00:1A:2B:3C:4D:5E'}",
        "spec.ip: Required value",
    ),
    (
        "BMC with both access and endpointRef",
        "kind: BMC\nmetadata: {name: both}\nspec: {access: {macAddress: '00:1A:2B:3C:4D:5E', ip: 10.0.0.1}, endpointRef: {name: e}, bmcSecretRef: {name: s}, protocol: {name: Redfish, port: 443}}",
        "exactly one of spec.access and spec.endpointRef must be set",
    ),
    (
        "BMC with neither access nor endpointRef",
        "kind: BMC\nmetadata: {name: neither}\nspec: {bmcSecretRef: {name: s}, protocol: {name: Redfish, port: 443}}",
        "exactly one of spec.access and spec.endpointRef must be set",
    ),
    (
        "BMC without a secret reference",
        "kind: BMC\nmetadata: {name: no-secret}\nspec: {endpointRef: {name: e}, protocol: {name: Redfish, port: 443}}",
        "spec.bmcSecretRef: Required value",
    ),
    (
        "BMC with an unknown protocol",
        "kind: BMC\nmetadata: {name: telnet}\nspec: {endpointRef: {name: e}, bmcSecretRef: {name: s}, protocol: {name: Telnet, port: 23}}",
        "Unsupported value: \"Telnet\"",
    ),
    (
        "BMC with a port out of range",
        "kind: BMC\nmetadata: {name: port}\nspec: {endpointRef: {name: e}, bmcSecretRef: {name: s}, protocol: {name: Redfish, port: 70000}}",
        "should be less than or equal to 65535",
    ),
    (
        "BMC with an unknown URL scheme",
        "kind: BMC\nmetadata: {name: scheme}\nspec: {endpointRef: {name: e}, bmcSecretRef: {name: s}, protocol: {name: Redfish, port: 443, scheme: ftp}}",
        "Unsupported value: \"ftp\"",
    ),
    (
        "BMC with a bad inline MAC",
        "kind: BMC\nmetadata: {name: inline-mac}\nspec: {access: {macAddress: 'zz:1A:2B:3C:4D:5E', ip: 10.0.0.1}, bmcSecretRef: {name: s}, protocol: {name: Redfish, port: 443}}",
        "must be a MAC address of six hex byte pairs",
    ),
    (
        "Server with a malformed UUID",
        "kind: Server\nmetadata: {name: bad-uuid}\nspec: {systemUUID: not-a-uuid}",
        "must be a UUID, e.g. 123e4567-e89b-12d3-a456-426614174000",
    ),
    (
        "Server with no UUID at all",
        "kind: Server\nmetadata: {name: no-uuid}\nspec: {bmcRef: {name: b}}",
        "spec.systemUUID is required (spec.uuid is accepted as its deprecated alias)",
    ),
    (
        "Server whose uuid and systemUUID disagree",
        "kind: Server\nmetadata: {name: two-uuids}\nspec: {uuid: 00000000-0000-0000-0000-000000000001, systemUUID: 00000000-0000-0000-0000-000000000002}",
        "spec.uuid and spec.systemUUID name different UUIDs",
    ),
    (
        "Server with an unknown power value",
        "kind: Server\nmetadata: {name: power}\nspec: {systemUUID: 00000000-0000-0000-0000-000000000001, power: Maybe}",
        "Unsupported value: \"Maybe\"",
    ),
    (
        "Server with both bmcRef and an inline bmc",
        "kind: Server\nmetadata: {name: two-bmcs}\nspec: {systemUUID: 00000000-0000-0000-0000-000000000001, bmcRef: {name: b}, bmc: {address: 10.0.0.1, bmcSecretRef: {name: s}, protocol: {name: Redfish, port: 443}}}",
        "set at most one of spec.bmcRef and spec.bmc",
    ),
    (
        "ServerBootConfiguration without a serverRef",
        "kind: ServerBootConfiguration\nmetadata: {name: no-server, namespace: default}\nspec: {image: 'os:1'}",
        "spec.serverRef: Required value",
    ),
    (
        "ServerBootConfiguration with an empty server name",
        "kind: ServerBootConfiguration\nmetadata: {name: empty-server, namespace: default}\nspec: {serverRef: {name: ''}}",
        "name must not be empty",
    ),
];

#[tokio::test]
async fn invalid_objects_are_rejected_with_a_clear_message() {
    let control_plane = ControlPlane::shared().await.expect("control plane");
    let _logs = control_plane.logs_on_failure();
    assert!(INVALID.len() >= 12);
    let mut failures = Vec::new();
    for (what, manifest, expected) in INVALID {
        let manifest = format!("apiVersion: metal.ironcore.dev/v1alpha1\n{manifest}\n");
        let output = kubectl(control_plane, &["create", "-f", "-"], Some(&manifest));
        let stderr = text(&output.stderr);
        if output.status.success() {
            failures.push(format!("{what}: accepted"));
        } else if !stderr.contains(expected) {
            failures.push(format!("{what}: expected {expected:?} in:\n{stderr}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test]
async fn immutable_fields_cannot_change() {
    let control_plane = ControlPlane::shared().await.expect("control plane");
    let _logs = control_plane.logs_on_failure();
    let cases = [
        (
            "kind: BMC\nmetadata: {name: immutable-access}\nspec: {access: {macAddress: '00:1A:2B:3C:4D:01', ip: 10.0.0.1}, bmcSecretRef: {name: s}, protocol: {name: Redfish, port: 443}}",
            "kind: BMC\nmetadata: {name: immutable-access}\nspec: {access: {macAddress: '00:1A:2B:3C:4D:01', ip: 10.0.0.2}, bmcSecretRef: {name: s}, protocol: {name: Redfish, port: 443}}",
            "spec.access is immutable",
        ),
        (
            "kind: BMCSecret\nmetadata: {name: immutable-secret}\nimmutable: true\nstringData: {username: admin, password: one}",
            "kind: BMCSecret\nmetadata: {name: immutable-secret}\nimmutable: true\nstringData: {username: admin, password: two}",
            "this BMCSecret is immutable",
        ),
    ];
    for (first, second, expected) in cases {
        let first = format!("apiVersion: metal.ironcore.dev/v1alpha1\n{first}\n");
        let created = kubectl(control_plane, &["apply", "-f", "-"], Some(&first));
        assert!(created.status.success(), "{}", text(&created.stderr));
        let second = format!("apiVersion: metal.ironcore.dev/v1alpha1\n{second}\n");
        let changed = kubectl(control_plane, &["apply", "-f", "-"], Some(&second));
        assert!(!changed.status.success(), "change accepted: {second}");
        let stderr = text(&changed.stderr);
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in:\n{stderr}"
        );
    }
    // A mutable BMCSecret can still be rotated.
    let rotatable = "apiVersion: metal.ironcore.dev/v1alpha1\nkind: BMCSecret\nmetadata: {name: rotatable}\nstringData: {username: admin, password: one}\n";
    assert!(
        kubectl(control_plane, &["apply", "-f", "-"], Some(rotatable))
            .status
            .success()
    );
    let rotated = rotatable.replace("password: one", "password: two");
    let output = kubectl(control_plane, &["apply", "-f", "-"], Some(&rotated));
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[tokio::test]
async fn kubectl_shows_useful_columns_and_explains_every_field() {
    let control_plane = ControlPlane::shared().await.expect("control plane");
    let _logs = control_plane.logs_on_failure();
    let client = control_plane.client().await.expect("client");
    let server = "apiVersion: metal.ironcore.dev/v1alpha1\nkind: Server\nmetadata: {name: columns}\nspec: {systemUUID: 0b0e5b8a-3c3c-4d7e-9f00-000000000042, bmcRef: {name: columns-bmc}}\n";
    let created = kubectl(control_plane, &["apply", "-f", "-"], Some(server));
    assert!(created.status.success(), "{}", text(&created.stderr));
    let status = serde_json::json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1",
        "kind": "Server",
        "status": { "state": "Available", "powerState": "Off", "manufacturer": "Contoso", "model": "3500", "totalSystemMemory": "64Gi" },
    });
    Api::<Server>::all(client)
        .patch_status(
            "columns",
            &PatchParams::apply("api-test").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("patch status");

    let output = kubectl(control_plane, &["get", "servers", "columns"], None);
    let table = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let header: Vec<&str> = table
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "SYSTEMUUID",
            "MANUFACTURER",
            "MODEL",
            "MEMORY",
            "POWERSTATE",
            "STATE",
            "AGE"
        ]
    );
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .expect("row")
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..7],
        [
            "columns",
            "0b0e5b8a-3c3c-4d7e-9f00-000000000042",
            "Contoso",
            "3500",
            "64Gi",
            "Off",
            "Available"
        ]
    );

    let output = kubectl(control_plane, &["get", "bmcs,mep,sbc,bmcsec", "-A"], None);
    assert!(output.status.success(), "{}", text(&output.stderr));

    for (field, words) in [
        ("server.spec.systemUUID", "SMBIOS system UUID"),
        ("bmc.spec.access", "MAC and IP of the BMC"),
        ("mep.spec.macAddress", "MAC address of the device"),
        ("sbc.spec.ignitionSecretRef", "ignition"),
        ("bmcsecret.stringData", "Plain-text values"),
    ] {
        let output = kubectl(control_plane, &["explain", field], None);
        let explained = text(&output.stdout);
        assert!(
            output.status.success(),
            "explain {field}: {}",
            text(&output.stderr)
        );
        assert!(explained.contains(words), "explain {field}:\n{explained}");
    }
}
