//! An ignition as `ferrometal-ignite` (the discovery system's first-boot agent) and the
//! simulator's machines read it: anything the boot server may hand out, or a stranger's.

#![no_main]

use libfuzzer_sys::fuzz_target;
use metalprobe::ignition::{decode_data_url, exec_start, kernel_arg, plan};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = kernel_arg(text, "ignition.config.url");
        let _ = decode_data_url(text);
        let _ = exec_start(text);
    }
    let Ok(ignition) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = plan(&ignition);
    let _ = ferrometal_sim::firmware::discovery_instructions(&ignition);
});
