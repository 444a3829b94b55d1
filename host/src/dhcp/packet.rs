//! Reading a DHCPv4 packet off the wire (pure). Anyone on the boot network can send one, so
//! a packet the decoder cannot read is dropped and counted, never a panic.

use dhcproto::v4::Message;
use dhcproto::{Decodable, Decoder};

/// Where a BOOTP message's options start: the fixed header (236 bytes) and the magic cookie.
const OPTIONS_OFFSET: usize = 240;

/// Why a packet was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedPacket {
    /// An option whose length its type does not allow.
    #[error("option {code} has length {length}, {expected}")]
    OptionLength {
        /// The option code.
        code: u8,
        /// Its stated length.
        length: usize,
        /// What the option's type requires.
        expected: &'static str,
    },
    /// Anything else the decoder refused.
    #[error("{0}")]
    Decoder(String),
}

/// The lengths dhcproto 0.15 checks only with `debug_assert!`: a debug build panics on them
/// and a release build reads past the option (fuzzing found the first, `dhcp_reply`).
fn allowed_length(code: u8, length: usize) -> Result<(), &'static str> {
    let fits = match code {
        // Rapid Commit (RFC 4039).
        80 => length == 0,
        // Client FQDN (RFC 4702): flags and two rcodes, then the name.
        81 => length >= 3,
        // Client Network Interface Identifier (RFC 4578).
        94 => length == 3,
        // Bulk Leasequery times (RFC 6926).
        152..=155 => length == 4,
        _ => true,
    };
    if fits {
        return Ok(());
    }
    Err(match code {
        80 => "expected 0",
        81 => "expected at least 3",
        94 => "expected 3",
        _ => "expected 4",
    })
}

/// Checks the lengths of the options in the packet's options field. Consecutive options with
/// one code are one option (RFC 3396 long options), as the decoder joins them.
fn check_option_lengths(packet: &[u8]) -> Result<(), MalformedPacket> {
    let check = |(code, length): (u8, usize)| {
        allowed_length(code, length).map_err(|expected| MalformedPacket::OptionLength {
            code,
            length,
            expected,
        })
    };
    let mut rest = packet.get(OPTIONS_OFFSET..).unwrap_or_default();
    let mut run: Option<(u8, usize)> = None;
    while let [code, tail @ ..] = rest {
        if matches!(code, 0 | 255) {
            run.take().map(check).transpose()?;
            if *code == 255 {
                break;
            }
            rest = tail;
            continue;
        }
        let [length, value @ ..] = tail else { break };
        let length = usize::from(*length);
        run = match run {
            Some((same, joined)) if same == *code => Some((same, joined + length)),
            other => {
                other.map(check).transpose()?;
                Some((*code, length))
            }
        };
        rest = value.get(length..).unwrap_or_default();
    }
    run.map(check).transpose()?;
    Ok(())
}

/// Decodes a DHCPv4 packet. Options the decoder would misread are refused first; a panic of
/// the decoder on anything else (options in the overloaded `sname`/`file` fields) is caught
/// and counts as a malformed packet too.
pub fn decode(packet: &[u8]) -> Result<Message, MalformedPacket> {
    check_option_lengths(packet)?;
    match std::panic::catch_unwind(|| Message::decode(&mut Decoder::new(packet))) {
        Ok(decoded) => decoded.map_err(|error| MalformedPacket::Decoder(error.to_string())),
        Err(_) => Err(MalformedPacket::Decoder(String::from(
            "the decoder failed on an option",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use dhcproto::Encodable;
    use dhcproto::v4::{DhcpOption, MessageType};

    use super::*;

    /// A DISCOVER, encoded, with `extra` (code, length, value) appended before the end.
    fn discover_with(extra: &[u8]) -> Vec<u8> {
        let mut message = Message::new_with_id(
            7,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &[0x52, 0x54, 0, 0xdd, 0, 1],
        );
        message
            .opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Discover));
        let mut bytes = message.to_vec().expect("encodes");
        assert_eq!(bytes.pop(), Some(255), "ends with the End option");
        bytes.extend_from_slice(extra);
        bytes.push(255);
        bytes
    }

    #[test]
    fn a_well_formed_packet_decodes() {
        for extra in [
            &[94u8, 3, 1, 3, 16][..],
            &[152, 4, 0, 0, 0, 1, 0, 152, 4, 0, 0, 0, 2],
        ] {
            let decoded = decode(&discover_with(extra)).expect("decodes");
            assert_eq!(decoded.opts().msg_type(), Some(MessageType::Discover));
        }
    }

    /// Regression (fuzz target `dhcp_reply`, two findings): an empty Bulk Leasequery time
    /// option, and two four-byte ones in a row, panicked the decoder in debug builds, which
    /// would end the interface's DHCP task.
    #[test]
    fn options_of_a_length_their_type_forbids_are_refused_not_panicked_on() {
        for (extra, code) in [
            (&[154u8, 0][..], 154),
            // Two in a row are one (RFC 3396): eight bytes.
            (&[152, 4, 0, 0, 0, 1, 152, 4, 0, 0, 0, 2][..], 152),
            (&[152, 2, 0, 0][..], 152),
            (&[80, 1, 0][..], 80),
            (&[81, 1, 0][..], 81),
            (&[94, 2, 1, 3][..], 94),
        ] {
            match decode(&discover_with(extra)) {
                Err(MalformedPacket::OptionLength { code: refused, .. }) => {
                    assert_eq!(refused, code);
                }
                other => panic!("{extra:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn truncated_packets_are_malformed() {
        let packet = discover_with(&[]);
        for length in [0, 10, 100, 239] {
            assert!(decode(&packet[..length]).is_err(), "{length} bytes");
        }
    }
}
