//! A DHCPv6 packet from anyone on the link or behind a relay: decoded
//! (`dhcp::v6::packet::decode`, which must refuse what it cannot read rather than panic),
//! classified and answered as the DHCPv6 server does, then answered again as the Request that
//! follows an Advertise, with one lease table across both. Every reply must encode, wrapped
//! in the request's relay layers, and decode again.

#![no_main]

use std::sync::LazyLock;

use dhcproto::v6::{DhcpOption, MessageType};
use ferrometal::dhcp::config::DhcpConfig;
use ferrometal::dhcp::v6::client::{boot_client, client_mac};
use ferrometal::dhcp::v6::leases::Leases6;
use ferrometal::dhcp::v6::packet::{Packet, decode, encode_reply};
use ferrometal::dhcp::v6::reply::{Responder, respond};
use libfuzzer_sys::fuzz_target;

/// The server's DUID-LL.
const SERVER_DUID: [u8; 10] = [0, 3, 0, 1, 2, 0, 0, 0, 0, 1];

/// Two prefixes (one on the link, one behind a relay), onboarding and every boot reply.
static CONFIG: LazyLock<DhcpConfig> = LazyLock::new(|| {
    DhcpConfig::parse(
        "onboarding: {macPrefixes: ['52:54:00:dd']}\n\
         dhcp6:\n  interfaces: [{name: veth0, address: 'fd00:1::1'}]\n  leaseFile: /nonexistent\n  \
         prefixes:\n  - {prefix: 'fd00:1::/64', rangeStart: 'fd00:1::100', rangeEnd: 'fd00:1::103', dnsServers: ['fd00:1::53']}\n  \
         - {prefix: 'fd00:2::/64', rangeStart: 'fd00:2::10', rangeEnd: 'fd00:2::20'}\n  \
         boot:\n    ipxeUrl: 'http://[fd00:1::1]:8082/ipxe'\n    \
         httpBootUrl: 'http://[fd00:1::1]:8082/httpboot/${mac}/${uuid}'\n    \
         httpBootUrlArm64: 'http://[fd00:1::1]:8082/arm64'\n    \
         pxeBootUrl: 'tftp://[fd00:1::1]/ipxe.efi'\n",
    )
    .expect("the fuzz target's DHCP configuration is valid")
});

/// Answers `packet` and checks that the reply encodes and reads back.
fn answer(leases: &mut Leases6, packet: &Packet, now: u64) {
    let config = &*CONFIG;
    let Some(dhcp6) = &config.dhcp6 else {
        return;
    };
    let _ = boot_client(&packet.message);
    let _ = client_mac(packet);
    let responder = Responder {
        config: dhcp6,
        onboarding: &config.onboarding,
        interface: &dhcp6.interfaces[0],
        duid: &SERVER_DUID,
    };
    let outcome = respond(responder, leases, packet, now);
    if let Some(reply) = outcome.reply {
        let bytes = encode_reply(&packet.relays, &reply).expect("every reply encodes");
        decode(&bytes).expect("every reply decodes");
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(mut packet) = decode(bytes) else {
        return;
    };
    let mut leases = Leases6::default();
    answer(&mut leases, &packet, 1_000);
    packet.message.set_msg_type(MessageType::Request);
    packet
        .message
        .opts_mut()
        .insert(DhcpOption::ServerId(SERVER_DUID.to_vec()));
    answer(&mut leases, &packet, 1_005);
});
