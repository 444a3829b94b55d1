//! The DHCP socket loop and the Endpoint writer.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, PoisonError};

use dhcproto::v4::MessageType;
use dhcproto::{Encodable, Encoder};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family as MetricFamily;
use prometheus_client::registry::Registry;
use serde_json::json;

use super::bindings::{Family, SourceBindings};
use super::config::{DhcpConfig, Interface, colon_mac, mac_digits};
use super::leases::Leases;
use super::onboard::{Announced, OnboardQueue, OnboardSender};
use super::packet::decode;
use super::reply::{Onboard, respond};
use super::unix_now;
use crate::api::Endpoint;

/// Field manager of the Endpoints the DHCP server writes.
pub const MANAGER: &str = "ferrometal-dhcp";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PacketLabels {
    outcome: &'static str,
}

/// Packets by outcome (`offer`, `ack`, `nak`, `malformed`, …), DHCPv4 and DHCPv6 apart.
#[derive(Debug, Clone, Default)]
pub struct DhcpMetrics {
    packets: MetricFamily<PacketLabels, Counter>,
    packets6: MetricFamily<PacketLabels, Counter>,
}

impl DhcpMetrics {
    /// Registers `ferrometal_dhcp_packets_total` (DHCPv4) and `ferrometal_dhcp6_packets_total`
    /// (DHCPv6: a metric of its own, so the DHCPv4 series keep their names and labels).
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("ferrometal");
        registry.register(
            "dhcp_packets",
            "DHCP packets by outcome",
            self.packets.clone(),
        );
        registry.register(
            "dhcp6_packets",
            "DHCPv6 packets by outcome",
            self.packets6.clone(),
        );
    }

    pub(crate) fn count(&self, outcome: &'static str) {
        self.packets.get_or_create(&PacketLabels { outcome }).inc();
    }

    pub(crate) fn count6(&self, outcome: &'static str) {
        self.packets6.get_or_create(&PacketLabels { outcome }).inc();
    }
}

/// Why the DHCP server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The socket could not be opened or bound.
    #[error("cannot listen for DHCP on {interface} port {port}: {source}")]
    Socket {
        /// The interface.
        interface: String,
        /// The UDP port.
        port: u16,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The lease file could not be read.
    #[error("cannot read the lease file {path}: {source}")]
    Leases {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The receive buffer asked for on each DHCP socket.
const RECEIVE_BUFFER_BYTES: usize = 4 << 20;

fn socket(interface: &str, port: u16) -> std::io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_broadcast(true)?;
    socket.bind_device(Some(interface.as_bytes()))?;
    // A rack powered on at once sends a burst of DISCOVERs; the default receive buffer
    // (about 200 KiB) holds only ~100 of them. The kernel caps this at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())?;
    tokio::net::UdpSocket::from_std(socket.into())
}

/// Opens one socket per configured interface and serves until the task is dropped;
/// acknowledged allow-listed clients go to `onboard`, and every acknowledged or released
/// lease to `bindings` (for the boot server's source binding). The lease table is shared by
/// all interfaces.
///
/// At start, every running lease of an allow-listed client from the lease file goes to
/// `onboard` too: a lease is saved and acknowledged before its Endpoint is written, so an
/// operator that stopped in between (a crash, a kill) would otherwise leave that BMC
/// without an Endpoint until it asks again, half its lease later.
pub async fn serve(
    config: DhcpConfig,
    metrics: DhcpMetrics,
    onboard: OnboardSender,
    bindings: SourceBindings,
) -> Result<(), StartError> {
    let leases = Leases::load(&config.lease_file).map_err(|source| StartError::Leases {
        path: config.lease_file.display().to_string(),
        source,
    })?;
    bindings.restore(&leases);
    for (mac, ip) in leases.current(unix_now()) {
        if config.onboarding.wants(mac) {
            onboard.push(Onboard {
                mac: colon_mac(mac),
                ip,
            });
        }
    }
    let leases = Arc::new(Mutex::new(leases));
    // Every socket first, so a bad interface fails the start rather than half of it.
    let mut sockets = Vec::new();
    for interface in &config.interfaces {
        let socket =
            socket(&interface.name, config.server_port).map_err(|source| StartError::Socket {
                interface: interface.name.clone(),
                port: config.server_port,
                source,
            })?;
        sockets.push((interface.clone(), socket));
    }
    let config = Arc::new(config);
    let mut tasks = tokio::task::JoinSet::new();
    for (interface, socket) in sockets {
        tracing::info!(interface = %interface.name, address = %interface.server_address, "serving DHCP");
        tasks.spawn(serve_interface(
            config.clone(),
            interface,
            socket,
            leases.clone(),
            metrics.clone(),
            onboard.clone(),
            bindings.clone(),
        ));
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn serve_interface(
    config: Arc<DhcpConfig>,
    interface: Interface,
    socket: tokio::net::UdpSocket,
    leases: Arc<Mutex<Leases>>,
    metrics: DhcpMetrics,
    onboard: OnboardSender,
    bindings: SourceBindings,
) {
    let mut buffer = vec![0u8; 1500];
    loop {
        let (length, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(error) => {
                tracing::warn!(interface = %interface.name, %error, "DHCP receive failed");
                continue;
            }
        };
        let request = match decode(&buffer[..length]) {
            Ok(request) => request,
            Err(error) => {
                tracing::debug!(%peer, length, %error, "dropping a malformed DHCP packet");
                metrics.count("malformed");
                continue;
            }
        };
        let now = unix_now();
        let outcome = {
            let mut leases = leases.lock().unwrap_or_else(PoisonError::into_inner);
            let outcome = respond(&config, &interface, &mut leases, &request, now);
            if outcome.leases_changed
                && let Err(error) = leases.save()
            {
                tracing::error!(%error, path = %config.lease_file.display(), "cannot save leases");
            }
            outcome
        };
        metrics.count(outcome.outcome);
        if let Some(binding) = outcome.bound {
            bindings.record(binding);
        }
        if let Some(mac) = &outcome.released {
            bindings.forget(mac, Family::V4);
        }
        if let Some(client) = outcome.onboard {
            onboard.push(client);
        }
        let Some(reply) = outcome.reply else {
            tracing::debug!(%peer, outcome = outcome.outcome, "no reply");
            continue;
        };
        let mut bytes = Vec::new();
        if let Err(error) = reply.encode(&mut Encoder::new(&mut bytes)) {
            tracing::warn!(%error, "cannot encode a DHCP reply");
            continue;
        }
        // RFC 2131 §4.1: relay → giaddr:67; renewing client → ciaddr:68; else broadcast
        // (with the configured ports in place of 67 and 68).
        let destination = if !reply.giaddr().is_unspecified() {
            SocketAddrV4::new(reply.giaddr(), config.server_port)
        } else if !request.ciaddr().is_unspecified()
            && reply.opts().msg_type() != Some(MessageType::Nak)
        {
            SocketAddrV4::new(request.ciaddr(), config.client_port)
        } else {
            SocketAddrV4::new(Ipv4Addr::BROADCAST, config.client_port)
        };
        if let Err(error) = socket.send_to(&bytes, destination).await {
            tracing::warn!(%error, %destination, "cannot send a DHCP reply");
        }
    }
}

/// Endpoint writes in flight at once: each is an API round trip, and a rack of BMCs
/// onboarding together would otherwise wait for them one by one.
const ENDPOINT_WRITERS: usize = 16;

/// How long a failed Endpoint write waits before it is tried again.
const ENDPOINT_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// Creates or updates the Endpoint of each onboarded client (named `dhcp-<mac digits>`),
/// skipping clients whose address did not change since the last write or that an Endpoint
/// already has (read once at start, so the leases queued again at a restart cost one list,
/// not a write each), and DHCPv6 addresses of BMCs whose Endpoint holds an IPv4 address (a
/// dual-stack BMC keeps its IPv4 Endpoint instead of flipping at every renewal). Writes run concurrently; a failed one goes back to the queue after
/// [`ENDPOINT_RETRY`] (until the DHCP server is gone). Ends once the DHCP server is gone and
/// the queue is empty.
pub async fn write_endpoints(client: Client, queue: Arc<OnboardQueue>) {
    let endpoints: Api<Endpoint> = Api::all(client);
    let existing = match endpoints.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .iter()
            .filter_map(|endpoint| {
                let ip = endpoint.spec.ip.parse().ok()?;
                let mac = colon_mac(&mac_digits(&endpoint.spec.mac_address));
                (endpoint.name_any() == format!("dhcp-{}", mac_digits(&mac))).then_some((mac, ip))
            })
            .collect(),
        Err(error) => {
            // Then every queued client is written, which is harmless (the writes are applies).
            tracing::warn!(%error, "cannot list the Endpoints; writing every onboarded client's");
            HashMap::new()
        }
    };
    let written: Arc<Mutex<HashMap<String, IpAddr>>> = Arc::new(Mutex::new(existing));
    let slots = Arc::new(tokio::sync::Semaphore::new(ENDPOINT_WRITERS));
    let mut writes = tokio::task::JoinSet::new();
    while let Some(batch) = queue.next_batch().await {
        for Announced { mac, ip } in batch {
            while writes.try_join_next().is_some() {}
            let current = written
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&mac)
                .copied();
            if !needs_write(current, ip) {
                continue;
            }
            // The semaphore is never closed.
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let (endpoints, written, queue) = (endpoints.clone(), written.clone(), queue.clone());
            writes.spawn(async move {
                let name = format!("dhcp-{}", mac_digits(&mac));
                let endpoint = json!({
                    "apiVersion": "metal.ironcore.dev/v1alpha1",
                    "kind": "Endpoint",
                    "metadata": { "name": name },
                    "spec": { "macAddress": mac, "ip": ip.to_string() },
                });
                let result = endpoints
                    .patch(
                        &name,
                        &PatchParams::apply(MANAGER).force(),
                        &Patch::Apply(&endpoint),
                    )
                    .await;
                drop(slot);
                match result {
                    Ok(_) => {
                        tracing::info!(%mac, %ip, endpoint = %name, "BMC onboarded from DHCP");
                        written
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(mac, ip);
                    }
                    Err(error) if queue.is_closed() => {
                        tracing::warn!(%mac, %error, "cannot write the Endpoint; stopping, so it is written at the client's next request");
                    }
                    Err(error) => {
                        tracing::warn!(%mac, %error, "cannot write the Endpoint; trying again");
                        tokio::time::sleep(ENDPOINT_RETRY).await;
                        queue.push(Announced { mac, ip });
                    }
                }
            });
        }
    }
    while writes.join_next().await.is_some() {}
}

/// Whether an Endpoint holding `current` (if any) is to be written with `announced`: when
/// the address changed, except that an IPv4 address is not replaced by an IPv6 one.
fn needs_write(current: Option<IpAddr>, announced: IpAddr) -> bool {
    match current {
        None => true,
        Some(current) if current == announced => false,
        Some(current) => !(current.is_ipv4() && announced.is_ipv6()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dual_stack_bmc_keeps_its_ipv4_endpoint() {
        let v4: IpAddr = "10.0.0.5".parse().expect("v4");
        let v6: IpAddr = "fd00::5".parse().expect("v6");
        assert!(needs_write(None, v6));
        assert!(!needs_write(Some(v6), v6));
        assert!(needs_write(Some(v6), v4), "IPv4 replaces IPv6");
        assert!(!needs_write(Some(v4), v6), "IPv6 does not replace IPv4");
        assert!(needs_write(Some(v4), "10.0.0.6".parse().expect("v4")));
        assert!(needs_write(Some(v6), "fd00::6".parse().expect("v6")));
    }

    #[test]
    fn a_mac_is_written_back_with_colons() {
        assert_eq!(colon_mac("5254fe00000a"), "52:54:fe:00:00:0a");
    }
}
