//! Reading a DHCPv6 packet off the wire and writing the answer (pure). Anyone on the link
//! (or behind a relay) can send one, so a packet that cannot be read whole is refused and
//! counted, never a panic.
//!
//! The relay layers (Relay-Forward, Relay-Reply: RFC 8415 §9) are read and written here:
//! dhcproto 0.15 decodes the Relay Message option as a relay message even when it holds a
//! client's message. The client's message itself is decoded by dhcproto, after its options
//! were checked: dhcproto stops silently at the first option it cannot read (so a truncated
//! packet would pass as a shorter one) and subtracts from option lengths it has not checked
//! (a panic in a debug build).

use std::net::Ipv6Addr;

use dhcproto::v6::{DhcpOption, Message, MessageType, OptionCode, UnknownOption};
use dhcproto::{Decodable, Decoder, Encodable};

/// Relay-Forward's message type.
const RELAY_FORW: u8 = 12;
/// Relay-Reply's message type.
const RELAY_REPL: u8 = 13;
/// The relay header: type, hop count, link-address, peer-address.
const RELAY_HEADER: usize = 34;
/// How many relays deep a message may be (RFC 8415's HOP_COUNT_LIMIT is 8; some room).
pub const MAX_RELAYS: usize = 32;
/// How deep options may nest (IA_NA → IA Address → Status Code is 3).
const MAX_OPTION_DEPTH: usize = 4;

/// Why a packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedPacket {
    /// Shorter than its fixed header.
    #[error("{length} bytes is shorter than a DHCPv6 header")]
    Truncated {
        /// The length of the (innermost) message.
        length: usize,
    },
    /// An option runs past the end of its message or enclosing option.
    #[error("option {code} claims {length} bytes, only {available} follow")]
    OptionOverrun {
        /// The option code.
        code: u16,
        /// Its stated length.
        length: usize,
        /// What is left.
        available: usize,
    },
    /// An option whose length its type does not allow.
    #[error("option {code} has length {length}, {expected}")]
    OptionLength {
        /// The option code.
        code: u16,
        /// Its stated length.
        length: usize,
        /// What the option's type requires.
        expected: &'static str,
    },
    /// A relay message without exactly one Relay Message option.
    #[error("a relay message carries {count} Relay Message options, not one")]
    RelayMessage {
        /// How many it carries.
        count: usize,
    },
    /// More relay layers than [`MAX_RELAYS`], or options nested deeper than a client needs.
    #[error("nested too deeply")]
    TooDeep,
    /// A Relay Message option inside a client's message.
    #[error("a client message carries a Relay Message option")]
    RelayInClientMessage,
    /// Anything else the decoder refused, or options it skipped.
    #[error("{0}")]
    Decoder(String),
}

/// One relay layer, as the relay agent wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    /// Hop count (copied into the Relay-Reply).
    pub hop_count: u8,
    /// An address of the link the client is on (`::` if the relay leaves it to Interface-Id).
    pub link_address: Ipv6Addr,
    /// The address of the client or relay the message came from.
    pub peer_address: Ipv6Addr,
    /// Interface-Id (option 18), echoed in the Relay-Reply as RFC 8415 §19.3 requires.
    pub interface_id: Option<Vec<u8>>,
    /// Client Link-Layer Address (option 79, RFC 6939): hardware type, then the address.
    pub client_link_layer: Option<Vec<u8>>,
}

/// A decoded packet: a client's (or server's) message inside zero or more relay layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Whether the relay layers are Relay-Reply (as this server sends) rather than
    /// Relay-Forward (as relays send); meaningless without relays.
    pub relay_reply: bool,
    /// Relay layers, outermost (the relay that sent the packet to us) first; empty for a
    /// client on a served link.
    pub relays: Vec<Relay>,
    /// The client's message.
    pub message: Message,
    /// The address the packet came from (a client's link-local address when it is on a
    /// served link), as the socket saw it; `None` where unknown (decoded from bytes alone).
    pub source: Option<Ipv6Addr>,
}

impl Packet {
    /// The relay nearest the client, if relayed.
    pub fn innermost_relay(&self) -> Option<&Relay> {
        self.relays.last()
    }
}

/// The options of `bytes` as (code, value), checked to lie within `bytes`.
fn options(mut bytes: &[u8]) -> Result<Vec<(u16, &[u8])>, MalformedPacket> {
    let mut found = Vec::new();
    while !bytes.is_empty() {
        let [c0, c1, l0, l1, rest @ ..] = bytes else {
            return Err(MalformedPacket::OptionOverrun {
                code: u16::from(bytes[0]) << 8,
                length: 4,
                available: bytes.len(),
            });
        };
        let code = u16::from_be_bytes([*c0, *c1]);
        let length = usize::from(u16::from_be_bytes([*l0, *l1]));
        let Some(value) = rest.get(..length) else {
            return Err(MalformedPacket::OptionOverrun {
                code,
                length,
                available: rest.len(),
            });
        };
        found.push((code, value));
        bytes = &rest[length..];
    }
    Ok(found)
}

/// What length an option of `code` may have: `(minimum, exact)`; and how many bytes precede
/// the options it encapsulates, if it does.
fn shape(code: u16) -> (Option<usize>, Option<usize>, Option<usize>) {
    match code {
        // Client and Server Identifier: a DUID has a type.
        1 | 2 => (Some(2), None, None),
        // IA_NA and IA_PD: IAID, T1, T2, options.
        3 | 25 => (Some(12), None, Some(12)),
        // IA_TA: IAID, options.
        4 => (Some(4), None, Some(4)),
        // IA Address: address, lifetimes, options.
        5 => (Some(24), None, Some(24)),
        // Preference, Reconfigure Message.
        7 | 19 => (None, Some(1), None),
        // Elapsed Time.
        8 => (None, Some(2), None),
        // Authentication.
        11 => (Some(11), None, None),
        // Server Unicast.
        12 => (None, Some(16), None),
        // Status Code.
        13 => (Some(2), None, None),
        // Rapid Commit, Reconfigure Accept.
        14 | 20 => (None, Some(0), None),
        // Vendor Class; Vendor-specific Information (enterprise number, options).
        16 => (Some(4), None, None),
        17 => (Some(4), None, Some(4)),
        // IA Prefix: lifetimes, prefix length, prefix, options.
        26 => (Some(25), None, Some(25)),
        // Information Refresh Time.
        32 => (None, Some(4), None),
        _ => (None, None, None),
    }
}

/// Checks every option of a client's message (recursively into the ones that hold options).
fn check_options(bytes: &[u8], depth: usize) -> Result<usize, MalformedPacket> {
    if depth > MAX_OPTION_DEPTH {
        return Err(MalformedPacket::TooDeep);
    }
    let found = options(bytes)?;
    for (code, value) in &found {
        let (code, length) = (*code, value.len());
        let refuse = |expected| MalformedPacket::OptionLength {
            code,
            length,
            expected,
        };
        match code {
            9 => return Err(MalformedPacket::RelayInClientMessage),
            // DNS servers: whole addresses. Option Request, Client Architecture: u16s.
            23 if length % 16 != 0 => return Err(refuse("expected a multiple of 16")),
            6 | 61 if length % 2 != 0 => return Err(refuse("expected an even length")),
            _ => {}
        }
        let (minimum, exact, nested) = shape(code);
        if let Some(exact) = exact
            && length != exact
        {
            return Err(refuse(match exact {
                0 => "expected 0",
                1 => "expected 1",
                2 => "expected 2",
                4 => "expected 4",
                _ => "expected 16",
            }));
        }
        if let Some(minimum) = minimum
            && length < minimum
        {
            return Err(refuse("too short for its fixed fields"));
        }
        if let Some(skip) = nested {
            check_options(&value[skip..], depth + 1)?;
        }
    }
    Ok(found.len())
}

/// Decodes a client's message: options checked first, then dhcproto (a panic of it is caught
/// and refused too), then refused if dhcproto skipped any option.
fn decode_message(bytes: &[u8]) -> Result<Message, MalformedPacket> {
    if bytes.len() < 4 {
        return Err(MalformedPacket::Truncated {
            length: bytes.len(),
        });
    }
    let count = check_options(&bytes[4..], 0)?;
    let message = match std::panic::catch_unwind(|| Message::decode(&mut Decoder::new(bytes))) {
        Ok(decoded) => decoded.map_err(|error| MalformedPacket::Decoder(error.to_string()))?,
        Err(_) => {
            return Err(MalformedPacket::Decoder(String::from(
                "the decoder failed on an option",
            )));
        }
    };
    let decoded = message.opts().iter().count();
    if decoded != count {
        return Err(MalformedPacket::Decoder(format!(
            "{} of {count} options could not be read",
            count - decoded.min(count)
        )));
    }
    Ok(message)
}

/// Decodes a DHCPv6 packet as a server receives it (or a Relay-Reply, for tests).
pub fn decode(bytes: &[u8]) -> Result<Packet, MalformedPacket> {
    let mut relays = Vec::new();
    let mut bytes = bytes;
    let mut relay_reply = false;
    while let Some(&kind @ (RELAY_FORW | RELAY_REPL)) = bytes.first() {
        if relays.len() == MAX_RELAYS {
            return Err(MalformedPacket::TooDeep);
        }
        if bytes.len() < RELAY_HEADER {
            return Err(MalformedPacket::Truncated {
                length: bytes.len(),
            });
        }
        relay_reply = kind == RELAY_REPL;
        let address = |at: usize| {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&bytes[at..at + 16]);
            Ipv6Addr::from(octets)
        };
        let found = options(&bytes[RELAY_HEADER..])?;
        let first = |wanted: u16| {
            found
                .iter()
                .find(|(code, _)| *code == wanted)
                .map(|(_, value)| value.to_vec())
        };
        let inner: Vec<&[u8]> = found
            .iter()
            .filter(|(code, _)| *code == 9)
            .map(|(_, value)| *value)
            .collect();
        let [inner] = inner[..] else {
            return Err(MalformedPacket::RelayMessage { count: inner.len() });
        };
        relays.push(Relay {
            hop_count: bytes[1],
            link_address: address(2),
            peer_address: address(18),
            interface_id: first(18),
            client_link_layer: first(79),
        });
        bytes = inner;
    }
    Ok(Packet {
        relay_reply,
        relays,
        message: decode_message(bytes)?,
        source: None,
    })
}

/// Why a reply could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeFailed {
    /// dhcproto refused the message.
    #[error("cannot encode the message: {0}")]
    Message(#[from] dhcproto::error::EncodeError),
    /// A relay layer would exceed an option's 64 KiB.
    #[error("the reply is too long for a Relay Message option")]
    TooLong,
}

/// Encodes `message` wrapped in a Relay-Reply for each of `relays` (outermost first), each
/// with the hop count, addresses and Interface-Id of the Relay-Forward it answers.
pub fn encode_reply(relays: &[Relay], message: &Message) -> Result<Vec<u8>, EncodeFailed> {
    let mut bytes = message.to_vec()?;
    for relay in relays.iter().rev() {
        let length = u16::try_from(bytes.len()).map_err(|_| EncodeFailed::TooLong)?;
        let mut layer = Vec::with_capacity(RELAY_HEADER + bytes.len() + 32);
        layer.push(RELAY_REPL);
        layer.push(relay.hop_count);
        layer.extend_from_slice(&relay.link_address.octets());
        layer.extend_from_slice(&relay.peer_address.octets());
        if let Some(id) = &relay.interface_id {
            layer.extend(DhcpOption::InterfaceId(id.clone()).to_vec()?);
        }
        layer.extend_from_slice(&u16::from(OptionCode::RelayMsg).to_be_bytes());
        layer.extend_from_slice(&length.to_be_bytes());
        layer.extend_from_slice(&bytes);
        bytes = layer;
    }
    Ok(bytes)
}

/// Encodes a Relay-Forward around `inner` (what a relay agent sends; for tests and fuzz
/// seeds), with Interface-Id and Client Link-Layer Address when given.
pub fn encode_relay_forward(relay: &Relay, inner: &[u8]) -> Result<Vec<u8>, EncodeFailed> {
    let mut layer = vec![RELAY_FORW, relay.hop_count];
    layer.extend_from_slice(&relay.link_address.octets());
    layer.extend_from_slice(&relay.peer_address.octets());
    let mut options = Vec::new();
    if let Some(id) = &relay.interface_id {
        options.push(DhcpOption::InterfaceId(id.clone()));
    }
    if let Some(address) = &relay.client_link_layer {
        options.push(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::ClientLinklayerAddr,
            address.clone(),
        )));
    }
    options.push(DhcpOption::Unknown(UnknownOption::new(
        OptionCode::RelayMsg,
        inner.to_vec(),
    )));
    if inner.len() > usize::from(u16::MAX) {
        return Err(EncodeFailed::TooLong);
    }
    for option in options {
        layer.extend(option.to_vec()?);
    }
    Ok(layer)
}

/// A client message type a server answers.
pub fn is_client_message(kind: MessageType) -> bool {
    matches!(
        kind,
        MessageType::Solicit
            | MessageType::Request
            | MessageType::Confirm
            | MessageType::Renew
            | MessageType::Rebind
            | MessageType::Release
            | MessageType::Decline
            | MessageType::InformationRequest
    )
}

#[cfg(test)]
mod tests {
    use dhcproto::v6::{IAAddr, IANA};

    use super::*;

    fn solicit() -> Message {
        let mut message = Message::new_with_id(MessageType::Solicit, [1, 2, 3]);
        let opts = message.opts_mut();
        opts.insert(DhcpOption::ClientId(vec![
            0, 3, 0, 1, 0x52, 0x54, 0, 0xdd, 0, 1,
        ]));
        opts.insert(DhcpOption::ElapsedTime(0));
        opts.insert(DhcpOption::IANA(IANA {
            id: 7,
            t1: 0,
            t2: 0,
            opts: [DhcpOption::IAAddr(IAAddr {
                addr: "fd00::5".parse().expect("address"),
                preferred_life: 0,
                valid_life: 0,
                opts: Default::default(),
            })]
            .into_iter()
            .collect(),
        }));
        message
    }

    fn relay(link: &str, peer: &str, id: Option<&[u8]>) -> Relay {
        Relay {
            hop_count: 0,
            link_address: link.parse().expect("link"),
            peer_address: peer.parse().expect("peer"),
            interface_id: id.map(<[u8]>::to_vec),
            client_link_layer: None,
        }
    }

    #[test]
    fn a_client_message_decodes_with_its_options() {
        let bytes = solicit().to_vec().expect("encodes");
        let packet = decode(&bytes).expect("decodes");
        assert!(packet.relays.is_empty());
        assert_eq!(packet.message, solicit());
    }

    #[test]
    fn nested_relays_unwrap_outermost_first_and_wrap_back_with_their_interface_ids() {
        let client = solicit().to_vec().expect("encodes");
        let mut near = relay("fd00:2::1", "fe80::5054:ff:fedd:1", Some(b"eth7"));
        near.client_link_layer = Some(vec![0, 1, 0x52, 0x54, 0, 0xdd, 0, 1]);
        let inner = encode_relay_forward(&near, &client).expect("inner relay");
        let far = Relay {
            hop_count: 1,
            ..relay("fd00:3::1", "fd00:2::1", None)
        };
        let outer = encode_relay_forward(&far, &inner).expect("outer relay");
        let packet = decode(&outer).expect("decodes");
        assert!(!packet.relay_reply);
        assert_eq!(packet.relays, [far.clone(), near.clone()]);
        assert_eq!(
            packet.innermost_relay().map(|r| r.link_address),
            Some(near.link_address)
        );
        assert_eq!(packet.message, solicit());

        let mut reply = Message::new_with_id(MessageType::Advertise, [1, 2, 3]);
        reply
            .opts_mut()
            .insert(DhcpOption::ServerId(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1]));
        let bytes = encode_reply(&packet.relays, &reply).expect("encodes");
        assert_eq!(bytes[0], RELAY_REPL);
        let back = decode(&bytes).expect("the reply decodes");
        assert!(back.relay_reply);
        assert_eq!(back.message, reply);
        assert_eq!(back.relays[0].hop_count, 1);
        assert_eq!(back.relays[1].interface_id.as_deref(), Some(&b"eth7"[..]));
        assert_eq!(back.relays[1].client_link_layer, None, "not echoed");
    }

    #[test]
    fn truncated_and_inconsistent_packets_are_refused() {
        let bytes = solicit().to_vec().expect("encodes");
        for length in [0, 3, 10, bytes.len() - 1] {
            assert!(decode(&bytes[..length]).is_err(), "{length} bytes");
        }
        let forward =
            encode_relay_forward(&relay("fd00::1", "fe80::1", None), &bytes).expect("relay");
        assert!(matches!(
            decode(&forward[..20]),
            Err(MalformedPacket::Truncated { .. })
        ));
        // A relay without its Relay Message option.
        assert_eq!(
            decode(&forward[..RELAY_HEADER]),
            Err(MalformedPacket::RelayMessage { count: 0 })
        );
    }

    #[test]
    fn relays_nested_beyond_the_limit_are_refused() {
        let mut bytes = solicit().to_vec().expect("encodes");
        for _ in 0..=MAX_RELAYS {
            bytes =
                encode_relay_forward(&relay("fd00::1", "fe80::1", None), &bytes).expect("relay");
        }
        assert_eq!(decode(&bytes), Err(MalformedPacket::TooDeep));
    }

    /// Options dhcproto would read with a length it does not check (a subtraction that
    /// overflows, a fixed-size read that desynchronises the rest) are refused first.
    #[test]
    fn options_of_a_length_their_type_forbids_are_refused_not_panicked_on() {
        for (option, code) in [
            (&[0u8, 13, 0, 1, 0][..], 13),
            (&[0, 16, 0, 2, 0, 0][..], 16),
            (&[0, 17, 0, 0][..], 17),
            (&[0, 11, 0, 3, 0, 0, 0][..], 11),
            (&[0, 8, 0, 1, 0][..], 8),
            (&[0, 14, 0, 1, 0][..], 14),
            (&[0, 3, 0, 4, 0, 0, 0, 7][..], 3),
            (&[0, 23, 0, 4, 0, 0, 0, 0][..], 23),
            (&[0, 61, 0, 3, 0, 16, 0][..], 61),
        ] {
            let mut bytes = vec![1, 0, 0, 1];
            bytes.extend_from_slice(option);
            match decode(&bytes) {
                Err(MalformedPacket::OptionLength { code: refused, .. }) => {
                    assert_eq!(refused, code);
                }
                other => panic!("{option:?}: {other:?}"),
            }
        }
        // An IA Address too short, inside an IA_NA.
        let bytes = [
            1, 0, 0, 1, 0, 3, 0, 16, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0,
        ];
        assert!(matches!(
            decode(&bytes),
            Err(MalformedPacket::OptionLength { code: 5, .. })
        ));
        // A Relay Message inside a client's message.
        assert_eq!(
            decode(&[1, 0, 0, 1, 0, 9, 0, 0]),
            Err(MalformedPacket::RelayInClientMessage)
        );
    }

    #[test]
    fn options_the_decoder_skips_make_the_packet_malformed() {
        // An NTP server option with an unknown suboption: dhcproto stops reading there.
        let bytes = [1, 0, 0, 1, 0, 56, 0, 4, 0, 9, 0, 0, 0, 8, 0, 2, 0, 0];
        assert!(matches!(decode(&bytes), Err(MalformedPacket::Decoder(_))));
    }
}
