//! The harness's error type.

use std::path::PathBuf;
use std::time::Duration;

/// What can go wrong while starting or talking to a real component.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required binary has not been built or installed yet.
    #[error(
        "{tool} {version} is not installed (expected {path}); run `make test` or `cargo xtask setup`, which builds and caches it"
    )]
    ToolMissing {
        /// Program name, e.g. `kube-apiserver`.
        tool: &'static str,
        /// Pinned version the harness expects.
        version: &'static str,
        /// Where the binary should be.
        path: PathBuf,
    },
    /// A WebAssembly component has not been built.
    #[error(
        "component `{name}` is not built ({path} does not exist); run `make plugins` (`cargo xtask plugins`) to build every plugin and fixture"
    )]
    ComponentMissing {
        /// Component (crate) name.
        name: String,
        /// Where the component should be.
        path: PathBuf,
    },
    /// A workspace binary has not been built.
    #[error("{path} does not exist; run `cargo build -p {name}` (or `make test`, which builds it)")]
    BinaryMissing {
        /// Binary (and package) name.
        name: String,
        /// Where it should be.
        path: PathBuf,
    },
    /// A file-system or process operation failed.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was attempted, in words.
        action: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A child process exited while it was expected to run.
    #[error("{name} exited unexpectedly ({status}); last lines of {log}:\n{tail}")]
    ProcessExited {
        /// Which component.
        name: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// A component did not become ready in time.
    #[error("{name} was not ready after {waited:?} ({last_error}); last lines of {log}:\n{tail}")]
    NotReady {
        /// Which component.
        name: String,
        /// How long the harness waited.
        waited: Duration,
        /// The last readiness probe failure.
        last_error: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// The test browser (chromedriver + Chromium) failed.
    #[error("browser: {0}")]
    Browser(String),
    /// Certificate generation failed.
    #[error("cannot generate certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A request to the API server failed.
    #[error("kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// The generated kubeconfig could not be turned into a client configuration.
    #[error("cannot use the generated kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// A CRD manifest could not be read.
    #[error("cannot parse CRD manifest {path}: {message}")]
    CrdManifest {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A CRD was applied but never reported `Established`.
    #[error("CRD {name} was not established within {waited:?}")]
    CrdNotEstablished {
        /// The CRD's name.
        name: String,
        /// How long the harness waited.
        waited: Duration,
    },
    /// An HTTP client could not be built.
    #[error("cannot build an HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The OCI registry refused a push or pull.
    #[error("OCI registry request failed: {0}")]
    Registry(String),
    /// An external command (apt-get, dpkg-deb, ldd, strip, …) failed.
    #[error("{command} failed: {message}")]
    CommandFailed {
        /// The command.
        command: String,
        /// Its exit status and error output.
        message: String,
    },
    /// A node was asked of a control plane not started for one.
    #[error(
        "the control plane was started without `ControlPlaneOptions::node`; a node needs its Node authorisation, ServiceAccount tokens and kube-controller-manager"
    )]
    ControlPlaneWithoutNodes,
    /// A node needs root: it creates a bridge, iptables rules, cgroups and mounts.
    #[error(
        "a test node needs root (it creates a bridge, iptables rules, cgroups and mounts); run the test as root"
    )]
    NodeNeedsRoot,
    /// Another test node holds the machine (one node per machine at a time).
    #[error("another test node runs on this machine (it holds {lock}); waited {waited:?}")]
    NodeBusy {
        /// The lock file.
        lock: PathBuf,
        /// How long the harness waited.
        waited: Duration,
    },
    /// The node's options cannot work.
    #[error("cannot start a node: {0}")]
    NodeSettings(String),
    /// A fixture could not be serialised.
    #[error("cannot serialise {what}: {message}")]
    Serialise {
        /// What was being written.
        what: &'static str,
        /// Why it failed.
        message: String,
    },
}

impl Error {
    /// Wraps an I/O error with a description of what was attempted.
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let action = action.into();
        move |source| Self::Io { action, source }
    }
}
