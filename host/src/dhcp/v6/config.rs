//! The DHCPv6 server's configuration: the `dhcp6` section of the DHCP YAML
//! (`ferrometal run --dhcp-config FILE`).

use std::net::Ipv6Addr;
use std::path::PathBuf;

use ipnet::Ipv6Net;
use serde::Deserialize;

/// What the DHCPv6 server serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dhcp6Config {
    /// Network interfaces to serve on (the server joins ff02::1:2 on each).
    pub interfaces: Vec<Interface6>,
    /// Address pools: the one containing the link-address of the relay nearest the client,
    /// or the interface's `address` for clients on the link itself.
    #[serde(default)]
    pub prefixes: Vec<Prefix6>,
    /// Where DHCPv6 leases are kept across restarts (not the DHCPv4 `leaseFile`).
    pub lease_file: PathBuf,
    /// Boot replies (option 59) for UEFI HTTP boot, UEFI PXE and iPXE clients.
    #[serde(default)]
    pub boot: BootReplies6,
    /// Whether a Solicit with Rapid Commit (option 14) is answered with a Reply at once
    /// (RFC 8415 §18.3.1); otherwise it gets an Advertise like any other.
    #[serde(default = "yes")]
    pub rapid_commit: bool,
    /// UDP port the server listens on and relay replies go to (547 on a real network).
    #[serde(default = "default_server_port")]
    pub server_port: u16,
    /// UDP port replies to clients on a served link go to (546 on a real network).
    #[serde(default = "default_client_port")]
    pub client_port: u16,
}

fn yes() -> bool {
    true
}

fn default_server_port() -> u16 {
    547
}

fn default_client_port() -> u16 {
    546
}

/// One served interface.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Interface6 {
    /// Kernel name, e.g. `eth1`.
    pub name: String,
    /// This server's (global or ULA) address on the link: the prefix containing it is the
    /// pool of the link's own clients. In no prefix: the interface serves relays only.
    pub address: Ipv6Addr,
}

/// A prefix in YAML form (`fd00:1::/64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct LinkPrefix(pub Ipv6Net);

impl TryFrom<String> for LinkPrefix {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse::<Ipv6Net>()
            .map(|net| Self(net.trunc()))
            .map_err(|_| format!("{text:?} is not an IPv6 prefix like fd00:1::/64"))
    }
}

/// One pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Prefix6 {
    /// The link's prefix, e.g. `fd00:1::/64`.
    pub prefix: LinkPrefix,
    /// First address handed out.
    pub range_start: Ipv6Addr,
    /// Last address handed out.
    pub range_end: Ipv6Addr,
    /// DNS servers (option 23).
    #[serde(default)]
    pub dns_servers: Vec<Ipv6Addr>,
    /// Preferred lifetime of an address, in seconds (T1 and T2 are 0.5 and 0.8 of it).
    #[serde(default = "default_preferred_seconds")]
    pub preferred_seconds: u32,
    /// Valid lifetime of an address (how long its lease lasts), in seconds.
    #[serde(default = "default_valid_seconds")]
    pub valid_seconds: u32,
}

fn default_preferred_seconds() -> u32 {
    3600
}

fn default_valid_seconds() -> u32 {
    3600
}

impl Prefix6 {
    /// Whether `address` is on this prefix's link.
    pub fn contains(&self, address: Ipv6Addr) -> bool {
        self.prefix.0.contains(&address)
    }

    /// Whether `address` is in the range handed out.
    pub fn in_range(&self, address: Ipv6Addr) -> bool {
        (self.range_start..=self.range_end).contains(&address)
    }

    /// The addresses of the range, in order.
    pub fn range(&self) -> impl Iterator<Item = Ipv6Addr> + use<> {
        (u128::from(self.range_start)..=u128::from(self.range_end)).map(Ipv6Addr::from)
    }

    /// Renewal time T1 (RFC 8415 §21.4: 0.5 of the preferred lifetime).
    pub fn t1(&self) -> u32 {
        self.preferred_seconds / 2
    }

    /// Rebinding time T2 (0.8 of the preferred lifetime).
    pub fn t2(&self) -> u32 {
        u32::try_from(u64::from(self.preferred_seconds) * 4 / 5).unwrap_or(u32::MAX)
    }
}

/// What network-booting DHCPv6 clients are told (option 59, Boot File URL, RFC 5970). Every
/// URL names its host by name or by a bracketed IPv6 literal (`http://[fd00::1]:8082/ipxe`);
/// `${mac}` and `${uuid}` in an HTTP boot URL are replaced by the client's MAC and system
/// UUID (from a DUID-UUID), as for DHCPv4.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootReplies6 {
    /// For iPXE (user class `iPXE`), of any architecture: the boot server's chain script.
    #[serde(default)]
    pub ipxe_url: Option<String>,
    /// For x86-64 UEFI HTTP boot firmware (vendor class `HTTPClient`, architecture 0x0010).
    #[serde(default)]
    pub http_boot_url: Option<String>,
    /// For arm64 UEFI HTTP boot firmware (architecture 0x0013); an x86-64 image does not
    /// boot there, so unset means no boot reply.
    #[serde(default)]
    pub http_boot_url_arm64: Option<String>,
    /// For x86-64 UEFI PXE firmware (architectures 0x0007, 0x0009), e.g.
    /// `tftp://[fd00:1::1]/ipxe.efi` (ferrometal's own TFTP server listens on IPv4 only).
    #[serde(default)]
    pub pxe_boot_url: Option<String>,
    /// For arm64 UEFI PXE firmware (architecture 0x000b).
    #[serde(default)]
    pub pxe_boot_url_arm64: Option<String>,
}

impl BootReplies6 {
    /// Every configured URL with the name of its key.
    fn urls(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("ipxeUrl", &self.ipxe_url),
            ("httpBootUrl", &self.http_boot_url),
            ("httpBootUrlArm64", &self.http_boot_url_arm64),
            ("pxeBootUrl", &self.pxe_boot_url),
            ("pxeBootUrlArm64", &self.pxe_boot_url_arm64),
        ]
        .into_iter()
        .filter_map(|(key, url)| url.as_deref().map(|url| (key, url)))
    }
}

/// Checks that `url` is absolute and that an IPv6 literal host in it is bracketed.
fn check_url(key: &str, url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "boot.{key} {url:?} is not an absolute URL (scheme://host/path)"
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if !host.starts_with('[') && host.matches(':').count() > 1 {
        // `fd00::1:8082` is ambiguous; the likelier reading has a port.
        let literal = host
            .rsplit_once(':')
            .map(|(address, _)| address)
            .filter(|address| address.parse::<Ipv6Addr>().is_ok())
            .unwrap_or(host);
        return Err(format!(
            "boot.{key} {url:?}: an IPv6 address in a URL must be in brackets, \
             e.g. {scheme}://[{literal}]/…"
        ));
    }
    // `${mac}` and `${uuid}` are replaced per client; any value will do for the check.
    let sample = url
        .replace("${mac}", "52-54-00-00-00-01")
        .replace("${uuid}", "00000000-0000-4000-8000-000000000001");
    url::Url::parse(&sample)
        .map(|_| ())
        .map_err(|error| format!("boot.{key} {url:?} is not a valid URL: {error}"))
}

impl Dhcp6Config {
    /// Checks the section (the messages name the offending key).
    pub fn check(&self) -> Result<(), String> {
        if self.interfaces.is_empty() {
            return Err(String::from("no interfaces to serve"));
        }
        for prefix in &self.prefixes {
            if !prefix.contains(prefix.range_start)
                || !prefix.contains(prefix.range_end)
                || prefix.range_start > prefix.range_end
            {
                return Err(format!(
                    "prefix {}: the range {}–{} must lie inside it, start before end",
                    prefix.prefix.0, prefix.range_start, prefix.range_end
                ));
            }
            if prefix.preferred_seconds > prefix.valid_seconds {
                return Err(format!(
                    "prefix {}: preferredSeconds {} is longer than validSeconds {}",
                    prefix.prefix.0, prefix.preferred_seconds, prefix.valid_seconds
                ));
            }
        }
        for interface in &self.interfaces {
            if interface.address.is_unicast_link_local() || interface.address.is_unspecified() {
                return Err(format!(
                    "interface {}: address {} must be a global or ULA address on the link \
                     (it chooses the link's prefix)",
                    interface.name, interface.address
                ));
            }
        }
        for (key, url) in self.boot.urls() {
            check_url(key, url)?;
        }
        Ok(())
    }

    /// The pool of `link` (an interface's address, or a relay's link-address).
    pub fn prefix_for(&self, link: Ipv6Addr) -> Option<&Prefix6> {
        self.prefixes.iter().find(|prefix| prefix.contains(link))
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    const CONFIG: &str = "interfaces: [{name: eth1, address: 'fd00:1::1'}]\n\
        leaseFile: /tmp/l6.json\n\
        prefixes:\n\
        - {prefix: 'fd00:1::/64', rangeStart: 'fd00:1::100', rangeEnd: 'fd00:1::1ff'}\n\
        - {prefix: 'fd00:2::/64', rangeStart: 'fd00:2::10', rangeEnd: 'fd00:2::20', validSeconds: 600, preferredSeconds: 300}\n\
        boot: {ipxeUrl: 'http://[fd00:1::1]:8082/ipxe', httpBootUrl: 'http://boot.example:8082/httpboot/${mac}'}\n";

    fn parse(yaml: &str) -> Result<Dhcp6Config, String> {
        let config: Dhcp6Config = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        config.check()?;
        Ok(config)
    }

    #[test]
    fn the_pool_is_the_prefix_of_the_link() {
        let config = parse(CONFIG).expect("config");
        let pool = |link: &str| {
            config
                .prefix_for(link.parse().expect("address"))
                .map(|prefix| prefix.prefix.0.to_string())
        };
        assert_eq!(pool("fd00:1::1").as_deref(), Some("fd00:1::/64"));
        assert_eq!(pool("fd00:2::1").as_deref(), Some("fd00:2::/64"));
        assert_eq!(pool("2001:db8::1"), None);
        let second = &config.prefixes[1];
        assert_eq!((second.t1(), second.t2()), (150, 240));
        assert_eq!(config.prefixes[0].valid_seconds, 3600);
        assert_eq!(second.range().count(), 17);
        assert!(config.rapid_commit);
        assert_eq!((config.server_port, config.client_port), (547, 546));
    }

    #[rstest]
    #[case::unbracketed_literal(
        "ipxeUrl: 'http://[fd00:1::1]:8082/ipxe'",
        "ipxeUrl: 'http://fd00:1::1:8082/ipxe'",
        "must be in brackets"
    )]
    #[case::not_a_url(
        "ipxeUrl: 'http://[fd00:1::1]:8082/ipxe'",
        "ipxeUrl: '/ipxe'",
        "not an absolute URL"
    )]
    #[case::range_outside(
        "rangeEnd: 'fd00:1::1ff'",
        "rangeEnd: 'fd00:3::1'",
        "must lie inside it"
    )]
    #[case::not_a_prefix(
        "prefix: 'fd00:1::/64'",
        "prefix: 'fd00:1::/129'",
        "not an IPv6 prefix"
    )]
    #[case::link_local_address("address: 'fd00:1::1'", "address: 'fe80::1'", "global or ULA")]
    #[case::lifetimes(
        "validSeconds: 600, preferredSeconds: 300",
        "validSeconds: 600, preferredSeconds: 900",
        "longer than validSeconds"
    )]
    fn bad_configurations_are_refused_with_the_reason(
        #[case] from: &str,
        #[case] to: &str,
        #[case] reason: &str,
    ) {
        assert!(CONFIG.contains(from), "{from}");
        let error = parse(&CONFIG.replace(from, to)).expect_err("refused");
        assert!(error.contains(reason), "{error}");
    }

    #[test]
    fn the_unbracketed_literal_is_named_in_the_message() {
        let error = check_url("ipxeUrl", "http://fd00:1::1:8082/ipxe").expect_err("refused");
        assert!(error.contains("http://[fd00:1::1]/"), "{error}");
        assert!(check_url("pxeBootUrl", "tftp://[fd00:1::1]/ipxe.efi").is_ok());
        assert!(check_url("httpBootUrl", "http://[fd00::1]/boot/${uuid}.efi").is_ok());
    }
}
