//! A read-only TFTP server (RFC 1350, octet mode, 512-byte blocks) for the iPXE images PXE
//! firmware loads, e.g. Debian's `ipxe` package in `/usr/lib/ipxe`. Only plain file names in
//! the root are served; every transfer runs on its own socket with retransmission.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

const BLOCK: usize = 512;
const RETRIES: u32 = 5;
const TIMEOUT: Duration = Duration::from_secs(1);

/// A read request's file name, if the packet is a well-formed RRQ (`01 name 00 mode 00 …`).
pub fn read_request(packet: &[u8]) -> Option<String> {
    let body = packet.strip_prefix(&[0, 1])?;
    let mut fields = body.split(|b| *b == 0);
    let name = std::str::from_utf8(fields.next()?).ok()?;
    let mode = std::str::from_utf8(fields.next()?).ok()?;
    mode.eq_ignore_ascii_case("octet").then(|| name.to_owned())
}

/// The file `name` under `root`, when `name` is a plain file name (no directories, no `..`).
pub fn resolve(root: &Path, name: &str) -> Option<PathBuf> {
    let name = name.trim_start_matches('/');
    let plain = !name.is_empty() && !name.contains('/') && !name.contains('\\') && name != "..";
    plain.then(|| root.join(name))
}

fn error_packet(code: u8, message: &str) -> Vec<u8> {
    let mut packet = vec![0, 5, 0, code];
    packet.extend_from_slice(message.as_bytes());
    packet.push(0);
    packet
}

/// Serves `root` on `address:69` until the task is dropped.
pub async fn serve(address: Ipv4Addr, root: PathBuf) -> std::io::Result<()> {
    let socket = tokio::net::UdpSocket::bind(SocketAddrV4::new(address, 69)).await?;
    tracing::info!(%address, root = %root.display(), "serving TFTP");
    let mut buffer = vec![0u8; 1500];
    loop {
        let (length, peer) = socket.recv_from(&mut buffer).await?;
        let Some(name) = read_request(&buffer[..length]) else {
            tracing::debug!(%peer, "dropping a TFTP packet that is not an octet read request");
            continue;
        };
        let path = resolve(&root, &name);
        let root = root.clone();
        tokio::spawn(async move {
            if let Err(error) = transfer(address, peer, path, &name).await {
                tracing::warn!(%peer, file = name, root = %root.display(), %error, "TFTP transfer failed");
            }
        });
    }
}

async fn transfer(
    address: Ipv4Addr,
    peer: SocketAddr,
    path: Option<PathBuf>,
    name: &str,
) -> std::io::Result<()> {
    let socket = tokio::net::UdpSocket::bind(SocketAddrV4::new(address, 0)).await?;
    let data = match &path {
        Some(path) => tokio::fs::read(path).await.ok(),
        None => None,
    };
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
        for bad in ["../etc/passwd", "..", "a/b", "", "x\\y"] {
            assert_eq!(resolve(root, bad), None, "{bad}");
        }
    }
}
