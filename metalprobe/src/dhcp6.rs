//! A small DHCPv6 client (RFC 8415) for the discovery image, whose busybox has no `udhcpc6`:
//! it leases one address (IA_NA) for an interface so that the discovery system can reach an
//! IPv6 boot server. It asks with Rapid Commit (one Solicit, one Reply) and falls back to
//! Request when the server answers with an Advertise. The client identifier is a DUID-LL of
//! the interface's MAC, so the server (and its source binding) knows the machine by that MAC.
//!
//! The messages are written and read here, not with dhcproto: this runs in the initramfs,
//! where every dependency is carried in each boot's download. Configuring the address is
//! the caller's business (`ip -6 addr add`); the on-link prefix comes from router
//! advertisements, as for any DHCPv6 host.

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::time::Duration;

/// The port DHCPv6 clients listen on.
pub const CLIENT_PORT: u16 = 546;
/// The port DHCPv6 servers and relays listen on.
pub const SERVER_PORT: u16 = 547;
/// All_DHCP_Relay_Agents_and_Servers: where clients send.
pub const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

const SOLICIT: u8 = 1;
const ADVERTISE: u8 = 2;
const REQUEST: u8 = 3;
const REPLY: u8 = 7;

const OPTION_CLIENT_ID: u16 = 1;
const OPTION_SERVER_ID: u16 = 2;
const OPTION_IA_NA: u16 = 3;
const OPTION_IAADDR: u16 = 5;
const OPTION_ORO: u16 = 6;
const OPTION_ELAPSED_TIME: u16 = 8;
const OPTION_STATUS_CODE: u16 = 13;
const OPTION_RAPID_COMMIT: u16 = 14;
const OPTION_DNS_SERVERS: u16 = 23;

/// Why no lease was had.
#[derive(Debug, thiserror::Error)]
pub enum Dhcp6Error {
    /// The interface's MAC or index could not be read from `/sys/class/net`.
    #[error("cannot read {what} of interface {interface}: {detail}")]
    Interface {
        /// The interface.
        interface: String,
        /// `address` or `ifindex`.
        what: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The client socket could not be opened.
    #[error("cannot open the DHCPv6 client socket: {0}")]
    Socket(#[source] std::io::Error),
    /// A server's message is cut short or malformed.
    #[error("a malformed DHCPv6 message: {0}")]
    Malformed(&'static str),
    /// No server granted an address in time.
    #[error("no DHCPv6 server granted an address on {interface} after {attempts} attempts")]
    NoLease {
        /// The interface.
        interface: String,
        /// Solicits sent.
        attempts: u32,
    },
}

/// A DUID-LL (type 3, hardware type 1: Ethernet) of `mac`.
pub fn duid_ll(mac: [u8; 6]) -> Vec<u8> {
    [&[0, 3, 0, 1][..], &mac].concat()
}

/// `aa:bb:cc:dd:ee:ff` as bytes.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let bytes: Vec<u8> = text
        .trim()
        .split(':')
        .map(|part| u8::from_str_radix(part, 16).ok())
        .collect::<Option<_>>()?;
    bytes.try_into().ok()
}

fn option(out: &mut Vec<u8>, code: u16, data: &[u8]) {
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// An IA_NA option body: IAID, T1 and T2 zero (the server chooses), then `addresses`.
fn ia_na(iaid: u32, address: Option<Ipv6Addr>) -> Vec<u8> {
    let mut body = iaid.to_be_bytes().to_vec();
    body.extend_from_slice(&[0; 8]);
    if let Some(address) = address {
        let mut iaaddr = address.octets().to_vec();
        iaaddr.extend_from_slice(&[0; 8]);
        option(&mut body, OPTION_IAADDR, &iaaddr);
    }
    body
}

fn header(kind: u8, xid: [u8; 3], duid: &[u8], elapsed: u16) -> Vec<u8> {
    let mut message = vec![kind, xid[0], xid[1], xid[2]];
    option(&mut message, OPTION_CLIENT_ID, duid);
    option(&mut message, OPTION_ELAPSED_TIME, &elapsed.to_be_bytes());
    option(&mut message, OPTION_ORO, &OPTION_DNS_SERVERS.to_be_bytes());
    message
}

/// A Solicit for one address with Rapid Commit; `elapsed` in hundredths of a second.
pub fn solicit(xid: [u8; 3], duid: &[u8], iaid: u32, elapsed: u16) -> Vec<u8> {
    let mut message = header(SOLICIT, xid, duid, elapsed);
    option(&mut message, OPTION_RAPID_COMMIT, &[]);
    option(&mut message, OPTION_IA_NA, &ia_na(iaid, None));
    message
}

/// A Request for the address `advertised` by the server `server_id`.
pub fn request(
    xid: [u8; 3],
    duid: &[u8],
    iaid: u32,
    server_id: &[u8],
    advertised: Ipv6Addr,
) -> Vec<u8> {
    let mut message = header(REQUEST, xid, duid, 0);
    option(&mut message, OPTION_SERVER_ID, server_id);
    option(&mut message, OPTION_IA_NA, &ia_na(iaid, Some(advertised)));
    message
}

/// What a server said, as far as this client cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMessage {
    /// The message type (2 Advertise, 7 Reply, …).
    pub kind: u8,
    /// The transaction id.
    pub xid: [u8; 3],
    /// The server's DUID.
    pub server_id: Option<Vec<u8>>,
    /// The client DUID it answers.
    pub client_id: Option<Vec<u8>>,
    /// Whether it carries Rapid Commit.
    pub rapid_commit: bool,
    /// The usable addresses (valid lifetime above zero) of the IA_NA with the asked IAID,
    /// with their valid lifetimes.
    pub addresses: Vec<(Ipv6Addr, u32)>,
    /// A status code other than Success, at message or IA level (e.g. 2 NoAddrsAvail).
    pub failure: Option<u16>,
}

/// The options of `bytes` as (code, data) pairs.
fn options(mut bytes: &[u8]) -> Result<Vec<(u16, &[u8])>, Dhcp6Error> {
    let mut found = Vec::new();
    while !bytes.is_empty() {
        let [c0, c1, l0, l1, rest @ ..] = bytes else {
            return Err(Dhcp6Error::Malformed("an option header is cut short"));
        };
        let length = usize::from(u16::from_be_bytes([*l0, *l1]));
        if rest.len() < length {
            return Err(Dhcp6Error::Malformed(
                "an option is longer than the message",
            ));
        }
        found.push((u16::from_be_bytes([*c0, *c1]), &rest[..length]));
        bytes = &rest[length..];
    }
    Ok(found)
}

fn failure(status: &[u8]) -> Option<u16> {
    match status {
        [s0, s1, ..] => Some(u16::from_be_bytes([*s0, *s1])).filter(|code| *code != 0),
        _ => Some(u16::MAX),
    }
}

/// Reads a server's message, taking the addresses of the IA_NA `iaid`.
pub fn parse(bytes: &[u8], iaid: u32) -> Result<ServerMessage, Dhcp6Error> {
    let [kind, x0, x1, x2, rest @ ..] = bytes else {
        return Err(Dhcp6Error::Malformed("shorter than a DHCPv6 header"));
    };
    let mut message = ServerMessage {
        kind: *kind,
        xid: [*x0, *x1, *x2],
        server_id: None,
        client_id: None,
        rapid_commit: false,
        addresses: Vec::new(),
        failure: None,
    };
    for (code, data) in options(rest)? {
        match code {
            OPTION_SERVER_ID => message.server_id = Some(data.to_vec()),
            OPTION_CLIENT_ID => message.client_id = Some(data.to_vec()),
            OPTION_RAPID_COMMIT => message.rapid_commit = true,
            OPTION_STATUS_CODE => message.failure = message.failure.or(failure(data)),
            OPTION_IA_NA => {
                if data.len() < 12 {
                    return Err(Dhcp6Error::Malformed("an IA_NA is shorter than 12 bytes"));
                }
                if u32::from_be_bytes([data[0], data[1], data[2], data[3]]) != iaid {
                    continue;
                }
                for (code, inner) in options(&data[12..])? {
                    match code {
                        OPTION_IAADDR if inner.len() >= 24 => {
                            let octets: [u8; 16] = inner[..16].try_into().unwrap_or([0; 16]);
                            let valid =
                                u32::from_be_bytes([inner[20], inner[21], inner[22], inner[23]]);
                            if valid > 0 {
                                message.addresses.push((Ipv6Addr::from(octets), valid));
                            }
                        }
                        OPTION_IAADDR => {
                            return Err(Dhcp6Error::Malformed(
                                "an IAADDR is shorter than 24 bytes",
                            ));
                        }
                        OPTION_STATUS_CODE => {
                            message.failure = message.failure.or(failure(inner));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(message)
}

/// An address leased to this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The address.
    pub address: Ipv6Addr,
    /// Its valid lifetime in seconds.
    pub valid_seconds: u32,
}

/// What the client does next with a server's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Not for this transaction or client, or no address: keep waiting.
    Ignore,
    /// An Advertise: send this Request.
    Request(Vec<u8>),
    /// A Reply with an address: done.
    Leased(Lease),
}

/// The client's step on `message` (pure): `xid` and `duid` are this exchange's.
pub fn next(message: &ServerMessage, xid: [u8; 3], duid: &[u8], iaid: u32) -> Next {
    let ours = message.xid == xid && message.client_id.as_deref() == Some(duid);
    let Some(&(address, valid_seconds)) = message.addresses.first() else {
        return Next::Ignore;
    };
    if !ours || message.failure.is_some() {
        return Next::Ignore;
    }
    match (message.kind, &message.server_id) {
        (REPLY, Some(_)) => Next::Leased(Lease {
            address,
            valid_seconds,
        }),
        (ADVERTISE, Some(server_id)) => Next::Request(request(xid, duid, iaid, server_id, address)),
        _ => Next::Ignore,
    }
}

fn sysfs(interface: &str, what: &'static str) -> Result<String, Dhcp6Error> {
    std::fs::read_to_string(format!("/sys/class/net/{interface}/{what}"))
        .map(|text| text.trim().to_owned())
        .map_err(|error| Dhcp6Error::Interface {
            interface: interface.to_owned(),
            what,
            detail: error.to_string(),
        })
}

/// Leases an address for `interface` (which must be up): a Solicit every second, up to
/// `attempts` times, until a server grants one.
pub fn lease(interface: &str, attempts: u32) -> Result<Lease, Dhcp6Error> {
    let invalid = |detail: &str| Dhcp6Error::Interface {
        interface: interface.to_owned(),
        what: "address",
        detail: detail.to_owned(),
    };
    let mac = parse_mac(&sysfs(interface, "address")?).ok_or_else(|| invalid("not a MAC"))?;
    let index: u32 = sysfs(interface, "ifindex")?
        .parse()
        .map_err(|_| invalid("ifindex is not a number"))?;
    let duid = duid_ll(mac);
    let iaid = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]);
    let socket = UdpSocket::bind(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, CLIENT_PORT, 0, 0))
        .map_err(Dhcp6Error::Socket)?;
    socket
        .set_read_timeout(Some(Duration::from_millis(250)))
        .map_err(Dhcp6Error::Socket)?;
    let servers = SocketAddrV6::new(ALL_SERVERS, SERVER_PORT, 0, index);
    let mut buffer = [0u8; 1500];
    for attempt in 0..attempts {
        let xid = [attempt as u8, mac[4], mac[5]];
        let elapsed = u16::try_from(attempt.saturating_mul(100)).unwrap_or(u16::MAX);
        // A send may fail while the link-local address is not ready: try again.
        let _ = socket.send_to(&solicit(xid, &duid, iaid, elapsed), servers);
        for _ in 0..4 {
            let Ok((length, _)) = socket.recv_from(&mut buffer) else {
                continue;
            };
            let Ok(message) = parse(&buffer[..length], iaid) else {
                continue;
            };
            match next(&message, xid, &duid, iaid) {
                Next::Leased(lease) => return Ok(lease),
                Next::Request(request) => {
                    let _ = socket.send_to(&request, servers);
                }
                Next::Ignore => {}
            }
        }
    }
    Err(Dhcp6Error::NoLease {
        interface: interface.to_owned(),
        attempts,
    })
}

#[cfg(test)]
mod tests {
    use dhcproto::v6::{DhcpOption, IAAddr, IANA, Message, MessageType, OptionCode, StatusCode};
    use dhcproto::{Decodable, Decoder, Encodable};

    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0xfd, 0x00, 0x00, 0x07];
    const IAID: u32 = 0xfd00_0007;
    const SERVER: [u8; 10] = [0, 3, 0, 1, 2, 0, 0, 0, 0, 1];

    fn decoded(bytes: &[u8]) -> Message {
        Message::decode(&mut Decoder::new(bytes)).expect("a DHCPv6 message")
    }

    fn server_reply(kind: MessageType, xid: [u8; 3], ia_options: Vec<DhcpOption>) -> Vec<u8> {
        let mut message = Message::new_with_id(kind, xid);
        let opts = message.opts_mut();
        opts.insert(DhcpOption::ServerId(SERVER.to_vec()));
        opts.insert(DhcpOption::ClientId(duid_ll(MAC)));
        opts.insert(DhcpOption::RapidCommit);
        opts.insert(DhcpOption::IANA(IANA {
            id: IAID,
            t1: 1800,
            t2: 2880,
            opts: ia_options.into_iter().collect(),
        }));
        message.to_vec().expect("encodes")
    }

    fn address(addr: &str, valid_life: u32) -> DhcpOption {
        DhcpOption::IAAddr(IAAddr {
            addr: addr.parse().expect("address"),
            preferred_life: valid_life,
            valid_life,
            opts: Default::default(),
        })
    }

    #[test]
    fn the_solicit_is_a_dhcpv6_solicit_with_rapid_commit_a_duid_ll_and_an_ia_na() {
        let message = decoded(&solicit([1, 2, 3], &duid_ll(MAC), IAID, 100));
        assert_eq!(message.msg_type(), MessageType::Solicit);
        assert_eq!(message.xid(), [1, 2, 3]);
        assert_eq!(
            message.opts().get(OptionCode::ClientId),
            Some(&DhcpOption::ClientId(vec![
                0, 3, 0, 1, 0x52, 0x54, 0xfd, 0, 0, 7
            ]))
        );
        assert!(message.opts().get(OptionCode::RapidCommit).is_some());
        assert_eq!(
            message.opts().get(OptionCode::ElapsedTime),
            Some(&DhcpOption::ElapsedTime(100))
        );
        assert!(matches!(
            message.opts().get(OptionCode::IANA),
            Some(DhcpOption::IANA(ia)) if ia.id == IAID && ia.opts.get(OptionCode::IAAddr).is_none()
        ));
    }

    #[test]
    fn the_request_names_the_server_and_the_advertised_address() {
        let advertised: Ipv6Addr = "fd94:60::100".parse().expect("address");
        let message = decoded(&request(
            [4, 5, 6],
            &duid_ll(MAC),
            IAID,
            &SERVER,
            advertised,
        ));
        assert_eq!(message.msg_type(), MessageType::Request);
        assert_eq!(
            message.opts().get(OptionCode::ServerId),
            Some(&DhcpOption::ServerId(SERVER.to_vec()))
        );
        let Some(DhcpOption::IANA(ia)) = message.opts().get(OptionCode::IANA) else {
            panic!("no IA_NA: {message:?}");
        };
        assert!(matches!(
            ia.opts.get(OptionCode::IAAddr),
            Some(DhcpOption::IAAddr(a)) if a.addr == advertised
        ));
    }

    #[test]
    fn a_rapid_commit_reply_leases_its_address() {
        let bytes = server_reply(
            MessageType::Reply,
            [1, 2, 3],
            vec![address("fd94:60::100", 3600)],
        );
        let message = parse(&bytes, IAID).expect("parses");
        assert!(message.rapid_commit);
        assert_eq!(
            next(&message, [1, 2, 3], &duid_ll(MAC), IAID),
            Next::Leased(Lease {
                address: "fd94:60::100".parse().expect("address"),
                valid_seconds: 3600
            })
        );
    }

    #[test]
    fn an_advertise_is_answered_with_a_request_for_its_address() {
        let bytes = server_reply(
            MessageType::Advertise,
            [1, 2, 3],
            vec![address("fd94:60::101", 3600)],
        );
        let message = parse(&bytes, IAID).expect("parses");
        let expected = request(
            [1, 2, 3],
            &duid_ll(MAC),
            IAID,
            &SERVER,
            "fd94:60::101".parse().expect("address"),
        );
        assert_eq!(
            next(&message, [1, 2, 3], &duid_ll(MAC), IAID),
            Next::Request(expected)
        );
    }

    #[test]
    fn replies_for_others_without_addresses_or_with_a_failure_are_ignored() {
        let duid = duid_ll(MAC);
        let good = server_reply(
            MessageType::Reply,
            [1, 2, 3],
            vec![address("fd94:60::100", 3600)],
        );
        let message = parse(&good, IAID).expect("parses");
        assert_eq!(
            next(&message, [9, 9, 9], &duid, IAID),
            Next::Ignore,
            "another xid"
        );
        assert_eq!(
            next(&message, [1, 2, 3], &duid_ll([2, 0, 0, 0, 0, 1]), IAID),
            Next::Ignore,
            "another client"
        );
        let other_ia = parse(&good, IAID + 1).expect("parses");
        assert_eq!(
            next(&other_ia, [1, 2, 3], &duid, IAID),
            Next::Ignore,
            "another IA"
        );
        let expired = server_reply(
            MessageType::Reply,
            [1, 2, 3],
            vec![address("fd94:60::100", 0)],
        );
        let message = parse(&expired, IAID).expect("parses");
        assert_eq!(
            next(&message, [1, 2, 3], &duid, IAID),
            Next::Ignore,
            "lifetime 0"
        );
        let exhausted = server_reply(
            MessageType::Reply,
            [1, 2, 3],
            vec![DhcpOption::StatusCode(StatusCode {
                status: dhcproto::v6::Status::NoAddrsAvail,
                msg: String::from("none left"),
            })],
        );
        let message = parse(&exhausted, IAID).expect("parses");
        assert_eq!(message.failure, Some(2));
        assert_eq!(next(&message, [1, 2, 3], &duid, IAID), Next::Ignore);
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let good = server_reply(
            MessageType::Reply,
            [1, 2, 3],
            vec![address("fd94:60::100", 3600)],
        );
        for length in 0..good.len() {
            // Every prefix either parses (an option boundary) or is refused.
            let _ = parse(&good[..length], IAID);
        }
        assert!(parse(&good[..3], IAID).is_err());
        assert!(parse(&good[..good.len() - 1], IAID).is_err());
        let short_ia = [7, 1, 2, 3, 0, 3, 0, 4, 0, 0, 0, 1];
        assert!(matches!(
            parse(&short_ia, IAID),
            Err(Dhcp6Error::Malformed(_))
        ));
    }

    #[test]
    fn macs_are_read_as_sysfs_writes_them() {
        assert_eq!(parse_mac("52:54:fd:00:00:07\n"), Some(MAC));
        assert_eq!(parse_mac("52:54:fd:00:00"), None);
        assert_eq!(parse_mac("52:54:fd:00:00:zz"), None);
    }
}
