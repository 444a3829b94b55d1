//! The cross-check of a Server's two inventories (issue #29, item 3): what its BMC lists
//! (out-of-band, through the driver's `get-system`) against what the discovery probe saw from
//! inside the machine (in-band), both as Server status fields. The differences name what a
//! person should look at — a disk behind a controller the BMC cannot read, a NIC without a
//! driver, a DIMM the OS does not see — and become the Server's `InventoryConsistent`
//! condition.
//!
//! Pure: [`compare`] and [`verdict`] are functions of the two statuses. The rules:
//!
//! - A category is compared only when both sides report something in it: a BMC that lists
//!   no drives has not reported its drives, it has not reported "no drives".
//! - NICs are matched by MAC (any case or separator).
//! - Disks are matched by capacity, within [`DISK_TOLERANCE_PERCENT`] (Server status, like
//!   metal-operator's, carries no drive serial number to match by). A storage controller that
//!   lists volumes is a RAID controller: the OS sees its volumes, and its drives only where
//!   they are passed through, so its drives match what is left but are never missed.
//! - CPUs: the number of packages, and the models, compared without case, trademarks and
//!   punctuation, one containing the other being the same (`Intel(R) Xeon(R) Gold 6338 CPU @
//!   2.00GHz` is `Intel Xeon Gold 6338`).
//! - Memory: the totals may differ by [`MEMORY_TOLERANCE_PERCENT`] of the larger or
//!   [`MEMORY_TOLERANCE_FLOOR`], whichever is more, since the OS counts the memory less what
//!   firmware and kernel keep (typically 2–4 % less): one missing DIMM of 16 shows, one of 32
//!   may not.
//! - Accelerators are matched by PCI vendor and device id; the BMC's own VGA is none.
//! - Something the source cannot identify (a drive without a capacity, an accelerator without
//!   ids) stands for anything of its category left over on the other side.
//!
//! Identity, BIOS version and NIC names are not compared: the BMC and the OS spell them
//! differently on too many machines for a difference to mean anything.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::ServerStatus;
use crate::api::conditions;
use crate::api::server::{Accelerator, NetworkInterface, Processor};
use crate::plugins::types::{NicKind, System};
use crate::registry::quantity_bytes;

/// How far two disks' capacities may lie apart (percent of the larger) and still be one
/// disk: a BMC may round what the OS counts in sectors.
pub const DISK_TOLERANCE_PERCENT: u64 = 2;
/// How far the two memory totals may lie apart (percent of the larger), unless
/// [`MEMORY_TOLERANCE_FLOOR`] is more.
pub const MEMORY_TOLERANCE_PERCENT: u64 = 5;
/// The least difference of the memory totals that counts (1 GiB): a small machine's kernel
/// keeps a larger share.
pub const MEMORY_TOLERANCE_FLOOR: u64 = 1 << 30;
/// Differences a condition message names; the rest are counted.
pub const MAX_NAMED: usize = 8;
/// The most characters of a name or model a message quotes.
const MAX_QUOTED: usize = 64;

/// Which inventory something is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// The BMC's (out-of-band).
    Bmc,
    /// The discovery probe's (in-band).
    Probe,
}

impl Source {
    /// The other inventory.
    pub fn other(self) -> Self {
        match self {
            Self::Bmc => Self::Probe,
            Self::Probe => Self::Bmc,
        }
    }
}

/// A category of the inventories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// CPU packages and their model.
    Processors,
    /// The memory total.
    Memory,
    /// Drives and volumes.
    Disks,
    /// Network interfaces.
    Nics,
    /// GPUs and other accelerators.
    Accelerators,
}

impl Category {
    /// Every category, in the order messages name them.
    pub const ALL: [Self; 5] = [
        Self::Processors,
        Self::Memory,
        Self::Disks,
        Self::Nics,
        Self::Accelerators,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Processors => "CPUs",
            Self::Memory => "memory",
            Self::Disks => "disks",
            Self::Nics => "NICs",
            Self::Accelerators => "accelerators",
        }
    }
}

/// Whether a disk is a drive or a volume (a RAID controller's logical disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiskKind {
    /// A physical drive.
    Drive,
    /// A volume.
    Volume,
}

/// A disk as compared: what a message says of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Disk {
    /// Drive or volume.
    pub kind: DiskKind,
    /// Its name in its inventory (`sdb`, `Disk.Bay.1`); may be empty.
    pub name: String,
    /// Capacity in bytes, when known.
    pub capacity_bytes: Option<u64>,
    /// `SSD`, `HDD`, ...
    pub media_type: Option<String>,
    /// Model.
    pub model: Option<String>,
}

/// One way the two inventories differ.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Difference {
    /// They count different numbers of CPU packages.
    ProcessorCount {
        /// The BMC's count.
        bmc: usize,
        /// The probe's count.
        probe: usize,
    },
    /// A CPU model of one has no like on the other: every distinct model of each.
    ProcessorModel {
        /// The BMC's models.
        bmc: Vec<String>,
        /// The probe's models.
        probe: Vec<String>,
    },
    /// The memory totals differ beyond the tolerance.
    Memory {
        /// The BMC's total in bytes.
        bmc_bytes: u64,
        /// The probe's total in bytes.
        probe_bytes: u64,
    },
    /// A disk only one inventory has.
    Disk {
        /// The inventory that has it.
        only_in: Source,
        /// The disk.
        disk: Disk,
    },
    /// A NIC only one inventory has.
    Nic {
        /// The inventory that has it.
        only_in: Source,
        /// Its MAC address, as that inventory spells it.
        mac: String,
        /// Its name there.
        name: String,
    },
    /// An accelerator only one inventory has.
    Accelerator {
        /// The inventory that has it.
        only_in: Source,
        /// Its name there.
        name: String,
        /// Model, when known.
        model: Option<String>,
        /// PCI vendor and device id (`0x10de:0x2330`), when known.
        ids: Option<String>,
    },
}

impl Difference {
    /// The same difference seen from the other side (BMC and probe exchanged).
    pub fn swapped(self) -> Self {
        match self {
            Self::ProcessorCount { bmc, probe } => Self::ProcessorCount {
                bmc: probe,
                probe: bmc,
            },
            Self::ProcessorModel { bmc, probe } => Self::ProcessorModel {
                bmc: probe,
                probe: bmc,
            },
            Self::Memory {
                bmc_bytes,
                probe_bytes,
            } => Self::Memory {
                bmc_bytes: probe_bytes,
                probe_bytes: bmc_bytes,
            },
            Self::Disk { only_in, disk } => Self::Disk {
                only_in: only_in.other(),
                disk,
            },
            Self::Nic { only_in, mac, name } => Self::Nic {
                only_in: only_in.other(),
                mac,
                name,
            },
            Self::Accelerator {
                only_in,
                name,
                model,
                ids,
            } => Self::Accelerator {
                only_in: only_in.other(),
                name,
                model,
                ids,
            },
        }
    }

    /// The category it belongs to.
    pub fn category(&self) -> Category {
        match self {
            Self::ProcessorCount { .. } | Self::ProcessorModel { .. } => Category::Processors,
            Self::Memory { .. } => Category::Memory,
            Self::Disk { .. } => Category::Disks,
            Self::Nic { .. } => Category::Nics,
            Self::Accelerator { .. } => Category::Accelerators,
        }
    }

    /// What a person reads: "disk sdb (960 GB, SSD) seen by the probe is missing from the
    /// BMC's inventory".
    pub fn describe(&self) -> String {
        match self {
            Self::ProcessorCount { bmc, probe } => {
                format!("the BMC lists {bmc} CPU package(s), the probe saw {probe}")
            }
            Self::ProcessorModel { bmc, probe } => format!(
                "the CPU model differs: the BMC says {}, the probe {}",
                quoted_list(bmc),
                quoted_list(probe)
            ),
            Self::Memory {
                bmc_bytes,
                probe_bytes,
            } => format!(
                "the memory differs: the BMC reports {}, the probe saw {}",
                gibibytes(*bmc_bytes),
                gibibytes(*probe_bytes)
            ),
            Self::Disk { only_in, disk } => {
                let what = match disk.kind {
                    DiskKind::Drive => "disk",
                    DiskKind::Volume => "volume",
                };
                let mut details: Vec<String> = Vec::new();
                details.push(
                    disk.capacity_bytes
                        .map_or_else(|| String::from("capacity unknown"), decimal_bytes),
                );
                details.extend(disk.media_type.iter().map(|m| quote(m)));
                details.extend(disk.model.iter().map(|m| quote(m)));
                let name = if disk.name.is_empty() {
                    String::new()
                } else {
                    format!(" {}", quote(&disk.name))
                };
                format!("{what}{name} ({}) {}", details.join(", "), only(*only_in))
            }
            Self::Nic { only_in, mac, name } => {
                let name = if name.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", quote(name))
                };
                format!("NIC {}{name} {}", quote(mac), only(*only_in))
            }
            Self::Accelerator {
                only_in,
                name,
                model,
                ids,
            } => {
                let details: Vec<String> = model
                    .iter()
                    .map(|m| quote(m))
                    .chain(ids.iter().cloned())
                    .collect();
                let details = if details.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", details.join(", "))
                };
                format!("accelerator {}{details} {}", quote(name), only(*only_in))
            }
        }
    }
}

/// "listed by the BMC was not seen by the probe" or the other way round.
fn only(source: Source) -> &'static str {
    match source {
        Source::Bmc => "listed by the BMC was not seen by the probe",
        Source::Probe => "seen by the probe is missing from the BMC's inventory",
    }
}

/// `text`, cut to [`MAX_QUOTED`] characters.
fn quote(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= MAX_QUOTED {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(MAX_QUOTED).collect();
        format!("{cut}…")
    }
}

fn quoted_list(models: &[String]) -> String {
    models
        .iter()
        .map(|m| format!("\"{}\"", quote(m)))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Bytes in decimal units as disks are sold: `960 GB`, `1.92 TB`.
fn decimal_bytes(bytes: u64) -> String {
    let gb = bytes as f64 / 1e9;
    if gb >= 1000.0 {
        format!("{} TB", trimmed(gb / 1000.0))
    } else {
        format!("{} GB", trimmed(gb))
    }
}

/// Bytes in GiB, as memory is counted: `256 GiB`, `15.5 GiB`.
fn gibibytes(bytes: u64) -> String {
    format!("{} GiB", trimmed(bytes as f64 / f64::from(1u32 << 30)))
}

/// A number with at most two decimals, without trailing zeros.
fn trimmed(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The CPUs of a status (a processor without a type is taken for one).
fn cpus(status: &ServerStatus) -> Vec<&Processor> {
    status
        .processors
        .iter()
        .filter(|p| matches!(p.type_.as_deref(), None | Some("CPU")))
        .collect()
}

/// A MAC address reduced to its hex digits, lowercase (`None` when it has none).
fn mac_key(mac: &str) -> Option<String> {
    let key: String = mac
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (!key.is_empty()).then_some(key)
}

fn nics(status: &ServerStatus) -> BTreeMap<String, &NetworkInterface> {
    let mut nics = BTreeMap::new();
    for nic in &status.network_interfaces {
        if let Some(key) = mac_key(&nic.mac_address) {
            nics.entry(key).or_insert(nic);
        }
    }
    nics
}

/// A CPU model without case, trademarks and punctuation, words single-spaced.
fn model_key(model: &str) -> String {
    let lower = model.to_lowercase();
    let without_marks = ["(r)", "(tm)", "(c)", "®", "™"]
        .iter()
        .fold(lower, |text, mark| text.replace(mark, " "));
    without_marks
        .split(|c: char| !(c.is_alphanumeric() || c == '.' || c == '@'))
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The distinct CPU models of a status, by key, with the first spelling of each.
fn models(cpus: &[&Processor]) -> BTreeMap<String, String> {
    let mut models = BTreeMap::new();
    for model in cpus.iter().filter_map(|p| p.model.as_deref()) {
        let key = model_key(model);
        if !key.is_empty() {
            models.entry(key).or_insert_with(|| model.trim().to_owned());
        }
    }
    models
}

/// Whether two model keys name one model: equal, or one containing the other.
fn same_model(a: &str, b: &str) -> bool {
    a.contains(b) || b.contains(a)
}

/// A disk of one inventory, and whether the other must show it.
#[derive(Debug, Clone)]
struct Candidate {
    disk: Disk,
    /// `false` for a drive behind a RAID controller: it matches what is left over, but its
    /// absence means nothing.
    required: bool,
}

fn disks(status: &ServerStatus) -> Vec<Candidate> {
    let capacity = |q: &Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>| {
        q.as_ref().and_then(quantity_bytes)
    };
    let mut found = Vec::new();
    for storage in &status.storages {
        let raid = !storage.volumes.is_empty();
        found.extend(storage.volumes.iter().map(|v| Candidate {
            disk: Disk {
                kind: DiskKind::Volume,
                name: v.name.clone(),
                capacity_bytes: capacity(&v.capacity),
                media_type: None,
                model: v.raid_type.clone(),
            },
            required: true,
        }));
        found.extend(storage.drives.iter().map(|d| Candidate {
            disk: Disk {
                kind: DiskKind::Drive,
                name: d.name.clone(),
                capacity_bytes: capacity(&d.capacity),
                media_type: d.media_type.clone(),
                model: d.model.clone(),
            },
            required: !raid,
        }));
    }
    found
}

/// Whether two capacities are one disk's.
fn close(a: u64, b: u64) -> bool {
    let (a, b) = (u128::from(a), u128::from(b));
    a.abs_diff(b) * 100 <= u128::from(DISK_TOLERANCE_PERCENT) * a.max(b)
}

/// Pairs two lists sorted by capacity, smallest first, walking both at once: what is left of
/// each. Exchanging the lists exchanges the results.
fn pair_sorted(a: Vec<Disk>, b: Vec<Disk>) -> (Vec<Disk>, Vec<Disk>) {
    let (mut left_a, mut left_b) = (Vec::new(), Vec::new());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => {
                let (cx, cy) = (x.capacity_bytes.unwrap_or(0), y.capacity_bytes.unwrap_or(0));
                if close(cx, cy) {
                    a.next();
                    b.next();
                } else if cx < cy {
                    left_a.extend(a.next());
                } else {
                    left_b.extend(b.next());
                }
            }
            (Some(_), None) => left_a.extend(a.next()),
            (None, Some(_)) => left_b.extend(b.next()),
            (None, None) => return (left_a, left_b),
        }
    }
}

/// The disks of one side, split for matching: sorted by capacity (then name) where known.
struct Split {
    required: Vec<Disk>,
    optional: Vec<Disk>,
    unknown_required: Vec<Disk>,
    unknown_optional: Vec<Disk>,
}

fn split(candidates: Vec<Candidate>) -> Split {
    let mut split = Split {
        required: Vec::new(),
        optional: Vec::new(),
        unknown_required: Vec::new(),
        unknown_optional: Vec::new(),
    };
    for Candidate { disk, required } in candidates {
        match (disk.capacity_bytes.is_some(), required) {
            (true, true) => split.required.push(disk),
            (true, false) => split.optional.push(disk),
            (false, true) => split.unknown_required.push(disk),
            (false, false) => split.unknown_optional.push(disk),
        }
    }
    let by_capacity = |list: &mut Vec<Disk>| {
        list.sort_by(|x, y| (x.capacity_bytes, x).cmp(&(y.capacity_bytes, y)));
    };
    by_capacity(&mut split.required);
    by_capacity(&mut split.optional);
    split.unknown_required.sort();
    split.unknown_optional.sort();
    split
}

/// `leftover` (disks of known capacity the other side did not match) absorbed by the other
/// side's disks of unknown capacity, required ones first: what is left of both.
fn absorb(
    mut leftover: Vec<Disk>,
    mut required: Vec<Disk>,
    optional: usize,
) -> (Vec<Disk>, Vec<Disk>) {
    let taken = leftover.len().min(required.len() + optional);
    leftover.drain(..taken);
    required.drain(..taken.min(required.len()));
    (leftover, required)
}

/// The disks only one side has: `(only the BMC's, only the probe's)`.
fn unmatched_disks(bmc: Vec<Candidate>, probe: Vec<Candidate>) -> (Vec<Disk>, Vec<Disk>) {
    let (bmc, probe) = (split(bmc), split(probe));
    // Required against required, then what is left against the other side's optional ones.
    let (bmc_left, probe_left) = pair_sorted(bmc.required, probe.required);
    let (bmc_left, _) = pair_sorted(bmc_left, probe.optional);
    let (probe_left, _) = pair_sorted(probe_left, bmc.optional);
    // Unknown capacities: pair among themselves, then stand for anything left over.
    let paired = bmc.unknown_required.len().min(probe.unknown_required.len());
    let bmc_unknown: Vec<Disk> = bmc.unknown_required.into_iter().skip(paired).collect();
    let probe_unknown: Vec<Disk> = probe.unknown_required.into_iter().skip(paired).collect();
    let (probe_left, bmc_unknown) = absorb(probe_left, bmc_unknown, bmc.unknown_optional.len());
    let (bmc_left, probe_unknown) = absorb(bmc_left, probe_unknown, probe.unknown_optional.len());
    (
        bmc_left.into_iter().chain(bmc_unknown).collect(),
        probe_left.into_iter().chain(probe_unknown).collect(),
    )
}

/// An accelerator as compared: its PCI ids (parsed) when both are known.
fn accelerator_ids(accelerator: &Accelerator) -> Option<(u32, u32)> {
    let id = |text: &Option<String>| {
        let text = text.as_deref()?.trim().to_ascii_lowercase();
        u32::from_str_radix(text.strip_prefix("0x").unwrap_or(&text), 16).ok()
    };
    Some((id(&accelerator.vendor_id)?, id(&accelerator.device_id)?))
}

/// Whether an accelerator is the BMC's own VGA (by the rule both discoveries use).
fn bmc_vga(accelerator: &Accelerator) -> bool {
    accelerator
        .vendor_id
        .as_deref()
        .is_some_and(super::hardware_facts::bmc_vga_vendor)
}

fn accelerators(status: &ServerStatus) -> Vec<&Accelerator> {
    status.accelerators.iter().filter(|a| !bmc_vga(a)).collect()
}

/// The order of accelerators alike: by what a message says of them.
fn order(accelerator: &Accelerator) -> (&str, Option<&str>, Option<&str>, Option<&str>) {
    (
        accelerator.name.as_str(),
        accelerator.model.as_deref(),
        accelerator.vendor_id.as_deref(),
        accelerator.device_id.as_deref(),
    )
}

/// The accelerators only one side has: `(only the BMC's, only the probe's)`.
fn unmatched_accelerators<'a>(
    bmc: &[&'a Accelerator],
    probe: &[&'a Accelerator],
) -> (Vec<&'a Accelerator>, Vec<&'a Accelerator>) {
    // Identified ones by their ids, as multisets (sorted, so that which of several alike is
    // left over does not depend on the order they were listed in).
    let by_ids = |list: &[&'a Accelerator]| {
        let mut groups: BTreeMap<(u32, u32), Vec<&'a Accelerator>> = BTreeMap::new();
        let mut unidentified = Vec::new();
        for accelerator in list {
            match accelerator_ids(accelerator) {
                Some(ids) => groups.entry(ids).or_default().push(accelerator),
                None => unidentified.push(*accelerator),
            }
        }
        for group in groups.values_mut() {
            group.sort_by_key(|a| order(a));
        }
        unidentified.sort_by_key(|a| order(a));
        (groups, unidentified)
    };
    let (bmc_groups, bmc_unidentified) = by_ids(bmc);
    let (probe_groups, probe_unidentified) = by_ids(probe);
    let keys: BTreeSet<&(u32, u32)> = bmc_groups.keys().chain(probe_groups.keys()).collect();
    let (mut bmc_left, mut probe_left) = (Vec::new(), Vec::new());
    for key in keys {
        let (b, p) = (
            bmc_groups.get(key).map_or(&[][..], Vec::as_slice),
            probe_groups.get(key).map_or(&[][..], Vec::as_slice),
        );
        bmc_left.extend(b.iter().skip(p.len()).copied());
        probe_left.extend(p.iter().skip(b.len()).copied());
    }
    // Unidentified ones pair among themselves, then stand for anything left over.
    let paired = bmc_unidentified.len().min(probe_unidentified.len());
    let bmc_unidentified: Vec<_> = bmc_unidentified.into_iter().skip(paired).collect();
    let probe_unidentified: Vec<_> = probe_unidentified.into_iter().skip(paired).collect();
    let absorb = |mut left: Vec<&'a Accelerator>, mut unidentified: Vec<&'a Accelerator>| {
        let taken = left.len().min(unidentified.len());
        left.drain(..taken);
        unidentified.drain(..taken);
        (left, unidentified)
    };
    let (probe_left, bmc_unidentified) = absorb(probe_left, bmc_unidentified);
    let (bmc_left, probe_unidentified) = absorb(bmc_left, probe_unidentified);
    (
        bmc_left.into_iter().chain(bmc_unidentified).collect(),
        probe_left.into_iter().chain(probe_unidentified).collect(),
    )
}

/// The categories both statuses report something in (the ones [`compare`] compares).
pub fn compared(bmc: &ServerStatus, probe: &ServerStatus) -> Vec<Category> {
    Category::ALL
        .into_iter()
        .filter(|category| reports(bmc, *category) && reports(probe, *category))
        .collect()
}

/// Whether a status reports something in `category`.
fn reports(status: &ServerStatus, category: Category) -> bool {
    match category {
        Category::Processors => !cpus(status).is_empty(),
        Category::Memory => memory_bytes(status).is_some(),
        Category::Disks => !disks(status).is_empty(),
        Category::Nics => !nics(status).is_empty(),
        Category::Accelerators => !accelerators(status).is_empty(),
    }
}

fn memory_bytes(status: &ServerStatus) -> Option<u64> {
    status
        .total_system_memory
        .as_ref()
        .and_then(quantity_bytes)
        .filter(|bytes| *bytes > 0)
}

/// Every difference of the BMC's inventory and the probe's, in the categories both report
/// (see the module's rules), sorted. Exchanging the two exchanges the sides of each
/// difference and nothing else; a status compared with itself has none.
pub fn compare(bmc: &ServerStatus, probe: &ServerStatus) -> Vec<Difference> {
    let mut differences = Vec::new();
    for category in compared(bmc, probe) {
        match category {
            Category::Processors => {
                let (b, p) = (cpus(bmc), cpus(probe));
                if b.len() != p.len() {
                    differences.push(Difference::ProcessorCount {
                        bmc: b.len(),
                        probe: p.len(),
                    });
                }
                let (b, p) = (models(&b), models(&p));
                let unmatched = |of: &BTreeMap<String, String>,
                                 other: &BTreeMap<String, String>| {
                    of.keys()
                        .any(|key| !other.keys().any(|o| same_model(key, o)))
                };
                if !b.is_empty() && !p.is_empty() && (unmatched(&b, &p) || unmatched(&p, &b)) {
                    differences.push(Difference::ProcessorModel {
                        bmc: b.into_values().collect(),
                        probe: p.into_values().collect(),
                    });
                }
            }
            Category::Memory => {
                if let (Some(b), Some(p)) = (memory_bytes(bmc), memory_bytes(probe)) {
                    let tolerance = (u128::from(b.max(p)) * u128::from(MEMORY_TOLERANCE_PERCENT)
                        / 100)
                        .max(u128::from(MEMORY_TOLERANCE_FLOOR));
                    if u128::from(b.abs_diff(p)) > tolerance {
                        differences.push(Difference::Memory {
                            bmc_bytes: b,
                            probe_bytes: p,
                        });
                    }
                }
            }
            Category::Disks => {
                let (b, p) = unmatched_disks(disks(bmc), disks(probe));
                differences.extend(b.into_iter().map(|disk| Difference::Disk {
                    only_in: Source::Bmc,
                    disk,
                }));
                differences.extend(p.into_iter().map(|disk| Difference::Disk {
                    only_in: Source::Probe,
                    disk,
                }));
            }
            Category::Nics => {
                let (b, p) = (nics(bmc), nics(probe));
                for (only_in, of, other) in [(Source::Bmc, &b, &p), (Source::Probe, &p, &b)] {
                    differences.extend(of.iter().filter(|(key, _)| !other.contains_key(*key)).map(
                        |(_, nic)| Difference::Nic {
                            only_in,
                            mac: nic.mac_address.clone(),
                            name: nic.name.clone(),
                        },
                    ));
                }
            }
            Category::Accelerators => {
                let (b, p) = unmatched_accelerators(&accelerators(bmc), &accelerators(probe));
                for (only_in, list) in [(Source::Bmc, b), (Source::Probe, p)] {
                    differences.extend(list.into_iter().map(|a| Difference::Accelerator {
                        only_in,
                        name: a.name.clone(),
                        model: a.model.clone(),
                        ids: match (&a.vendor_id, &a.device_id) {
                            (Some(vendor), Some(device)) => Some(format!("{vendor}:{device}")),
                            _ => None,
                        },
                    }));
                }
            }
        }
    }
    differences.sort();
    differences
}

/// The `InventoryConsistent` condition's status, reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `Some(true)`: consistent; `Some(false)`: they differ; `None` (`Unknown`): the BMC's
    /// inventory could not be read.
    pub status: Option<bool>,
    /// `Consistent`, `InventoryDiffers` or `BMCInventoryUnavailable`.
    pub reason: &'static str,
    /// What was compared and, when they differ, each difference (at most [`MAX_NAMED`],
    /// the rest counted).
    pub message: String,
}

/// The condition for the two inventories: `True`/`Consistent` with what was compared, or
/// `False`/`InventoryDiffers` naming the differences.
pub fn verdict(bmc: &ServerStatus, probe: &ServerStatus) -> Verdict {
    let categories = compared(bmc, probe);
    let differences = compare(bmc, probe);
    let not_compared: Vec<&str> = Category::ALL
        .into_iter()
        .filter(|c| !categories.contains(c))
        .map(Category::label)
        .collect();
    let not_compared = if not_compared.is_empty() {
        String::new()
    } else {
        format!(
            "; not compared, as only one side reports them: {}",
            not_compared.join(", ")
        )
    };
    if differences.is_empty() {
        let compared = if categories.is_empty() {
            String::from("nothing both report")
        } else {
            categories
                .iter()
                .map(|c| summary(probe, *c))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Verdict {
            status: Some(true),
            reason: conditions::REASON_CONSISTENT,
            message: format!(
                "the BMC's inventory and the probe's agree on {compared}{not_compared}"
            ),
        };
    }
    let mut named: Vec<String> = differences
        .iter()
        .take(MAX_NAMED)
        .map(Difference::describe)
        .collect();
    if differences.len() > MAX_NAMED {
        named.push(format!(
            "and {} more difference(s)",
            differences.len() - MAX_NAMED
        ));
    }
    Verdict {
        status: Some(false),
        reason: conditions::REASON_INVENTORY_DIFFERS,
        message: format!(
            "the BMC's inventory and the probe's differ: {}{not_compared}",
            named.join("; ")
        ),
    }
}

/// What the probe's status holds in `category`, for the message of a consistent check.
fn summary(probe: &ServerStatus, category: Category) -> String {
    match category {
        Category::Processors => format!("{} CPU package(s)", cpus(probe).len()),
        Category::Memory => format!(
            "{} of memory",
            memory_bytes(probe).map_or_else(String::new, gibibytes)
        ),
        Category::Disks => format!(
            "{} disk(s)",
            disks(probe).iter().filter(|d| d.required).count()
        ),
        Category::Nics => format!("{} NIC(s)", nics(probe).len()),
        Category::Accelerators => format!("{} accelerator(s)", accelerators(probe).len()),
    }
}

/// The condition when the BMC's inventory could not be read (`why`, one line, without
/// credentials: driver errors never carry them).
pub fn unavailable(why: &str) -> Verdict {
    Verdict {
        status: None,
        reason: conditions::REASON_BMC_INVENTORY_UNAVAILABLE,
        message: format!("the BMC's inventory could not be read, so it was not compared: {why}"),
    }
}

/// The cross-check of an in-band discovery: the BMC's `system` (read with its inventory)
/// against the probe's facts in the Server's status. NICs the BMC names as its host
/// interface, disabled or absent are left out of both sides: the OS may see the host
/// interface, and the others it cannot.
pub fn cross_check(system: &System, probe: &ServerStatus) -> Verdict {
    let others: BTreeSet<String> = system
        .nics
        .iter()
        .filter(|nic| nic.kind != NicKind::System)
        .filter_map(|nic| mac_key(&nic.mac))
        .collect();
    let system_nics: BTreeSet<String> = system
        .nics
        .iter()
        .filter(|nic| nic.kind == NicKind::System)
        .filter_map(|nic| mac_key(&nic.mac))
        .collect();
    let mut bmc = super::hardware_facts::facts(system);
    bmc.network_interfaces
        .retain(|nic| mac_key(&nic.mac_address).is_some_and(|key| system_nics.contains(&key)));
    let probe = ServerStatus {
        network_interfaces: probe
            .network_interfaces
            .iter()
            .filter(|nic| mac_key(&nic.mac_address).is_none_or(|key| !others.contains(&key)))
            .cloned()
            .collect(),
        processors: probe.processors.clone(),
        total_system_memory: probe.total_system_memory.clone(),
        storages: probe.storages.clone(),
        accelerators: probe.accelerators.clone(),
        ..ServerStatus::default()
    };
    verdict(&bmc, &probe)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rstest::rstest;

    use super::*;
    use crate::api::server::{Storage, StorageDrive, StorageVolume};
    use crate::registry::quantity;

    const GB: u64 = 1_000_000_000;
    const GIB: u64 = 1 << 30;

    fn nic(mac: &str, name: &str) -> NetworkInterface {
        NetworkInterface {
            name: name.to_owned(),
            mac_address: mac.to_owned(),
            ..NetworkInterface::default()
        }
    }

    fn drive(name: &str, bytes: Option<u64>) -> StorageDrive {
        StorageDrive {
            name: name.to_owned(),
            media_type: Some(String::from("SSD")),
            capacity: bytes.map(quantity),
            ..StorageDrive::default()
        }
    }

    fn storage(drives: Vec<StorageDrive>, volumes: Vec<StorageVolume>) -> Storage {
        Storage {
            name: String::from("storage"),
            drives,
            volumes,
            ..Storage::default()
        }
    }

    fn cpu(model: Option<&str>) -> Processor {
        Processor {
            id: String::from("0"),
            type_: Some(String::from("CPU")),
            model: model.map(str::to_owned),
            ..Processor::default()
        }
    }

    fn gpu(name: &str, ids: Option<(&str, &str)>) -> Accelerator {
        Accelerator {
            name: name.to_owned(),
            class: Some(String::from("DisplayController")),
            vendor_id: ids.map(|(vendor, _)| vendor.to_owned()),
            device_id: ids.map(|(_, device)| device.to_owned()),
            ..Accelerator::default()
        }
    }

    /// A machine as both sides would see it: two NICs, two CPUs, 64 GiB, two 960 GB disks.
    fn machine() -> ServerStatus {
        ServerStatus {
            network_interfaces: vec![
                nic("52:54:fd:00:00:01", "eno1"),
                nic("52:54:fc:00:00:01", "eno2"),
            ],
            processors: vec![cpu(Some("Fake CPU @ 2.00GHz")); 2],
            total_system_memory: Some(quantity(64 * GIB)),
            storages: vec![storage(
                vec![drive("sda", Some(960 * GB)), drive("sdb", Some(960 * GB))],
                Vec::new(),
            )],
            ..ServerStatus::default()
        }
    }

    fn with(change: impl FnOnce(&mut ServerStatus)) -> ServerStatus {
        let mut status = machine();
        change(&mut status);
        status
    }

    fn disk(name: &str, bytes: Option<u64>) -> Disk {
        Disk {
            kind: DiskKind::Drive,
            name: name.to_owned(),
            capacity_bytes: bytes,
            media_type: Some(String::from("SSD")),
            model: None,
        }
    }

    #[rstest]
    #[case::the_same_machine(machine(), machine(), &[])]
    #[case::a_disk_only_the_probe_sees(
        machine(),
        with(|s| s.storages[0].drives.push(drive("sdc", Some(480 * GB)))),
        &[Difference::Disk { only_in: Source::Probe, disk: disk("sdc", Some(480 * GB)) }],
    )]
    #[case::a_disk_only_the_bmc_lists(
        with(|s| s.storages[0].drives.push(drive("Bay 3", Some(8000 * GB)))),
        machine(),
        &[Difference::Disk { only_in: Source::Bmc, disk: disk("Bay 3", Some(8000 * GB)) }],
    )]
    #[case::capacities_a_bmc_rounds_are_one_disk(
        with(|s| s.storages[0].drives[0].capacity = Some(quantity(960_197_124_096))),
        machine(),
        &[],
    )]
    #[case::a_disk_of_another_size_is_another_disk(
        with(|s| s.storages[0].drives[1].capacity = Some(quantity(1000 * GB))),
        machine(),
        &[
            Difference::Disk { only_in: Source::Bmc, disk: disk("sdb", Some(1000 * GB)) },
            Difference::Disk { only_in: Source::Probe, disk: disk("sdb", Some(960 * GB)) },
        ],
    )]
    #[case::a_drive_without_capacity_stands_for_any_disk(
        with(|s| s.storages[0].drives[1].capacity = None),
        machine(),
        &[],
    )]
    #[case::but_not_for_two(
        with(|s| s.storages[0].drives[1].capacity = None),
        with(|s| s.storages[0].drives.push(drive("sdc", Some(480 * GB)))),
        // Which of the two it stands for is unknowable: the smaller, always.
        &[Difference::Disk { only_in: Source::Probe, disk: disk("sdb", Some(960 * GB)) }],
    )]
    #[case::a_bmc_that_lists_no_drives_is_not_compared(
        with(|s| s.storages.clear()),
        machine(),
        &[],
    )]
    #[case::a_nic_only_the_bmc_lists(
        with(|s| s.network_interfaces.push(nic("52:54:FB:00:00:01", "NIC.3"))),
        machine(),
        &[Difference::Nic { only_in: Source::Bmc, mac: String::from("52:54:FB:00:00:01"), name: String::from("NIC.3") }],
    )]
    #[case::a_nic_only_the_probe_sees(
        machine(),
        with(|s| s.network_interfaces.push(nic("52:54:fb:00:00:01", "eno3"))),
        &[Difference::Nic { only_in: Source::Probe, mac: String::from("52:54:fb:00:00:01"), name: String::from("eno3") }],
    )]
    #[case::macs_match_in_any_case_and_spelling(
        with(|s| s.network_interfaces[0].mac_address = String::from("5254FD-000001")),
        machine(),
        &[],
    )]
    #[case::a_cpu_package_the_os_does_not_see(
        with(|s| s.processors.push(cpu(Some("Fake CPU @ 2.00GHz")))),
        machine(),
        &[Difference::ProcessorCount { bmc: 3, probe: 2 }],
    )]
    #[case::cpu_models_match_without_trademarks_and_by_containment(
        with(|s| s.processors = vec![cpu(Some("Intel Xeon Gold 6338")); 2]),
        with(|s| s.processors = vec![cpu(Some("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz")); 2]),
        &[],
    )]
    #[case::another_cpu_model(
        with(|s| s.processors = vec![cpu(Some("AMD EPYC 7543")); 2]),
        machine(),
        &[Difference::ProcessorModel { bmc: vec![String::from("AMD EPYC 7543")], probe: vec![String::from("Fake CPU @ 2.00GHz")] }],
    )]
    #[case::a_bmc_without_cpu_models_compares_only_the_count(
        with(|s| s.processors = vec![cpu(None); 2]),
        machine(),
        &[],
    )]
    #[case::memory_the_kernel_keeps_is_within_the_tolerance(
        machine(),
        with(|s| s.total_system_memory = Some(quantity(62 * GIB))),
        &[],
    )]
    #[case::a_missing_dimm_is_not(
        machine(),
        with(|s| s.total_system_memory = Some(quantity(56 * GIB))),
        &[Difference::Memory { bmc_bytes: 64 * GIB, probe_bytes: 56 * GIB }],
    )]
    #[case::a_small_machine_has_a_gibibyte_of_tolerance(
        with(|s| s.total_system_memory = Some(quantity(4 * GIB))),
        with(|s| s.total_system_memory = Some(quantity(3 * GIB + 200 * (1 << 20)))),
        &[],
    )]
    #[case::a_gpu_only_the_bmc_lists(
        with(|s| s.accelerators = vec![gpu("GPU0", Some(("0x10de", "0x2330"))), gpu("GPU1", Some(("0x10de", "0x2330")))]),
        with(|s| s.accelerators = vec![gpu("0000:41:00.0", Some(("10DE", "2330")))]),
        &[Difference::Accelerator { only_in: Source::Bmc, name: String::from("GPU1"), model: None, ids: Some(String::from("0x10de:0x2330")) }],
    )]
    #[case::a_gpu_without_ids_stands_for_one_with(
        with(|s| s.accelerators = vec![gpu("GPU0", None)]),
        with(|s| s.accelerators = vec![gpu("0000:41:00.0", Some(("0x10de", "0x2330")))]),
        &[],
    )]
    #[case::the_bmc_vga_is_no_accelerator(
        with(|s| s.accelerators = vec![gpu("GPU0", Some(("0x10de", "0x2330")))]),
        with(|s| s.accelerators = vec![gpu("0000:41:00.0", Some(("0x10de", "0x2330"))), gpu("0000:03:00.0", Some(("0x1a03", "0x2000")))]),
        &[],
    )]
    #[case::a_bmc_without_accelerators_has_not_reported_them(
        machine(),
        with(|s| s.accelerators = vec![gpu("0000:41:00.0", Some(("0x10de", "0x2330")))]),
        &[],
    )]
    fn the_inventories_differ_in_what_one_has_and_the_other_lacks(
        #[case] bmc: ServerStatus,
        #[case] probe: ServerStatus,
        #[case] expected: &[Difference],
    ) {
        assert_eq!(compare(&bmc, &probe), expected);
    }

    #[test]
    fn the_os_sees_a_raid_controller_s_volumes_not_its_drives() {
        let volume = |name: &str, bytes: u64| StorageVolume {
            name: name.to_owned(),
            capacity: Some(quantity(bytes)),
            raid_type: Some(String::from("RAID1")),
            ..StorageVolume::default()
        };
        // Two 960 GB drives mirrored into one volume, one 480 GB drive passed through, and
        // an NVMe drive on a controller of its own.
        let bmc = with(|s| {
            s.storages = vec![
                storage(
                    vec![
                        drive("Bay 1", Some(960 * GB)),
                        drive("Bay 2", Some(960 * GB)),
                        drive("Bay 3", Some(480 * GB)),
                    ],
                    vec![volume("VD0", 959 * GB)],
                ),
                storage(vec![drive("NVMe 1", Some(3840 * GB))], Vec::new()),
            ]
        });
        let probe = with(|s| {
            s.storages[0].drives = vec![
                drive("sda", Some(959 * GB)),
                drive("sdb", Some(480 * GB)),
                drive("nvme0n1", Some(3840 * GB)),
            ]
        });
        assert_eq!(compare(&bmc, &probe), []);
        let without_nvme = with(|s| s.storages[0].drives = probe.storages[0].drives[..2].to_vec());
        assert_eq!(
            compare(&bmc, &without_nvme),
            [Difference::Disk {
                only_in: Source::Bmc,
                disk: disk("NVMe 1", Some(3840 * GB))
            }],
            "a drive outside the RAID controller is missed"
        );
        let without_volume =
            with(|s| s.storages[0].drives = probe.storages[0].drives[1..].to_vec());
        let missing = compare(&bmc, &without_volume);
        assert!(
            matches!(&missing[..], [Difference::Disk { only_in: Source::Bmc, disk }] if disk.kind == DiskKind::Volume),
            "a volume is missed, its drives are not: {missing:?}"
        );
    }

    #[test]
    fn a_consistent_check_says_what_was_compared_and_what_not() {
        let verdict = verdict(&machine(), &machine());
        assert_eq!(verdict.status, Some(true));
        assert_eq!(verdict.reason, conditions::REASON_CONSISTENT);
        assert_eq!(
            verdict.message,
            "the BMC's inventory and the probe's agree on 2 CPU package(s), 64 GiB of memory, 2 disk(s), 2 NIC(s); not compared, as only one side reports them: accelerators"
        );
    }

    #[test]
    fn differences_are_named_in_a_bounded_message() {
        let probe = with(|s| {
            s.storages[0].drives.push(drive("sdc", Some(960 * GB)));
            s.network_interfaces.truncate(1);
        });
        let bmc = with(|s| {
            s.storages[0].drives[0].model = Some(String::from("X"));
        });
        let verdict = verdict(&bmc, &probe);
        assert_eq!(verdict.status, Some(false));
        assert_eq!(verdict.reason, conditions::REASON_INVENTORY_DIFFERS);
        assert_eq!(
            verdict.message,
            "the BMC's inventory and the probe's differ: disk sdc (960 GB, SSD) seen by the probe is missing from the BMC's inventory; NIC 52:54:fc:00:00:01 (eno2) listed by the BMC was not seen by the probe; not compared, as only one side reports them: accelerators"
        );
        let many = with(|s| {
            s.network_interfaces = (0..40)
                .map(|n| nic(&format!("52:54:00:00:00:{n:02x}"), &"x".repeat(500)))
                .collect();
        });
        let verdict = super::verdict(&many, &machine());
        assert!(verdict.message.contains("and 34 more difference(s)"));
        assert!(verdict.message.len() < 2000, "{}", verdict.message.len());
    }

    #[test]
    fn an_unreadable_bmc_inventory_is_unknown() {
        let verdict = unavailable("cannot read the system's inventory: connection refused");
        assert_eq!(verdict.status, None);
        assert_eq!(verdict.reason, conditions::REASON_BMC_INVENTORY_UNAVAILABLE);
        assert!(verdict.message.ends_with("connection refused"));
    }

    #[rstest]
    #[case::gigabytes(960 * GB, "960 GB")]
    #[case::terabytes(1_920 * GB, "1.92 TB")]
    #[case::whole_terabytes(8_000 * GB, "8 TB")]
    fn disk_sizes_read_as_they_are_sold(#[case] bytes: u64, #[case] text: &str) {
        assert_eq!(decimal_bytes(bytes), text);
    }

    #[test]
    fn the_cross_check_leaves_out_nics_the_os_is_not_meant_to_see() {
        use crate::plugins::types::{Nic, PowerState};
        let nic = |mac: &str, kind: NicKind| Nic {
            mac: mac.to_owned(),
            name: None,
            kind,
            link_up: None,
        };
        let system = System {
            uri: String::from("/redfish/v1/Systems/1"),
            uuid: None,
            manufacturer: None,
            model: None,
            serial: None,
            power: PowerState::On,
            nics: vec![
                nic("52:54:FD:00:00:01", NicKind::System),
                nic("52:54:fc:00:00:01", NicKind::System),
                nic("52:54:fb:00:00:01", NicKind::HostInterface),
                nic("52:55:fb:00:00:01", NicKind::Disabled),
            ],
            boot_targets: Vec::new(),
            boot_override: true,
            inventory: None,
        };
        // The OS sees the host interface; the disabled NIC it does not.
        let probe = with(|s| s.network_interfaces.push(nic_status("52:54:fb:00:00:01")));
        let verdict = cross_check(&system, &probe);
        assert_eq!(verdict.status, Some(true), "{}", verdict.message);
        assert!(verdict.message.contains("2 NIC(s)"), "{}", verdict.message);
        assert!(
            verdict
                .message
                .contains("CPUs, memory, disks, accelerators"),
            "a BMC without an inventory reports only NICs: {}",
            verdict.message
        );
        let missing = with(|s| s.network_interfaces.truncate(1));
        assert_eq!(cross_check(&system, &missing).status, Some(false));
    }

    fn nic_status(mac: &str) -> NetworkInterface {
        nic(mac, "usb0")
    }

    /// Statuses drawn from small pools, so that the two sides often share parts.
    fn any_status() -> impl Strategy<Value = ServerStatus> {
        let mac = prop::sample::select(vec![
            "52:54:00:00:00:01",
            "52:54:00:00:00:02",
            "52:54:00:00:00:03",
            "52-54-00-00-00-01",
        ]);
        let capacity = prop::option::weighted(
            0.85,
            prop::sample::select(vec![240 * GB, 480 * GB, 490 * GB, 960 * GB, 8000 * GB]),
        );
        let drive = (prop::sample::select(vec!["sda", "sdb", "Bay 1"]), capacity)
            .prop_map(|(name, bytes)| drive(name, bytes));
        let volume =
            prop::option::of(prop::sample::select(vec![480 * GB, 960 * GB])).prop_map(|bytes| {
                StorageVolume {
                    name: String::from("VD0"),
                    capacity: bytes.map(quantity),
                    ..StorageVolume::default()
                }
            });
        let storage = (
            prop::collection::vec(drive, 0..4),
            prop::collection::vec(volume, 0..2),
        )
            .prop_map(|(drives, volumes)| storage(drives, volumes));
        let model = prop::option::of(prop::sample::select(vec![
            "Fake CPU @ 2.00GHz",
            "Intel(R) Fake CPU",
            "AMD EPYC 7543",
        ]));
        let ids = prop::option::weighted(
            0.8,
            prop::sample::select(vec![
                ("0x10de", "0x2330"),
                ("0x10DE", "2330"),
                ("0x1a03", "0x2000"),
                ("0x1002", "0x74a1"),
            ]),
        );
        let accelerator = (prop::sample::select(vec!["GPU0", "GPU1"]), ids)
            .prop_map(|(name, ids)| gpu(name, ids));
        let memory = prop::option::of(prop::sample::select(vec![
            16 * GIB,
            62 * GIB,
            64 * GIB,
            56 * GIB,
        ]));
        (
            prop::collection::vec(mac.prop_map(|m| nic(m, "n")), 0..4),
            prop::collection::vec(storage, 0..3),
            prop::collection::vec(model.prop_map(cpu), 0..3),
            memory,
            prop::collection::vec(accelerator, 0..3),
        )
            .prop_map(
                |(network_interfaces, storages, processors, memory, accelerators)| ServerStatus {
                    network_interfaces,
                    storages,
                    processors,
                    total_system_memory: memory.map(quantity),
                    accelerators,
                    ..ServerStatus::default()
                },
            )
    }

    proptest! {
        #[test]
        fn an_inventory_agrees_with_itself(status in any_status()) {
            prop_assert_eq!(compare(&status, &status), Vec::<Difference>::new());
            prop_assert_eq!(verdict(&status, &status).status, Some(true));
        }

        #[test]
        fn exchanging_the_sides_exchanges_only_the_sides_of_the_differences(
            a in any_status(),
            b in any_status(),
        ) {
            let mut swapped: Vec<Difference> =
                compare(&b, &a).into_iter().map(Difference::swapped).collect();
            swapped.sort();
            prop_assert_eq!(compare(&a, &b), swapped);
        }

        #[test]
        fn every_message_is_bounded(a in any_status(), b in any_status()) {
            let verdict = verdict(&a, &b);
            prop_assert!(verdict.message.len() < 2000);
            prop_assert_eq!(verdict.status == Some(true), compare(&a, &b).is_empty());
        }
    }
}
