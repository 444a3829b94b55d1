//! The plugin runtime: engine, loading, and the per-call sandbox shared by every world.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasData, InstancePre, Linker, ResourceTable};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use super::bmc_http::{BmcCall, HttpClients};
use super::budget::{DEFAULT_MEMORY_BUDGET, MemoryBudget, reservation};
use super::cache::{CacheOutcome, compile_cached};
use super::engine::{EPOCH_TICK, new_engine};
use super::error::{CallError, CallErrorKind, DeadlineExceeded, LoadError};
use super::host::{HostState, MemoryCap};
use super::metadata::{PluginMetadata, World, import_with_prefix};
use super::metrics::PluginMetrics;
use super::types::{BmcEndpoint, GuestError};

/// A plugin's name: its file name without `.wasm`, with `_` read as `-` (cargo writes
/// `my-driver` as `my_driver.wasm`).
pub fn plugin_name(path: &Path) -> Option<String> {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().replace('_', "-"))
}

/// A component to load: its bytes, the name the plugin configuration calls it by, and where
/// the bytes came from (a file in the plugin directory, or the verified copy of a registry
/// artifact). Loading works on these bytes only, so what was checked is what is compiled.
#[derive(Debug, Clone)]
pub struct PluginComponent {
    /// The plugin's name ([`plugin_name`] of a file); empty means "use the digest".
    pub name: String,
    /// Where the bytes came from (named in errors).
    pub path: PathBuf,
    /// The component's bytes.
    pub bytes: Vec<u8>,
}

impl PluginComponent {
    /// Reads the component file `path`; its name is [`plugin_name`] of the path.
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            name: plugin_name(path).unwrap_or_default(),
            path: path.to_path_buf(),
            bytes,
        })
    }
}

/// Capabilities a plugin may request and an operator may grant.
pub const KNOWN_CAPABILITIES: &[&str] = &["credentials/reveal"];

/// Interface packages the host does not provide to plugins at all (a plugin that imports one
/// of their interfaces is refused at load time): sockets and name lookups. A driver reaches
/// its BMC through `bmc-http` only.
pub const FORBIDDEN_IMPORTS: &[&str] = &["wasi:sockets/"];

/// Extra time the outer timeout allows past a call's deadline, for host calls that block
/// (epochs do not interrupt those).
const OUTER_TIMEOUT_MARGIN: Duration = Duration::from_millis(500);

/// Resource limits of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest linear memory the plugin may grow to; at most
    /// [`MAX_PLUGIN_MEMORY`](super::engine::MAX_PLUGIN_MEMORY), the size of the instance
    /// pool's memory slots. The runtime's memory budget bounds every call too: a call
    /// whose limit is above the budget can still not grow past it.
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
    /// Bytes of linear memory all running calls may hold together (see
    /// [`budget`](super::budget)); calls wait for it, and growth beyond it is refused.
    pub memory_budget_bytes: usize,
    /// Capabilities granted to every plugin that requests them (e.g. `credentials/reveal`);
    /// the plugin configuration can grant more to single plugins.
    pub granted_capabilities: Vec<String>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            max_concurrent_calls: 64,
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET,
            granted_capabilities: Vec::new(),
        }
    }
}

/// Which plugin a call or error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginIdentity {
    /// The file name without extension, `_` written as `-` (`lookup_echo.wasm` is
    /// `lookup-echo`). Configuration refers to plugins by this name.
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

/// A world's pre-instantiated bindings (`BmcDriverPre`, `CredentialLookupPre`, ...): what
/// [`PluginHandle::call`] instantiates for each call.
pub(crate) trait WorldPre: Clone + Send + Sync + 'static {
    /// The world's typed instance.
    type Bindings: Send + Sync;

    /// A fresh instance of the world in `store`.
    fn instantiate(
        &self,
        store: &mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<Self::Bindings>> + Send;
}

/// A loaded plugin: who it is, its call limits and its world's bindings `Pre`.
#[derive(Clone)]
pub(crate) struct PluginHandle<Pre> {
    pub(crate) runtime: PluginRuntime,
    pub(crate) identity: PluginIdentity,
    pub(crate) limits: Limits,
    pub(crate) cache: CacheOutcome,
    pub(crate) pre: Pre,
    /// The most linear memory one call of this plugin has held so far: what a call reserves
    /// from the memory budget before it starts. Shared by clones.
    pub(crate) peak_memory: Arc<AtomicUsize>,
}

impl<Pre: WorldPre> PluginHandle<Pre> {
    /// Runs `operation` with the plugin's limits: `body` gets a fresh instance of the world
    /// and its store (see [`PluginRuntime::call`] for the sandbox around it). A driver call
    /// names its BMC in `bmc`. The plugin's own error becomes [`CallErrorKind::Plugin`].
    pub(crate) async fn call<R, E>(
        &self,
        operation: &'static str,
        bmc: Option<&BmcEndpoint>,
        body: impl AsyncFnOnce(&Pre::Bindings, &mut Store<HostState>) -> GuestResult<R, E>,
    ) -> Result<R, CallError>
    where
        E: Into<GuestError>,
    {
        self.call_with_limits(self.limits, operation, bmc, body)
            .await
    }

    /// [`call`](Self::call) with other limits than the plugin's.
    pub(crate) async fn call_with_limits<R, E>(
        &self,
        limits: Limits,
        operation: &'static str,
        bmc: Option<&BmcEndpoint>,
        body: impl AsyncFnOnce(&Pre::Bindings, &mut Store<HostState>) -> GuestResult<R, E>,
    ) -> Result<R, CallError>
    where
        E: Into<GuestError>,
    {
        let pre = &self.pre;
        self.runtime
            .call(
                &self.identity,
                operation,
                limits,
                bmc,
                &self.peak_memory,
                async |store| {
                    let bindings = pre.instantiate(store).await?;
                    Ok(body(&bindings, store).await?.map_err(Into::into))
                },
            )
            .await
    }
}

/// What a call's body returns: a trap or host failure, or what the plugin answered.
pub(crate) type GuestResult<R, E> = wasmtime::Result<Result<R, E>>;

/// Implements `Debug` and the accessors every loaded-plugin type shares (each holds a
/// `handle: PluginHandle<_>`).
macro_rules! plugin_handle_methods {
    ($plugin:ident) => {
        impl std::fmt::Debug for $plugin {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($plugin))
                    .field("identity", &self.handle.identity)
                    .field("limits", &self.handle.limits)
                    .finish_non_exhaustive()
            }
        }

        impl $plugin {
            /// Which plugin this is.
            pub fn identity(&self) -> &$crate::plugins::PluginIdentity {
                &self.handle.identity
            }

            /// Where its machine code came from when it was loaded.
            pub fn cache_outcome(&self) -> $crate::plugins::CacheOutcome {
                self.handle.cache
            }

            /// The same plugin with other call limits.
            pub fn with_limits(mut self, limits: $crate::plugins::Limits) -> Self {
                self.handle.limits = limits;
                self
            }

            /// The most linear memory one call of this plugin has held so far, in bytes:
            /// what its next call reserves from the memory budget before it starts.
            pub fn peak_memory(&self) -> usize {
                self.handle
                    .peak_memory
                    .load(std::sync::atomic::Ordering::Relaxed)
            }
        }
    };
}
pub(crate) use plugin_handle_methods;

/// A call's share of its BMC's lock; removes the map entry when it is the last one.
struct BmcLease<'a> {
    locks: &'a Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    origin: String,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for BmcLease<'_> {
    fn drop(&mut self) {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Clones are made only under the map's lock, so the count cannot grow meanwhile:
        // two means the map and this lease, nobody else waits for the BMC.
        if locks
            .get(&self.origin)
            .is_some_and(|lock| Arc::ptr_eq(lock, &self.lock) && Arc::strong_count(lock) == 2)
        {
            locks.remove(&self.origin);
        }
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
    /// What the linear memories of running calls come out of.
    budget: Arc<MemoryBudget>,
    metrics: PluginMetrics,
    /// One lock per BMC origin: BMCs have few sessions, so at most one driver call runs
    /// against a BMC at a time.
    bmc_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// HTTP clients to BMCs, one per TLS policy.
    http_clients: HttpClients,
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
        let budget = MemoryBudget::new(config.memory_budget_bytes, metrics.clone());
        let engine = new_engine(config.max_concurrent_calls, budget.total_bytes())
            .map_err(|error| LoadError::Engine(error.to_string()))?;
        let calls = Semaphore::new(config.max_concurrent_calls.max(1));
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                config,
                calls,
                budget,
                metrics,
                bmc_locks: Mutex::new(HashMap::new()),
                http_clients: HttpClients::default(),
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

    /// The directory compiled plugins are kept in, if any.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.inner.config.cache_dir.as_deref()
    }

    /// The memory budget all running calls share, in bytes (whole WebAssembly pages).
    pub fn memory_budget(&self) -> usize {
        self.inner.budget.total_bytes()
    }

    /// Reads, checks and compiles a plugin for `world`; `grants` are capabilities granted to
    /// this plugin beyond the ones granted to every plugin.
    pub(crate) fn prepare(
        &self,
        component: &PluginComponent,
        world: World,
        grants: &[String],
    ) -> Result<Prepared, LoadError> {
        let result = self.prepare_inner(component, world, grants);
        if let Err(
            LoadError::CapabilityDenied { capability, .. }
            | LoadError::UndeclaredCapability { capability, .. }
            | LoadError::ForbiddenImport {
                interface: capability,
                ..
            },
        ) = &result
        {
            self.inner
                .metrics
                .capability_denied(&component.name, capability);
        }
        self.inner.metrics.load(match &result {
            Ok(_) => "ok",
            Err(LoadError::Metadata { .. }) => "invalid_metadata",
            Err(LoadError::WrongWorld { .. }) => "wrong_world",
            Err(
                LoadError::CapabilityDenied { .. }
                | LoadError::UndeclaredCapability { .. }
                | LoadError::ForbiddenImport { .. },
            ) => "capability_denied",
            Err(_) => "error",
        });
        if let Ok(prepared) = &result {
            self.inner.metrics.cache(prepared.cache.metric_label());
        }
        result
    }

    fn prepare_inner(
        &self,
        component: &PluginComponent,
        world: World,
        grants: &[String],
    ) -> Result<Prepared, LoadError> {
        let (path, bytes) = (component.path.as_path(), component.bytes.as_slice());
        let metadata_error = |problem| LoadError::Metadata {
            path: path.to_path_buf(),
            problem,
        };
        let metadata = PluginMetadata::from_component(bytes).map_err(metadata_error)?;
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
            let granted = self.inner.config.granted_capabilities.contains(capability)
                || grants.contains(capability);
            if !known || !granted {
                return Err(LoadError::CapabilityDenied {
                    path: path.to_path_buf(),
                    capability: capability.clone(),
                });
            }
        }
        // Refused by name before anything is compiled, with a message that says why; they
        // are not linked either (`add_wasi`), so a miss here would still fail to link.
        if let Some(interface) =
            import_with_prefix(bytes, FORBIDDEN_IMPORTS).map_err(metadata_error)?
        {
            return Err(LoadError::ForbiddenImport {
                path: path.to_path_buf(),
                interface,
            });
        }
        let digest = hex::encode(Sha256::digest(bytes));
        let (compiled, cache) = compile_cached(
            &self.inner.engine,
            bytes,
            &digest,
            self.inner.config.cache_dir.as_deref(),
        )
        .map_err(LoadError::invalid(path, world))?;
        let name = if component.name.is_empty() {
            digest.clone()
        } else {
            component.name.clone()
        };
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
            component: compiled,
            cache,
        })
    }

    /// Prepares `component` for `world` (with `grants` beyond the runtime's), pre-instantiates it
    /// against WASI (without sockets, [`add_wasi`]) plus the imports `link` adds (chosen per
    /// world, and per plugin for granted capabilities), and wraps the result in the world's
    /// typed bindings with `bind` (e.g. `CredentialLookupPre::new`).
    pub(crate) fn link<Pre>(
        &self,
        component: &PluginComponent,
        world: World,
        grants: &[String],
        default_limits: Limits,
        link: impl FnOnce(&mut Linker<HostState>, &PluginIdentity) -> wasmtime::Result<()>,
        bind: impl FnOnce(InstancePre<HostState>) -> wasmtime::Result<Pre>,
    ) -> Result<PluginHandle<Pre>, LoadError> {
        let prepared = self.prepare(component, world, grants)?;
        let path = component.path.as_path();
        let invalid = LoadError::invalid(path, world);
        let mut linker = Linker::<HostState>::new(&self.inner.engine);
        add_wasi(&mut linker).map_err(&invalid)?;
        link(&mut linker, &prepared.identity).map_err(&invalid)?;
        let instance_pre = linker
            .instantiate_pre(&prepared.component)
            .map_err(|error| {
                // `reveal` is linked only for plugins that declare (and were granted) it, so
                // one that imports it without declaring it fails here.
                if format!("{error:#}").contains("ferrometal:plugin/reveal") {
                    LoadError::UndeclaredCapability {
                        path: path.to_path_buf(),
                        capability: String::from("credentials/reveal"),
                    }
                } else {
                    invalid(error)
                }
            })?;
        let pre = bind(instance_pre).map_err(&invalid)?;
        let handle = PluginHandle {
            runtime: self.clone(),
            identity: prepared.identity,
            limits: default_limits,
            cache: prepared.cache,
            pre,
            peak_memory: Arc::default(),
        };
        Ok(handle)
    }

    /// Runs one call: waits for the BMC (on driver calls), for its reservation from the
    /// memory budget (the plugin's `peak_memory` so far) and for a slot, builds a fresh store
    /// with the memory cap and deadline, runs `body` under the outer timeout, and turns every
    /// failure into a [`CallError`] that names the plugin and the operation.
    async fn call<R>(
        &self,
        plugin: &PluginIdentity,
        operation: &'static str,
        limits: Limits,
        bmc: Option<&BmcEndpoint>,
        peak_memory: &AtomicUsize,
        body: impl AsyncFnOnce(&mut Store<HostState>) -> GuestResult<R, GuestError>,
    ) -> Result<R, CallError> {
        let started = Instant::now();
        let result = self
            .call_inner(plugin, operation, limits, bmc, peak_memory, body)
            .await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(kind) => kind.metric_label(),
        };
        self.inner.metrics.call(
            &plugin.name,
            plugin.world.as_str(),
            operation,
            outcome,
            started.elapsed().as_secs_f64(),
        );
        result.map_err(|kind| CallError {
            plugin: plugin.clone(),
            operation,
            kind,
        })
    }

    async fn call_inner<R>(
        &self,
        plugin: &PluginIdentity,
        operation: &'static str,
        limits: Limits,
        bmc: Option<&BmcEndpoint>,
        peak_memory: &AtomicUsize,
        body: impl AsyncFnOnce(&mut Store<HostState>) -> GuestResult<R, GuestError>,
    ) -> Result<R, CallErrorKind> {
        let shutting_down =
            || CallErrorKind::Host(String::from("the plugin runtime is shutting down"));
        // The BMC first, then memory, then a global slot: calls queued behind a slow BMC, or
        // waiting for memory, must not hold slots that other calls could use.
        let bmc_lease = bmc.map(|endpoint| self.bmc_lease(endpoint.origin()));
        let _bmc_guard = match &bmc_lease {
            Some(lease) => Some(lease.lock.lock().await),
            None => None,
        };
        let reserve = reservation(peak_memory.load(Ordering::Relaxed), limits.memory_bytes);
        let charge = self
            .inner
            .budget
            .reserve(reserve)
            .await
            .map_err(|_| shutting_down())?;
        let _slot = self
            .inner
            .calls
            .acquire()
            .await
            .map_err(|_| shutting_down())?;
        let _in_flight = self.inner.metrics.call_started();
        // The deadline starts once the call may run, not while it queues.
        let mut store = self.store(
            plugin,
            operation,
            limits,
            MemoryCap::new(limits.memory_bytes, charge),
        );
        if let Some(endpoint) = bmc {
            let call = BmcCall::new(
                endpoint.clone(),
                &self.inner.http_clients,
                Instant::now() + limits.deadline,
                plugin.clone(),
                self.inner.metrics.clone(),
            )
            .map_err(CallErrorKind::Host)?;
            store.data_mut().bmc = Some(call);
        }
        let outcome = tokio::time::timeout(Self::outer_timeout(limits), body(&mut store)).await;
        peak_memory.fetch_max(store.data().memory.charge.used_bytes(), Ordering::Relaxed);
        match outcome {
            Err(_) => {
                tracing::warn!(plugin = %plugin.name, operation, deadline = ?limits.deadline, "the call outlived its deadline and was ended by the outer timeout");
                self.inner.metrics.call_abandoned();
                Err(CallErrorKind::Timeout(limits.deadline))
            }
            Ok(Err(error)) => Err(Self::classify(&store, &error, limits)),
            Ok(Ok(Err(guest))) => Err(CallErrorKind::Plugin(guest)),
            Ok(Ok(Ok(value))) => Ok(value),
        }
    }

    /// The lock of the BMC at `origin`, shared by every call to it. The entry leaves the map
    /// when the last lease of it is dropped, so the map holds only BMCs with calls.
    fn bmc_lease(&self, origin: String) -> BmcLease<'_> {
        let mut locks = self
            .inner
            .bmc_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let lock = locks.entry(origin.clone()).or_default().clone();
        BmcLease {
            locks: &self.inner.bmc_locks,
            origin,
            lock,
        }
    }

    /// How many BMCs have a lock entry (for tests of the map's clean-up).
    #[cfg(test)]
    fn bmc_lock_entries(&self) -> usize {
        self.inner
            .bmc_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// The outer timeout of a call with `limits`.
    fn outer_timeout(limits: Limits) -> Duration {
        limits.deadline + OUTER_TIMEOUT_MARGIN + EPOCH_TICK
    }

    /// Turns a wasmtime failure into what happened, using what the store saw.
    fn classify(
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
        if let Some(requested_bytes) = state.memory.budget_refused {
            return CallErrorKind::MemoryBudgetExhausted {
                budget_bytes: state.memory.charge.budget_bytes(),
                requested_bytes,
                held_bytes: state.memory.charge.used_bytes(),
            };
        }
        if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt)
            || error.downcast_ref::<DeadlineExceeded>().is_some()
        {
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

    /// A fresh store for one call: memory cap installed, CPU deadline armed.
    fn store(
        &self,
        plugin: &PluginIdentity,
        operation: &'static str,
        limits: Limits,
        memory: MemoryCap,
    ) -> Store<HostState> {
        let mut store = Store::new(
            &self.inner.engine,
            HostState::new(
                plugin.clone(),
                operation,
                memory,
                self.inner.metrics.clone(),
            ),
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
}

/// The resource table of a call's store, for the `wasi:io` interfaces.
struct CallTable;

impl HasData for CallTable {
    type Data<'a> = &'a mut ResourceTable;
}

/// Links the WASI 0.2 interfaces plugins may import: what
/// `wasmtime_wasi::p2::add_to_linker_async` links, without `wasi:sockets/*` (TCP, UDP, the
/// instance network and name lookups). The store's WASI context already denies every
/// socket, file, environment variable and argument; sockets are not linked at all, so a
/// plugin that imports them does not load ([`FORBIDDEN_IMPORTS`]).
fn add_wasi(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::WasiView as _;
    use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView as _};
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, io, random};
    use wasmtime_wasi::random::WasiRandom;

    let l = linker;
    io::error::add_to_linker::<HostState, CallTable>(l, |t| t.ctx().table)?;
    io::poll::add_to_linker::<HostState, CallTable>(l, |t| t.ctx().table)?;
    io::streams::add_to_linker::<HostState, CallTable>(l, |t| t.ctx().table)?;
    clocks::wall_clock::add_to_linker::<HostState, WasiClocks>(l, HostState::clocks)?;
    clocks::monotonic_clock::add_to_linker::<HostState, WasiClocks>(l, HostState::clocks)?;
    filesystem::types::add_to_linker::<HostState, WasiFilesystem>(l, HostState::filesystem)?;
    filesystem::preopens::add_to_linker::<HostState, WasiFilesystem>(l, HostState::filesystem)?;
    random::random::add_to_linker::<HostState, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    random::insecure::add_to_linker::<HostState, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    random::insecure_seed::add_to_linker::<HostState, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    cli::exit::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::environment::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::stdin::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::stdout::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::stderr::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_input::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_output::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_stdin::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_stdout::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_stderr::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bmc_lock_entry_lives_only_while_calls_hold_it() {
        let runtime =
            PluginRuntime::new(RuntimeConfig::default(), PluginMetrics::default()).expect("engine");
        let first = runtime.bmc_lease(String::from("https://10.0.0.5:443"));
        let second = runtime.bmc_lease(String::from("https://10.0.0.5:443"));
        let other = runtime.bmc_lease(String::from("https://10.0.0.6:443"));
        assert!(Arc::ptr_eq(&first.lock, &second.lock), "one lock per BMC");
        assert!(!Arc::ptr_eq(&first.lock, &other.lock));
        assert_eq!(runtime.bmc_lock_entries(), 2);
        drop(first);
        assert_eq!(runtime.bmc_lock_entries(), 2, "a call still holds 10.0.0.5");
        drop(second);
        assert_eq!(runtime.bmc_lock_entries(), 1);
        drop(other);
        assert_eq!(
            runtime.bmc_lock_entries(),
            0,
            "the map does not grow with BMCs seen"
        );
    }
}
