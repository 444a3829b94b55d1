//! The image proxy's layer cache: each layer is fetched from the registry once, its digest
//! verified, and kept on disk (bounded; least recently served dropped first) for every
//! machine after it.
//!
//! Machines booting one image at once share one download: the first request fetches, the
//! others wait for it. A layer whose bytes do not hash to its digest is never served. The
//! layers of an earlier run are removed at start (a restart fetches again; nothing
//! unverified survives).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use oci_client::Reference;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::image::{ImageError, ImageResolver};

/// Why a layer cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The registry cannot be asked or does not have it.
    #[error(transparent)]
    Registry(#[from] ImageError),
    /// The download broke off.
    #[error("the download of {digest} broke off: {source}")]
    Download {
        /// The layer.
        digest: String,
        /// What happened.
        source: std::io::Error,
    },
    /// The registry's bytes hash to something else.
    #[error("the registry sent {digest} with content that hashes to {actual}; not served")]
    DigestMismatch {
        /// The layer asked for.
        digest: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// The cache directory cannot be written or read.
    #[error("layer cache {path}: {source}")]
    Disk {
        /// The file.
        path: PathBuf,
        /// What happened.
        source: std::io::Error,
    },
}

#[derive(Debug, Default)]
struct Cached {
    /// Digest → size and when it was last served (a counter, not a clock).
    layers: HashMap<String, (u64, u64)>,
    total: u64,
}

/// A bounded on-disk cache of verified layers.
#[derive(Debug)]
pub struct LayerCache {
    dir: PathBuf,
    max_bytes: u64,
    cached: Mutex<Cached>,
    /// One lock per layer being downloaded, so that a layer is fetched once.
    downloads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    clock: AtomicU64,
    /// The directory, when the cache made it itself (removed when the cache is dropped).
    _temporary: Option<tempfile::TempDir>,
}

impl LayerCache {
    /// A cache in `dir` (created, and emptied of earlier runs' layers: files named as this
    /// cache names them, nothing else) holding at most `max_bytes` (a single larger layer is
    /// kept until another needs the room).
    pub fn new(dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let ours = entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with("sha256-") || name.starts_with(".partial-"));
            if ours && entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes,
            cached: Mutex::default(),
            downloads: Mutex::default(),
            clock: AtomicU64::new(0),
            _temporary: None,
        })
    }

    /// A cache in a fresh directory under the system's temporary directory, removed when the
    /// cache is dropped.
    pub fn temporary(max_bytes: u64) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("ferrometal-layers-")
            .tempdir()?;
        let mut cache = Self::new(dir.path(), max_bytes)?;
        cache._temporary = Some(dir);
        Ok(cache)
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(digest.replacen(':', "-", 1))
    }

    /// The layer `digest` of `image`, opened for reading, with its size: from the cache, or
    /// fetched (once, however many ask at the same time) and verified first.
    pub async fn open(
        &self,
        resolver: &ImageResolver,
        image: &Reference,
        digest: &str,
    ) -> Result<(tokio::fs::File, u64), LayerError> {
        if let Some(found) = self.open_cached(digest).await {
            return Ok(found);
        }
        let lock = self
            .downloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(digest.to_owned())
            .or_default()
            .clone();
        let result = async {
            let _downloading = lock.lock().await;
            // Someone else may have fetched it while this one waited.
            if let Some(found) = self.open_cached(digest).await {
                return Ok(found);
            }
            let size = self.download(resolver, image, digest).await?;
            self.admit(digest, size).await;
            let path = self.path(digest);
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|source| LayerError::Disk { path, source })?;
            Ok((file, size))
        }
        .await;
        let mut downloads = self
            .downloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Only the map and this caller hold it: nobody else waits on it.
        if Arc::strong_count(&lock) <= 2 {
            downloads.remove(digest);
        }
        result
    }

    /// The cached file, marked as just served; `None` when not cached (or its file is gone).
    async fn open_cached(&self, digest: &str) -> Option<(tokio::fs::File, u64)> {
        let size = {
            let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
            let now = self.clock.fetch_add(1, Ordering::Relaxed);
            let (size, used) = cached.layers.get_mut(digest)?;
            *used = now;
            *size
        };
        match tokio::fs::File::open(self.path(digest)).await {
            Ok(file) => Some((file, size)),
            Err(error) => {
                tracing::warn!(digest, %error, "a cached layer's file is gone; fetching it again");
                let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some((size, _)) = cached.layers.remove(digest) {
                    cached.total -= size;
                }
                None
            }
        }
    }

    /// Streams the layer to a temporary file while hashing it; renames it into place only
    /// when the hash is the digest.
    async fn download(
        &self,
        resolver: &ImageResolver,
        image: &Reference,
        digest: &str,
    ) -> Result<u64, LayerError> {
        let expected = digest.strip_prefix("sha256:").unwrap_or(digest);
        let partial = self.dir.join(format!(
            ".partial-{expected}-{}",
            self.clock.fetch_add(1, Ordering::Relaxed)
        ));
        let disk = |path: &Path| {
            let path = path.to_owned();
            move |source| LayerError::Disk { path, source }
        };
        let result = async {
            let (_, mut stream) = resolver.blob(image, digest).await?;
            let mut file = tokio::fs::File::create(&partial)
                .await
                .map_err(disk(&partial))?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|source| LayerError::Download {
                    digest: digest.to_owned(),
                    source,
                })?;
                hasher.update(&chunk);
                size += chunk.len() as u64;
                file.write_all(&chunk).await.map_err(disk(&partial))?;
            }
            file.flush().await.map_err(disk(&partial))?;
            let actual = hex::encode(hasher.finalize());
            if actual != expected {
                return Err(LayerError::DigestMismatch {
                    digest: digest.to_owned(),
                    actual: format!("sha256:{actual}"),
                });
            }
            let path = self.path(digest);
            tokio::fs::rename(&partial, &path)
                .await
                .map_err(disk(&path))?;
            Ok(size)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        result
    }

    /// Records a downloaded layer and drops the least recently served others while the
    /// cache is over its size (files being served stay readable until closed).
    async fn admit(&self, digest: &str, size: u64) {
        let evicted = {
            let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
            let now = self.clock.fetch_add(1, Ordering::Relaxed);
            if let Some((old, _)) = cached.layers.insert(digest.to_owned(), (size, now)) {
                cached.total -= old;
            }
            cached.total += size;
            let mut evicted = Vec::new();
            while cached.total > self.max_bytes {
                let Some(oldest) = cached
                    .layers
                    .iter()
                    .filter(|(other, _)| other.as_str() != digest)
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(other, _)| other.clone())
                else {
                    break;
                };
                if let Some((size, _)) = cached.layers.remove(&oldest) {
                    cached.total -= size;
                }
                evicted.push(oldest);
            }
            evicted
        };
        for digest in evicted {
            tracing::debug!(digest, "layer dropped from the cache");
            let _ = tokio::fs::remove_file(self.path(&digest)).await;
        }
    }

    /// Bytes of layers on disk.
    pub fn cached_bytes(&self) -> u64 {
        self.cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_removes_only_the_layers_of_an_earlier_run() {
        let dir = tempfile::tempdir().expect("temp dir");
        let layer = dir.path().join(format!("sha256-{}", "a".repeat(64)));
        let partial = dir.path().join(".partial-abc-1");
        let other = dir.path().join("notes.txt");
        for path in [&layer, &partial, &other] {
            std::fs::write(path, b"x").expect("write");
        }
        let cache = LayerCache::new(dir.path(), 1 << 20).expect("cache");
        assert!(!layer.exists() && !partial.exists());
        assert!(
            other.exists(),
            "a file the cache did not write is left alone"
        );
        assert_eq!(cache.cached_bytes(), 0);
    }
}
