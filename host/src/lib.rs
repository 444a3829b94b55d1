//! ferrometal: a Kubernetes operator that discovers bare-metal servers and drives their
//! first boot, with vendor-specific parts running as sandboxed WebAssembly components.
//!
//! This library holds everything the `ferrometal` binary runs; tests use it directly.

pub mod api;
pub mod controllers;
pub mod plugins;
pub mod telemetry;
