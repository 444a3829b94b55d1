//! Fake `/sys` + `/proc` trees shaped like a real machine's, for running the real metalprobe
//! against a machine that is not there (integration tests, the fleet simulator).

use std::path::Path;

use crate::{Error, Result};

/// What the generated machine has.
#[derive(Debug, Clone)]
pub struct FakeMachine {
    /// SMBIOS system UUID.
    pub uuid: String,
    /// Manufacturer (DMI `sys_vendor`).
    pub manufacturer: String,
    /// Product name.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Network interfaces.
    pub nics: Vec<FakeNic>,
    /// CPU packages × cores per package (one thread per core).
    pub cpus: (u32, u32),
    /// Memory in KiB.
    pub memory_kib: u64,
    /// `(name, bytes, rotational)`.
    pub disks: Vec<(String, u64, bool)>,
    /// PCI functions, written to `/sys/bus/pci/devices`.
    pub pci_devices: Vec<FakePciDevice>,
}

/// One PCI function of a [`FakeMachine`]; ids and class as sysfs writes them (`0x10de`,
/// `0x030200`).
#[derive(Debug, Clone)]
pub struct FakePciDevice {
    /// Address, e.g. `0000:41:00.0`.
    pub address: String,
    /// Vendor id.
    pub vendor: String,
    /// Device id.
    pub device: String,
    /// Class code (class, subclass, programming interface).
    pub class: String,
    /// Subsystem vendor id.
    pub subsystem_vendor: String,
    /// Subsystem device id.
    pub subsystem_device: String,
    /// NUMA node (`-1`: none).
    pub numa_node: i32,
}

fn write(path: &Path, contents: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(Error::io(format!("create {}", parent.display())))?;
    }
    std::fs::write(path, contents).map_err(Error::io(format!("write {}", path.display())))
}

/// One network interface of a [`FakeMachine`].
#[derive(Debug, Clone)]
pub struct FakeNic {
    /// Kernel name, e.g. `eth0`.
    pub name: String,
    /// MAC address.
    pub mac: String,
    /// IPv4 address and prefix length.
    pub ipv4: Option<(String, u8)>,
    /// Whether the link is up.
    pub link_up: bool,
}

impl FakeMachine {
    /// Writes the tree under `root`.
    pub fn write(&self, root: &Path) -> Result<()> {
        let dmi = root.join("sys/class/dmi/id");
        for (name, value) in [
            ("product_uuid", self.uuid.as_str()),
            ("sys_vendor", self.manufacturer.as_str()),
            ("product_name", self.model.as_str()),
            ("product_serial", self.serial.as_str()),
            ("bios_vendor", "ferrometal testenv"),
            ("bios_version", "1.0"),
            ("bios_date", "11/25/2026"),
            ("board_vendor", self.manufacturer.as_str()),
            ("board_name", "fake board"),
        ] {
            write(&dmi.join(name), &format!("{value}\n"))?;
        }
        let mut cpuinfo = String::new();
        let mut processor = 0;
        for package in 0..self.cpus.0 {
            for _ in 0..self.cpus.1 {
                cpuinfo.push_str(&format!(
                    "processor\t: {processor}\nvendor_id\t: GenuineIntel\nmodel name\t: Fake CPU @ 2.00GHz\nphysical id\t: {package}\ncpu cores\t: {}\nflags\t\t: fpu vme sse2 vmx\n\n",
                    self.cpus.1
                ));
                processor += 1;
            }
        }
        write(&root.join("proc/cpuinfo"), &cpuinfo)?;
        write(
            &root.join("proc/meminfo"),
            &format!(
                "MemTotal:       {} kB\nMemFree:        1024 kB\n",
                self.memory_kib
            ),
        )?;

        let mut fib_trie = String::from("Main:\n  +-- 0.0.0.0/0 3 0 5\n");
        let mut route = String::from(
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n",
        );
        for FakeNic {
            name,
            mac,
            ipv4: address,
            link_up: up,
        } in &self.nics
        {
            let dir = root.join("sys/class/net").join(name);
            write(&dir.join("address"), &format!("{mac}\n"))?;
            write(&dir.join("carrier"), if *up { "1\n" } else { "0\n" })?;
            write(&dir.join("operstate"), if *up { "up\n" } else { "down\n" })?;
            write(&dir.join("speed"), "10000\n")?;
            if let Some((ip, prefix)) = address {
                let parsed: std::net::Ipv4Addr = ip
                    .parse()
                    .map_err(|_| Error::Registry(format!("{ip} is not an IPv4 address")))?;
                let mask = if *prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - prefix)
                };
                let network = u32::from(parsed) & mask;
                fib_trie.push_str(&format!("     |-- {ip}\n        /32 host LOCAL\n"));
                // Host-order hex of the network-order bytes, as the kernel prints it.
                route.push_str(&format!(
                    "{name}\t{:08X}\t00000000\t0001\t0\t0\t0\t{:08X}\t0\t0\t0\n",
                    u32::from_ne_bytes(network.to_be_bytes()),
                    u32::from_ne_bytes(mask.to_be_bytes()),
                ));
            }
        }
        let lo = root.join("sys/class/net/lo");
        write(&lo.join("address"), "00:00:00:00:00:00\n")?;
        write(&lo.join("carrier"), "1\n")?;
        write(&root.join("proc/net/fib_trie"), &fib_trie)?;
        write(&root.join("proc/net/route"), &route)?;
        write(&root.join("proc/net/if_inet6"), "")?;

        for (name, bytes, rotational) in &self.disks {
            let dir = root.join("sys/block").join(name);
            write(&dir.join("size"), &format!("{}\n", bytes / 512))?;
            write(
                &dir.join("queue/rotational"),
                if *rotational { "1\n" } else { "0\n" },
            )?;
            write(&dir.join("queue/logical_block_size"), "512\n")?;
            write(&dir.join("queue/physical_block_size"), "4096\n")?;
            write(&dir.join("removable"), "0\n")?;
            write(&dir.join("ro"), "0\n")?;
            write(&dir.join("device/model"), "FAKE DISK\n")?;
            write(&dir.join("device/vendor"), "ferrometal\n")?;
        }
        write(&root.join("sys/block/loop0/size"), "0\n")?;

        for device in &self.pci_devices {
            let dir = root.join("sys/bus/pci/devices").join(&device.address);
            for (name, value) in [
                ("vendor", device.vendor.as_str()),
                ("device", device.device.as_str()),
                ("class", device.class.as_str()),
                ("subsystem_vendor", device.subsystem_vendor.as_str()),
                ("subsystem_device", device.subsystem_device.as_str()),
                ("numa_node", &device.numa_node.to_string()),
            ] {
                write(&dir.join(name), &format!("{value}\n"))?;
            }
        }
        Ok(())
    }
}
