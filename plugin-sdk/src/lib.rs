//! Guest SDK for ferrometal plugins.
//!
//! Empty until the plugin-platform issue (#5) lands: it will hold one trait per WIT world,
//! the `register_*!` macros, logging and the JSON helpers over `bmc-http`.
