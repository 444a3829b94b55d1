//! Real-component test harness for ferrometal.
//!
//! Integration tests, end-to-end tests and `make demo` all start the same real programs
//! through this crate: a kube-apiserver + etcd control plane, sushy-emulator Redfish BMCs and
//! an OCI registry, each on free loopback ports, each stopped when its handle is dropped;
//! and, for tests that run Pods, a real node ([`Node`]: containerd, kubelet, kube-scheduler,
//! kube-proxy) whose Pods live in network namespaces on a bridge of its own.
//!
//! Nothing here is a mock. The binaries are built once by `cargo xtask setup` (which
//! `make test` and `make demo` run first) into a versioned cache directory; see [`tools`].
//!
//! Every child process is started so that it dies with the process that started it
//! (`PR_SET_PDEATHSIG`), and every run directory records its children, so a test run that is
//! killed half-way leaves nothing behind: the next run reaps whatever survived.

mod error;
mod pki;
mod process;

pub mod browser;
pub mod components;
pub mod control_plane;
pub mod discovery_image;
pub mod machine_root;
pub mod net;
pub mod netns;
pub mod node;
pub mod pe;
pub mod registry;
pub mod sushy;
pub mod tools;
pub mod uki;
pub mod viewer;

pub use control_plane::{ControlPlane, ControlPlaneOptions};
pub use error::Error;
pub use machine_root::{FakeMachine, FakeNic, FakePciDevice};
pub use node::{Node, NodeOptions};
pub use pki::{CertificateAuthority, IssuedCertificate};
pub use process::{Program, reap_dead_runs};
pub use registry::{OciRegistry, PushedImage};
pub use sushy::{
    BasicAuth, FakeSystem, FeatureSet, PowerState, SushyEmulator, SushyOptions, SushyStatic,
};

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Writes a progress line to the real stderr, past libtest's output capture, so that start-up
/// times and log locations show in `cargo test` output even for passing tests.
pub(crate) fn progress(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    // A failed write to stderr has nowhere better to be reported.
    let _ = writeln!(stderr, "testenv: {line}");
}
