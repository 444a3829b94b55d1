//! The reconcilers. Each has a pure `plan` (a function of what it observed, table-tested)
//! and a thin I/O shell that applies the plan with server-side apply.

pub mod bmc;
pub mod bootconfig;
pub mod connection;
pub mod credentials;
pub mod endpoint;
pub mod report;
pub mod server;
