//! Errors of loading and calling plugins. Every one names the plugin; none panics the host.

use std::path::PathBuf;
use std::time::Duration;

use super::metadata::{AbiRange, World};
use super::runtime::PluginIdentity;
use super::types::GuestError;

/// What is wrong with a plugin's metadata section.
#[derive(Debug, thiserror::Error)]
pub enum MetadataProblem {
    /// The file is not a WebAssembly binary.
    #[error("not a WebAssembly component: {0}")]
    NotWasm(String),
    /// No metadata section: not built with plugin-sdk.
    #[error(
        "no `ferrometal:plugin-metadata` section; build the plugin with ferrometal-plugin-sdk and its register macro"
    )]
    Missing,
    /// The section is not the expected JSON.
    #[error("malformed metadata section: {0}")]
    Malformed(String),
    /// Built for an ABI this host does not run.
    #[error(
        "built for plugin ABI {found}, but this ferrometal supports {supported}; rebuild the plugin with a matching ferrometal-plugin-sdk"
    )]
    UnsupportedAbi {
        /// The plugin's ABI version.
        found: String,
        /// What the host supports.
        supported: AbiRange,
    },
}

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read plugin {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The metadata is missing, malformed or names an unsupported ABI.
    #[error("cannot load plugin {path}: {problem}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        problem: MetadataProblem,
    },
    /// The plugin implements another world than the caller needs.
    #[error("cannot load plugin {path} as a {expected} plugin: it implements {found}")]
    WrongWorld {
        /// The file.
        path: PathBuf,
        /// The world the caller asked for.
        expected: World,
        /// The world in the plugin's metadata.
        found: World,
    },
    /// The plugin asks for a capability the operator did not grant.
    #[error(
        "cannot load plugin {path}: it requests capability `{capability}`, which is not granted to it"
    )]
    CapabilityDenied {
        /// The file.
        path: PathBuf,
        /// The capability.
        capability: String,
    },
    /// The plugin uses a capability's import without declaring the capability.
    #[error(
        "cannot load plugin {path}: it uses `{capability}` without declaring it; add it to the register macro's capabilities"
    )]
    UndeclaredCapability {
        /// The file.
        path: PathBuf,
        /// The capability.
        capability: String,
    },
    /// The plugin imports an interface the host never provides to plugins (sockets, name
    /// lookups).
    #[error(
        "cannot load plugin {path}: it imports `{interface}`, which ferrometal does not provide to plugins (no sockets or name lookups; a driver reaches its BMC through bmc-http)"
    )]
    ForbiddenImport {
        /// The file.
        path: PathBuf,
        /// The imported interface, e.g. `wasi:sockets/tcp@0.2.6`.
        interface: String,
    },
    /// Compilation or import type-checking failed.
    #[error("cannot load plugin {path} ({world}): {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Its world.
        world: World,
        /// wasmtime's explanation.
        message: String,
    },
    /// The file's sha256 is not the one pinned for its name in the plugin configuration.
    #[error(
        "refusing plugin {path}: its sha256 is {actual}, but the plugin configuration pins {expected}"
    )]
    DigestMismatch {
        /// The file.
        path: PathBuf,
        /// The pinned digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// A plugin pinned in the plugin configuration is not in the plugin directory.
    #[error("plugin {name} is pinned to sha256 {expected} but there is no {name}.wasm in {dir}")]
    PinnedMissing {
        /// The plugin's name.
        name: String,
        /// The pinned digest.
        expected: String,
        /// The plugin directory.
        dir: PathBuf,
    },
    /// The engine could not be set up.
    #[error("cannot start the plugin engine: {0}")]
    Engine(String),
    /// A plugin configured by registry reference was refused before anything was compiled.
    #[error("plugin {name} refused: {source}")]
    Artifact {
        /// The configured name.
        name: String,
        /// Why.
        #[source]
        source: crate::plugins::oci::fetch::FetchError,
    },
}

impl LoadError {
    /// Maps a wasmtime compile or link error for the plugin at `path` to [`LoadError::Invalid`].
    pub(crate) fn invalid(
        path: &std::path::Path,
        world: World,
    ) -> impl Fn(wasmtime::Error) -> Self {
        let path = path.to_path_buf();
        move |error| Self::Invalid {
            path: path.clone(),
            world,
            message: format!("{error:#}"),
        }
    }
}

/// What went wrong in a call.
#[derive(Debug, thiserror::Error)]
pub enum CallErrorKind {
    /// The plugin ran past its deadline and was stopped.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The plugin tried to use more memory than its limit.
    #[error("exceeded its memory limit of {limit_bytes} bytes (asked for {requested_bytes})")]
    ResourceExhausted {
        /// The limit.
        limit_bytes: usize,
        /// What the plugin asked for.
        requested_bytes: usize,
    },
    /// The plugin's memory could not grow because the calls running now (this one included)
    /// hold the whole memory budget.
    #[error(
        "could not grow its memory to {requested_bytes} bytes: the plugin memory budget of {budget_bytes} bytes is used up ({held_bytes} bytes by this call, the rest by the other calls running now)"
    )]
    MemoryBudgetExhausted {
        /// The budget (`--plugin-memory-budget-mib`).
        budget_bytes: usize,
        /// The memory size the plugin asked for.
        requested_bytes: usize,
        /// What this call held when it was refused.
        held_bytes: usize,
    },
    /// The plugin trapped (a panic, an invalid operation).
    #[error("crashed: {reason}{}\n{backtrace}", panic.as_ref().map(|p| format!(" ({p})")).unwrap_or_default())]
    Crashed {
        /// The trap.
        reason: String,
        /// The panic message the plugin logged before trapping, if any.
        panic: Option<String>,
        /// The WebAssembly backtrace.
        backtrace: String,
    },
    /// The plugin returned an error for the operation.
    #[error("{0}")]
    Plugin(#[from] GuestError),
    /// The host could not set up the call.
    #[error("host error: {0}")]
    Host(String),
}

impl CallErrorKind {
    /// A short label for metrics (`outcome`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::ResourceExhausted { .. } => "resource_exhausted",
            Self::MemoryBudgetExhausted { .. } => "memory_budget_exhausted",
            Self::Crashed { .. } => "crashed",
            Self::Plugin(_) => "plugin_error",
            Self::Host(_) => "host_error",
        }
    }
}

/// A failed plugin call, naming the plugin, its world and the operation.
#[derive(Debug, thiserror::Error)]
#[error("plugin {} (sha256 {}, {} world, sdk {}) {operation}: {kind}", plugin.name, plugin.short_digest(), plugin.world, plugin.sdk)]
pub struct CallError {
    /// Which plugin.
    pub plugin: PluginIdentity,
    /// Which operation, e.g. `lookup`.
    pub operation: &'static str,
    /// What went wrong (part of the message, so not repeated as a source).
    pub kind: CallErrorKind,
}

/// Ends a call from inside a host import: the call's deadline passed while the plugin waited
/// on the host (e.g. a BMC request cut short by the deadline). Returned to wasmtime as the
/// import's error, it traps the plugin, which cannot swallow it, and the call ends as
/// [`CallErrorKind::Timeout`].
#[derive(Debug, thiserror::Error)]
#[error("the call's deadline passed during a host call")]
pub(crate) struct DeadlineExceeded;
