//! The DHCP server in `ferrometal run` against a real DHCP client (busybox udhcpc) in a
//! network namespace joined to the host by a veth pair: addresses from the pool, an
//! allow-listed BMC onboarded as an Endpoint, an iPXE client sent to the boot server, leases
//! kept across a restart, garbage packets dropped without harm, and a PXE client told to
//! load Debian's iPXE image, which it then fetches over TFTP; and a client behind a real
//! relay agent.

use std::process::Command;

use ferrometal::api::Endpoint;
use kube::Api;
mod common;
use common::eventually;
use testenv::ControlPlane;
use testenv::netns::{NetworkNamespace, ip};

/// Runs udhcpc once in `namespace` with `mac`; the variables of its `bound` event.
fn lease(
    namespace: &str,
    interface: &str,
    mac: &str,
    extra: &[&str],
    dir: &std::path::Path,
) -> Option<String> {
    ip(&["-n", namespace, "link", "set", interface, "down"]);
    ip(&["-n", namespace, "link", "set", interface, "address", mac]);
    ip(&["-n", namespace, "link", "set", interface, "up"]);
    let script = dir.join("udhcpc.sh");
    let env = dir.join("bound.env");
    let _ = std::fs::remove_file(&env);
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = bound ] && env > {}\nexit 0\n",
            env.display()
        ),
    )
    .expect("script");
    Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .expect("chmod");
    let output = Command::new("ip")
        .args([
            "netns", "exec", namespace, "busybox", "udhcpc", "-i", interface,
        ])
        .args(["-n", "-q", "-f", "-t", "6", "-T", "1", "-s"])
        .arg(&script)
        .args(extra)
        .output()
        .expect("udhcpc runs");
    output
        .status
        .success()
        .then(|| std::fs::read_to_string(&env).unwrap_or_default())
}

fn var<'a>(env: &'a str, name: &str) -> Option<&'a str> {
    env.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}=")))
}

#[tokio::test]
async fn clients_get_leases_bmcs_become_endpoints_and_ipxe_gets_the_boot_server() {
    if !testenv::netns::available() {
        eprintln!("skipped: network namespaces and DHCP's port 67 need root (CI runs as root)");
        return;
    }
    for (path, package) in [
        ("/bin/busybox", "busybox"),
        ("/usr/lib/ipxe/undionly.kpxe", "ipxe"),
    ] {
        assert!(
            std::path::Path::new(path).is_file(),
            "{path} is missing; `make test` installs Debian's {package}"
        );
    }
    let control_plane = ControlPlane::shared().await.expect("control plane");
    let _logs = control_plane.logs_on_failure();
    let client = control_plane.client().await.expect("client");

    let id = std::process::id();
    let (namespace, host_if, client_if) =
        (format!("fm{id}d"), format!("fm{id}h"), format!("fm{id}c"));
    let net = 90 + id % 100;
    let _namespace = NetworkNamespace::create(&namespace);
    ip(&[
        "link", "add", &host_if, "type", "veth", "peer", "name", &client_if, "netns", &namespace,
    ]);
    ip(&["addr", "add", &format!("10.97.{net}.1/24"), "dev", &host_if]);
    ip(&["link", "set", &host_if, "up"]);
    // A second segment on a second interface, with its own pool.
    let (host_if2, client_if2) = (format!("fm{id}h2"), format!("fm{id}c2"));
    ip(&[
        "link",
        "add",
        &host_if2,
        "type",
        "veth",
        "peer",
        "name",
        &client_if2,
        "netns",
        &namespace,
    ]);
    ip(&[
        "addr",
        "add",
        &format!("10.96.{net}.1/24"),
        "dev",
        &host_if2,
    ]);
    ip(&["link", "set", &host_if2, "up"]);

    let dir = tempfile::tempdir().expect("temp dir");
    let leases = dir.path().join("leases.json");
    let config = dir.path().join("dhcp.yaml");
    std::fs::write(
        &config,
        format!(
            "interfaces: [{{name: {host_if}, serverAddress: 10.97.{net}.1}}, {{name: {host_if2}, serverAddress: 10.96.{net}.1}}]\nleaseFile: {}\n\
             subnets:\n- {{network: 10.97.{net}.0, prefix: 24, rangeStart: 10.97.{net}.100, rangeEnd: 10.97.{net}.120, router: 10.97.{net}.1, leaseSeconds: 600}}\n\
             - {{network: 10.96.{net}.0, prefix: 24, rangeStart: 10.96.{net}.50, rangeEnd: 10.96.{net}.60, router: 10.96.{net}.1}}\n\
             onboarding: {{macPrefixes: ['52:54:00:dd']}}\n\
             boot: {{ipxeUrl: 'http://10.97.{net}.1:8082/ipxe'}}\n\
             tftpRoot: /usr/lib/ipxe\n",
            leases.display()
        ),
    )
    .expect("config");
    let metrics_port = testenv::net::free_port().expect("port");
    let operator = |label: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferrometal"));
        command
            .arg("run")
            .args(["--plugin-dir", "/nonexistent"])
            .arg("--metrics-bind-address")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .args(["--boot-bind-address", "127.0.0.1:0"])
            .arg("--dhcp-config")
            .arg(&config)
            .env("KUBECONFIG", control_plane.kubeconfig_path())
            .env("FERROMETAL_LOG", "info,ferrometal=debug");
        testenv::Program::start(label, command).expect("start ferrometal run")
    };
    let running = operator("ferrometal-run");

    // A BMC with an allow-listed MAC: a lease from the pool, and its Endpoint.
    let bmc_mac = "52:54:00:dd:ab:01";
    let bound =
        lease(&namespace, &client_if, bmc_mac, &[], dir.path()).expect("the BMC gets a lease");
    let bmc_ip = var(&bound, "ip").expect("ip").to_owned();
    assert_eq!(bmc_ip, format!("10.97.{net}.100"));
    assert_eq!(
        var(&bound, "router"),
        Some(format!("10.97.{net}.1").as_str())
    );
    assert_eq!(var(&bound, "boot_file"), None, "a BMC is not booted");
    let endpoints: Api<Endpoint> = Api::all(client.clone());
    let endpoint = eventually("the BMC's Endpoint", || async {
        endpoints.get_opt("dhcp-525400ddab01").await.ok()?
    })
    .await;
    assert_eq!(endpoint.spec.mac_address, bmc_mac);
    assert_eq!(endpoint.spec.ip, bmc_ip);

    // Garbage on port 67 is dropped and counted; the server keeps answering.
    let garbage = Command::new("ip")
        .args(["netns", "exec", &namespace, "python3", "-c"])
        .arg(format!(
            "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1); s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'{client_if}'); s.sendto(b'\\x01garbage', ('255.255.255.255', 67))"
        ))
        .output()
        .expect("python3 runs");
    assert!(
        garbage.status.success(),
        "{}",
        String::from_utf8_lossy(&garbage.stderr)
    );

    // An iPXE client (user class "iPXE") with another MAC: its own address and the boot
    // server's chain script; not a BMC, so no Endpoint.
    let machine_mac = "02:00:00:00:00:09";
    let bound = lease(
        &namespace,
        &client_if,
        machine_mac,
        &["-x", "0x4d:69505845"],
        dir.path(),
    )
    .expect("the iPXE client gets a lease");
    let machine_ip = var(&bound, "ip").expect("ip").to_owned();
    assert_ne!(machine_ip, bmc_ip);
    assert_eq!(
        var(&bound, "boot_file"),
        Some(format!("http://10.97.{net}.1:8082/ipxe").as_str())
    );
    assert!(
        endpoints
            .get_opt("dhcp-020000000009")
            .await
            .expect("get")
            .is_none()
    );

    let metrics = eventually("the malformed packet in the metrics", || async {
        let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("ferrometal_dhcp_packets_total{outcome=\"malformed\"} 1")
            .then_some(text)
    })
    .await;
    assert!(
        metrics.contains("ferrometal_dhcp_packets_total{outcome=\"ack\"}"),
        "{metrics}"
    );

    // Legacy PXE firmware: the iPXE image's name and this server as TFTP server, then the
    // image itself over TFTP (from Debian's ipxe package), byte for byte.
    let bound = lease(
        &namespace,
        &client_if,
        "02:00:00:00:00:0b",
        &["-V", "PXEClient:Arch:00000:UNDI:002001"],
        dir.path(),
    )
    .expect("the PXE client gets a lease");
    assert_eq!(var(&bound, "boot_file"), Some("undionly.kpxe"));
    assert_eq!(
        var(&bound, "siaddr"),
        Some(format!("10.97.{net}.1").as_str())
    );
    let pxe_ip = var(&bound, "ip").expect("ip").to_owned();
    ip(&[
        "-n",
        &namespace,
        "addr",
        "add",
        &format!("{pxe_ip}/24"),
        "dev",
        &client_if,
    ]);
    let fetched = dir.path().join("undionly.kpxe");
    let tftp = Command::new("ip")
        .args([
            "netns",
            "exec",
            &namespace,
            "busybox",
            "tftp",
            "-g",
            "-r",
            "undionly.kpxe",
            "-l",
        ])
        .arg(&fetched)
        .arg(format!("10.97.{net}.1"))
        .output()
        .expect("tftp runs");
    assert!(
        tftp.status.success(),
        "{}",
        String::from_utf8_lossy(&tftp.stderr)
    );
    assert_eq!(
        std::fs::read(&fetched).expect("fetched"),
        std::fs::read("/usr/lib/ipxe/undionly.kpxe").expect("Debian's image")
    );
    let escape = Command::new("ip")
        .args([
            "netns",
            "exec",
            &namespace,
            "busybox",
            "tftp",
            "-g",
            "-r",
            "../../etc/passwd",
            "-l",
        ])
        .arg(dir.path().join("passwd"))
        .arg(format!("10.97.{net}.1"))
        .output()
        .expect("tftp runs");
    assert!(
        !escape.status.success(),
        "only files of the TFTP root are served"
    );
    ip(&["-n", &namespace, "addr", "flush", "dev", &client_if]);

    // A client on the second interface gets an address of the second pool.
    let bound = lease(
        &namespace,
        &client_if2,
        "02:00:00:00:00:0c",
        &[],
        dir.path(),
    )
    .expect("a lease on the second interface");
    assert_eq!(var(&bound, "ip"), Some(format!("10.96.{net}.50").as_str()));
    assert_eq!(
        var(&bound, "router"),
        Some(format!("10.96.{net}.1").as_str())
    );

    // After a restart the leases are still held: a new client gets neither address.
    drop(running);
    let _running = operator("ferrometal-run-again");
    let bound = eventually("a lease from the restarted server", || async {
        lease(&namespace, &client_if, "02:00:00:00:00:0a", &[], dir.path())
    })
    .await;
    let third = var(&bound, "ip").expect("ip");
    assert!(
        third != bmc_ip && third != machine_ip,
        "{third} was leased already"
    );
    assert!(leases.is_file());
}

/// A client behind a real DHCP relay agent (ISC dhcrelay in its own namespace) gets an address
/// from the pool of the relay's segment, through the relay.
#[tokio::test]
async fn a_relayed_client_gets_an_address_of_the_relays_subnet() {
    if !testenv::netns::available() {
        eprintln!("skipped: network namespaces and DHCP's port 67 need root (CI runs as root)");
        return;
    }
    assert!(
        std::path::Path::new("/usr/sbin/dhcrelay").is_file(),
        "/usr/sbin/dhcrelay is missing; `make test` installs Debian's isc-dhcp-relay"
    );
    let control_plane = ControlPlane::shared().await.expect("control plane");
    let id = std::process::id();
    let net = 90 + id % 100;
    let (relay_ns, client_ns) = (format!("fm{id}r"), format!("fm{id}x"));
    let relay_namespace = NetworkNamespace::create(&relay_ns);
    let _client_namespace = NetworkNamespace::create(&client_ns);
    // client ─ (cA | rA) relay (rB | hB) ─ this host
    let (client_if, relay_down, relay_up, host_if) = (
        format!("fm{id}cA"),
        format!("fm{id}rA"),
        format!("fm{id}rB"),
        format!("fm{id}hB"),
    );
    ip(&[
        "link",
        "add",
        &client_if,
        "netns",
        &client_ns,
        "type",
        "veth",
        "peer",
        "name",
        &relay_down,
        "netns",
        &relay_ns,
    ]);
    ip(&[
        "link", "add", &host_if, "type", "veth", "peer", "name", &relay_up, "netns", &relay_ns,
    ]);
    ip(&[
        "-n",
        &relay_ns,
        "addr",
        "add",
        &format!("10.95.{net}.1/24"),
        "dev",
        &relay_down,
    ]);
    ip(&[
        "-n",
        &relay_ns,
        "addr",
        "add",
        &format!("10.94.{net}.2/24"),
        "dev",
        &relay_up,
    ]);
    ip(&["-n", &relay_ns, "link", "set", &relay_down, "up"]);
    ip(&["-n", &relay_ns, "link", "set", &relay_up, "up"]);
    ip(&["addr", "add", &format!("10.94.{net}.1/24"), "dev", &host_if]);
    ip(&["link", "set", &host_if, "up"]);
    ip(&[
        "route",
        "add",
        &format!("10.95.{net}.0/24"),
        "via",
        &format!("10.94.{net}.2"),
        "dev",
        &host_if,
    ]);

    let dir = tempfile::tempdir().expect("temp dir");
    let mut relay = relay_namespace.command("dhcrelay");
    relay
        .args(["-d", "-4", "-pf"])
        .arg(dir.path().join("relay.pid"))
        .args([
            "-id",
            &relay_down,
            "-iu",
            &relay_up,
            &format!("10.94.{net}.1"),
        ]);
    let _relay = testenv::Program::start("dhcrelay", relay).expect("dhcrelay starts");

    let config = dir.path().join("dhcp.yaml");
    std::fs::write(
        &config,
        format!(
            "interfaces: [{{name: {host_if}, serverAddress: 10.94.{net}.1}}]\nleaseFile: {}\n\
             subnets:\n- {{network: 10.94.{net}.0, prefix: 24, rangeStart: 10.94.{net}.100, rangeEnd: 10.94.{net}.110}}\n\
             - {{network: 10.95.{net}.0, prefix: 24, rangeStart: 10.95.{net}.150, rangeEnd: 10.95.{net}.160, router: 10.95.{net}.1}}\n",
            dir.path().join("leases.json").display()
        ),
    )
    .expect("config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrometal"));
    command
        .arg("run")
        .args(["--plugin-dir", "/nonexistent"])
        .args(["--metrics-bind-address", "127.0.0.1:0"])
        .args(["--boot-bind-address", "127.0.0.1:0"])
        .arg("--dhcp-config")
        .arg(&config)
        .env("KUBECONFIG", control_plane.kubeconfig_path())
        .env("FERROMETAL_LOG", "info,ferrometal=debug");
    let _operator = testenv::Program::start("ferrometal-run-relay", command).expect("start");

    let bound = eventually("a lease through the relay", || async {
        lease(&client_ns, &client_if, "02:00:00:00:00:0d", &[], dir.path())
    })
    .await;
    assert_eq!(var(&bound, "ip"), Some(format!("10.95.{net}.150").as_str()));
    assert_eq!(
        var(&bound, "router"),
        Some(format!("10.95.{net}.1").as_str())
    );
}
