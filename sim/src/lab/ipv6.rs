//! The IPv6 lab's network ([`super::LabOptions::ipv6`]): the simulated fleet lives in a
//! network namespace of its own, joined to the host by a veth pair, so that its BMCs and
//! machines have real IPv6 addresses the operator reaches — IPv6 loopback is only `::1`, and
//! the host's own interfaces are left alone.
//!
//! Each lab gets a ULA prefix `fd6c:<pid>:<lab>::/64` on the link:
//!
//! | address | what |
//! |---|---|
//! | `…::1` on the host's end | the operator: DHCPv6 server (the link's `address`), boot server and registry |
//! | `…::2` on the fleet's end | the fleet's namespace |
//! | `…::1:1`–`…::1:ffff` | the DHCPv6 range: BMCs that announce themselves, machines |
//! | `…::2:<index>` | BMCs applied as BMC objects |
//!
//! The namespace routes both /112s to itself (`ip route add local … dev lo`) and lets
//! sockets bind to any of their addresses (`net.ipv6.ip_nonlocal_bind`), so a BMC listens on
//! the address DHCPv6 leased it and a machine fetches from its leased address without an
//! `ip addr add` per lease; the host routes both /112s through the fleet's end. The links
//! have fixed link-local addresses (`fe80::1`, `fe80::2`) and no duplicate address
//! detection, so they are usable at once.
//!
//! The fleet runs in-process: its sockets are made by the threads of a tokio runtime that
//! live in the namespace ([`FleetNetwork::handle`]). Dropping the network stops that
//! runtime and deletes the namespace, which removes the veth pair and its routes. Needs
//! root.

use std::net::Ipv6Addr;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use testenv::netns::NetworkNamespace;

use super::LabError;

/// Labs created by this process (part of each one's names and prefix).
static LABS: AtomicU32 = AtomicU32::new(0);

/// Runs `ip ARGS…`.
fn ip(args: &[&str]) -> Result<(), LabError> {
    testenv::netns::try_ip(args).map_err(|message| LabError::Command {
        command: format!("ip {}", args.join(" ")),
        message,
    })
}

/// Moves the calling thread into the network namespace `namespace` is a handle of.
fn enter(namespace: &std::fs::File) -> std::io::Result<()> {
    rustix::thread::move_into_link_name_space(
        namespace.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(std::io::Error::from)
}

/// The fleet's namespace, the veth pair into it and a runtime whose threads live there.
#[derive(Debug)]
pub struct FleetNetwork {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    namespace: NetworkNamespace,
    /// The link's /64 (`fd6c:…::`).
    pub prefix: Ipv6Addr,
    /// The host's end of the veth pair (the DHCPv6 server's interface).
    pub host_interface: String,
    /// The fleet's end, in the namespace (where the fleet's DHCPv6 client multicasts).
    pub fleet_interface: String,
}

impl FleetNetwork {
    /// Creates the namespace, the veth pair, addresses and routes, and starts the runtime.
    pub fn create() -> Result<Self, LabError> {
        if !testenv::netns::available() {
            return Err(LabError::Options(String::from(
                "the IPv6 lab needs root: it creates a network namespace and a veth pair",
            )));
        }
        if !std::path::Path::new("/proc/sys/net/ipv6").exists() {
            return Err(LabError::Options(String::from(
                "the IPv6 lab needs IPv6, which this kernel has disabled",
            )));
        }
        let pid = std::process::id();
        let lab = LABS.fetch_add(1, Ordering::Relaxed) & 0xff;
        let name = format!("ferrometal-lab6-{pid}-{lab}");
        let namespace =
            NetworkNamespace::try_create(&name).map_err(|message| LabError::Command {
                command: format!("ip netns add {name}"),
                message,
            })?;
        let host_interface = format!("fm6h{pid:x}{lab:02x}");
        let fleet_interface = format!("fm6f{pid:x}{lab:02x}");
        let prefix = Ipv6Addr::new(
            0xfd6c,
            (pid >> 16) as u16,
            pid as u16,
            lab as u16,
            0,
            0,
            0,
            0,
        );
        let network = Self::start_runtime(namespace, prefix, host_interface, fleet_interface)?;
        network.configure()?;
        Ok(network)
    }

    fn start_runtime(
        namespace: NetworkNamespace,
        prefix: Ipv6Addr,
        host_interface: String,
        fleet_interface: String,
    ) -> Result<Self, LabError> {
        let path = format!("/var/run/netns/{}", namespace.name());
        let file = Arc::new(std::fs::File::open(&path).map_err(super::io(format!("open {path}")))?);
        let (ready, built) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(String::from("lab6-netns"))
            .spawn(move || {
                let inside = file.clone();
                let runtime = enter(&file).and_then(|()| {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .thread_name("lab6-fleet")
                        .enable_all()
                        // Blocking threads too: each enters the namespace as it starts.
                        .on_thread_start(move || {
                            if let Err(error) = enter(&inside) {
                                tracing::error!(%error, "cannot enter the fleet's network namespace");
                            }
                        })
                        .build()
                });
                match runtime {
                    Ok(runtime) => {
                        let _ = ready.send(Ok(runtime.handle().clone()));
                        let _ = runtime.block_on(stopped);
                        runtime.shutdown_timeout(Duration::from_secs(5));
                    }
                    Err(error) => {
                        let _ = ready.send(Err(error));
                    }
                }
            })
            .map_err(super::io("start the fleet's namespace thread"))?;
        let handle = built
            .recv()
            .map_err(|_| LabError::Options(String::from("the namespace thread ended")))?
            .map_err(super::io(
                "start a runtime in the fleet's network namespace",
            ))?;
        Ok(Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
            namespace,
            prefix,
            host_interface,
            fleet_interface,
        })
    }

    /// The veth pair, its addresses and routes, and non-local binding in the namespace.
    fn configure(&self) -> Result<(), LabError> {
        let (ns, host, fleet) = (
            self.namespace.name(),
            self.host_interface.as_str(),
            self.fleet_interface.as_str(),
        );
        let (host_address, fleet_address) = (
            format!("{}/64", self.host_address()),
            format!("{}/64", self.fleet_address()),
        );
        let ranges = [
            format!("{}/112", self.address(0x1_0000)),
            format!("{}/112", self.address(0x2_0000)),
        ];
        let fleet_address_only = self.fleet_address().to_string();
        ip(&[
            "link", "add", host, "type", "veth", "peer", "name", fleet, "netns", ns,
        ])?;
        ip(&["link", "set", host, "addrgenmode", "none"])?;
        ip(&["-n", ns, "link", "set", fleet, "addrgenmode", "none"])?;
        ip(&["addr", "add", "fe80::1/64", "dev", host, "nodad"])?;
        ip(&["addr", "add", &host_address, "dev", host, "nodad"])?;
        ip(&["-n", ns, "addr", "add", "fe80::2/64", "dev", fleet, "nodad"])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &fleet_address,
            "dev",
            fleet,
            "nodad",
        ])?;
        ip(&["link", "set", host, "up"])?;
        ip(&["-n", ns, "link", "set", fleet, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        for range in &ranges {
            ip(&[
                "-6",
                "route",
                "add",
                range,
                "via",
                &fleet_address_only,
                "dev",
                host,
            ])?;
            ip(&["-n", ns, "-6", "route", "add", "local", range, "dev", "lo"])?;
        }
        let output = Command::new("ip")
            .args(["netns", "exec", ns, "sysctl", "-qw"])
            .arg("net.ipv6.ip_nonlocal_bind=1")
            .output()
            .map_err(super::io("run sysctl in the fleet's namespace"))?;
        if !output.status.success() {
            return Err(LabError::Command {
                command: format!("ip netns exec {ns} sysctl -qw net.ipv6.ip_nonlocal_bind=1"),
                message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(())
    }

    /// The prefix plus `offset`.
    fn address(&self, offset: u128) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.prefix) + offset)
    }

    /// The host's address on the link: the DHCPv6 server's `address`, the boot server's.
    pub fn host_address(&self) -> Ipv6Addr {
        self.address(1)
    }

    /// The fleet's end of the link (the host's route to the fleet's addresses).
    pub fn fleet_address(&self) -> Ipv6Addr {
        self.address(2)
    }

    /// The first and last address DHCPv6 hands out.
    pub fn dhcp_range(&self) -> (Ipv6Addr, Ipv6Addr) {
        (self.address(0x1_0001), self.address(0x1_ffff))
    }

    /// Statically addressed BMC `index` listens on this plus `index`.
    pub fn static_base(&self) -> Ipv6Addr {
        self.address(0x2_0000)
    }

    /// The namespace's name (`ip netns exec <name> …`).
    pub fn namespace(&self) -> &str {
        self.namespace.name()
    }

    /// A runtime whose threads are in the namespace: what runs on it makes its sockets
    /// there (start the fleet with it).
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl Drop for FleetNetwork {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // Then `namespace` drops: the namespace, the veth pair and its routes go.
    }
}
