//! What a simulated fleet consists of, generated deterministically from a seed (pure).
//!
//! BMC `b` has MAC `52:54:fe:<b as 3 bytes>`; machine `m` has NIC MACs
//! `52:54:fd:<m as 3 bytes>` (first NIC) and `52:54:fc:<m as 3 bytes>` (second NIC). The
//! seed decides UUIDs, serial numbers and hardware shapes, so two fleets from one seed are
//! identical and fleets from different seeds do not collide in a cluster.

use std::net::Ipv4Addr;

/// MAC prefix of every simulated BMC (for a MAC-prefix database or DHCP onboarding).
pub const BMC_MAC_PREFIX: &str = "52:54:fe";
/// Manufacturer the simulated BMCs and machines report.
pub const MANUFACTURER: &str = "ferrometal-sim";

/// How many BMCs and machines, and how they are shaped.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Seed of every generated value.
    pub seed: u64,
    /// Number of BMCs.
    pub bmcs: usize,
    /// Machines behind each BMC (a blade chassis has several).
    pub systems_per_bmc: usize,
    /// Username every BMC accepts.
    pub username: String,
    /// Password every BMC accepts.
    pub password: String,
    /// Index of the first BMC: fleets with disjoint ranges have distinct MACs, addresses and
    /// machine numbers, so they can share a cluster.
    pub first_bmc: usize,
    /// Machines (by index) that depart from the generated default, for tests of odd hardware.
    pub oddities: Vec<(usize, Oddity)>,
}

/// A way a machine departs from the generated default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oddity {
    /// The system has no Redfish `Boot` object (a DPU or SmartNIC SoC): no boot override.
    NoBootOverride,
    /// The BMC lists one more NIC (MAC `52:54:fb:<machine>`, then `52:55:fb:…`) that the
    /// machine's OS never sees.
    BmcOnlyNic(BmcOnlyNicKind),
    /// The machine reports the SMBIOS UUID of machine `n`, as if two BMCs saw one system.
    SameUuidAs(usize),
    /// The machine has one more GPU (an NVIDIA 3D controller): a PCIe device the BMC lists and
    /// a PCI function in the machine's sysfs, so both discoveries find the same accelerator.
    /// Each one adds a GPU.
    Gpu,
    /// The machine has one more disk, a 960 GB SSD named after the others (`sdc` after `sda`
    /// and `sdb`), that its BMC's Redfish `Storage` does not list: only the machine's OS, and
    /// so the in-band probe, sees it (like a disk behind an HBA the BMC cannot read). Each
    /// one adds a disk.
    OsOnlyDisk,
}

/// What the BMC says of a NIC that the machine's OS never sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BmcOnlyNicKind {
    /// The host's end of the BMC's Redfish host interface (`Links.HostInterface`).
    HostInterface,
    /// `InterfaceEnabled: false`.
    Disabled,
    /// `Status.State: Absent`.
    Absent,
    /// An ordinary, enabled NIC (firmware that lists a port the OS has no driver for).
    Unseen,
}

impl Default for FleetSpec {
    fn default() -> Self {
        Self {
            seed: 1,
            bmcs: 1,
            systems_per_bmc: 1,
            username: String::from("admin"),
            password: String::from("sim-password"),
            first_bmc: 0,
            oddities: Vec::new(),
        }
    }
}

/// One BMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BmcSpec {
    /// Index in the fleet.
    pub index: usize,
    /// The BMC's own MAC (what it announces over DHCP).
    pub mac: String,
    /// Manager UUID.
    pub uuid: String,
    /// Firmware version.
    pub firmware: String,
    /// The machines it manages.
    pub systems: Vec<MachineSpec>,
}

/// One machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineSpec {
    /// Index in the fleet.
    pub index: usize,
    /// SMBIOS system UUID (lowercase).
    pub uuid: String,
    /// Serial number.
    pub serial: String,
    /// Product name.
    pub model: String,
    /// NIC MACs, the first one boots.
    pub macs: Vec<String>,
    /// CPU packages × cores per package.
    pub cpus: (u32, u32),
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Disks: `(kernel name, bytes, rotational)`.
    pub disks: Vec<(String, u64, bool)>,
    /// Whether the system takes a boot override (`false`: no Redfish `Boot` object).
    pub boot_override: bool,
    /// NICs the BMC lists that the machine's OS never sees: `(MAC, what the BMC says)`.
    pub bmc_only_nics: Vec<(String, BmcOnlyNicKind)>,
    /// GPUs (see [`Oddity::Gpu`] and `crate::inventory::pcie_devices`).
    pub gpus: usize,
    /// Disks of `disks` (by name) that the BMC's Redfish `Storage` does not list (see
    /// [`Oddity::OsOnlyDisk`]).
    pub bmc_unlisted_disks: Vec<String>,
}

/// SplitMix64: a tiny, well-distributed generator; enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for stream `stream` of `seed`.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut rng = Self(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next_u64();
        rng
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// A random (version 4) UUID, lowercase.
    pub fn uuid(&mut self) -> String {
        let high = self.next_u64();
        let low = self.next_u64();
        let high = (high & !0xF000) | 0x4000;
        let low = (low & !(0xC << 60)) | (0x8 << 60);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            high >> 32,
            (high >> 16) & 0xFFFF,
            high & 0xFFFF,
            low >> 48,
            low & 0xFFFF_FFFF_FFFF
        )
    }
}

fn mac(prefix: &str, index: usize) -> String {
    format!(
        "{prefix}:{:02x}:{:02x}:{:02x}",
        (index >> 16) & 0xFF,
        (index >> 8) & 0xFF,
        index & 0xFF
    )
}

/// Kernel name of a machine's disk `n`: `sda`, `sdb`, ...
fn disk_name(n: usize) -> String {
    format!("sd{}", char::from(b'a' + n as u8))
}

/// The size of a disk [`Oddity::OsOnlyDisk`] adds (960 GB).
const OS_ONLY_DISK_BYTES: u64 = 960_000_000_000;

/// One hardware shape: model, CPU packages, cores per package, memory GiB, disks as
/// `(GB, rotational)`.
type Shape = (&'static str, u32, u32, u64, &'static [(u64, bool)]);

/// The hardware shapes machines are drawn from.
const SHAPES: [Shape; 4] = [
    ("SimServer 1U", 1, 8, 32, &[(480, false)]),
    ("SimServer 2U", 2, 16, 256, &[(960, false), (960, false)]),
    (
        "SimStorage 4U",
        2,
        12,
        128,
        &[(480, false), (8000, true), (8000, true)],
    ),
    ("SimEdge", 1, 4, 16, &[(240, false)]),
];

impl FleetSpec {
    /// Every BMC with its machines.
    pub fn generate(&self) -> Vec<BmcSpec> {
        (self.first_bmc..self.first_bmc + self.bmcs)
            .map(|index| self.bmc(index))
            .collect()
    }

    /// BMC `index` with its machines.
    pub fn bmc(&self, index: usize) -> BmcSpec {
        let mut rng = Rng::new(self.seed, index as u64);
        BmcSpec {
            index,
            mac: mac(BMC_MAC_PREFIX, index),
            uuid: rng.uuid(),
            firmware: format!("1.{}.{}", rng.below(10), rng.below(100)),
            systems: (0..self.systems_per_bmc)
                .map(|slot| self.machine(index * self.systems_per_bmc + slot))
                .collect(),
        }
    }

    /// Machine `index`.
    pub fn machine(&self, index: usize) -> MachineSpec {
        let mut rng = Rng::new(self.seed, (1 << 32) + index as u64);
        let (model, packages, cores, memory_gib, disks) =
            SHAPES[rng.below(SHAPES.len() as u64) as usize];
        let mut uuid = rng.uuid();
        let mut boot_override = true;
        let mut bmc_only_nics = Vec::new();
        let mut gpus = 0;
        let mut os_only_disks = 0;
        for (_, oddity) in self
            .oddities
            .iter()
            .filter(|(machine, _)| *machine == index)
        {
            match *oddity {
                Oddity::NoBootOverride => boot_override = false,
                Oddity::BmcOnlyNic(kind) => {
                    // Several per machine: the second byte counts up from 54.
                    let prefix = format!("52:{:02x}:fb", 0x54 + bmc_only_nics.len());
                    bmc_only_nics.push((mac(&prefix, index), kind));
                }
                Oddity::SameUuidAs(other) if other != index => {
                    uuid = Self {
                        oddities: Vec::new(),
                        ..self.clone()
                    }
                    .machine(other)
                    .uuid;
                }
                Oddity::SameUuidAs(_) => {}
                Oddity::Gpu => gpus += 1,
                Oddity::OsOnlyDisk => os_only_disks += 1,
            }
        }
        MachineSpec {
            index,
            boot_override,
            bmc_only_nics,
            uuid,
            gpus,
            bmc_unlisted_disks: (disks.len()..disks.len() + os_only_disks)
                .map(disk_name)
                .collect(),
            serial: format!("SIM{:010}", rng.below(10_000_000_000)),
            model: model.to_owned(),
            macs: vec![mac("52:54:fd", index), mac("52:54:fc", index)],
            cpus: (packages, cores),
            memory_mib: memory_gib * 1024,
            disks: disks
                .iter()
                .enumerate()
                .map(|(n, &(gb, rotational))| {
                    let name = format!("sd{}", char::from(b'a' + n as u8));
                    (name, gb * 1_000_000_000, rotational)
                })
                .chain(
                    (disks.len()..disks.len() + os_only_disks)
                        .map(|n| (disk_name(n), OS_ONLY_DISK_BYTES, false)),
                )
                .collect(),
        }
    }
}

/// Loopback address of BMC `index` when it is not given one by DHCP: `127.1.x.y`, skipping
/// `.0` and `.255` host parts.
pub fn loopback_address(index: usize) -> Ipv4Addr {
    let n = index as u32;
    let (high, low) = (n / 254, n % 254 + 1);
    Ipv4Addr::new(127, 1 + (high >> 8) as u8, (high & 0xFF) as u8, low as u8)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn fleet(seed: u64, bmcs: usize) -> FleetSpec {
        FleetSpec {
            seed,
            bmcs,
            systems_per_bmc: 2,
            ..FleetSpec::default()
        }
    }

    #[test]
    fn oddities_change_only_their_machines() {
        let plain = fleet(3, 4);
        let odd = FleetSpec {
            oddities: vec![
                (1, Oddity::NoBootOverride),
                (2, Oddity::BmcOnlyNic(BmcOnlyNicKind::HostInterface)),
                (2, Oddity::BmcOnlyNic(BmcOnlyNicKind::Unseen)),
                (3, Oddity::SameUuidAs(0)),
                (1, Oddity::Gpu),
                (1, Oddity::Gpu),
            ],
            ..plain.clone()
        };
        let (plain, odd) = (plain.generate(), odd.generate());
        let machine = |bmcs: &[BmcSpec], index: usize| bmcs[index / 2].systems[index % 2].clone();
        assert_eq!(machine(&odd, 0), machine(&plain, 0));
        assert!(!machine(&odd, 1).boot_override);
        assert_eq!((machine(&odd, 1).gpus, machine(&plain, 1).gpus), (2, 0));
        assert_eq!(
            machine(&odd, 2).bmc_only_nics,
            [
                (
                    String::from("52:54:fb:00:00:02"),
                    BmcOnlyNicKind::HostInterface
                ),
                (String::from("52:55:fb:00:00:02"), BmcOnlyNicKind::Unseen)
            ]
        );
        assert_eq!(machine(&odd, 2).macs, machine(&plain, 2).macs);
        assert_eq!(machine(&odd, 3).uuid, machine(&plain, 0).uuid);
        assert_eq!(machine(&odd, 3).serial, machine(&plain, 3).serial);
    }

    #[test]
    fn a_disk_only_the_os_sees_is_one_more_disk_the_bmc_does_not_list() {
        let plain = fleet(3, 2);
        let odd = FleetSpec {
            oddities: vec![(1, Oddity::OsOnlyDisk)],
            ..plain.clone()
        };
        let (plain, odd) = (plain.machine(1), odd.machine(1));
        let extra = odd.disks.last().expect("a disk").clone();
        assert_eq!(odd.disks[..odd.disks.len() - 1], plain.disks[..]);
        assert_eq!(extra.0, disk_name(plain.disks.len()));
        assert_eq!((extra.1, extra.2), (OS_ONLY_DISK_BYTES, false));
        assert_eq!(odd.bmc_unlisted_disks, [extra.0]);
        assert!(plain.bmc_unlisted_disks.is_empty());
        assert_eq!(odd.uuid, plain.uuid);
    }

    #[test]
    fn one_seed_gives_one_fleet() {
        assert_eq!(fleet(7, 20).generate(), fleet(7, 20).generate());
        assert_ne!(
            fleet(7, 20).generate()[3].systems[0].uuid,
            fleet(8, 20).generate()[3].systems[0].uuid
        );
    }

    #[test]
    fn identities_are_unique_across_thousands_of_machines() {
        let bmcs = fleet(1, 5000).generate();
        let machines: Vec<&MachineSpec> = bmcs.iter().flat_map(|b| &b.systems).collect();
        assert_eq!(machines.len(), 10_000);
        let uuids: HashSet<&str> = machines.iter().map(|m| m.uuid.as_str()).collect();
        let macs: HashSet<&str> = machines
            .iter()
            .flat_map(|m| m.macs.iter().map(String::as_str))
            .chain(bmcs.iter().map(|b| b.mac.as_str()))
            .collect();
        let addresses: HashSet<Ipv4Addr> = (0..5000).map(loopback_address).collect();
        assert_eq!(uuids.len(), 10_000);
        assert_eq!(macs.len(), 25_000);
        assert_eq!(addresses.len(), 5000);
        assert!(
            addresses
                .iter()
                .all(|a| a.is_loopback() && a.octets()[3] != 0)
        );
    }

    #[test]
    fn uuids_are_version_4() {
        let uuid = Rng::new(3, 0).uuid();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"), "{uuid}");
    }

    #[test]
    fn machines_are_numbered_across_bmcs() {
        let bmcs = fleet(1, 3).generate();
        assert_eq!(bmcs[1].systems[1].index, 3);
        assert_eq!(bmcs[1].systems[1].macs[0], "52:54:fd:00:00:03");
        assert_eq!(bmcs[2].mac, "52:54:fe:00:00:02");
        assert_eq!(loopback_address(0), Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(loopback_address(254), Ipv4Addr::new(127, 1, 1, 1));
    }
}
