//! DHCPv6 leases: which client's IA holds which address until when, kept in a file of their
//! own (as DHCPv4's, rewritten atomically on every change) so a restart never hands a leased
//! address to another client.
//!
//! A lease is keyed by the client's DUID and the IA's IAID (`<DUID hex>/<IAID>`), the
//! identity RFC 8415 binds addresses to; the MAC and system UUID found in the client's
//! packets are kept beside it for onboarding and source binding.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::Prefix6;
use crate::boot::uuid::SystemUuid;
use crate::dhcp::bindings::Binding;

/// One lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease6 {
    /// The address.
    pub ip: Ipv6Addr,
    /// Unix seconds when it ends (its valid lifetime).
    pub expires: u64,
    /// The client's MAC (hex digits), when its packets said it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The client's system UUID (from a DUID-UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Whether the lease was granted (not just held for an Advertise, or declined).
    #[serde(default = "granted", skip_serializing_if = "is_true")]
    pub acked: bool,
}

fn granted() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// How long an advertised address stays reserved for the client it was advertised to.
pub const OFFER_HOLD_SECONDS: u32 = 30;

/// Who a client is, as far as its packets say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIdentity {
    /// MAC (hex digits).
    pub mac: Option<String>,
    /// System UUID.
    pub uuid: Option<SystemUuid>,
}

/// The lease key of a client's IA.
pub fn lease_key(duid: &[u8], iaid: u32) -> String {
    format!("{}/{iaid}", hex::encode(duid))
}

/// Every lease, by DUID/IAID.
#[derive(Debug, Default)]
pub struct Leases6 {
    by_key: BTreeMap<String, Lease6>,
    path: Option<PathBuf>,
}

impl Leases6 {
    /// Loads `path` (a missing file is an empty table).
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let by_key = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(std::io::Error::other)?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => return Err(error),
        };
        Ok(Self {
            by_key,
            path: Some(path.to_owned()),
        })
    }

    /// Writes the table (to a temporary file renamed into place).
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.by_key)?)?;
        std::fs::rename(tmp, path)
    }

    /// The address `key` may have in `prefix`: its current lease, else `requested` if free
    /// and in the range, else the first free address of the range (expired leases are free).
    pub fn choose(
        &self,
        key: &str,
        prefix: &Prefix6,
        requested: Option<Ipv6Addr>,
        now: u64,
    ) -> Option<Ipv6Addr> {
        if let Some(lease) = self.by_key.get(key)
            && prefix.in_range(lease.ip)
        {
            return Some(lease.ip);
        }
        let held: HashSet<Ipv6Addr> = self
            .by_key
            .iter()
            .filter(|(other, lease)| *other != key && lease.expires > now)
            .map(|(_, lease)| lease.ip)
            .collect();
        if let Some(ip) = requested
            && prefix.in_range(ip)
            && !held.contains(&ip)
        {
            return Some(ip);
        }
        // At most `held.len() + 1` steps, however large the range.
        prefix.range().find(|ip| !held.contains(ip))
    }

    /// Records that `key` holds `ip` for `seconds` from `now`; returns its source binding.
    pub fn bind(
        &mut self,
        key: &str,
        ip: Ipv6Addr,
        now: u64,
        seconds: u32,
        client: &ClientIdentity,
    ) -> Binding {
        self.insert(key, ip, now + u64::from(seconds), client, true);
        let lease = &self.by_key[key];
        binding(key, lease)
    }

    fn insert(
        &mut self,
        key: &str,
        ip: Ipv6Addr,
        expires: u64,
        client: &ClientIdentity,
        acked: bool,
    ) {
        self.by_key
            .retain(|other, lease| other == key || lease.ip != ip);
        let earlier = self.by_key.get(key);
        let mac = client
            .mac
            .clone()
            .or_else(|| earlier.and_then(|lease| lease.mac.clone()));
        let uuid = client
            .uuid
            .as_ref()
            .map(|uuid| uuid.as_str().to_owned())
            .or_else(|| earlier.and_then(|lease| lease.uuid.clone()));
        self.by_key.insert(
            key.to_owned(),
            Lease6 {
                ip,
                expires,
                mac,
                uuid,
                acked,
            },
        );
    }

    /// Holds `ip` for `key` for [`OFFER_HOLD_SECONDS`] after an Advertise, unless `key`
    /// already has a running lease.
    pub fn hold_offer(&mut self, key: &str, ip: Ipv6Addr, now: u64, client: &ClientIdentity) {
        if self
            .by_key
            .get(key)
            .is_none_or(|lease| lease.expires <= now)
        {
            self.insert(key, ip, now + u64::from(OFFER_HOLD_SECONDS), client, false);
        }
    }

    /// Ends `key`'s lease; the binding it had.
    pub fn release(&mut self, key: &str) -> Option<Binding> {
        let lease = self.by_key.remove(key)?;
        Some(binding(key, &lease))
    }

    /// Keeps `ip`, declined by a client (another host uses it), from being handed out for
    /// `seconds`.
    pub fn decline(&mut self, ip: Ipv6Addr, now: u64, seconds: u32) {
        self.insert(
            &format!("declined/{ip}"),
            ip,
            now + u64::from(seconds),
            &ClientIdentity::default(),
            false,
        );
    }

    /// The source bindings of the granted leases.
    pub fn bindings(&self) -> impl Iterator<Item = Binding> + '_ {
        self.by_key
            .iter()
            .filter(|(_, lease)| lease.acked)
            .map(|(key, lease)| binding(key, lease))
    }

    /// The granted leases of clients with a known MAC still running at `now`, as
    /// `(MAC hex digits, address)`.
    pub fn current(&self, now: u64) -> impl Iterator<Item = (&str, Ipv6Addr)> + '_ {
        self.by_key
            .values()
            .filter(move |lease| lease.acked && lease.expires > now)
            .filter_map(|lease| Some((lease.mac.as_deref()?, lease.ip)))
    }

    /// `key`'s lease.
    pub fn get(&self, key: &str) -> Option<&Lease6> {
        self.by_key.get(key)
    }
}

/// The source binding of a lease: by MAC if known, else by `duid-<hex>`.
fn binding(key: &str, lease: &Lease6) -> Binding {
    let duid = key.split('/').next().unwrap_or(key);
    Binding {
        mac: lease.mac.clone().unwrap_or_else(|| format!("duid-{duid}")),
        uuid: lease.uuid.as_deref().and_then(SystemUuid::parse),
        ip: IpAddr::V6(lease.ip),
        expires: lease.expires,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::v6::config::LinkPrefix;

    fn prefix() -> Prefix6 {
        Prefix6 {
            prefix: LinkPrefix("fd00::/64".parse().expect("prefix")),
            range_start: "fd00::100".parse().expect("start"),
            range_end: "fd00::102".parse().expect("end"),
            dns_servers: Vec::new(),
            preferred_seconds: 60,
            valid_seconds: 60,
        }
    }

    fn ip(last: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, last)
    }

    fn mac(digits: &str) -> ClientIdentity {
        ClientIdentity {
            mac: Some(digits.to_owned()),
            uuid: None,
        }
    }

    #[test]
    fn a_client_keeps_its_address_and_others_get_free_ones() {
        let mut leases = Leases6::default();
        let a = leases.choose("aa/1", &prefix(), None, 0).expect("address");
        assert_eq!(a, ip(0x100));
        leases.bind("aa/1", a, 0, 60, &mac("aa"));
        assert_eq!(leases.choose("aa/1", &prefix(), None, 10), Some(a));
        assert_eq!(
            leases.choose("bb/1", &prefix(), Some(a), 10),
            Some(ip(0x101)),
            "a leased address is not given to another client, even when asked for"
        );
        assert_eq!(
            leases.choose("bb/1", &prefix(), Some(ip(0x102)), 10),
            Some(ip(0x102))
        );
        assert_eq!(
            leases.choose("bb/1", &prefix(), Some(ip(0x999)), 10),
            Some(ip(0x101)),
            "an address outside the range is not granted"
        );
    }

    #[test]
    fn an_advertised_address_is_held_and_a_full_pool_offers_nothing() {
        let mut leases = Leases6::default();
        leases.hold_offer("aa/1", ip(0x100), 0, &ClientIdentity::default());
        assert_eq!(leases.choose("bb/1", &prefix(), None, 0), Some(ip(0x101)));
        leases.bind("bb/1", ip(0x101), 0, 60, &mac("bb"));
        leases.decline(ip(0x102), 0, 60);
        assert_eq!(leases.choose("cc/1", &prefix(), None, 10), None);
        assert_eq!(
            leases.choose("cc/1", &prefix(), None, u64::from(OFFER_HOLD_SECONDS) + 1),
            Some(ip(0x100)),
            "the hold ended"
        );
        let current: Vec<_> = leases.current(10).collect();
        assert_eq!(current, [("bb", ip(0x101))], "only granted leases");
    }

    #[test]
    fn a_binding_is_by_mac_or_else_by_duid_and_a_renewal_keeps_what_was_known() {
        let mut leases = Leases6::default();
        let uuid = SystemUuid::parse("4c4c4544-0042-4d10-8056-b4c04f4a5a31").expect("uuid");
        let firmware = ClientIdentity {
            mac: None,
            uuid: Some(uuid.clone()),
        };
        let bound = leases.bind("0004aa/1", ip(0x100), 0, 60, &firmware);
        assert_eq!(bound.mac, "duid-0004aa");
        assert_eq!(bound.uuid, Some(uuid.clone()));
        // Renewed through a relay that now adds option 79: the MAC is learnt, the UUID kept.
        let renewed = leases.bind("0004aa/1", ip(0x100), 30, 60, &mac("525400dd0001"));
        assert_eq!(renewed.mac, "525400dd0001");
        assert_eq!(renewed.uuid, Some(uuid));
        assert_eq!(renewed.expires, 90);
        assert_eq!(
            leases.release("0004aa/1").map(|b| b.ip),
            Some(IpAddr::V6(ip(0x100)))
        );
        assert_eq!(leases.bindings().count(), 0);
    }

    #[test]
    fn leases_survive_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("leases6.json");
        let mut leases = Leases6::load(&path).expect("empty");
        leases.bind("aa/1", ip(0x100), 0, 60, &mac("aa"));
        leases.save().expect("save");
        let again = Leases6::load(&path).expect("load");
        assert_eq!(again.get("aa/1").map(|l| l.ip), Some(ip(0x100)));
        assert_eq!(again.choose("bb/1", &prefix(), None, 1), Some(ip(0x101)));
        assert_eq!(lease_key(&[0, 3, 0xab], 7), "0003ab/7");
    }
}
