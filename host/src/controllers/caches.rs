//! The operator's watch caches (reflector stores) of the objects its reconcilers read, so a
//! reconcile reads from memory instead of asking the API server. Each store is filled by the
//! watch of the controller that already watches the kind; [`CacheWriters`] hands the writing
//! ends to the controllers' wiring.
//!
//! An object a store does not hold (not created yet when the watch lags, or the store is
//! still listing after a start) is read from the API server instead, so a cache miss is never
//! taken for "does not exist" without asking.

use std::sync::Arc;

use futures::Stream;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

use crate::api::{BMC, BMCSecret, Endpoint, Server, ServerBootConfiguration, ServerClaim};

/// Read ends of the watch caches.
#[derive(Clone)]
pub struct Caches {
    /// BMCs (the BMC controller's watch).
    pub bmcs: Store<BMC>,
    /// BMCSecrets (the BMC controller's watch).
    pub bmc_secrets: Store<BMCSecret>,
    /// Endpoints (the Endpoint controller's watch).
    pub endpoints: Store<Endpoint>,
    /// Servers (the Server controller's watch).
    pub servers: Store<Server>,
    /// The discovery namespace's boot configurations (the Server controller's watch).
    pub boot_configurations: Store<ServerBootConfiguration>,
    /// ServerClaims in the watched namespace (the claim controller's watch).
    pub server_claims: Store<ServerClaim>,
}

/// Write ends of the watch caches, one per watch.
pub struct CacheWriters {
    /// Fed by the BMC watch.
    pub bmcs: Writer<BMC>,
    /// Fed by the BMCSecret watch.
    pub bmc_secrets: Writer<BMCSecret>,
    /// Fed by the Endpoint watch.
    pub endpoints: Writer<Endpoint>,
    /// Fed by the Server watch.
    pub servers: Writer<Server>,
    /// Fed by the boot configuration watch.
    pub boot_configurations: Writer<ServerBootConfiguration>,
    /// Fed by the claim watch.
    pub server_claims: Writer<ServerClaim>,
}

impl Caches {
    /// Empty caches and their writers.
    pub fn new() -> (Arc<Self>, CacheWriters) {
        let (bmcs, bmcs_writer) = reflector::store();
        let (bmc_secrets, bmc_secrets_writer) = reflector::store();
        let (endpoints, endpoints_writer) = reflector::store();
        let (servers, servers_writer) = reflector::store();
        let (boot_configurations, boot_configurations_writer) = reflector::store();
        let (server_claims, server_claims_writer) = reflector::store();
        (
            Arc::new(Self {
                bmcs,
                bmc_secrets,
                endpoints,
                servers,
                boot_configurations,
                server_claims,
            }),
            CacheWriters {
                bmcs: bmcs_writer,
                bmc_secrets: bmc_secrets_writer,
                endpoints: endpoints_writer,
                servers: servers_writer,
                boot_configurations: boot_configurations_writer,
                server_claims: server_claims_writer,
            },
        )
    }
}

/// The watch of every object `api` reaches, restarted with kube's default backoff, its
/// objects without `metadata.managedFields`. Server-side apply's record of who owns which
/// field is the largest part of an object several field managers write (three write a
/// discovered Server's status), and no reconciler reads it: leaving it out of the watch
/// caches keeps the operator's memory to what it decides on.
pub fn watch<K>(api: Api<K>) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|object: &mut K| object.meta_mut().managed_fields = None)
}

/// The object `name` (in `api`'s namespace, for namespaced kinds) from `store`, or from the
/// API server (through `api`) when the store does not hold it.
pub async fn cached_or_get<K>(
    store: &Store<K>,
    api: &Api<K>,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Arc<K>>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + 'static,
{
    let reference = match namespace {
        Some(namespace) => ObjectRef::new(name).within(namespace),
        None => ObjectRef::new(name),
    };
    if let Some(object) = store.get(&reference) {
        return Ok(Some(object));
    }
    Ok(api.get_opt(name).await?.map(Arc::new))
}

/// What a controller last applied to each object it keeps (by name), so that an apply that
/// would change nothing — still a write to the API server — is skipped.
#[derive(Default)]
pub struct AppliedObjects {
    prints: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl AppliedObjects {
    /// Server-side-applies `desired` to `name` under `manager`, unless exactly this was
    /// applied before and the object still `exists` (in the watch cache). Returns whether it
    /// wrote.
    pub async fn apply<K>(
        &self,
        api: &Api<K>,
        name: &str,
        manager: &str,
        desired: &serde_json::Value,
        exists: bool,
    ) -> Result<bool, kube::Error>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let print = super::triggers::fingerprint(desired.to_string());
        let unchanged = self
            .prints
            .lock()
            .expect("applied lock")
            .get(name)
            .is_some_and(|applied| *applied == print);
        if exists && unchanged {
            return Ok(false);
        }
        api.patch(
            name,
            &kube::api::PatchParams::apply(manager).force(),
            &kube::api::Patch::Apply(desired),
        )
        .await?;
        self.prints
            .lock()
            .expect("applied lock")
            .insert(name.to_owned(), print);
        Ok(true)
    }

    /// Forgets `name`, which was deleted: its next apply writes even if the watch cache
    /// still holds it (the deletion may reach the reconciler before the cache).
    pub fn forget(&self, name: &str) {
        self.prints.lock().expect("applied lock").remove(name);
    }
}
