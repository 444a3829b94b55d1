//! A body posted to the registry by a machine (metalprobe's or metal-operator's report, or a
//! boot state): read as the registry reads it, into the Server status it would write, and
//! back into the report `GET /systems/<uuid>` answers.

#![no_main]

use ferrometal::registry::{read_boot_state, read_registration, report_from_status};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(read) = read_registration(body) {
        let report = report_from_status(&read.status);
        serde_json::to_vec(&report).expect("the answer of GET /systems serialises");
        assert!(!read.summary.is_empty());
    }
    let _ = read_boot_state(body);
});
