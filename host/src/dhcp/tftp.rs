//! A read-only TFTP server (RFC 1350, octet mode, 512-byte blocks) for the iPXE images PXE
//! firmware loads, e.g. Debian's `ipxe` package in `/usr/lib/ipxe`. Only plain file names in
//! the root are served, read once at start ([`TftpFiles`]): a request never touches the disk.
//! Every transfer runs on its own socket with retransmission, at most
//! [`MAX_TRANSFERS`] at once; a request beyond that is told the server is busy (firmware
//! asks again).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;

const BLOCK: usize = 512;
const RETRIES: u32 = 5;
const TIMEOUT: Duration = Duration::from_secs(1);

/// Transfers served at once (per [`TftpFiles`], shared by every interface's server).
pub const MAX_TRANSFERS: usize = 64;
/// Most bytes of files kept in memory; files beyond it are left out (with a warning).
pub const MAX_CACHED_BYTES: u64 = 64 * 1024 * 1024;

/// The files a TFTP root serves, read once, and the transfer slots.
#[derive(Debug)]
pub struct TftpFiles {
    root: PathBuf,
    files: HashMap<String, Bytes>,
    transfers: Arc<Semaphore>,
}

impl TftpFiles {
    /// Reads every regular file directly in `root` (smallest first, up to
    /// [`MAX_CACHED_BYTES`] in all).
    pub fn read(root: &Path) -> std::io::Result<Self> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(root)? {
            let entry = entry?;
            let metadata = std::fs::metadata(entry.path())?;
            if let (true, Some(name)) = (metadata.is_file(), entry.file_name().to_str()) {
                found.push((metadata.len(), name.to_owned(), entry.path()));
            }
        }
        found.sort();
        let mut files = HashMap::new();
        let mut total = 0u64;
        for (size, name, path) in found {
            if total + size > MAX_CACHED_BYTES {
                tracing::warn!(file = %path.display(), size, "TFTP root holds more than {MAX_CACHED_BYTES} bytes; not serving this file");
                continue;
            }
            total += size;
            files.insert(name, Bytes::from(std::fs::read(&path)?));
        }
        tracing::info!(root = %root.display(), files = files.len(), bytes = total, "TFTP files read");
        Ok(Self {
            root: root.to_owned(),
            files,
            transfers: Arc::new(Semaphore::new(MAX_TRANSFERS)),
        })
    }

    /// The file a request names, when it is a plain name (see [`resolve`]) of a file served.
    pub fn get(&self, name: &str) -> Option<Bytes> {
        resolve(&self.root, name)?;
        self.files.get(name.trim_start_matches('/')).cloned()
    }
}

/// A read request's file name, if the packet is a well-formed RRQ (`01 name 00 mode 00 …`).
pub fn read_request(packet: &[u8]) -> Option<String> {
    let body = packet.strip_prefix(&[0, 1])?;
    let mut fields = body.split(|b| *b == 0);
    let name = std::str::from_utf8(fields.next()?).ok()?;
    let mode = std::str::from_utf8(fields.next()?).ok()?;
    mode.eq_ignore_ascii_case("octet").then(|| name.to_owned())
}

/// The file `name` under `root`, when `name` is a plain file name (no directories, not `.`
/// or `..`).
pub fn resolve(root: &Path, name: &str) -> Option<PathBuf> {
    let name = name.trim_start_matches('/');
    let plain = !name.is_empty()
        && !name.contains('/')
        && !name.contains('\\')
        && name != "."
        && name != "..";
    plain.then(|| root.join(name))
}

fn error_packet(code: u8, message: &str) -> Vec<u8> {
    let mut packet = vec![0, 5, 0, code];
    packet.extend_from_slice(message.as_bytes());
    packet.push(0);
    packet
}

/// Serves `files` on `address:69` until the task is dropped.
pub async fn serve(address: Ipv4Addr, files: Arc<TftpFiles>) -> std::io::Result<()> {
    serve_on(SocketAddrV4::new(address, 69), files).await
}

/// Serves `files` on `address` (any port; tests use an unprivileged one).
pub async fn serve_on(address: SocketAddrV4, files: Arc<TftpFiles>) -> std::io::Result<()> {
    let socket = tokio::net::UdpSocket::bind(address).await?;
    tracing::info!(%address, root = %files.root.display(), "serving TFTP");
    let mut buffer = vec![0u8; 1500];
    loop {
        let (length, peer) = socket.recv_from(&mut buffer).await?;
        let Some(name) = read_request(&buffer[..length]) else {
            tracing::debug!(%peer, "dropping a TFTP packet that is not an octet read request");
            continue;
        };
        let Ok(slot) = files.transfers.clone().try_acquire_owned() else {
            tracing::info!(%peer, file = name, "{MAX_TRANSFERS} TFTP transfers running; answering busy");
            socket
                .send_to(&error_packet(0, "server busy; try again"), peer)
                .await?;
            continue;
        };
        let data = files.get(&name);
        tokio::spawn(async move {
            if let Err(error) = transfer(*address.ip(), peer, data, &name).await {
                tracing::warn!(%peer, file = name, %error, "TFTP transfer failed");
            }
            drop(slot);
        });
    }
}

async fn transfer(
    address: Ipv4Addr,
    peer: SocketAddr,
    data: Option<Bytes>,
    name: &str,
) -> std::io::Result<()> {
    let socket = tokio::net::UdpSocket::bind(SocketAddrV4::new(address, 0)).await?;
    let Some(data) = data else {
        tracing::info!(%peer, file = name, "TFTP read of a file that is not served; answering not found");
        socket
            .send_to(&error_packet(1, "file not found"), peer)
            .await?;
        return Ok(());
    };
    // A file of an exact multiple of 512 bytes ends with an empty block.
    let blocks = data.len() / BLOCK + 1;
    let mut ack = [0u8; 516];
    for index in 0..blocks {
        let number = u16::try_from((index + 1) % 65536).unwrap_or(0);
        let chunk = &data[index * BLOCK..data.len().min((index + 1) * BLOCK)];
        let mut packet = vec![0, 3];
        packet.extend_from_slice(&number.to_be_bytes());
        packet.extend_from_slice(chunk);
        let mut acknowledged = false;
        for _ in 0..RETRIES {
            socket.send_to(&packet, peer).await?;
            match tokio::time::timeout(TIMEOUT, socket.recv_from(&mut ack)).await {
                Ok(Ok((4.., from)))
                    if from == peer && ack[..2] == [0, 4] && ack[2..4] == number.to_be_bytes() =>
                {
                    acknowledged = true;
                    break;
                }
                _ => continue,
            }
        }
        if !acknowledged {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("block {number} never acknowledged"),
            ));
        }
    }
    tracing::debug!(%peer, file = name, bytes = data.len(), "TFTP transfer done");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrq(name: &str) -> Vec<u8> {
        let mut packet = vec![0, 1];
        packet.extend_from_slice(name.as_bytes());
        packet.extend_from_slice(b"\0octet\0");
        packet
    }

    #[tokio::test]
    async fn files_are_served_from_memory_and_transfers_are_bounded() {
        let root = tempfile::tempdir().expect("temp dir");
        let content: Vec<u8> = (0..1300u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(root.path().join("ipxe.efi"), &content).expect("file");
        let files = Arc::new(TftpFiles::read(root.path()).expect("read"));
        // Read once: deleting the file does not stop it being served.
        std::fs::remove_file(root.path().join("ipxe.efi")).expect("remove");
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let address = match probe.local_addr().expect("address") {
            SocketAddr::V4(v4) => v4,
            SocketAddr::V6(_) => unreachable!(),
        };
        drop(probe);
        tokio::spawn(serve_on(address, files));
        tokio::time::sleep(Duration::from_millis(100)).await;

        let client = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        client
            .send_to(&rrq("/ipxe.efi"), address)
            .await
            .expect("send");
        let mut received = Vec::new();
        let mut buffer = [0u8; 600];
        loop {
            let (length, from) = client.recv_from(&mut buffer).await.expect("block");
            assert_eq!(buffer[..2], [0, 3], "a data packet");
            received.extend_from_slice(&buffer[4..length]);
            client
                .send_to(&[0, 4, buffer[2], buffer[3]], from)
                .await
                .expect("ack");
            if length < 4 + BLOCK {
                break;
            }
        }
        assert_eq!(received, content);

        let missing = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        missing
            .send_to(&rrq("../etc/passwd"), address)
            .await
            .expect("send");
        let (length, _) = missing.recv_from(&mut buffer).await.expect("answer");
        assert_eq!(
            buffer[..4],
            [0, 5, 0, 1],
            "file not found: {:?}",
            &buffer[..length]
        );

        // Every slot taken by a transfer that is never acknowledged: the next one is busy.
        let mut stalled = Vec::new();
        for _ in 0..MAX_TRANSFERS {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind");
            socket
                .send_to(&rrq("ipxe.efi"), address)
                .await
                .expect("send");
            socket.recv_from(&mut buffer).await.expect("first block");
            stalled.push(socket);
        }
        let late = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        late.send_to(&rrq("ipxe.efi"), address).await.expect("send");
        let (length, _) = late.recv_from(&mut buffer).await.expect("answer");
        assert_eq!(buffer[..4], [0, 5, 0, 0], "busy: {:?}", &buffer[..length]);
    }

    #[test]
    fn octet_read_requests_name_their_file() {
        assert_eq!(
            read_request(b"\x00\x01undionly.kpxe\x00octet\x00"),
            Some(String::from("undionly.kpxe"))
        );
        assert_eq!(
            read_request(b"\x00\x01ipxe.efi\x00OCTET\x00blksize\x001468\x00"),
            Some(String::from("ipxe.efi"))
        );
        assert_eq!(read_request(b"\x00\x01f\x00netascii\x00"), None);
        assert_eq!(
            read_request(b"\x00\x02upload\x00octet\x00"),
            None,
            "writes are refused"
        );
        assert_eq!(read_request(b"\x00"), None);
    }

    #[test]
    fn only_plain_names_in_the_root_are_served() {
        let root = Path::new("/usr/lib/ipxe");
        assert_eq!(
            resolve(root, "undionly.kpxe"),
            Some(PathBuf::from("/usr/lib/ipxe/undionly.kpxe"))
        );
        assert_eq!(
            resolve(root, "/ipxe.efi"),
            Some(PathBuf::from("/usr/lib/ipxe/ipxe.efi"))
        );
        // `.` and `/.`: regression (fuzz target `tftp_request`), they named the root itself.
        for bad in ["../etc/passwd", "..", "a/b", "", "x\\y", ".", "/."] {
            assert_eq!(resolve(root, bad), None, "{bad}");
        }
    }
}
