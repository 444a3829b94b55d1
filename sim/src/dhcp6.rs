//! A DHCPv6 client for simulated BMCs and machines on an IPv6 link (the IPv6 lab's
//! namespace, see [`crate::lab::ipv6`]): Solicit with Rapid Commit → Reply (or, when the
//! server does not commit at once, Advertise → Request → Reply), multicast to
//! All_DHCP_Relay_Agents_and_Servers (`ff02::1:2`) on the link as a client without a relay
//! does. One socket serves the whole fleet; replies are matched to their client by
//! transaction id.
//!
//! A BMC is known by a DUID-LL of its MAC (from which the server onboards it); a machine's
//! firmware, like iPXE and UEFI firmware, by a DUID-UUID of its system UUID (by which the
//! boot server's source binding finds its lease). Each asks for one address (IA_NA). A
//! machine's firmware says it is iPXE (user class) and gets the boot server's chain script
//! URL in option 59 (Boot File URL). dhcproto 0.15 writes the user and vendor class options with
//! wrong lengths, so they go out as raw bytes.

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dhcproto::v6::{
    DhcpOption, IAAddr, IANA, Message, MessageType, ORO, OptionCode, UnknownOption,
};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use tokio::net::UdpSocket;
use tokio::task::AbortHandle;

use crate::dhcp::{ClientClass, mac_bytes};

/// All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1).
const SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// How many leases a fleet negotiates at once (as for DHCPv4).
const MAX_IN_FLIGHT: usize = 64;

/// The IAID of every client's one IA_NA (each client has one interface).
const IAID: u32 = 1;

/// What the server granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease6 {
    /// The client's address.
    pub address: Ipv6Addr,
    /// The boot file URL (option 59), for iPXE and HTTP boot clients.
    pub boot_file: Option<String>,
}

/// Why no lease was had.
#[derive(Debug, thiserror::Error)]
pub enum Dhcp6Error {
    /// The socket failed.
    #[error("DHCPv6 socket on {interface}: {source}")]
    Io {
        /// The interface the socket is bound to.
        interface: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A message could not be encoded.
    #[error("cannot encode a DHCPv6 message: {0}")]
    Encode(String),
    /// No server answered in time.
    #[error("no DHCPv6 {0} after {1} attempts")]
    NoAnswer(&'static str, u32),
    /// The server answered without an address (e.g. status NoAddrsAvail).
    #[error("the DHCPv6 server granted no address ({0})")]
    NoAddress(String),
    /// A MAC address that is not six hex bytes.
    #[error("{0} is not a MAC address")]
    BadMac(String),
}

type Pending = Arc<crate::transactions::Transactions<[u8; 3], Message>>;

/// A fleet's DHCPv6 client.
#[derive(Debug)]
pub struct Dhcp6Client {
    socket: Arc<UdpSocket>,
    interface: String,
    server: SocketAddr,
    pending: Pending,
    next_xid: AtomicU32,
    receiver: AbortHandle,
    in_flight: tokio::sync::Semaphore,
    /// Wait for each answer.
    pub answer_timeout: Duration,
    /// Attempts per message before giving up.
    pub attempts: u32,
}

impl Drop for Dhcp6Client {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

fn bind(interface: &str, port: u16) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(true)?;
    socket.set_reuse_address(true)?;
    // Bound to the link: multicast to ff02::1:2 leaves through it without a scope id.
    socket.bind_device(Some(interface.as_bytes()))?;
    let _ = socket.set_recv_buffer_size(4 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0)).into())?;
    UdpSocket::from_std(socket.into())
}

/// A DUID-LL (type 3, hardware type 1: Ethernet) of `mac`.
pub fn duid_ll(mac: [u8; 6]) -> Vec<u8> {
    [&[0, 3, 0, 1][..], &mac].concat()
}

/// A DUID-UUID (type 4, RFC 6355) of a system UUID (`4c4c4544-…`), as iPXE and UEFI
/// firmware send it; `None` if `uuid` is not 16 hex bytes.
pub fn duid_uuid(uuid: &str) -> Option<Vec<u8>> {
    let bytes = hex::decode(uuid.replace('-', "")).ok()?;
    (bytes.len() == 16).then(|| [&[0, 4][..], &bytes].concat())
}

/// A raw option (dhcproto 0.15 writes the class options with wrong lengths).
fn raw(code: OptionCode, data: Vec<u8>) -> DhcpOption {
    DhcpOption::Unknown(UnknownOption::new(code, data))
}

/// A client message of `kind` from the client with `duid`, with one IA_NA (naming
/// `address` when given), the options of its `class`, and Rapid Commit on a Solicit.
pub fn message(
    xid: [u8; 3],
    kind: MessageType,
    duid: &[u8],
    class: ClientClass,
    address: Option<Ipv6Addr>,
) -> Message {
    let mut message = Message::new_with_id(kind, xid);
    let opts = message.opts_mut();
    opts.insert(DhcpOption::ClientId(duid.to_vec()));
    opts.insert(DhcpOption::ElapsedTime(0));
    let mut ia = IANA {
        id: IAID,
        t1: 0,
        t2: 0,
        opts: Default::default(),
    };
    if let Some(addr) = address {
        ia.opts.insert(DhcpOption::IAAddr(IAAddr {
            addr,
            preferred_life: 0,
            valid_life: 0,
            opts: Default::default(),
        }));
    }
    opts.insert(DhcpOption::IANA(ia));
    if kind == MessageType::Solicit {
        opts.insert(DhcpOption::RapidCommit);
    }
    match class {
        ClientClass::Plain => {}
        ClientClass::Ipxe => {
            opts.insert(DhcpOption::ORO(ORO {
                opts: vec![OptionCode::OptBootfileUrl],
            }));
            // One user class item: its length, then `iPXE`.
            opts.insert(raw(OptionCode::UserClass, b"\x00\x04iPXE".to_vec()));
        }
        ClientClass::HttpBoot => {
            opts.insert(DhcpOption::ORO(ORO {
                opts: vec![OptionCode::OptBootfileUrl],
            }));
            // Enterprise 343 (as EDK2 sends it), one item; architecture 0x0010 (x86-64 HTTP).
            let item = b"HTTPClient:Arch:00016";
            let mut class = 343u32.to_be_bytes().to_vec();
            class.extend_from_slice(&(item.len() as u16).to_be_bytes());
            class.extend_from_slice(item);
            opts.insert(raw(OptionCode::VendorClass, class));
            opts.insert(raw(
                OptionCode::ClientArchType,
                0x0010u16.to_be_bytes().to_vec(),
            ));
        }
    }
    message
}

/// The address of the reply's IA_NA with a non-zero valid lifetime, or why there is none.
pub fn granted(reply: &Message) -> Result<Ipv6Addr, String> {
    let Some(DhcpOption::IANA(ia)) = reply.opts().get(OptionCode::IANA) else {
        return Err(status(reply.opts().get(OptionCode::StatusCode)));
    };
    ia.opts
        .get_all(OptionCode::IAAddr)
        .unwrap_or_default()
        .iter()
        .find_map(|option| match option {
            DhcpOption::IAAddr(address) if address.valid_life > 0 => Some(address.addr),
            _ => None,
        })
        .ok_or_else(|| status(ia.opts.get(OptionCode::StatusCode)))
}

fn status(option: Option<&DhcpOption>) -> String {
    match option {
        Some(DhcpOption::StatusCode(code)) => format!("{:?}: {}", code.status, code.msg),
        _ => String::from("no IA_NA address and no status"),
    }
}

/// The Boot File URL (option 59) of a reply.
pub fn boot_file_url(reply: &Message) -> Option<String> {
    match reply.opts().get(OptionCode::OptBootfileUrl) {
        Some(DhcpOption::Unknown(option)) => {
            Some(String::from_utf8_lossy(option.data()).into_owned())
        }
        _ => None,
    }
}

fn server_id(reply: &Message) -> Option<Vec<u8>> {
    match reply.opts().get(OptionCode::ServerId) {
        Some(DhcpOption::ServerId(id)) => Some(id.clone()),
        _ => None,
    }
}

impl Dhcp6Client {
    /// Listens on `client_port` of `interface` (of the calling thread's network namespace)
    /// and multicasts to `server_port`.
    pub fn bind(
        interface: &str,
        client_port: u16,
        server_port: u16,
    ) -> Result<Arc<Self>, Dhcp6Error> {
        let socket = Arc::new(
            bind(interface, client_port).map_err(|source| Dhcp6Error::Io {
                interface: interface.to_owned(),
                source,
            })?,
        );
        let pending: Pending = Arc::default();
        let receiver = tokio::spawn(receive(socket.clone(), pending.clone())).abort_handle();
        Ok(Arc::new(Self {
            socket,
            interface: interface.to_owned(),
            server: SocketAddr::from(SocketAddrV6::new(SERVERS, server_port, 0, 0)),
            pending,
            next_xid: AtomicU32::new(0x6e_0000),
            receiver,
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            answer_timeout: Duration::from_secs(2),
            attempts: 5,
        }))
    }

    fn xid(&self) -> [u8; 3] {
        let [_, a, b, c] = self.next_xid.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        [a, b, c]
    }

    /// Sends `message` and waits for the answer with its transaction id, retrying.
    async fn exchange(&self, message: &Message, what: &'static str) -> Result<Message, Dhcp6Error> {
        let mut bytes = Vec::new();
        message
            .encode(&mut Encoder::new(&mut bytes))
            .map_err(|error| Dhcp6Error::Encode(error.to_string()))?;
        let sent = self
            .pending
            .exchange(
                message.xid(),
                self.attempts,
                self.answer_timeout,
                || async {
                    self.socket
                        .send_to(&bytes, self.server)
                        .await
                        .map(drop)
                        .map_err(|source| Dhcp6Error::Io {
                            interface: self.interface.clone(),
                            source,
                        })
                },
            )
            .await?;
        if let Some(reply) = sent {
            return Ok(reply);
        }
        Err(Dhcp6Error::NoAnswer(what, self.attempts))
    }

    /// Gets an address for the client with `mac` (known by a DUID-UUID of its system `uuid`
    /// when given, else by a DUID-LL of `mac`): Solicit with Rapid Commit, and a Request when
    /// the server advertises instead of committing.
    pub async fn lease(
        &self,
        mac: &str,
        class: ClientClass,
        uuid: Option<&str>,
    ) -> Result<Lease6, Dhcp6Error> {
        let duid = match uuid.and_then(duid_uuid) {
            Some(duid) => duid,
            None => duid_ll(mac_bytes(mac).ok_or_else(|| Dhcp6Error::BadMac(mac.to_owned()))?),
        };
        // Closed never: the semaphore lives as long as the client.
        let _permit = self.in_flight.acquire().await;
        let solicit = message(self.xid(), MessageType::Solicit, &duid, class, None);
        let mut reply = self.exchange(&solicit, "Advertise or Reply").await?;
        if reply.msg_type() == MessageType::Advertise {
            let offered = granted(&reply).map_err(Dhcp6Error::NoAddress)?;
            let mut request = message(
                self.xid(),
                MessageType::Request,
                &duid,
                class,
                Some(offered),
            );
            if let Some(id) = server_id(&reply) {
                request.opts_mut().insert(DhcpOption::ServerId(id));
            }
            reply = self.exchange(&request, "Reply").await?;
        }
        Ok(Lease6 {
            address: granted(&reply).map_err(Dhcp6Error::NoAddress)?,
            boot_file: boot_file_url(&reply),
        })
    }
}

async fn receive(socket: Arc<UdpSocket>, pending: Pending) {
    let mut buffer = vec![0u8; 65536];
    loop {
        let Ok((length, _)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        let Ok(reply) = Message::decode(&mut Decoder::new(&buffer[..length])) else {
            continue;
        };
        if !matches!(
            reply.msg_type(),
            MessageType::Advertise | MessageType::Reply
        ) {
            continue;
        }
        pending.deliver(reply.xid(), reply);
    }
}

#[cfg(test)]
mod tests {
    use dhcproto::v6::{Status, StatusCode};

    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0xfe, 0, 0, 7];

    fn round_trip(message: &Message) -> Message {
        let bytes = message.to_vec().expect("encodes");
        Message::decode(&mut Decoder::new(&bytes)).expect("decodes")
    }

    #[test]
    fn an_ipxe_solicit_carries_a_duid_ll_rapid_commit_an_ia_na_and_the_user_class() {
        let solicit = round_trip(&message(
            [1, 2, 3],
            MessageType::Solicit,
            &duid_ll(MAC),
            ClientClass::Ipxe,
            None,
        ));
        let opts = solicit.opts();
        assert_eq!(solicit.xid(), [1, 2, 3]);
        assert!(matches!(
            opts.get(OptionCode::ClientId),
            Some(DhcpOption::ClientId(duid)) if duid == &[0, 3, 0, 1, 0x52, 0x54, 0xfe, 0, 0, 7]
        ));
        assert!(opts.get(OptionCode::RapidCommit).is_some());
        assert!(matches!(opts.get(OptionCode::IANA), Some(DhcpOption::IANA(ia)) if ia.id == IAID));
        assert!(matches!(
            opts.get(OptionCode::UserClass),
            Some(DhcpOption::UserClass(class)) if class.data == [b"iPXE".to_vec()]
        ));
        let plain = round_trip(&message(
            [1, 2, 3],
            MessageType::Request,
            &duid_ll(MAC),
            ClientClass::Plain,
            Some("fd00::1:5".parse().expect("address")),
        ));
        assert!(plain.opts().get(OptionCode::UserClass).is_none());
        assert!(plain.opts().get(OptionCode::RapidCommit).is_none());
    }

    #[test]
    fn a_machine_is_known_by_a_duid_uuid_of_its_system_uuid() {
        assert_eq!(
            duid_uuid("4c4c4544-0042-4d10-8056-b4c04f4a5a31"),
            Some(vec![
                0, 4, 0x4c, 0x4c, 0x45, 0x44, 0, 0x42, 0x4d, 0x10, 0x80, 0x56, 0xb4, 0xc0, 0x4f,
                0x4a, 0x5a, 0x31
            ])
        );
        assert_eq!(duid_uuid("4c4c4544-0042"), None);
        assert_eq!(duid_uuid("not a uuid"), None);
    }

    fn reply(ia_options: Vec<DhcpOption>) -> Message {
        let mut reply = Message::new_with_id(MessageType::Reply, [1, 2, 3]);
        let mut ia = IANA {
            id: IAID,
            t1: 1800,
            t2: 2880,
            opts: Default::default(),
        };
        for option in ia_options {
            ia.opts.insert(option);
        }
        reply.opts_mut().insert(DhcpOption::IANA(ia));
        reply.opts_mut().insert(raw(
            OptionCode::OptBootfileUrl,
            b"http://[fd00::1]:8082/ipxe".to_vec(),
        ));
        round_trip(&reply)
    }

    #[test]
    fn a_reply_grants_its_live_address_and_names_the_boot_file() {
        let address = |addr: &str, valid_life| {
            DhcpOption::IAAddr(IAAddr {
                addr: addr.parse().expect("address"),
                preferred_life: valid_life,
                valid_life,
                opts: Default::default(),
            })
        };
        let answer = reply(vec![address("fd00::1:9", 0), address("fd00::1:5", 3600)]);
        assert_eq!(granted(&answer), Ok("fd00::1:5".parse().expect("address")));
        assert_eq!(
            boot_file_url(&answer).as_deref(),
            Some("http://[fd00::1]:8082/ipxe")
        );
        let refused = reply(vec![DhcpOption::StatusCode(StatusCode {
            status: Status::NoAddrsAvail,
            msg: String::from("pool exhausted"),
        })]);
        let error = granted(&refused).expect_err("no address");
        assert!(
            error.contains("NoAddrsAvail") && error.contains("pool exhausted"),
            "{error}"
        );
    }
}
