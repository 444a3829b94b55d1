//! A DHCP client for simulated BMCs and machines: DISCOVER → OFFER → REQUEST → ACK over
//! loopback, broadcast on `lo` like a client on a segment. One socket serves the whole
//! fleet; replies are matched to their client by transaction id.
//!
//! The DHCP server must use the same ports (`serverPort`/`clientPort` in ferrometal's DHCP
//! configuration), so several fleets and servers can share one machine.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use tokio::net::UdpSocket;
use tokio::task::AbortHandle;

/// What kind of client asks (decides the boot file the server names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientClass {
    /// A plain client (a BMC).
    Plain,
    /// iPXE (user class `iPXE`).
    Ipxe,
    /// UEFI HTTP boot firmware (vendor class `HTTPClient`).
    HttpBoot,
}

/// What the server granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The client's address.
    pub address: Ipv4Addr,
    /// The server that granted it.
    pub server: Ipv4Addr,
    /// The boot file (URL for iPXE and HTTP boot clients).
    pub boot_file: Option<String>,
}

/// Why no lease was had.
#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    /// The socket failed.
    #[error("DHCP socket: {0}")]
    Io(#[from] std::io::Error),
    /// A message could not be encoded.
    #[error("cannot encode a DHCP message: {0}")]
    Encode(String),
    /// No server answered in time.
    #[error("no DHCP {0} after {1} attempts")]
    NoAnswer(&'static str, u32),
    /// The server refused the request.
    #[error("the DHCP server refused the request (NAK)")]
    Refused,
    /// A MAC address that is not six hex bytes.
    #[error("{0} is not a MAC address")]
    BadMac(String),
}

/// How many leases a fleet negotiates at once.
const MAX_IN_FLIGHT: usize = 64;

type Pending = Arc<crate::transactions::Transactions<u32, Message>>;

/// A fleet's DHCP client.
#[derive(Debug)]
pub struct DhcpClient {
    socket: Arc<UdpSocket>,
    server: SocketAddr,
    pending: Pending,
    next_xid: AtomicU32,
    receiver: AbortHandle,
    /// Leases in progress at once: a fleet of thousands starting together would otherwise
    /// overflow the server's receive buffer and spend its time in retry back-off.
    in_flight: tokio::sync::Semaphore,
    /// Wait for each answer.
    pub answer_timeout: Duration,
    /// Attempts per message before giving up.
    pub attempts: u32,
}

impl Drop for DhcpClient {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

fn bind(port: u16) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_broadcast(true)?;
    socket.bind_device(Some(b"lo"))?;
    // Every reply of a fleet arrives on this one socket.
    let _ = socket.set_recv_buffer_size(4 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())?;
    UdpSocket::from_std(socket.into())
}

/// Six bytes of a `aa:bb:…` MAC.
pub fn mac_bytes(mac: &str) -> Option<[u8; 6]> {
    let mut bytes = [0u8; 6];
    let mut parts = mac.split([':', '-']);
    for byte in &mut bytes {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(bytes)
}

/// A client message of `kind` for `mac`, asking for a broadcast reply; a machine's firmware
/// also names its system UUID (option 97, type 0 and the 16 bytes, as PXE firmware does).
pub fn request(
    xid: u32,
    mac: [u8; 6],
    kind: MessageType,
    class: ClientClass,
    uuid: Option<&str>,
) -> Message {
    let mut message = Message::new_with_id(
        xid,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac,
    );
    message.set_flags(dhcproto::v4::Flags::default().set_broadcast());
    let opts = message.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::BootfileName,
    ]));
    if let Some(bytes) = uuid.and_then(|uuid| hex::decode(uuid.replace('-', "")).ok())
        && bytes.len() == 16
    {
        let mut identifier = vec![0];
        identifier.extend_from_slice(&bytes);
        opts.insert(DhcpOption::ClientMachineIdentifier(identifier));
    }
    match class {
        ClientClass::Plain => {}
        ClientClass::Ipxe => {
            opts.insert(DhcpOption::UserClass(b"iPXE".to_vec()));
        }
        ClientClass::HttpBoot => {
            opts.insert(DhcpOption::ClassIdentifier(
                b"HTTPClient:Arch:00016".to_vec(),
            ));
        }
    }
    message
}

/// The boot file a reply names (option 67, else the `file` field).
pub fn boot_file(reply: &Message) -> Option<String> {
    match reply.opts().get(OptionCode::BootfileName) {
        Some(DhcpOption::BootfileName(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
        _ => reply
            .fname_str()
            .and_then(Result::ok)
            .filter(|name| !name.is_empty())
            .map(str::to_owned),
    }
}

impl DhcpClient {
    /// Listens on `client_port` of `lo` and sends to `server_port` (broadcast).
    pub fn bind(client_port: u16, server_port: u16) -> Result<Arc<Self>, DhcpError> {
        let socket = Arc::new(bind(client_port)?);
        let pending: Pending = Arc::default();
        let receiver = tokio::spawn(receive(socket.clone(), pending.clone())).abort_handle();
        Ok(Arc::new(Self {
            socket,
            server: SocketAddr::from((Ipv4Addr::BROADCAST, server_port)),
            pending,
            next_xid: AtomicU32::new(0x5e11_0000),
            receiver,
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            answer_timeout: Duration::from_secs(2),
            attempts: 5,
        }))
    }

    /// Sends `message` and waits for the reply with its transaction id, retrying.
    async fn exchange(&self, message: &Message, what: &'static str) -> Result<Message, DhcpError> {
        let mut bytes = Vec::new();
        message
            .encode(&mut Encoder::new(&mut bytes))
            .map_err(|error| DhcpError::Encode(error.to_string()))?;
        let sent = self
            .pending
            .exchange(
                message.xid(),
                self.attempts,
                self.answer_timeout,
                || async { self.socket.send_to(&bytes, self.server).await.map(drop) },
            )
            .await?;
        if let Some(reply) = sent {
            return Ok(reply);
        }
        Err(DhcpError::NoAnswer(what, self.attempts))
    }

    /// Gets a lease for `mac` (a machine's firmware also names its system `uuid`); a
    /// refusal (NAK) starts over with a new DISCOVER, as RFC 2131 clients do, up to
    /// [`DhcpClient::attempts`] times.
    pub async fn lease(
        &self,
        mac: &str,
        class: ClientClass,
        uuid: Option<&str>,
    ) -> Result<Lease, DhcpError> {
        let mut refusals = 0;
        loop {
            match self.lease_once(mac, class, uuid).await {
                Err(DhcpError::Refused) if refusals + 1 < self.attempts => refusals += 1,
                result => return result,
            }
        }
    }

    async fn lease_once(
        &self,
        mac: &str,
        class: ClientClass,
        uuid: Option<&str>,
    ) -> Result<Lease, DhcpError> {
        let bytes = mac_bytes(mac).ok_or_else(|| DhcpError::BadMac(mac.to_owned()))?;
        // Closed never: the semaphore lives as long as the client.
        let _permit = self.in_flight.acquire().await;
        let xid = self.next_xid.fetch_add(1, Ordering::Relaxed);
        let offer = self
            .exchange(
                &request(xid, bytes, MessageType::Discover, class, uuid),
                "OFFER",
            )
            .await?;
        let server = match offer.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(server)) => *server,
            _ => offer.siaddr(),
        };
        let mut req = request(xid, bytes, MessageType::Request, class, uuid);
        req.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(offer.yiaddr()));
        req.opts_mut().insert(DhcpOption::ServerIdentifier(server));
        let ack = self.exchange(&req, "ACK").await?;
        if ack.opts().msg_type() != Some(MessageType::Ack) {
            return Err(DhcpError::Refused);
        }
        Ok(Lease {
            address: ack.yiaddr(),
            server,
            boot_file: boot_file(&ack),
        })
    }
}

async fn receive(socket: Arc<UdpSocket>, pending: Pending) {
    let mut buffer = vec![0u8; 1500];
    loop {
        let Ok((length, _)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        let Ok(reply) = Message::decode(&mut Decoder::new(&buffer[..length])) else {
            continue;
        };
        if reply.opcode() != Opcode::BootReply {
            continue;
        }
        pending.deliver(reply.xid(), reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_with_either_separator() {
        assert_eq!(
            mac_bytes("52:54:FE:00:01:0a"),
            Some([0x52, 0x54, 0xfe, 0, 1, 0x0a])
        );
        assert_eq!(
            mac_bytes("52-54-fe-00-01-0a"),
            mac_bytes("52:54:fe:00:01:0a")
        );
        assert_eq!(mac_bytes("52:54:fe:00:01"), None);
        assert_eq!(mac_bytes("52:54:fe:00:01:0a:00"), None);
    }

    #[test]
    fn requests_carry_the_client_class() {
        let ipxe = request(1, [0; 6], MessageType::Discover, ClientClass::Ipxe, None);
        assert!(matches!(
            ipxe.opts().get(OptionCode::UserClass),
            Some(DhcpOption::UserClass(class)) if class == b"iPXE"
        ));
        assert!(ipxe.flags().broadcast());
        let plain = request(1, [0; 6], MessageType::Discover, ClientClass::Plain, None);
        assert!(plain.opts().get(OptionCode::UserClass).is_none());
    }
}
