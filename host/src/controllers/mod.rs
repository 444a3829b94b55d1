//! The reconcilers. Each has a pure `plan` (a function of what it observed, table-tested)
//! and a thin I/O shell that applies the plan with server-side apply.

pub mod backoff;
pub mod bmc;
pub mod bmc_work;
pub mod bootconfig;
pub mod caches;
pub mod connection;
pub mod credentials;
pub mod endpoint;
pub mod inventory;
pub mod report;
pub mod server;
pub mod system_uuids;
pub mod triggers;
pub mod watch_index;
pub mod written;

/// An object's key in the controllers' own maps: `namespace/name`, or `name` for a
/// cluster-scoped object.
pub fn object_key(object: &impl kube::ResourceExt) -> String {
    match object.namespace() {
        Some(namespace) => format!("{namespace}/{}", object.name_any()),
        None => object.name_any(),
    }
}

/// Errors of one reconcile, shared by every reconciler (requeued with backoff by its error
/// policy; what users should see goes into conditions instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error("kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
}
