//! A real Kubernetes node beside the test control plane: containerd, kubelet, kube-scheduler
//! and kube-proxy, so Pods, Deployments and Services run as in a cluster.
//!
//! Everything the node keeps is private to its run directory: containerd's root, state and
//! socket, kubelet's root directory and Pod logs, the CNI configuration and address leases,
//! the Pods' network namespaces. Pods hang off a bridge of their own ([`Network`], which the
//! control plane creates so that kube-apiserver can listen on its address) whose address is
//! the node's IP; guard chains drop anything forwarded between that bridge and other
//! interfaces and anything the host sends to an untranslated Service address, so Pod and
//! Service traffic stays on the machine. Images are never pulled:
//! the sandbox (pause) image is built from a static program `cargo xtask setup` compiles, and
//! tests import their images with [`Node::import_image`].
//!
//! Settings this needs on the project's machines (docs/testing.md says why):
//! containerd's `restrict_oom_score_adj` (root without `CAP_SYS_RESOURCE`), kubelet's
//! `failCgroupV1: false` and `cgroupDriver: cgroupfs` (cgroup v1, PID 1 is not systemd), the
//! bridge plugin's `hairpinMode` and `kube-proxy --masquerade-all` (no `br_netfilter`).
//!
//! One node runs on a machine at a time (its network holds a lock file that serialises
//! them). Dropping the node stops everything and removes what it left on the machine but its
//! network, which goes with the control plane; see [`leftovers`].

mod cleanup;
mod image;
mod network;

use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node as NodeObject;
use kube::Api;

pub use cleanup::leftovers;
pub use image::{ArchiveFormat, BUSYBOX_IMAGE, ImageArchive, PAUSE_IMAGE, busybox_image};
pub use network::{Network, NetworkOptions};

use crate::net::free_port;
use crate::process::{ManagedProcess, RunDir};
use crate::{ControlPlane, Error, Result, progress, tools};

/// The CNI network's name (and the prefix of its entries in the CNI result cache).
const NETWORK: &str = "ferrometal-node";

/// How to start a node. Its network (bridge, Pod subnet, node IP) is the control plane's:
/// [`crate::ControlPlaneOptions::node_network`].
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The Node object's name (kubelet's and kube-proxy's `--hostname-override`).
    pub name: String,
    /// How long to wait for the Node to become Ready.
    pub ready_timeout: Duration,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            name: String::from("ferrometal-node"),
            ready_timeout: Duration::from_secs(60),
        }
    }
}

/// A running node. Dropping it stops its components and every container, unmounts what
/// they mounted and removes its iptables chains and `kubepods` cgroups; the bridge, the
/// guard chains and the kernel settings go with the control plane's [`Network`]. Drop it
/// before its control plane.
#[derive(Debug)]
pub struct Node {
    // Started in reverse order; stopped in this order by `tear_down`.
    kube_proxy: Option<ManagedProcess>,
    scheduler: Option<ManagedProcess>,
    kubelet: Option<ManagedProcess>,
    containerd: Option<ManagedProcess>,
    name: String,
    ip: Ipv4Addr,
    pod_subnet: Ipv4Net,
    bridge: String,
    socket: PathBuf,
    started_in: Duration,
    // Field order matters: the network is released, then the run directory removed, after
    // `Drop::drop` has cleaned up.
    _claim: network::Claim,
    run_dir: RunDir,
}

impl Node {
    /// Starts a node that joins `control_plane`, which must have been started with
    /// [`crate::ControlPlaneOptions::node`]. Returns once the Node is Ready. Needs root.
    pub async fn start(control_plane: &ControlPlane, options: NodeOptions) -> Result<Self> {
        let started = Instant::now();
        let Some(network) = control_plane.node_network() else {
            return Err(Error::ControlPlaneWithoutNodes);
        };
        for tool in [
            tools::containerd(),
            tools::ctr(),
            tools::runc(),
            tools::kubelet(),
            tools::kube_scheduler(),
            tools::kube_proxy(),
            tools::pause(),
        ] {
            tool.require()?;
        }
        let claim = network.claim().ok_or_else(|| {
            Error::NodeSettings(String::from("a node runs on this control plane already"))
        })?;
        let run_dir = RunDir::create("node")?;
        let mut node = Self {
            kube_proxy: None,
            scheduler: None,
            kubelet: None,
            containerd: None,
            name: options.name.clone(),
            ip: network.ip(),
            pod_subnet: network.pod_subnet(),
            bridge: network.bridge().to_owned(),
            socket: run_dir.path().join("containerd.sock"),
            started_in: Duration::ZERO,
            _claim: claim,
            run_dir,
        };
        // On error, `node` is dropped here and cleans up whatever was started; its logs stay.
        if let Err(error) = node.launch(control_plane, &options).await {
            node.run_dir.keep();
            return Err(error);
        }
        node.started_in = started.elapsed();
        progress(format_args!(
            "node {} ready in {:.1}s: kubelet v{} (pid {}), containerd (pid {}), node IP {}, Pods in {} on {}, run directory {}",
            node.name,
            node.started_in.as_secs_f64(),
            tools::KUBERNETES_VERSION,
            node.kubelet.as_ref().map_or(0, ManagedProcess::pid),
            node.containerd.as_ref().map_or(0, ManagedProcess::pid),
            node.ip,
            node.pod_subnet,
            node.bridge,
            node.run_dir.path().display(),
        ));
        Ok(node)
    }

    async fn launch(&mut self, control_plane: &ControlPlane, options: &NodeOptions) -> Result<()> {
        let dir = self.run_dir.path().to_path_buf();
        let containerd_config =
            write_containerd_config(&dir, &self.socket, (self.ip, self.pod_subnet, &self.bridge))?;
        let mut containerd = Command::new(tools::containerd().require()?);
        containerd.arg("--config").arg(&containerd_config);
        self.containerd = Some(ManagedProcess::spawn(
            "containerd",
            containerd,
            &self.run_dir,
        )?);
        self.wait_for_containerd(options.ready_timeout).await?;
        let pause = image::pause_image(&dir)?;
        self.import_image(&pause.path)?;

        let kubelet_config =
            write_kubelet_files(&dir, control_plane, &self.socket, self.ip, options)?;
        let mut kubelet = Command::new(tools::kubelet().require()?);
        kubelet
            .arg(format!("--config={}", kubelet_config.config.display()))
            .arg(format!(
                "--kubeconfig={}",
                kubelet_config.kubeconfig.display()
            ))
            .arg(format!("--root-dir={}", dir.join("kubelet").display()))
            .arg(format!("--hostname-override={}", self.name))
            .arg(format!("--node-ip={}", self.ip))
            .arg("--v=1");
        self.kubelet = Some(ManagedProcess::spawn("kubelet", kubelet, &self.run_dir)?);

        let admin = control_plane.kubeconfig_path();
        let mut scheduler = Command::new(tools::kube_scheduler().require()?);
        scheduler
            .arg(format!("--kubeconfig={}", admin.display()))
            .arg(format!("--authentication-kubeconfig={}", admin.display()))
            .arg(format!("--authorization-kubeconfig={}", admin.display()))
            .args([
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
            ]);
        self.scheduler = Some(ManagedProcess::spawn(
            "kube-scheduler",
            scheduler,
            &self.run_dir,
        )?);

        let mut proxy = Command::new(tools::kube_proxy().require()?);
        proxy
            .arg(format!("--kubeconfig={}", admin.display()))
            .arg(format!("--hostname-override={}", self.name))
            .arg(format!("--bind-address={}", self.ip))
            .arg(format!("--cluster-cidr={}", self.pod_subnet))
            .arg(format!("--nodeport-addresses={}/32", self.ip))
            .arg(format!("--healthz-bind-address=127.0.0.1:{}", free_port()?))
            .arg(format!("--metrics-bind-address=127.0.0.1:{}", free_port()?))
            .args([
                "--proxy-mode=iptables",
                // Without br_netfilter, a Pod's reply to a Pod on the same bridge bypasses
                // the host's NAT; masquerading Service traffic routes replies back through it.
                "--masquerade-all",
                "--iptables-localhost-nodeports=false",
                // Leave the machine's conntrack limits and timeouts as they are.
                "--conntrack-max-per-core=0",
                "--conntrack-tcp-timeout-established=0",
                "--conntrack-tcp-timeout-close-wait=0",
            ]);
        self.kube_proxy = Some(ManagedProcess::spawn("kube-proxy", proxy, &self.run_dir)?);

        self.wait_until_ready(control_plane, options.ready_timeout)
            .await
    }

    async fn wait_for_containerd(&mut self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let mut last_error = String::from("no socket yet");
        while started.elapsed() < timeout {
            if let Some(containerd) = &mut self.containerd {
                containerd.ensure_running()?;
            }
            if self.socket.exists() {
                match run(self.ctr().arg("version")) {
                    Ok(_) => return Ok(()),
                    Err(error) => last_error = error.to_string(),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(not_ready(self.containerd.as_ref(), timeout, last_error))
    }

    async fn wait_until_ready(
        &mut self,
        control_plane: &ControlPlane,
        timeout: Duration,
    ) -> Result<()> {
        let nodes: Api<NodeObject> = Api::all(control_plane.client().await?);
        let started = Instant::now();
        let mut last_error = String::from("not registered yet");
        while started.elapsed() < timeout {
            for process in [
                &mut self.containerd,
                &mut self.kubelet,
                &mut self.scheduler,
                &mut self.kube_proxy,
            ]
            .into_iter()
            .flatten()
            {
                process.ensure_running()?;
            }
            match nodes.get_opt(&self.name).await {
                Ok(Some(node)) => {
                    let ready = node
                        .status
                        .and_then(|status| status.conditions)
                        .unwrap_or_default()
                        .into_iter()
                        .find(|condition| condition.type_ == "Ready");
                    match ready {
                        Some(condition) if condition.status == "True" => return Ok(()),
                        Some(condition) => {
                            last_error = format!(
                                "Ready={} ({})",
                                condition.status,
                                condition.message.unwrap_or_default()
                            );
                        }
                        None => last_error = String::from("no Ready condition yet"),
                    }
                }
                Ok(None) => last_error = String::from("not registered yet"),
                Err(error) => last_error = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(not_ready(self.kubelet.as_ref(), timeout, last_error))
    }

    /// `ctr` pointed at this node's containerd, in the namespace kubelet's images and
    /// containers live in (`k8s.io`).
    pub fn ctr(&self) -> Command {
        let mut command = Command::new(tools::ctr().path);
        command
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "k8s.io"]);
        command
    }

    /// Imports an image tarball (a docker archive, or an OCI archive whose images are named
    /// with full references in their `io.containerd.image.name` or
    /// `org.opencontainers.image.ref.name` annotation, as `cargo xtask image` writes) into
    /// the node, unpacked for its platform. Pods use it with `imagePullPolicy: Never` or
    /// `IfNotPresent`. Returns the names of the images imported.
    pub fn import_image(&self, archive: &Path) -> Result<Vec<String>> {
        let output = run(self.ctr().args(["images", "import"]).arg(archive))?;
        let names: Vec<String> = output
            .lines()
            .filter_map(|line| line.strip_prefix("unpacking "))
            .filter_map(|rest| rest.split(" (").next())
            .map(str::to_owned)
            .collect();
        if names.is_empty() {
            return Err(Error::CommandFailed {
                command: format!("ctr images import {}", archive.display()),
                message: format!("no image was imported; ctr printed {output:?}"),
            });
        }
        Ok(names)
    }

    /// Writes the busybox test image ([`BUSYBOX_IMAGE`]) into the run directory in
    /// `format` and imports it.
    pub fn import_busybox(&self, format: ArchiveFormat) -> Result<ImageArchive> {
        let archive = busybox_image(&self.run_dir.path().join("images"), format)?;
        self.import_image(&archive.path)?;
        Ok(archive)
    }

    /// The Node object's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's IP: the bridge's address, where hostNetwork Pods listen and Pods' traffic
    /// to the host arrives.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The Pods' bridge.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// containerd's socket.
    pub fn containerd_socket(&self) -> &Path {
        &self.socket
    }

    /// How long start-up took, until the Node was Ready.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The directory holding the node's configuration, state and logs.
    pub fn run_dir(&self) -> &Path {
        self.run_dir.path()
    }

    /// The last lines of each component's log, for failure reports.
    pub fn log_tails(&self, lines: usize) -> String {
        [
            &self.containerd,
            &self.kubelet,
            &self.scheduler,
            &self.kube_proxy,
        ]
        .into_iter()
        .flatten()
        .map(|process| {
            format!(
                "--- {} ---\n{}",
                process.log().display(),
                process.log_tail(lines)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
    }

    /// Stops everything and removes what the node left on the machine; see the type's
    /// documentation.
    fn tear_down(&mut self) {
        let mut problems = Vec::new();
        // Nothing may start new containers or rewrite rules while containers are stopped.
        drop(self.scheduler.take());
        drop(self.kube_proxy.take());
        drop(self.kubelet.take());
        if self.containerd.is_some() {
            self.stop_containers(&mut problems);
        }
        drop(self.containerd.take());
        cleanup::clean_up_run_dir(self.run_dir.path(), &mut problems);
        cleanup::clean_up_node(NETWORK, &mut problems);
        report("stopping the node", &problems);
    }

    /// Kills and deletes every container task through containerd, so each shim exits and
    /// removes its socket and mounts.
    fn stop_containers(&self, problems: &mut Vec<String>) {
        // A containerd that hangs must not hang the test: what it leaves, the rest of the
        // clean-up removes by force.
        let ctr = || {
            let mut command = self.ctr();
            command.args(["--timeout", "20s"]);
            command
        };
        let tasks = match run(ctr().args(["tasks", "list", "--quiet"])) {
            Ok(tasks) => tasks,
            Err(error) => {
                problems.push(error.to_string());
                return;
            }
        };
        let ids: Vec<&str> = tasks.split_whitespace().collect();
        if ids.is_empty() {
            return;
        }
        // A sandbox's containers may go with it and no longer be there to delete; what
        // counts is that no task is left.
        let deleted = run(ctr().args(["tasks", "delete", "--force"]).args(&ids));
        match run(ctr().args(["tasks", "list", "--quiet"])) {
            Ok(left) if left.trim().is_empty() => {}
            Ok(left) => problems.push(format!(
                "container tasks left after deleting them: {} ({})",
                left.split_whitespace().collect::<Vec<_>>().join(", "),
                deleted
                    .err()
                    .map(|error| error.to_string())
                    .unwrap_or_default()
            )),
            Err(error) => problems.push(error.to_string()),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            progress(format_args!(
                "test failed; node logs:\n{}",
                self.log_tails(30)
            ));
        }
        self.tear_down();
    }
}

/// A readiness timeout of `process`, with its log tail.
fn not_ready(process: Option<&ManagedProcess>, waited: Duration, last_error: String) -> Error {
    match process {
        Some(process) => process.not_ready(waited, last_error),
        // Unreachable: each wait follows its process's start.
        None => Error::NodeSettings(last_error),
    }
}

/// Prints clean-up problems; a clean-up has nobody to return them to.
fn report(what: &str, problems: &[String]) {
    for problem in problems {
        progress(format_args!("{what}: {problem}"));
    }
}

/// Called by the run directory reaper for a node run directory whose owner died: kills
/// what still runs from it and unmounts what is mounted under it; if no node runs on the
/// machine now, also removes what the dead node left outside it.
pub(crate) fn clean_up_dead_run(dir: &Path) {
    let mut problems = Vec::new();
    cleanup::clean_up_run_dir(dir, &mut problems);
    let lock_path = tools::cache_dir().join("node.lock");
    if let Ok(file) = File::create(&lock_path)
        && rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
    {
        let bridge = fs::read_to_string(dir.join("bridge"))
            .map(|name| name.trim().to_owned())
            .unwrap_or_else(|_| NetworkOptions::default().bridge);
        cleanup::clean_up_machine(&bridge, NETWORK, &mut problems);
    }
    report(
        &format!("cleaning up the dead node run {}", dir.display()),
        &problems,
    );
}

/// Whether `dir` is a node's run directory (`<pid>-node-<n>`).
pub(crate) fn is_node_run_dir(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.split('-').nth(1) == Some("node"))
}

/// Runs `command`; its standard output, or the command and its error output.
fn run(command: &mut Command) -> Result<String> {
    crate::discovery_image::run(command)
}

/// containerd's configuration: root, state, socket and runc's state under `dir`; the CRI
/// plugin with the local pause image, the CNI configuration in `dir/cni`, and network
/// namespaces under its state directory instead of `/run/netns`.
fn write_containerd_config(
    dir: &Path,
    socket: &Path,
    (ip, pod_subnet, bridge): (Ipv4Addr, Ipv4Net, &str),
) -> Result<PathBuf> {
    let cni_dir = dir.join("cni");
    fs::create_dir_all(&cni_dir).map_err(Error::io(format!("create {}", cni_dir.display())))?;
    let conflist = serde_json::json!({
        "cniVersion": "0.4.0",
        "name": NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": false,
                // A Pod that reaches a Service routed back to itself needs its packets
                // sent back out of the port they came in on.
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": pod_subnet.to_string(), "gateway": ip.to_string() }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": dir.join("cni-leases"),
                },
            },
            { "type": "portmap", "capabilities": { "portMappings": true } },
        ],
    });
    let conflist_path = cni_dir.join("10-ferrometal.conflist");
    fs::write(&conflist_path, conflist.to_string())
        .map_err(Error::io(format!("write {}", conflist_path.display())))?;
    fs::write(dir.join("bridge"), bridge)
        .map_err(Error::io(format!("write {}", dir.join("bridge").display())))?;

    let containerd = dir.join("containerd");
    let config = format!(
        r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # root here lacks CAP_SYS_RESOURCE: without this, runc fails to raise a sandbox's
  # oom_score_adj and every sandbox fails.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_unprivileged_ports = false
  enable_unprivileged_icmp = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        Root = "{runc_root}"
        SystemdCgroup = false
"#,
        root = containerd.join("root").display(),
        state = containerd.join("state").display(),
        socket = socket.display(),
        pause = PAUSE_IMAGE,
        cni_bin = tools::CNI_BIN_DIR,
        cni_conf = cni_dir.display(),
        runc = tools::runc().path.display(),
        runc_root = containerd.join("runc").display(),
    );
    let path = dir.join("containerd.toml");
    fs::write(&path, config).map_err(Error::io(format!("write {}", path.display())))?;
    Ok(path)
}

/// Where [`write_kubelet_files`] put kubelet's configuration and kubeconfig.
struct KubeletFiles {
    config: PathBuf,
    kubeconfig: PathBuf,
}

/// kubelet's certificates (a client certificate for `system:node:<name>` in `system:nodes`,
/// and a serving certificate for the node IP, both from the control plane's CA), its
/// kubeconfig and its configuration file.
fn write_kubelet_files(
    dir: &Path,
    control_plane: &ControlPlane,
    socket: &Path,
    ip: Ipv4Addr,
    options: &NodeOptions,
) -> Result<KubeletFiles> {
    let pki = dir.join("kubelet-pki");
    fs::create_dir_all(&pki).map_err(Error::io(format!("create {}", pki.display())))?;
    let ca = control_plane.certificate_authority();
    let client = ca.issue_client(&format!("system:node:{}", options.name), &["system:nodes"])?;
    let ip_text = ip.to_string();
    let serving = ca.issue_server(
        &options.name,
        &[&ip_text, &options.name, "127.0.0.1", "localhost"],
    )?;
    let files = [
        ("client.crt", client.cert_pem),
        ("client.key", client.key_pem),
        ("serving.crt", serving.cert_pem),
        ("serving.key", serving.key_pem),
    ];
    for (name, contents) in files {
        let path = pki.join(name);
        fs::write(&path, contents).map_err(Error::io(format!("write {}", path.display())))?;
    }
    let ca_cert = control_plane.ca_cert_path();

    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "ferrometal-testenv",
            "cluster": { "server": control_plane.server_url(), "certificate-authority": ca_cert },
        }],
        "users": [{
            "name": "node",
            "user": {
                "client-certificate": pki.join("client.crt"),
                "client-key": pki.join("client.key"),
            },
        }],
        "contexts": [{
            "name": "node",
            "context": { "cluster": "ferrometal-testenv", "user": "node" },
        }],
        "current-context": "node",
    });
    let kubeconfig_path = dir.join("kubelet.kubeconfig");
    fs::write(&kubeconfig_path, kubeconfig.to_string())
        .map_err(Error::io(format!("write {}", kubeconfig_path.display())))?;

    let config = serde_json::json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        // The machines' cgroup v1 hierarchy, with no systemd as PID 1.
        "failCgroupV1": false,
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": format!("unix://{}", socket.display()),
        "address": ip_text,
        "port": free_port()?,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": free_port()?,
        "tlsCertFile": pki.join("serving.crt"),
        "tlsPrivateKeyFile": pki.join("serving.key"),
        "authentication": {
            "anonymous": { "enabled": false },
            "webhook": { "enabled": false },
            "x509": { "clientCAFile": ca_cert },
        },
        "authorization": { "mode": "AlwaysAllow" },
        // No DNS for Pods: there is no cluster DNS, and the host's resolvers are off limits.
        "resolvConf": "",
        "podLogsDir": dir.join("pod-logs"),
        "failSwapOn": false,
        "rotateCertificates": false,
        "serverTLSBootstrap": false,
        // The machines' disks are shared and fuller than kubelet's defaults allow; the
        // node's images cannot be pulled again once collected.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "nodeStatusUpdateFrequency": "2s",
        "syncFrequency": "10s",
        "serializeImagePulls": false,
        "shutdownGracePeriod": "0s",
    });
    let config_path = dir.join("kubelet.json");
    fs::write(&config_path, config.to_string())
        .map_err(Error::io(format!("write {}", config_path.display())))?;
    Ok(KubeletFiles {
        config: config_path,
        kubeconfig: kubeconfig_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_run_directories_are_recognised_by_their_label() {
        assert!(is_node_run_dir(Path::new("/x/run/123-node-0")));
        assert!(!is_node_run_dir(Path::new("/x/run/123-control-plane-0")));
        assert!(!is_node_run_dir(Path::new("/x/run/123-etcd-0")));
    }
}
