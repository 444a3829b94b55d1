//! Leases: which MAC holds which address until when, kept in a file so a restart never hands
//! a leased address to another client.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::bindings::Binding;
use super::config::Subnet;
use crate::boot::uuid::SystemUuid;

/// One lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The address.
    pub ip: Ipv4Addr,
    /// Unix seconds when it ends.
    pub expires: u64,
    /// The client's system UUID (DHCP option 97), when it sent one with its request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Whether the lease was acknowledged (not just held for an offer).
    #[serde(default = "acknowledged", skip_serializing_if = "is_true")]
    pub acked: bool,
}

fn acknowledged() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// How long an offered address stays reserved for the client it was offered to.
pub const OFFER_HOLD_SECONDS: u32 = 30;

/// Every lease, by MAC (hex digits).
#[derive(Debug, Default)]
pub struct Leases {
    by_mac: BTreeMap<String, Lease>,
    path: Option<PathBuf>,
}

impl Leases {
    /// Loads `path` (a missing file is an empty table).
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let by_mac = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(std::io::Error::other)?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => return Err(error),
        };
        Ok(Self {
            by_mac,
            path: Some(path.to_owned()),
        })
    }

    /// Writes the table (to a temporary file renamed into place, so a crash leaves the old
    /// or the new table, never half of one).
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.by_mac)?)?;
        std::fs::rename(tmp, path)
    }

    /// The address `mac` may have in `subnet`: its current lease, else `requested` if free,
    /// else the first free address of the range (expired leases count as free).
    pub fn choose(
        &self,
        mac: &str,
        subnet: &Subnet,
        requested: Option<Ipv4Addr>,
        now: u64,
    ) -> Option<Ipv4Addr> {
        if let Some(lease) = self.by_mac.get(mac)
            && subnet.contains(lease.ip)
        {
            return Some(lease.ip);
        }
        // Collected once: a scan of every lease per candidate address would make a fleet
        // booting at once quadratic.
        let held: std::collections::HashSet<Ipv4Addr> = self
            .by_mac
            .iter()
            .filter(|(other, lease)| *other != mac && lease.expires > now)
            .map(|(_, lease)| lease.ip)
            .collect();
        let taken = |ip: Ipv4Addr| held.contains(&ip);
        let in_range = |ip: Ipv4Addr| {
            u32::from(ip) >= u32::from(subnet.range_start)
                && u32::from(ip) <= u32::from(subnet.range_end)
        };
        if let Some(ip) = requested
            && in_range(ip)
            && !taken(ip)
        {
            return Some(ip);
        }
        subnet.range().find(|ip| !taken(*ip))
    }

    /// Records that `mac` (with system UUID `uuid`, if it sent one) holds `ip` for
    /// `seconds` from `now`, acknowledged; returns its source binding.
    pub fn bind(
        &mut self,
        mac: &str,
        ip: Ipv4Addr,
        now: u64,
        seconds: u32,
        uuid: Option<&SystemUuid>,
    ) -> Binding {
        self.insert(mac, ip, now + u64::from(seconds), uuid, true);
        Binding {
            mac: mac.to_owned(),
            uuid: self
                .by_mac
                .get(mac)
                .and_then(|lease| lease.uuid.as_deref())
                .and_then(SystemUuid::parse),
            ip: ip.into(),
            expires: now + u64::from(seconds),
        }
    }

    fn insert(
        &mut self,
        mac: &str,
        ip: Ipv4Addr,
        expires: u64,
        uuid: Option<&SystemUuid>,
        acked: bool,
    ) {
        // Another MAC's expired lease on the same address is gone now.
        self.by_mac
            .retain(|other, lease| other == mac || lease.ip != ip);
        // A client that does not name its UUID (the booted OS's DHCP client, after the
        // firmware did) is still the same machine.
        let uuid = uuid
            .map(|uuid| uuid.as_str().to_owned())
            .or_else(|| self.by_mac.get(mac).and_then(|lease| lease.uuid.clone()));
        self.by_mac.insert(
            mac.to_owned(),
            Lease {
                ip,
                expires,
                uuid,
                acked,
            },
        );
    }

    /// The source bindings of the acknowledged leases.
    pub fn bindings(&self) -> impl Iterator<Item = Binding> + '_ {
        self.by_mac
            .iter()
            .filter(|(_, lease)| lease.acked)
            .map(|(mac, lease)| Binding {
                mac: mac.clone(),
                uuid: lease.uuid.as_deref().and_then(SystemUuid::parse),
                ip: lease.ip.into(),
                expires: lease.expires,
            })
    }

    /// The acknowledged leases still running at `now`, as `(MAC hex digits, address)`.
    pub fn current(&self, now: u64) -> impl Iterator<Item = (&str, Ipv4Addr)> + '_ {
        self.by_mac
            .iter()
            .filter(move |(_, lease)| lease.acked && lease.expires > now)
            .map(|(mac, lease)| (mac.as_str(), lease.ip))
    }

    /// Holds `ip` for `mac` for [`OFFER_HOLD_SECONDS`] after an offer, unless `mac` already
    /// has a lease, so that clients asking at the same moment are offered different
    /// addresses (RFC 2131 §4.3.1: the server should reserve what it offers).
    /// A hold is an ordinary short lease (it is saved with the next acknowledged one) and
    /// ends by itself after the hold time.
    pub fn hold_offer(&mut self, mac: &str, ip: Ipv4Addr, now: u64) {
        if self
            .by_mac
            .get(mac)
            .is_none_or(|lease| lease.expires <= now)
        {
            self.insert(mac, ip, now + u64::from(OFFER_HOLD_SECONDS), None, false);
        }
    }

    /// Ends `mac`'s lease.
    pub fn release(&mut self, mac: &str) -> bool {
        self.by_mac.remove(mac).is_some()
    }

    /// `mac`'s lease.
    pub fn get(&self, mac: &str) -> Option<Lease> {
        self.by_mac.get(mac).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewal_without_the_uuid_keeps_the_machine_it_named() {
        let mut leases = Leases::default();
        let uuid = SystemUuid::parse("4c4c4544-0042-4d10-8056-b4c04f4a5a31").expect("uuid");
        let ip = Ipv4Addr::new(10, 0, 0, 100);
        leases.bind("aa", ip, 0, 60, Some(&uuid));
        // The booted OS renews without option 97.
        let renewed = leases.bind("aa", ip, 30, 60, None);
        assert_eq!(renewed.uuid, Some(uuid.clone()));
        assert_eq!(
            leases.get("aa").and_then(|l| l.uuid),
            Some(uuid.to_string())
        );
    }

    #[test]
    fn the_current_leases_are_the_acknowledged_ones_still_running() {
        let mut leases = Leases::default();
        leases.bind("aa", Ipv4Addr::new(10, 0, 0, 1), 0, 600, None);
        leases.bind("bb", Ipv4Addr::new(10, 0, 0, 2), 0, 60, None);
        leases.hold_offer("cc", Ipv4Addr::new(10, 0, 0, 3), 100);
        let current: Vec<(&str, Ipv4Addr)> = leases.current(100).collect();
        assert_eq!(current, [("aa", Ipv4Addr::new(10, 0, 0, 1))]);
    }

    #[test]
    fn an_offer_is_held_so_clients_asking_together_get_different_addresses() {
        let mut leases = Leases::default();
        let a = leases.choose("aa", &subnet(), None, 0).expect("address");
        leases.hold_offer("aa", a, 0);
        let b = leases.choose("bb", &subnet(), None, 0).expect("address");
        assert_ne!(a, b, "the address offered to aa is held");
        // The hold ends: the address is free again.
        let later = u64::from(OFFER_HOLD_SECONDS) + 1;
        assert_eq!(leases.choose("bb", &subnet(), Some(a), later), Some(a));
        // A client with a lease keeps it whole.
        leases.bind("cc", Ipv4Addr::new(10, 0, 0, 102), 0, 600, None);
        leases.hold_offer("cc", Ipv4Addr::new(10, 0, 0, 102), 10);
        assert_eq!(leases.get("cc").map(|l| l.expires), Some(600));
    }

    fn subnet() -> Subnet {
        Subnet {
            network: Ipv4Addr::new(10, 0, 0, 0),
            prefix: 24,
            range_start: Ipv4Addr::new(10, 0, 0, 100),
            range_end: Ipv4Addr::new(10, 0, 0, 102),
            router: None,
            dns_servers: Vec::new(),
            lease_seconds: 60,
        }
    }

    #[test]
    fn a_client_keeps_its_address_and_others_get_free_ones() {
        let mut leases = Leases::default();
        let a = leases.choose("aa", &subnet(), None, 0).expect("address");
        assert_eq!(a, Ipv4Addr::new(10, 0, 0, 100));
        leases.bind("aa", a, 0, 60, None);
        assert_eq!(leases.choose("aa", &subnet(), None, 10), Some(a));
        assert_eq!(
            leases.choose("bb", &subnet(), Some(a), 10),
            Some(Ipv4Addr::new(10, 0, 0, 101)),
            "a leased address is not given to another client, even when asked for"
        );
        assert_eq!(
            leases.choose("bb", &subnet(), Some(Ipv4Addr::new(10, 0, 0, 102)), 10),
            Some(Ipv4Addr::new(10, 0, 0, 102)),
            "a free requested address is granted"
        );
    }

    #[test]
    fn a_full_pool_offers_nothing_until_a_lease_expires() {
        let mut leases = Leases::default();
        for (mac, host) in [("a", 100), ("b", 101), ("c", 102)] {
            leases.bind(mac, Ipv4Addr::new(10, 0, 0, host), 0, 60, None);
        }
        assert_eq!(leases.choose("d", &subnet(), None, 30), None);
        assert_eq!(
            leases.choose("d", &subnet(), None, 61),
            Some(Ipv4Addr::new(10, 0, 0, 100))
        );
    }

    #[test]
    fn leases_survive_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("leases.json");
        let mut leases = Leases::load(&path).expect("empty");
        leases.bind("aa", Ipv4Addr::new(10, 0, 0, 100), 0, 60, None);
        leases.save().expect("save");
        let again = Leases::load(&path).expect("load");
        assert_eq!(
            again.get("aa").map(|l| l.ip),
            Some(Ipv4Addr::new(10, 0, 0, 100))
        );
        assert_eq!(
            again.choose("bb", &subnet(), None, 1),
            Some(Ipv4Addr::new(10, 0, 0, 101))
        );
    }
}
