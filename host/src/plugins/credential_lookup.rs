//! Credential-lookup plugins: map a BMC's MAC address to how to talk to it.

use std::path::Path;
use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker};

use super::bindings::credential_lookup::CredentialLookup as Bindings;
use super::bindings::credential_lookup::CredentialLookupPre;
use super::bindings::credential_lookup::exports::ferrometal::plugin::mac_lookup as wit;
use super::cache::CacheOutcome;
use super::error::{CallError, CallErrorKind, LoadError};
use super::host::HostState;
use super::metadata::World;
use super::runtime::{Limits, PluginIdentity, PluginRuntime};
use super::types::{BmcProfile, DefaultCredential, GuestError};

/// Default limits of credential-lookup calls: a pure table lookup needs little of either.
pub const DEFAULT_LIMITS: Limits = Limits {
    memory_bytes: 32 << 20,
    deadline: Duration::from_secs(1),
};

/// A loaded credential-lookup plugin. Cheap to clone.
#[derive(Clone)]
pub struct CredentialLookupPlugin {
    runtime: PluginRuntime,
    identity: PluginIdentity,
    pre: CredentialLookupPre<HostState>,
    limits: Limits,
    cache: CacheOutcome,
}

impl std::fmt::Debug for CredentialLookupPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialLookupPlugin")
            .field("identity", &self.identity)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl PluginRuntime {
    /// Loads a credential-lookup plugin from `path` with the default limits.
    pub fn load_credential_lookup(&self, path: &Path) -> Result<CredentialLookupPlugin, LoadError> {
        let prepared = self.prepare(path, World::CredentialLookup)?;
        let invalid = |error: wasmtime::Error| LoadError::Invalid {
            path: path.to_path_buf(),
            world: World::CredentialLookup,
            message: format!("{error:#}"),
        };
        let mut linker = Linker::<HostState>::new(self.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(invalid)?;
        Bindings::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)
            .map_err(invalid)?;
        let instance_pre = linker
            .instantiate_pre(&prepared.component)
            .map_err(invalid)?;
        let pre = CredentialLookupPre::new(instance_pre).map_err(invalid)?;
        Ok(CredentialLookupPlugin {
            runtime: self.clone(),
            identity: prepared.identity,
            pre,
            limits: DEFAULT_LIMITS,
            cache: prepared.cache,
        })
    }
}

impl CredentialLookupPlugin {
    /// Which plugin this is.
    pub fn identity(&self) -> &PluginIdentity {
        &self.identity
    }

    /// Where its machine code came from when it was loaded.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache
    }

    /// The same plugin with other call limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Looks `mac` up; `Ok(None)` means the plugin does not know it.
    #[tracing::instrument(skip(self), fields(plugin = %self.identity.name))]
    pub async fn lookup(&self, mac: &str) -> Result<Option<BmcProfile>, CallError> {
        self.call("lookup", async |store, bindings| {
            let result = bindings
                .ferrometal_plugin_mac_lookup()
                .call_lookup(store, mac)
                .await?;
            Ok(result
                .map(|profile| profile.map(BmcProfile::from))
                .map_err(GuestError::from))
        })
        .await
    }

    /// Asks the plugin whether `settings` are acceptable.
    #[tracing::instrument(skip(self, settings), fields(plugin = %self.identity.name))]
    pub async fn validate_settings(&self, settings: &[(String, String)]) -> Result<(), CallError> {
        let settings = settings.to_vec();
        self.call("validate-settings", async |store, bindings| {
            let result = bindings
                .ferrometal_plugin_mac_lookup()
                .call_validate_settings(store, &settings)
                .await?;
            Ok(result.map_err(GuestError::from))
        })
        .await
    }

    async fn call<R>(
        &self,
        operation: &'static str,
        body: impl AsyncFnOnce(&mut Store<HostState>, &Bindings) -> wasmtime::Result<Result<R, GuestError>>,
    ) -> Result<R, CallError> {
        let started = Instant::now();
        let result = self.call_inner(operation, body).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(kind) => kind.metric_label(),
        };
        self.runtime
            .record(&self.identity, operation, outcome, started.elapsed());
        result.map_err(|kind| CallError {
            plugin: self.identity.clone(),
            operation,
            kind,
        })
    }

    async fn call_inner<R>(
        &self,
        operation: &'static str,
        body: impl AsyncFnOnce(&mut Store<HostState>, &Bindings) -> wasmtime::Result<Result<R, GuestError>>,
    ) -> Result<R, CallErrorKind> {
        let _slot = self.runtime.call_slot().await?;
        let limits = self.limits;
        let mut store = self.runtime.store(&self.identity, operation, limits);
        let run = async {
            let bindings = self.pre.instantiate_async(&mut store).await?;
            body(&mut store, &bindings).await
        };
        let outcome = tokio::time::timeout(PluginRuntime::outer_timeout(limits), run).await;
        match outcome {
            Err(_) => Err(CallErrorKind::Timeout(limits.deadline)),
            Ok(Err(error)) => Err(PluginRuntime::classify(&store, &error, limits)),
            Ok(Ok(Err(guest))) => Err(CallErrorKind::Plugin(guest)),
            Ok(Ok(Ok(value))) => Ok(value),
        }
    }
}

impl From<wit::PluginError> for GuestError {
    fn from(error: wit::PluginError) -> Self {
        match error {
            wit::PluginError::InvalidInput(text) => Self::InvalidInput(text),
            wit::PluginError::Unsupported(text) => Self::Unsupported(text),
            wit::PluginError::Unauthorized(text) => Self::Unauthorized(text),
            wit::PluginError::Unreachable(text) => Self::Unreachable(text),
            wit::PluginError::BmcFault(fault) => Self::BmcFault {
                http_status: fault.http_status,
                message_id: fault.message_id,
                message: fault.message,
            },
            wit::PluginError::Other(text) => Self::Other(text),
        }
    }
}

impl From<wit::BmcProfile> for BmcProfile {
    fn from(profile: wit::BmcProfile) -> Self {
        Self {
            manufacturer: profile.manufacturer,
            protocol: profile.protocol,
            scheme: profile.scheme,
            port: profile.port,
            default_credentials: profile
                .default_credentials
                .into_iter()
                .map(|credential| DefaultCredential {
                    username: credential.username,
                    password: credential.password,
                })
                .collect(),
            console_protocol: profile.console_protocol,
            console_port: profile.console_port,
        }
    }
}
