//! The answer to one DHCP request (pure: the lease table is passed in and updated).

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};

use super::bindings::{Binding, client_uuid};
use super::config::{DhcpConfig, Interface, mac_digits};
use super::leases::Leases;
use crate::boot::uuid::SystemUuid;

/// What kind of network boot a client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootClient {
    /// Not booting (e.g. a BMC).
    None,
    /// iPXE (user class `iPXE`): gets the chain script URL.
    Ipxe,
    /// UEFI HTTP boot firmware (vendor class `HTTPClient`).
    HttpClient,
    /// Legacy BIOS PXE firmware (`PXEClient`, architecture 0).
    PxeBios,
    /// UEFI PXE firmware (`PXEClient`, architecture 6, 7, 9, …).
    PxeEfi,
}

/// Classifies a request by user class (77), vendor class (60) and architecture (93).
pub fn boot_client(request: &Message) -> BootClient {
    let opts = request.opts();
    let user_class = match opts.get(OptionCode::UserClass) {
        Some(DhcpOption::UserClass(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    };
    if user_class.contains("iPXE") {
        return BootClient::Ipxe;
    }
    let vendor = match opts.get(OptionCode::ClassIdentifier) {
        Some(DhcpOption::ClassIdentifier(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    };
    if vendor.starts_with("HTTPClient") {
        return BootClient::HttpClient;
    }
    if vendor.starts_with("PXEClient") {
        let bios = match opts.get(OptionCode::ClientSystemArchitecture) {
            Some(DhcpOption::ClientSystemArchitecture(arch)) => u16::from(*arch) == 0,
            // The architecture is also in the vendor class: PXEClient:Arch:00000:…
            _ => !vendor.contains("Arch:") || vendor.contains("Arch:00000"),
        };
        return if bios {
            BootClient::PxeBios
        } else {
            BootClient::PxeEfi
        };
    }
    BootClient::None
}

/// The client system architecture (RFC 4578) of arm64 UEFI HTTP boot firmware.
pub const ARCH_ARM64_HTTP: u16 = 0x0013;

/// The client's architecture: option 93, else the `Arch:NNNNN` of its vendor class (decimal,
/// as UEFI writes it: `HTTPClient:Arch:00019:UNDI:003000`).
pub fn client_architecture(request: &Message) -> Option<u16> {
    let opts = request.opts();
    if let Some(DhcpOption::ClientSystemArchitecture(arch)) =
        opts.get(OptionCode::ClientSystemArchitecture)
    {
        return Some(u16::from(*arch));
    }
    let Some(DhcpOption::ClassIdentifier(bytes)) = opts.get(OptionCode::ClassIdentifier) else {
        return None;
    };
    let vendor = String::from_utf8_lossy(bytes);
    let (_, rest) = vendor.split_once("Arch:")?;
    rest.get(..5)?.parse().ok()
}

/// A client to onboard as an Endpoint after its address was acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Onboard {
    /// MAC address (`aa:bb:…`).
    pub mac: String,
    /// Its address.
    pub ip: Ipv4Addr,
}

/// The reply and what happened.
#[derive(Debug)]
pub struct Outcome {
    /// The message to send, if any.
    pub reply: Option<Message>,
    /// Whether the lease table changed (and must be saved).
    pub leases_changed: bool,
    /// An Endpoint to create or update.
    pub onboard: Option<Onboard>,
    /// The lease acknowledged, for source binding.
    pub bound: Option<Binding>,
    /// The MAC (hex digits) whose lease was released.
    pub released: Option<String>,
    /// For logs and metrics: `offer`, `ack`, `nak`, `release`, `ignored`, `exhausted`, …
    pub outcome: &'static str,
}

fn colon_mac(chaddr: &[u8]) -> String {
    chaddr
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn outcome(outcome: &'static str) -> Outcome {
    Outcome {
        reply: None,
        leases_changed: false,
        onboard: None,
        bound: None,
        released: None,
        outcome,
    }
}

/// Puts the boot file in the BOOTP `file` field too (firmware reads one or the other); the
/// field holds 127 bytes, longer names go in option 67 only.
fn set_file(reply: &mut Message, file: &str) {
    if file.len() < 128 {
        reply.set_fname_str(file);
    }
}

/// A configured UEFI HTTP boot URL for one client: `${mac}` becomes its MAC address
/// (`aa:bb:…`) and `${uuid}` its SMBIOS UUID (from the request; `None` when the URL needs
/// one and the client sent none), so that each machine can be sent to its own image
/// (the boot server's `/uki/${uuid}.efi`; a MAC finds a Server only once it lists its NICs).
pub fn boot_file_url(template: &str, mac: &str, uuid: Option<&SystemUuid>) -> Option<String> {
    let url = template.replace("${mac}", mac);
    if !url.contains("${uuid}") {
        return Some(url);
    }
    Some(url.replace("${uuid}", &uuid?.to_string()))
}

/// Answers `request`, which arrived on `interface`, at time `now` (unix seconds).
pub fn respond(
    config: &DhcpConfig,
    interface: &Interface,
    leases: &mut Leases,
    request: &Message,
    now: u64,
) -> Outcome {
    if request.opcode() != Opcode::BootRequest || request.hlen() != 6 {
        return outcome("ignored");
    }
    let Some(kind) = request.opts().msg_type() else {
        return outcome("ignored");
    };
    let mac = colon_mac(request.chaddr());
    let key = mac_digits(&mac);
    let Some(subnet) = config.subnet_for(interface, request.giaddr()) else {
        return outcome("no-subnet");
    };
    let requested = match request.opts().get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
        _ => (!request.ciaddr().is_unspecified()).then(|| request.ciaddr()),
    };
    let for_us = match request.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(id)) => *id == interface.server_address,
        _ => true,
    };
    let mut reply = Message::new_with_id(
        request.xid(),
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        request.giaddr(),
        request.chaddr(),
    );
    reply.set_opcode(Opcode::BootReply);
    reply.set_flags(request.flags());
    let opts = reply.opts_mut();
    opts.insert(DhcpOption::ServerIdentifier(interface.server_address));
    let mut bound = None;
    match kind {
        MessageType::Discover => {
            let Some(ip) = leases.choose(&key, subnet, requested, now) else {
                return outcome("exhausted");
            };
            leases.hold_offer(&key, ip, now);
            opts.insert(DhcpOption::MessageType(MessageType::Offer));
            reply.set_yiaddr(ip);
        }
        MessageType::Request if !for_us => {
            // The client chose another server's offer.
            return outcome("other-server");
        }
        MessageType::Request => {
            let chosen = leases.choose(&key, subnet, requested, now);
            match (requested, chosen) {
                (Some(asked), Some(ip)) if asked == ip => {
                    bound = Some(leases.bind(
                        &key,
                        ip,
                        now,
                        subnet.lease_seconds,
                        client_uuid(request).as_ref(),
                    ));
                    opts.insert(DhcpOption::MessageType(MessageType::Ack));
                    reply.set_yiaddr(ip);
                    reply.set_ciaddr(request.ciaddr());
                }
                _ => {
                    opts.insert(DhcpOption::MessageType(MessageType::Nak));
                    return Outcome {
                        reply: Some(reply),
                        ..outcome("nak")
                    };
                }
            }
        }
        MessageType::Release => {
            let released = leases.release(&key);
            return Outcome {
                leases_changed: released,
                released: released.then(|| key.clone()),
                ..outcome("release")
            };
        }
        MessageType::Inform => {
            opts.insert(DhcpOption::MessageType(MessageType::Ack));
            reply.set_ciaddr(request.ciaddr());
        }
        _ => return outcome("ignored"),
    }
    let opts = reply.opts_mut();
    opts.insert(DhcpOption::SubnetMask(subnet.mask()));
    if kind != MessageType::Inform {
        opts.insert(DhcpOption::AddressLeaseTime(subnet.lease_seconds));
    }
    if let Some(router) = subnet.router {
        opts.insert(DhcpOption::Router(vec![router]));
    }
    if !subnet.dns_servers.is_empty() {
        opts.insert(DhcpOption::DomainNameServer(subnet.dns_servers.clone()));
    }
    let boot = &config.boot;
    match boot_client(request) {
        BootClient::Ipxe => {
            if let Some(url) = &boot.ipxe_url {
                opts.insert(DhcpOption::BootfileName(url.as_bytes().to_vec()));
                set_file(&mut reply, url);
            }
        }
        BootClient::HttpClient => {
            let uuid = client_uuid(request);
            let template = if client_architecture(request) == Some(ARCH_ARM64_HTTP) {
                &boot.http_boot_url_arm64
            } else {
                &boot.http_boot_url
            };
            if let Some(url) = template
                .as_deref()
                .and_then(|template| boot_file_url(template, &mac, uuid.as_ref()))
            {
                opts.insert(DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()));
                opts.insert(DhcpOption::BootfileName(url.as_bytes().to_vec()));
                set_file(&mut reply, &url);
            }
        }
        BootClient::PxeBios | BootClient::PxeEfi => {
            let file = if boot_client(request) == BootClient::PxeBios {
                &boot.bios_file
            } else {
                &boot.efi_file
            };
            opts.insert(DhcpOption::ClassIdentifier(b"PXEClient".to_vec()));
            opts.insert(DhcpOption::BootfileName(file.as_bytes().to_vec()));
            reply.set_siaddr(interface.server_address);
            set_file(&mut reply, file);
        }
        BootClient::None => {}
    }
    let acked = kind == MessageType::Request;
    Outcome {
        bound,
        released: None,
        onboard: (acked && config.onboarding.wants(&mac)).then(|| Onboard {
            mac,
            ip: reply.yiaddr(),
        }),
        leases_changed: acked,
        reply: Some(reply),
        outcome: match kind {
            MessageType::Discover => "offer",
            MessageType::Inform => "inform",
            _ => "ack",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DhcpConfig {
        DhcpConfig::parse(
            "interfaces: [{name: veth0, serverAddress: 10.0.0.1}]\nleaseFile: /nonexistent\n\
             subnets:\n- {network: 10.0.0.0, prefix: 24, rangeStart: 10.0.0.100, rangeEnd: 10.0.0.110, router: 10.0.0.1}\n\
             onboarding: {macPrefixes: ['52:54:00:dd']}\n\
             boot: {ipxeUrl: 'http://10.0.0.1:8082/ipxe', httpBootUrl: 'http://10.0.0.1:8082/boot.efi', httpBootUrlArm64: 'http://10.0.0.1:8082/arm64.efi'}\n",
        )
        .expect("config")
    }

    fn request(kind: MessageType, mac: [u8; 6], extra: &[DhcpOption]) -> Message {
        let mut message = Message::new_with_id(
            7,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &mac,
        );
        message.opts_mut().insert(DhcpOption::MessageType(kind));
        for option in extra {
            message.opts_mut().insert(option.clone());
        }
        message
    }

    const BMC: [u8; 6] = [0x52, 0x54, 0x00, 0xdd, 0, 1];
    const OTHER: [u8; 6] = [0x02, 0, 0, 0, 0, 9];

    #[test]
    fn discover_request_ack_onboards_an_allow_listed_bmc() {
        let config = config();
        let mut leases = Leases::default();
        let offer = respond(
            &config,
            &config.interfaces[0],
            &mut leases,
            &request(MessageType::Discover, BMC, &[]),
            0,
        );
        let offered = offer.reply.expect("offer").yiaddr();
        assert_eq!(offered, Ipv4Addr::new(10, 0, 0, 100));
        assert!(!offer.leases_changed, "an offer binds nothing");
        let ack = respond(
            &config,
            &config.interfaces[0],
            &mut leases,
            &request(
                MessageType::Request,
                BMC,
                &[
                    DhcpOption::RequestedIpAddress(offered),
                    DhcpOption::ServerIdentifier(config.interfaces[0].server_address),
                ],
            ),
            1,
        );
        assert_eq!(ack.outcome, "ack");
        let reply = ack.reply.expect("ack");
        assert_eq!(reply.opts().msg_type(), Some(MessageType::Ack));
        assert_eq!(
            ack.onboard,
            Some(Onboard {
                mac: String::from("52:54:00:dd:00:01"),
                ip: offered
            })
        );
        assert!(leases.get("525400dd0001").is_some());
    }

    #[test]
    fn other_clients_get_addresses_but_are_not_onboarded_and_taken_addresses_are_refused() {
        let config = config();
        let mut leases = Leases::default();
        leases.bind("525400dd0001", Ipv4Addr::new(10, 0, 0, 100), 0, 3600, None);
        let nak = respond(
            &config,
            &config.interfaces[0],
            &mut leases,
            &request(
                MessageType::Request,
                OTHER,
                &[DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 100))],
            ),
            1,
        );
        assert_eq!(nak.outcome, "nak");
        let ack = respond(
            &config,
            &config.interfaces[0],
            &mut leases,
            &request(
                MessageType::Request,
                OTHER,
                &[DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 101))],
            ),
            1,
        );
        assert_eq!(ack.outcome, "ack");
        assert_eq!(ack.onboard, None);
    }

    #[test]
    fn boot_clients_get_their_boot_file() {
        let config = config();
        let mut leases = Leases::default();
        let bootfile = |extra: &[DhcpOption], leases: &mut Leases| {
            let outcome = respond(
                &config,
                &config.interfaces[0],
                leases,
                &request(MessageType::Discover, OTHER, extra),
                0,
            );
            let reply = outcome.reply.expect("offer");
            match reply.opts().get(OptionCode::BootfileName) {
                Some(DhcpOption::BootfileName(bytes)) => {
                    String::from_utf8_lossy(bytes).into_owned()
                }
                _ => String::new(),
            }
        };
        assert_eq!(
            bootfile(&[DhcpOption::UserClass(b"iPXE".to_vec())], &mut leases),
            "http://10.0.0.1:8082/ipxe"
        );
        assert_eq!(
            bootfile(
                &[DhcpOption::ClassIdentifier(
                    b"HTTPClient:Arch:00016".to_vec()
                )],
                &mut leases
            ),
            "http://10.0.0.1:8082/boot.efi"
        );
        assert_eq!(
            bootfile(
                &[DhcpOption::ClassIdentifier(
                    b"HTTPClient:Arch:00019:UNDI:003000".to_vec()
                )],
                &mut leases
            ),
            "http://10.0.0.1:8082/arm64.efi",
            "arm64 firmware gets the arm64 URL (architecture in the vendor class)"
        );
        assert_eq!(
            bootfile(
                &[
                    DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()),
                    DhcpOption::ClientSystemArchitecture(dhcproto::v4::Architecture::from(0x0013)),
                ],
                &mut leases
            ),
            "http://10.0.0.1:8082/arm64.efi",
            "arm64 firmware gets the arm64 URL (option 93)"
        );
        assert_eq!(
            bootfile(
                &[DhcpOption::ClassIdentifier(
                    b"PXEClient:Arch:00000:UNDI:002001".to_vec()
                )],
                &mut leases
            ),
            "undionly.kpxe"
        );
        assert_eq!(
            bootfile(
                &[DhcpOption::ClassIdentifier(
                    b"PXEClient:Arch:00007:UNDI:003016".to_vec()
                )],
                &mut leases
            ),
            "ipxe.efi"
        );
        assert_eq!(bootfile(&[], &mut leases), "", "BMCs get no boot file");
    }

    #[test]
    fn http_boot_urls_name_each_client_by_mac_or_uuid() {
        let uuid = SystemUuid::parse("4C4C4544-0042-3510-8048-B2C04F4E3232").expect("uuid");
        let mac = "52:54:00:aa:bb:cc";
        assert_eq!(
            boot_file_url("http://10.0.0.1:8082/uki/${mac}.efi", mac, None).as_deref(),
            Some("http://10.0.0.1:8082/uki/52:54:00:aa:bb:cc.efi")
        );
        assert_eq!(
            boot_file_url("http://[fd00::1]:8082/uki/${uuid}.efi", mac, Some(&uuid)).as_deref(),
            Some("http://[fd00::1]:8082/uki/4c4c4544-0042-3510-8048-b2c04f4e3232.efi")
        );
        assert_eq!(
            boot_file_url("http://x/uki/${uuid}", mac, None),
            None,
            "a client that sent no UUID gets no URL that needs one"
        );
        assert_eq!(
            boot_file_url("http://x/boot.efi", mac, None).as_deref(),
            Some("http://x/boot.efi")
        );
    }

    #[test]
    fn replies_and_other_servers_requests_are_ignored() {
        let config = config();
        let mut leases = Leases::default();
        let mut reply = request(MessageType::Offer, OTHER, &[]);
        reply.set_opcode(Opcode::BootReply);
        assert_eq!(
            respond(&config, &config.interfaces[0], &mut leases, &reply, 0).outcome,
            "ignored"
        );
        let elsewhere = request(
            MessageType::Request,
            OTHER,
            &[DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 0, 2))],
        );
        assert_eq!(
            respond(&config, &config.interfaces[0], &mut leases, &elsewhere, 0).outcome,
            "other-server"
        );
    }
}
