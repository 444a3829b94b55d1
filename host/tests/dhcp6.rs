//! The DHCPv6 server in `ferrometal run` against real DHCPv6 clients (ISC `dhclient -6`) in
//! network namespaces joined to the host by veth pairs: addresses from the link's prefix, an
//! allow-listed BMC onboarded as an Endpoint that the Endpoint controller turns into a BMC
//! and the BMC controller, over IPv6, into a Server; leases kept across a restart, garbage dropped and counted, boot replies (option 59) for
//! UEFI HTTP boot and iPXE clients crafted with dhcproto; and a client behind a real relay
//! agent (ISC `dhcrelay -6`) getting an address of the relay's link.
//!
//! busybox's `udhcpc6` is not used: Debian's busybox has no such applet (only `udhcpc` and
//! `udhcpd`), so `dhclient -6` is the one real client.
//!
//! The BMC is a real sushy-emulator run inside the client namespace (`ip netns exec`) on the
//! address its `dhclient -6` leased, on the port and with the credentials the MAC database
//! (`tests/data/macdb.yaml`) names for its prefix; the operator, in the host namespace, probes
//! it through the veth pair with the bundled Redfish plugin. The test's dhclient script only
//! records the lease, so the test puts the address on the interface itself, with the link's
//! /64 as on-link prefix (what a router advertisement would give) and no DAD.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dhcproto::v6::{DhcpOption, IANA, Message, MessageType, OptionCode, UnknownOption};
use dhcproto::{Decodable, Decoder, Encodable};
use ferrometal::api::{BMC, Endpoint, Server};
use kube::Api;
mod common;
use common::eventually;
use testenv::netns::{NetworkNamespace, ip, sysctl};
use testenv::{BasicAuth, ControlPlane, FakeSystem, SushyEmulator, SushyOptions};

/// Turns duplicate address detection off for `interface` (in `namespace`, or this one), so
/// its addresses are usable at once; before the link is up.
fn no_dad(namespace: Option<&str>, interface: &str) {
    sysctl(
        namespace,
        &format!("net.ipv6.conf.{interface}.accept_dad=0"),
    );
}

/// A DHCPv6 client run: `dhclient -6` on `interface` of `namespace` with `mac`, its lease
/// file `lease_file` (which keeps its DUID), DUID type `duid` (`LL` or `LLT`); the
/// environment of its BOUND6 event, or `None` if it got no lease within its timeout.
fn lease(namespace: &str, interface: &str, mac: &str, duid: &str, dir: &Path) -> Option<String> {
    ip(&["-n", namespace, "link", "set", interface, "down"]);
    ip(&["-n", namespace, "link", "set", interface, "address", mac]);
    no_dad(Some(namespace), interface);
    ip(&["-n", namespace, "link", "set", interface, "up"]);
    let script = dir.join("dhclient6.sh");
    let env = dir.join("bound6.env");
    let _ = std::fs::remove_file(&env);
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$reason\" in BOUND6|RENEW6|REBIND6|REBOOT6) env > {0}.tmp; mv {0}.tmp {0};; esac\nexit 0\n",
            env.display()
        ),
    )
    .expect("script");
    Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .expect("chmod");
    let conf = dir.join("dhclient6.conf");
    std::fs::write(&conf, "timeout 15;\n").expect("conf");
    // A fresh lease file each run: the DUID comes from the MAC (and, for LLT, the time).
    let lease_file = dir.join(format!("{}.leases", mac.replace(':', "")));
    let _ = std::fs::remove_file(&lease_file);
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", namespace, "dhclient", "-6", "-d", "-1"])
        .args(["-D", duid])
        .arg("-cf")
        .arg(&conf)
        .arg("-lf")
        .arg(&lease_file)
        .arg("-pf")
        .arg(dir.join("dhclient6.pid"))
        .arg("-sf")
        .arg(&script)
        .arg(interface);
    let mut client = testenv::Program::start("dhclient-6", command).expect("dhclient starts");
    for _ in 0..200 {
        if let Ok(bound) = std::fs::read_to_string(&env) {
            return Some(bound);
        }
        if client.ensure_running().is_err() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn var<'a>(env: &'a str, name: &str) -> Option<&'a str> {
    env.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}=")))
}

/// `ferrometal run` with `config` and the plugins in `plugins` (macdb, so Endpoints become
/// BMCs; redfish, so BMCs are probed and become Servers), resyncing BMCs every 2 s.
fn operator(
    control_plane: &ControlPlane,
    config: &Path,
    plugins: &Path,
    metrics_port: u16,
    label: &str,
) -> testenv::Program {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrometal"));
    command
        .arg("run")
        .arg("--plugin-dir")
        .arg(plugins)
        .arg("--mac-db")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/macdb.yaml"
        ))
        .args(["--grant", "credentials/reveal", "--bmc-resync-seconds", "2"])
        .arg("--metrics-bind-address")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .args(["--boot-bind-address", "127.0.0.1:0"])
        .arg("--dhcp-config")
        .arg(config)
        .env("KUBECONFIG", control_plane.kubeconfig_path())
        .env("FERROMETAL_LOG", "info,ferrometal=debug");
    testenv::Program::start(label, command).expect("start ferrometal run")
}

/// Sends `packet` from `interface` of `namespace` (bound to port 546) to ff02::1:2 port 547
/// and returns the first answer (hex-decoded), or `None` after 5 s.
fn exchange(namespace: &str, interface: &str, packet: &[u8]) -> Option<Vec<u8>> {
    let script = format!(
        "import socket, sys\n\
         index = socket.if_nametoindex('{interface}')\n\
         s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'{interface}')\n\
         s.bind(('::', 546))\n\
         s.settimeout(5)\n\
         s.sendto(bytes.fromhex('{}'), ('ff02::1:2', 547, 0, index))\n\
         try:\n    print(s.recvfrom(65535)[0].hex())\n\
         except socket.timeout:\n    sys.exit(3)\n",
        hex::encode(packet)
    );
    let output = Command::new("ip")
        .args(["netns", "exec", namespace, "python3", "-c", &script])
        .output()
        .expect("python3 runs");
    if output.status.code() == Some(3) {
        return None;
    }
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(hex::decode(String::from_utf8_lossy(&output.stdout).trim()).expect("hex"))
}

/// A Solicit as UEFI firmware or iPXE sends it: DUID-LL of `mac`, an IA_NA, and `options`.
fn solicit(mac: [u8; 6], options: Vec<DhcpOption>) -> Vec<u8> {
    let mut message = Message::new_with_id(MessageType::Solicit, [0x0f, 0xe0, 0x01]);
    let opts = message.opts_mut();
    opts.insert(DhcpOption::ClientId([&[0, 3, 0, 1][..], &mac].concat()));
    opts.insert(DhcpOption::ElapsedTime(0));
    opts.insert(DhcpOption::IANA(IANA {
        id: 1,
        t1: 0,
        t2: 0,
        opts: Default::default(),
    }));
    for option in options {
        opts.insert(option);
    }
    message.to_vec().expect("encodes")
}

/// An option as raw bytes (dhcproto 0.15 writes the user and vendor class with wrong lengths).
fn raw(code: OptionCode, data: Vec<u8>) -> DhcpOption {
    DhcpOption::Unknown(UnknownOption::new(code, data))
}

/// Vendor class (enterprise 343, as EDK2 sends it) with one data item.
fn vendor_class(item: &str) -> DhcpOption {
    let mut data = 343u32.to_be_bytes().to_vec();
    data.extend_from_slice(&u16::try_from(item.len()).expect("short").to_be_bytes());
    data.extend_from_slice(item.as_bytes());
    raw(OptionCode::VendorClass, data)
}

fn architecture(code: u16) -> DhcpOption {
    raw(OptionCode::ClientArchType, code.to_be_bytes().to_vec())
}

/// The boot file URL (option 59) and whether vendor class `HTTPClient` came back.
fn boot_reply(reply: &[u8]) -> (MessageType, Option<String>, bool) {
    let message = Message::decode(&mut Decoder::new(reply)).expect("the reply decodes");
    let url = match message.opts().get(OptionCode::OptBootfileUrl) {
        Some(DhcpOption::Unknown(option)) => {
            Some(String::from_utf8_lossy(option.data()).into_owned())
        }
        _ => None,
    };
    let http = matches!(
        message.opts().get(OptionCode::VendorClass),
        Some(DhcpOption::VendorClass(class)) if class.data.iter().any(|item| item == b"HTTPClient")
    );
    (message.msg_type(), url, http)
}

async fn metrics(port: u16) -> Option<String> {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()
}

fn require_tools() -> bool {
    if !testenv::netns::available() {
        eprintln!("skipped: network namespaces and DHCPv6's port 547 need root (CI runs as root)");
        return false;
    }
    for (path, package) in [
        ("/sbin/dhclient", "isc-dhcp-client"),
        ("/usr/sbin/dhcrelay", "isc-dhcp-relay"),
    ] {
        assert!(
            Path::new(path).is_file(),
            "{path} is missing; `make test` installs Debian's {package}"
        );
    }
    true
}

#[tokio::test]
async fn dhcpv6_clients_get_leases_bmcs_become_endpoints_and_boot_clients_their_urls() {
    if !require_tools() {
        return;
    }
    let control_plane = ControlPlane::shared().await.expect("control plane");
    let _logs = control_plane.logs_on_failure();
    let client = control_plane.client().await.expect("client");

    let id = std::process::id();
    let (namespace, host_if, client_if) =
        (format!("fm{id}e"), format!("fm{id}g"), format!("fm{id}i"));
    let net = format!("fd97:{:x}", id % 0xffff);
    let _namespace = NetworkNamespace::create(&namespace);
    ip(&[
        "link", "add", &host_if, "type", "veth", "peer", "name", &client_if, "netns", &namespace,
    ]);
    no_dad(None, &host_if);
    ip(&[
        "addr",
        "add",
        &format!("{net}::1/64"),
        "dev",
        &host_if,
        "nodad",
    ]);
    ip(&["link", "set", &host_if, "up"]);

    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = common::plugin_dir(dir.path(), &["macdb", "redfish"]);
    let leases = dir.path().join("leases6.json");
    let config = dir.path().join("dhcp.yaml");
    // DHCPv6 only: no DHCPv4 section at all.
    std::fs::write(
        &config,
        format!(
            "onboarding: {{macPrefixes: ['52:54:00:ab']}}\n\
             dhcp6:\n  interfaces: [{{name: {host_if}, address: '{net}::1'}}]\n  \
             leaseFile: {}\n  \
             prefixes: [{{prefix: '{net}::/64', rangeStart: '{net}::100', rangeEnd: '{net}::1ff', dnsServers: ['{net}::53']}}]\n  \
             boot:\n    ipxeUrl: 'http://[{net}::1]:8082/ipxe'\n    \
             httpBootUrl: 'http://[{net}::1]:8082/httpboot/x86-64.efi'\n    \
             httpBootUrlArm64: 'http://[{net}::1]:8082/httpboot/arm64.efi'\n",
            leases.display()
        ),
    )
    .expect("config");
    let metrics_port = testenv::net::free_port().expect("port");
    let running = operator(
        control_plane,
        &config,
        &plugins,
        metrics_port,
        "ferrometal-run-6",
    );

    // A BMC with an allow-listed MAC (dhclient's default DUID-LLT carries it): an address
    // from the link's prefix, its Endpoint, the BMC the Endpoint controller makes of it, and
    // the Server the BMC controller finds behind it over IPv6.
    let bmc_mac = "52:54:00:ab:dd:06";
    let bound = eventually("a DHCPv6 lease for the BMC", || async {
        lease(&namespace, &client_if, bmc_mac, "LLT", dir.path())
    })
    .await;
    let bmc_ip = var(&bound, "new_ip6_address").expect("address").to_owned();
    assert_eq!(bmc_ip, format!("{net}::100"));
    assert_eq!(
        var(&bound, "new_dhcp6_name_servers"),
        Some(format!("{net}::53").as_str())
    );
    // The BMC listens on its leased address, where tests/data/macdb.yaml's "52:54:00:ab"
    // entry says: Redfish over http on port 8000, user lab, password lab.
    ip(&[
        "-n",
        &namespace,
        "addr",
        "add",
        &format!("{bmc_ip}/64"),
        "dev",
        &client_if,
        "nodad",
    ]);
    let system_uuid = "6d1c0a5e-0000-4000-8000-0000000006bb";
    let redfish = SushyEmulator::start_in_namespace(
        &namespace,
        SushyOptions {
            systems: vec![FakeSystem {
                uuid: system_uuid.to_owned(),
                name: "dhcp6-machine".to_owned(),
                power_state: testenv::PowerState::Off,
                boot_mode: Default::default(),
                macs: vec!["02:00:00:00:06:bb".to_owned()],
            }],
            auth: Some(BasicAuth {
                username: "lab".to_owned(),
                password: "lab".to_owned(),
            }),
            listen: Some(std::net::SocketAddr::new(
                bmc_ip.parse().expect("an IPv6 address"),
                8000,
            )),
            ..Default::default()
        },
    )
    .await
    .expect("sushy-emulator on the leased IPv6 address");
    assert_eq!(redfish.base_url(), format!("http://[{bmc_ip}]:8000"));
    let endpoints: Api<Endpoint> = Api::all(client.clone());
    let endpoint = eventually("the BMC's Endpoint", || async {
        endpoints.get_opt("dhcp-525400abdd06").await.ok()?
    })
    .await;
    assert_eq!(endpoint.spec.mac_address, bmc_mac);
    assert_eq!(endpoint.spec.ip, bmc_ip);
    let bmcs: Api<BMC> = Api::all(client.clone());
    let bmc = eventually("the BMC made of the Endpoint", || async {
        bmcs.get_opt("dhcp-525400abdd06").await.ok()?
    })
    .await;
    assert_eq!(
        bmc.spec.endpoint_ref.as_ref().map(|r| r.name.as_str()),
        Some("dhcp-525400abdd06")
    );
    assert_eq!(bmc.spec.protocol.port, 8000);
    let servers: Api<Server> = Api::all(client.clone());
    let server = eventually("the Server behind the IPv6 BMC", || async {
        servers.get_opt("dhcp-525400abdd06-system-0").await.ok()?
    })
    .await;
    assert_eq!(server.spec.system_uuid.as_deref(), Some(system_uuid));
    assert_eq!(
        server.spec.bmc_ref.as_ref().map(|r| r.name.as_str()),
        Some("dhcp-525400abdd06")
    );
    let status = eventually("the BMC connected over IPv6", || async {
        let status = bmcs.get("dhcp-525400abdd06").await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        let reason = ready.reason.clone();
        (ready.status == "True").then_some((reason, status))
    })
    .await;
    assert_eq!(status.0, "Connected");
    assert_eq!(status.1.ip.as_deref(), Some(bmc_ip.as_str()));
    assert_eq!(status.1.mac_address.as_deref(), Some(bmc_mac));
    assert!(
        redfish.log_tail(200).contains("/redfish/v1/Systems"),
        "the operator asked the emulator for its systems:\n{}",
        redfish.log_tail(40)
    );
    // The next clients reuse the interface (down, new MAC, up), which takes the address away.
    drop(redfish);

    // Another machine (DUID-LL): its own address, no Endpoint.
    let machine_mac = "02:00:00:00:06:01";
    let bound = lease(&namespace, &client_if, machine_mac, "LL", dir.path())
        .expect("the machine gets a lease");
    let machine_ip = var(&bound, "new_ip6_address").expect("address").to_owned();
    assert_eq!(machine_ip, format!("{net}::101"));
    assert!(
        endpoints
            .get_opt("dhcp-020000000601")
            .await
            .expect("get")
            .is_none()
    );

    // Garbage to ff02::1:2 is dropped and counted; the server keeps answering.
    let garbage = Command::new("ip")
        .args(["netns", "exec", &namespace, "python3", "-c"])
        .arg(format!(
            "import socket; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); \
             s.sendto(b'\\x01\\x00\\x00\\x01\\x00\\x03\\x00\\x40garbage', ('ff02::1:2', 547, 0, socket.if_nametoindex('{client_if}')))"
        ))
        .output()
        .expect("python3 runs");
    assert!(
        garbage.status.success(),
        "{}",
        String::from_utf8_lossy(&garbage.stderr)
    );

    // Boot clients, crafted as UEFI firmware and iPXE send them.
    let mac = [2, 0, 0, 0, 6, 2];
    let http_x86 = solicit(
        mac,
        vec![
            vendor_class("HTTPClient:Arch:00016:UNDI:003001"),
            architecture(0x0010),
        ],
    );
    let reply = exchange(&namespace, &client_if, &http_x86).expect("an Advertise");
    assert_eq!(
        boot_reply(&reply),
        (
            MessageType::Advertise,
            Some(format!("http://[{net}::1]:8082/httpboot/x86-64.efi")),
            true
        )
    );
    let http_arm = solicit(
        mac,
        vec![
            vendor_class("HTTPClient:Arch:00019:UNDI:003001"),
            architecture(0x0013),
        ],
    );
    let reply = exchange(&namespace, &client_if, &http_arm).expect("an Advertise");
    assert_eq!(
        boot_reply(&reply),
        (
            MessageType::Advertise,
            Some(format!("http://[{net}::1]:8082/httpboot/arm64.efi")),
            true
        )
    );
    for arch in [0x0007, 0x000b] {
        let ipxe = solicit(
            mac,
            vec![
                raw(OptionCode::UserClass, b"\x00\x04iPXE".to_vec()),
                architecture(arch),
            ],
        );
        let reply = exchange(&namespace, &client_if, &ipxe).expect("an Advertise");
        assert_eq!(
            boot_reply(&reply),
            (
                MessageType::Advertise,
                Some(format!("http://[{net}::1]:8082/ipxe")),
                false
            ),
            "iPXE, architecture {arch:#06x}"
        );
    }

    let text = eventually("the malformed packet in the metrics", || async {
        let text = metrics(metrics_port).await?;
        text.contains("ferrometal_dhcp6_packets_total{outcome=\"malformed\"} 1")
            .then_some(text)
    })
    .await;
    assert!(
        text.contains("ferrometal_dhcp6_packets_total{outcome=\"reply\"}"),
        "{text}"
    );

    // After a restart the leases are still held: the machine (same DUID-LL) gets its
    // address back, a new client neither the BMC's nor the machine's.
    drop(running);
    let _running = operator(
        control_plane,
        &config,
        &plugins,
        metrics_port,
        "ferrometal-run-6-again",
    );
    let bound = eventually("the machine's lease from the restarted server", || async {
        lease(&namespace, &client_if, machine_mac, "LL", dir.path())
    })
    .await;
    assert_eq!(var(&bound, "new_ip6_address"), Some(machine_ip.as_str()));
    let bound = lease(
        &namespace,
        &client_if,
        "02:00:00:00:06:03",
        "LL",
        dir.path(),
    )
    .expect("a new client's lease");
    let third = var(&bound, "new_ip6_address").expect("address");
    assert!(
        third != bmc_ip && third != machine_ip,
        "{third} was leased already"
    );
    assert!(leases.is_file());
}

/// A client behind a real DHCPv6 relay agent (ISC dhcrelay -6 in its own namespace) gets an
/// address of the relay's link prefix, through the relay.
#[tokio::test]
async fn a_client_behind_dhcrelay_gets_an_address_of_the_relays_link() {
    if !require_tools() {
        return;
    }
    let control_plane = ControlPlane::shared().await.expect("control plane");
    let _logs = control_plane.logs_on_failure();
    let id = std::process::id();
    let (server_net, client_net) = (
        format!("fd94:{:x}", id % 0xffff),
        format!("fd95:{:x}", id % 0xffff),
    );
    let (relay_ns, client_ns) = (format!("fm{id}s"), format!("fm{id}t"));
    let relay_namespace = NetworkNamespace::create(&relay_ns);
    let _client_namespace = NetworkNamespace::create(&client_ns);
    // client ─ (cA | rA) relay (rB | hB) ─ this host
    let (client_if, relay_down, relay_up, host_if) = (
        format!("fm{id}cC"),
        format!("fm{id}rC"),
        format!("fm{id}rD"),
        format!("fm{id}hD"),
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
    for interface in [&relay_down, &relay_up] {
        no_dad(Some(&relay_ns), interface);
    }
    no_dad(None, &host_if);
    ip(&[
        "-n",
        &relay_ns,
        "addr",
        "add",
        &format!("{client_net}::1/64"),
        "dev",
        &relay_down,
        "nodad",
    ]);
    ip(&[
        "-n",
        &relay_ns,
        "addr",
        "add",
        &format!("{server_net}::2/64"),
        "dev",
        &relay_up,
        "nodad",
    ]);
    ip(&["-n", &relay_ns, "link", "set", &relay_down, "up"]);
    ip(&["-n", &relay_ns, "link", "set", &relay_up, "up"]);
    ip(&[
        "addr",
        "add",
        &format!("{server_net}::1/64"),
        "dev",
        &host_if,
        "nodad",
    ]);
    ip(&["link", "set", &host_if, "up"]);

    let dir = tempfile::tempdir().expect("temp dir");
    let mut relay = relay_namespace.command("dhcrelay");
    relay
        .args(["-d", "-6", "-pf"])
        .arg(dir.path().join("relay6.pid"))
        .args(["-l", &relay_down])
        .args(["-u", &format!("{server_net}::1%{relay_up}")]);
    let _relay = testenv::Program::start("dhcrelay-6", relay).expect("dhcrelay starts");

    let config = dir.path().join("dhcp.yaml");
    std::fs::write(
        &config,
        format!(
            "dhcp6:\n  interfaces: [{{name: {host_if}, address: '{server_net}::1'}}]\n  \
             leaseFile: {}\n  \
             prefixes:\n  - {{prefix: '{server_net}::/64', rangeStart: '{server_net}::100', rangeEnd: '{server_net}::110'}}\n  \
             - {{prefix: '{client_net}::/64', rangeStart: '{client_net}::150', rangeEnd: '{client_net}::160'}}\n",
            dir.path().join("leases6.json").display()
        ),
    )
    .expect("config");
    let plugins = common::plugin_dir(dir.path(), &[]);
    let metrics_port = testenv::net::free_port().expect("port");
    let _operator = operator(
        control_plane,
        &config,
        &plugins,
        metrics_port,
        "ferrometal-run-6-relay",
    );

    let bound = eventually("a DHCPv6 lease through the relay", || async {
        lease(
            &client_ns,
            &client_if,
            "02:00:00:00:06:0d",
            "LL",
            dir.path(),
        )
    })
    .await;
    assert_eq!(
        var(&bound, "new_ip6_address"),
        Some(format!("{client_net}::150").as_str())
    );
}
