//! On-disk cache of compiled components, keyed by plugin digest and engine compatibility.
//!
//! wasmtime runs a compiled artifact as it is (deserializing one is `unsafe` for that
//! reason), so an entry is used only when it provably is what this cache wrote for this very
//! component: every entry starts with a header naming the sha256 of the component it was
//! compiled from and the sha256 of the artifact that follows. An entry written for another
//! component (a swapped or copied file) or whose bytes changed (a flipped bit, a truncated
//! write) is discarded with a warning and the component is compiled again
//! ([`CacheOutcome::Replaced`]). The checksums find damage and mix-ups, not a forger: anyone
//! who can write the cache directory can write a consistent header too, so the directory must
//! be writable by the operator alone (the chart uses an emptyDir of its Pod).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// What a cache entry starts with (format version 1).
const MAGIC: &[u8; 8] = b"FMCWASM1";
/// Magic, the component's sha256, the artifact's sha256.
const HEADER_LEN: usize = MAGIC.len() + 32 + 32;

/// Where a loaded component's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Deserialized from the cache.
    Hit,
    /// Compiled and written to the cache.
    Miss,
    /// The cache entry could not be used (corrupt, or from another engine build) and was
    /// replaced by a fresh compilation.
    Replaced,
    /// No cache directory is configured; compiled in memory.
    Disabled,
}

impl CacheOutcome {
    /// A short label for metrics.
    pub fn metric_label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Replaced => "replaced",
            Self::Disabled => "disabled",
        }
    }
}

/// The cache file for a plugin digest under this engine's configuration.
fn entry_path(engine: &Engine, dir: &Path, digest: &str) -> PathBuf {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!("{digest}-{:016x}.cwasm", hasher.finish()))
}

/// Why a cache entry was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Unusable {
    /// Not in this cache's format (or from an older ferrometal).
    #[error("it does not start with ferrometal's cache header")]
    NoHeader,
    /// Written for a component with another digest.
    #[error("it was compiled from another component (sha256 {0})")]
    OtherComponent(String),
    /// The artifact's bytes are not the ones written.
    #[error("its checksum does not match: the file was damaged or changed")]
    Checksum,
    /// wasmtime refused the artifact.
    #[error("wasmtime cannot use it: {0}")]
    Refused(String),
}

/// The artifact in `entry`, if the entry was written for the component whose sha256 is
/// `digest` and its bytes are the ones written.
fn verified_artifact<'a>(entry: &'a [u8], digest: &[u8; 32]) -> Result<&'a [u8], Unusable> {
    if entry.len() < HEADER_LEN || !entry.starts_with(MAGIC) {
        return Err(Unusable::NoHeader);
    }
    let (header, artifact) = entry.split_at(HEADER_LEN);
    let source = &header[MAGIC.len()..MAGIC.len() + 32];
    let checksum = &header[MAGIC.len() + 32..];
    if source != digest {
        return Err(Unusable::OtherComponent(hex::encode(source)));
    }
    if Sha256::digest(artifact).as_slice() != checksum {
        return Err(Unusable::Checksum);
    }
    Ok(artifact)
}

/// A cache entry: the header for the component `digest` and `artifact`, then the artifact.
fn entry(digest: &[u8; 32], artifact: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(HEADER_LEN + artifact.len());
    entry.extend_from_slice(MAGIC);
    entry.extend_from_slice(digest);
    entry.extend_from_slice(&Sha256::digest(artifact));
    entry.extend_from_slice(artifact);
    entry
}

/// The component in the cache entry at `path`, if it was written for `digest` and is intact.
#[allow(unsafe_code)]
fn read_entry(engine: &Engine, path: &Path, digest: &[u8; 32]) -> Result<Component, Unusable> {
    let bytes = std::fs::read(path).map_err(|error| Unusable::Refused(error.to_string()))?;
    let artifact = verified_artifact(&bytes, digest)?;
    // SAFETY: wasmtime runs a deserialized artifact as it is. These bytes are the ones this
    // cache wrote (checksum) for this component (digest): `compile_cached` wrote them from
    // `precompile_component` of this very component, under a name that carries this
    // engine's compatibility hash, and wasmtime checks its own version and configuration
    // header as well. The cache directory must be writable by the operator alone (see the
    // module documentation).
    unsafe { Component::deserialize(engine, artifact) }
        .map_err(|error| Unusable::Refused(format!("{error:#}")))
}

/// Returns the compiled component, from the cache when possible. `digest` is the hex sha256
/// of `bytes`.
#[allow(unsafe_code)]
pub(crate) fn compile_cached(
    engine: &Engine,
    bytes: &[u8],
    digest: &str,
    dir: Option<&Path>,
) -> wasmtime::Result<(Component, CacheOutcome)> {
    let Some(dir) = dir else {
        return Ok((Component::new(engine, bytes)?, CacheOutcome::Disabled));
    };
    let source: [u8; 32] = Sha256::digest(bytes).into();
    debug_assert_eq!(hex::encode(source), digest);
    let path = entry_path(engine, dir, digest);
    let mut outcome = CacheOutcome::Miss;
    if path.is_file() {
        match read_entry(engine, &path, &source) {
            Ok(component) => return Ok((component, CacheOutcome::Hit)),
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "discarding compiled plugin cache entry; compiling the plugin again");
                let _ = std::fs::remove_file(&path);
                outcome = CacheOutcome::Replaced;
            }
        }
    }
    let compiled = engine.precompile_component(bytes)?;
    // SAFETY: the bytes were produced by this engine a moment ago.
    let component = unsafe { Component::deserialize(engine, &compiled)? };
    if let Err(error) = write_atomically(dir, &path, &entry(&source, &compiled)) {
        tracing::warn!(path = %path.display(), %error, "cannot write compiled plugin cache entry");
    }
    Ok((component, outcome))
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: [u8; 32] = [1; 32];
    const TWO: [u8; 32] = [2; 32];

    #[test]
    fn an_entry_gives_back_its_artifact_for_its_own_component() {
        let written = entry(&ONE, b"machine code");
        assert_eq!(verified_artifact(&written, &ONE), Ok(&b"machine code"[..]));
    }

    #[test]
    fn an_entry_of_another_component_is_refused() {
        let written = entry(&TWO, b"machine code");
        assert_eq!(
            verified_artifact(&written, &ONE),
            Err(Unusable::OtherComponent(hex::encode(TWO)))
        );
    }

    #[test]
    fn any_changed_byte_of_the_artifact_is_found() {
        let written = entry(&ONE, b"machine code");
        for at in HEADER_LEN..written.len() {
            let mut damaged = written.clone();
            damaged[at] ^= 0x01;
            assert_eq!(
                verified_artifact(&damaged, &ONE),
                Err(Unusable::Checksum),
                "byte {at}"
            );
        }
    }

    #[test]
    fn files_without_the_header_are_refused() {
        assert_eq!(verified_artifact(b"", &ONE), Err(Unusable::NoHeader));
        assert_eq!(
            verified_artifact(b"\x7fELF an artifact of an older cache", &ONE),
            Err(Unusable::NoHeader)
        );
        let mut truncated = entry(&ONE, b"machine code");
        truncated.truncate(HEADER_LEN - 1);
        assert_eq!(verified_artifact(&truncated, &ONE), Err(Unusable::NoHeader));
    }
}
