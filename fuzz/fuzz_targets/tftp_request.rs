//! A TFTP packet from anyone on the boot network: a read request names a file, and the name
//! resolves only to a plain file directly under the served directory.

#![no_main]

use std::path::Path;

use ferrometal::dhcp::tftp::{read_request, resolve};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|packet: &[u8]| {
    let Some(name) = read_request(packet) else {
        return;
    };
    let root = Path::new("/srv/tftp");
    if let Some(path) = resolve(root, &name) {
        assert_eq!(
            path.parent(),
            Some(root),
            "{name:?} resolves outside the root"
        );
        assert_eq!(
            path.file_name().and_then(|file| file.to_str()),
            Some(name.trim_start_matches('/')),
            "{name:?} does not resolve to itself"
        );
    }
});
