//! Who a DHCPv6 client is (pure): its DUID, its MAC and system UUID where the packet says
//! them, and what kind of network boot it asks for.
//!
//! DHCPv6 clients are known by a DUID, not a MAC. The MAC comes from the Client Link-Layer
//! Address option (79, RFC 6939) that the relay nearest the client adds, else from the
//! client's link-local address when it is a modified EUI-64 one (`fe80::` with `ff:fe` in
//! the middle: the source of a client on a served link, or the innermost relay's
//! peer-address), else from a DUID-LLT or DUID-LL of an Ethernet interface (hardware type 1).
//! This is the order of ISC Kea's MAC sources: the link-local address belongs to the
//! interface the client asks on, while a DUID may name another of its NICs. UEFI firmware
//! (OVMF's HTTP boot) sends a DUID-UUID from an EUI-64 link-local address, so its lease is
//! known by MAC and by system UUID, like a DHCPv4 one with option 97. A client with neither
//! (a DUID-EN or DUID-UUID from a privacy link-local address outside a relay that adds
//! option 79) still gets an address but cannot be onboarded as an Endpoint.

use std::net::Ipv6Addr;

use dhcproto::v6::{DhcpOption, Message, OptionCode};

use super::packet::Packet;
use crate::boot::uuid::SystemUuid;

/// Why no MAC could be found for a client (for a debug log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoMac {
    /// The message has no Client Identifier.
    #[error("the client sent no Client Identifier")]
    NoClientId,
    /// The DUID is of a type without a link-layer address.
    #[error(
        "its DUID is of type {0} (not DUID-LLT or DUID-LL), no relay added option 79 and its link-local address is not EUI-64"
    )]
    DuidType(u16),
    /// The DUID's (or option 79's) hardware type is not Ethernet.
    #[error("its link-layer address is of hardware type {0}, not Ethernet")]
    HardwareType(u16),
    /// A link-layer address that is not six bytes long.
    #[error("its link-layer address is {0} bytes long, not 6")]
    AddressLength(usize),
}

/// The client's DUID (Client Identifier, option 1).
pub fn duid(message: &Message) -> Option<&[u8]> {
    match message.opts().get(OptionCode::ClientId) {
        Some(DhcpOption::ClientId(duid)) => Some(duid),
        _ => None,
    }
}

/// `aa:bb:…` of an Ethernet address given as hardware type + address bytes.
fn ethernet(hardware_type: u16, address: &[u8]) -> Result<String, NoMac> {
    if hardware_type != 1 {
        return Err(NoMac::HardwareType(hardware_type));
    }
    if address.len() != 6 {
        return Err(NoMac::AddressLength(address.len()));
    }
    Ok(address
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// The MAC in a DUID-LLT (type 1) or DUID-LL (type 3).
pub fn duid_mac(duid: &[u8]) -> Result<String, NoMac> {
    let [t0, t1, h0, h1, rest @ ..] = duid else {
        return Err(NoMac::DuidType(
            duid.get(..2)
                .map_or(0, |t| u16::from_be_bytes([t[0], t[1]])),
        ));
    };
    let hardware_type = u16::from_be_bytes([*h0, *h1]);
    match u16::from_be_bytes([*t0, *t1]) {
        1 => ethernet(hardware_type, rest.get(4..).unwrap_or_default()),
        3 => ethernet(hardware_type, rest),
        other => Err(NoMac::DuidType(other)),
    }
}

/// The MAC of a modified EUI-64 link-local address (RFC 4291 appendix A), if it is one.
pub fn eui64_mac(address: Ipv6Addr) -> Option<String> {
    let o = address.octets();
    let eui64 = address.is_unicast_link_local() && o[11] == 0xff && o[12] == 0xfe;
    eui64
        .then(|| ethernet(1, &[o[8] ^ 0x02, o[9], o[10], o[13], o[14], o[15]]).ok())
        .flatten()
}

/// The client's MAC: option 79 of the relay nearest the client, else its EUI-64 link-local
/// address's (the packet's source, or the innermost relay's peer-address), else its DUID's.
pub fn client_mac(packet: &Packet) -> Result<String, NoMac> {
    let innermost = packet.innermost_relay();
    if let Some([h0, h1, address @ ..]) = innermost.and_then(|r| r.client_link_layer.as_deref()) {
        return ethernet(u16::from_be_bytes([*h0, *h1]), address);
    }
    let client_address = match innermost {
        Some(relay) => Some(relay.peer_address),
        None => packet.source,
    };
    if let Some(mac) = client_address.and_then(eui64_mac) {
        return Ok(mac);
    }
    duid_mac(duid(&packet.message).ok_or(NoMac::NoClientId)?)
}

/// The system UUID of a DUID-UUID (type 4, RFC 6355), as UEFI firmware sends it.
pub fn duid_uuid(duid: &[u8]) -> Option<SystemUuid> {
    match duid {
        [0, 4, uuid @ ..] if uuid.len() == 16 => SystemUuid::parse(&hex::encode(uuid)),
        _ => None,
    }
}

/// A CPU architecture a boot image is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// x86-64.
    X86_64,
    /// arm64 (AArch64).
    Arm64,
}

/// What kind of network boot a client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootClient {
    /// Not booting (e.g. a BMC, or an architecture without a boot image).
    None,
    /// iPXE (user class `iPXE`): gets the chain script URL.
    Ipxe,
    /// UEFI HTTP boot firmware (vendor class `HTTPClient`; architecture 0x0010 or 0x0013).
    Http(Arch),
    /// UEFI PXE firmware (architecture 0x0007, 0x0009 or 0x000b).
    Pxe(Arch),
}

/// Classifies a request by user class (15), vendor class (16) and architecture (61, RFC 5970).
pub fn boot_client(message: &Message) -> BootClient {
    let opts = message.opts();
    if let Some(DhcpOption::UserClass(class)) = opts.get(OptionCode::UserClass)
        && class
            .data
            .iter()
            .any(|item| String::from_utf8_lossy(item).contains("iPXE"))
    {
        return BootClient::Ipxe;
    }
    let http_vendor = matches!(
        opts.get(OptionCode::VendorClass),
        Some(DhcpOption::VendorClass(class))
            if class.data.iter().any(|item| item.starts_with(b"HTTPClient"))
    );
    let architectures: Vec<u16> = match opts.get(OptionCode::ClientArchType) {
        Some(DhcpOption::ClientArchType(types)) => types.iter().map(|arch| arch.0).collect(),
        _ => Vec::new(),
    };
    for arch in architectures {
        match arch {
            0x0010 => return BootClient::Http(Arch::X86_64),
            0x0013 => return BootClient::Http(Arch::Arm64),
            0x0007 | 0x0009 if !http_vendor => return BootClient::Pxe(Arch::X86_64),
            0x000b if !http_vendor => return BootClient::Pxe(Arch::Arm64),
            _ => {}
        }
    }
    BootClient::None
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use dhcproto::v6::{Architecture, MessageType, UserClass, VendorClass};
    use rstest::rstest;

    use super::*;
    use crate::dhcp::v6::packet::Relay;

    fn message(options: Vec<DhcpOption>) -> Message {
        let mut message = Message::new_with_id(MessageType::Solicit, [0, 0, 1]);
        for option in options {
            message.opts_mut().insert(option);
        }
        message
    }

    fn packet(duid: &[u8], option_79: Option<&[u8]>) -> Packet {
        from(duid, option_79, None)
    }

    fn from(duid: &[u8], option_79: Option<&[u8]>, source: Option<&str>) -> Packet {
        Packet {
            source: source.map(|source| source.parse().expect("source")),
            relay_reply: false,
            relays: option_79
                .map(|address| Relay {
                    hop_count: 0,
                    link_address: Ipv6Addr::LOCALHOST,
                    peer_address: Ipv6Addr::LOCALHOST,
                    interface_id: None,
                    client_link_layer: Some(address.to_vec()),
                })
                .into_iter()
                .collect(),
            message: message(vec![DhcpOption::ClientId(duid.to_vec())]),
        }
    }

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xdd, 0x00, 0x01];

    fn llt() -> Vec<u8> {
        [&[0, 1, 0, 1, 0x2c, 0x1b, 0x3d, 0x4e][..], &MAC].concat()
    }

    fn ll() -> Vec<u8> {
        [&[0, 3, 0, 1][..], &MAC].concat()
    }

    const UUID: [u8; 18] = [
        0, 4, 0x4c, 0x4c, 0x45, 0x44, 0, 0x42, 0x4d, 0x10, 0x80, 0x56, 0xb4, 0xc0, 0x4f, 0x4a,
        0x5a, 0x31,
    ];

    #[rstest]
    #[case::duid_llt(llt(), None, Ok("52:54:00:dd:00:01"))]
    #[case::duid_ll(ll(), None, Ok("52:54:00:dd:00:01"))]
    #[case::option_79_before_the_duid(
        UUID.to_vec(),
        Some(vec![0, 1, 2, 0, 0, 0, 0, 9]),
        Ok("02:00:00:00:00:09")
    )]
    #[case::option_79_wins_over_a_duid_ll(ll(), Some(vec![0, 1, 2, 0, 0, 0, 0, 9]), Ok("02:00:00:00:00:09"))]
    #[case::duid_uuid(UUID.to_vec(), None, Err(NoMac::DuidType(4)))]
    #[case::duid_en(vec![0, 2, 0, 0, 0x01, 0x57, 1, 2, 3], None, Err(NoMac::DuidType(2)))]
    #[case::not_ethernet(vec![0, 3, 0, 6, 1, 2, 3, 4, 5, 6], None, Err(NoMac::HardwareType(6)))]
    #[case::short_address(vec![0, 3, 0, 1, 1, 2, 3], None, Err(NoMac::AddressLength(3)))]
    #[case::short_duid(vec![0], None, Err(NoMac::DuidType(0)))]
    fn the_mac_comes_from_option_79_or_a_link_layer_duid(
        #[case] duid: Vec<u8>,
        #[case] option_79: Option<Vec<u8>>,
        #[case] expected: Result<&str, NoMac>,
    ) {
        assert_eq!(
            client_mac(&packet(&duid, option_79.as_deref())),
            expected.map(str::to_owned)
        );
    }

    #[rstest]
    #[case::eui64_link_local("fe80::5054:ff:fedd:1", Some("52:54:00:dd:00:01"))]
    #[case::universal_bit_flipped_back("fe80::ff:fe00:9", Some("02:00:00:00:00:09"))]
    #[case::privacy_link_local("fe80::1c2b:3a4f:9e8d:7c6b", None)]
    #[case::global_eui64("fd00::5054:ff:fedd:1", None)]
    fn an_eui64_link_local_address_names_its_mac(
        #[case] address: &str,
        #[case] expected: Option<&str>,
    ) {
        let address: Ipv6Addr = address.parse().expect("address");
        assert_eq!(eui64_mac(address).as_deref(), expected);
    }

    #[test]
    fn a_duid_uuid_client_on_the_link_is_known_by_its_link_local_address() {
        // OVMF's HTTP boot: DUID-UUID, sent from the EUI-64 link-local address of its NIC.
        let from_link = from(&UUID, None, Some("fe80::5054:fdff:fe00:ef74"));
        assert_eq!(client_mac(&from_link).as_deref(), Ok("52:54:fd:00:ef:74"));
        // The link-local address is that of the asking interface; a DUID may name another.
        let other_nic = from(&ll(), None, Some("fe80::5054:fdff:fe00:ef74"));
        assert_eq!(client_mac(&other_nic).as_deref(), Ok("52:54:fd:00:ef:74"));
        // A relay's option 79 wins; without one, the innermost relay's peer-address counts.
        let mut relayed = packet(&UUID, Some(&[0, 1, 2, 0, 0, 0, 0, 9]));
        relayed.source = Some("fe80::5054:fdff:fe00:ef74".parse().expect("source"));
        assert_eq!(client_mac(&relayed).as_deref(), Ok("02:00:00:00:00:09"));
        relayed.relays[0].client_link_layer = None;
        relayed.relays[0].peer_address = "fe80::5054:ff:fedd:7".parse().expect("peer");
        assert_eq!(client_mac(&relayed).as_deref(), Ok("52:54:00:dd:00:07"));
        let privacy = from(&UUID, None, Some("fe80::1c2b:3a4f:9e8d:7c6b"));
        assert_eq!(client_mac(&privacy), Err(NoMac::DuidType(4)));
    }

    #[test]
    fn a_duid_uuid_is_the_system_uuid() {
        assert_eq!(
            duid_uuid(&UUID).map(|uuid| uuid.to_string()).as_deref(),
            Some("4c4c4544-0042-4d10-8056-b4c04f4a5a31")
        );
        assert_eq!(duid_uuid(&ll()), None);
        assert_eq!(duid_uuid(&UUID[..17]), None);
    }

    fn arch(code: u16) -> DhcpOption {
        DhcpOption::ClientArchType(vec![Architecture(code)])
    }

    fn vendor(data: &[u8]) -> DhcpOption {
        DhcpOption::VendorClass(VendorClass {
            num: 343,
            data: vec![data.to_vec()],
        })
    }

    #[rstest]
    #[case::ipxe(vec![DhcpOption::UserClass(UserClass { data: vec![b"iPXE".to_vec()] }), arch(0x0007)], BootClient::Ipxe)]
    #[case::http_x86_64(vec![vendor(b"HTTPClient:Arch:00016:UNDI:003001"), arch(0x0010)], BootClient::Http(Arch::X86_64))]
    #[case::http_arm64(vec![vendor(b"HTTPClient:Arch:00019:UNDI:003001"), arch(0x0013)], BootClient::Http(Arch::Arm64))]
    #[case::pxe_x86_64(vec![vendor(b"PXEClient:Arch:00007"), arch(0x0007)], BootClient::Pxe(Arch::X86_64))]
    #[case::pxe_x86_64_bc(vec![arch(0x0009)], BootClient::Pxe(Arch::X86_64))]
    #[case::pxe_arm64(vec![arch(0x000b)], BootClient::Pxe(Arch::Arm64))]
    #[case::bios(vec![arch(0x0000)], BootClient::None)]
    #[case::bmc(vec![], BootClient::None)]
    fn boot_clients_are_told_apart_by_class_and_architecture(
        #[case] options: Vec<DhcpOption>,
        #[case] expected: BootClient,
    ) {
        assert_eq!(boot_client(&message(options)), expected);
    }
}
