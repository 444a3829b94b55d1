//! Host bindings generated from `wit/v0.1`, one module per world. Nothing outside
//! `plugins/` sees these types.

use wasmtime::Store;

use super::host::HostState;
use super::runtime::WorldPre;

/// `ferrometal:plugin@0.1.0` world `credential-lookup`.
pub mod credential_lookup {
    wasmtime::component::bindgen!({
        world: "credential-lookup",
        path: "../wit/v0.1",
        exports: { default: async },
    });
}

/// `ferrometal:plugin@0.1.0` world `bmc-driver`. Shares `types` and `log` with the
/// credential-lookup bindings so one host implementation serves both.
pub mod bmc_driver {
    wasmtime::component::bindgen!({
        world: "bmc-driver",
        path: "../wit/v0.1",
        imports: { "ferrometal:plugin/bmc-http.send": async | trappable, default: trappable },
        exports: { default: async },
        with: {
            "ferrometal:plugin/types": super::credential_lookup::ferrometal::plugin::types,
            "ferrometal:plugin/log": super::credential_lookup::ferrometal::plugin::log,
            "ferrometal:plugin/credentials.credential": crate::plugins::host::BmcCredential,
        },
    });
}

/// `ferrometal:plugin@0.1.0` world `ignition-generator`.
pub mod ignition_generator {
    wasmtime::component::bindgen!({
        world: "ignition-generator",
        path: "../wit/v0.1",
        exports: { default: async },
        with: {
            "ferrometal:plugin/types": super::credential_lookup::ferrometal::plugin::types,
            "ferrometal:plugin/log": super::credential_lookup::ferrometal::plugin::log,
        },
    });
}

/// `ferrometal:plugin@0.1.0` world `server-classifier`.
pub mod server_classifier {
    wasmtime::component::bindgen!({
        world: "server-classifier",
        path: "../wit/v0.1",
        exports: { default: async },
        with: {
            "ferrometal:plugin/types": super::credential_lookup::ferrometal::plugin::types,
            "ferrometal:plugin/log": super::credential_lookup::ferrometal::plugin::log,
        },
    });
}

/// Implements [`WorldPre`] for a world's generated `…Pre` type.
macro_rules! world_pre {
    ($world:ident :: $pre:ident => $bindings:ident) => {
        impl WorldPre for $world::$pre<HostState> {
            type Bindings = $world::$bindings;

            fn instantiate(
                &self,
                store: &mut Store<HostState>,
            ) -> impl Future<Output = wasmtime::Result<Self::Bindings>> + Send {
                self.instantiate_async(store)
            }
        }
    };
}

world_pre!(bmc_driver::BmcDriverPre => BmcDriver);
world_pre!(credential_lookup::CredentialLookupPre => CredentialLookup);
world_pre!(ignition_generator::IgnitionGeneratorPre => IgnitionGenerator);
world_pre!(server_classifier::ServerClassifierPre => ServerClassifier);
