//! The reconcilers. Each has a pure `plan` (a function of what it observed, table-tested)
//! and a thin I/O shell that applies the plan with server-side apply.

pub mod backoff;
pub mod bmc;
pub mod bmc_rotation;
pub mod bmc_work;
pub mod bootconfig;
pub mod caches;
pub mod claim;
pub mod classification;
pub mod connection;
pub mod credentials;
pub mod endpoint;
pub mod hardware_facts;
pub mod inventory;
pub mod inventory_check;
pub mod operations;
pub mod provisioning;
pub mod report;
pub mod rotation;
pub mod server;
pub mod status;
pub mod system_uuids;
pub mod triggers;
pub mod watch_index;
pub mod written;

/// Runs a controller; after `shutdown` ends it at once if its store never became ready.
///
/// kube's runner reconciles nothing before the controller's store is ready, and a shutdown
/// that comes first also stops the watch that would make it ready, so the runner would wait
/// for it forever. A store that is not ready at shutdown never was (readiness does not go
/// back): no reconcile ever ran, and there is nothing to let finish.
pub async fn until_started_or_stopped<K>(
    controller: impl Future<Output = ()>,
    store: kube::runtime::reflector::Store<K>,
    shutdown: impl Future<Output = ()>,
) where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    use futures::FutureExt;
    let never_started = async {
        shutdown.await;
        if store.wait_until_ready().now_or_never().is_none() {
            return;
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        biased;
        () = controller => {}
        () = never_started => {}
    }
}

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
