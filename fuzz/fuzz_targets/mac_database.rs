//! metal-operator's MAC-prefix database (operator-supplied YAML, often from a ConfigMap):
//! parsed and checked as the macdb plugin does; an error is one line (no snippet of the
//! input, which holds default passwords), and every BMC entry's own prefix finds an entry at
//! least as specific.

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
            // The error reaches logs and conditions: one line, never the parser's snippet of
            // the lines around the fault (default passwords among them). A password-shaped
            // check would be fooled by values that also occur in the error's own words.
            assert!(!error.contains('\n'), "the error shows a snippet: {error}");
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
