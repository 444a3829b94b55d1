//! The `ignition-generator` world: render the ignition a server's discovery boot runs.

use crate::types::{PluginError, Settings};

#[doc(hidden)]
pub mod bindings {
    crate::__wit_bindgen::generate!({
        world: "ignition-generator",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_ignition_generator",
        default_bindings_module: "ferrometal_plugin_sdk::ignition_generator::bindings",
        runtime_path: "ferrometal_plugin_sdk::__wit_bindgen::rt",
    });
}

use bindings::exports::ferrometal::plugin::generator as wit;

world_logging!();

/// What the host knows about the server being booted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    /// SMBIOS system UUID (lower case).
    pub system_uuid: String,
    /// Host name to give the discovery system, if any.
    pub hostname: Option<String>,
    /// MAC addresses the BMC reported.
    pub macs: Vec<String>,
    /// The Server's labels.
    pub labels: Vec<(String, String)>,
}

/// Everything a generator gets. Its `Debug` output hides the boot token.
#[derive(Clone, PartialEq, Eq)]
pub struct IgnitionRequest {
    /// The server.
    pub facts: ServerFacts,
    /// Where the probe posts its report.
    pub registry_url: String,
    /// The per-boot token the probe presents to the registry. Secret: do not log it.
    pub boot_token: String,
    /// SSH keys to authorise for debugging.
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
            .field("ssh_authorized_keys", &self.ssh_authorized_keys)
            .field("settings", &self.settings)
            .finish()
    }
}

/// An ignition generator. Functions are associated (no `self`).
pub trait IgnitionGenerator {
    /// Checks operator-provided settings; the default accepts anything.
    fn validate_settings(_settings: &Settings) -> Result<(), PluginError> {
        Ok(())
    }

    /// Returns Ignition v3 JSON; the host checks it before serving it.
    fn generate(request: &IgnitionRequest) -> Result<String, PluginError>;
}

#[doc(hidden)]
pub mod __glue {
    //! Conversions used by `register_ignition_generator!`; not part of the API.

    use super::*;

    pub use super::wit::Guest;

    wit_error_conversion!(bindings::ferrometal::plugin::types);

    pub fn validate_settings<G: IgnitionGenerator>(
        settings: Vec<(String, String)>,
    ) -> Result<(), wit::PluginError> {
        __install_host_logging();
        G::validate_settings(&settings).map_err(into_wit_error)
    }

    pub fn generate<G: IgnitionGenerator>(
        request: wit::Request,
    ) -> Result<String, wit::PluginError> {
        __install_host_logging();
        let request = IgnitionRequest {
            facts: ServerFacts {
                system_uuid: request.facts.system_uuid,
                hostname: request.facts.hostname,
                macs: request.facts.macs,
                labels: request.facts.labels,
            },
            registry_url: request.registry_url,
            boot_token: request.boot_token,
            ssh_authorized_keys: request.ssh_authorized_keys,
            settings: request.settings,
        };
        G::generate(&request).map_err(into_wit_error)
    }
}

/// Registers `$ty` (implementing [`IgnitionGenerator`]) as this component's export and
/// writes the metadata section the host checks before loading.
#[macro_export]
macro_rules! register_ignition_generator {
    ($ty:ident) => {
        const _: () = {
            use $crate::ignition_generator::__glue;
            use $crate::ignition_generator::bindings::exports::ferrometal::plugin::generator as __wit;

            impl __glue::Guest for $ty {
                fn validate_settings(
                    settings: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<(), __wit::PluginError> {
                    __glue::validate_settings::<$ty>(settings)
                }
                fn generate(
                    request: __wit::Request,
                ) -> ::std::result::Result<::std::string::String, __wit::PluginError> {
                    __glue::generate::<$ty>(request)
                }
            }

            $crate::__plugin_metadata!(concat!(
                r#"{"world":"ignition-generator","abi":""#, $crate::__abi_version!(),
                r#"","sdk":""#, $crate::__sdk_version!(),
                r#"","capabilities":[]}"#
            ));
        };
        $crate::ignition_generator::bindings::__export_ignition_generator!(
            $ty with_types_in $crate::ignition_generator::bindings
        );
    };
}
