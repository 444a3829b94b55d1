//! A whole ferrometal installation on one machine, for `make demo`, the end-to-end tests
//! and the scale benchmark: a real control plane (kube-apiserver + etcd), a real OCI
//! registry holding a discovery image, `ferrometal run` with its boot server, registry and
//! DHCP server (on loopback, on ports of its own), and a simulated fleet.
//!
//! BMCs reach ferrometal by both discovery paths: the first `dhcp_bmcs` announce themselves
//! by DHCP and become Endpoints, the rest are applied as BMC objects with `spec.access`.
//!
//! With [`LabOptions::node`] the lab runs a real node too, so that the operator runs as a Pod
//! installed by the Helm chart ([`chart`]): the registry and the BMCs listen on the node's IP,
//! where Pods reach them, and machines reach the boot server through the chart's NodePort.
//!
//! With [`LabOptions::ipv6`] the fleet works over IPv6 instead, in a network namespace of its
//! own joined to the host by a veth pair ([`ipv6`]): BMCs announce themselves and machines
//! boot over DHCPv6, and the boot server and registry are reached at the host's IPv6 address.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use testenv::{ControlPlane, OciRegistry, Program};

use crate::{DhcpPorts, Fleet, FleetOptions, FleetSpec, MachineBehaviour};

pub mod api_requests;
pub mod chart;
pub mod ipv6;

pub use api_requests::ApiRequests;
pub use chart::BOOT_NODE_PORT;

/// What to start.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Real QEMU VMs beside the simulated fleet, one per shape, behind one more BMC
    /// (`vm-bmc-60000`); with any, the discovery image is the real one built from Debian
    /// packages and machines are told the boot server's address as VMs see it (`10.0.2.2`).
    pub vms: Vec<crate::vm::VmShape>,
    /// The fleet.
    pub fleet: FleetSpec,
    /// How many BMCs announce themselves by DHCP (the rest are applied as BMC objects).
    pub dhcp_bmcs: usize,
    /// Redfish over TLS.
    pub tls: bool,
    /// Apply the BMC objects of the BMCs that do not announce themselves at start (otherwise
    /// the caller does, with [`Lab::apply_bmcs`]).
    pub apply_bmcs: bool,
    /// Start `ferrometal run` (otherwise the caller does, with [`Lab::spawn_operator`], e.g.
    /// after installing the Helm chart whose ServiceAccount it runs as).
    pub start_operator: bool,
    /// How machines behave.
    pub behaviour: MachineBehaviour,
    /// The `ferrometal` binary.
    pub ferrometal: PathBuf,
    /// The `metalprobe` binary the boot server offers: the discovery ignition names its URL
    /// (simulated machines run metalprobe's code in-process and do not download it).
    pub metalprobe: PathBuf,
    /// Directory holding the built plugin components (`redfish.wasm`, …).
    pub components: PathBuf,
    /// More `ferrometal run` arguments.
    pub operator_args: Vec<String>,
    /// `FERROMETAL_LOG` of the operator.
    pub operator_log: String,
    /// Scratch directory (kubeconfig, configuration files, plugin directory).
    pub work_dir: PathBuf,
    /// Have kube-apiserver keep an audit log of write requests
    /// (`lab.control_plane.audit_log_path()`).
    pub audit_log: bool,
    /// The BMCs that announce themselves by DHCP wait for
    /// `lab.fleet.release_dhcp_bmcs(n)` (see [`FleetOptions::hold_dhcp_bmcs`]).
    pub hold_dhcp_bmcs: bool,
    /// Run a real node ([`testenv::Node`]: containerd, kubelet, kube-scheduler, kube-proxy)
    /// for the operator to run on as a Pod, installed with the Helm chart ([`chart`]) instead
    /// of [`Self::start_operator`] (which must be false). The OCI registry and the BMCs that
    /// do not announce themselves by DHCP listen on the node's IP, where Pods reach them;
    /// machines are told the boot server is at the chart's NodePort
    /// ([`BOOT_NODE_PORT`]) on that IP. Needs root.
    pub node: bool,
    /// Run the fleet over IPv6 ([`ipv6`]): in a network namespace joined to the host by a
    /// veth pair, BMCs that announce themselves and machines lease over DHCPv6 (ferrometal's
    /// `dhcp6` server on the host's end), the other BMCs listen on static IPv6 addresses, and
    /// machines reach the boot server and registry at the host's IPv6 address only. Needs
    /// root; not with VMs or a node.
    pub ipv6: bool,
}

/// Why the lab could not start or act.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A harness component failed.
    #[error(transparent)]
    Harness(#[from] testenv::Error),
    /// The fleet failed.
    #[error(transparent)]
    Fleet(#[from] crate::SimError),
    /// The API server refused something.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A file could not be written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The API server's metrics could not be read.
    #[error(transparent)]
    Metrics(#[from] api_requests::MetricsError),
    /// The options do not fit together.
    #[error("invalid lab options: {0}")]
    Options(String),
    /// A command (helm, kubectl) failed.
    #[error("{command} failed: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Its error output.
        message: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
    let what = what.into();
    move |source| LabError::Io { what, source }
}

/// A free UDP port on loopback.
fn free_udp_port() -> Result<u16, LabError> {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .map(|address| address.port())
        .map_err(io("pick a UDP port"))
}

/// How ferrometal reaches a BMC applied with `spec.access`.
#[derive(Debug, Clone)]
pub struct BmcAccess {
    /// Name of the BMC and its BMCSecret.
    pub name: String,
    /// The BMC's MAC.
    pub mac: String,
    /// Its IP address.
    pub ip: String,
    /// Its Redfish port.
    pub port: u16,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl BmcAccess {
    /// How to reach `bmc` of a fleet: named `<prefix>-<index>`, at its address and port.
    pub fn of(
        bmc: &crate::Bmc,
        prefix: &str,
        scheme: &'static str,
        (username, password): (&str, &str),
    ) -> Self {
        Self {
            name: format!("{prefix}-{}", bmc.spec().index),
            mac: bmc.spec().mac.clone(),
            ip: bmc
                .address()
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
            port: bmc.address().map_or(0, |a| a.port()),
            scheme,
            username: username.to_owned(),
            password: password.to_owned(),
        }
    }
}

/// The running installation. Dropping it stops everything.
pub struct Lab {
    /// The simulated fleet (dropped first: it talks to the rest).
    pub fleet: Fleet,
    /// The fleet of real VMs, when [`LabOptions::vms`] asks for some.
    pub vm_fleet: Option<Fleet>,
    operator: Option<Program>,
    /// The fleet's IPv6 network, with [`LabOptions::ipv6`] (dropped after the fleet and the
    /// operator, before the rest).
    pub network: Option<ipv6::FleetNetwork>,
    /// The node the operator's Pods run on, with [`LabOptions::node`] (dropped before the
    /// control plane).
    pub node: Option<testenv::Node>,
    /// The discovery image's reference in the lab's registry.
    pub discovery_image: String,
    operator_command: Vec<String>,
    operator_env: Vec<(String, String)>,
    ferrometal: PathBuf,
    credentials: (String, String),
    /// The Kubernetes client.
    pub client: kube::Client,
    /// The OCI registry with the discovery image.
    pub registry: OciRegistry,
    /// The control plane.
    pub control_plane: ControlPlane,
    /// The boot server's URL.
    pub boot_url: String,
    work_dir: PathBuf,
}

/// The `Server` kind, read without ferrometal's Rust types.
pub fn server_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "metal.ironcore.dev",
        "v1alpha1",
        "Server",
    ))
}

/// Pushes the discovery image and names the metalprobe the boot server offers: with VMs the
/// real image built from Debian packages (and its stripped metalprobe), otherwise a
/// placeholder image whose layers simulated machines only download.
async fn discovery_image(
    registry: &OciRegistry,
    options: &LabOptions,
    progress: &impl Fn(&str),
) -> Result<(testenv::PushedImage, PathBuf), LabError> {
    if options.vms.is_empty() {
        let image = registry
            .push_image(
                "ferrometal/discovery:sim",
                &[
                    (
                        testenv::discovery_image::KERNEL_MEDIA_TYPE,
                        b"simulated discovery kernel",
                    ),
                    (
                        testenv::discovery_image::INITRAMFS_MEDIA_TYPE,
                        b"simulated discovery initramfs",
                    ),
                ],
            )
            .await?;
        return Ok((image, options.metalprobe.clone()));
    }
    progress(
        "building the discovery image from Debian packages (kernel, busybox, ferrometal-ignite)",
    );
    let built = testenv::discovery_image::build(&options.work_dir.join("discovery-image"))?;
    let image = built.push(registry, "ferrometal/discovery:debian").await?;
    Ok((image, built.metalprobe))
}

/// The `--dhcp-config` of the IPv6 lab: DHCPv6 only, on the host's end of the fleet's link,
/// onboarding the simulated BMCs and telling iPXE the boot server's IPv6 URL.
fn dhcp6_config(
    work_dir: &Path,
    network: &ipv6::FleetNetwork,
    ports: DhcpPorts,
    boot_url: &str,
) -> String {
    let (first, last) = network.dhcp_range();
    format!(
        "onboarding: {{macPrefixes: ['{}']}}\n\
         dhcp6:\n\
         \x20 interfaces: [{{name: {}, address: '{}'}}]\n\
         \x20 prefixes:\n\
         \x20 - {{prefix: '{}/64', rangeStart: '{first}', rangeEnd: '{last}', preferredSeconds: 86400, validSeconds: 86400}}\n\
         \x20 leaseFile: {}\n\
         \x20 boot: {{ipxeUrl: '{boot_url}/ipxe'}}\n\
         \x20 serverPort: {}\n\
         \x20 clientPort: {}\n",
        crate::BMC_MAC_PREFIX,
        network.host_interface,
        network.host_address(),
        network.prefix,
        work_dir.join("leases6.json").display(),
        ports.server,
        ports.client,
    )
}

/// Index of the VM fleet's BMC (far from the simulated fleet's, so MACs and addresses differ).
pub const VM_FIRST_BMC: usize = 60_000;

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "metal.ironcore.dev",
        "v1alpha1",
        kind,
    ))
}

impl Lab {
    /// Starts everything; the BMCs that do not announce themselves are applied as BMC
    /// objects. Progress lines go to `progress`.
    pub async fn start(options: LabOptions, progress: impl Fn(&str)) -> Result<Self, LabError> {
        if options.node && options.start_operator {
            return Err(LabError::Options(String::from(
                "with a node the operator runs as a Pod: start_operator must be false, install the chart instead",
            )));
        }
        if options.node && !options.vms.is_empty() {
            return Err(LabError::Options(String::from(
                "VMs reach the boot server on the host's loopback, not at the node's NodePort",
            )));
        }
        if options.ipv6 && (options.node || !options.vms.is_empty()) {
            return Err(LabError::Options(String::from(
                "the IPv6 lab runs the simulated fleet only: no VMs, no node",
            )));
        }
        std::fs::create_dir_all(options.work_dir.join("plugins"))
            .map_err(io(format!("create {}", options.work_dir.display())))?;
        progress(if options.node {
            "starting the control plane (kube-apiserver, etcd, kube-controller-manager) for a node"
        } else {
            "starting the control plane (kube-apiserver + etcd)"
        });
        let control_plane = ControlPlane::start_with(testenv::control_plane::ControlPlaneOptions {
            audit_log: options.audit_log,
            node: options.node,
            ..Default::default()
        })
        .await?;
        let node = if options.node {
            progress("starting the node (containerd, kubelet, kube-scheduler, kube-proxy)");
            Some(testenv::Node::start(&control_plane, testenv::NodeOptions::default()).await?)
        } else {
            None
        };
        // Where the registry and the BMCs listen: loopback, or the node's IP for Pods.
        let node_ip = node.as_ref().map(testenv::Node::ip);
        let kubeconfig = options.work_dir.join("kubeconfig");
        std::fs::copy(control_plane.kubeconfig_path(), &kubeconfig)
            .map_err(io(format!("write {}", kubeconfig.display())))?;
        let client = control_plane.client().await?;

        progress("starting an OCI registry with the discovery image");
        let registry = match node_ip {
            Some(ip) => OciRegistry::start_on(ip).await?,
            None => OciRegistry::start().await?,
        };
        let with_vms = !options.vms.is_empty();
        let (image, metalprobe) = discovery_image(&registry, &options, &progress).await?;

        let boot_port = testenv::net::free_port()?;
        // VMs reach the host's loopback as 10.0.2.2; simulated machines are told the same
        // URL and map it back to loopback.
        let boot_host = if with_vms {
            crate::vm::GUEST_HOST_ADDRESS
        } else {
            "127.0.0.1"
        };
        let network = if options.ipv6 {
            progress("creating the fleet's IPv6 network (a namespace and a veth pair)");
            Some(ipv6::FleetNetwork::create()?)
        } else {
            None
        };
        let boot_url = match (node_ip, &network) {
            (Some(ip), _) => format!("http://{ip}:{BOOT_NODE_PORT}"),
            (None, Some(network)) => format!("http://[{}]:{boot_port}", network.host_address()),
            (None, None) => format!("http://{boot_host}:{boot_port}"),
        };
        let dhcp = DhcpPorts {
            server: free_udp_port()?,
            client: free_udp_port()?,
        };
        progress(&format!(
            "starting the fleet: {} BMCs with {} servers ({} announced by DHCP)",
            options.fleet.bmcs,
            options.fleet.bmcs * options.fleet.systems_per_bmc,
            options.dhcp_bmcs
        ));
        let fleet_options = FleetOptions {
            spec: options.fleet.clone(),
            tls: options.tls,
            port: 0,
            listen_address: node_ip,
            dhcp_bmcs: options.dhcp_bmcs,
            dhcp: Some(dhcp),
            machine_dhcp: options.dhcp_bmcs > 0,
            boot_url: Some(boot_url.clone()),
            faults: crate::Faults::default(),
            profile: crate::Profile::default(),
            behaviour: options.behaviour.clone(),
            work_dir: crate::machine_scratch_dir(),
            vm: None,
            host_alias: with_vms.then(|| {
                (
                    crate::vm::GUEST_HOST_ADDRESS.to_owned(),
                    String::from("127.0.0.1"),
                )
            }),
            hold_dhcp_bmcs: options.hold_dhcp_bmcs,
            ipv6: network.as_ref().map(|network| crate::Ipv6Link {
                interface: network.fleet_interface.clone(),
                dhcp,
                static_base: network.static_base(),
            }),
        };
        let fleet = match &network {
            // Started by the namespace's runtime, so that its sockets are made there.
            Some(network) => network
                .handle()
                .spawn(Fleet::start(fleet_options))
                .await
                .map_err(|error| {
                    LabError::Options(format!("the fleet's start failed: {error}"))
                })??,
            None => Fleet::start(fleet_options).await?,
        };
        let vm_fleet = if with_vms {
            progress(&format!(
                "starting {} QEMU VMs behind BMC vm-bmc-{VM_FIRST_BMC} (consoles in {})",
                options.vms.len(),
                options.work_dir.join("vms").display()
            ));
            Some(
                Fleet::start(FleetOptions {
                    spec: FleetSpec {
                        seed: options.fleet.seed ^ 0x0051_3d00,
                        bmcs: 1,
                        systems_per_bmc: options.vms.len(),
                        first_bmc: VM_FIRST_BMC,
                        ..options.fleet.clone()
                    },
                    boot_url: Some(boot_url.clone()),
                    vm: Some(crate::vm::VmOptions::debian(
                        options.vms.clone(),
                        options.work_dir.join("vms"),
                    )),
                    work_dir: options.work_dir.join("vm-machines"),
                    ..FleetOptions::default()
                })
                .await?,
            )
        } else {
            None
        };

        for name in ["redfish", "macdb", "ignition"] {
            let from = options.components.join(format!("{name}.wasm"));
            std::fs::copy(
                &from,
                options
                    .work_dir
                    .join("plugins")
                    .join(format!("{name}.wasm")),
            )
            .map_err(io(format!(
                "copy {} (built by `cargo xtask plugins`)",
                from.display()
            )))?;
        }
        let scheme = if options.tls { "https" } else { "http" };
        let macdb = options.work_dir.join("macdb.yaml");
        std::fs::write(
            &macdb,
            format!(
                "macPrefixes:\n- macPrefix: \"{}\"\n  manufacturer: {}\n  protocol: Redfish\n  protocolScheme: {scheme}\n  port: {}\n  type: bmc\n  defaultCredentials:\n  - username: admin\n    password: factory-default\n  - username: {}\n    password: {}\n",
                crate::BMC_MAC_PREFIX,
                crate::spec::MANUFACTURER,
                fleet.port(),
                options.fleet.username,
                options.fleet.password,
            ),
        )
        .map_err(io(format!("write {}", macdb.display())))?;
        let dhcp_config = options.work_dir.join("dhcp.yaml");
        let dhcp_yaml = match &network {
            Some(network) => dhcp6_config(&options.work_dir, network, dhcp, &boot_url),
            None => format!(
                "interfaces: [{{name: lo, serverAddress: 127.0.0.1}}]\n\
                 subnets:\n- {{network: 127.0.0.0, prefix: 8, rangeStart: 127.2.0.1, rangeEnd: 127.2.255.254, leaseSeconds: 86400}}\n\
                 leaseFile: {}\nonboarding: {{macPrefixes: ['{}']}}\n\
                 boot: {{ipxeUrl: '{boot_url}/ipxe'}}\nserverPort: {}\nclientPort: {}\n",
                options.work_dir.join("leases.json").display(),
                crate::BMC_MAC_PREFIX,
                dhcp.server,
                dhcp.client,
            ),
        };
        std::fs::write(&dhcp_config, dhcp_yaml)
            .map_err(io(format!("write {}", dhcp_config.display())))?;

        let mut args: Vec<String> = vec![
            "run".into(),
            "--plugin-dir".into(),
            options.work_dir.join("plugins").display().to_string(),
            "--mac-db".into(),
            macdb.display().to_string(),
            "--dhcp-config".into(),
            dhcp_config.display().to_string(),
            "--grant".into(),
            "credentials/reveal".into(),
            "--metrics-bind-address".into(),
            "127.0.0.1:0".into(),
            "--boot-bind-address".into(),
            match &network {
                Some(network) => format!("[{}]:{boot_port}", network.host_address()),
                None => format!("127.0.0.1:{boot_port}"),
            },
            "--boot-server-url".into(),
            boot_url.clone(),
            "--boot-allowed-registries".into(),
            registry.host().to_owned(),
            "--boot-insecure-registries".into(),
            registry.host().to_owned(),
            "--discovery-image".into(),
            image.reference.clone(),
        ];
        args.push("--metalprobe-binary".into());
        args.push(metalprobe.display().to_string());
        if with_vms {
            // The kernel's messages go to the VM's serial console, saved to a file.
            args.push("--boot-kernel-args".into());
            args.push("console=ttyS0".into());
        }
        if let Some(ca) = fleet.ca_pem() {
            let file = options.work_dir.join("bmc-ca.pem");
            std::fs::write(&file, ca).map_err(io(format!("write {}", file.display())))?;
            args.push("--bmc-ca-file".into());
            args.push(file.display().to_string());
        }
        // A flag in `operator_args` replaces the lab's own value of it (e.g. a fixed
        // `--metrics-bind-address`, so the fleet view has a known address).
        for flag in options
            .operator_args
            .iter()
            .filter(|arg| arg.starts_with("--"))
        {
            if let Some(at) = args.iter().position(|arg| arg == flag) {
                let takes_value = args.get(at + 1).is_some_and(|next| !next.starts_with("--"));
                args.drain(at..at + 1 + usize::from(takes_value));
            }
        }
        args.extend(options.operator_args.iter().cloned());
        let mut lab = Self {
            fleet,
            vm_fleet,
            operator: None,
            network,
            node,
            discovery_image: image.reference.clone(),
            operator_command: args,
            operator_env: vec![
                (String::from("KUBECONFIG"), kubeconfig.display().to_string()),
                (String::from("FERROMETAL_LOG"), options.operator_log.clone()),
            ],
            ferrometal: options.ferrometal.clone(),
            credentials: (
                options.fleet.username.clone(),
                options.fleet.password.clone(),
            ),
            client,
            registry,
            control_plane,
            boot_url,
            work_dir: options.work_dir.clone(),
        };
        if options.start_operator {
            progress("starting ferrometal run");
            lab.start_operator()?;
        }
        if options.apply_bmcs {
            progress("applying BMC objects for the BMCs that do not use DHCP");
            lab.apply_bmcs(options.dhcp_bmcs..options.fleet.bmcs, None)
                .await?;
            lab.apply_vm_bmcs().await?;
        }
        Ok(lab)
    }

    fn start_operator(&mut self) -> Result<(), LabError> {
        self.operator = Some(self.spawn_operator("ferrometal-run", &[], None)?);
        Ok(())
    }

    /// Starts another `ferrometal run` with the lab's arguments, where `overrides` replace
    /// the value of a flag the lab passes (e.g. `--boot-bind-address`, so two operators can
    /// run side by side) or add a flag, and `kubeconfig` replaces the admin kubeconfig. The
    /// caller owns the process.
    pub fn spawn_operator(
        &self,
        name: &str,
        overrides: &[(&str, String)],
        kubeconfig: Option<&Path>,
    ) -> Result<Program, LabError> {
        let mut args = self.operator_command.clone();
        for (flag, value) in overrides {
            match args.iter().position(|arg| arg == flag) {
                Some(at) if at + 1 < args.len() && !args[at + 1].starts_with("--") => {
                    args[at + 1].clone_from(value);
                }
                Some(_) => {}
                None if value.is_empty() => args.push((*flag).to_owned()),
                None => args.extend([(*flag).to_owned(), value.clone()]),
            }
        }
        let mut command = Command::new(&self.ferrometal);
        command.args(&args);
        for (key, value) in &self.operator_env {
            command.env(key, value);
        }
        if let Some(kubeconfig) = kubeconfig {
            command.env("KUBECONFIG", kubeconfig);
        }
        Ok(Program::start(name, command)?)
    }

    /// Stops `ferrometal run` and starts it again.
    pub fn restart_operator(&mut self) -> Result<(), LabError> {
        self.operator = None;
        self.start_operator()
    }

    /// Kills `ferrometal run` with `SIGKILL`, as a crash or the OOM killer would (no shutdown
    /// code runs), and keeps its log as the next `operator-logs/killed-<n>.log` of the work
    /// directory ([`Self::killed_operator_logs`]). [`Self::run_operator`] starts it again.
    /// Returns the number of the kept log; does nothing (and returns `None`) when it is not
    /// running.
    pub fn kill_operator(&mut self) -> Result<Option<usize>, LabError> {
        let Some(mut operator) = self.operator.take() else {
            return Ok(None);
        };
        operator.kill()?;
        let dir = self.work_dir.join("operator-logs");
        std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        let number = self.killed_operator_logs().len() + 1;
        let kept = dir.join(format!("killed-{number}.log"));
        std::fs::write(&kept, operator.log()).map_err(io(format!("write {}", kept.display())))?;
        Ok(Some(number))
    }

    /// The logs of the operators [`Self::kill_operator`] killed, in the order they ran.
    pub fn killed_operator_logs(&self) -> Vec<PathBuf> {
        (1..)
            .map(|n| {
                self.work_dir
                    .join("operator-logs")
                    .join(format!("killed-{n}.log"))
            })
            .take_while(|path| path.exists())
            .collect()
    }

    /// The operator process.
    pub fn operator(&mut self) -> Option<&mut Program> {
        self.operator.as_mut()
    }

    /// The operator's process id.
    pub fn operator_pid(&self) -> Option<u32> {
        self.operator.as_ref().map(Program::pid)
    }

    /// The operator's whole log so far.
    pub fn operator_log(&self) -> String {
        self.operator.as_ref().map(Program::log).unwrap_or_default()
    }

    /// The last `lines` lines of the operator's log.
    pub fn operator_log_tail(&self, lines: usize) -> String {
        self.operator
            .as_ref()
            .map(|operator| operator.log_tail(lines))
            .unwrap_or_default()
    }

    /// The kubeconfig of the control plane (a copy in the work directory).
    pub fn kubeconfig(&self) -> PathBuf {
        self.work_dir.join("kubeconfig")
    }

    /// The work directory.
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// Applies a BMCSecret and a BMC (with `spec.access`) named `sim-bmc-<index>` for each
    /// BMC in `range`, with the fleet's password or `password`.
    pub async fn apply_bmcs(
        &self,
        range: std::ops::Range<usize>,
        password: Option<&str>,
    ) -> Result<(), LabError> {
        let scheme = if self.fleet.ca_pem().is_some() {
            "https"
        } else {
            "http"
        };
        let password = password.unwrap_or(&self.credentials.1);
        let accesses: Vec<BmcAccess> = self.fleet.bmcs()[range]
            .iter()
            .map(|bmc| BmcAccess::of(bmc, "sim-bmc", scheme, (&self.credentials.0, password)))
            .collect();
        use futures::StreamExt;
        let results: Vec<Result<(), LabError>> = futures::stream::iter(&accesses)
            .map(|access| self.apply_bmc(access))
            .buffer_unordered(32)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Applies the BMC of the VM fleet (`vm-bmc-…`, plain HTTP), if there is one.
    pub async fn apply_vm_bmcs(&self) -> Result<(), LabError> {
        let Some(fleet) = &self.vm_fleet else {
            return Ok(());
        };
        for bmc in fleet.bmcs() {
            let (username, password) = &self.credentials;
            self.apply_bmc(&BmcAccess::of(bmc, "vm-bmc", "http", (username, password)))
                .await?;
        }
        Ok(())
    }

    /// Applies a BMCSecret and a BMC with `spec.access`, both named `access.name`.
    pub async fn apply_bmc(&self, access: &BmcAccess) -> Result<(), LabError> {
        let bmcs: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource("BMC"));
        let secrets: Api<DynamicObject> =
            Api::all_with(self.client.clone(), &resource("BMCSecret"));
        let secret: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1",
            "kind": "BMCSecret",
            "metadata": {"name": access.name},
            "stringData": {
                "username": access.username,
                "password": access.password,
            },
        }))
        .map_err(kube::Error::SerdeError)?;
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1",
            "kind": "BMC",
            "metadata": {"name": access.name},
            "spec": {
                "access": {"macAddress": access.mac, "ip": access.ip},
                "bmcSecretRef": {"name": access.name},
                "protocol": {"name": "Redfish", "port": access.port, "scheme": access.scheme},
            },
        }))
        .map_err(kube::Error::SerdeError)?;
        secrets.create(&PostParams::default(), &secret).await?;
        bmcs.create(&PostParams::default(), &object).await?;
        Ok(())
    }

    /// How many Servers are in each state (`Pending` while a Server has no state yet).
    pub async fn server_states(&self) -> Result<BTreeMap<String, usize>, LabError> {
        let servers: Api<DynamicObject> = Api::all_with(self.client.clone(), &server_resource());
        let mut counts = BTreeMap::new();
        for server in servers.list(&ListParams::default()).await? {
            let state = server.data["status"]["state"]
                .as_str()
                .unwrap_or("Pending")
                .to_owned();
            *counts.entry(state).or_default() += 1;
        }
        Ok(counts)
    }

    /// Waits until `servers` Servers are Available, looking every `poll`; after `limit`, the
    /// error says how many Servers are in which state and ends with the operator's log.
    pub async fn until_available(
        &self,
        servers: usize,
        limit: std::time::Duration,
        poll: std::time::Duration,
    ) -> Result<(), String> {
        let started = std::time::Instant::now();
        loop {
            let states = self.server_states().await.unwrap_or_default();
            if states.get("Available") == Some(&servers) {
                return Ok(());
            }
            if started.elapsed() >= limit {
                return Err(format!(
                    "not all {servers} Servers Available after {limit:?}: {states:?}
operator log:
{}",
                    self.operator_log_tail(60)
                ));
            }
            tokio::time::sleep(poll).await;
        }
    }
}

/// What the fleet benchmark and the API budget test count: requests per discovered server.
impl Lab {
    /// Starts `ferrometal run` when the lab was started without it
    /// ([`LabOptions::start_operator`] false), e.g. once the counters that are to include
    /// everything it does have been read ([`Self::api_requests`]). Replaces a running one.
    pub fn run_operator(&mut self) -> Result<(), LabError> {
        self.start_operator()
    }

    /// The requests kube-apiserver has served since it started, by verb and resource (its
    /// own `apiserver_request_total` counter, read from `/metrics` as cluster admin). Read it
    /// before and after, and take the difference ([`ApiRequests::since`]).
    pub async fn api_requests(&self) -> Result<ApiRequests, LabError> {
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .map_err(|error| {
                kube::Error::BuildRequest(kube::core::request::Error::BuildRequest(error))
            })?;
        let metrics = self.client.request_text(request).await?;
        Ok(ApiRequests::parse(&metrics)?)
    }

    /// Redfish requests the simulated BMCs have answered so far (the VM fleet's BMC too),
    /// one figure per BMC in fleet order.
    pub fn redfish_requests_by_bmc(&self) -> Vec<u64> {
        self.fleet
            .bmcs()
            .iter()
            .chain(self.vm_fleet.iter().flat_map(Fleet::bmcs))
            .map(|bmc| bmc.requests())
            .collect()
    }

    /// Redfish requests the simulated BMCs have answered so far, in all.
    pub fn redfish_requests(&self) -> u64 {
        self.redfish_requests_by_bmc().iter().sum()
    }
}

/// Viewers of the fleet view (`/ui` on the operator's metrics port).
impl Lab {
    /// A bearer token (valid for a day) of ServiceAccount `account` in namespace `default`,
    /// created if missing; with `may_list_servers`, bound to a ClusterRole that may read the
    /// metal objects, as the fleet view asks of its viewers.
    pub fn fleet_view_token(
        &self,
        account: &str,
        may_list_servers: bool,
    ) -> Result<String, LabError> {
        Ok(testenv::viewer::token(
            &self.control_plane,
            account,
            may_list_servers,
        )?)
    }
}
