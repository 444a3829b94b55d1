//! metalprobe against a real kernel: two network namespaces joined by a veth pair, a real
//! lldpd on each side, and metalprobe run inside one of them with `--root /` (its own
//! `/sys` and `/proc/net`). It must report the interface with its MAC, address and link,
//! and the other side as its LLDP neighbour.

use std::process::Command;
use std::time::{Duration, Instant};

use metalprobe::report::Registration;
use testenv::netns::{NetworkNamespace, ip};

#[test]
fn the_report_of_a_real_interface_includes_its_lldp_neighbour() {
    if !testenv::netns::available() {
        eprintln!("skipped: creating network namespaces needs root (CI runs as root)");
        return;
    }
    for tool in ["/usr/sbin/lldpd", "/usr/sbin/lldpctl", "/usr/sbin/lldpcli"] {
        assert!(
            std::path::Path::new(tool).is_file(),
            "{tool} is missing; `make test` installs Debian's lldpd"
        );
    }
    let id = std::process::id();
    let (switch, machine) = (format!("fm{id}s"), format!("fm{id}m"));
    let (switch_if, machine_if) = (format!("fm{id}sw"), format!("fm{id}nic"));
    let switch_ns = NetworkNamespace::create(&switch);
    let machine_ns = NetworkNamespace::create(&machine);
    // Declared after the namespaces, so the daemons are stopped before those are removed.
    let mut daemons: Vec<testenv::Program> = Vec::new();
    ip(&[
        "link",
        "add",
        &switch_if,
        "netns",
        &switch,
        "type",
        "veth",
        "peer",
        "name",
        &machine_if,
        "netns",
        &machine,
    ]);
    ip(&["-n", &switch, "link", "set", &switch_if, "up"]);
    ip(&["-n", &machine, "link", "set", &machine_if, "up"]);
    ip(&[
        "-n",
        &machine,
        "addr",
        "add",
        "10.99.0.2/24",
        "dev",
        &machine_if,
    ]);

    let dir = tempfile::tempdir().expect("temp dir");
    let socket = |name: &str| dir.path().join(format!("{name}.sock"));
    for (namespace, interface, description) in [
        (&switch_ns, &switch_if, "ferrometal test switch"),
        (&machine_ns, &machine_if, "machine"),
    ] {
        let mut lldpd = namespace.command("lldpd");
        lldpd
            .args(["-d", "-u"])
            .arg(socket(namespace.name()))
            .args(["-I", interface, "-S", description]);
        daemons.push(testenv::Program::start("lldpd", lldpd).expect("lldpd starts"));
    }

    // lldpd sends on start and every 30 s; ask the switch to send until the machine sees it.
    let started = Instant::now();
    loop {
        let _ = switch_ns
            .command("lldpcli")
            .arg("-u")
            .arg(socket(&switch))
            .arg("update")
            .output();
        let neighbours = machine_ns
            .command("lldpctl")
            .arg("-u")
            .arg(socket(&machine))
            .args(["-f", "json0"])
            .output()
            .expect("lldpctl runs");
        if String::from_utf8_lossy(&neighbours.stdout).contains("\"interface\"") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the machine's lldpd never saw the switch:\n{}",
            daemons
                .iter()
                .map(|d| d.log_tail(20))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // metalprobe reaches lldpd through its control socket, via a one-line wrapper.
    let lldpctl = dir.path().join("lldpctl");
    std::fs::write(
        &lldpctl,
        format!(
            "#!/bin/sh\nexec /usr/sbin/lldpctl -u {} \"$@\"\n",
            socket(&machine).display()
        ),
    )
    .expect("wrapper");
    Command::new("chmod")
        .arg("+x")
        .arg(&lldpctl)
        .status()
        .expect("chmod");
    let output = machine_ns
        .command(env!("CARGO_BIN_EXE_metalprobe"))
        .args([
            "--registry-url",
            "http://127.0.0.1:9",
            "--dry-run",
            "--server-uuid",
            "00000000-0000-4000-8000-000000000099",
            "--lldpctl",
        ])
        .arg(&lldpctl)
        .output()
        .expect("metalprobe runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Registration = serde_json::from_slice(&output.stdout).expect("report JSON");

    let mac = |namespace: &NetworkNamespace, interface: &str| {
        let output = namespace
            .command("cat")
            .arg(format!("/sys/class/net/{interface}/address"))
            .output()
            .expect("cat");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let nic = report
        .data
        .network_interfaces
        .iter()
        .find(|nic| nic.name == machine_if)
        .unwrap_or_else(|| panic!("no {machine_if} in {:?}", report.data.network_interfaces));
    assert_eq!(nic.mac_address, mac(&machine_ns, &machine_if));
    assert_eq!(nic.ip_addresses, ["10.99.0.2"]);
    assert_eq!(nic.carrier_status, "up");
    assert!(
        report
            .data
            .network_interfaces
            .iter()
            .all(|n| n.name != "lo"),
        "loopback is left out"
    );
    let lldp = report
        .data
        .lldp
        .iter()
        .find(|lldp| lldp.name == machine_if)
        .expect("LLDP neighbours of the machine's interface");
    assert_eq!(lldp.neighbors.len(), 1);
    assert_eq!(lldp.neighbors[0].chassis_id, mac(&switch_ns, &switch_if));
    assert_eq!(
        lldp.neighbors[0].system_description,
        "ferrometal test switch"
    );
    assert!(!lldp.neighbors[0].port_id.is_empty());
}
