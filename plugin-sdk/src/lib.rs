//! Guest SDK for ferrometal plugins.
//!
//! A plugin is a `cdylib` crate that depends on this SDK with exactly one world feature
//! enabled, implements that world's trait on a type of its own and calls the world's
//! `register_*!` macro once. The SDK owns the generated WIT bindings; plugin authors never
//! depend on wit-bindgen.
//!
//! Worlds (ABI `ferrometal:plugin@0.1.0`):
//! - `credential-lookup` — [`credential_lookup::CredentialLookup`], registered with
//!   [`register_credential_lookup!`].
//!
//! - `bmc-driver` — [`bmc_driver::BmcDriver`], registered with [`register_bmc_driver!`]; HTTP to
//!   the BMC goes through [`bmc_driver::http`], generic over a [`bmc_driver::http::Transport`]
//!   so driver logic can be unit-tested natively.
//! - `ignition-generator` — [`ignition_generator::IgnitionGenerator`], registered with
//!   [`register_ignition_generator!`].

// Generated code names the SDK by its crate name, also from inside the SDK.
extern crate self as ferrometal_plugin_sdk;

/// Defines `into_wit_error`, turning the SDK's [`types::PluginError`] into the `plugin-error`
/// of one world's generated bindings (each world generates its own copy of `types`).
#[cfg(any(
    feature = "credential-lookup",
    feature = "bmc-driver",
    feature = "ignition-generator"
))]
macro_rules! wit_error_conversion {
    ($($types:ident)::+) => {
        fn into_wit_error(error: $crate::types::PluginError) -> $($types)::+::PluginError {
            use $($types)::+ as wit_types;
            use $crate::types::PluginError;
            match error {
                PluginError::InvalidInput(text) => wit_types::PluginError::InvalidInput(text),
                PluginError::Unsupported(text) => wit_types::PluginError::Unsupported(text),
                PluginError::Unauthorized(text) => wit_types::PluginError::Unauthorized(text),
                PluginError::Unreachable(text) => wit_types::PluginError::Unreachable(text),
                PluginError::BmcFault {
                    http_status,
                    message_id,
                    message,
                } => wit_types::PluginError::BmcFault(wit_types::BmcFault {
                    http_status,
                    message_id,
                    message,
                }),
                PluginError::Other(text) => wit_types::PluginError::Other(text),
            }
        }
    };
}

pub mod types;

#[cfg(feature = "bmc-driver")]
pub mod bmc_driver;
#[cfg(feature = "credential-lookup")]
pub mod credential_lookup;
#[cfg(feature = "ignition-generator")]
pub mod ignition_generator;

/// The plugin ABI this SDK builds for.
pub const ABI_VERSION: &str = "0.1.0";

/// Name of the custom section holding a plugin's metadata (JSON: world, ABI, SDK version,
/// requested capabilities); the host reads it before compiling.
pub const METADATA_SECTION: &str = "ferrometal:plugin-metadata";

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// Installs (once) a panic hook that reports the panic message through `log` before the
/// instance traps, so the operator's error says why the plugin crashed.
#[doc(hidden)]
pub fn __install_panic_hook(log: fn(&str)) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(move |info| log(&format!("panic: {info}"))));
    });
}

/// Copies a string into a fixed-size byte array, for the metadata section.
#[doc(hidden)]
pub const fn __bytes<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// The ABI version as a literal (for `concat!`); equal to [`ABI_VERSION`].
#[doc(hidden)]
#[macro_export]
macro_rules! __abi_version {
    () => {
        "0.1.0"
    };
}

/// The SDK version as a literal (for `concat!`); equal to the crate version.
#[doc(hidden)]
#[macro_export]
macro_rules! __sdk_version {
    () => {
        "0.1.0"
    };
}

/// `"a", "b"` → `"\"a\",\"b\""`: a JSON list body of string literals.
#[doc(hidden)]
#[macro_export]
macro_rules! __json_strings {
    () => {
        ""
    };
    ($first:literal $(, $rest:literal)*) => {
        concat!("\"", $first, "\"" $(, ",\"", $rest, "\"")*)
    };
}

/// Emits the metadata custom section holding `$json`.
#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_metadata {
    ($json:expr) => {
        #[used]
        #[unsafe(link_section = "ferrometal:plugin-metadata")]
        static __FERROMETAL_PLUGIN_METADATA: [u8; $json.len()] =
            $crate::__bytes::<{ $json.len() }>($json);
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_literals_match_the_crate() {
        assert_eq!(crate::__abi_version!(), crate::ABI_VERSION);
        assert_eq!(crate::__sdk_version!(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn capability_lists_render_as_json() {
        assert_eq!(crate::__json_strings!(), "");
        assert_eq!(crate::__json_strings!("a"), "\"a\"");
        assert_eq!(crate::__json_strings!("a", "b/c"), "\"a\",\"b/c\"");
    }
}
