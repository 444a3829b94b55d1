//! The SDK carries its own copy of the WIT (so it builds outside this repository); it must
//! be the released ABI folder exactly.

use std::path::Path;

#[test]
fn the_sdk_wit_is_identical_to_the_abi_folder() {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("wit");
    let abi = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/v0.1");
    let mut names: Vec<_> = std::fs::read_dir(&abi)
        .expect("wit/v0.1")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    names.sort();
    let mut sdk_names: Vec<_> = std::fs::read_dir(&sdk)
        .expect("plugin-sdk/wit")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    sdk_names.sort();
    assert_eq!(
        names, sdk_names,
        "same files; copy wit/v0.1/*.wit to plugin-sdk/wit/"
    );
    for name in names {
        let a = std::fs::read_to_string(abi.join(&name)).expect("read");
        let b = std::fs::read_to_string(sdk.join(&name)).expect("read");
        assert_eq!(
            a, b,
            "{name:?} differs; copy wit/v0.1/*.wit to plugin-sdk/wit/"
        );
    }
}
