//! The `credential-lookup` world: map a BMC's MAC address to how to talk to it.

use crate::types::{PluginError, Settings};

#[doc(hidden)]
pub mod bindings {
    crate::__wit_bindgen::generate!({
        world: "credential-lookup",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_credential_lookup",
        default_bindings_module: "ferrometal_plugin_sdk::credential_lookup::bindings",
        runtime_path: "ferrometal_plugin_sdk::__wit_bindgen::rt",
    });
}

use bindings::exports::ferrometal::plugin::mac_lookup as wit;

/// A default credential to try on a BMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultCredential {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// How to talk to a BMC whose MAC matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BmcProfile {
    /// Manufacturer (informational).
    pub manufacturer: String,
    /// Protocol name, e.g. `Redfish`.
    pub protocol: String,
    /// `http` or `https`; `None` leaves the operator's default.
    pub scheme: Option<String>,
    /// Management port.
    pub port: u16,
    /// Credentials to try, in order.
    pub default_credentials: Vec<DefaultCredential>,
    /// Console protocol, e.g. `SSH`.
    pub console_protocol: Option<String>,
    /// Console port.
    pub console_port: Option<u16>,
}

/// A credential-lookup plugin. Functions are associated (no `self`): the host runs every call
/// in a fresh instance.
pub trait CredentialLookup {
    /// Checks the operator-provided settings; the default accepts anything.
    fn validate_settings(_settings: &Settings) -> Result<(), PluginError> {
        Ok(())
    }

    /// The profile for `mac` (as given by the Endpoint), or `None` for an unknown MAC.
    /// `settings` are the operator's (e.g. the database itself).
    fn lookup(mac: &str, settings: &Settings) -> Result<Option<BmcProfile>, PluginError>;
}

#[doc(hidden)]
pub fn __validate_settings<T: CredentialLookup>(
    settings: Vec<(String, String)>,
) -> Result<(), wit::PluginError> {
    T::validate_settings(&settings).map_err(into_wit_error)
}

#[doc(hidden)]
pub fn __lookup<T: CredentialLookup>(
    mac: String,
    settings: Vec<(String, String)>,
) -> Result<Option<wit::BmcProfile>, wit::PluginError> {
    T::lookup(&mac, &settings)
        .map(|profile| {
            profile.map(|profile| wit::BmcProfile {
                manufacturer: profile.manufacturer,
                protocol: profile.protocol,
                scheme: profile.scheme,
                port: profile.port,
                default_credentials: profile
                    .default_credentials
                    .into_iter()
                    .map(|c| wit::DefaultCredential {
                        username: c.username,
                        password: c.password,
                    })
                    .collect(),
                console_protocol: profile.console_protocol,
                console_port: profile.console_port,
            })
        })
        .map_err(into_wit_error)
}

wit_error_conversion!(bindings::ferrometal::plugin::types);

world_logging!();

/// Registers `$ty` (implementing [`CredentialLookup`]) as this component's export and writes
/// the metadata section the host checks before loading.
#[macro_export]
macro_rules! register_credential_lookup {
    ($ty:ident) => {
        const _: () = {
            use $crate::credential_lookup::bindings::exports::ferrometal::plugin::mac_lookup as __wit;

            impl __wit::Guest for $ty {
                fn validate_settings(
                    settings: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<(), __wit::PluginError> {
                    $crate::credential_lookup::__install_host_logging();
                    $crate::credential_lookup::__validate_settings::<$ty>(settings)
                }

                fn lookup(
                    mac: ::std::string::String,
                    settings: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<::std::option::Option<__wit::BmcProfile>, __wit::PluginError> {
                    $crate::credential_lookup::__install_host_logging();
                    $crate::credential_lookup::__lookup::<$ty>(mac, settings)
                }
            }

            $crate::__plugin_metadata!(concat!(
                r#"{"world":"credential-lookup","abi":""#, $crate::__abi_version!(),
                r#"","sdk":""#, $crate::__sdk_version!(),
                r#"","capabilities":[]}"#
            ));
        };
        $crate::credential_lookup::bindings::__export_credential_lookup!(
            $ty with_types_in $crate::credential_lookup::bindings
        );
    };
}
