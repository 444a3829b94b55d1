//! Host bindings generated from `wit/v0.1`, one module per world. Nothing outside
//! `plugins/` sees these types.

/// `ferrometal:plugin@0.1.0` world `credential-lookup`.
pub mod credential_lookup {
    wasmtime::component::bindgen!({
        world: "credential-lookup",
        path: "../wit/v0.1",
        exports: { default: async },
    });
}
