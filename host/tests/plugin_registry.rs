//! Plugins as signed OCI artifacts, end to end with real parts: `ferrometal plugin push` to a
//! real CNCF Distribution registry on loopback, signatures made by the real `cosign` CLI
//! (v2.6, key pairs, no transparency log), and the operator's own loading path
//! (`ferrometal plugin list` loads a plugin configuration exactly as `ferrometal run` does;
//! the last test runs the operator itself against a control plane and an emulated BMC).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferrometal::api::Server;
use kube::Api;
use kube::api::ListParams;
use testenv::{ControlPlane, OciRegistry};

mod common;
use common::eventually;

fn ferrometal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrometal"))
        .args(args)
        .output()
        .expect("run ferrometal")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A cosign command with an empty key password (the test keys are unencrypted).
fn cosign(args: &[&str], dir: &Path) -> Output {
    Command::new(&testenv::tools::cosign().path)
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", "")
        .env("COSIGN_YES", "true")
        .output()
        .expect("run cosign (built by `make setup`)")
}

/// A cosign key pair `<name>.key` / `<name>.pub` in `dir`.
fn key_pair(dir: &Path, name: &str) -> PathBuf {
    let output = cosign(&["generate-key-pair", "--output-key-prefix", name], dir);
    assert!(
        output.status.success(),
        "cosign generate-key-pair: {}",
        text(&output)
    );
    dir.join(format!("{name}.pub"))
}

/// Signs `reference` (pinned) with key `name` the way a vendor's release job would: a
/// simple-signing payload under the `.sig` tag.
fn sign(dir: &Path, name: &str, reference: &str) {
    sign_with(dir, name, reference, &[]);
}

fn sign_with(dir: &Path, name: &str, reference: &str, extra: &[&str]) {
    let key = format!("{name}.key");
    let mut args = vec![
        "sign",
        "--key",
        &key,
        "--tlog-upload=false",
        "--allow-http-registry",
        "--allow-insecure-registry",
    ];
    args.extend_from_slice(extra);
    args.push(reference);
    let output = cosign(&args, dir);
    assert!(output.status.success(), "cosign sign: {}", text(&output));
}

/// Whether `cosign verify` accepts `reference` with key `public`.
fn cosign_accepts(dir: &Path, public: &Path, reference: &str) -> bool {
    let output = cosign(
        &[
            "verify",
            "--key",
            public.to_str().expect("utf-8"),
            "--insecure-ignore-tlog=true",
            "--allow-http-registry",
            "--allow-insecure-registry",
            reference,
        ],
        dir,
    );
    output.status.success()
}

/// `ferrometal plugin push`, returning the pinned reference it prints (without `oci://`).
fn push(registry: &OciRegistry, component: &str, repository_and_tag: &str) -> String {
    let file = testenv::components::component(component).expect("built by `make plugins`");
    let output = ferrometal(&[
        "plugin",
        "push",
        file.to_str().expect("utf-8"),
        &format!("{}/{repository_and_tag}", registry.host()),
        "--insecure-registry",
        registry.host(),
    ]);
    assert!(output.status.success(), "plugin push: {}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let pinned = stdout
        .lines()
        .find_map(|line| line.strip_prefix("oci://"))
        .unwrap_or_else(|| panic!("push printed no reference: {stdout}"));
    pinned.to_owned()
}

/// A plugin configuration loading `redfish` from `reference` with `verification`.
fn config(dir: &Path, name: &str, registry: &OciRegistry, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let artifacts = dir.join(format!("artifacts-{name}"));
    std::fs::write(
        &path,
        format!(
            "registry:\n  insecure: [\"{}\"]\nartifactDir: {}\n{body}",
            registry.host(),
            artifacts.display()
        ),
    )
    .expect("write plugin config");
    path
}

fn image_config(reference: &str, world: &str, verification: &str) -> String {
    format!(
        "plugins:\n  redfish:\n    image: oci://{reference}\n    world: {world}\n    grants: [credentials/reveal]\n{verification}"
    )
}

fn all_of(keys: &[&Path]) -> String {
    let mut text = String::from("verification:\n  allOf:\n");
    for (i, key) in keys.iter().enumerate() {
        text.push_str(&format!(
            "    - name: signer-{i}\n      keyFile: {}\n",
            key.display()
        ));
    }
    text
}

/// What `ferrometal plugin list` says when `redfish` is loaded from `reference` as a `world`
/// plugin that every one of `keys` must have signed (configuration file `<name>.yaml`).
fn load_as(
    dir: &Path,
    name: &str,
    registry: &OciRegistry,
    reference: &str,
    world: &str,
    keys: &[&Path],
) -> String {
    let body = image_config(reference, world, "") + &all_of(keys);
    list(dir, &config(dir, name, registry, &body))
}

/// `ferrometal plugin list` with `config` and an empty plugin directory.
fn list(dir: &Path, config: &Path) -> String {
    let empty = dir.join("no-plugins");
    std::fs::create_dir_all(&empty).expect("empty plugin dir");
    let output = ferrometal(&[
        "plugin",
        "list",
        "--dir",
        empty.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    text(&output)
}

/// Whether the listing shows the driver `redfish` loaded.
fn loaded(listing: &str) -> bool {
    listing.lines().any(|line| {
        let mut words = line.split_whitespace();
        words.next() == Some("bmc-driver") && words.next() == Some("redfish")
    })
}

#[tokio::test]
async fn signed_plugins_load_and_every_refusal_is_made_before_compilation_with_its_reason() {
    let registry = OciRegistry::start().await.expect("registry");
    let dir = tempfile::tempdir().expect("tempdir");
    let key_a = key_pair(dir.path(), "vendor");
    let key_b = key_pair(dir.path(), "site");

    let signed = push(&registry, "redfish", "plugins/redfish:1.0");
    sign(dir.path(), "vendor", &signed);

    // Signed by the trusted key: loads, and cosign agrees.
    let listing = load_as(
        dir.path(),
        "accepted",
        &registry,
        &signed,
        "bmc-driver",
        &[&key_a],
    );
    assert!(loaded(&listing), "signed plugin not loaded:\n{listing}");
    assert!(cosign_accepts(dir.path(), &key_a, &signed));

    // `plugin verify` and `plugin inspect` show the same from the command line.
    let verify = ferrometal(&[
        "plugin",
        "verify",
        &signed,
        "--key",
        key_a.to_str().expect("utf-8"),
        "--insecure-registry",
        registry.host(),
    ]);
    assert!(verify.status.success(), "plugin verify: {}", text(&verify));
    let inspect = ferrometal(&[
        "plugin",
        "inspect",
        &format!("oci://{signed}"),
        "--insecure-registry",
        registry.host(),
    ]);
    let inspection = text(&inspect);
    assert!(
        inspection.contains("\"world\": \"bmc-driver\""),
        "{inspection}"
    );
    assert!(inspection.contains("\"signatures\": 1"), "{inspection}");

    // `plugin pull` writes the component byte for byte, named by its digest.
    let pulled = dir.path().join("pulled");
    let pull = ferrometal(&[
        "plugin",
        "pull",
        &signed,
        "--dir",
        pulled.to_str().expect("utf-8"),
        "--insecure-registry",
        registry.host(),
    ]);
    assert!(pull.status.success(), "plugin pull: {}", text(&pull));
    let files: Vec<PathBuf> = std::fs::read_dir(&pulled)
        .expect("pulled directory")
        .flatten()
        .map(|entry| entry.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let original = testenv::components::component("redfish").expect("built");
    assert_eq!(
        std::fs::read(&files[0]).expect("pulled"),
        std::fs::read(original).expect("built")
    );
    assert!(
        files[0]
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("redfish-sha256-")),
        "{files:?}"
    );

    // Signed as a sigstore bundle (cosign 3's default format): accepted the same way.
    let bundled = push(&registry, "redfish", "plugins/bundled:1.0");
    sign_with(dir.path(), "vendor", &bundled, &["--new-bundle-format"]);
    let listing = load_as(
        dir.path(),
        "bundled",
        &registry,
        &bundled,
        "bmc-driver",
        &[&key_a],
    );
    assert!(
        loaded(&listing),
        "bundle-signed plugin not loaded:\n{listing}"
    );

    // Unsigned (never signed, another repository).
    let unsigned = push(&registry, "redfish", "plugins/unsigned:1.0");
    let listing = load_as(
        dir.path(),
        "unsigned",
        &registry,
        &unsigned,
        "bmc-driver",
        &[&key_a],
    );
    assert!(!loaded(&listing), "{listing}");
    assert!(
        listing.contains("is not signed (no cosign signature tag sha256-"),
        "{listing}"
    );
    assert!(!cosign_accepts(dir.path(), &key_a, &unsigned));

    // Signed by another key than the trusted one.
    let other = push(&registry, "redfish", "plugins/other-signer:1.0");
    sign(dir.path(), "site", &other);
    let listing = load_as(
        dir.path(),
        "other",
        &registry,
        &other,
        "bmc-driver",
        &[&key_a],
    );
    assert!(!loaded(&listing), "{listing}");
    assert!(
        listing.contains("no valid signature by signer-0 (allOf)"),
        "{listing}"
    );
    assert!(!cosign_accepts(dir.path(), &key_a, &other));

    // allOf with two keys: the vendor's signature alone is not enough; with the site's too it is.
    let both = config(
        dir.path(),
        "both",
        &registry,
        &(image_config(&signed, "bmc-driver", "") + &all_of(&[&key_a, &key_b])),
    );
    let listing = list(dir.path(), &both);
    assert!(
        listing.contains("no valid signature by signer-1 (allOf)"),
        "{listing}"
    );
    sign(dir.path(), "site", &signed);
    let listing = list(dir.path(), &both);
    assert!(loaded(&listing), "two signers, both signed:\n{listing}");

    // A wrong world: a credential-lookup component, signed, configured as a driver.
    let lookup = push(&registry, "macdb", "plugins/macdb:1.0");
    sign(dir.path(), "vendor", &lookup);
    let listing = load_as(
        dir.path(),
        "world",
        &registry,
        &lookup,
        "bmc-driver",
        &[&key_a],
    );
    assert!(
        listing.contains("is a credential-lookup plugin (its manifest annotation)"),
        "{listing}"
    );

    // Re-pushed under the same tag: the tag no longer resolves to the pinned manifest.
    let moved = push(&registry, "redfish", "plugins/moving:1.0");
    sign(dir.path(), "vendor", &moved);
    push(&registry, "ignition", "plugins/moving:1.0");
    let listing = load_as(
        dir.path(),
        "moved",
        &registry,
        &moved,
        "bmc-driver",
        &[&key_a],
    );
    assert!(listing.contains("but the configuration pins"), "{listing}");

    // A tampered layer: the registry's stored blob changed behind the signed manifest.
    let tampered = push(&registry, "redfish", "plugins/tampered:1.0");
    sign(dir.path(), "vendor", &tampered);
    let component =
        std::fs::read(testenv::components::component("redfish").expect("built")).expect("read");
    let layer = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&component));
    let blob = registry
        .run_dir()
        .join("storage/docker/registry/v2/blobs/sha256")
        .join(&layer[..2])
        .join(&layer)
        .join("data");
    let mut bytes = std::fs::read(&blob).expect("stored layer");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).expect("tamper");
    let listing = load_as(
        dir.path(),
        "tampered",
        &registry,
        &tampered,
        "bmc-driver",
        &[&key_a],
    );
    assert!(listing.contains("the layer was tampered with"), "{listing}");

    // A login file that cannot be read is a configuration problem (`ferrometal run` does not
    // start with one), named with its path and without its contents.
    let broken = dir.path().join("broken-login.json");
    std::fs::write(&broken, "{ \"auths\": s3cret").expect("write login file");
    let login = dir.path().join("login.yaml");
    std::fs::write(
        &login,
        format!(
            "registry:\n  insecure: [\"{}\"]\n  authFile: {}\n{}{}",
            registry.host(),
            broken.display(),
            image_config(&signed, "bmc-driver", ""),
            all_of(&[&key_a])
        ),
    )
    .expect("write plugin config");
    let listing = list(dir.path(), &login);
    assert!(
        listing.contains("the plugin configuration's `registry` cannot be used"),
        "{listing}"
    );
    assert!(listing.contains("broken-login.json"), "{listing}");
    assert!(!listing.contains("s3cret"), "{listing}");

    // A signature tag deleted after signing: refused as unsigned.
    let stripped = push(&registry, "ignition", "plugins/stripped:1.0");
    sign(dir.path(), "vendor", &stripped);
    delete_signature_tag(&registry, "plugins/stripped", &stripped).await;
    let listing = load_as(
        dir.path(),
        "stripped",
        &registry,
        &stripped,
        "ignition-generator",
        &[&key_a],
    );
    assert!(listing.contains("is not signed"), "{listing}");
}

/// Deletes the cosign signature image of `reference` (pinned) through the registry API.
async fn delete_signature_tag(registry: &OciRegistry, repository: &str, reference: &str) {
    let digest = reference.rsplit_once('@').expect("pinned").1;
    let tag = format!("{}.sig", digest.replacen(':', "-", 1));
    let client = reqwest::Client::new();
    let url = format!("http://{}/v2/{repository}/manifests/{tag}", registry.host());
    let head = client
        .head(&url)
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .expect("HEAD signature");
    let signature_digest = head
        .headers()
        .get("Docker-Content-Digest")
        .expect("digest header")
        .to_str()
        .expect("ascii")
        .to_owned();
    let deleted = client
        .delete(format!(
            "http://{}/v2/{repository}/manifests/{signature_digest}",
            registry.host()
        ))
        .send()
        .await
        .expect("DELETE signature");
    assert!(
        deleted.status().is_success(),
        "delete: {}",
        deleted.status()
    );
}

#[tokio::test]
async fn the_operator_discovers_servers_with_a_signed_driver_from_the_registry_and_survives_an_outage()
 {
    let control_plane = ControlPlane::shared().await.expect("control plane");
    let _logs = control_plane.logs_on_failure();
    let client = control_plane.client().await.expect("client");
    let mut registry = OciRegistry::start().await.expect("registry");
    let dir = tempfile::tempdir().expect("tempdir");
    let key = key_pair(dir.path(), "vendor");
    let signed = push(&registry, "redfish", "plugins/redfish:1.0");
    sign(dir.path(), "vendor", &signed);
    let unsigned = push(&registry, "redfish", "plugins/unsigned:1.0");

    const UUID: &str = "5e1f0c2a-0000-4000-8000-0000000000c1";
    let bmc = common::emulated_bmc(&[(UUID, vec!["52:54:00:c1:00:01".to_owned()])], false).await;
    let plugins = common::plugin_dir(dir.path(), &["macdb"]);
    let plugin_config = config(
        dir.path(),
        "operator",
        &registry,
        &format!(
            "plugins:\n  redfish:\n    image: oci://{signed}\n    world: bmc-driver\n    grants: [credentials/reveal]\n  vendor-redfish:\n    image: oci://{unsigned}\n    world: bmc-driver\n{}",
            all_of(&[&key])
        ),
    );
    let macdb = dir.path().join("macdb.yaml");
    std::fs::write(&macdb, "macPrefixes: []\n").expect("write macdb");
    let metrics_port = testenv::net::free_port().expect("port");
    let start = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferrometal"));
        command
            .arg("run")
            .arg("--plugin-dir")
            .arg(&plugins)
            .arg("--plugin-config")
            .arg(&plugin_config)
            .arg("--mac-db")
            .arg(&macdb)
            .args(["--bmc-resync-seconds", "2"])
            .arg("--metrics-bind-address")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .args(["--boot-bind-address", "127.0.0.1:0"])
            .env("KUBECONFIG", control_plane.kubeconfig_path())
            .env("FERROMETAL_LOG", "info");
        testenv::Program::start("ferrometal-run", command).expect("start ferrometal run")
    };
    let mut operator = start();
    common::kubectl_apply(
        control_plane,
        &format!(
            "apiVersion: metal.ironcore.dev/v1alpha1\nkind: BMCSecret\nmetadata: {{name: oci-bmc-secret}}\ndata: {{username: YWRtaW4=, password: Ym1jLXB3}}\n---\n\
             apiVersion: metal.ironcore.dev/v1alpha1\nkind: BMC\nmetadata: {{name: oci-bmc}}\nspec:\n  access: {{macAddress: '02:00:00:00:c1:01', ip: 127.0.0.1}}\n  bmcSecretRef: {{name: oci-bmc-secret}}\n  protocol: {{name: Redfish, port: {}, scheme: http}}\n",
            bmc.port()
        ),
    );
    let servers: Api<Server> = Api::all(client.clone());
    let found = |servers: Api<Server>| async move {
        servers
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|s| s.spec.system_uuid.as_deref() == Some(UUID))
    };
    eventually(
        "a Server discovered through the driver from the registry",
        || found(servers.clone()),
    )
    .await;
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    assert!(
        metrics.contains("ferrometal_plugin_loads_total{outcome=\"unsigned\"} 1"),
        "the refusal is counted:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("loads"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        operator.log().contains("vendor-redfish refused"),
        "{}",
        operator.log_tail(30)
    );

    // The registry goes away; a restarted operator loads the verified copy it kept.
    operator.kill().expect("stop operator");
    registry.stop().expect("stop registry");
    let operator = start();
    eventually(
        "the restarted operator loading the driver it kept",
        || async {
            operator
                .log()
                .lines()
                .any(|line| line.contains("plugin verified") && line.contains("from_store=true"))
                .then_some(())
        },
    )
    .await;
    assert!(
        operator
            .log()
            .contains("registry unreachable; checking the stored copy"),
        "{}",
        operator.log_tail(30)
    );
    drop(bmc);
}
