//! On-disk cache of compiled components, keyed by plugin digest and engine compatibility.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

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

/// Returns the compiled component, from the cache when possible.
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
    let path = entry_path(engine, dir, digest);
    let mut outcome = CacheOutcome::Miss;
    if path.is_file() {
        // SAFETY: only files this function wrote are read back, under a name that carries the
        // engine's compatibility hash; wasmtime rejects (with an error, not UB) artifacts
        // from other versions or configurations, and a damaged file fails its checks too.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok((component, CacheOutcome::Hit)),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "discarding unusable compiled plugin cache entry");
                let _ = std::fs::remove_file(&path);
                outcome = CacheOutcome::Replaced;
            }
        }
    }
    let compiled = engine.precompile_component(bytes)?;
    // SAFETY: the bytes were produced by this engine a moment ago.
    let component = unsafe { Component::deserialize(engine, &compiled)? };
    if let Err(error) = write_atomically(dir, &path, &compiled) {
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
