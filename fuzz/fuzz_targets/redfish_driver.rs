//! A Redfish service as the redfish plugin's driver reads it, natively: the input is a JSON
//! object from paths to response bodies (a string is served as raw bytes, anything else as
//! its JSON; a `PATCH <path>` or `POST <path>` key answers that request, 204 otherwise; other
//! paths are 404). Probe, system read (with its inventory), power read and boot override run
//! against it, so every model the driver deserialises meets whatever a BMC may send.

#![no_main]

// The redfish plugin's driver, models, inventory readers and quirks table, compiled natively as the plugin's own
// unit tests do (the plugin crate is a component, not a library).
#[allow(dead_code)]
#[path = "../../plugins/redfish/src/driver.rs"]
mod driver;
#[allow(dead_code)]
#[path = "../../plugins/redfish/src/expand.rs"]
mod expand;
#[allow(dead_code)]
#[path = "../../plugins/redfish/src/hpe_storage.rs"]
mod hpe_storage;
#[allow(dead_code)]
#[path = "../../plugins/redfish/src/inventory.rs"]
mod inventory;
#[allow(dead_code)]
#[path = "../../plugins/redfish/src/inventory_model.rs"]
mod inventory_model;
#[allow(dead_code)]
#[path = "../../plugins/redfish/src/model.rs"]
mod model;
#[allow(dead_code)]
#[path = "../../plugins/redfish/src/quirks.rs"]
mod quirks;

use ferrometal_plugin_sdk::bmc_driver::http::{HttpError, Method, Request, Response, Transport};
use ferrometal_plugin_sdk::bmc_driver::{BootOverride, BootTarget};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// The service the input describes.
struct Service(Map<String, Value>);

impl Service {
    fn body(&self, key: &str) -> Option<Vec<u8>> {
        Some(match self.0.get(key)? {
            Value::String(raw) => raw.as_bytes().to_vec(),
            value => value.to_string().into_bytes(),
        })
    }
}

impl Transport for Service {
    fn send(&self, request: Request) -> Result<Response, HttpError> {
        let key = match request.method {
            Method::Get | Method::Head => request.path.clone(),
            Method::Post => format!("POST {}", request.path),
            Method::Put => format!("PUT {}", request.path),
            Method::Patch => format!("PATCH {}", request.path),
            Method::Delete => format!("DELETE {}", request.path),
        };
        let (status, body) = match self.body(&key) {
            Some(body) => (200, body),
            None if request.method == Method::Get => (404, Vec::new()),
            None => (204, Vec::new()),
        };
        Ok(Response {
            status,
            headers: vec![(
                String::from("Content-Type"),
                String::from("application/json"),
            )],
            body,
        })
    }
}

fuzz_target!(|input: &[u8]| {
    let Ok(Value::Object(paths)) = serde_json::from_slice::<Value>(input) else {
        return;
    };
    let service = Service(paths);
    let uris = match driver::probe(&service) {
        Ok(identity) => identity
            .systems
            .into_iter()
            .map(|system| system.uri)
            .collect(),
        Err(_) => vec![String::from("/redfish/v1/Systems/1")],
    };
    for uri in uris.iter().take(4) {
        // The root is read again (a service root advertising `$expand` turns it on).
        let _ = driver::get_system(&service, &expand::Collections::unread(), uri);
        let _ = driver::power_state(&service, uri);
        let _ = driver::set_boot_override(
            &service,
            uri,
            &BootOverride {
                target: BootTarget::Pxe,
                uefi: true,
                persistent: false,
                http_boot_uri: None,
            },
        );
    }
});
