//! The boot server and the BootConfig reconciler in `ferrometal run`, against a real control
//! plane and a real OCI registry (Debian's docker-registry) holding images pushed with an OCI
//! client: ServerBootConfigurations go Ready or Error with the cause, and a client that acts
//! like iPXE fetches its script, kernel, initramfs and ignition.

use std::collections::BTreeMap;
use std::process::Command;

use ferrometal::api::{Server, ServerBootConfiguration};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use sha2::{Digest, Sha256};
mod common;
use common::eventually;
use testenv::{ControlPlane, OciRegistry};

const NAMESPACE: &str = "boot-server-test";
const KERNEL: &str = "application/vnd.ironcore.image.kernel";
const INITRAMFS: &str = "application/vnd.ironcore.image.initramfs";
const SQUASHFS: &str = "application/vnd.ironcore.image.squashfs";
const UKI: &str = "application/vnd.ironcore.image.uki";
const IGNITION: &str = r#"{"ignition":{"version":"3.4.0"}}"#;

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Deterministic bytes big enough to stream in several chunks.
fn blob(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

struct Fixture {
    namespace: &'static str,
    client: Client,
    base_url: String,
    http: reqwest::Client,
    operator: Option<testenv::Program>,
}

impl Fixture {
    /// A Server that names the boot configuration of its own name (as metal-operator sets
    /// `spec.bootConfigurationRef` when it boots one).
    async fn server(&self, name: &str, uuid: &str) {
        let server: Server = serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1",
            "kind": "Server",
            "metadata": {"name": name},
            "spec": {"systemUUID": uuid,
                     "bootConfigurationRef": {"namespace": self.namespace, "name": name}},
        }))
        .expect("server");
        Api::<Server>::all(self.client.clone())
            .create(&PostParams::default(), &server)
            .await
            .expect("create server");
    }

    async fn secret(&self, name: &str, data: &[(&str, &str)]) {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Secret::default()
        };
        Api::<Secret>::namespaced(self.client.clone(), self.namespace)
            .create(&PostParams::default(), &secret)
            .await
            .expect("create secret");
    }

    async fn sbc(&self, name: &str, server: &str, image: &str, secret: Option<&str>) {
        let mut spec = json!({"serverRef": {"name": server}, "image": image});
        if let Some(secret) = secret {
            spec["ignitionSecretRef"] = json!({"name": secret});
        }
        let sbc: ServerBootConfiguration = serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1",
            "kind": "ServerBootConfiguration",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        }))
        .expect("sbc");
        self.sbcs()
            .create(&PostParams::default(), &sbc)
            .await
            .expect("create sbc");
    }

    fn sbcs(&self) -> Api<ServerBootConfiguration> {
        Api::namespaced(self.client.clone(), self.namespace)
    }

    /// Waits until the configuration has `state` and returns (reason, message) of condition
    /// `kind`; on timeout, fails showing the status last seen.
    async fn state(&self, name: &str, state: &str, kind: &str) -> (String, String) {
        let mut last = serde_json::Value::Null;
        for _ in 0..600 {
            if let Ok(Some(sbc)) = self.sbcs().get_opt(name).await {
                last = serde_json::to_value(&sbc.status).unwrap_or_default();
                let condition = last["conditions"]
                    .as_array()
                    .and_then(|conditions| conditions.iter().find(|c| c["type"] == kind));
                if last["state"] == state
                    && let Some(condition) = condition
                {
                    return (
                        condition["reason"].as_str().unwrap_or_default().to_owned(),
                        condition["message"].as_str().unwrap_or_default().to_owned(),
                    );
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("{name} did not become {state} with a {kind} condition; last status: {last:#}");
    }

    async fn get(&self, path: &str) -> (u16, String, Vec<u8>) {
        let response = self
            .http
            .get(format!("{}{path}", self.base_url))
            .send()
            .await
            .expect("boot server answers");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (
            status,
            content_type,
            response.bytes().await.expect("body").to_vec(),
        )
    }
}

/// What an iPXE client does with a script: expand `set` variables and collect the URLs of
/// `kernel`, `initrd` and `chain` of the final try, plus the kernel's ignition URL.
fn follow_script(script: &str) -> (Vec<String>, Option<String>) {
    let mut variables: BTreeMap<String, String> = BTreeMap::new();
    let expand = |word: &str, variables: &BTreeMap<String, String>| {
        variables
            .iter()
            .fold(word.to_owned(), |word, (name, value)| {
                word.replace(&format!("${{{name}}}"), value)
            })
    };
    let mut fetches = Vec::new();
    let mut ignition = None;
    // Lines with `|| sleep N` are earlier tries of what the last lines do once more.
    for line in script.lines().filter(|line| !line.contains("||")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["set", name, value @ ..] => {
                variables.insert((*name).to_owned(), expand(&value.join(" "), &variables));
            }
            ["kernel", url, args @ ..] | ["chain", url, args @ ..] => {
                fetches.push(expand(url, &variables));
                ignition = expand(&args.join(" "), &variables)
                    .split_whitespace()
                    .find_map(|arg| arg.strip_prefix("ignition.config.url="))
                    .map(str::to_owned);
            }
            ["initrd", "--name", _, url] => fetches.push(expand(url, &variables)),
            _ => {}
        }
    }
    (fetches, ignition)
}

#[tokio::test]
async fn boot_configurations_resolve_and_machines_fetch_what_they_boot() {
    let control_plane = ControlPlane::shared().await.expect("control plane");
    let _logs = control_plane.logs_on_failure();
    let client = control_plane.client().await.expect("client");
    let registry = OciRegistry::start().await.expect("registry");
    let host = registry.host().to_owned();

    let kernel = blob(1, 300_000);
    let initramfs = blob(2, 70_000);
    let squashfs = blob(3, 1_000);
    let uki = {
        let mut cmdline = b"console=ttyS0,115200".to_vec();
        cmdline.resize(1024, b' ');
        testenv::pe::uki(&cmdline, 1024, 0x1000)
    };
    registry
        .push_image(
            "discovery:1",
            &[
                (KERNEL, &kernel),
                (INITRAMFS, &initramfs),
                (SQUASHFS, &squashfs),
            ],
        )
        .await
        .expect("push discovery image");
    registry
        .push_image("uki:1", &[(UKI, &uki)])
        .await
        .expect("push uki image");
    registry
        .push_image("broken:1", &[(INITRAMFS, &initramfs)])
        .await
        .expect("push image without kernel");
    let arm = registry
        .push_image(
            "multi:arm64",
            &[(KERNEL, b"arm kernel"), (INITRAMFS, &initramfs)],
        )
        .await
        .expect("push arm64");
    let amd = registry
        .push_image(
            "multi:amd64",
            &[(KERNEL, b"amd kernel"), (INITRAMFS, &initramfs)],
        )
        .await
        .expect("push amd64");
    registry
        .push_index("multi:1", &[("arm64", &arm), ("amd64", &amd)])
        .await
        .expect("push index");

    common::create_namespace(&client, NAMESPACE).await;
    let port = testenv::net::free_port().expect("port");
    let dead_registry = format!("127.0.0.1:{}", testenv::net::free_port().expect("port"));
    let base_url = format!("http://127.0.0.1:{port}");
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrometal"));
    command
        .arg("run")
        .args(["--plugin-dir", "/nonexistent"])
        .args(["--metrics-bind-address", "127.0.0.1:0"])
        .args(["--namespace", NAMESPACE])
        .arg("--boot-bind-address")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--boot-server-url")
        .arg(&base_url)
        .arg("--boot-allowed-registries")
        .arg(format!("{host},{dead_registry}"))
        .arg("--boot-insecure-registries")
        .arg(format!("{host},{dead_registry}"))
        .args(["--boot-trusted-proxies", "127.0.0.1/32"])
        .env("KUBECONFIG", control_plane.kubeconfig_path())
        .env("FERROMETAL_LOG", "info,ferrometal=debug");
    let operator = testenv::Program::start("ferrometal-run", command).expect("start ferrometal");
    let fixture = Fixture {
        namespace: NAMESPACE,
        client: client.clone(),
        base_url: base_url.clone(),
        http: reqwest::Client::new(),
        operator: Some(operator),
    };

    // A ready configuration: Server (UUID as a user might type it), Secret, SBC.
    let uuid = "0B5E5E2A-0000-4000-8000-0000000000B1";
    let canonical = uuid.to_ascii_lowercase();
    fixture.server("boot-1", uuid).await;
    fixture
        .secret(
            "boot-1-ignition",
            &[("ignition", IGNITION), ("boot-token", "s3cret")],
        )
        .await;
    fixture
        .sbc(
            "boot-1",
            "boot-1",
            &format!("{host}/discovery:1"),
            Some("boot-1-ignition"),
        )
        .await;
    let (reason, message) = fixture.state("boot-1", "Ready", "ImageValidation").await;
    assert_eq!(reason, "ImageResolved");
    assert!(
        message.contains("(kernel, initramfs, squashfs)"),
        "{message}"
    );

    // The chain script, then the machine's own script, exactly.
    let (status, content_type, body) = fixture.get("/ipxe").await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/plain; charset=utf-8")
    );
    let body = String::from_utf8_lossy(&body);
    let fetch = format!("chain --replace --autofree {base_url}/ipxe/${{uuid}}");
    assert_eq!(body.lines().next(), Some("#!ipxe"));
    assert_eq!(body.lines().last(), Some(fetch.as_str()));
    assert!(
        body.lines()
            .skip(1)
            .all(|line| line.starts_with(&format!("{fetch} || sleep ")) || line == fetch),
        "every line fetches the machine's script, pausing after a failure: {body}"
    );
    let (status, _, script) = fixture.get(&format!("/ipxe/{uuid}")).await;
    assert_eq!(status, 200);
    let script = String::from_utf8(script).expect("utf-8");
    // The script carries a fetch ticket derived from the registry token, never the token.
    let ticket = ferrometal::boot::index::fetch_ticket("s3cret");
    assert!(!script.contains("s3cret"), "{script}");
    let image_url = |bytes: &[u8]| format!("{base_url}/images/{}", digest(bytes).replace(':', "-"));
    let kernel_line = "kernel ${kernel-url} initrd=initramfs ${kernel-args}";
    assert!(
        script.starts_with(&format!(
            "#!ipxe\n# ferrometal: boot for system {canonical}\n\
             set kernel-url {}\nset initrd-url {}\nset squashfs-url {}\n\
             set kernel-args ignition.firstboot=1 \
             ignition.config.url={base_url}/ignition/{canonical}?ticket={ticket} \
             ignition.platform.id=metal gl.ovl=/:tmpfs gl.url=${{squashfs-url}} gl.live=1 \
             console=tty0 console=ttyS0,115200\n\
             imgfree && {kernel_line} && initrd --name initramfs ${{initrd-url}} && boot || sleep ",
            image_url(&kernel),
            image_url(&initramfs),
            image_url(&squashfs),
        )),
        "{script}"
    );
    assert!(
        script.ends_with(&format!(
            "imgfree\n{kernel_line}\ninitrd --name initramfs ${{initrd-url}}\nboot\n"
        )),
        "{script}"
    );

    // Follow it like iPXE: kernel and initramfs stream from the registry, byte for byte.
    let (fetches, ignition_url) = follow_script(&script);
    assert_eq!(fetches, [image_url(&kernel), image_url(&initramfs)]);
    for (url, expected) in fetches.iter().zip([&kernel, &initramfs]) {
        let response = reqwest::get(url).await.expect("layer");
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(
            response.headers()["content-type"],
            "application/octet-stream"
        );
        assert_eq!(
            &response.bytes().await.expect("bytes")[..],
            &expected[..],
            "{url}"
        );
    }
    // Layers are fetched from the registry once and verified: with the registry's copies
    // corrupted on disk, the kernel fetched above is still served intact from the cache,
    // and the squashfs (not fetched yet) is refused rather than served wrong.
    let blobs = registry
        .run_dir()
        .join("storage/docker/registry/v2/blobs/sha256");
    for bytes in [&kernel, &squashfs] {
        let hex = digest(bytes).trim_start_matches("sha256:").to_owned();
        std::fs::write(
            blobs.join(&hex[..2]).join(&hex).join("data"),
            vec![0xEE; bytes.len()],
        )
        .expect("corrupt the registry's copy");
    }
    let again = reqwest::get(&image_url(&kernel)).await.expect("kernel");
    assert_eq!(again.status(), 200);
    assert_eq!(&again.bytes().await.expect("bytes")[..], &kernel[..]);
    let corrupted = reqwest::get(&image_url(&squashfs)).await.expect("squashfs");
    assert_eq!(
        corrupted.status(),
        502,
        "a layer that fails its digest check is not served"
    );

    let ignition_url = ignition_url.expect("ignition URL on the kernel command line");
    // The registry does not take the fetch ticket for its token.
    let bootstate = |bearer: String| {
        let http = fixture.http.clone();
        let url = format!("{base_url}/bootstate");
        async move {
            http.post(url)
                .bearer_auth(bearer)
                .json(&json!({"systemUUID": canonical_uuid(), "booted": true}))
                .send()
                .await
                .expect("bootstate")
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        bootstate(ticket.clone()).await,
        403,
        "the ticket is no registry token"
    );
    // Without the ticket, or with a wrong one, no ignition.
    let ignition_path = format!("/ignition/{canonical}");
    assert_eq!(fixture.get(&ignition_path).await.0, 403);
    assert_eq!(
        fixture
            .get(&format!("{ignition_path}?ticket=guess"))
            .await
            .0,
        403
    );
    assert_eq!(
        fixture
            .get(&format!("{ignition_path}?token=s3cret"))
            .await
            .0,
        403,
        "the registry token is no fetch ticket"
    );
    // The machine (127.0.0.1) uses its ticket; a bystander (127.0.0.9) who read the script
    // is refused, and the configuration records both addresses.
    let response = reqwest::get(&ignition_url).await.expect("ignition");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("text"), IGNITION);
    let bystander = reqwest::Client::builder()
        .local_address("127.0.0.9".parse::<std::net::IpAddr>().expect("ip"))
        .build()
        .expect("client");
    let refused = bystander.get(&ignition_url).send().await.expect("ignition");
    assert_eq!(refused.status(), 403);
    let (reason, message) = fixture.state("boot-1", "Ready", "FetchTicketReused").await;
    assert_eq!(reason, "FetchTicketRefused");
    assert!(
        message.contains("used from 127.0.0.1") && message.contains("again from 127.0.0.9"),
        "{message}"
    );
    assert_eq!(
        bootstate(String::from("s3cret")).await,
        200,
        "the registry token works"
    );

    // Another configuration naming the same Server is not served: the Server names boot-1.
    fixture
        .sbc(
            "boot-1-other",
            "boot-1",
            &format!("{host}/discovery:1"),
            Some("boot-1-ignition"),
        )
        .await;
    let (reason, message) = fixture.state("boot-1-other", "Error", "Ready").await;
    assert_eq!(reason, "NotTheServersBootConfiguration");
    assert!(
        message.contains(&format!("{NAMESPACE}/boot-1")),
        "{message}"
    );
    let (status, _, script) = fixture.get(&format!("/ipxe/{uuid}")).await;
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&script).contains(&ticket),
        "boot-1 is still served"
    );

    // Unknown machines and blobs: 404.
    let (status, _, body) = fixture
        .get("/ipxe/ffffffff-0000-4000-8000-000000000000")
        .await;
    assert_eq!((status, body.as_slice()), (404, b"not found\n".as_slice()));
    assert_eq!(fixture.get("/ipxe/not-a-uuid").await.0, 404);
    assert_eq!(
        fixture
            .get("/ignition/ffffffff-0000-4000-8000-000000000000?token=s3cret")
            .await
            .0,
        404
    );
    assert_eq!(
        fixture
            .get(&format!("/images/sha256-{}", "0".repeat(64)))
            .await
            .0,
        404,
        "the proxy serves only layers of configured images"
    );

    // The fetches are recorded on the configuration beside the reconciler's conditions.
    for kind in [
        "IPXEScriptFetched",
        "IgnitionDataFetched",
        "ImageValidation",
    ] {
        fixture.state("boot-1", "Ready", kind).await;
    }

    // Failures, each with its cause.
    let cases = [
        ("bad-ref", "Not A Reference!".to_owned(), "BadReference"),
        (
            "not-allowed",
            "ghcr.io/ironcore-dev/os-images/gardenlinux:1877.0".to_owned(),
            "RegistryNotAllowed",
        ),
        (
            "unreachable",
            format!("{dead_registry}/discovery:1"),
            "RegistryUnreachable",
        ),
        (
            "no-such-tag",
            format!("{host}/discovery:nope"),
            "ImageNotFound",
        ),
        ("no-kernel", format!("{host}/broken:1"), "MissingLayer"),
    ];
    for (i, (name, image, _)) in cases.iter().enumerate() {
        fixture
            .server(name, &format!("0b5e5e2a-0000-4000-8000-00000000010{i}"))
            .await;
        fixture.sbc(name, name, image, None).await;
    }
    for (name, _, expected) in &cases {
        let (reason, message) = fixture.state(name, "Error", "ImageValidation").await;
        assert_eq!(&reason, expected, "{name}: {message}");
        let (ready_reason, _) = fixture.state(name, "Error", "Ready").await;
        assert_eq!(&ready_reason, expected);
    }

    // A missing Secret is an error until it appears; one without a boot token stays one.
    fixture
        .server("late-secret", "0b5e5e2a-0000-4000-8000-000000000201")
        .await;
    fixture
        .sbc(
            "late-secret",
            "late-secret",
            &format!("{host}/discovery:1"),
            Some("late"),
        )
        .await;
    let (reason, message) = fixture
        .state("late-secret", "Error", "IgnitionSecret")
        .await;
    assert_eq!(reason, "SecretNotFound", "{message}");
    fixture
        .secret("late", &[("ignition", IGNITION), ("boot-token", "t2")])
        .await;
    fixture
        .state("late-secret", "Ready", "IgnitionSecret")
        .await;

    fixture
        .server("no-token", "0b5e5e2a-0000-4000-8000-000000000202")
        .await;
    fixture.secret("no-token", &[("ignition", IGNITION)]).await;
    fixture
        .sbc(
            "no-token",
            "no-token",
            &format!("{host}/discovery:1"),
            Some("no-token"),
        )
        .await;
    let (reason, message) = fixture.state("no-token", "Error", "IgnitionSecret").await;
    assert_eq!(reason, "BootTokenMissing");
    assert!(
        message.contains("--boot-allow-unauthenticated-ignition"),
        "{message}"
    );

    // An index is resolved by architecture.
    fixture
        .server("multi", "0b5e5e2a-0000-4000-8000-000000000301")
        .await;
    fixture
        .sbc("multi", "multi", &format!("{host}/multi:1"), None)
        .await;
    fixture.state("multi", "Ready", "ImageValidation").await;
    let (_, _, script) = fixture
        .get("/ipxe/0b5e5e2a-0000-4000-8000-000000000301")
        .await;
    let script = String::from_utf8(script).expect("utf-8");
    assert!(script.contains(&image_url(b"amd kernel")), "{script}");
    assert!(
        !script.contains("ignition"),
        "no Secret, no ignition: {script}"
    );

    // UEFI HTTP boot: a DHCP helper asks for a machine by its MAC; the UKI is served as EFI.
    fixture
        .server("uki", "0b5e5e2a-0000-4000-8000-000000000401")
        .await;
    Api::<Server>::all(client.clone())
        .patch_status(
            "uki",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"networkInterfaces": [
                {"name": "eth0", "macAddress": "52:54:00:AA:00:01", "ip": "10.9.0.5"}
            ]}})),
        )
        .await
        .expect("server status");
    fixture
        .secret(
            "uki-ignition",
            &[("ignition", IGNITION), ("boot-token", "uk1-t0ken")],
        )
        .await;
    fixture
        .sbc("uki", "uki", &format!("{host}/uki:1"), Some("uki-ignition"))
        .await;
    fixture.state("uki", "Ready", "ImageValidation").await;
    let answer: serde_json::Value = eventually("the /httpboot answer", || {
        let http = fixture.http.clone();
        let url = format!("{base_url}/httpboot");
        async move {
            let response = http
                .get(url)
                .header("X-Forwarded-For", "52:54:00:aa:00:01")
                .send()
                .await
                .ok()?;
            if response.status() != 200 {
                return None;
            }
            response.json().await.ok()
        }
    })
    .await;
    let uki_url = format!("{}.efi", image_url(&uki));
    assert_eq!(
        answer,
        json!({
            "ClientIPs": ["52:54:00:aa:00:01"],
            "UKIURL": uki_url,
            "SystemUUID": "0b5e5e2a-0000-4000-8000-000000000401",
        })
    );
    let response = reqwest::get(&uki_url).await.expect("uki");
    assert_eq!(response.headers()["content-type"], "application/efi");
    assert_eq!(&response.bytes().await.expect("bytes")[..], &uki[..]);

    // Firmware that boots the UKI straight over UEFI HTTP is sent (by ferrometal's DHCP) to
    // its own copy, named by MAC or UUID: the image's command line, then the ignition URL
    // with this boot's fetch ticket; nothing else in the file changes.
    let uki_ticket = ferrometal::boot::index::fetch_ticket("uk1-t0ken");
    let uki_uuid = "0b5e5e2a-0000-4000-8000-000000000401";
    for id in ["52-54-00-AA-00-01.efi", "52:54:00:aa:00:01", uki_uuid] {
        let (status, content_type, body) = fixture.get(&format!("/uki/{id}")).await;
        assert_eq!(
            (status, content_type.as_str()),
            (200, "application/efi"),
            "{id}"
        );
        assert_eq!(body.len(), uki.len());
        assert_eq!(
            testenv::pe::command_line(&body).as_deref(),
            Some(
                format!(
                    "console=ttyS0,115200 ignition.firstboot=1 \
                     ignition.config.url={base_url}/ignition/{uki_uuid}?ticket={uki_ticket} \
                     ignition.platform.id=metal"
                )
                .as_str()
            ),
            "{id}"
        );
        let unchanged = testenv::pe::CMDLINE_OFFSET + 1024;
        assert_eq!(body[unchanged..], uki[unchanged..], "{id}");
    }
    let (reason, _) = fixture.state("uki", "Ready", "IPXEScriptFetched").await;
    assert_eq!(
        reason, "IPXEScriptDelivered",
        "the UKI download counts as the script's"
    );
    let (status, _, body) = fixture
        .get(&format!("/ignition/{uki_uuid}?ticket={uki_ticket}"))
        .await;
    assert_eq!((status, body.as_slice()), (200, IGNITION.as_bytes()));
    for unknown in ["52:54:00:aa:00:02", "0b5e5e2a-0000-4000-8000-000000000499"] {
        assert_eq!(
            fixture.get(&format!("/uki/{unknown}")).await.0,
            404,
            "{unknown}"
        );
    }
    // An image with kernel and initramfs but no UKI has nothing to boot over UEFI HTTP.
    assert_eq!(fixture.get(&format!("/uki/{uuid}")).await.0, 404);

    // Deleting the configuration stops serving the machine.
    fixture
        .sbcs()
        .delete("boot-1", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("boot-1 to be forgotten", || async {
        (fixture.get(&format!("/ipxe/{uuid}")).await.0 == 404).then_some(())
    })
    .await;

    let mut operator = fixture.operator.expect("the operator");
    operator
        .ensure_running()
        .unwrap_or_else(|error| panic!("ferrometal died: {error}"));
    let log = operator.log_tail(400);
    assert!(
        log.contains("no Ready ServerBootConfiguration for this system; answering 404"),
        "unknown machines are logged:\n{log}"
    );
    let whole_log = operator.log();
    for secret in ["s3cret", ticket.as_str(), "uk1-t0ken", uki_ticket.as_str()] {
        assert!(
            !whole_log.contains(secret),
            "a token or ticket reached the operator's log"
        );
    }
}

fn canonical_uuid() -> &'static str {
    "0b5e5e2a-0000-4000-8000-0000000000b1"
}

/// After a start, the boot server does not know a machine until the boot-configuration
/// controller has looked at every configuration: meanwhile it asks machines to come back
/// (`503` + `Retry-After`) instead of saying `404`, and `/readyz` says what it waits for.
/// A registry that accepts connections and never answers holds the only configuration's
/// reconcile (and so the index) for the resolver's 10 s timeout.
#[tokio::test]
async fn a_starting_boot_server_asks_machines_to_come_back_until_its_index_is_filled() {
    const SYNC_NAMESPACE: &str = "boot-sync-test";
    let control_plane = ControlPlane::shared().await.expect("control plane");
    let _logs = control_plane.logs_on_failure();
    let client = control_plane.client().await.expect("client");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("silent registry");
    let silent_host = silent.local_addr().expect("address").to_string();
    common::create_namespace(&client, SYNC_NAMESPACE).await;

    let port = testenv::net::free_port().expect("port");
    let metrics_port = testenv::net::free_port().expect("port");
    let base_url = format!("http://127.0.0.1:{port}");
    let mut fixture = Fixture {
        namespace: SYNC_NAMESPACE,
        client: client.clone(),
        base_url: base_url.clone(),
        http: reqwest::Client::new(),
        operator: None,
    };
    let uuid = "0b5e5e2a-0000-4000-8000-0000000000c1";
    fixture.server("sync-1", uuid).await;
    fixture
        .secret("sync-1-ignition", &[("ignition", IGNITION)])
        .await;
    fixture
        .sbc(
            "sync-1",
            "sync-1",
            &format!("{silent_host}/discovery:1"),
            Some("sync-1-ignition"),
        )
        .await;

    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrometal"));
    command
        .arg("run")
        .args(["--plugin-dir", "/nonexistent"])
        .arg("--metrics-bind-address")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .args(["--namespace", SYNC_NAMESPACE])
        .arg("--boot-bind-address")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--boot-server-url")
        .arg(&base_url)
        .arg("--boot-allowed-registries")
        .arg(&silent_host)
        .arg("--boot-insecure-registries")
        .arg(&silent_host)
        .env("KUBECONFIG", control_plane.kubeconfig_path())
        .env("FERROMETAL_LOG", "info,ferrometal=debug");
    fixture.operator =
        Some(testenv::Program::start("ferrometal-run", command).expect("start ferrometal"));

    let readyz = format!("http://127.0.0.1:{metrics_port}/readyz");
    let http = fixture.http.clone();
    // While the configuration's image is being resolved: come back later.
    let (status, retry_after) = eventually("the boot server answers", || async {
        let response = http
            .get(format!("{base_url}/ipxe/{uuid}"))
            .send()
            .await
            .ok()?;
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Some((response.status().as_u16(), retry_after))
    })
    .await;
    assert_eq!((status, retry_after.as_deref()), (503, Some("2")));
    let (status, _, body) = fixture
        .get("/ignition/0b5e5e2a-0000-4000-8000-0000000000ff")
        .await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    let response = http.get(&readyz).send().await.expect("readyz");
    assert_eq!(response.status().as_u16(), 503);
    let waiting = response.text().await.expect("body");
    assert!(waiting.contains("boot index"), "{waiting}");

    // Once the resolution gave up, the index says what it will say: not served (404).
    let mut last = String::new();
    for _ in 0..600 {
        if let Ok(response) = http.get(&readyz).send().await {
            let ready = response.status().as_u16() == 200;
            last = response.text().await.unwrap_or_default();
            if ready {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let log = fixture
        .operator
        .as_ref()
        .map(|operator| operator.log_tail(60))
        .unwrap_or_default();
    assert_eq!(
        last.trim(),
        "ok",
        "/readyz never became ready; operator log:\n{log}"
    );
    let (status, _, _) = fixture.get(&format!("/ipxe/{uuid}")).await;
    assert_eq!(status, 404);
    let (reason, message) = fixture.state("sync-1", "Error", "ImageValidation").await;
    assert!(!reason.is_empty(), "{message}");
    drop(silent);
}

/// One boot server on the IPv6 wildcard serves both families, and tells each machine the
/// URL of the family it asked over: the chain script, the machine's script (kernel, initrd,
/// ignition URL) and its personalised UKI; the machine then fetches its ignition over IPv6.
#[tokio::test]
async fn a_dual_stack_boot_server_tells_each_family_its_own_url() {
    const DUAL_NAMESPACE: &str = "boot-dual-stack-test";
    let control_plane = ControlPlane::shared().await.expect("control plane");
    let _logs = control_plane.logs_on_failure();
    let client = control_plane.client().await.expect("client");
    let registry = OciRegistry::start().await.expect("registry");
    let host = registry.host().to_owned();
    let uki = {
        let mut cmdline = b"console=ttyS0,115200".to_vec();
        cmdline.resize(1024, b' ');
        testenv::pe::uki(&cmdline, 1024, 0x1000)
    };
    let (kernel, initramfs) = (blob(5, 10_000), blob(6, 10_000));
    registry
        .push_image(
            "dual:1",
            &[(KERNEL, &kernel), (INITRAMFS, &initramfs), (UKI, &uki)],
        )
        .await
        .expect("push image");
    common::create_namespace(&client, DUAL_NAMESPACE).await;

    let port = testenv::net::free_port().expect("port");
    let (v4, v6) = (
        format!("http://127.0.0.1:{port}"),
        format!("http://[::1]:{port}"),
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrometal"));
    command
        .arg("run")
        .args(["--plugin-dir", "/nonexistent"])
        .args(["--metrics-bind-address", "127.0.0.1:0"])
        .args(["--namespace", DUAL_NAMESPACE])
        .arg("--boot-bind-address")
        .arg(format!("[::]:{port}"))
        .arg("--boot-server-url")
        .arg(format!("{v6},{v4}"))
        .arg("--boot-allowed-registries")
        .arg(&host)
        .arg("--boot-insecure-registries")
        .arg(&host)
        .env("KUBECONFIG", control_plane.kubeconfig_path())
        .env("FERROMETAL_LOG", "info,ferrometal=debug");
    let fixture = Fixture {
        namespace: DUAL_NAMESPACE,
        client: client.clone(),
        base_url: v4.clone(),
        http: reqwest::Client::new(),
        operator: Some(testenv::Program::start("ferrometal-run", command).expect("start")),
    };
    let uuid = "0b5e5e2a-0000-4000-8000-0000000000d1";
    fixture.server("dual-1", uuid).await;
    fixture
        .secret(
            "dual-1-ignition",
            &[("ignition", IGNITION), ("boot-token", "du4l-t0ken")],
        )
        .await;
    fixture
        .sbc(
            "dual-1",
            "dual-1",
            &format!("{host}/dual:1"),
            Some("dual-1-ignition"),
        )
        .await;
    fixture.state("dual-1", "Ready", "ImageValidation").await;
    let ticket = ferrometal::boot::index::fetch_ticket("du4l-t0ken");

    let get = |url: String| {
        let http = fixture.http.clone();
        async move {
            let response = http
                .get(&url)
                .send()
                .await
                .expect("the boot server answers");
            let status = response.status().as_u16();
            (status, response.bytes().await.expect("body").to_vec())
        }
    };
    for base in [&v4, &v6] {
        let (status, chain) = get(format!("{base}/ipxe")).await;
        assert_eq!(status, 200);
        let chain = String::from_utf8(chain).expect("utf-8");
        assert!(
            chain.contains(&format!("chain --replace --autofree {base}/ipxe/${{uuid}}")),
            "asked over {base}: {chain}"
        );
        let (status, script) = get(format!("{base}/ipxe/{uuid}")).await;
        assert_eq!(status, 200);
        let script = String::from_utf8(script).expect("utf-8");
        assert!(
            script.contains(&format!("set kernel-url {base}/images/sha256-"))
                && script.contains(&format!(
                    "ignition.config.url={base}/ignition/{uuid}?ticket={ticket}"
                )),
            "asked over {base}, the script names {base} throughout: {script}"
        );
        let (status, served) = get(format!("{base}/uki/{uuid}.efi")).await;
        assert_eq!(status, 200);
        let cmdline = testenv::pe::command_line(&served).expect(".cmdline");
        assert!(
            cmdline.contains(&format!(
                "ignition.config.url={base}/ignition/{uuid}?ticket={ticket}"
            )),
            "asked over {base}: {cmdline}"
        );
    }
    let (status, body) = get(format!("{v6}/ignition/{uuid}?ticket={ticket}")).await;
    assert_eq!((status, body.as_slice()), (200, IGNITION.as_bytes()));
    let (_, message) = fixture
        .state("dual-1", "Ready", "IgnitionDataFetched")
        .await;
    assert!(
        message.contains("from ::1 "),
        "the fetch is recorded with the IPv6 address: {message}"
    );
}
