//! An iPXE script as the simulator's firmware follows it (what the boot server serves, or
//! anything a stranger could serve): `set` lines, variables, `&&`/`||` chains and commands.

#![no_main]

use std::collections::HashMap;
use std::sync::LazyLock;

use ferrometal_sim::firmware::interpret;
use libfuzzer_sys::fuzz_target;

/// The variables iPXE firmware sets before it runs a script.
static FIRMWARE_VARIABLES: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    [
        ("uuid", "2b0e5b3c-7e6c-4c6f-9a54-3a1d5e8b9f10"),
        ("mac", "52:54:00:12:34:56"),
        ("ip", "10.0.0.100"),
        ("buildarch", "x86_64"),
        ("platform", "efi"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
});

fuzz_target!(|script: &[u8]| {
    let Ok(script) = std::str::from_utf8(script) else {
        return;
    };
    let _ = interpret(script, &FIRMWARE_VARIABLES);
});
