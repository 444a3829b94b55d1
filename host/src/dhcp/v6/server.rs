//! The DHCPv6 socket loop: one socket per configured interface (bound to it, joined to
//! All_DHCP_Relay_Agents_and_Servers, ff02::1:2), one lease table for all of them.

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::{Arc, Mutex, PoisonError};

use super::config::{Dhcp6Config, Interface6};
use super::leases::Leases6;
use super::packet::{Packet, decode, encode_reply};
use super::reply::{Responder, respond};
use crate::dhcp::bindings::{Family, SourceBindings};
use crate::dhcp::config::{Onboarding, colon_mac};
use crate::dhcp::onboard::{Announced, OnboardSender};
use crate::dhcp::server::{DhcpMetrics, StartError};
use crate::dhcp::unix_now;

/// All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1).
pub const ALL_DHCP_RELAY_AGENTS_AND_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// The receive buffer asked for on each socket (a rack soliciting at once).
const RECEIVE_BUFFER_BYTES: usize = 4 << 20;

/// A value of `/sys/class/net/<interface>/<file>`.
fn sysfs(interface: &str, file: &str) -> std::io::Result<String> {
    std::fs::read_to_string(format!("/sys/class/net/{interface}/{file}"))
        .map(|text| text.trim().to_owned())
}

fn interface_index(interface: &str) -> std::io::Result<u32> {
    sysfs(interface, "ifindex")?
        .parse()
        .map_err(std::io::Error::other)
}

/// This server's DUID: a DUID-LL (type 3, hardware type 1) of the first interface's MAC, so
/// it stays the same across restarts and clients keep talking to "the same server".
fn server_duid(interface: &str) -> std::io::Result<Vec<u8>> {
    let mac = hex::decode(sysfs(interface, "address")?.replace(':', ""))
        .map_err(std::io::Error::other)?;
    let mut duid = vec![0, 3, 0, 1];
    duid.extend_from_slice(&mac);
    Ok(duid)
}

fn socket(interface: &str, port: u16) -> std::io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let index = interface_index(interface)?;
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(true)?;
    socket.set_reuse_address(true)?;
    socket.bind_device(Some(interface.as_bytes()))?;
    let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0)).into())?;
    socket.join_multicast_v6(&ALL_DHCP_RELAY_AGENTS_AND_SERVERS, index)?;
    tokio::net::UdpSocket::from_std(socket.into())
}

/// Everything an interface's task shares with the others.
struct Shared {
    config: Dhcp6Config,
    onboarding: Onboarding,
    duid: Vec<u8>,
    leases: Mutex<Leases6>,
    metrics: DhcpMetrics,
    onboard: OnboardSender,
    bindings: SourceBindings,
}

/// Opens one socket per configured interface and serves until the task is dropped, as the
/// DHCPv4 server does: granted allow-listed clients go to `onboard` (the queue DHCPv4 feeds
/// too), granted and released leases to `bindings`, and at start every running lease of an
/// allow-listed client from the lease file goes to `onboard` again.
pub async fn serve(
    config: Dhcp6Config,
    onboarding: Onboarding,
    metrics: DhcpMetrics,
    onboard: OnboardSender,
    bindings: SourceBindings,
) -> Result<(), StartError> {
    let leases = Leases6::load(&config.lease_file).map_err(|source| StartError::Leases {
        path: config.lease_file.display().to_string(),
        source,
    })?;
    bindings.restore_all(leases.bindings());
    for (mac, ip) in leases.current(unix_now()) {
        if onboarding.wants(mac) {
            onboard.push(Announced {
                mac: colon_mac(mac),
                ip: ip.into(),
            });
        }
    }
    let socket_error = |interface: &Interface6, source| StartError::Socket {
        interface: interface.name.clone(),
        port: config.server_port,
        source,
    };
    let first = config
        .interfaces
        .first()
        .map(|interface| (interface, server_duid(&interface.name)));
    let duid = match first {
        Some((_, Ok(duid))) => duid,
        Some((interface, Err(source))) => return Err(socket_error(interface, source)),
        None => return Ok(()),
    };
    let mut sockets = Vec::new();
    for interface in &config.interfaces {
        let socket = socket(&interface.name, config.server_port)
            .map_err(|source| socket_error(interface, source))?;
        sockets.push((interface.clone(), socket));
    }
    let shared = Arc::new(Shared {
        config,
        onboarding,
        duid,
        leases: Mutex::new(leases),
        metrics,
        onboard,
        bindings,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (interface, socket) in sockets {
        tracing::info!(interface = %interface.name, address = %interface.address, "serving DHCPv6");
        tasks.spawn(serve_interface(shared.clone(), interface, socket));
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn serve_interface(
    shared: Arc<Shared>,
    interface: Interface6,
    socket: tokio::net::UdpSocket,
) {
    let mut buffer = vec![0u8; 65536];
    loop {
        let (length, peer) = match socket.recv_from(&mut buffer).await {
            Ok((length, SocketAddr::V6(peer))) => (length, peer),
            Ok(_) => continue,
            Err(error) => {
                tracing::warn!(interface = %interface.name, %error, "DHCPv6 receive failed");
                continue;
            }
        };
        let packet = match decode(&buffer[..length]) {
            Ok(packet) => Packet {
                source: Some(*peer.ip()),
                ..packet
            },
            Err(error) => {
                tracing::debug!(%peer, length, %error, "dropping a malformed DHCPv6 packet");
                shared.metrics.count6("malformed");
                continue;
            }
        };
        let outcome = {
            let mut leases = shared.leases.lock().unwrap_or_else(PoisonError::into_inner);
            let responder = Responder {
                config: &shared.config,
                onboarding: &shared.onboarding,
                interface: &interface,
                duid: &shared.duid,
            };
            let outcome = respond(responder, &mut leases, &packet, unix_now());
            if outcome.leases_changed
                && let Err(error) = leases.save()
            {
                tracing::error!(%error, path = %shared.config.lease_file.display(), "cannot save DHCPv6 leases");
            }
            outcome
        };
        shared.metrics.count6(outcome.outcome);
        for binding in outcome.bound {
            shared.bindings.record(binding);
        }
        for binding in outcome.released {
            shared.bindings.forget(&binding.mac, Family::V6);
        }
        for client in outcome.onboard {
            shared.onboard.push(client);
        }
        let Some(reply) = outcome.reply else {
            tracing::debug!(%peer, outcome = outcome.outcome, "no DHCPv6 reply");
            continue;
        };
        let bytes = match encode_reply(&packet.relays, &reply) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(%error, "cannot encode a DHCPv6 reply");
                continue;
            }
        };
        // A relay's reply goes to the relay's server port; a client's to its client port.
        let port = if packet.relays.is_empty() {
            shared.config.client_port
        } else {
            shared.config.server_port
        };
        let destination = SocketAddrV6::new(*peer.ip(), port, 0, peer.scope_id());
        if let Err(error) = socket.send_to(&bytes, destination).await {
            tracing::warn!(%error, %destination, "cannot send a DHCPv6 reply");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_duid_is_a_duid_ll_of_the_interface() {
        // Every Linux machine has `lo`, whose address is all zeros.
        assert_eq!(
            server_duid("lo").expect("lo"),
            [0, 3, 0, 1, 0, 0, 0, 0, 0, 0]
        );
        assert!(server_duid("no-such-interface").is_err());
        assert_eq!(colon_mac("525400dd0001"), "52:54:00:dd:00:01");
    }
}
