//! metalprobe against a real kernel: two network namespaces joined by a veth pair, a real
//! lldpd on each side, and metalprobe run inside one of them with `--root /` (its own
//! `/sys` and `/proc/net`). It must report the interface with its MAC, address and link,
//! and the other side as its LLDP neighbour.

use std::process::Command;
use std::time::{Duration, Instant};

use metalprobe::report::Registration;

/// Network namespaces and their lldpd processes, removed when dropped.
struct Namespaces {
    names: [String; 2],
    daemons: Vec<testenv::Program>,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // lldpd first (Program kills on drop), then the namespaces and their veths.
        self.daemons.clear();
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn in_namespace(namespace: &str, program: &str) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", namespace, program]);
    command
}

#[test]
fn the_report_of_a_real_interface_includes_its_lldp_neighbour() {
    if !rustix::process::geteuid().is_root() {
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
    ip(&["netns", "add", &switch]);
    let mut namespaces = Namespaces {
        names: [switch.clone(), String::new()],
        daemons: Vec::new(),
    };
    ip(&["netns", "add", &machine]);
    namespaces.names[1] = machine.clone();
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
        (&switch, &switch_if, "ferrometal test switch"),
        (&machine, &machine_if, "machine"),
    ] {
        let mut lldpd = in_namespace(namespace, "lldpd");
        lldpd
            .args(["-d", "-u"])
            .arg(socket(namespace))
            .args(["-I", interface, "-S", description]);
        namespaces
            .daemons
            .push(testenv::Program::start("lldpd", lldpd).expect("lldpd starts"));
    }

    // lldpd sends on start and every 30 s; ask the switch to send until the machine sees it.
    let started = Instant::now();
    loop {
        let _ = in_namespace(&switch, "lldpcli")
            .arg("-u")
            .arg(socket(&switch))
            .arg("update")
            .output();
        let neighbours = in_namespace(&machine, "lldpctl")
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
            namespaces
                .daemons
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
    let output = in_namespace(&machine, env!("CARGO_BIN_EXE_metalprobe"))
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

    let mac = |namespace: &str, interface: &str| {
        let output = in_namespace(namespace, "cat")
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
    assert_eq!(nic.mac_address, mac(&machine, &machine_if));
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
    assert_eq!(lldp.neighbors[0].chassis_id, mac(&switch, &switch_if));
    assert_eq!(
        lldp.neighbors[0].system_description,
        "ferrometal test switch"
    );
    assert!(!lldp.neighbors[0].port_id.is_empty());
}
