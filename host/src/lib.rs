//! ferrometal: a Kubernetes operator that discovers bare-metal servers and drives their
//! first boot, with vendor-specific parts running as sandboxed WebAssembly components.
//!
//! This library holds everything the `ferrometal` binary runs; tests use it directly.

pub mod api;
pub mod boot;
pub mod controllers;
pub mod dhcp;
pub mod leader;
pub mod oci_reference;
pub mod plugins;
pub mod registry;
pub mod telemetry;
pub mod ui;

/// Makes ring the process-wide TLS crypto provider (the registry client needs one chosen;
/// the Kubernetes client brings its own). Safe to call more than once.
pub fn install_crypto_provider() {
    // Err only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A fresh secret: 32 random bytes from the kernel, hex (boot tokens, fleet view sessions).
pub fn random_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}
