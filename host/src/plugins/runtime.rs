//! The plugin runtime: engine, loading, and the per-call sandbox shared by every world.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, SemaphorePermit};
use wasmtime::component::Component;
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use super::cache::{CacheOutcome, compile_cached};
use super::engine::{EPOCH_TICK, new_engine};
use super::error::{CallErrorKind, LoadError};
use super::host::HostState;
use super::metadata::{PluginMetadata, World};
use super::metrics::PluginMetrics;

/// Capabilities a plugin may request and an operator may grant.
pub const KNOWN_CAPABILITIES: &[&str] = &["credentials/reveal"];

/// Extra time the outer timeout allows past a call's deadline, for host calls that block
/// (epochs do not interrupt those).
const OUTER_TIMEOUT_MARGIN: Duration = Duration::from_millis(500);

/// Resource limits of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest linear memory the plugin may grow to.
    pub memory_bytes: usize,
    /// How long the call (instantiation included) may run.
    pub deadline: Duration,
}

/// How the runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Directory for compiled components; `None` compiles in memory on every load.
    pub cache_dir: Option<PathBuf>,
    /// Calls running at once across all plugins; more wait.
    pub max_concurrent_calls: usize,
    /// Capabilities granted to plugins that request them (e.g. `credentials/reveal`).
    pub granted_capabilities: Vec<String>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            max_concurrent_calls: 64,
            granted_capabilities: Vec::new(),
        }
    }
}

/// Which plugin a call or error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginIdentity {
    /// File name without extension.
    pub name: String,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// sha256 of the component, hex.
    pub digest: String,
    /// The world it implements.
    pub world: World,
    /// The ABI version it was built for.
    pub abi: String,
    /// The SDK version it was built with.
    pub sdk: String,
    /// Capabilities it requested (all granted, or it would not have loaded).
    pub capabilities: Vec<String>,
}

impl PluginIdentity {
    /// The first 12 hex digits of the digest.
    pub fn short_digest(&self) -> &str {
        &self.digest[..self.digest.len().min(12)]
    }
}

/// A component that passed every load-time check, ready to be linked for its world.
pub(crate) struct Prepared {
    pub(crate) identity: PluginIdentity,
    pub(crate) component: Component,
    pub(crate) cache: CacheOutcome,
}

/// Loads plugins and runs their calls in sandboxes. Cheap to clone; clones share the engine,
/// the compile cache and the concurrency cap.
#[derive(Clone)]
pub struct PluginRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    config: RuntimeConfig,
    calls: Semaphore,
    metrics: PluginMetrics,
}

impl std::fmt::Debug for PluginRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRuntime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl PluginRuntime {
    /// Creates the engine (and its epoch ticker).
    pub fn new(config: RuntimeConfig, metrics: PluginMetrics) -> Result<Self, LoadError> {
        let engine = new_engine().map_err(|error| LoadError::Engine(error.to_string()))?;
        let calls = Semaphore::new(config.max_concurrent_calls.max(1));
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                config,
                calls,
                metrics,
            }),
        })
    }

    /// The engine all plugins run in.
    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The runtime's metrics.
    pub fn metrics(&self) -> &PluginMetrics {
        &self.inner.metrics
    }

    /// Reads, checks and compiles a plugin for `world`.
    pub(crate) fn prepare(&self, path: &Path, world: World) -> Result<Prepared, LoadError> {
        let result = self.prepare_inner(path, world);
        self.inner.metrics.load(match &result {
            Ok(_) => "ok",
            Err(LoadError::Metadata { .. }) => "invalid_metadata",
            Err(LoadError::WrongWorld { .. }) => "wrong_world",
            Err(LoadError::CapabilityDenied { .. }) => "capability_denied",
            Err(_) => "error",
        });
        if let Ok(prepared) = &result {
            self.inner.metrics.cache(prepared.cache.metric_label());
        }
        result
    }

    fn prepare_inner(&self, path: &Path, world: World) -> Result<Prepared, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let metadata_error = |problem| LoadError::Metadata {
            path: path.to_path_buf(),
            problem,
        };
        let metadata = PluginMetadata::from_component(&bytes).map_err(metadata_error)?;
        metadata.check_abi().map_err(metadata_error)?;
        if metadata.world != world {
            return Err(LoadError::WrongWorld {
                path: path.to_path_buf(),
                expected: world,
                found: metadata.world,
            });
        }
        for capability in &metadata.capabilities {
            let known = KNOWN_CAPABILITIES.contains(&capability.as_str());
            if !known || !self.inner.config.granted_capabilities.contains(capability) {
                return Err(LoadError::CapabilityDenied {
                    path: path.to_path_buf(),
                    capability: capability.clone(),
                });
            }
        }
        let digest = hex::encode(Sha256::digest(&bytes));
        let (component, cache) = compile_cached(
            &self.inner.engine,
            &bytes,
            &digest,
            self.inner.config.cache_dir.as_deref(),
        )
        .map_err(|error| LoadError::Invalid {
            path: path.to_path_buf(),
            world,
            message: format!("{error:#}"),
        })?;
        let name = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| digest.clone());
        Ok(Prepared {
            identity: PluginIdentity {
                name,
                path: path.to_path_buf(),
                digest,
                world,
                abi: metadata.abi,
                sdk: metadata.sdk,
                capabilities: metadata.capabilities,
            },
            component,
            cache,
        })
    }

    /// Waits for a call slot.
    pub(crate) async fn call_slot(&self) -> Result<SemaphorePermit<'_>, CallErrorKind> {
        self.inner
            .calls
            .acquire()
            .await
            .map_err(|_| CallErrorKind::Host(String::from("the plugin runtime is shutting down")))
    }

    /// A fresh store for one call: memory cap installed, CPU deadline armed.
    pub(crate) fn store(
        &self,
        plugin: &PluginIdentity,
        operation: &'static str,
        limits: Limits,
    ) -> Store<HostState> {
        let mut store = Store::new(
            &self.inner.engine,
            HostState::new(plugin.clone(), operation, limits.memory_bytes),
        );
        store.limiter(|state| &mut state.memory);
        let deadline = Instant::now() + limits.deadline;
        store.set_epoch_deadline(1);
        // Each tick, give the executor a turn; past the deadline, interrupt the plugin.
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// The outer timeout of a call with `limits`.
    pub(crate) fn outer_timeout(limits: Limits) -> Duration {
        limits.deadline + OUTER_TIMEOUT_MARGIN + EPOCH_TICK
    }

    /// Turns a wasmtime failure into what happened, using what the store saw.
    pub(crate) fn classify(
        store: &Store<HostState>,
        error: &wasmtime::Error,
        limits: Limits,
    ) -> CallErrorKind {
        let state = store.data();
        if let Some(requested_bytes) = state.memory.refused {
            return CallErrorKind::ResourceExhausted {
                limit_bytes: state.memory.limit_bytes,
                requested_bytes,
            };
        }
        if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return CallErrorKind::Timeout(limits.deadline);
        }
        let reason = error
            .downcast_ref::<Trap>()
            .map_or_else(|| error.to_string(), ToString::to_string);
        let backtrace = error
            .downcast_ref::<wasmtime::WasmBacktrace>()
            .map(ToString::to_string)
            .unwrap_or_default();
        CallErrorKind::Crashed {
            reason,
            panic: state.panic.clone(),
            backtrace,
        }
    }

    /// Records a finished call.
    pub(crate) fn record(
        &self,
        plugin: &PluginIdentity,
        operation: &str,
        outcome: &str,
        elapsed: Duration,
    ) {
        self.inner.metrics.call(
            &plugin.name,
            plugin.world.as_str(),
            operation,
            outcome,
            elapsed.as_secs_f64(),
        );
    }
}
