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
//! The `bmc-driver` and `ignition-generator` worlds follow in the plugin-platform issue (#5).

// Generated code names the SDK by its crate name, also from inside the SDK.
extern crate self as ferrometal_plugin_sdk;

pub mod types;

#[cfg(feature = "credential-lookup")]
pub mod credential_lookup;

/// The plugin ABI this SDK builds for.
pub const ABI_VERSION: &str = "0.1.0";

/// Name of the custom section holding a plugin's metadata (JSON: world, ABI, SDK version,
/// requested capabilities); the host reads it before compiling.
pub const METADATA_SECTION: &str = "ferrometal:plugin-metadata";

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;
