//! The sandboxed WebAssembly plugin runtime.
//!
//! Vendors extend ferrometal with WebAssembly components built against the WIT package
//! `ferrometal:plugin` (see `wit/`). This module loads them and runs their calls so that
//! nothing a plugin does can take the operator down:
//!
//! - **Loading** ([`PluginRuntime::load`]): the file's sha256 is its identity; the metadata
//!   custom section is read and the ABI version checked *before* compiling; compiled code is
//!   cached on disk keyed by digest and engine compatibility hash, and a corrupt cache entry is
//!   recompiled, and an entry is used only when it matches the component's digest and its own
//!   checksum; imports are type-checked once into an `InstancePre`.
//! - **Calls**: a fresh `Store` per call, with a memory cap, a CPU deadline enforced by epoch
//!   interruption (a ticker thread advances the epoch) plus an outer timeout, a global cap
//!   on concurrent calls and a memory budget all calls share ([`budget`]). A driver call
//!   first waits for its BMC (one call per BMC at a time), then for its memory reservation,
//!   then for a global slot, so calls queued behind a slow BMC hold no slot. A BMC request cut
//!   short by the deadline traps the plugin. Traps, timeouts and memory exhaustion come back
//!   as typed [`CallError`]s naming plugin, version, world and operation. Credential-lookup
//!   answers are cached per settings and MAC (that world has no capabilities, so a lookup is
//!   a pure function of them): a known MAC does not instantiate the plugin again.
//! - **Capabilities**: WASI is linked with its deny-by-default context (no files, environment)
//!   and without `wasi:sockets` at all (a plugin importing it is refused at load); worlds get
//!   only the host interfaces they declare, and capabilities granted to every plugin or, by
//!   the plugin configuration, to one.
//!
//! Generated binding types stay inside this module; controllers see the domain types in
//! [`types`].

mod bindings;
mod bmc_http;
mod budget;
mod cache;
mod engine;
mod error;
mod host;
mod lookup_cache;
mod metadata;
mod metrics;
mod runtime;

pub mod accounts;
pub mod bmc_driver;
pub mod catalog;
pub mod credential_lookup;
pub mod hardware;
pub mod ignition_generator;
pub mod inspect;
pub mod oci;
pub mod server_classifier;
pub mod types;

pub use budget::DEFAULT_MEMORY_BUDGET;
pub use cache::CacheOutcome;
pub use engine::EPOCH_TICK;
pub use error::{CallError, CallErrorKind, LoadError, MetadataProblem};
pub use metadata::{PluginMetadata, SUPPORTED_ABI, World, forbidden_imports};
pub use metrics::PluginMetrics;
pub use runtime::{
    FORBIDDEN_IMPORTS, KNOWN_CAPABILITIES, Limits, PluginComponent, PluginIdentity, PluginRuntime,
    RuntimeConfig, plugin_name,
};
