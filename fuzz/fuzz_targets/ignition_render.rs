//! The ignition plugin's inputs (the operator's settings and what a Server's facts and the
//! boot bring): whatever it renders is JSON that `ferrometal-ignite` plans, carries the boot
//! token only inside the token file, and is the same for the same request.

#![no_main]

// The ignition plugin's rendering, compiled natively (the plugin crate is a component).
#[allow(dead_code)]
#[path = "../../plugins/ignition/src/render.rs"]
mod render;

use arbitrary::Arbitrary;
use ferrometal_plugin_sdk::ignition_generator::{IgnitionRequest, ServerFacts};
use libfuzzer_sys::fuzz_target;

/// One setting: a known key (most of the time) or any.
#[derive(Debug, Arbitrary)]
enum Setting {
    MetalprobeUrl(String),
    MetalprobeSha512(String),
    Username(String),
    PasswordHash(String),
    SshAuthorizedKeys(String),
    Other(String, String),
}

impl Setting {
    fn pair(self) -> (String, String) {
        let (key, value) = match self {
            Setting::MetalprobeUrl(value) => ("metalprobe-url", value),
            Setting::MetalprobeSha512(value) => ("metalprobe-sha512", value),
            Setting::Username(value) => ("username", value),
            Setting::PasswordHash(value) => ("password-hash", value),
            Setting::SshAuthorizedKeys(value) => ("ssh-authorized-keys", value),
            Setting::Other(key, value) => return (key, value),
        };
        (key.to_owned(), value)
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    system_uuid: String,
    hostname: Option<String>,
    macs: Vec<String>,
    labels: Vec<(String, String)>,
    registry_url: String,
    boot_token: String,
    ssh_authorized_keys: Vec<String>,
    settings: Vec<Setting>,
    /// A usable metalprobe URL first, so that most inputs get past the settings check.
    with_default_url: bool,
}

fuzz_target!(|input: Input| {
    let mut settings: Vec<(String, String)> = Vec::new();
    if input.with_default_url {
        settings.push((
            String::from("metalprobe-url"),
            String::from("http://10.0.0.1:8082/metalprobe"),
        ));
    }
    settings.extend(input.settings.into_iter().map(Setting::pair));
    let request = IgnitionRequest {
        facts: ServerFacts {
            system_uuid: input.system_uuid,
            hostname: input.hostname,
            macs: input.macs,
            labels: input.labels,
        },
        registry_url: input.registry_url,
        boot_token: input.boot_token,
        ssh_authorized_keys: input.ssh_authorized_keys,
        settings,
    };
    let Ok(options) = render::Options::from_settings(&request.settings) else {
        return;
    };
    let Ok(rendered) = render::render(&request, &options) else {
        return;
    };
    assert_eq!(
        render::render(&request, &options).as_deref(),
        Ok(rendered.as_str()),
        "rendering is deterministic"
    );
    let value: serde_json::Value =
        serde_json::from_str(&rendered).expect("a rendered ignition is JSON");
    if let Err(error) = metalprobe::ignition::plan(&value) {
        panic!("ferrometal-ignite refuses a rendered ignition: {error}");
    }
});
