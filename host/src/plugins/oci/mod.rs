//! Plugins as OCI artifacts: the CNCF wasm layout ([`artifact`]), registry I/O
//! ([`registry`]), cosign key-pair signatures ([`signature`]), who must have signed
//! ([`trust`]), and the operator's pull-verify-keep path ([`fetch`]).

pub mod artifact;
pub mod fetch;
pub mod registry;
pub mod signature;
pub mod trust;
