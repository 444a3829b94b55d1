//! The DHCP server's configuration (`ferrometal run --dhcp-config FILE`, YAML).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::Deserialize;

use super::v6::config::Dhcp6Config;

/// What the DHCP server serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DhcpConfig {
    /// Network interfaces to serve DHCPv4 on (requests arriving elsewhere are not seen);
    /// empty (or unset) with a `dhcp6` section: DHCPv6 only.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Address pools: the one containing a relay's `giaddr`, or the interface's
    /// `serverAddress` for clients on the segment itself.
    #[serde(default)]
    pub subnets: Vec<Subnet>,
    /// Where DHCPv4 leases are kept across restarts (required when `interfaces` is not
    /// empty).
    #[serde(default)]
    pub lease_file: PathBuf,
    /// The DHCPv6 server (see docs/dhcp.md); unset: no DHCPv6. Shares `onboarding`.
    #[serde(default)]
    pub dhcp6: Option<Dhcp6Config>,
    /// Which clients become Endpoints (BMCs).
    #[serde(default)]
    pub onboarding: Onboarding,
    /// Boot replies for PXE, iPXE and UEFI HTTP clients.
    #[serde(default)]
    pub boot: BootReplies,
    /// Directory served read-only over TFTP on each `serverAddress` (e.g. `/usr/lib/ipxe`
    /// from Debian's `ipxe` package); unset: no TFTP.
    #[serde(default)]
    pub tftp_root: Option<PathBuf>,
    /// UDP port the server listens on (67 on a real network; another port lets a simulated
    /// fleet and its server share a machine's loopback).
    #[serde(default = "default_server_port")]
    pub server_port: u16,
    /// UDP port replies are broadcast to (68 on a real network).
    #[serde(default = "default_client_port")]
    pub client_port: u16,
}

fn default_server_port() -> u16 {
    67
}

fn default_client_port() -> u16 {
    68
}

/// One served interface.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Interface {
    /// Kernel name, e.g. `eth1`.
    pub name: String,
    /// This server's address on it: server identifier, TFTP server (`siaddr`).
    pub server_address: Ipv4Addr,
}

/// One pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subnet {
    /// Network address, e.g. `10.0.0.0`.
    pub network: Ipv4Addr,
    /// Prefix length, e.g. `24`.
    pub prefix: u8,
    /// First address handed out.
    pub range_start: Ipv4Addr,
    /// Last address handed out.
    pub range_end: Ipv4Addr,
    /// Default gateway.
    #[serde(default)]
    pub router: Option<Ipv4Addr>,
    /// DNS servers.
    #[serde(default)]
    pub dns_servers: Vec<Ipv4Addr>,
    /// Lease time in seconds.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u32,
}

fn default_lease_seconds() -> u32 {
    3600
}

impl Subnet {
    /// The subnet mask.
    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(
            u32::MAX
                .checked_shl(32 - u32::from(self.prefix))
                .unwrap_or(0),
        )
    }

    /// Whether `address` is in this subnet.
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        let mask = u32::from(self.mask());
        u32::from(address) & mask == u32::from(self.network) & mask
    }

    /// The addresses of the range, in order.
    pub fn range(&self) -> impl Iterator<Item = Ipv4Addr> + use<> {
        (u32::from(self.range_start)..=u32::from(self.range_end)).map(Ipv4Addr::from)
    }
}

/// Which DHCP clients are BMCs to onboard as Endpoints.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Onboarding {
    /// MAC prefixes (`52:54:00:dd`, any case, `:` or `-` or none).
    #[serde(default)]
    pub mac_prefixes: Vec<String>,
    /// Whole MAC addresses.
    #[serde(default)]
    pub macs: Vec<String>,
}

/// `aa:bb:…` of a MAC's hex digits (what [`mac_digits`] made).
pub fn colon_mac(digits: &str) -> String {
    digits
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

/// Hex digits of a MAC or prefix, lowercase, separators dropped.
pub fn mac_digits(mac: &str) -> String {
    mac.chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl Onboarding {
    /// Whether `mac` is to be onboarded.
    pub fn wants(&self, mac: &str) -> bool {
        let digits = mac_digits(mac);
        self.macs.iter().any(|m| mac_digits(m) == digits)
            || self
                .mac_prefixes
                .iter()
                .any(|p| !p.is_empty() && digits.starts_with(&mac_digits(p)))
    }
}

/// What network-booting clients are told.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootReplies {
    /// For iPXE (user class `iPXE`): the boot server's chain script, e.g.
    /// `http://10.0.0.1:8082/ipxe`. Unset: no boot reply.
    #[serde(default)]
    pub ipxe_url: Option<String>,
    /// For UEFI HTTP boot clients (vendor class `HTTPClient`): what they fetch.
    #[serde(default)]
    pub http_boot_url: Option<String>,
    /// For arm64 UEFI HTTP boot clients (architecture 0x0013, option 93 or the vendor
    /// class); unset: they get no boot file (an x86-64 image does not boot there).
    #[serde(default)]
    pub http_boot_url_arm64: Option<String>,
    /// For legacy BIOS PXE firmware: the iPXE image on the TFTP server (`siaddr`).
    #[serde(default = "default_bios_file")]
    pub bios_file: String,
    /// For UEFI PXE firmware: the iPXE image on the TFTP server.
    #[serde(default = "default_efi_file")]
    pub efi_file: String,
}

fn default_bios_file() -> String {
    String::from("undionly.kpxe")
}

fn default_efi_file() -> String {
    String::from("ipxe.efi")
}

impl Default for BootReplies {
    fn default() -> Self {
        Self {
            ipxe_url: None,
            http_boot_url: None,
            http_boot_url_arm64: None,
            bios_file: default_bios_file(),
            efi_file: default_efi_file(),
        }
    }
}

impl DhcpConfig {
    /// Parses and checks a configuration.
    pub fn parse(yaml: &str) -> Result<Self, String> {
        let config: Self = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        for subnet in &config.subnets {
            if subnet.prefix > 32
                || !subnet.contains(subnet.range_start)
                || !subnet.contains(subnet.range_end)
                || subnet.range_start > subnet.range_end
            {
                return Err(format!(
                    "subnet {}/{}: the range {}–{} must lie inside it, start before end",
                    subnet.network, subnet.prefix, subnet.range_start, subnet.range_end
                ));
            }
        }
        if config.interfaces.is_empty() && config.dhcp6.is_none() {
            return Err(String::from("no interfaces to serve"));
        }
        if !config.interfaces.is_empty() && config.lease_file.as_os_str().is_empty() {
            return Err(String::from(
                "leaseFile is missing: serving DHCPv4 needs a file to keep its leases in",
            ));
        }
        if let Some(dhcp6) = &config.dhcp6 {
            dhcp6.check().map_err(|error| format!("dhcp6: {error}"))?;
            if dhcp6.lease_file == config.lease_file {
                return Err(format!(
                    "dhcp6.leaseFile {} is also the DHCPv4 leaseFile; each server needs its own",
                    dhcp6.lease_file.display()
                ));
            }
        }
        for interface in &config.interfaces {
            if !config
                .subnets
                .iter()
                .any(|s| s.contains(interface.server_address))
            {
                return Err(format!(
                    "serverAddress {} of {} is in none of the subnets, so its clients get no pool",
                    interface.server_address, interface.name
                ));
            }
        }
        Ok(config)
    }

    /// The pool for a request that arrived on `interface`: the relay's subnet, or the
    /// interface's own.
    pub fn subnet_for(&self, interface: &Interface, giaddr: Ipv4Addr) -> Option<&Subnet> {
        let address = if giaddr.is_unspecified() {
            interface.server_address
        } else {
            giaddr
        };
        self.subnets.iter().find(|s| s.contains(address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "interfaces: [{name: eth1, serverAddress: 10.0.0.1}]\nleaseFile: /tmp/l.json\n\
        subnets:\n\
        - {network: 10.0.0.0, prefix: 24, rangeStart: 10.0.0.100, rangeEnd: 10.0.0.199}\n\
        - {network: 10.1.0.0, prefix: 16, rangeStart: 10.1.2.0, rangeEnd: 10.1.2.255}\n";

    #[test]
    fn relayed_requests_get_the_relays_subnet_and_local_ones_the_interfaces() {
        let config = DhcpConfig::parse(CONFIG).expect("config");
        let eth1 = &config.interfaces[0];
        assert_eq!(
            config
                .subnet_for(eth1, Ipv4Addr::UNSPECIFIED)
                .map(|s| s.network),
            Some(Ipv4Addr::new(10, 0, 0, 0))
        );
        assert_eq!(
            config
                .subnet_for(eth1, Ipv4Addr::new(10, 1, 9, 1))
                .map(|s| s.network),
            Some(Ipv4Addr::new(10, 1, 0, 0))
        );
        assert!(
            config
                .subnet_for(eth1, Ipv4Addr::new(192, 0, 2, 1))
                .is_none()
        );
        assert_eq!(config.subnets[1].mask(), Ipv4Addr::new(255, 255, 0, 0));
        assert_eq!(config.subnets[0].lease_seconds, 3600);
    }

    #[test]
    fn inconsistent_configurations_are_refused_with_the_reason() {
        let outside = CONFIG.replace("rangeEnd: 10.0.0.199", "rangeEnd: 10.0.1.5");
        assert!(
            DhcpConfig::parse(&outside)
                .expect_err("range outside")
                .contains("must lie inside it")
        );
        let stray = CONFIG.replace("serverAddress: 10.0.0.1", "serverAddress: 192.0.2.1");
        assert!(
            DhcpConfig::parse(&stray)
                .expect_err("server elsewhere")
                .contains("in none of the subnets")
        );
        assert!(DhcpConfig::parse("interfaces: []\nbogus: 1\n").is_err());
        assert!(
            DhcpConfig::parse(&CONFIG.replace("[{name: eth1, serverAddress: 10.0.0.1}]", "[]"))
                .expect_err("no interfaces")
                .contains("no interfaces")
        );
        assert!(
            DhcpConfig::parse(&CONFIG.replace("leaseFile: /tmp/l.json\n", ""))
                .expect_err("no lease file")
                .contains("leaseFile is missing")
        );
    }

    const DHCP6: &str = "dhcp6:\n  interfaces: [{name: eth1, address: 'fd00:1::1'}]\n  \
        prefixes: [{prefix: 'fd00:1::/64', rangeStart: 'fd00:1::100', rangeEnd: 'fd00:1::1ff'}]\n  \
        leaseFile: /tmp/l6.json\n";

    #[test]
    fn a_dhcp6_section_sits_beside_dhcpv4_or_alone() {
        let both = DhcpConfig::parse(&format!("{CONFIG}{DHCP6}")).expect("both");
        assert_eq!(both.subnets.len(), 2);
        assert_eq!(both.dhcp6.map(|v6| v6.server_port), Some(547));
        let alone = DhcpConfig::parse(DHCP6).expect("DHCPv6 only");
        assert!(alone.interfaces.is_empty());
        let same_file = format!("{CONFIG}{}", DHCP6.replace("/tmp/l6.json", "/tmp/l.json"));
        assert!(
            DhcpConfig::parse(&same_file)
                .expect_err("one lease file for both")
                .contains("each server needs its own")
        );
        let bad = DHCP6.replace("rangeEnd: 'fd00:1::1ff'", "rangeEnd: 'fd00:2::1'");
        assert!(
            DhcpConfig::parse(&bad)
                .expect_err("range outside")
                .starts_with("dhcp6: ")
        );
    }

    #[test]
    fn onboarding_matches_prefixes_and_macs_in_any_spelling() {
        let onboarding = Onboarding {
            mac_prefixes: vec![String::from("52-54-00-DD")],
            macs: vec![String::from("aabb.ccdd.eeff")],
        };
        assert!(onboarding.wants("52:54:00:dd:00:01"));
        assert!(onboarding.wants("AA:BB:CC:DD:EE:FF"));
        assert!(!onboarding.wants("52:54:00:de:00:01"));
    }
}
