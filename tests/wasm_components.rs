//! `cargo xtask plugins` builds real WebAssembly components where the host tests find them.

/// The preamble of a binary in the component-model layer (as opposed to a core module):
/// magic `\0asm`, version 0x0d, layer 0x01.
const COMPONENT_PREAMBLE: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

#[test]
fn the_plugin_build_produces_components_not_core_modules() {
    let path = testenv::components::component("lookup-echo").expect("built by `make plugins`");
    let bytes = std::fs::read(&path).expect("read component");
    assert!(
        bytes.starts_with(&COMPONENT_PREAMBLE),
        "{} is not a component: it starts with {:02x?}",
        path.display(),
        &bytes[..bytes.len().min(8)]
    );
}
