//! metal-operator's MAC-prefix database (operator-supplied YAML, often from a ConfigMap):
//! parsed and checked as the macdb plugin does; an error never quotes a password, and every
//! BMC entry's own prefix finds an entry at least as specific.

#![no_main]

// The macdb plugin's database module, compiled natively (the plugin crate is a component).
#[allow(dead_code)]
#[path = "../../plugins/macdb/src/database.rs"]
mod database;

use database::{Database, normalise_mac};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|yaml: &[u8]| {
    let Ok(yaml) = std::str::from_utf8(yaml) else {
        return;
    };
    let _ = normalise_mac(yaml);
    let database = match Database::parse(yaml) {
        Ok(database) => database,
        Err(error) => {
            // The error reaches logs and conditions: it never quotes a default password
            // (one written once in the input, long enough not to match by chance).
            for line in yaml.lines() {
                let Some((_, value)) = line.split_once("password:") else {
                    continue;
                };
                let value = value.trim().trim_matches(['"', '\'']);
                if value.len() >= 6 && yaml.matches(value).count() == 1 {
                    assert!(
                        !error.contains(value),
                        "the error quotes a password: {error}"
                    );
                }
            }
            return;
        }
    };
    for entry in database
        .mac_prefixes
        .iter()
        .filter(|entry| entry.kind == "bmc")
    {
        let mac: String = entry
            .mac_prefix
            .chars()
            .chain(std::iter::repeat('0'))
            .take(12)
            .collect();
        let mac = normalise_mac(&mac).expect("a checked prefix padded to 12 digits is a MAC");
        let found = database
            .lookup(&mac)
            .expect("an entry's own prefix finds an entry");
        assert!(mac.starts_with(&found.mac_prefix));
        assert!(found.mac_prefix.len() >= entry.mac_prefix.len());
    }
});
