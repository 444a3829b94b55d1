//! A file the boot server offers as it is on disk (the metalprobe binary): opened once at
//! start and read per request with positioned reads, so the operator never holds it in
//! memory (the kernel's page cache does, shared and reclaimable) and replacing the path while
//! the operator runs does not change what machines get.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;

/// How much one read takes from the file: large enough that a multi-megabyte binary is a
/// handful of reads, small enough that a slow download holds little memory.
const CHUNK: u64 = 256 * 1024;

/// A file opened once and served to any number of requests at once (each reads at its own
/// offset; nothing is shared but the open file).
#[derive(Debug, Clone)]
pub struct ServedFile {
    file: Arc<std::fs::File>,
    len: u64,
}

impl ServedFile {
    /// Opens `path`; fails if it cannot be read or is not a regular file.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::File::open(path)?;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(Self {
            file: Arc::new(file),
            len: metadata.len(),
        })
    }

    /// Its length in bytes, as it was when opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole file as a response body, read chunk by chunk as the client takes it. A file
    /// truncated in place after it was opened ends the body with an error (the client sees a
    /// short download, never other bytes).
    pub fn body(&self) -> Body {
        let file = self.file.clone();
        let len = self.len;
        Body::from_stream(futures::stream::try_unfold(0_u64, move |offset| {
            let file = file.clone();
            async move {
                if offset >= len {
                    return Ok(None);
                }
                let size = CHUNK.min(len - offset);
                let chunk = tokio::task::spawn_blocking(move || read_chunk(&file, offset, size))
                    .await
                    .map_err(std::io::Error::other)??;
                Ok::<_, std::io::Error>(Some((chunk, offset + size)))
            }
        }))
    }
}

/// `size` bytes at `offset`.
fn read_chunk(file: &std::fs::File, offset: u64, size: u64) -> std::io::Result<Bytes> {
    let mut buffer = vec![0; usize::try_from(size).map_err(std::io::Error::other)?];
    file.read_exact_at(&mut buffer, offset)?;
    Ok(Bytes::from(buffer))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(body: Body) -> std::io::Result<Vec<u8>> {
        axum::body::to_bytes(body, usize::MAX)
            .await
            .map(|bytes| bytes.to_vec())
            .map_err(std::io::Error::other)
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ferrometal-served-file-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[tokio::test]
    async fn concurrent_downloads_each_get_the_whole_file() {
        let dir = scratch("concurrent");
        let path = dir.join("metalprobe");
        // Several chunks and a partial last one.
        let content: Vec<u8> = (0..(CHUNK * 3 + 123)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).expect("write");
        let served = ServedFile::open(&path).expect("open");
        assert_eq!(served.len(), content.len() as u64);
        let (a, b) = tokio::join!(collect(served.body()), collect(served.body()));
        assert_eq!(a.expect("first download"), content);
        assert_eq!(b.expect("second download"), content);
        std::fs::remove_dir_all(dir).expect("clean up");
    }

    #[tokio::test]
    async fn replacing_the_path_does_not_change_what_is_served() {
        let dir = scratch("replaced");
        let path = dir.join("metalprobe");
        std::fs::write(&path, b"the binary at start").expect("write");
        let served = ServedFile::open(&path).expect("open");
        let replacement = dir.join("new");
        std::fs::write(&replacement, b"something else").expect("write");
        std::fs::rename(&replacement, &path).expect("replace");
        assert_eq!(
            collect(served.body()).await.expect("download"),
            b"the binary at start"
        );
        std::fs::remove_dir_all(dir).expect("clean up");
    }

    #[tokio::test]
    async fn a_file_truncated_in_place_ends_the_download_with_an_error() {
        let dir = scratch("truncated");
        let path = dir.join("metalprobe");
        std::fs::write(&path, vec![7_u8; 1000]).expect("write");
        let served = ServedFile::open(&path).expect("open");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_len(10))
            .expect("truncate");
        assert!(collect(served.body()).await.is_err());
        std::fs::remove_dir_all(dir).expect("clean up");
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = scratch("directory");
        assert!(ServedFile::open(&dir).is_err());
        std::fs::remove_dir_all(dir).expect("clean up");
    }
}
