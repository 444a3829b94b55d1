//! ferrometal's fleet simulator: N Redfish BMCs and the machines behind them, in one
//! process, deterministic from a seed.
//!
//! A BMC serves the Redfish resources the redfish plugin uses (systems, EthernetInterfaces,
//! managers, power, boot override) with Basic auth, optional TLS and injectable faults. It
//! listens on its own loopback address (`127.1.x.y`, or the address DHCP gives it when it
//! announces itself) and a port shared by the fleet. A machine powered on with a network
//! boot override behaves like firmware: it (optionally) asks DHCP, fetches the iPXE script
//! from ferrometal's boot server, follows it, fetches the discovery ignition with its token
//! and runs the real metalprobe collection and report against a generated `/sys` + `/proc`
//! tree whose UUID and MACs match what its BMC reports.

pub mod accounts;
pub mod bmc;
pub mod dhcp;
pub mod dhcp6;
pub mod external;
pub mod faults;
pub mod firmware;
pub mod inventory;
pub mod lab;
pub mod lease;
pub mod machine;
pub mod serve;
pub mod spec;
pub mod transactions;
pub mod vm;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use accounts::{AccountPolicy, LoginStats};
pub use bmc::{Bmc, BootMode, Profile};
pub use faults::Faults;
pub use machine::{AcknowledgedReport, Machine, MachineBehaviour, Phase, Probe};
pub use spec::{BMC_MAC_PREFIX, BmcOnlyNicKind, FleetSpec, Oddity};

use dhcp::{ClientClass, DhcpClient};
use lease::FleetDhcp;
use machine::BootEnvironment;
use tokio::task::JoinSet;

/// Ports of the DHCP server the fleet talks to (over loopback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpPorts {
    /// Where the server listens (67 on a real network).
    pub server: u16,
    /// Where clients listen (68 on a real network).
    pub client: u16,
}

/// The IPv6 link a fleet lives on instead of loopback (the IPv6 lab's network namespace,
/// [`lab::ipv6`]): BMCs that announce themselves and machines lease over DHCPv6 there, and
/// statically addressed BMCs listen on addresses of their own in it. [`Fleet::start`] must
/// then run on a runtime whose threads are in that namespace
/// ([`lab::ipv6::FleetNetwork::handle`]), so the fleet's sockets are made there.
#[derive(Debug, Clone)]
pub struct Ipv6Link {
    /// The fleet's end of the link, where the DHCPv6 client multicasts to `ff02::1:2`.
    pub interface: String,
    /// Ports of the DHCPv6 server (547/546 on a real network).
    pub dhcp: DhcpPorts,
    /// Statically addressed BMC `index` listens on this address plus `index`.
    pub static_base: Ipv6Addr,
}

impl Ipv6Link {
    /// Where statically addressed BMC `index` listens.
    pub fn static_address(&self, index: usize) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.static_base) + index as u128)
    }
}

/// How to run a fleet.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// What the fleet consists of.
    pub spec: FleetSpec,
    /// Serve Redfish over TLS with certificates from a generated CA ([`Fleet::ca_pem`]).
    pub tls: bool,
    /// The BMCs' port (0: pick a free one). With [`Self::listen_address`], only the BMCs
    /// that announce themselves by DHCP use it.
    pub port: u16,
    /// Where the statically addressed BMCs listen: `None`, each on its own loopback address
    /// (`127.1.x.y`) and the fleet's port; `Some(address)`, all on `address` (one of the
    /// host's, e.g. a test node's IP so that Pods reach them), each on a free port of its
    /// own. BMC objects name the address and port either way ([`Bmc::address`]).
    pub listen_address: Option<Ipv4Addr>,
    /// The first this-many BMCs get their address by DHCP (and so become Endpoints when the
    /// server onboards them); the rest listen on `127.1.x.y` from the start.
    pub dhcp_bmcs: usize,
    /// The DHCP server, for BMCs that announce themselves and machines that ask for their
    /// boot file.
    pub dhcp: Option<DhcpPorts>,
    /// Whether machines ask DHCP for their boot file (otherwise they go to `boot_url`).
    pub machine_dhcp: bool,
    /// ferrometal's boot server (e.g. `http://127.0.0.1:8082`).
    pub boot_url: Option<String>,
    /// Faults every BMC injects from the start.
    pub faults: Faults,
    /// Who every BMC claims to be and which vendor behaviour it copies.
    pub profile: bmc::Profile,
    /// How machines behave.
    pub behaviour: MachineBehaviour,
    /// Scratch space for machine trees (removed when the fleet stops); see
    /// [`machine_scratch_dir`].
    pub work_dir: PathBuf,
    /// Make every machine a real QEMU VM ([`vm`]).
    pub vm: Option<vm::VmOptions>,
    /// `(from, to)`: simulated machines reach URLs naming host `from` at `to` (see
    /// [`machine::BootEnvironment::host_alias`]).
    pub host_alias: Option<(String, String)>,
    /// The BMCs that announce themselves by DHCP wait until [`Fleet::release_dhcp_bmcs`]
    /// lets them (as racks powered up one after another), instead of announcing at start.
    pub hold_dhcp_bmcs: bool,
    /// Run over IPv6 on this link instead of over loopback (then `dhcp` and
    /// `listen_address` are not used).
    pub ipv6: Option<Ipv6Link>,
}

/// A fresh path for a fleet's machine trees (the fleet creates it and removes it when it
/// stops): on tmpfs (`/dev/shm`) where the machine has one, else under the temporary
/// directory.
///
/// Each in-band probe writes a machine's `/sys` and `/proc` tree (a few hundred small files),
/// collects it and removes it. On a disk filesystem that churn is expensive: a profile of
/// the 1000-server fleet benchmark found ext4's inode allocation (its scan for recently
/// deleted inodes) taking most of the simulator's CPU — CPU the benchmark's operator and
/// control plane share. On tmpfs it costs next to nothing, as a real machine's own `/sys`
/// costs its probe. The first call in a process also removes what earlier processes that
/// were killed left there (a fleet removes its own directory only when it is dropped).
pub fn machine_scratch_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    };
    SWEPT.call_once(|| remove_scratch_of_ended_processes(&base));
    base.join(format!(
        "{SCRATCH_PREFIX}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ))
}

/// The name of a machine scratch directory: this, the process id, `-`, a counter.
const SCRATCH_PREFIX: &str = "ferrometal-sim-";

/// Removes the machine scratch directories under `base` whose process is gone.
fn remove_scratch_of_ended_processes(base: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|name| name.strip_prefix(SCRATCH_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Default for FleetOptions {
    fn default() -> Self {
        Self {
            spec: FleetSpec::default(),
            tls: false,
            port: 0,
            listen_address: None,
            dhcp_bmcs: 0,
            dhcp: None,
            machine_dhcp: false,
            boot_url: None,
            faults: Faults::default(),
            profile: bmc::Profile::default(),
            behaviour: MachineBehaviour::default(),
            work_dir: machine_scratch_dir(),
            vm: None,
            host_alias: None,
            hold_dhcp_bmcs: false,
            ipv6: None,
        }
    }
}

/// Why a fleet could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A socket could not be opened.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The options do not fit together.
    #[error("invalid fleet options: {0}")]
    Options(String),
    /// TLS set-up failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The DHCP client could not start.
    #[error(transparent)]
    Dhcp(#[from] dhcp::DhcpError),
    /// The DHCPv6 client could not start.
    #[error(transparent)]
    Dhcp6(#[from] dhcp6::Dhcp6Error),
    /// The scratch directory could not be made.
    #[error("cannot create {path}: {source}")]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A running fleet. Dropping it stops every BMC and machine.
pub struct Fleet {
    bmcs: Vec<Arc<Bmc>>,
    env: Arc<BootEnvironment>,
    dhcp: Option<FleetDhcp>,
    port: u16,
    ca: Option<Arc<testenv::CertificateAuthority>>,
    /// How many of the DHCP BMCs may announce themselves (in fleet order).
    dhcp_released: tokio::sync::watch::Sender<usize>,
    /// Listeners and DHCP announcers; dropping the set aborts them.
    _tasks: JoinSet<()>,
    work_dir: PathBuf,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for machine in self.machines() {
            machine.halt();
        }
        let _ = std::fs::remove_dir_all(&self.work_dir);
    }
}

fn listen(address: SocketAddr) -> Result<tokio::net::TcpListener, std::io::Error> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    tokio::net::TcpListener::from_std(socket.into())
}

fn acceptor(
    ca: Option<&testenv::CertificateAuthority>,
    address: IpAddr,
) -> Result<Option<tokio_rustls::TlsAcceptor>, SimError> {
    let Some(ca) = ca else { return Ok(None) };
    let cert = ca
        .issue_server("ferrometal-sim BMC", &[&address.to_string()])
        .map_err(|error| SimError::Tls(error.to_string()))?;
    serve::tls_acceptor(&cert.cert_pem, &cert.key_pem)
        .map(Some)
        .map_err(SimError::Tls)
}

impl Fleet {
    /// Builds the fleet and starts its BMCs (those announcing by DHCP start when their lease
    /// arrives; see [`Fleet::wait_for_addresses`]).
    pub async fn start(options: FleetOptions) -> Result<Self, SimError> {
        if options.dhcp_bmcs > options.spec.bmcs {
            return Err(SimError::Options(format!(
                "{} DHCP BMCs in a fleet of {}",
                options.dhcp_bmcs, options.spec.bmcs
            )));
        }
        let needs_dhcp = options.dhcp_bmcs > 0 || options.machine_dhcp;
        let dhcp = match (needs_dhcp, options.dhcp, &options.ipv6) {
            (true, _, Some(link)) => Some(FleetDhcp::V6(dhcp6::Dhcp6Client::bind(
                &link.interface,
                link.dhcp.client,
                link.dhcp.server,
            )?)),
            (false, _, Some(_)) => None,
            (_, Some(ports), None) => {
                Some(FleetDhcp::V4(DhcpClient::bind(ports.client, ports.server)?))
            }
            (false, None, None) => None,
            (true, None, None) => {
                return Err(SimError::Options(String::from(
                    "DHCP BMCs or machine DHCP need the DHCP server's ports",
                )));
            }
        };
        std::fs::create_dir_all(&options.work_dir).map_err(|source| SimError::WorkDir {
            path: options.work_dir.clone(),
            source,
        })?;
        let env = Arc::new(BootEnvironment {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|error| SimError::Options(error.to_string()))?,
            boot_url: options.boot_url.clone(),
            dhcp: options.machine_dhcp.then(|| dhcp.clone()).flatten(),
            behaviour: options.behaviour.clone(),
            work_dir: options.work_dir.clone(),
            vm: options.vm.clone(),
            host_alias: options.host_alias.clone(),
        });
        let bmcs: Vec<Arc<Bmc>> = options
            .spec
            .generate()
            .into_iter()
            .map(|mut spec| {
                if let Some(vm) = &options.vm {
                    for machine in &mut spec.systems {
                        vm::shape_spec(machine, vm.shape(machine.index));
                    }
                }
                let machines = spec
                    .systems
                    .iter()
                    .map(|machine| Arc::new(Machine::new(machine.clone(), env.clone())))
                    .collect();
                Arc::new(
                    Bmc::new(
                        spec,
                        machines,
                        options.spec.username.clone(),
                        options.spec.password.clone(),
                        options.faults.clone(),
                        options.spec.seed,
                    )
                    .with_profile(options.profile.clone()),
                )
            })
            .collect();
        let ca = if options.tls {
            Some(Arc::new(
                testenv::CertificateAuthority::new("ferrometal-sim BMC CA")
                    .map_err(|error| SimError::Tls(error.to_string()))?,
            ))
        } else {
            None
        };

        let static_bmcs = &bmcs[options.dhcp_bmcs..];
        let (port, listeners) = match (&options.ipv6, options.listen_address) {
            (Some(link), _) => Self::bind_static(static_bmcs, options.port, |index| {
                IpAddr::V6(link.static_address(index))
            })?,
            (None, None) => Self::bind_static(static_bmcs, options.port, |index| {
                IpAddr::V4(spec::loopback_address(index))
            })?,
            (None, Some(address)) => Self::bind_on(static_bmcs, address, options.port)?,
        };
        let mut tasks = JoinSet::new();
        for (bmc, listener) in static_bmcs.iter().zip(listeners) {
            let address = bmc
                .address()
                .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip());
            let tls = acceptor(ca.as_deref(), address)?;
            tasks.spawn(serve::serve(bmc.clone(), listener, tls));
        }
        let (dhcp_released, released) = tokio::sync::watch::channel(if options.hold_dhcp_bmcs {
            0
        } else {
            options.dhcp_bmcs
        });
        if let Some(dhcp) = &dhcp {
            for (position, bmc) in bmcs[..options.dhcp_bmcs].iter().enumerate() {
                let (bmc, dhcp, ca, mut released) =
                    (bmc.clone(), dhcp.clone(), ca.clone(), released.clone());
                tasks.spawn(async move {
                    // Err only when the fleet is going away.
                    if released.wait_for(|count| *count > position).await.is_ok() {
                        announce(bmc, dhcp, port, ca).await;
                    }
                });
            }
        }
        Ok(Self {
            bmcs,
            env,
            dhcp,
            port,
            ca,
            dhcp_released,
            _tasks: tasks,
            work_dir: options.work_dir,
        })
    }

    /// Binds every statically addressed BMC on one port, each at `address_of(index)`
    /// (retrying with another port when the first choice is taken on some address).
    fn bind_static(
        bmcs: &[Arc<Bmc>],
        port: u16,
        address_of: impl Fn(usize) -> IpAddr,
    ) -> Result<(u16, Vec<tokio::net::TcpListener>), SimError> {
        let mut last = None;
        for _ in 0..5 {
            let mut chosen = if port == 0 {
                testenv::net::free_port().map_err(|e| SimError::Options(e.to_string()))?
            } else {
                port
            };
            let mut listeners = Vec::with_capacity(bmcs.len());
            let mut failed = None;
            for bmc in bmcs {
                let address = SocketAddr::from((address_of(bmc.spec().index), chosen));
                match listen(address) {
                    Ok(listener) => {
                        if chosen == 0 {
                            chosen = listener.local_addr().map_or(0, |a| a.port());
                        }
                        listeners.push(listener);
                    }
                    Err(source) => {
                        failed = Some(SimError::Listen { address, source });
                        break;
                    }
                }
            }
            match failed {
                None => {
                    for (bmc, listener) in bmcs.iter().zip(&listeners) {
                        if let Ok(address) = listener.local_addr() {
                            bmc.set_address(address);
                        }
                    }
                    return Ok((chosen, listeners));
                }
                Some(error) if port == 0 => last = Some(error),
                Some(error) => return Err(error),
            }
        }
        Err(last.unwrap_or_else(|| SimError::Options(String::from("no port"))))
    }

    /// Binds every statically addressed BMC on `address`, each on a free port of its own;
    /// returns `port` (or a free port when 0) for the BMCs that announce themselves by DHCP.
    fn bind_on(
        bmcs: &[Arc<Bmc>],
        address: Ipv4Addr,
        port: u16,
    ) -> Result<(u16, Vec<tokio::net::TcpListener>), SimError> {
        let free_port = || testenv::net::free_port().map_err(|e| SimError::Options(e.to_string()));
        let mut listeners = Vec::with_capacity(bmcs.len());
        for bmc in bmcs {
            let socket = SocketAddr::from((address, free_port()?));
            let listener = listen(socket).map_err(|source| SimError::Listen {
                address: socket,
                source,
            })?;
            bmc.set_address(socket);
            listeners.push(listener);
        }
        let port = if port == 0 { free_port()? } else { port };
        Ok((port, listeners))
    }

    /// Lets the first `count` BMCs that announce themselves by DHCP do so (with
    /// [`FleetOptions::hold_dhcp_bmcs`]; without it they all do from the start). Never holds
    /// back one already released.
    pub fn release_dhcp_bmcs(&self, count: usize) {
        self.dhcp_released
            .send_modify(|released| *released = (*released).max(count));
    }

    /// Every BMC.
    pub fn bmcs(&self) -> &[Arc<Bmc>] {
        &self.bmcs
    }

    /// Every machine.
    pub fn machines(&self) -> impl Iterator<Item = &Arc<Machine>> {
        self.bmcs.iter().flat_map(|bmc| bmc.machines())
    }

    /// The machine whose SMBIOS UUID is `uuid` (any case), e.g. a Server's
    /// `spec.systemUUID`: to read what its BMC was asked ([`Machine::resets`]).
    pub fn machine(&self, uuid: &str) -> Option<&Arc<Machine>> {
        self.machines()
            .find(|machine| machine.spec().uuid.eq_ignore_ascii_case(uuid))
    }

    /// A machine of this fleet's kind whose power and boot override live in another BMC's
    /// Redfish `system` (e.g. sushy-emulator's fake driver); it boots while following it.
    /// `spec.index` names its scratch directory, so it must not be a fleet machine's.
    pub fn follow_external(
        &self,
        spec: spec::MachineSpec,
        system: external::RedfishSystem,
    ) -> (Arc<Machine>, external::Follower) {
        let machine = Arc::new(Machine::new(spec, self.env.clone()));
        let follower = external::follow(machine.clone(), system);
        (machine, follower)
    }

    /// Leases an address for `mac` from the DHCP server, as a BMC announcing itself does
    /// (so that an external BMC can listen there).
    pub async fn lease(&self, mac: &str) -> Result<Ipv4Addr, SimError> {
        let Some(FleetDhcp::V4(dhcp)) = &self.dhcp else {
            return Err(SimError::Options(String::from(
                "the fleet was started without DHCPv4 ports",
            )));
        };
        Ok(dhcp.lease(mac, ClientClass::Plain, None).await?.address)
    }

    /// The port every BMC listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA that signed the BMCs' certificates (with TLS).
    pub fn ca_pem(&self) -> Option<String> {
        self.ca.as_ref().map(|ca| ca.cert_pem())
    }

    /// How many machines are in each phase (by [`Phase::name`]).
    pub fn phases(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for machine in self.machines() {
            *counts.entry(machine.phase().name()).or_default() += 1;
        }
        counts
    }

    /// Waits until every BMC listens (DHCP leases arrived), or `timeout` passes; returns how
    /// many do.
    pub async fn wait_for_addresses(&self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let listening = self.bmcs.iter().filter(|b| b.address().is_some()).count();
            if listening == self.bmcs.len() || tokio::time::Instant::now() >= deadline {
                return listening;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A BMC that gets its address by DHCP: leases (retrying like a real BMC does), then
/// listens on the leased address.
async fn announce(
    bmc: Arc<Bmc>,
    dhcp: FleetDhcp,
    port: u16,
    ca: Option<Arc<testenv::CertificateAuthority>>,
) {
    let mut pause = Duration::from_millis(500);
    let lease = loop {
        match dhcp.lease(&bmc.spec().mac, ClientClass::Plain, None).await {
            Ok(lease) => break lease,
            Err(error) => {
                tracing::warn!(bmc = bmc.spec().index, %error, "no DHCP lease yet; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    };
    let address = SocketAddr::from((lease.address, port));
    let family = if address.is_ipv6() { "DHCPv6" } else { "DHCP" };
    let tls = match acceptor(ca.as_deref(), lease.address) {
        Ok(tls) => tls,
        Err(error) => {
            tracing::error!(bmc = bmc.spec().index, %error, "cannot set up TLS");
            return;
        }
    };
    let listener = match listen(address) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(bmc = bmc.spec().index, %address, %error, "cannot listen on the leased address");
            return;
        }
    };
    bmc.set_address(address);
    tracing::info!(bmc = bmc.spec().index, %address, family, "BMC announced by DHCP and listening");
    serve::serve(bmc, listener, tls).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_directories_of_ended_processes_are_removed_and_live_ones_kept() {
        let base =
            std::env::temp_dir().join(format!("ferrometal-sim-sweep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        // Above any pid_max Linux allows (2^22): no such process.
        let ended = base.join(format!("{SCRATCH_PREFIX}4000000000-3"));
        let live = base.join(format!("{SCRATCH_PREFIX}{}-0", std::process::id()));
        let other = base.join("not-a-fleet");
        for dir in [&ended, &live, &other] {
            std::fs::create_dir_all(dir.join("machine")).expect("create");
        }
        remove_scratch_of_ended_processes(&base);
        let left = |dir: &PathBuf| dir.exists();
        assert_eq!(
            (left(&ended), left(&live), left(&other)),
            (false, true, true)
        );
        std::fs::remove_dir_all(&base).expect("clean up");
    }
}
