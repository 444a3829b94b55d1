//! Source binding: which address ferrometal's DHCP server leased to which machine, so that
//! the boot server and registry accept a machine only from that address.
//!
//! A machine is known by the MAC it leased with and, when its firmware sends DHCP option 97
//! (client machine identifier, RFC 4578: PXE firmware and iPXE do), by its system UUID. Only
//! acknowledged leases count (an offer binds nothing); a released or expired lease binds no
//! more. The table is restored from the lease file at start, so a restart keeps it.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, PoisonError, RwLock};

use dhcproto::v4::{DhcpOption, Message, OptionCode};

use super::config::mac_digits;
use super::leases::Leases;
use crate::boot::uuid::SystemUuid;

/// One acknowledged lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The client's MAC (hex digits).
    pub mac: String,
    /// The system UUID the client sent (option 97), if it sent one.
    pub uuid: Option<SystemUuid>,
    /// The leased address.
    pub ip: Ipv4Addr,
    /// Unix seconds when the lease ends.
    pub expires: u64,
}

#[derive(Debug, Default)]
struct Table {
    by_mac: HashMap<String, Binding>,
    /// UUID → MAC of its latest lease.
    by_uuid: HashMap<SystemUuid, String>,
}

/// The shared table; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct SourceBindings {
    table: Arc<RwLock<Table>>,
}

impl SourceBindings {
    /// Records the acknowledged leases of `leases` (the lease file, after a restart).
    pub fn restore(&self, leases: &Leases) {
        for binding in leases.bindings() {
            self.record(binding);
        }
    }

    /// Records an acknowledged lease.
    pub fn record(&self, binding: Binding) {
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(uuid) = &binding.uuid {
            table.by_uuid.insert(uuid.clone(), binding.mac.clone());
        }
        table.by_mac.insert(binding.mac.clone(), binding);
    }

    /// Forgets the lease of `mac` (hex digits), released by its client.
    pub fn forget(&self, mac: &str) {
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(binding) = table.by_mac.remove(mac)
            && let Some(uuid) = binding.uuid
            && table.by_uuid.get(&uuid).map(String::as_str) == Some(mac)
        {
            table.by_uuid.remove(&uuid);
        }
    }

    /// The address leased (and not expired at `now`) to the machine with `uuid` (either
    /// SMBIOS byte order) or, failing that, to one of `identifiers` that is a MAC.
    pub fn address_for<'a>(
        &self,
        uuid: &SystemUuid,
        identifiers: impl IntoIterator<Item = &'a str>,
        now: u64,
    ) -> Option<Ipv4Addr> {
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        let live = |mac: &str| {
            table
                .by_mac
                .get(mac)
                .filter(|binding| binding.expires > now)
                .map(|binding| binding.ip)
        };
        [uuid.clone(), uuid.smbios_swapped()]
            .iter()
            .filter_map(|uuid| table.by_uuid.get(uuid))
            .find_map(|mac| live(mac))
            .or_else(|| {
                identifiers
                    .into_iter()
                    .filter(|identifier| identifier.contains(':'))
                    .find_map(|mac| live(&mac_digits(mac)))
            })
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
    use super::*;

    const UUID: &str = "4c4c4544-0042-4d10-8056-b4c04f4a5a31";

    fn binding(mac: &str, uuid: Option<&str>, last: u8, expires: u64) -> Binding {
        Binding {
            mac: mac.to_owned(),
            uuid: uuid.and_then(SystemUuid::parse),
            ip: Ipv4Addr::new(10, 0, 0, last),
            expires,
        }
    }

    #[test]
    fn a_machine_is_found_by_its_uuid_in_either_order_or_by_its_mac_while_leased() {
        let bindings = SourceBindings::default();
        bindings.record(binding("525400aa0001", Some(UUID), 5, 100));
        bindings.record(binding("525400aa0002", None, 6, 100));
        let uuid = SystemUuid::parse(UUID).expect("uuid");
        let other = SystemUuid::parse("00000000-0000-4000-8000-000000000001").expect("uuid");
        assert_eq!(
            bindings.address_for(&uuid, [], 50),
            Some(Ipv4Addr::new(10, 0, 0, 5))
        );
        assert_eq!(
            bindings.address_for(&uuid.smbios_swapped(), [], 50),
            Some(Ipv4Addr::new(10, 0, 0, 5))
        );
        assert_eq!(
            bindings.address_for(&other, ["10.9.9.9", "52:54:00:AA:00:02"], 50),
            Some(Ipv4Addr::new(10, 0, 0, 6))
        );
        assert_eq!(bindings.address_for(&uuid, [], 100), None, "expired");
        assert_eq!(bindings.address_for(&other, [], 50), None, "never leased");
        bindings.forget("525400aa0001");
        assert_eq!(bindings.address_for(&uuid, [], 50), None, "released");
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
