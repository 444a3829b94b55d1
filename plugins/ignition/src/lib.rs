//! `ignition`: renders the Ignition (spec 3.4) config a server's discovery boot runs. It
//! downloads metalprobe, stores the per-boot token in a root-only file, and starts a systemd
//! unit that reports the hardware to the registry; optionally it adds a debugging user.
//! Deterministic: the same request gives byte-identical output. See README.md.

mod render;

use ferrometal_plugin_sdk::ignition_generator::{IgnitionGenerator, IgnitionRequest};
use ferrometal_plugin_sdk::types::{PluginError, Settings};

struct Ignition;

impl IgnitionGenerator for Ignition {
    fn validate_settings(settings: &Settings) -> Result<(), PluginError> {
        render::Options::from_settings(settings)
            .map(|_| ())
            .map_err(PluginError::InvalidInput)
    }

    fn generate(request: &IgnitionRequest) -> Result<String, PluginError> {
        let options =
            render::Options::from_settings(&request.settings).map_err(PluginError::InvalidInput)?;
        render::render(request, &options).map_err(PluginError::InvalidInput)
    }
}

ferrometal_plugin_sdk::register_ignition_generator!(Ignition);
