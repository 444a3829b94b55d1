//! The node's network on the machine: the Pods' bridge, whose address is the node's IP, and
//! the guard chains that keep Pod and Service traffic on the machine.
//!
//! The control plane creates it when started for a node ([`crate::ControlPlaneOptions::node`]),
//! before kube-apiserver, because kube-apiserver listens on the bridge's address: Pods reach
//! it there through the `kubernetes` Service, as in any cluster (Endpoints refuse loopback
//! addresses, so a kube-apiserver on 127.0.0.1 would leave that Service without endpoints).
//! The network holds the machine's node lock, so one runs at a time; dropping it removes
//! everything a node left on the machine (see [`super::cleanup`]).

use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use super::cleanup;
use crate::control_plane::SERVICE_RANGE;
use crate::{Error, Result, tools};

/// Where the node's Pods live on the machine.
#[derive(Debug, Clone)]
pub struct NetworkOptions {
    /// The Pods' subnet. Its first address is the bridge's: the Pods' gateway, the node's
    /// IP (kubelet refuses loopback addresses) and kube-apiserver's; the rest are leased to
    /// Pods. It must not overlap the Service range, 10.0.0.0/24.
    pub pod_subnet: Ipv4Net,
    /// The Linux bridge the Pods are attached to, created with the network and deleted with
    /// it (a bridge of that name found at start is taken for an earlier run's and deleted).
    pub bridge: String,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        Self {
            pod_subnet: Ipv4Net::new_assert(Ipv4Addr::new(10, 98, 0, 0), 24),
            bridge: String::from("ferrometal0"),
        }
    }
}

/// The bridge and guard chains of a node, and the machine's node lock. Dropping it removes
/// whatever a node left on the machine and restores the kernel settings its components
/// changed.
#[derive(Debug)]
pub struct Network {
    bridge: String,
    pod_subnet: Ipv4Net,
    ip: Ipv4Addr,
    /// Whether a [`super::Node`] runs on this network (one at a time).
    in_use: Arc<AtomicBool>,
    _lock: File,
}

impl Network {
    /// Takes the machine's node lock (waiting up to `lock_timeout` for another node to go),
    /// removes what an earlier node left, and creates the bridge with the node's IP and the
    /// guard chains. Needs root.
    pub(crate) async fn create(options: &NetworkOptions, lock_timeout: Duration) -> Result<Self> {
        if !crate::netns::available() {
            return Err(Error::NodeNeedsRoot);
        }
        let ip = options.pod_subnet.hosts().next().ok_or_else(|| {
            Error::NodeSettings(format!("{} has no host address", options.pod_subnet))
        })?;
        let services: Ipv4Net = SERVICE_RANGE
            .parse()
            .map_err(|_| Error::NodeSettings(format!("bad Service range {SERVICE_RANGE}")))?;
        if options.pod_subnet.contains(&services.network())
            || services.contains(&options.pod_subnet.network())
        {
            return Err(Error::NodeSettings(format!(
                "the Pod subnet {} overlaps the Service range {SERVICE_RANGE}",
                options.pod_subnet
            )));
        }
        let lock = lock_machine(lock_timeout).await?;
        // With the lock held, whatever a node left on the machine is from a run that ended
        // without cleaning up.
        let mut problems = Vec::new();
        cleanup::clean_up_machine(&options.bridge, super::NETWORK, &mut problems);
        super::report("cleaning up after an earlier node", &problems);
        cleanup::save_sysctls()?;
        let network = Self {
            bridge: options.bridge.clone(),
            pod_subnet: options.pod_subnet,
            ip,
            in_use: Arc::new(AtomicBool::new(false)),
            _lock: lock,
        };
        // On error, `network` is dropped and removes what was made.
        network.create_bridge()?;
        Ok(network)
    }

    /// Creates the Pods' bridge with the node's IP, and the guard chains that keep Pod and
    /// Service traffic on the machine.
    fn create_bridge(&self) -> Result<()> {
        let address = format!("{}/{}", self.ip, self.pod_subnet.prefix_len());
        let bridge = self.bridge.as_str();
        super::run(Command::new("ip").args(["link", "add", bridge, "type", "bridge"]))?;
        super::run(Command::new("ip").args(["addr", "add", &address, "dev", bridge]))?;
        super::run(Command::new("ip").args(["link", "set", bridge, "up"]))?;
        let chain = cleanup::GUARD_CHAIN;
        let iptables = |args: &[&str]| super::run(Command::new("iptables").arg("-w").args(args));
        iptables(&["-N", chain])?;
        iptables(&["-A", chain, "-i", bridge, "!", "-o", bridge, "-j", "DROP"])?;
        iptables(&["-A", chain, "!", "-i", bridge, "-o", bridge, "-j", "DROP"])?;
        iptables(&["-I", "FORWARD", "-j", chain])?;
        let chain = cleanup::GUARD_OUTPUT_CHAIN;
        iptables(&["-N", chain])?;
        // The node's IP is the host's own: that goes through loopback.
        iptables(&["-A", chain, "-o", "lo", "-j", "RETURN"])?;
        iptables(&["-A", chain, "-d", SERVICE_RANGE, "-j", "DROP"])?;
        iptables(&["-I", "OUTPUT", "-j", chain])?;
        Ok(())
    }

    /// The node's IP: the bridge's address, where kube-apiserver and hostNetwork Pods listen
    /// and Pods' traffic to the host arrives.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The Pods' subnet.
    pub fn pod_subnet(&self) -> Ipv4Net {
        self.pod_subnet
    }

    /// The Pods' bridge.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// Marks the network as used by a node; `None` if one uses it already. The flag is
    /// cleared when the returned guard is dropped.
    pub(crate) fn claim(&self) -> Option<Claim> {
        (!self.in_use.swap(true, Ordering::AcqRel)).then(|| Claim(self.in_use.clone()))
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let mut problems = Vec::new();
        cleanup::clean_up_machine(&self.bridge, super::NETWORK, &mut problems);
        super::report("removing the node's network", &problems);
    }
}

/// A node's hold on its [`Network`]; see [`Network::claim`].
#[derive(Debug)]
pub(crate) struct Claim(Arc<AtomicBool>);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Takes the machine-wide node lock, waiting up to `timeout` for another node to go.
async fn lock_machine(timeout: Duration) -> Result<File> {
    let path = tools::cache_dir().join("node.lock");
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(Error::io(format!("create {}", parent.display())))?;
    }
    let file = File::create(&path).map_err(Error::io(format!("open {}", path.display())))?;
    let started = Instant::now();
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(_) if started.elapsed() < timeout => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(_) => {
                return Err(Error::NodeBusy {
                    lock: path,
                    waited: timeout,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_node_ip_is_the_pod_subnets_first_address() {
        let options = NetworkOptions::default();
        assert_eq!(
            options.pod_subnet.hosts().next(),
            Some(Ipv4Addr::new(10, 98, 0, 1))
        );
        assert!(!options.pod_subnet.contains(&Ipv4Addr::new(10, 0, 0, 1)));
    }
}
