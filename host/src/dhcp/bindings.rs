//! Source binding: which address ferrometal's DHCP server leased to which machine, so that
//! the boot server and registry accept a machine only from that address.
//!
//! A machine is known by the MAC it leased with and, when its firmware sends DHCP option 97
//! (client machine identifier, RFC 4578: PXE firmware and iPXE do), by its system UUID. Only
//! acknowledged leases count (an offer binds nothing); a released or expired lease binds no
//! more. The table is restored from the lease files at start, so a restart keeps it.
//!
//! A machine may hold one lease of each family (DHCPv4 and DHCPv6): it is accepted from any
//! address leased to it. A DHCPv6 client whose MAC is unknown (a DUID-UUID client outside a
//! relay that sends option 79) is keyed by `duid-<DUID hex>` and found by its UUID only.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock};

use dhcproto::v4::{DhcpOption, Message, OptionCode};

use super::config::mac_digits;
use super::leases::Leases;
use crate::boot::uuid::SystemUuid;

/// One acknowledged lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The client's MAC (hex digits), or `duid-<hex>` for a DHCPv6 client without a known MAC.
    pub mac: String,
    /// The system UUID the client sent (option 97, or a DHCPv6 DUID-UUID), if it sent one.
    pub uuid: Option<SystemUuid>,
    /// The leased address.
    pub ip: IpAddr,
    /// Unix seconds when the lease ends.
    pub expires: u64,
}

/// Which DHCP server a binding came from: a machine holds at most one binding of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// DHCPv4.
    V4,
    /// DHCPv6.
    V6,
}

impl Family {
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() { Self::V4 } else { Self::V6 }
    }
}

#[derive(Debug, Default)]
struct Table {
    /// By MAC, one binding per family.
    by_mac: HashMap<String, Vec<Binding>>,
    /// UUID → the MACs of its leases.
    by_uuid: HashMap<SystemUuid, BTreeSet<String>>,
    /// MAC → the UUID it is linked to (the reverse of `by_uuid`, so a MAC moving to another
    /// machine costs a lookup, not a scan of every machine).
    uuid_of_mac: HashMap<String, SystemUuid>,
}

impl Table {
    /// Removes `mac` from `uuid`'s MACs (and `uuid` when it has none left).
    fn unlink(&mut self, uuid: &SystemUuid, mac: &str) {
        if let Some(macs) = self.by_uuid.get_mut(uuid) {
            macs.remove(mac);
            if macs.is_empty() {
                self.by_uuid.remove(uuid);
            }
        }
        if self.uuid_of_mac.get(mac) == Some(uuid) {
            self.uuid_of_mac.remove(mac);
        }
    }
}

/// The shared table; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct SourceBindings {
    table: Arc<RwLock<Table>>,
}

impl SourceBindings {
    /// Records the acknowledged leases of `leases` (the lease file, after a restart).
    pub fn restore(&self, leases: &Leases) {
        self.restore_all(leases.bindings());
    }

    /// Records every binding of `bindings` (a lease file's, after a restart).
    pub fn restore_all(&self, bindings: impl IntoIterator<Item = Binding>) {
        for binding in bindings {
            self.record(binding);
        }
    }

    /// Records an acknowledged lease (replacing the machine's lease of the same family).
    pub fn record(&self, binding: Binding) {
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(uuid) = &binding.uuid {
            // A MAC belongs to one machine at a time (a NIC moved to another machine).
            if let Some(previous) = table.uuid_of_mac.get(&binding.mac).cloned()
                && previous != *uuid
            {
                table.unlink(&previous, &binding.mac);
            }
            table
                .by_uuid
                .entry(uuid.clone())
                .or_default()
                .insert(binding.mac.clone());
            table.uuid_of_mac.insert(binding.mac.clone(), uuid.clone());
        }
        let family = Family::of(binding.ip);
        let held = table.by_mac.entry(binding.mac.clone()).or_default();
        held.retain(|other| Family::of(other.ip) != family);
        held.push(binding);
    }

    /// Forgets the `family` lease of `mac` (hex digits, or `duid-<hex>`), released by its
    /// client. The machine's UUID stays linked to a MAC: OVMF releases its DHCPv6 lease
    /// before starting the image it booted, whose own client then leases under the same MAC
    /// without naming the UUID, and that lease must still bind the machine.
    pub fn forget(&self, mac: &str, family: Family) {
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        let Some(held) = table.by_mac.get_mut(mac) else {
            return;
        };
        let mut gone = Vec::new();
        held.retain(|binding| {
            let keep = Family::of(binding.ip) != family;
            if !keep {
                gone.extend(binding.uuid.clone());
            }
            keep
        });
        let remaining: Vec<SystemUuid> = held.iter().filter_map(|b| b.uuid.clone()).collect();
        if held.is_empty() {
            table.by_mac.remove(mac);
        }
        let linked = !mac.starts_with("duid-");
        for uuid in gone
            .into_iter()
            .filter(|uuid| !linked && !remaining.contains(uuid))
        {
            table.unlink(&uuid, mac);
        }
    }

    /// The addresses leased (and not expired at `now`) to the machine with `uuid` (either
    /// SMBIOS byte order) or, failing that, to one of `identifiers` that is a MAC; empty when
    /// ferrometal's DHCP leased it nothing.
    pub fn addresses_for<'a>(
        &self,
        uuid: &SystemUuid,
        identifiers: impl IntoIterator<Item = &'a str>,
        now: u64,
    ) -> Vec<IpAddr> {
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        let live = |mac: &str| -> Vec<IpAddr> {
            table
                .by_mac
                .get(mac)
                .into_iter()
                .flatten()
                .filter(|binding| binding.expires > now)
                .map(|binding| binding.ip)
                .collect()
        };
        let by_uuid: Vec<IpAddr> = [uuid.clone(), uuid.smbios_swapped()]
            .iter()
            .filter_map(|uuid| table.by_uuid.get(uuid))
            .flatten()
            .flat_map(|mac| live(mac))
            .collect();
        if !by_uuid.is_empty() {
            return by_uuid;
        }
        identifiers
            .into_iter()
            .filter(|identifier| identifier.contains(':'))
            .map(|mac| live(&mac_digits(mac)))
            .find(|addresses| !addresses.is_empty())
            .unwrap_or_default()
    }
}

/// The system UUID of DHCP option 97 (type 0 and 16 bytes, as RFC 4578 has it), in the
/// byte order the option carries (the other one is tried too on lookup).
pub fn client_uuid(request: &Message) -> Option<SystemUuid> {
    match request.opts().get(OptionCode::ClientMachineIdentifier) {
        Some(DhcpOption::ClientMachineIdentifier(bytes)) if bytes.len() == 17 && bytes[0] == 0 => {
            SystemUuid::parse(&hex::encode(&bytes[1..]))
        }
        _ => None,
    }
}

/// Option 97 for `uuid` (what PXE firmware sends).
pub fn machine_identifier(uuid: &SystemUuid) -> Option<DhcpOption> {
    let bytes = hex::decode(uuid.as_str().replace('-', "")).ok()?;
    let mut option = vec![0];
    option.extend_from_slice(&bytes);
    Some(DhcpOption::ClientMachineIdentifier(option))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const UUID: &str = "4c4c4544-0042-4d10-8056-b4c04f4a5a31";

    fn binding(mac: &str, uuid: Option<&str>, last: u8, expires: u64) -> Binding {
        Binding {
            mac: mac.to_owned(),
            uuid: uuid.and_then(SystemUuid::parse),
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)),
            expires,
        }
    }

    fn v4(last: u8) -> Vec<IpAddr> {
        vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))]
    }

    #[test]
    fn a_machine_is_found_by_its_uuid_in_either_order_or_by_its_mac_while_leased() {
        let bindings = SourceBindings::default();
        bindings.record(binding("525400aa0001", Some(UUID), 5, 100));
        bindings.record(binding("525400aa0002", None, 6, 100));
        let uuid = SystemUuid::parse(UUID).expect("uuid");
        let other = SystemUuid::parse("00000000-0000-4000-8000-000000000001").expect("uuid");
        assert_eq!(bindings.addresses_for(&uuid, [], 50), v4(5));
        assert_eq!(
            bindings.addresses_for(&uuid.smbios_swapped(), [], 50),
            v4(5)
        );
        assert_eq!(
            bindings.addresses_for(&other, ["10.9.9.9", "52:54:00:AA:00:02"], 50),
            v4(6)
        );
        assert!(bindings.addresses_for(&uuid, [], 100).is_empty(), "expired");
        assert!(
            bindings.addresses_for(&other, [], 50).is_empty(),
            "never leased"
        );
        bindings.forget("525400aa0001", Family::V4);
        assert!(bindings.addresses_for(&uuid, [], 50).is_empty(), "released");
    }

    #[test]
    fn a_machine_leased_both_families_is_bound_to_both_and_a_release_ends_one() {
        let bindings = SourceBindings::default();
        let uuid = SystemUuid::parse(UUID).expect("uuid");
        let v6: IpAddr = "fd00::100".parse().expect("v6");
        bindings.record(binding("525400aa0001", Some(UUID), 5, 100));
        // The DHCPv6 client of the same machine knew no MAC: keyed by its DUID, found by UUID.
        bindings.record(Binding {
            mac: String::from("duid-00040102"),
            uuid: Some(uuid.clone()),
            ip: v6,
            expires: 100,
        });
        let mut both = bindings.addresses_for(&uuid, [], 50);
        both.sort();
        assert_eq!(both, [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)), v6]);
        // A renewal of one family replaces only that family's binding.
        bindings.record(binding("525400aa0001", Some(UUID), 7, 100));
        assert_eq!(bindings.addresses_for(&uuid, [], 50).len(), 2);
        bindings.forget("duid-00040102", Family::V6);
        assert_eq!(bindings.addresses_for(&uuid, [], 50), v4(7));
        bindings.forget("525400aa0001", Family::V6);
        assert_eq!(
            bindings.addresses_for(&uuid, [], 50),
            v4(7),
            "no v6 lease to end"
        );
    }

    #[test]
    fn a_released_firmware_lease_leaves_the_uuid_linked_to_the_mac_for_the_systems_lease() {
        // OVMF over IPv6: leases with its UUID, releases before starting the UKI; the booted
        // system's client leases under the same MAC without a UUID.
        let bindings = SourceBindings::default();
        let uuid = SystemUuid::parse(UUID).expect("uuid");
        let firmware: IpAddr = "fd00::100".parse().expect("v6");
        let system: IpAddr = "fd00::101".parse().expect("v6");
        let v6 = |ip, uuid: Option<&str>| Binding {
            mac: String::from("525400aa0001"),
            uuid: uuid.and_then(SystemUuid::parse),
            ip,
            expires: 100,
        };
        bindings.record(v6(firmware, Some(UUID)));
        bindings.forget("525400aa0001", Family::V6);
        assert!(
            bindings.addresses_for(&uuid, [], 50).is_empty(),
            "nothing leased between the release and the system's lease"
        );
        bindings.record(v6(system, None));
        assert_eq!(bindings.addresses_for(&uuid, [], 50), [system]);
        // The MAC moved to another machine: no longer this one's.
        bindings.record(binding(
            "525400aa0001",
            Some("00000000-0000-4000-8000-000000000001"),
            9,
            100,
        ));
        assert!(bindings.addresses_for(&uuid, [], 50).is_empty());
    }

    #[test]
    fn option_97_carries_the_uuid_both_ways() {
        let uuid = SystemUuid::parse(UUID).expect("uuid");
        let mut request = Message::default();
        request
            .opts_mut()
            .insert(machine_identifier(&uuid).expect("option"));
        assert_eq!(client_uuid(&request), Some(uuid));
        let mut short = Message::default();
        short
            .opts_mut()
            .insert(DhcpOption::ClientMachineIdentifier(vec![0, 1, 2]));
        assert_eq!(client_uuid(&short), None, "malformed: no UUID");
    }
}
