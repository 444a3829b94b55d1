//! The answer to one DHCPv6 message (pure: the lease table is passed in and updated).
//!
//! Solicit → Advertise (or Reply with Rapid Commit), Request/Renew/Rebind → Reply with the
//! IA's address, Release/Decline → Reply with a status, Confirm → Success or NotOnLink,
//! Information-request → Reply with the configuration options. The pool is the prefix of the
//! link the client is on: the interface's for a client on it, the link-address of the relay
//! nearest the client otherwise.

use std::net::{IpAddr, Ipv6Addr};

use dhcproto::v6::{
    DhcpOption, IAAddr, IANA, Message, MessageType, OptionCode, Status, StatusCode, UnknownOption,
};

use super::client::{Arch, BootClient, boot_client, client_mac, duid, duid_uuid};
use super::config::{Dhcp6Config, Interface6};
use super::leases::{ClientIdentity, Leases6, lease_key};
use super::packet::{Packet, is_client_message};
use crate::boot::uuid::SystemUuid;
use crate::dhcp::bindings::Binding;
use crate::dhcp::config::{Onboarding, mac_digits};
use crate::dhcp::onboard::Announced;
use crate::dhcp::reply::boot_file_url;

/// IANA's enterprise number in the vendor class UEFI HTTP boot clients send and expect back.
const UEFI_ENTERPRISE: u32 = 343;

/// What answers a message: the server's configuration and identity on one interface.
#[derive(Debug, Clone, Copy)]
pub struct Responder<'a> {
    /// The DHCPv6 configuration.
    pub config: &'a Dhcp6Config,
    /// Which clients are BMCs (shared with DHCPv4).
    pub onboarding: &'a Onboarding,
    /// The interface the message arrived on.
    pub interface: &'a Interface6,
    /// This server's DUID (Server Identifier).
    pub duid: &'a [u8],
}

/// The reply and what happened.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The message to send (wrapped in the request's relay layers by the caller), if any.
    pub reply: Option<Message>,
    /// Whether the lease table changed (and must be saved).
    pub leases_changed: bool,
    /// Endpoints to create or update.
    pub onboard: Vec<Announced>,
    /// Leases granted, for source binding.
    pub bound: Vec<Binding>,
    /// Leases ended, for source binding.
    pub released: Vec<Binding>,
    /// For logs and metrics: `advertise`, `reply`, `rapid-commit`, `release`, `decline`,
    /// `confirm`, `not-on-link`, `information`, `exhausted`, `no-prefix`, `other-server`,
    /// `ignored`.
    pub outcome: &'static str,
}

fn outcome(outcome: &'static str) -> Outcome {
    Outcome {
        outcome,
        ..Outcome::default()
    }
}

/// The server identifier in a message, if any.
fn server_id(message: &Message) -> Option<&[u8]> {
    match message.opts().get(OptionCode::ServerId) {
        Some(DhcpOption::ServerId(id)) => Some(id),
        _ => None,
    }
}

/// The IA_NAs of a message.
fn ia_nas(message: &Message) -> impl Iterator<Item = &IANA> {
    message
        .opts()
        .get_all(OptionCode::IANA)
        .unwrap_or_default()
        .iter()
        .filter_map(|option| match option {
            DhcpOption::IANA(ia) => Some(ia),
            _ => None,
        })
}

/// The addresses a client put in an IA.
fn ia_addresses(ia: &IANA) -> impl Iterator<Item = Ipv6Addr> + '_ {
    ia.opts
        .get_all(OptionCode::IAAddr)
        .unwrap_or_default()
        .iter()
        .filter_map(|option| match option {
            DhcpOption::IAAddr(address) => Some(address.addr),
            _ => None,
        })
}

fn status(status: Status, message: &str) -> DhcpOption {
    DhcpOption::StatusCode(StatusCode {
        status,
        msg: message.to_owned(),
    })
}

fn ia_address(addr: Ipv6Addr, preferred_life: u32, valid_life: u32) -> DhcpOption {
    DhcpOption::IAAddr(IAAddr {
        addr,
        preferred_life,
        valid_life,
        opts: Default::default(),
    })
}

/// The link the client is on: the interface's address, or the link-address of the relay
/// nearest the client (or of the next one out, if that relay left it unspecified).
fn link_of(interface: &Interface6, packet: &Packet) -> Option<Ipv6Addr> {
    if packet.relays.is_empty() {
        return Some(interface.address);
    }
    packet
        .relays
        .iter()
        .rev()
        .map(|relay| relay.link_address)
        .find(|address| !address.is_unspecified() && !address.is_unicast_link_local())
}

/// An HTTP boot URL for one client (`${mac}` and `${uuid}` filled in as for DHCPv4); `None`
/// when the URL names a value the client did not give (no MAC known, no DUID-UUID).
fn boot_url(template: &str, mac: Option<&str>, uuid: Option<&SystemUuid>) -> Option<String> {
    if mac.is_none() && template.contains("${mac}") {
        return None;
    }
    boot_file_url(template, mac.unwrap_or_default(), uuid)
}

/// Adds the boot options for `client` (Boot File URL, and the vendor class UEFI HTTP boot
/// requires back).
fn add_boot_options(
    config: &Dhcp6Config,
    message: &Message,
    mac: Option<&str>,
    uuid: Option<&SystemUuid>,
    reply: &mut Message,
) {
    let boot = &config.boot;
    let (url, http) = match boot_client(message) {
        BootClient::None => return,
        BootClient::Ipxe => (&boot.ipxe_url, false),
        BootClient::Http(Arch::X86_64) => (&boot.http_boot_url, true),
        BootClient::Http(Arch::Arm64) => (&boot.http_boot_url_arm64, true),
        BootClient::Pxe(Arch::X86_64) => (&boot.pxe_boot_url, false),
        BootClient::Pxe(Arch::Arm64) => (&boot.pxe_boot_url_arm64, false),
    };
    let url = if http {
        url.as_deref().and_then(|url| boot_url(url, mac, uuid))
    } else {
        url.clone()
    };
    let Some(url) = url else {
        return;
    };
    let opts = reply.opts_mut();
    opts.insert(DhcpOption::Unknown(UnknownOption::new(
        OptionCode::OptBootfileUrl,
        url.into_bytes(),
    )));
    if http {
        // dhcproto 0.15 writes the vendor class with a wrong length: raw bytes instead.
        let mut class = UEFI_ENTERPRISE.to_be_bytes().to_vec();
        class.extend_from_slice(&10u16.to_be_bytes());
        class.extend_from_slice(b"HTTPClient");
        opts.insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::VendorClass,
            class,
        )));
    }
}

/// Answers the message of `packet` at time `now` (unix seconds).
pub fn respond(server: Responder<'_>, leases: &mut Leases6, packet: &Packet, now: u64) -> Outcome {
    let request = &packet.message;
    let kind = request.msg_type();
    if !is_client_message(kind) || (!packet.relays.is_empty() && packet.relay_reply) {
        return outcome("ignored");
    }
    let client_duid = duid(request);
    if client_duid.is_none() && kind != MessageType::InformationRequest {
        return outcome("ignored");
    }
    let ours = server_id(request).map(|id| id == server.duid);
    match kind {
        // RFC 8415 §16: these name the server; a message for another is not ours.
        MessageType::Request | MessageType::Renew | MessageType::Release | MessageType::Decline => {
            match ours {
                None => return outcome("ignored"),
                Some(false) => return outcome("other-server"),
                Some(true) => {}
            }
        }
        MessageType::Solicit | MessageType::Rebind | MessageType::Confirm if ours.is_some() => {
            return outcome("ignored");
        }
        MessageType::InformationRequest if ours == Some(false) => {
            return outcome("other-server");
        }
        _ => {}
    }
    let prefix = link_of(server.interface, packet).and_then(|link| server.config.prefix_for(link));
    let Some(prefix) = prefix else {
        return outcome("no-prefix");
    };

    let mac = client_mac(packet);
    let identity = ClientIdentity {
        mac: mac.as_ref().ok().map(|mac| mac_digits(mac)),
        uuid: client_duid.and_then(duid_uuid),
    };
    let rapid = kind == MessageType::Solicit
        && server.config.rapid_commit
        && request.opts().get(OptionCode::RapidCommit).is_some();
    let reply_type = if kind == MessageType::Solicit && !rapid {
        MessageType::Advertise
    } else {
        MessageType::Reply
    };
    let mut reply = Message::new_with_id(reply_type, request.xid());
    reply
        .opts_mut()
        .insert(DhcpOption::ServerId(server.duid.to_vec()));
    if let Some(duid) = client_duid {
        reply.opts_mut().insert(DhcpOption::ClientId(duid.to_vec()));
    }
    if rapid {
        reply.opts_mut().insert(DhcpOption::RapidCommit);
    }
    let mut result = outcome(match kind {
        MessageType::Solicit if rapid => "rapid-commit",
        MessageType::Solicit => "advertise",
        MessageType::Release => "release",
        MessageType::Decline => "decline",
        MessageType::Confirm => "confirm",
        MessageType::InformationRequest => "information",
        _ => "reply",
    });
    let duid = client_duid.unwrap_or_default();
    match kind {
        MessageType::Solicit | MessageType::Request | MessageType::Renew | MessageType::Rebind => {
            let grant = kind != MessageType::Solicit || rapid;
            let mut granted_any = false;
            let mut asked_any = false;
            for ia in ia_nas(request) {
                asked_any = true;
                let key = lease_key(duid, ia.id);
                let requested = ia_addresses(ia).next();
                let answer = leases.choose(&key, prefix, requested, now);
                if let Some(ip) = answer {
                    if grant {
                        let binding = leases.bind(&key, ip, now, prefix.valid_seconds, &identity);
                        result.bound.push(binding);
                        result.leases_changed = true;
                    } else {
                        leases.hold_offer(&key, ip, now, &identity);
                    }
                }
                granted_any |= answer.is_some();
                let mut opts = Vec::new();
                match answer {
                    Some(ip) => {
                        opts.push(ia_address(
                            ip,
                            prefix.preferred_seconds,
                            prefix.valid_seconds,
                        ));
                        // An address the client may no longer use (RFC 8415 §18.3.4).
                        if let Some(old) = requested.filter(|old| *old != ip) {
                            opts.push(ia_address(old, 0, 0));
                        }
                    }
                    None => opts.push(status(Status::NoAddrsAvail, "no address free on this link")),
                }
                reply.opts_mut().insert(DhcpOption::IANA(IANA {
                    id: ia.id,
                    t1: prefix.t1(),
                    t2: prefix.t2(),
                    opts: opts.into_iter().collect(),
                }));
            }
            if asked_any && !granted_any {
                result.outcome = "exhausted";
            }
            if grant {
                onboard(server.onboarding, packet, &mac, &mut result);
            }
        }
        MessageType::Release | MessageType::Decline => {
            for ia in ia_nas(request) {
                if let Some(binding) = leases.release(&lease_key(duid, ia.id)) {
                    result.released.push(binding);
                    result.leases_changed = true;
                }
                if kind == MessageType::Decline {
                    for address in ia_addresses(ia).filter(|a| prefix.in_range(*a)) {
                        leases.decline(address, now, prefix.valid_seconds);
                        result.leases_changed = true;
                    }
                }
            }
            reply.opts_mut().insert(status(Status::Success, ""));
            return Outcome {
                reply: Some(reply),
                ..result
            };
        }
        MessageType::Confirm => {
            let addresses: Vec<Ipv6Addr> = ia_nas(request).flat_map(ia_addresses).collect();
            if addresses.is_empty() {
                return outcome("ignored");
            }
            if addresses.iter().all(|address| prefix.contains(*address)) {
                reply.opts_mut().insert(status(Status::Success, ""));
            } else {
                result.outcome = "not-on-link";
                reply
                    .opts_mut()
                    .insert(status(Status::NotOnLink, "not on this link"));
            }
            return Outcome {
                reply: Some(reply),
                ..result
            };
        }
        _ => {}
    }
    if !prefix.dns_servers.is_empty() {
        reply
            .opts_mut()
            .insert(DhcpOption::DomainNameServers(prefix.dns_servers.clone()));
    }
    add_boot_options(
        server.config,
        request,
        mac.as_deref().ok(),
        identity.uuid.as_ref(),
        &mut reply,
    );
    Outcome {
        reply: Some(reply),
        ..result
    }
}

/// Queues the granted addresses of an allow-listed client for its Endpoint; says at debug
/// why a client without a MAC cannot be onboarded.
fn onboard(
    onboarding: &Onboarding,
    packet: &Packet,
    mac: &Result<String, super::client::NoMac>,
    result: &mut Outcome,
) {
    let addresses = result.bound.iter().map(|binding| binding.ip);
    match mac {
        Ok(mac) if onboarding.wants(mac) => {
            result.onboard.extend(addresses.map(|ip| Announced {
                mac: mac.clone(),
                ip,
            }));
        }
        Ok(_) => {}
        Err(why) => {
            let leased: Vec<IpAddr> = addresses.collect();
            tracing::debug!(
                relayed = !packet.relays.is_empty(),
                ?leased,
                %why,
                "a DHCPv6 client got an address but cannot be onboarded: no MAC"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use dhcproto::v6::{Architecture, UserClass, VendorClass};

    use super::*;
    use crate::dhcp::v6::packet::Relay;

    const SERVER_DUID: [u8; 10] = [0, 3, 0, 1, 2, 0, 0, 0, 0, 1];
    const BMC_DUID: [u8; 10] = [0, 3, 0, 1, 0x52, 0x54, 0, 0xdd, 0, 1];
    const OTHER_DUID: [u8; 14] = [0, 1, 0, 1, 0, 0, 0, 1, 2, 0, 0, 0, 0, 9];
    const UUID_DUID: [u8; 18] = [
        0, 4, 0x4c, 0x4c, 0x45, 0x44, 0, 0x42, 0x4d, 0x10, 0x80, 0x56, 0xb4, 0xc0, 0x4f, 0x4a,
        0x5a, 0x31,
    ];

    fn config() -> (Dhcp6Config, Onboarding) {
        let config: Dhcp6Config = serde_saphyr::from_str(
            "interfaces: [{name: veth0, address: 'fd00:1::1'}]\nleaseFile: /nonexistent\n\
             prefixes:\n\
             - {prefix: 'fd00:1::/64', rangeStart: 'fd00:1::100', rangeEnd: 'fd00:1::101', dnsServers: ['fd00:1::53']}\n\
             - {prefix: 'fd00:2::/64', rangeStart: 'fd00:2::100', rangeEnd: 'fd00:2::1ff'}\n\
             boot:\n  ipxeUrl: 'http://[fd00:1::1]:8082/ipxe'\n  \
             httpBootUrl: 'http://[fd00:1::1]:8082/httpboot/${uuid}'\n  \
             httpBootUrlArm64: 'http://[fd00:1::1]:8082/arm64/${mac}'\n  \
             pxeBootUrl: 'tftp://[fd00:1::1]/ipxe.efi'\n  pxeBootUrlArm64: 'tftp://[fd00:1::1]/ipxe-arm64.efi'\n",
        )
        .expect("config");
        config.check().expect("valid");
        let onboarding = Onboarding {
            mac_prefixes: vec![String::from("52:54:00:dd")],
            macs: Vec::new(),
        };
        (config, onboarding)
    }

    struct Test {
        config: Dhcp6Config,
        onboarding: Onboarding,
        leases: Leases6,
    }

    impl Test {
        fn new() -> Self {
            let (config, onboarding) = config();
            Self {
                config,
                onboarding,
                leases: Leases6::default(),
            }
        }

        fn answer(&mut self, packet: &Packet, now: u64) -> Outcome {
            let server = Responder {
                config: &self.config,
                onboarding: &self.onboarding,
                interface: &self.config.interfaces[0],
                duid: &SERVER_DUID,
            };
            respond(server, &mut self.leases, packet, now)
        }
    }

    fn message(kind: MessageType, duid: &[u8], extra: Vec<DhcpOption>) -> Message {
        let mut message = Message::new_with_id(kind, [9, 8, 7]);
        message
            .opts_mut()
            .insert(DhcpOption::ClientId(duid.to_vec()));
        for option in extra {
            message.opts_mut().insert(option);
        }
        message
    }

    fn direct(message: Message) -> Packet {
        Packet {
            relay_reply: false,
            relays: Vec::new(),
            message,
            source: None,
        }
    }

    fn ia(id: u32, address: Option<&str>) -> DhcpOption {
        DhcpOption::IANA(IANA {
            id,
            t1: 0,
            t2: 0,
            opts: address
                .map(|a| ia_address(a.parse().expect("address"), 0, 0))
                .into_iter()
                .collect(),
        })
    }

    fn server_id() -> DhcpOption {
        DhcpOption::ServerId(SERVER_DUID.to_vec())
    }

    /// The addresses (with valid lifetime) of the reply's first IA_NA, or its status.
    fn addresses(reply: &Message) -> Result<Vec<(String, u32)>, Status> {
        let Some(DhcpOption::IANA(ia)) = reply.opts().get(OptionCode::IANA) else {
            panic!("no IA_NA in {reply:?}");
        };
        if let Some(DhcpOption::StatusCode(code)) = ia.opts.get(OptionCode::StatusCode) {
            return Err(code.status);
        }
        Ok(ia
            .opts
            .iter()
            .filter_map(|o| match o {
                DhcpOption::IAAddr(a) => Some((a.addr.to_string(), a.valid_life)),
                _ => None,
            })
            .collect())
    }

    fn boot_file(reply: &Message) -> Option<String> {
        match reply.opts().get(OptionCode::OptBootfileUrl) {
            Some(DhcpOption::Unknown(option)) => {
                Some(String::from_utf8_lossy(option.data()).into_owned())
            }
            _ => None,
        }
    }

    #[test]
    fn solicit_advertise_request_reply_onboards_an_allow_listed_bmc() {
        let mut test = Test::new();
        let advertise = test.answer(
            &direct(message(MessageType::Solicit, &BMC_DUID, vec![ia(1, None)])),
            0,
        );
        assert_eq!(advertise.outcome, "advertise");
        assert!(!advertise.leases_changed, "an Advertise grants nothing");
        let reply = advertise.reply.expect("advertise");
        assert_eq!(reply.msg_type(), MessageType::Advertise);
        assert_eq!(reply.xid(), [9, 8, 7]);
        assert_eq!(
            addresses(&reply),
            Ok(vec![(String::from("fd00:1::100"), 3600)])
        );
        assert!(matches!(
            reply.opts().get(OptionCode::DomainNameServers),
            Some(DhcpOption::DomainNameServers(servers)) if servers.len() == 1
        ));
        // Another client asking meanwhile is advertised another address.
        let other = test.answer(
            &direct(message(
                MessageType::Solicit,
                &OTHER_DUID,
                vec![ia(1, None)],
            )),
            1,
        );
        assert_eq!(
            addresses(&other.reply.expect("advertise")),
            Ok(vec![(String::from("fd00:1::101"), 3600)])
        );

        let request = message(
            MessageType::Request,
            &BMC_DUID,
            vec![ia(1, Some("fd00:1::100")), server_id()],
        );
        let granted = test.answer(&direct(request), 2);
        assert_eq!(granted.outcome, "reply");
        assert!(granted.leases_changed);
        assert_eq!(
            granted.onboard,
            [Announced {
                mac: String::from("52:54:00:dd:00:01"),
                ip: "fd00:1::100".parse().expect("ip"),
            }]
        );
        assert_eq!(granted.bound[0].mac, "525400dd0001");
        assert_eq!(granted.reply.expect("reply").msg_type(), MessageType::Reply);
    }

    #[test]
    fn a_client_keeps_its_address_across_renew_and_rebind_and_loses_it_on_release() {
        let mut test = Test::new();
        let request = |kind, extra: Vec<DhcpOption>| {
            direct(message(
                kind,
                &OTHER_DUID,
                [vec![ia(5, Some("fd00:1::101"))], extra].concat(),
            ))
        };
        let first = test.answer(&request(MessageType::Request, vec![server_id()]), 0);
        assert_eq!(
            addresses(first.reply.as_ref().expect("reply")),
            Ok(vec![(String::from("fd00:1::101"), 3600)])
        );
        assert!(first.onboard.is_empty(), "not a BMC");
        let renewed = test.answer(&request(MessageType::Renew, vec![server_id()]), 100);
        assert_eq!(renewed.bound[0].expires, 3700);
        let rebound = test.answer(&request(MessageType::Rebind, vec![]), 200);
        assert_eq!(rebound.outcome, "reply");
        assert_eq!(
            addresses(rebound.reply.as_ref().expect("reply")),
            Ok(vec![(String::from("fd00:1::101"), 3600)])
        );
        // A Renew for an address another client holds: a new address, the old one with
        // lifetime 0.
        let intruder = test.answer(
            &direct(message(
                MessageType::Renew,
                &BMC_DUID,
                vec![ia(1, Some("fd00:1::101")), server_id()],
            )),
            300,
        );
        assert_eq!(
            addresses(intruder.reply.as_ref().expect("reply")),
            Ok(vec![
                (String::from("fd00:1::100"), 3600),
                (String::from("fd00:1::101"), 0)
            ])
        );
        let released = test.answer(&request(MessageType::Release, vec![server_id()]), 400);
        assert_eq!(released.outcome, "release");
        assert_eq!(released.released.len(), 1);
        assert!(test.leases.get(&lease_key(&OTHER_DUID, 5)).is_none());
    }

    #[test]
    fn messages_for_other_servers_or_without_identifiers_are_not_answered() {
        let mut test = Test::new();
        let elsewhere = message(
            MessageType::Request,
            &BMC_DUID,
            vec![
                ia(1, None),
                DhcpOption::ServerId(vec![0, 3, 0, 1, 9, 9, 9, 9, 9, 9]),
            ],
        );
        assert_eq!(test.answer(&direct(elsewhere), 0).outcome, "other-server");
        let unnamed = message(MessageType::Request, &BMC_DUID, vec![ia(1, None)]);
        assert_eq!(test.answer(&direct(unnamed), 0).outcome, "ignored");
        let mut anonymous = Message::new_with_id(MessageType::Solicit, [1, 1, 1]);
        anonymous.opts_mut().insert(ia(1, None));
        assert_eq!(test.answer(&direct(anonymous), 0).outcome, "ignored");
        let advertise = message(MessageType::Advertise, &BMC_DUID, vec![]);
        assert_eq!(test.answer(&direct(advertise), 0).outcome, "ignored");
    }

    #[test]
    fn rapid_commit_grants_at_once_when_enabled() {
        let mut test = Test::new();
        let solicit = message(
            MessageType::Solicit,
            &BMC_DUID,
            vec![ia(1, None), DhcpOption::RapidCommit],
        );
        let outcome = test.answer(&direct(solicit.clone()), 0);
        assert_eq!(outcome.outcome, "rapid-commit");
        let reply = outcome.reply.expect("reply");
        assert_eq!(reply.msg_type(), MessageType::Reply);
        assert!(reply.opts().get(OptionCode::RapidCommit).is_some());
        assert_eq!(outcome.onboard.len(), 1);
        test.config.rapid_commit = false;
        let outcome = test.answer(&direct(solicit), 1);
        assert_eq!(outcome.outcome, "advertise");
    }

    #[test]
    fn a_full_pool_answers_no_addrs_avail() {
        let mut test = Test::new();
        for (n, duid) in [
            [0, 3, 0, 1, 2, 0, 0, 0, 0, 1],
            [0, 3, 0, 1, 2, 0, 0, 0, 0, 2],
        ]
        .iter()
        .enumerate()
        {
            let request = message(MessageType::Request, duid, vec![ia(1, None), server_id()]);
            assert_eq!(test.answer(&direct(request), n as u64).outcome, "reply");
        }
        let outcome = test.answer(
            &direct(message(MessageType::Solicit, &BMC_DUID, vec![ia(1, None)])),
            5,
        );
        assert_eq!(outcome.outcome, "exhausted");
        assert_eq!(
            addresses(&outcome.reply.expect("advertise")),
            Err(Status::NoAddrsAvail)
        );
    }

    fn relayed(message: Message, relays: Vec<Relay>) -> Packet {
        Packet {
            relay_reply: false,
            relays,
            message,
            source: None,
        }
    }

    fn relay(link: &str, option_79: Option<&[u8]>) -> Relay {
        Relay {
            hop_count: 0,
            link_address: link.parse().expect("link"),
            peer_address: "fe80::1".parse().expect("peer"),
            interface_id: Some(b"port7".to_vec()),
            client_link_layer: option_79.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn the_innermost_relays_link_chooses_the_pool_and_its_option_79_the_mac() {
        let mut test = Test::new();
        let request = message(
            MessageType::Request,
            &UUID_DUID,
            vec![ia(1, None), server_id()],
        );
        let outer = relay("fd00:1::1", None);
        let inner = relay("fd00:2::1", Some(&[0, 1, 0x52, 0x54, 0, 0xdd, 0, 7]));
        let outcome = test.answer(&relayed(request.clone(), vec![outer.clone(), inner]), 0);
        assert_eq!(
            addresses(outcome.reply.as_ref().expect("reply")),
            Ok(vec![(String::from("fd00:2::100"), 3600)])
        );
        assert_eq!(outcome.onboard[0].mac, "52:54:00:dd:00:07");
        assert_eq!(
            outcome.bound[0].uuid.as_ref().map(SystemUuid::as_str),
            Some("4c4c4544-0042-4d10-8056-b4c04f4a5a31")
        );
        // A relay that leaves its link-address unspecified: the next relay out's link.
        let blank = relay("::", None);
        let other = message(
            MessageType::Request,
            &OTHER_DUID,
            vec![ia(1, None), server_id()],
        );
        let outcome = test.answer(&relayed(other, vec![outer, blank.clone()]), 0);
        assert_eq!(
            addresses(outcome.reply.as_ref().expect("reply")),
            Ok(vec![(String::from("fd00:1::100"), 3600)])
        );
        // A relay on a link without a pool.
        let nowhere = relay("2001:db8::1", None);
        assert_eq!(
            test.answer(&relayed(request, vec![nowhere]), 0).outcome,
            "no-prefix"
        );
    }

    #[test]
    fn a_client_without_a_mac_gets_an_address_but_no_endpoint() {
        let mut test = Test::new();
        let request = message(
            MessageType::Request,
            &UUID_DUID,
            vec![ia(1, None), server_id()],
        );
        let outcome = test.answer(&direct(request), 0);
        assert_eq!(outcome.outcome, "reply");
        assert!(outcome.onboard.is_empty());
        assert_eq!(
            outcome.bound[0].mac,
            format!("duid-{}", hex::encode(UUID_DUID))
        );
    }

    #[test]
    fn uefi_firmware_on_the_link_is_bound_by_the_mac_of_its_link_local_address_and_its_uuid() {
        // OVMF's HTTP boot over IPv6: DUID-UUID from its EUI-64 link-local address. The
        // booted system's DUID-LL client then replaces that lease in source binding, so the
        // boot server finds the machine's new address through the UUID → MAC link.
        let mut test = Test::new();
        let request = message(
            MessageType::Request,
            &UUID_DUID,
            vec![ia(1, None), server_id()],
        );
        let packet = Packet {
            source: Some("fe80::5054:ff:fedd:9".parse().expect("source")),
            ..direct(request)
        };
        let outcome = test.answer(&packet, 0);
        assert_eq!(outcome.bound[0].mac, "525400dd0009");
        assert_eq!(
            outcome.bound[0].uuid.as_ref().map(SystemUuid::as_str),
            Some("4c4c4544-0042-4d10-8056-b4c04f4a5a31")
        );
        assert_eq!(outcome.onboard[0].mac, "52:54:00:dd:00:09");
    }

    fn user_class(data: &[u8]) -> DhcpOption {
        DhcpOption::UserClass(UserClass {
            data: vec![data.to_vec()],
        })
    }

    fn vendor_class(data: &[u8]) -> DhcpOption {
        DhcpOption::VendorClass(VendorClass {
            num: 343,
            data: vec![data.to_vec()],
        })
    }

    #[test]
    fn boot_clients_get_the_url_for_their_class_and_architecture() {
        let mut test = Test::new();
        let mut ask = |duid: &[u8], extra: Vec<DhcpOption>| {
            let outcome = test.answer(
                &direct(message(
                    MessageType::Solicit,
                    duid,
                    [vec![ia(1, None)], extra].concat(),
                )),
                0,
            );
            let reply = outcome.reply.expect("advertise");
            let http_class = matches!(
                reply.opts().get(OptionCode::VendorClass),
                Some(DhcpOption::Unknown(o)) if o.data() == b"\0\0\x01\x57\0\x0aHTTPClient"
            );
            (boot_file(&reply), http_class)
        };
        let arch = |code| DhcpOption::ClientArchType(vec![Architecture(code)]);
        assert_eq!(
            ask(&BMC_DUID, vec![user_class(b"iPXE"), arch(7)]),
            (Some(String::from("http://[fd00:1::1]:8082/ipxe")), false)
        );
        assert_eq!(
            ask(
                &UUID_DUID,
                vec![
                    vendor_class(b"HTTPClient:Arch:00016:UNDI:003001"),
                    arch(0x10)
                ]
            ),
            (
                Some(String::from(
                    "http://[fd00:1::1]:8082/httpboot/4c4c4544-0042-4d10-8056-b4c04f4a5a31"
                )),
                true
            ),
            "the DUID-UUID fills the UUID"
        );
        assert_eq!(
            ask(
                &BMC_DUID,
                vec![
                    vendor_class(b"HTTPClient:Arch:00016:UNDI:003001"),
                    arch(0x10)
                ]
            ),
            (None, false),
            "no UUID for a URL that needs one: no boot reply"
        );
        assert_eq!(
            ask(
                &UUID_DUID,
                vec![
                    vendor_class(b"HTTPClient:Arch:00019:UNDI:003001"),
                    arch(0x13)
                ]
            ),
            (None, false),
            "no MAC for a URL that needs one: no boot reply"
        );
        assert_eq!(
            ask(
                &BMC_DUID,
                vec![
                    vendor_class(b"HTTPClient:Arch:00019:UNDI:003001"),
                    arch(0x13)
                ]
            ),
            (
                Some(String::from(
                    "http://[fd00:1::1]:8082/arm64/52:54:00:dd:00:01"
                )),
                true
            )
        );
        assert_eq!(
            ask(
                &OTHER_DUID,
                vec![vendor_class(b"PXEClient:Arch:00007"), arch(7)]
            ),
            (Some(String::from("tftp://[fd00:1::1]/ipxe.efi")), false)
        );
        assert_eq!(
            ask(&OTHER_DUID, vec![arch(0x0b)]),
            (
                Some(String::from("tftp://[fd00:1::1]/ipxe-arm64.efi")),
                false
            )
        );
        assert_eq!(
            ask(&OTHER_DUID, vec![]),
            (None, false),
            "BMCs get no boot file"
        );
    }

    #[test]
    fn an_arm64_http_client_without_its_own_url_gets_none() {
        let mut test = Test::new();
        test.config.boot.http_boot_url_arm64 = None;
        let solicit = message(
            MessageType::Solicit,
            &BMC_DUID,
            vec![
                ia(1, None),
                vendor_class(b"HTTPClient"),
                DhcpOption::ClientArchType(vec![Architecture(0x13)]),
            ],
        );
        let reply = test.answer(&direct(solicit), 0).reply.expect("advertise");
        assert_eq!(boot_file(&reply), None);
    }

    #[test]
    fn confirm_says_whether_the_addresses_are_on_the_link() {
        let mut test = Test::new();
        let confirm = |address| {
            direct(message(
                MessageType::Confirm,
                &OTHER_DUID,
                vec![ia(1, Some(address))],
            ))
        };
        assert_eq!(test.answer(&confirm("fd00:1::777"), 0).outcome, "confirm");
        let moved = test.answer(&confirm("fd00:9::1"), 0);
        assert_eq!(moved.outcome, "not-on-link");
        assert!(matches!(
            moved
                .reply
                .expect("reply")
                .opts()
                .get(OptionCode::StatusCode),
            Some(DhcpOption::StatusCode(StatusCode {
                status: Status::NotOnLink,
                ..
            }))
        ));
    }

    #[test]
    fn a_declined_address_is_not_handed_out_again() {
        let mut test = Test::new();
        let request = message(
            MessageType::Request,
            &OTHER_DUID,
            vec![ia(1, None), server_id()],
        );
        test.answer(&direct(request), 0);
        let decline = message(
            MessageType::Decline,
            &OTHER_DUID,
            vec![ia(1, Some("fd00:1::100")), server_id()],
        );
        assert_eq!(test.answer(&direct(decline), 1).outcome, "decline");
        let next = message(MessageType::Solicit, &BMC_DUID, vec![ia(1, None)]);
        let reply = test.answer(&direct(next), 2).reply.expect("advertise");
        assert_eq!(
            addresses(&reply),
            Ok(vec![(String::from("fd00:1::101"), 3600)])
        );
    }

    #[test]
    fn an_information_request_gets_the_configuration_without_an_address() {
        let mut test = Test::new();
        let mut request = Message::new_with_id(MessageType::InformationRequest, [1, 2, 3]);
        request.opts_mut().insert(user_class(b"iPXE"));
        let outcome = test.answer(&direct(request), 0);
        assert_eq!(outcome.outcome, "information");
        let reply = outcome.reply.expect("reply");
        assert!(reply.opts().get(OptionCode::IANA).is_none());
        assert_eq!(
            boot_file(&reply).as_deref(),
            Some("http://[fd00:1::1]:8082/ipxe")
        );
    }
}
