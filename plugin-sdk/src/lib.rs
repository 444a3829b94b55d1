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
//! - `server-classifier` — [`server_classifier::ServerClassifier`], registered with
//!   [`register_server_classifier!`].

// Generated code names the SDK by its crate name, also from inside the SDK.
extern crate self as ferrometal_plugin_sdk;

/// Defines `into_wit_error`, turning the SDK's [`types::PluginError`] into the `plugin-error`
/// of one world's generated bindings (each world generates its own copy of `types`).
#[cfg(any(
    feature = "credential-lookup",
    feature = "bmc-driver",
    feature = "ignition-generator",
    feature = "server-classifier"
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

/// Defines a world's logging: its `Level`, `log` (the host's `log` import), and
/// `__install_host_logging`, which sends the `log` crate's records and panics to the host.
/// Expanded once in each world module (each world generates its own copy of the `log`
/// interface).
#[cfg(any(
    feature = "credential-lookup",
    feature = "bmc-driver",
    feature = "ignition-generator",
    feature = "server-classifier"
))]
macro_rules! world_logging {
    () => {
        pub use bindings::ferrometal::plugin::log::Level;

        /// Logs through the host at `level`, with key/value fields. The `log` crate's macros
        /// (re-exported as `ferrometal_plugin_sdk::log`) end up here too.
        pub fn log(level: Level, message: &str, fields: &[(String, String)]) {
            bindings::ferrometal::plugin::log::log(level, message, fields);
        }

        fn wit_level(level: ::log::Level) -> Level {
            match level {
                ::log::Level::Error => Level::Error,
                ::log::Level::Warn => Level::Warn,
                ::log::Level::Info => Level::Info,
                ::log::Level::Debug => Level::Debug,
                ::log::Level::Trace => Level::Trace,
            }
        }

        fn forward_to_host(level: ::log::Level, message: &str, fields: &[(String, String)]) {
            log(wit_level(level), message, fields);
        }

        fn host_records(level: ::log::Level) -> bool {
            bindings::ferrometal::plugin::log::enabled(wit_level(level))
        }

        static HOST_LOG: $crate::HostLog = $crate::HostLog {
            forward: forward_to_host,
            enabled: host_records,
        };

        #[doc(hidden)]
        pub fn __install_host_logging() {
            $crate::install_host_logging(&HOST_LOG);
        }
    };
}

#[cfg(any(
    feature = "credential-lookup",
    feature = "bmc-driver",
    feature = "ignition-generator",
    feature = "server-classifier"
))]
mod host_logging;
#[cfg(any(
    feature = "credential-lookup",
    feature = "bmc-driver",
    feature = "ignition-generator",
    feature = "server-classifier"
))]
#[doc(hidden)]
pub use host_logging::{HostLog, install_host_logging};

pub mod types;

#[cfg(feature = "bmc-driver")]
pub mod bmc_driver;
#[cfg(feature = "credential-lookup")]
pub mod credential_lookup;
#[cfg(feature = "ignition-generator")]
pub mod ignition_generator;
#[cfg(feature = "server-classifier")]
pub mod server_classifier;

/// The plugin ABI this SDK builds for.
pub const ABI_VERSION: &str = "0.1.0";

/// Name of the custom section holding a plugin's metadata (JSON: world, ABI, SDK version,
/// requested capabilities); the host reads it before compiling.
pub const METADATA_SECTION: &str = "ferrometal:plugin-metadata";

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// The `log` crate, whose records a plugin's world forwards to the host: plugins (and their
/// dependencies) log with `ferrometal_plugin_sdk::log::info!(…)` and the lines land in the
/// operator's log with the plugin, world and operation, plus the record's `target`.
pub use log;

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
