//! A DHCPv4 packet from anyone on the boot network: decoded (`dhcp::packet::decode`, which
//! must refuse what it cannot read rather than panic), classified and answered as the DHCP
//! server does, then answered again as the REQUEST that follows an OFFER, with one lease
//! table across both. Every reply must encode.

#![no_main]

use std::sync::LazyLock;

use dhcproto::Encodable;
use dhcproto::v4::{DhcpOption, Message, MessageType};
use ferrometal::dhcp::config::DhcpConfig;
use ferrometal::dhcp::leases::Leases;
use ferrometal::dhcp::packet::decode;
use ferrometal::dhcp::reply::{boot_client, respond};
use libfuzzer_sys::fuzz_target;

/// Two pools (one on the segment, one behind a relay), onboarding and every boot reply.
static CONFIG: LazyLock<DhcpConfig> = LazyLock::new(|| {
    DhcpConfig::parse(
        "interfaces: [{name: veth0, serverAddress: 10.0.0.1}]\nleaseFile: /nonexistent\n\
         subnets:\n\
         - {network: 10.0.0.0, prefix: 24, rangeStart: 10.0.0.100, rangeEnd: 10.0.0.103, router: 10.0.0.1}\n\
         - {network: 10.9.0.0, prefix: 16, rangeStart: 10.9.0.10, rangeEnd: 10.9.0.20, router: 10.9.0.1}\n\
         onboarding: {macPrefixes: ['52:54:00:dd']}\n\
         boot: {ipxeUrl: 'http://10.0.0.1:8082/ipxe', httpBootUrl: 'http://10.0.0.1:8082/boot.efi'}\n",
    )
    .expect("the fuzz target's DHCP configuration is valid")
});

/// Answers `request` and checks that the reply encodes.
fn answer(leases: &mut Leases, request: &Message, now: u64) {
    let config = &*CONFIG;
    let _ = boot_client(request);
    let outcome = respond(config, &config.interfaces[0], leases, request, now);
    if let Some(reply) = outcome.reply {
        reply.to_vec().expect("every reply encodes");
    }
}

fuzz_target!(|packet: &[u8]| {
    let Ok(mut request) = decode(packet) else {
        return;
    };
    let mut leases = Leases::default();
    answer(&mut leases, &request, 1_000);
    request
        .opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Request));
    answer(&mut leases, &request, 1_005);
});
