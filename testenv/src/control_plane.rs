//! A real Kubernetes control plane: etcd + kube-apiserver on free loopback ports (with a
//! node, kube-apiserver listens on the node's bridge address instead; see
//! [`ControlPlaneOptions::node`]).
//!
//! What controller-runtime's envtest runs, without Go at test time: a CA, serving and admin
//! client certificates made with rcgen, etcd with a private data directory, kube-apiserver
//! with RBAC and service-account signing, an admin kubeconfig written to a file so `kubectl`
//! works against it, and the project's CRDs installed and `Established`.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, Config};
use tokio::sync::OnceCell;

use crate::net::free_port;
use crate::node::{Network, NetworkOptions};
use crate::pki::CertificateAuthority;
use crate::process::{ManagedProcess, RunDir};
use crate::{Error, Result, progress, tools};

/// The Services' cluster IP range.
pub const SERVICE_RANGE: &str = "10.0.0.0/24";

/// How to start a control plane.
#[derive(Debug, Clone)]
pub struct ControlPlaneOptions {
    /// Directory whose `*.yaml` CRD manifests are installed after start-up; `None` installs
    /// nothing. Defaults to the repository's `crds/`.
    pub crds_dir: Option<PathBuf>,
    /// How long to wait for etcd and kube-apiserver to become ready.
    pub ready_timeout: Duration,
    /// Also run kube-controller-manager with only the garbage collector, so deleting an
    /// owner deletes its dependents as in a real cluster.
    pub garbage_collector: bool,
    /// Write an audit log of every write request (metadata only: who, what, when) to
    /// [`ControlPlane::audit_log_path`].
    pub audit_log: bool,
    /// Make the control plane ready for a [`crate::node::Node`]: kube-apiserver authorises
    /// with `Node,RBAC`, admits Pods with their ServiceAccount tokens and reaches kubelets
    /// with a client certificate, and kube-controller-manager runs every controller but
    /// `nodeipam` (Deployments, ReplicaSets, Endpoints, ServiceAccounts, the garbage
    /// collector, …) instead of only the garbage collector.
    ///
    /// The node's network ([`Self::node_network`]) is created first, and kube-apiserver
    /// listens on its bridge address (the node's IP) instead of 127.0.0.1, so that Pods
    /// reach it through the `kubernetes` Service like in any cluster. Needs root.
    pub node: bool,
    /// The node's bridge and Pod subnet, with [`Self::node`].
    pub node_network: NetworkOptions,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        Self {
            crds_dir: Some(tools::workspace_root().join("crds")),
            ready_timeout: Duration::from_secs(120),
            garbage_collector: false,
            audit_log: false,
            node: false,
            node_network: NetworkOptions::default(),
        }
    }
}

/// A running etcd + kube-apiserver pair. Both are killed when this is dropped; if the
/// dropping thread is panicking, their log tails are printed and the run directory is kept.
#[derive(Debug)]
pub struct ControlPlane {
    // Field order matters: processes are killed before the run directory is removed.
    controller_manager: Option<ManagedProcess>,
    audit_log: Option<PathBuf>,
    apiserver: ManagedProcess,
    etcd: ManagedProcess,
    /// The node's bridge kube-apiserver listens on, with [`ControlPlaneOptions::node`];
    /// removed once kube-apiserver is gone.
    node_network: Option<Network>,
    server_url: String,
    kubeconfig_path: PathBuf,
    crds: Vec<String>,
    started_in: Duration,
    launch: Launch,
    /// The CA that signed every certificate, kept so a node's kubelet can get its own.
    ca: CertificateAuthority,
    run_dir: RunDir,
}

/// What starting etcd and kube-apiserver again needs: the same binaries, ports, certificates
/// and data directory, so a restarted server is the same server to its clients.
#[derive(Debug)]
struct Launch {
    etcd_bin: PathBuf,
    apiserver_bin: PathBuf,
    dir: PathBuf,
    pki: PkiFiles,
    /// etcd's client and peer ports.
    etcd_ports: (u16, u16),
    /// Where kube-apiserver listens: 127.0.0.1, or the node's IP.
    api_address: Ipv4Addr,
    api_port: u16,
    /// The audit policy and log, when asked for.
    audit: Option<(PathBuf, PathBuf)>,
    /// Whether kube-apiserver runs with the settings a node needs.
    node: bool,
    ready_timeout: Duration,
}

static SHARED: OnceCell<ControlPlane> = OnceCell::const_new();

impl ControlPlane {
    /// Starts a control plane with the default options (the repository's CRDs installed).
    pub async fn start() -> Result<Self> {
        Self::start_with(ControlPlaneOptions::default()).await
    }

    /// The control plane shared by every test in this test binary, started on first use.
    ///
    /// Tests sharing it isolate themselves by namespace and object names. It is never
    /// dropped; its processes die with the test binary and its run directory is reaped by the
    /// next run.
    pub async fn shared() -> Result<&'static Self> {
        SHARED.get_or_try_init(Self::start).await
    }

    /// Starts a control plane.
    pub async fn start_with(options: ControlPlaneOptions) -> Result<Self> {
        let started = Instant::now();
        let etcd_bin = tools::etcd().require()?;
        let apiserver_bin = tools::kube_apiserver().require()?;
        let node_network = if options.node {
            Some(Network::create(&options.node_network, options.ready_timeout).await?)
        } else {
            None
        };
        let api_address = node_network
            .as_ref()
            .map_or(Ipv4Addr::LOCALHOST, Network::ip);
        let run_dir = RunDir::create("control-plane")?;
        let dir = run_dir.path().to_path_buf();

        let (ca, pki) = write_pki(&dir, api_address)?;

        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let mut etcd = start_etcd(&etcd_bin, &dir, etcd_port, peer_port, &run_dir)?;
        wait_for_etcd(&mut etcd, etcd_port, options.ready_timeout).await?;

        let api_port = free_port()?;
        let server_url = format!("https://{api_address}:{api_port}");
        let audit_log = options
            .audit_log
            .then(|| write_audit_policy(&dir))
            .transpose()?;
        let mut apiserver = start_apiserver(
            &apiserver_bin,
            &dir,
            &pki,
            (etcd_port, api_address, api_port),
            audit_log.as_ref(),
            options.node,
            &run_dir,
        )?;

        let kubeconfig_path = dir.join("kubeconfig");
        write_kubeconfig(&kubeconfig_path, &server_url, &pki)?;
        let client = client_from_kubeconfig(&kubeconfig_path).await?;
        wait_for_apiserver(&mut apiserver, &mut etcd, &client, options.ready_timeout).await?;

        let launch = Launch {
            etcd_bin,
            apiserver_bin,
            dir,
            pki,
            etcd_ports: (etcd_port, peer_port),
            api_address,
            api_port,
            audit: audit_log,
            node: options.node,
            ready_timeout: options.ready_timeout,
        };
        let crds = match &options.crds_dir {
            Some(crds_dir) => install_crds(&client, crds_dir).await?,
            None => Vec::new(),
        };
        let controller_manager = if options.node {
            Some(start_controller_manager(
                &kubeconfig_path,
                &launch.pki,
                &run_dir,
            )?)
        } else if options.garbage_collector {
            Some(start_garbage_collector(&kubeconfig_path, &run_dir)?)
        } else {
            None
        };

        let started_in = started.elapsed();
        progress(format_args!(
            "control plane ready in {:.1}s: kube-apiserver v{} at {server_url} (pid {}), etcd v{} (pid {}), {} CRDs, kubeconfig {}",
            started_in.as_secs_f64(),
            tools::KUBERNETES_VERSION,
            apiserver.pid(),
            tools::ETCD_VERSION,
            etcd.pid(),
            crds.len(),
            kubeconfig_path.display(),
        ));
        Ok(Self {
            controller_manager,
            audit_log: launch.audit.as_ref().map(|(_, log)| log.clone()),
            apiserver,
            etcd,
            node_network,
            server_url,
            kubeconfig_path,
            crds,
            started_in,
            launch,
            ca,
            run_dir,
        })
    }

    /// Kills kube-apiserver with `SIGKILL` (a crash, not a shutdown), leaves it down for
    /// `down`, and starts it again on the same port with the same certificates and etcd.
    /// Returns once it answers `/readyz` again; its log goes on in the same file.
    pub async fn restart_apiserver(&mut self, down: Duration) -> Result<()> {
        self.apiserver.kill()?;
        tokio::time::sleep(down).await;
        self.apiserver = start_apiserver(
            &self.launch.apiserver_bin,
            &self.launch.dir,
            &self.launch.pki,
            (
                self.launch.etcd_ports.0,
                self.launch.api_address,
                self.launch.api_port,
            ),
            self.launch.audit.as_ref(),
            self.launch.node,
            &self.run_dir,
        )?;
        self.wait_until_ready().await?;
        progress(format_args!(
            "kube-apiserver restarted (pid {})",
            self.apiserver.pid()
        ));
        Ok(())
    }

    /// Kills etcd with `SIGKILL`, leaves it down for `down`, and starts it again on the same
    /// ports with the same data directory (everything it acknowledged is still there). Returns
    /// once kube-apiserver, which stays up meanwhile, is ready again.
    pub async fn restart_etcd(&mut self, down: Duration) -> Result<()> {
        self.etcd.kill()?;
        tokio::time::sleep(down).await;
        let (port, peer_port) = self.launch.etcd_ports;
        self.etcd = start_etcd(
            &self.launch.etcd_bin,
            &self.launch.dir,
            port,
            peer_port,
            &self.run_dir,
        )?;
        wait_for_etcd(&mut self.etcd, port, self.launch.ready_timeout).await?;
        self.wait_until_ready().await?;
        progress(format_args!("etcd restarted (pid {})", self.etcd.pid()));
        Ok(())
    }

    /// Waits until kube-apiserver answers `/readyz` with `ok` (which needs etcd too).
    async fn wait_until_ready(&mut self) -> Result<()> {
        let client = client_from_kubeconfig(&self.kubeconfig_path).await?;
        wait_for_apiserver(
            &mut self.apiserver,
            &mut self.etcd,
            &client,
            self.launch.ready_timeout,
        )
        .await
    }

    /// The audit log of write requests (JSON lines of `audit.k8s.io/v1` Events), when
    /// [`ControlPlaneOptions::audit_log`] asked for one.
    pub fn audit_log_path(&self) -> Option<&Path> {
        self.audit_log.as_deref()
    }

    /// A new client authenticated as cluster admin. Create one per tokio runtime (each
    /// `#[tokio::test]` has its own); clients are cheap.
    pub async fn client(&self) -> Result<Client> {
        client_from_kubeconfig(&self.kubeconfig_path).await
    }

    /// Path of the admin kubeconfig, for `kubectl --kubeconfig` and `KUBECONFIG`.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The API server's URL.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The API server's port, on [`Self::api_address`].
    pub fn api_port(&self) -> u16 {
        self.launch.api_port
    }

    /// Where the API server listens: 127.0.0.1, or with [`ControlPlaneOptions::node`] the
    /// node's IP, which it advertises as the `kubernetes` Service's endpoint: Pods reach it
    /// with their in-cluster settings (`KUBERNETES_SERVICE_HOST`, the ServiceAccount token,
    /// `kube-root-ca.crt`) through kube-proxy, as in any cluster.
    pub fn api_address(&self) -> Ipv4Addr {
        self.launch.api_address
    }

    /// Whether it was started with [`ControlPlaneOptions::node`], so a
    /// [`crate::node::Node`] can join it.
    pub fn runs_nodes(&self) -> bool {
        self.launch.node
    }

    /// The node's network (bridge, Pod subnet, node IP), with [`ControlPlaneOptions::node`].
    pub fn node_network(&self) -> Option<&Network> {
        self.node_network.as_ref()
    }

    /// The CA every certificate of this control plane chains to; kube-apiserver accepts
    /// client certificates it issues (the organisation fields are the groups).
    pub fn certificate_authority(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// The CA certificate (PEM file), for clients that verify kube-apiserver.
    pub fn ca_cert_path(&self) -> &Path {
        &self.launch.pki.ca_cert
    }

    /// Names of the CRDs installed at start-up.
    pub fn crds(&self) -> &[String] {
        &self.crds
    }

    /// How long start-up took, CRDs included.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Process ids of kube-apiserver and etcd, in that order.
    pub fn pids(&self) -> [u32; 2] {
        [self.apiserver.pid(), self.etcd.pid()]
    }

    /// The directory holding certificates, data and logs.
    pub fn run_dir(&self) -> &Path {
        self.run_dir.path()
    }

    /// A `kubectl` command already pointed at this control plane.
    pub fn kubectl(&self) -> Result<Command> {
        let mut command = Command::new(tools::kubectl().require()?);
        command.env("KUBECONFIG", &self.kubeconfig_path);
        Ok(command)
    }

    /// The last lines of both servers' logs, for failure reports.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut tails = format!(
            "--- kube-apiserver ({}) ---\n{}\n--- etcd ({}) ---\n{}",
            self.apiserver.log().display(),
            self.apiserver.log_tail(lines),
            self.etcd.log().display(),
            self.etcd.log_tail(lines),
        );
        if let Some(manager) = &self.controller_manager {
            tails.push_str(&format!(
                "\n--- kube-controller-manager ({}) ---\n{}",
                manager.log().display(),
                manager.log_tail(lines)
            ));
        }
        tails
    }

    /// A guard that prints the servers' log tails if the current test panics before it is
    /// dropped. Use it with [`ControlPlane::shared`], which is never dropped itself.
    pub fn logs_on_failure(&self) -> LogsOnFailure<'_> {
        LogsOnFailure {
            control_plane: self,
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if std::thread::panicking() {
            progress(format_args!(
                "test failed; control plane logs:\n{}",
                self.log_tails(30)
            ));
        }
    }
}

/// Prints the control plane's logs when dropped during a panic; see
/// [`ControlPlane::logs_on_failure`].
#[derive(Debug)]
pub struct LogsOnFailure<'a> {
    control_plane: &'a ControlPlane,
}

impl Drop for LogsOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            progress(format_args!(
                "test failed; control plane logs:\n{}",
                self.control_plane.log_tails(30)
            ));
        }
    }
}

/// Paths of the PEM files the servers and the kubeconfig use.
#[derive(Debug)]
struct PkiFiles {
    ca_cert: PathBuf,
    serving_cert: PathBuf,
    serving_key: PathBuf,
    admin_cert: PathBuf,
    admin_key: PathBuf,
    service_account_public: PathBuf,
    service_account_private: PathBuf,
    /// kube-apiserver's client certificate towards kubelets.
    kubelet_client_cert: PathBuf,
    kubelet_client_key: PathBuf,
}

fn write_pki(dir: &Path, api_address: Ipv4Addr) -> Result<(CertificateAuthority, PkiFiles)> {
    let ca = CertificateAuthority::new("ferrometal-testenv-ca")?;
    let api_address = api_address.to_string();
    let mut names = vec![
        "127.0.0.1",
        "localhost",
        // The `kubernetes` Service's cluster IP.
        "10.0.0.1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
    ];
    if !names.contains(&api_address.as_str()) {
        names.push(&api_address);
    }
    let serving = ca.issue_server("kube-apiserver", &names)?;
    let admin = ca.issue_client("testenv-admin", &["system:masters"])?;
    let kubelet_client = ca.issue_client("kube-apiserver-kubelet-client", &["system:masters"])?;
    let service_account = rcgen::KeyPair::generate()?;
    let files = PkiFiles {
        ca_cert: dir.join("ca.crt"),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        admin_cert: dir.join("admin.crt"),
        admin_key: dir.join("admin.key"),
        service_account_public: dir.join("sa.pub"),
        service_account_private: dir.join("sa.key"),
        kubelet_client_cert: dir.join("apiserver-kubelet-client.crt"),
        kubelet_client_key: dir.join("apiserver-kubelet-client.key"),
    };
    for (path, contents) in [
        (&files.ca_cert, ca.cert_pem()),
        (&files.serving_cert, serving.cert_pem),
        (&files.serving_key, serving.key_pem),
        (&files.admin_cert, admin.cert_pem),
        (&files.admin_key, admin.key_pem),
        (
            &files.service_account_public,
            service_account.public_key_pem(),
        ),
        (
            &files.service_account_private,
            service_account.serialize_pem(),
        ),
        (&files.kubelet_client_cert, kubelet_client.cert_pem),
        (&files.kubelet_client_key, kubelet_client.key_pem),
    ] {
        fs::write(path, contents).map_err(Error::io(format!("write {}", path.display())))?;
    }
    Ok((ca, files))
}

fn start_etcd(
    bin: &Path,
    dir: &Path,
    port: u16,
    peer_port: u16,
    run_dir: &RunDir,
) -> Result<ManagedProcess> {
    let client_url = format!("http://127.0.0.1:{port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let mut command = Command::new(bin);
    command
        .arg(format!("--data-dir={}", dir.join("etcd").display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=default={peer_url}"))
        .arg("--unsafe-no-fsync=true")
        .arg("--log-level=warn");
    ManagedProcess::spawn("etcd", command, run_dir)
}

async fn wait_for_etcd(etcd: &mut ManagedProcess, port: u16, timeout: Duration) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(Error::HttpClient)?;
    etcd.wait_until_answers(&http, &format!("http://127.0.0.1:{port}/health"), timeout)
        .await
}

/// Writes an audit policy that records write requests at the `Metadata` level (no bodies:
/// Secrets stay out of the log); returns the policy's path and the log's.
fn write_audit_policy(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let policy = dir.join("audit-policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\n\
         kind: Policy\n\
         omitStages: [RequestReceived]\n\
         rules:\n\
         - level: Metadata\n\
         \x20 verbs: [create, update, patch, delete, deletecollection]\n\
         - level: None\n",
    )
    .map_err(Error::io(format!("write {}", policy.display())))?;
    Ok((policy, dir.join("audit.log")))
}

/// Set (to anything) to run kube-apiserver with `--profiling=true`.
pub const PROFILING_VARIABLE: &str = "TESTENV_APISERVER_PROFILING";

fn start_apiserver(
    bin: &Path,
    dir: &Path,
    pki: &PkiFiles,
    (etcd_port, address, port): (u16, Ipv4Addr, u16),
    audit: Option<&(PathBuf, PathBuf)>,
    node: bool,
    run_dir: &RunDir,
) -> Result<ManagedProcess> {
    let mut command = Command::new(bin);
    if node {
        // Kubelets authenticate as system:node:<name>; Pods get ServiceAccount tokens
        // (kube-controller-manager creates the accounts and the root CA ConfigMap); logs and
        // exec go to the kubelet with a client certificate, whose serving certificate the
        // same CA signed.
        command
            .arg("--authorization-mode=Node,RBAC")
            // The node's IP, never its name: names would be looked up in DNS.
            .arg("--kubelet-preferred-address-types=InternalIP")
            .arg(format!(
                "--kubelet-client-certificate={}",
                pki.kubelet_client_cert.display()
            ))
            .arg(format!(
                "--kubelet-client-key={}",
                pki.kubelet_client_key.display()
            ))
            .arg(format!(
                "--kubelet-certificate-authority={}",
                pki.ca_cert.display()
            ));
    } else {
        command
            .arg("--disable-admission-plugins=ServiceAccount")
            .arg("--authorization-mode=RBAC");
    }
    if let Some((policy, log)) = audit {
        command
            .arg(format!("--audit-policy-file={}", policy.display()))
            .arg(format!("--audit-log-path={}", log.display()))
            .arg("--audit-log-mode=blocking");
    }
    command
        .arg(format!("--etcd-servers=http://127.0.0.1:{etcd_port}"))
        .arg(format!(
            "--cert-dir={}",
            dir.join("apiserver-certs").display()
        ))
        .arg(format!("--tls-cert-file={}", pki.serving_cert.display()))
        .arg(format!(
            "--tls-private-key-file={}",
            pki.serving_key.display()
        ))
        .arg(format!("--client-ca-file={}", pki.ca_cert.display()))
        .arg(format!("--secure-port={port}"))
        // 127.0.0.1, or the node's bridge address: never every interface.
        .arg(format!("--bind-address={address}"))
        .arg(format!("--advertise-address={address}"))
        .arg(format!("--service-cluster-ip-range={SERVICE_RANGE}"))
        .arg("--allow-privileged=true")
        .arg(format!(
            "--service-account-issuer=https://127.0.0.1:{port}/"
        ))
        .arg(format!(
            "--service-account-key-file={}",
            pki.service_account_public.display()
        ))
        .arg(format!(
            "--service-account-signing-key-file={}",
            pki.service_account_private.display()
        ))
        // `TESTENV_APISERVER_PROFILING=1` serves Go's pprof at `/debug/pprof/` (to the
        // admin certificate), to see where the control plane's CPU goes in a benchmark.
        .arg(if std::env::var_os(PROFILING_VARIABLE).is_some() {
            "--profiling=true"
        } else {
            "--profiling=false"
        });
    ManagedProcess::spawn("kube-apiserver", command, run_dir)
}

fn write_kubeconfig(path: &Path, server_url: &str, pki: &PkiFiles) -> Result<()> {
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "ferrometal-testenv",
            "cluster": {
                "server": server_url,
                "certificate-authority": pki.ca_cert,
            },
        }],
        "users": [{
            "name": "testenv-admin",
            "user": {
                "client-certificate": pki.admin_cert,
                "client-key": pki.admin_key,
            },
        }],
        "contexts": [{
            "name": "ferrometal-testenv",
            "context": { "cluster": "ferrometal-testenv", "user": "testenv-admin" },
        }],
        "current-context": "ferrometal-testenv",
    });
    let yaml = serde_saphyr::to_string(&kubeconfig).map_err(|error| Error::Serialise {
        what: "kubeconfig",
        message: error.to_string(),
    })?;
    fs::write(path, yaml).map_err(Error::io(format!("write {}", path.display())))
}

async fn client_from_kubeconfig(path: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

async fn wait_for_apiserver(
    apiserver: &mut ManagedProcess,
    etcd: &mut ManagedProcess,
    client: &Client,
    timeout: Duration,
) -> Result<()> {
    let started = Instant::now();
    let mut last_error = String::from("no answer yet");
    while started.elapsed() < timeout {
        apiserver.ensure_running()?;
        etcd.ensure_running()?;
        let request = http::Request::get("/readyz")
            .body(Vec::new())
            .map_err(|error| Error::Serialise {
                what: "readiness request",
                message: error.to_string(),
            })?;
        match tokio::time::timeout(Duration::from_secs(5), client.request_text(request)).await {
            Ok(Ok(body)) if body.trim() == "ok" => return Ok(()),
            Ok(Ok(body)) => last_error = format!("/readyz answered {body:?}"),
            Ok(Err(error)) => last_error = error.to_string(),
            Err(_) => last_error = String::from("/readyz timed out"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(apiserver.not_ready(timeout, last_error))
}

/// Applies every CRD in `dir/*.yaml` (server-side apply) and waits until each is
/// `Established`. Returns the CRD names.
pub async fn install_crds(client: &Client, dir: &Path) -> Result<Vec<String>> {
    const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
            .collect(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(Error::Io {
                action: format!("list {}", dir.display()),
                source,
            });
        }
    };
    files.sort();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("ferrometal-testenv").force();
    let mut names = Vec::new();
    for file in files {
        let text =
            fs::read_to_string(&file).map_err(Error::io(format!("read {}", file.display())))?;
        let crds: Vec<CustomResourceDefinition> =
            serde_saphyr::from_multiple(&text).map_err(|error| Error::CrdManifest {
                path: file.clone(),
                message: error.to_string(),
            })?;
        for crd in crds {
            let name = crd
                .metadata
                .name
                .clone()
                .ok_or_else(|| Error::CrdManifest {
                    path: file.clone(),
                    message: String::from("a CRD has no metadata.name"),
                })?;
            api.patch(&name, &params, &Patch::Apply(&crd)).await?;
            names.push(name);
        }
    }
    for name in &names {
        let established = await_condition(api.clone(), name, conditions::is_crd_established());
        match tokio::time::timeout(ESTABLISH_TIMEOUT, established).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                return Err(Error::CrdManifest {
                    path: dir.to_path_buf(),
                    message: format!("waiting for {name}: {error}"),
                });
            }
            Err(_) => {
                return Err(Error::CrdNotEstablished {
                    name: name.clone(),
                    waited: ESTABLISH_TIMEOUT,
                });
            }
        }
    }
    Ok(names)
}

/// kube-controller-manager running `controllers` as cluster admin (through `kubeconfig`),
/// without leader election or a serving port; the caller adds what its controllers need.
fn controller_manager(kubeconfig: &Path, controllers: &str) -> Result<Command> {
    let bin = tools::kube_controller_manager().require()?;
    let mut command = Command::new(bin);
    for flag in [
        "--kubeconfig",
        "--authentication-kubeconfig",
        "--authorization-kubeconfig",
    ] {
        command.arg(format!("{flag}={}", kubeconfig.display()));
    }
    command.arg(format!("--controllers={controllers}")).args([
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        "--secure-port=0",
        "--use-service-account-credentials=false",
    ]);
    Ok(command)
}

/// kube-controller-manager with every controller a node's workloads need (all but `nodeipam`:
/// Pod CIDRs come from the node's CNI configuration), as cluster admin. It signs nothing but
/// ServiceAccount tokens and publishes the CA for Pods' `kube-root-ca.crt`.
fn start_controller_manager(
    kubeconfig: &Path,
    pki: &PkiFiles,
    run_dir: &RunDir,
) -> Result<ManagedProcess> {
    let mut command = controller_manager(kubeconfig, "*,-nodeipam")?;
    command
        .arg(format!(
            "--service-account-private-key-file={}",
            pki.service_account_private.display()
        ))
        .arg(format!("--root-ca-file={}", pki.ca_cert.display()));
    ManagedProcess::spawn("kube-controller-manager", command, run_dir)
}

/// kube-controller-manager with only the garbage collector, as cluster admin. It needs no
/// readiness wait: dependents are collected once it has synced, which tests poll for anyway.
fn start_garbage_collector(kubeconfig: &Path, run_dir: &RunDir) -> Result<ManagedProcess> {
    let command = controller_manager(kubeconfig, "garbagecollector")?;
    ManagedProcess::spawn("kube-controller-manager", command, run_dir)
}
