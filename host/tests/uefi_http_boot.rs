//! Real UEFI HTTP boots: QEMU VMs with Debian's OVMF firmware behind a Redfish BMC of the
//! simulator. The operator asks the BMC for a one-time `UefiHttp` boot
//! (`--discovery-boot-target uefi-http`); OVMF (its PXE switched off) asks DHCP with vendor
//! class `HTTPClient` and is told the boot server's `/uki/<uuid>.efi`; the boot server answers
//! with the discovery image's UKI (Debian's kernel + initramfs on systemd-stub) whose
//! `.cmdline` carries this machine's ignition URL and ticket; the kernel starts, the discovery
//! system applies its ignition, metalprobe reports, and the Server becomes `Available` with
//! what QEMU gave the VM. One VM is on a tap device in a network namespace served by
//! ferrometal's own DHCP server (needs root); one on QEMU's user-mode network, whose DHCP
//! names the URL (runs anywhere). See docs/testing.md.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrometal::api::Server;
use ferrometal::boot::uuid::SystemUuid;
use ferrometal_sim::vm::{Firmware, Ovmf, VmNetwork, VmOptions, VmShape};
use testenv::netns::{NetworkNamespace, ip, sysctl};

mod common;
use common::vm;

const GIB: u64 = 1 << 30;

const SHAPE: VmShape = VmShape {
    cpus: 2,
    memory_mib: 512,
    disk_bytes: 2 * GIB,
};

/// Keeps the work directory (consoles, disks, leases, the image) when the test fails, and
/// says where.
struct KeepOnFailure(Option<tempfile::TempDir>);

impl KeepOnFailure {
    fn new() -> Self {
        Self(Some(tempfile::tempdir().expect("temp dir")))
    }

    fn path(&self) -> PathBuf {
        self.0.as_ref().expect("work dir").path().to_owned()
    }
}

impl Drop for KeepOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.0.take()
        {
            eprintln!("kept the work directory: {}", dir.keep().display());
        }
    }
}

/// Where the VM boots and how ferrometal is reached there.
struct Segment {
    network: VmNetwork,
    /// Where the boot server listens.
    bind: String,
    /// What the boot server is announced as (as the guest reaches it).
    url: String,
    /// ferrometal's DHCP configuration, when ferrometal's DHCP serves the segment.
    dhcp: Option<String>,
    /// The BMC's number (its systems' seed).
    bmc: usize,
}

/// What a boot left to check.
struct Booted {
    server: Server,
    machine: Arc<ferrometal_sim::Machine>,
    console: String,
}

/// Starts a control plane, a registry with the discovery image (UKI included), an OVMF VM
/// behind a simulated BMC and `ferrometal run` asking for UEFI HTTP boots, applies the BMC
/// and waits until its Server is `Available`.
async fn boot_to_available(segment: Segment, work: &Path) -> Booted {
    let ovmf = Ovmf::debian();
    assert!(
        ovmf.code.is_file() && ovmf.vars_template.is_file(),
        "OVMF is missing ({} / {}): `cargo xtask setup` installs Debian's ovmf",
        ovmf.code.display(),
        ovmf.vars_template.display()
    );
    let started = Instant::now();
    let control_plane = testenv::ControlPlane::start().await.expect("control plane");
    let _logs = control_plane.logs_on_failure();
    let client = control_plane.client().await.expect("client");
    let registry = testenv::OciRegistry::start().await.expect("registry");
    let image = testenv::discovery_image::build(&work.join("image")).expect("image");
    let pushed = image
        .push(&registry, "ferrometal/discovery:uki")
        .await
        .expect("push");

    let fleet = ferrometal_sim::Fleet::start(ferrometal_sim::FleetOptions {
        spec: ferrometal_sim::FleetSpec {
            seed: segment.bmc as u64,
            bmcs: 1,
            systems_per_bmc: 1,
            first_bmc: segment.bmc,
            ..ferrometal_sim::FleetSpec::default()
        },
        // Used on the user network only: QEMU's DHCP names `<url>/uki/<uuid>.efi`.
        boot_url: Some(segment.url.clone()),
        vm: Some(VmOptions {
            network: segment.network.clone(),
            firmware: Firmware::Uefi(ovmf),
            ..VmOptions::debian(vec![SHAPE], work.join("vms"))
        }),
        work_dir: work.join("machines"),
        ..ferrometal_sim::FleetOptions::default()
    })
    .await
    .expect("the VM fleet starts");
    let machine = fleet.machines().next().expect("one VM").clone();
    let bmc = &fleet.bmcs()[0];

    let plugins = common::plugin_dir(work, &["redfish", "ignition"]);
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ferrometal"));
    command
        .arg("run")
        .arg("--plugin-dir")
        .arg(&plugins)
        .args(["--grant", "credentials/reveal"])
        .args(["--metrics-bind-address", "127.0.0.1:0"])
        .args(["--boot-bind-address", &segment.bind])
        .args(["--boot-server-url", &segment.url])
        .args(["--boot-allowed-registries", registry.host()])
        .args(["--boot-insecure-registries", registry.host()])
        .args(["--discovery-image", &pushed.reference])
        .args(["--discovery-boot-target", "uefi-http"])
        .arg("--metalprobe-binary")
        .arg(&image.metalprobe)
        .args(["--server-resync-seconds", "2"])
        .env("KUBECONFIG", control_plane.kubeconfig_path())
        .env("FERROMETAL_LOG", "info,ferrometal=debug");
    if let Some(dhcp) = &segment.dhcp {
        let config = work.join("dhcp.yaml");
        std::fs::write(&config, dhcp).expect("DHCP config");
        command.arg("--dhcp-config").arg(config);
    }
    let operator =
        testenv::Program::start("ferrometal-run", command).expect("start ferrometal run");

    vm::apply_bmc(&control_plane, "uefi-bmc", bmc);
    // OVMF under TCG: firmware start, DHCP, a ~22 MB download, then the kernel.
    let server = vm::first_available(&client, Duration::from_secs(420), || {
        format!(
            "the OVMF VM did not become Available; operator log:\n{}\n{}",
            operator.log_tail(60),
            vm::console_tail(&machine, 80)
        )
    })
    .await;
    eprintln!("Available {:?} after the test started", started.elapsed());
    let console = vm::console(&machine);
    for line in console.lines().filter(|line| {
        line.contains("URI:") || line.contains("Command line:") || line.contains("ferrometal:")
    }) {
        eprintln!("console: {}", line.trim());
    }
    drop(operator);
    drop(fleet);
    Booted {
        server,
        machine,
        console,
    }
}

/// Checks that `booted` went through OVMF's HTTP boot over `family` (`IPv4`, `IPv6`) of the
/// personalised UKI from `boot_url` and reported what QEMU gave the VM, with `eth0` at
/// `guest_ip`.
fn assert_discovered(booted: &Booted, family: &str, boot_url: &str, guest_ip: &str) {
    let Booted {
        server,
        machine,
        console,
    } = booted;
    let spec = machine.spec();
    // OVMF sends its SMBIOS UUID in DHCP option 97 in the SMBIOS byte order, so a URL from
    // ferrometal's DHCP may name it in either spelling; the boot server accepts both.
    let uuid = SystemUuid::parse(&spec.uuid).expect("uuid");
    let named = |uuid: &SystemUuid| console.contains(&format!("URI: {boot_url}/uki/{uuid}.efi"));
    assert!(
        console.contains(&format!("Start HTTP Boot over {family}"))
            && (named(&uuid) || named(&uuid.smbios_swapped())),
        "OVMF booted over UEFI HTTP from {boot_url}/uki/<uuid>.efi:\n{}",
        vm::console_tail(machine, 80)
    );
    assert!(
        console.contains(&format!("ignition.config.url={boot_url}/ignition/")),
        "the kernel's command line (printed at boot) carries the ignition URL the boot server \
         wrote into the UKI:\n{}",
        vm::console_tail(machine, 80)
    );
    assert!(
        !console.contains("iPXE"),
        "no iPXE was involved:\n{}",
        vm::console_tail(machine, 80)
    );
    assert_eq!(
        server
            .spec
            .system_uuid()
            .map(|u| u.to_lowercase())
            .as_deref(),
        Some(spec.uuid.as_str()),
        "the SMBIOS UUID QEMU gave the VM"
    );
    let status = server.status.as_ref().expect("status");
    let nic = status
        .network_interfaces
        .iter()
        .find(|nic| nic.name == "eth0")
        .expect("eth0 reported");
    assert_eq!(nic.mac_address, spec.macs[0], "the MAC QEMU gave the VM");
    assert_eq!(nic.ips, [guest_ip], "the address DHCP gave the guest");
    vm::assert_hardware(status, &SHAPE);
}

#[tokio::test]
async fn an_ovmf_vm_boots_the_discovery_uki_through_ferrometals_dhcp_to_available() {
    let _one_at_a_time = vm::ONE_AT_A_TIME.lock().await;
    if !testenv::netns::available() {
        eprintln!(
            "skipped: network namespaces, tap devices and DHCP's port 67 need root (CI runs as root)"
        );
        return;
    }
    if !Path::new("/dev/net/tun").exists() {
        eprintln!("skipped: this machine has no /dev/net/tun, so VMs cannot have tap devices");
        return;
    }
    let id = std::process::id();
    let net = 60 + id % 100;
    let (namespace, host_if, ns_if) =
        (format!("fm{id}u"), format!("fm{id}uh"), format!("fm{id}un"));
    let _namespace = NetworkNamespace::create(&namespace);
    ip(&[
        "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &namespace,
    ]);
    let server_ip = format!("10.94.{net}.1");
    ip(&["addr", "add", &format!("{server_ip}/24"), "dev", &host_if]);
    ip(&["link", "set", &host_if, "up"]);
    ip(&["-n", &namespace, "link", "add", "br0", "type", "bridge"]);
    ip(&[
        "-n", &namespace, "link", "set", &ns_if, "master", "br0", "up",
    ]);
    ip(&["-n", &namespace, "link", "set", "br0", "up"]);

    let work_dir = KeepOnFailure::new();
    let work = work_dir.path();
    let port = testenv::net::free_port().expect("port");
    let boot_url = format!("http://{server_ip}:{port}");
    // `${uuid}`, not `${mac}`: before its first report a Server lists no NICs, so the boot
    // server cannot find it by MAC yet; OVMF sends its SMBIOS UUID in DHCP option 97.
    let dhcp = format!(
        "interfaces: [{{name: {host_if}, serverAddress: {server_ip}}}]\nleaseFile: {}\n\
         subnets:\n- {{network: 10.94.{net}.0, prefix: 24, rangeStart: 10.94.{net}.100, rangeEnd: 10.94.{net}.120, router: {server_ip}}}\n\
         boot: {{httpBootUrl: '{boot_url}/uki/${{uuid}}.efi'}}\n",
        work.join("leases.json").display()
    );
    let booted = boot_to_available(
        Segment {
            network: VmNetwork::Tap {
                namespace: namespace.clone(),
                bridge: String::from("br0"),
            },
            bind: format!("{server_ip}:{port}"),
            url: boot_url.clone(),
            dhcp: Some(dhcp),
            bmc: 61_100,
        },
        &work,
    )
    .await;
    let guest_ip = format!("10.94.{net}.100");
    assert_discovered(&booted, "IPv4", &boot_url, &guest_ip);
    let leases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("leases.json")).expect("leases"))
            .expect("lease file is JSON");
    assert_eq!(
        leases[&booted.machine.spec().macs[0].replace(':', "")]["ip"],
        guest_ip,
        "ferrometal's DHCP server leased the VM its address: {leases}"
    );
}

#[tokio::test]
async fn an_ovmf_vm_on_qemus_own_network_boots_the_discovery_uki_to_available() {
    let _one_at_a_time = vm::ONE_AT_A_TIME.lock().await;
    let work_dir = KeepOnFailure::new();
    let work = work_dir.path();
    let port = testenv::net::free_port().expect("port");
    // QEMU's user-mode network shows the host's loopback to guests as 10.0.2.2.
    let boot_url = format!("http://{}:{port}", ferrometal_sim::vm::GUEST_HOST_ADDRESS);
    let booted = boot_to_available(
        Segment {
            network: VmNetwork::User,
            bind: format!("127.0.0.1:{port}"),
            url: boot_url.clone(),
            dhcp: None,
            bmc: 61_200,
        },
        &work,
    )
    .await;
    assert_discovered(&booted, "IPv4", &boot_url, "10.0.2.15");
}

#[tokio::test]
async fn an_ovmf_vm_boots_the_discovery_uki_over_ipv6_through_ferrometals_dhcpv6_to_available() {
    let _one_at_a_time = vm::ONE_AT_A_TIME.lock().await;
    if !testenv::netns::available() {
        eprintln!(
            "skipped: network namespaces, tap devices and DHCPv6's port 547 need root (CI runs as root)"
        );
        return;
    }
    if !Path::new("/dev/net/tun").exists() {
        eprintln!("skipped: this machine has no /dev/net/tun, so VMs cannot have tap devices");
        return;
    }
    let radvd = Path::new("/usr/sbin/radvd");
    assert!(
        radvd.is_file(),
        "radvd is missing: `cargo xtask setup` installs Debian's radvd"
    );
    let id = std::process::id();
    let net = 60 + id % 100;
    let (namespace, host_if, ns_if) =
        (format!("fm{id}s"), format!("fm{id}sh"), format!("fm{id}sn"));
    let _namespace = NetworkNamespace::create(&namespace);
    // No duplicate address detection anywhere on the link (the tap QEMU gets is created
    // later: `default`), no router advertisements taken by the host's end, and forwarding
    // on in the namespace, where radvd advertises the link's prefix.
    for setting in [
        "net.ipv6.conf.all.accept_dad=0",
        "net.ipv6.conf.default.accept_dad=0",
        "net.ipv6.conf.all.forwarding=1",
    ] {
        sysctl(Some(&namespace), setting);
    }
    ip(&[
        "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &namespace,
    ]);
    sysctl(None, &format!("net.ipv6.conf.{host_if}.accept_dad=0"));
    sysctl(None, &format!("net.ipv6.conf.{host_if}.accept_ra=0"));
    sysctl(
        Some(&namespace),
        &format!("net.ipv6.conf.{ns_if}.accept_dad=0"),
    );
    let prefix = format!("fd94:{net}::");
    let server_ip = format!("{prefix}1");
    ip(&[
        "addr",
        "add",
        &format!("{server_ip}/64"),
        "dev",
        &host_if,
        "nodad",
    ]);
    ip(&["link", "set", &host_if, "up"]);
    ip(&["-n", &namespace, "link", "add", "br0", "type", "bridge"]);
    sysctl(Some(&namespace), "net.ipv6.conf.br0.accept_dad=0");
    ip(&[
        "-n", &namespace, "link", "set", &ns_if, "master", "br0", "up",
    ]);
    ip(&["-n", &namespace, "link", "set", "br0", "up"]);

    let work_dir = KeepOnFailure::new();
    let work = work_dir.path();
    // OVMF's IPv6 stack configures itself from router advertisements: the Managed flag
    // sends it to DHCPv6, the on-link prefix gives it the route to the boot server.
    let radvd_config = work.join("radvd.conf");
    std::fs::write(
        &radvd_config,
        format!(
            "interface br0 {{\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n  MaxRtrAdvInterval 4;\n\
             \x20 AdvManagedFlag on;\n  AdvOtherConfigFlag on;\n  AdvDefaultLifetime 0;\n\
             \x20 prefix {prefix}/64 {{ AdvOnLink on; AdvAutonomous off; }};\n}};\n"
        ),
    )
    .expect("radvd config");
    let mut command = std::process::Command::new("ip");
    command
        .args(["netns", "exec", &namespace])
        .arg(radvd)
        .args(["--nodaemon", "--logmethod", "stderr", "--config"])
        .arg(&radvd_config)
        .arg("--pidfile")
        .arg(work.join("radvd.pid"));
    let _radvd = testenv::Program::start("radvd", command).expect("start radvd");

    let port = testenv::net::free_port().expect("port");
    let boot_url = format!("http://[{server_ip}]:{port}");
    let dhcp = format!(
        "dhcp6:\n  interfaces: [{{name: {host_if}, address: '{server_ip}'}}]\n\
         \x20 leaseFile: {}\n\
         \x20 prefixes:\n  - {{prefix: '{prefix}/64', rangeStart: '{prefix}100', rangeEnd: '{prefix}120'}}\n\
         \x20 boot: {{httpBootUrl: '{boot_url}/uki/${{uuid}}.efi'}}\n",
        work.join("leases6.json").display()
    );
    let booted = boot_to_available(
        Segment {
            network: VmNetwork::Tap {
                namespace: namespace.clone(),
                bridge: String::from("br0"),
            },
            bind: format!("[::]:{port}"),
            url: boot_url.clone(),
            dhcp: Some(dhcp),
            bmc: 61_300,
        },
        &work,
    )
    .await;
    // OVMF released its own lease before starting the UKI; the one left is the discovery
    // system's: its DUID-LL names the VM's MAC, and source binding holds the machine to it.
    let leases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("leases6.json")).expect("leases"))
            .expect("lease file is JSON");
    let mac = booted.machine.spec().macs[0].replace(':', "");
    let (key, lease) = leases
        .as_object()
        .and_then(|leases| {
            leases
                .iter()
                .find(|(key, _)| key.starts_with(&format!("00030001{mac}/")))
        })
        .unwrap_or_else(|| panic!("a DHCPv6 lease for the DUID-LL of {mac}: {leases}"));
    assert_eq!(lease["mac"], mac.as_str(), "{key}: {lease}");
    let guest_ip = lease["ip"].as_str().expect("leased address").to_owned();
    assert!(
        guest_ip.starts_with(&prefix),
        "{guest_ip} is in {prefix}/64"
    );
    assert!(
        booted
            .console
            .contains(&format!("ferrometal: eth0 has {guest_ip}/128 (DHCPv6")),
        "the discovery system configured the address it leased:\n{}",
        vm::console_tail(&booted.machine, 80)
    );
    assert_discovered(&booted, "IPv6", &boot_url, &guest_ip);
}
