//! Credential-lookup plugins: map a BMC's MAC address to how to talk to it.
//!
//! The world has no capabilities, so answers are cached per settings and MAC
//! ([`LookupCache`]): the plugin runs once per MAC, not once per reconcile.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::HasSelf;

use super::bindings::credential_lookup::CredentialLookup as Bindings;
use super::bindings::credential_lookup::CredentialLookupPre;
use super::bindings::credential_lookup::exports::ferrometal::plugin::mac_lookup as wit;
use super::error::{CallError, LoadError};
use super::host::HostState;
use super::lookup_cache::{ANSWER_CAPACITY, LookupCache};
use super::metadata::World;
use super::runtime::{Limits, PluginComponent, PluginHandle, PluginRuntime, plugin_handle_methods};
use super::types::{BmcProfile, DefaultCredential, GuestError};

/// Default limits of credential-lookup calls: a pure table lookup needs little of either.
pub const DEFAULT_LIMITS: Limits = Limits {
    memory_bytes: 32 << 20,
    deadline: Duration::from_secs(1),
};

/// A loaded credential-lookup plugin. Cheap to clone; clones share the cache of answers.
#[derive(Clone)]
pub struct CredentialLookupPlugin {
    handle: PluginHandle<CredentialLookupPre<HostState>>,
    cache: Arc<LookupCache>,
}

plugin_handle_methods!(CredentialLookupPlugin);

impl PluginRuntime {
    /// Loads a credential-lookup plugin from `path` with the default limits.
    pub fn load_credential_lookup(&self, path: &Path) -> Result<CredentialLookupPlugin, LoadError> {
        self.load_credential_lookup_granted(&PluginComponent::read(path)?, &[])
    }

    /// [`load_credential_lookup`](Self::load_credential_lookup) with `grants` given to this
    /// plugin beyond the ones the runtime gives every plugin (this world has no capabilities
    /// to request today, so they only matter to a plugin that asks for one anyway: it is
    /// refused as unknown).
    pub fn load_credential_lookup_granted(
        &self,
        component: &PluginComponent,
        grants: &[String],
    ) -> Result<CredentialLookupPlugin, LoadError> {
        let handle = self.link(
            component,
            World::CredentialLookup,
            grants,
            DEFAULT_LIMITS,
            |linker, _| {
                Bindings::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)
            },
            CredentialLookupPre::new,
        )?;
        Ok(CredentialLookupPlugin {
            handle,
            cache: Arc::new(LookupCache::new(self.metrics().clone(), ANSWER_CAPACITY)),
        })
    }
}

impl CredentialLookupPlugin {
    /// Looks `mac` up with the operator's `settings`; `Ok(None)` means the plugin does not
    /// know the MAC. Answers (not errors) are cached per settings and MAC value; what is not
    /// a MAC goes to the plugin every time.
    #[tracing::instrument(skip(self, settings), fields(plugin = %self.handle.identity.name))]
    pub async fn lookup(
        &self,
        mac: &str,
        settings: &[(String, String)],
    ) -> Result<Option<BmcProfile>, CallError> {
        self.cache
            .lookup(mac, settings, async || {
                // The bindings take the WIT's `settings` type, a `Vec`.
                let settings = settings.to_vec();
                self.handle
                    .call("lookup", None, async |plugin, store| {
                        let lookup = plugin.ferrometal_plugin_mac_lookup();
                        lookup.call_lookup(store, mac, &settings).await
                    })
                    .await
                    .map(|profile| profile.map(BmcProfile::from))
            })
            .await
    }

    /// Asks the plugin whether `settings` are acceptable; an acceptance is cached.
    #[tracing::instrument(skip(self, settings), fields(plugin = %self.handle.identity.name))]
    pub async fn validate_settings(&self, settings: &[(String, String)]) -> Result<(), CallError> {
        self.cache
            .validate(settings, async || {
                let settings = settings.to_vec();
                self.handle
                    .call("validate-settings", None, async |plugin, store| {
                        let lookup = plugin.ferrometal_plugin_mac_lookup();
                        lookup.call_validate_settings(store, &settings).await
                    })
                    .await
            })
            .await
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
