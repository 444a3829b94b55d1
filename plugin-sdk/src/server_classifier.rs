//! The `server-classifier` world: turn a server's facts into labels, taints and an optional
//! `unclaimable` verdict.
//!
//! A classifier is meant to be a pure function of the facts and the operator's settings: the
//! world has no network, each call runs in a fresh instance (no state between calls), and the
//! answer should not depend on the clock or randomness (the operator classifies a server
//! again whenever its facts change and expects the same answer for the same input). The host checks the answer before the operator applies it
//! (Kubernetes label syntax for keys and values, no keys under `ferrometal.dev/` or
//! `metal.ironcore.dev/`, at most 64 labels and 32 taints, a reason of at most 1024
//! characters); an invalid answer is reported as this plugin's error.

use crate::types::{PluginError, Settings};

#[doc(hidden)]
pub mod bindings {
    crate::__wit_bindgen::generate!({
        world: "server-classifier",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_server_classifier",
        default_bindings_module: "ferrometal_plugin_sdk::server_classifier::bindings",
        runtime_path: "ferrometal_plugin_sdk::__wit_bindgen::rt",
    });
}

use bindings::exports::ferrometal::plugin::classifier as wit;

world_logging!();

/// What the operator knows about a server. Unknown facts are `None` or empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerFacts {
    /// The Server object's name.
    pub name: String,
    /// SMBIOS system UUID.
    pub system_uuid: Option<String>,
    /// System manufacturer.
    pub manufacturer: Option<String>,
    /// System model.
    pub model: Option<String>,
    /// System serial number.
    pub serial_number: Option<String>,
    /// System SKU.
    pub sku: Option<String>,
    /// BIOS version.
    pub bios_version: Option<String>,
    /// CPU sockets.
    pub processors: Vec<ProcessorFacts>,
    /// Installed memory in bytes.
    pub total_memory_bytes: Option<u64>,
    /// Physical drives.
    pub drives: Vec<DriveFacts>,
    /// PCIe accelerators (GPUs, FPGAs, DPUs, …).
    pub accelerators: Vec<AcceleratorFacts>,
    /// Network interfaces.
    pub nics: Vec<NicFacts>,
    /// The Server's labels, except those the classifiers set (so a verdict does not feed on
    /// itself), e.g. a person's `example.com/burn-in=done`.
    pub labels: Vec<(String, String)>,
    /// The BMC managing the server, if any.
    pub bmc: Option<BmcFacts>,
}

impl ServerFacts {
    /// The value of the Server's label `key`, if it has one.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value.as_str())
    }
}

/// One CPU socket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessorFacts {
    /// Model name, e.g. `AMD EPYC 9654 96-Core Processor`.
    pub model: Option<String>,
    /// Architecture, e.g. `x86_64`.
    pub architecture: Option<String>,
    /// Physical cores.
    pub cores: Option<u32>,
    /// Hardware threads.
    pub threads: Option<u32>,
}

/// One physical drive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriveFacts {
    /// Device or Redfish name.
    pub name: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Media type, e.g. `SSD`, `HDD`.
    pub media_type: Option<String>,
    /// Capacity in bytes.
    pub capacity_bytes: Option<u64>,
}

/// A PCIe accelerator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceleratorFacts {
    /// Name (PCI address or Redfish id).
    pub name: String,
    /// PCI class name.
    pub class: Option<String>,
    /// Vendor name, e.g. `NVIDIA Corporation`.
    pub vendor: Option<String>,
    /// Model name.
    pub model: Option<String>,
    /// PCI vendor id, hex (`0x10de`).
    pub vendor_id: Option<String>,
    /// PCI device id, hex.
    pub device_id: Option<String>,
}

/// A network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NicFacts {
    /// Interface name.
    pub name: String,
    /// MAC address.
    pub mac: String,
    /// Whether the link is up, if known.
    pub link_up: Option<bool>,
}

/// The BMC managing a server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BmcFacts {
    /// The BMC object's name.
    pub name: String,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Firmware version.
    pub firmware_version: Option<String>,
}

/// What a taint does to claims that do not tolerate it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TaintEffect {
    /// New claims cannot bind the server.
    #[default]
    NoBind,
    /// Reserved for evicting bound claims (it evicts nothing yet).
    Evict,
}

/// A taint to set on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    /// A Kubernetes qualified name, e.g. `example.com/burn-in`.
    pub key: String,
    /// A label value, if any.
    pub value: Option<String>,
    /// Its effect.
    pub effect: TaintEffect,
}

/// A classifier's verdict on one server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Classification {
    /// Labels to set, e.g. `("hardware.example.com/sku", "gpu-large")`.
    pub labels: Vec<(String, String)>,
    /// Taints to set.
    pub taints: Vec<Taint>,
    /// Why the server must not be claimed; `None` = claimable as far as this classifier is
    /// concerned.
    pub unclaimable: Option<String>,
}

/// A server classifier. Functions are associated (no `self`): the host runs every call in a
/// fresh instance.
pub trait ServerClassifier {
    /// Checks the operator-provided settings (the operator asks once at start and refuses to
    /// start when they are rejected); the default accepts anything.
    fn validate_settings(_settings: &Settings) -> Result<(), PluginError> {
        Ok(())
    }

    /// Classifies the server `facts` describe with the operator's `settings` (the same ones
    /// `validate_settings` accepted).
    fn classify(facts: &ServerFacts, settings: &Settings) -> Result<Classification, PluginError>;
}

#[doc(hidden)]
pub mod __glue {
    //! Conversions used by `register_server_classifier!`; not part of the API.

    use super::*;

    pub use super::wit::Guest;

    wit_error_conversion!(bindings::ferrometal::plugin::types);

    pub fn validate_settings<C: ServerClassifier>(
        settings: Vec<(String, String)>,
    ) -> Result<(), wit::PluginError> {
        __install_host_logging();
        C::validate_settings(&settings).map_err(into_wit_error)
    }

    pub fn classify<C: ServerClassifier>(
        facts: wit::ServerFacts,
        settings: Vec<(String, String)>,
    ) -> Result<wit::Classification, wit::PluginError> {
        __install_host_logging();
        let facts = ServerFacts::from(facts);
        C::classify(&facts, &settings)
            .map(wit::Classification::from)
            .map_err(into_wit_error)
    }

    impl From<wit::ServerFacts> for ServerFacts {
        fn from(facts: wit::ServerFacts) -> Self {
            Self {
                name: facts.name,
                system_uuid: facts.system_uuid,
                manufacturer: facts.manufacturer,
                model: facts.model,
                serial_number: facts.serial_number,
                sku: facts.sku,
                bios_version: facts.bios_version,
                processors: facts
                    .processors
                    .into_iter()
                    .map(|cpu| ProcessorFacts {
                        model: cpu.model,
                        architecture: cpu.architecture,
                        cores: cpu.cores,
                        threads: cpu.threads,
                    })
                    .collect(),
                total_memory_bytes: facts.total_memory_bytes,
                drives: facts
                    .drives
                    .into_iter()
                    .map(|drive| DriveFacts {
                        name: drive.name,
                        model: drive.model,
                        media_type: drive.media_type,
                        capacity_bytes: drive.capacity_bytes,
                    })
                    .collect(),
                accelerators: facts
                    .accelerators
                    .into_iter()
                    .map(|device| AcceleratorFacts {
                        name: device.name,
                        class: device.class,
                        vendor: device.vendor,
                        model: device.model,
                        vendor_id: device.vendor_id,
                        device_id: device.device_id,
                    })
                    .collect(),
                nics: facts
                    .nics
                    .into_iter()
                    .map(|nic| NicFacts {
                        name: nic.name,
                        mac: nic.mac,
                        link_up: nic.link_up,
                    })
                    .collect(),
                labels: facts.labels,
                bmc: facts.bmc.map(|bmc| BmcFacts {
                    name: bmc.name,
                    manufacturer: bmc.manufacturer,
                    model: bmc.model,
                    firmware_version: bmc.firmware_version,
                }),
            }
        }
    }

    impl From<Classification> for wit::Classification {
        fn from(classification: Classification) -> Self {
            Self {
                labels: classification.labels,
                taints: classification
                    .taints
                    .into_iter()
                    .map(|taint| wit::Taint {
                        key: taint.key,
                        value: taint.value,
                        effect: match taint.effect {
                            TaintEffect::NoBind => wit::TaintEffect::NoBind,
                            TaintEffect::Evict => wit::TaintEffect::Evict,
                        },
                    })
                    .collect(),
                unclaimable: classification.unclaimable,
            }
        }
    }
}

/// Registers `$ty` (implementing [`ServerClassifier`]) as this component's export and writes
/// the metadata section the host checks before loading.
#[macro_export]
macro_rules! register_server_classifier {
    ($ty:ident) => {
        const _: () = {
            use $crate::server_classifier::__glue;
            use $crate::server_classifier::bindings::exports::ferrometal::plugin::classifier as __wit;

            impl __glue::Guest for $ty {
                fn validate_settings(
                    settings: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<(), __wit::PluginError> {
                    __glue::validate_settings::<$ty>(settings)
                }
                fn classify(
                    facts: __wit::ServerFacts,
                    settings: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<__wit::Classification, __wit::PluginError> {
                    __glue::classify::<$ty>(facts, settings)
                }
            }

            $crate::__plugin_metadata!(concat!(
                r#"{"world":"server-classifier","abi":""#, $crate::__abi_version!(),
                r#"","sdk":""#, $crate::__sdk_version!(),
                r#"","capabilities":[]}"#
            ));
        };
        $crate::server_classifier::bindings::__export_server_classifier!(
            $ty with_types_in $crate::server_classifier::bindings
        );
    };
}
