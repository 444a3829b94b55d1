//! Reading a machine's facts from `/sys` and `/proc` under a configurable root, so tests run
//! the same code on a generated tree. Parsers of kernel files are pure functions.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::report::{
    BiosInformation, BlockDevice, BoardInformation, Cpu, Memory, NetworkInterface, Nic, PciDevice,
    Report, SystemInfo, SystemInformation,
};

/// Reads one sysfs attribute, trimmed; empty when missing or unreadable (many DMI fields are
/// root-only or absent on virtual machines).
fn attribute(path: &Path) -> String {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .unwrap_or_default()
}

/// Collects every fact under `root` (`/` on a real machine).
pub fn collect(root: &Path) -> Report {
    let cpuinfo = std::fs::read_to_string(root.join("proc/cpuinfo")).unwrap_or_default();
    let meminfo = std::fs::read_to_string(root.join("proc/meminfo")).unwrap_or_default();
    let (network_interfaces, nics) = network(root);
    Report {
        timestamp: String::new(),
        system_info: dmi(root),
        cpu: cpus(&cpuinfo),
        network_interfaces,
        lldp: Vec::new(),
        storage: block_devices(root),
        memory: memory_total(&meminfo)
            .map(|size| vec![Memory { size }])
            .unwrap_or_default(),
        nics,
        pci_devices: pci_devices(root),
    }
}

/// DMI facts from `/sys/class/dmi/id`.
pub fn dmi(root: &Path) -> SystemInfo {
    let id = root.join("sys/class/dmi/id");
    let get = |name: &str| attribute(&id.join(name));
    SystemInfo {
        bios_information: BiosInformation {
            vendor: get("bios_vendor"),
            version: get("bios_version"),
            date: get("bios_date"),
        },
        system_information: SystemInformation {
            manufacturer: get("sys_vendor"),
            product_name: get("product_name"),
            version: get("product_version"),
            serial_number: get("product_serial"),
            uuid: get("product_uuid").to_ascii_lowercase(),
            sku_number: get("product_sku"),
            family: get("product_family"),
        },
        board_information: BoardInformation {
            manufacturer: get("board_vendor"),
            product: get("board_name"),
            version: get("board_version"),
            serial_number: get("board_serial"),
            asset_tag: get("board_asset_tag"),
        },
    }
}

/// CPU packages from `/proc/cpuinfo`: one entry per `physical id`, counting its logical
/// processors as hardware threads.
pub fn cpus(cpuinfo: &str) -> Vec<Cpu> {
    let mut packages: BTreeMap<u32, Cpu> = BTreeMap::new();
    for block in cpuinfo.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let fields: BTreeMap<&str, &str> = block
            .lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(key, value)| (key.trim(), value.trim()))
            .collect();
        if !fields.contains_key("processor") {
            continue;
        }
        let id = fields
            .get("physical id")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let package = packages.entry(id).or_insert_with(|| Cpu {
            id,
            total_cores: fields
                .get("cpu cores")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            total_hardware_threads: 0,
            vendor: fields
                .get("vendor_id")
                .copied()
                .unwrap_or_default()
                .to_owned(),
            model: fields
                .get("model name")
                .copied()
                .unwrap_or_default()
                .to_owned(),
            capabilities: fields
                .get("flags")
                .map(|flags| flags.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        });
        package.total_hardware_threads += 1;
    }
    for package in packages.values_mut() {
        if package.total_cores == 0 {
            package.total_cores = package.total_hardware_threads;
        }
    }
    packages.into_values().collect()
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn memory_total(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        let mut words = rest.split_whitespace();
        let value: u64 = words.next()?.parse().ok()?;
        Some(match words.next() {
            Some("kB") => value * 1024,
            _ => value,
        })
    })
}

/// Interfaces that are not machine NICs: loopback and virtual ones metal-operator also skips.
fn skipped_interface(name: &str) -> bool {
    name == "lo" || name.starts_with("tun") || name == "docker0"
}

/// Network interfaces from `/sys/class/net`, with IPv4 addresses from `/proc/net/fib_trie`
/// (matched to interfaces through `/proc/net/route`) and IPv6 from `/proc/net/if_inet6`.
pub fn network(root: &Path) -> (Vec<NetworkInterface>, Vec<Nic>) {
    let net = root.join("sys/class/net");
    let mut names: Vec<String> = std::fs::read_dir(&net)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| !skipped_interface(name))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap_or_default();
    let ipv4 = ipv4_by_interface(&read("proc/net/fib_trie"), &read("proc/net/route"));
    let ipv6 = ipv6_by_interface(&read("proc/net/if_inet6"));
    let mut interfaces = Vec::new();
    let mut nics = Vec::new();
    for name in names {
        let dir = net.join(&name);
        let mac = attribute(&dir.join("address")).to_ascii_lowercase();
        let carrier = attribute(&dir.join("carrier")) == "1";
        let mut addresses: Vec<String> = ipv4.get(&name).cloned().unwrap_or_default();
        addresses.extend(ipv6.get(&name).cloned().unwrap_or_default());
        interfaces.push(NetworkInterface {
            name: name.clone(),
            ip_address: addresses.first().cloned().unwrap_or_default(),
            ip_addresses: addresses,
            mac_address: mac.clone(),
            carrier_status: String::from(if carrier { "up" } else { "down" }),
        });
        // `device` links to the PCI function; its last component is the PCI address.
        let pci_address = std::fs::read_link(dir.join("device"))
            .ok()
            .and_then(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        nics.push(Nic {
            name,
            mac,
            pci_address,
            speed: attribute(&dir.join("speed")),
        });
    }
    (interfaces, nics)
}

/// Local (host) IPv4 addresses from `/proc/net/fib_trie`, assigned to the interface whose
/// route in `/proc/net/route` covers them. Loopback addresses are left out.
pub fn ipv4_by_interface(fib_trie: &str, route: &str) -> BTreeMap<String, Vec<String>> {
    let mut locals: Vec<Ipv4Addr> = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let line = line.trim_start_matches([' ', '|', '+', '-']).trim();
        if let Ok(address) = line.parse::<Ipv4Addr>() {
            last = Some(address);
        } else if line.contains("host LOCAL")
            && let Some(address) = last
            && !address.is_loopback()
            && !locals.contains(&address)
        {
            locals.push(address);
        }
    }
    // Route lines: Iface Destination Gateway Flags RefCnt Use Metric Mask …; addresses are
    // the in-memory (network-order) bytes printed as a host-order hex number, so `from_be`
    // turns them into the numeric form `u32::from(Ipv4Addr)` uses, on either endianness.
    let routes: Vec<(String, u32, u32)> = route
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let hex = |text: &str| u32::from_str_radix(text, 16).ok().map(u32::from_be);
            Some((
                (*fields.first()?).to_owned(),
                hex(fields.get(1)?)?,
                hex(fields.get(7)?)?,
            ))
        })
        .filter(|(_, _, mask)| *mask != 0)
        .collect();
    let mut by_interface: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for address in locals {
        let value = u32::from(address);
        let best = routes
            .iter()
            .filter(|(_, destination, mask)| value & mask == *destination)
            .max_by_key(|(_, _, mask)| mask.count_ones());
        if let Some((interface, _, _)) = best {
            by_interface
                .entry(interface.clone())
                .or_default()
                .push(address.to_string());
        }
    }
    by_interface
}

/// Global IPv6 addresses per interface from `/proc/net/if_inet6` (link-local and loopback are
/// left out).
pub fn ipv6_by_interface(if_inet6: &str) -> BTreeMap<String, Vec<String>> {
    let mut by_interface: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in if_inet6.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(hex), Some(scope), Some(name)) = (fields.first(), fields.get(3), fields.get(5))
        else {
            continue;
        };
        if *scope != "00" || hex.len() != 32 {
            continue;
        }
        let Ok(bits) = u128::from_str_radix(hex, 16) else {
            continue;
        };
        by_interface
            .entry((*name).to_owned())
            .or_default()
            .push(std::net::Ipv6Addr::from(bits).to_string());
    }
    by_interface
}

/// Block devices from `/sys/block` (loop, ram and zram devices are left out).
pub fn block_devices(root: &Path) -> Vec<BlockDevice> {
    let block = root.join("sys/block");
    let mut names: Vec<String> = std::fs::read_dir(&block)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| !["loop", "ram", "zram"].iter().any(|p| name.starts_with(p)))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let dir = block.join(&name);
            let number = |path: &str| attribute(&dir.join(path)).parse::<u64>().unwrap_or(0);
            BlockDevice {
                path: format!("/dev/{name}"),
                rotational: number("queue/rotational") == 1,
                removable: number("removable") == 1,
                read_only: number("ro") == 1,
                vendor: attribute(&dir.join("device/vendor")),
                model: attribute(&dir.join("device/model")),
                serial: attribute(&dir.join("device/serial")),
                // `size` counts 512-byte sectors whatever the device's block size.
                size_bytes: number("size") * 512,
                physical_block_size: number("queue/physical_block_size"),
                logical_block_size: number("queue/logical_block_size"),
                name,
            }
        })
        .collect()
}

/// Vendor names metalprobe knows without `pci.ids`, spelt as `pci.ids` spells them (what
/// metal-operator's probe reports): vendors of accelerators, and of the BMC VGAs that must not
/// be taken for one.
const VENDORS: [(&str, &str); 10] = [
    ("10de", "NVIDIA Corporation"),
    ("1002", "Advanced Micro Devices, Inc. [AMD/ATI]"),
    ("1022", "Advanced Micro Devices, Inc. [AMD]"),
    ("8086", "Intel Corporation"),
    ("1da3", "Habana Labs Ltd."),
    ("10ee", "Xilinx Corporation"),
    ("1172", "Altera Corporation"),
    ("17cb", "Qualcomm Technologies, Inc"),
    ("1a03", "ASPEED Technology, Inc."),
    ("102b", "Matrox Electronics Systems Ltd."),
];

/// The name of PCI vendor `id` (four hex digits, as in the report), or `""` for a vendor
/// metalprobe does not know.
pub fn vendor_name(id: &str) -> &'static str {
    VENDORS
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(id))
        .map_or("", |(_, name)| name)
}

/// A sysfs PCI id (`0x10de`) in the report's form: lowercase hex without `0x` (`10de`).
fn pci_id(text: &str) -> String {
    let text = text.trim();
    text.strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text)
        .to_ascii_lowercase()
}

/// PCI functions from `/sys/bus/pci/devices/<address>` (`vendor`, `device`, `class`,
/// `numa_node`, `subsystem_vendor`, `subsystem_device`), by address. Entries without a
/// readable vendor id are left out.
pub fn pci_devices(root: &Path) -> Vec<PciDevice> {
    let devices = root.join("sys/bus/pci/devices");
    let mut addresses: Vec<String> = std::fs::read_dir(&devices)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    addresses.sort();
    addresses
        .into_iter()
        .filter_map(|address| {
            let dir = devices.join(&address);
            let get = |name: &str| attribute(&dir.join(name));
            let vendor_id = pci_id(&get("vendor"));
            if vendor_id.is_empty() {
                return None;
            }
            Some(PciDevice {
                vendor: vendor_name(&vendor_id).to_owned(),
                product: String::new(),
                product_id: pci_id(&get("device")),
                // The kernel writes -1 for a machine without NUMA; so does metal-operator's
                // probe when it knows no node.
                numa_node_id: get("numa_node").parse().unwrap_or(-1),
                class: get("class").to_ascii_lowercase(),
                subsystem_vendor_id: pci_id(&get("subsystem_vendor")),
                subsystem_product_id: pci_id(&get("subsystem_device")),
                vendor_id,
                address,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn pci_devices_are_read_from_sysfs_with_their_class_and_known_vendor_names() {
        let root = tempfile::tempdir().expect("temp dir");
        let devices = root.path().join("sys/bus/pci/devices");
        for (address, vendor, device, class, numa) in [
            ("0000:41:00.0", "0x10de", "0x2330", "0x030200", "1"),
            ("0000:03:00.0", "0x1a03", "0x2000", "0x030000", "-1"),
            ("0000:18:00.0", "0x1d0f", "0xefa1", "0x020000", "0"),
        ] {
            let dir = devices.join(address);
            write(&dir.join("vendor"), &format!("{vendor}\n"));
            write(&dir.join("device"), &format!("{device}\n"));
            write(&dir.join("class"), &format!("{class}\n"));
            write(&dir.join("numa_node"), &format!("{numa}\n"));
            write(&dir.join("subsystem_vendor"), "0x10DE\n");
            write(&dir.join("subsystem_device"), "0x16c1\n");
        }
        // Not a device: no vendor.
        std::fs::create_dir_all(devices.join("0000:ff:00.0")).expect("mkdir");

        let found = pci_devices(root.path());
        let summary: Vec<(&str, &str, &str, &str, &str, i32)> = found
            .iter()
            .map(|d| {
                (
                    d.address.as_str(),
                    d.vendor.as_str(),
                    d.vendor_id.as_str(),
                    d.product_id.as_str(),
                    d.class.as_str(),
                    d.numa_node_id,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "0000:03:00.0",
                    "ASPEED Technology, Inc.",
                    "1a03",
                    "2000",
                    "0x030000",
                    -1
                ),
                ("0000:18:00.0", "", "1d0f", "efa1", "0x020000", 0),
                (
                    "0000:41:00.0",
                    "NVIDIA Corporation",
                    "10de",
                    "2330",
                    "0x030200",
                    1
                ),
            ],
            "sorted by address, ids without 0x, unknown vendors unnamed"
        );
        assert_eq!(found[2].subsystem_vendor_id, "10de");
        assert_eq!(found[2].subsystem_product_id, "16c1");
        assert_eq!(found[2].product, "", "no product table");
        assert_eq!(collect(root.path()).pci_devices, found);
    }

    #[test]
    fn a_machine_without_pci_in_sysfs_reports_no_pci_devices() {
        let root = tempfile::tempdir().expect("temp dir");
        assert!(pci_devices(root.path()).is_empty());
    }

    #[test]
    fn cpuinfo_is_grouped_by_package() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nphysical id\t: 0\ncpu cores\t: 2\nflags\t\t: fpu vmx\n\n\
                       processor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nphysical id\t: 0\ncpu cores\t: 2\nflags\t\t: fpu vmx\n\n\
                       processor\t: 2\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nphysical id\t: 1\ncpu cores\t: 2\nflags\t\t: fpu vmx\n";
        let cpus = cpus(cpuinfo);
        assert_eq!(cpus.len(), 2);
        assert_eq!(
            (
                cpus[0].id,
                cpus[0].total_cores,
                cpus[0].total_hardware_threads
            ),
            (0, 2, 2)
        );
        assert_eq!(cpus[1].total_hardware_threads, 1);
        assert_eq!(cpus[0].capabilities, ["fpu", "vmx"]);
        assert_eq!(cpus[0].vendor, "GenuineIntel");
    }

    #[test]
    fn memory_total_is_in_bytes() {
        assert_eq!(
            memory_total("MemTotal:       16384 kB\nMemFree: 1 kB\n"),
            Some(16384 * 1024)
        );
        assert_eq!(memory_total("MemFree: 1 kB\n"), None);
    }

    const FIB_TRIE: &str = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 10.0.0.0/24 2 0 2\n        |-- 10.0.0.0\n           /24 link UNICAST\n        |-- 10.0.0.7\n           /32 host LOCAL\n     +-- 127.0.0.0/8 2 0 2\n        |-- 127.0.0.1\n           /32 host LOCAL\n     |-- 192.168.5.9\n        /32 host LOCAL\nLocal:\n  +-- 0.0.0.0/0 3 0 5\n        |-- 10.0.0.7\n           /32 host LOCAL\n";
    const ROUTE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                         eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                         eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                         eth1\t0005A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

    #[test]
    fn ipv4_addresses_are_matched_to_the_interface_of_their_route() {
        let by_interface = ipv4_by_interface(FIB_TRIE, ROUTE);
        assert_eq!(
            by_interface.get("eth0"),
            Some(&vec![String::from("10.0.0.7")])
        );
        assert_eq!(
            by_interface.get("eth1"),
            Some(&vec![String::from("192.168.5.9")])
        );
        assert!(
            !by_interface
                .values()
                .flatten()
                .any(|a| a.starts_with("127."))
        );
    }

    #[test]
    fn only_global_ipv6_addresses_count() {
        let if_inet6 = "fe800000000000000250b6fffe1ee4e1 02 40 20 80 eth0\n\
                        20010db8000000000000000000000005 02 40 00 80 eth0\n\
                        00000000000000000000000000000001 01 80 10 80 lo\n";
        let by_interface = ipv6_by_interface(if_inet6);
        assert_eq!(
            by_interface.get("eth0"),
            Some(&vec![String::from("2001:db8::5")])
        );
        assert_eq!(by_interface.len(), 1);
    }
}
