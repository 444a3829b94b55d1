//! Ignition-generator plugins: render the ignition a server's discovery boot runs.

use std::path::Path;
use std::time::Duration;

use wasmtime::component::HasSelf;

use super::bindings::credential_lookup::ferrometal::plugin::log;
use super::bindings::ignition_generator::IgnitionGeneratorPre;
use super::bindings::ignition_generator::exports::ferrometal::plugin::generator as wit;
use super::error::{CallError, LoadError};
use super::host::HostState;
use super::metadata::World;
use super::runtime::{Limits, PluginComponent, PluginHandle, PluginRuntime, plugin_handle_methods};
use super::types::GuestError;

/// Default limits of ignition generation: a pure function of small inputs.
pub const DEFAULT_LIMITS: Limits = Limits {
    memory_bytes: 64 << 20,
    deadline: Duration::from_secs(2),
};

/// What the host knows about the server being booted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    /// SMBIOS system UUID (lower case).
    pub system_uuid: String,
    /// Host name, if any.
    pub hostname: Option<String>,
    /// MAC addresses the BMC reported.
    pub macs: Vec<String>,
    /// The Server's labels.
    pub labels: Vec<(String, String)>,
}

/// The input of a generation. Its `Debug` output hides the boot token.
#[derive(Clone, PartialEq, Eq)]
pub struct IgnitionRequest {
    /// The server.
    pub facts: ServerFacts,
    /// Where the probe posts its report.
    pub registry_url: String,
    /// The per-boot token the probe presents to the registry.
    pub boot_token: String,
    /// SSH keys to authorise.
    pub ssh_authorized_keys: Vec<String>,
    /// Operator-provided settings.
    pub settings: Vec<(String, String)>,
}

impl std::fmt::Debug for IgnitionRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IgnitionRequest")
            .field("facts", &self.facts)
            .field("registry_url", &self.registry_url)
            .field("boot_token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A loaded ignition generator. Cheap to clone.
#[derive(Clone)]
pub struct IgnitionGeneratorPlugin {
    handle: PluginHandle<IgnitionGeneratorPre<HostState>>,
}

plugin_handle_methods!(IgnitionGeneratorPlugin);

impl PluginRuntime {
    /// Loads an ignition generator from `path`.
    pub fn load_ignition_generator(
        &self,
        path: &Path,
    ) -> Result<IgnitionGeneratorPlugin, LoadError> {
        self.load_ignition_generator_granted(&PluginComponent::read(path)?, &[])
    }

    /// [`load_ignition_generator`](Self::load_ignition_generator) with `grants` given to this
    /// plugin beyond the ones the runtime gives every plugin.
    pub fn load_ignition_generator_granted(
        &self,
        component: &PluginComponent,
        grants: &[String],
    ) -> Result<IgnitionGeneratorPlugin, LoadError> {
        let handle = self.link(
            component,
            World::IgnitionGenerator,
            grants,
            DEFAULT_LIMITS,
            |linker, _| log::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state),
            IgnitionGeneratorPre::new,
        )?;
        Ok(IgnitionGeneratorPlugin { handle })
    }
}

impl IgnitionGeneratorPlugin {
    /// Asks the generator whether `settings` are acceptable.
    pub async fn validate_settings(&self, settings: &[(String, String)]) -> Result<(), CallError> {
        let settings = settings.to_vec();
        self.handle
            .call("validate-settings", None, async |plugin, store| {
                let generator = plugin.ferrometal_plugin_generator();
                generator.call_validate_settings(store, &settings).await
            })
            .await
    }

    /// Renders the ignition for `request`. The result is checked to be an Ignition v3 JSON
    /// document before it is returned; anything else is the plugin's error.
    #[tracing::instrument(skip(self, request), fields(plugin = %self.handle.identity.name, server = %request.facts.system_uuid))]
    pub async fn generate(&self, request: &IgnitionRequest) -> Result<String, CallError> {
        let request = wit::Request {
            facts: wit::ServerFacts {
                system_uuid: request.facts.system_uuid.clone(),
                hostname: request.facts.hostname.clone(),
                macs: request.facts.macs.clone(),
                labels: request.facts.labels.clone(),
            },
            registry_url: request.registry_url.clone(),
            boot_token: request.boot_token.clone(),
            ssh_authorized_keys: request.ssh_authorized_keys.clone(),
            settings: request.settings.clone(),
        };
        self.handle
            .call("generate", None, async |plugin, store| {
                let generator = plugin.ferrometal_plugin_generator();
                let result = generator.call_generate(store, &request).await?;
                Ok(result
                    .map_err(GuestError::from)
                    .and_then(|ignition| check_ignition(&ignition).map(|()| ignition)))
            })
            .await
    }
}

/// Checks that `text` is an Ignition v3 document (a JSON object whose `ignition.version`
/// is `3.x.y`).
fn check_ignition(text: &str) -> Result<(), GuestError> {
    let invalid =
        |why: String| GuestError::Other(Some(format!("generated an invalid ignition: {why}")));
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|error| invalid(format!("not JSON ({error})")))?;
    let version = value["ignition"]["version"]
        .as_str()
        .ok_or_else(|| invalid(String::from("no ignition.version")))?;
    if version.starts_with("3.") {
        Ok(())
    } else {
        Err(invalid(format!("ignition.version {version:?} is not 3.x")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignition_v3_documents_pass() {
        assert!(check_ignition(r#"{"ignition":{"version":"3.4.0"}}"#).is_ok());
    }

    #[test]
    fn other_documents_are_the_plugins_error() {
        for (text, why) in [
            ("not json", "not JSON"),
            ("{}", "no ignition.version"),
            (r#"{"ignition":{"version":"2.2.0"}}"#, "is not 3.x"),
        ] {
            let error = check_ignition(text).expect_err(text).to_string();
            assert!(error.contains(why), "{error}");
        }
    }
}
