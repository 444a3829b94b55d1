//! Pinned versions and cache locations of the real components the harness runs.
//!
//! `cargo xtask setup` builds or installs each of these into [`cache_dir`]; the harness only
//! looks them up and says which command installs a missing one. Each tool lives in a
//! directory named after its version, so changing a pin here makes the next set-up build the
//! new version beside the old one instead of reusing a stale binary.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Kubernetes release whose kube-apiserver, kubectl and node components the harness runs.
pub const KUBERNETES_VERSION: &str = "1.36.3";
/// etcd release the control plane stores its data in (the one envtest pairs with 1.36).
pub const ETCD_VERSION: &str = "3.6.8";
/// Helm release used by the chart tests.
pub const HELM_VERSION: &str = "3.22.0";
/// cosign release the plugin-signature tests sign and verify with (built from Go modules).
pub const COSIGN_VERSION: &str = "2.6.5";
/// Ignition release whose `ignition-validate` checks generated ignitions.
pub const IGNITION_VERSION: &str = "2.24.0";
/// sushy-tools release from PyPI that provides `sushy-emulator` and `sushy-static`.
pub const SUSHY_TOOLS_VERSION: &str = "2.2.0";
/// Revision of the node's pause program ([`PAUSE_SOURCE`]); raise it when the source
/// changes so the next set-up builds the new one.
pub const PAUSE_VERSION: &str = "1";
/// C source of the pause program: the process that holds a Pod sandbox's namespaces. It
/// waits for `SIGINT` or `SIGTERM` and reaps whatever children are re-parented to it. Built
/// with `gcc -static` by `cargo xtask setup`, so the node needs no image from a registry.
pub const PAUSE_SOURCE: &str = include_str!("node/pause.c");

/// The directory all cached tools live under.
///
/// `FERROMETAL_CACHE_DIR` overrides it; otherwise `$XDG_CACHE_HOME/ferrometal`, otherwise
/// `~/.cache/ferrometal`.
pub fn cache_dir() -> PathBuf {
    ferrometal_plugin_build::tool_cache_dir()
}

/// The root of the ferrometal source tree.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// One cached program: where it is expected and what it is called.
#[derive(Debug, Clone)]
pub struct Tool {
    /// Program name.
    pub name: &'static str,
    /// Pinned version.
    pub version: &'static str,
    /// Full path of the executable.
    pub path: PathBuf,
}

impl Tool {
    /// The executable's path, or a [`Error::ToolMissing`] naming the command that installs it.
    pub fn require(&self) -> Result<PathBuf> {
        if self.path.is_file() {
            Ok(self.path.clone())
        } else {
            Err(Error::ToolMissing {
                tool: self.name,
                version: self.version,
                path: self.path.clone(),
            })
        }
    }

    /// Whether the executable is present.
    pub fn is_installed(&self) -> bool {
        self.path.is_file()
    }
}

/// Directory holding the Kubernetes binaries of [`KUBERNETES_VERSION`].
pub fn kubernetes_bin_dir() -> PathBuf {
    cache_dir()
        .join("bin")
        .join(format!("kubernetes-v{KUBERNETES_VERSION}"))
}

/// Directory holding etcd of [`ETCD_VERSION`].
pub fn etcd_bin_dir() -> PathBuf {
    cache_dir()
        .join("bin")
        .join(format!("etcd-v{ETCD_VERSION}"))
}

/// Directory holding helm of [`HELM_VERSION`].
pub fn helm_bin_dir() -> PathBuf {
    cache_dir()
        .join("bin")
        .join(format!("helm-v{HELM_VERSION}"))
}

/// Directory holding cosign of [`COSIGN_VERSION`].
pub fn cosign_bin_dir() -> PathBuf {
    cache_dir()
        .join("bin")
        .join(format!("cosign-v{COSIGN_VERSION}"))
}

/// Directory holding ignition-validate of [`IGNITION_VERSION`].
pub fn ignition_bin_dir() -> PathBuf {
    cache_dir()
        .join("bin")
        .join(format!("ignition-v{IGNITION_VERSION}"))
}

/// Directory holding the pause program of [`PAUSE_VERSION`].
pub fn pause_bin_dir() -> PathBuf {
    cache_dir()
        .join("bin")
        .join(format!("pause-v{PAUSE_VERSION}"))
}

/// The Python virtual environment holding sushy-tools of [`SUSHY_TOOLS_VERSION`].
pub fn sushy_venv_dir() -> PathBuf {
    cache_dir()
        .join("venv")
        .join(format!("sushy-tools-{SUSHY_TOOLS_VERSION}"))
}

/// kube-apiserver.
pub fn kube_apiserver() -> Tool {
    Tool {
        name: "kube-apiserver",
        version: KUBERNETES_VERSION,
        path: kubernetes_bin_dir().join("kube-apiserver"),
    }
}

/// kubectl, for humans and for tests that exercise the user's view.
pub fn kubectl() -> Tool {
    Tool {
        name: "kubectl",
        version: KUBERNETES_VERSION,
        path: kubernetes_bin_dir().join("kubectl"),
    }
}

/// kube-controller-manager, run with only the garbage collector so owner-reference cascades
/// happen in tests as in a cluster.
pub fn kube_controller_manager() -> Tool {
    Tool {
        name: "kube-controller-manager",
        version: KUBERNETES_VERSION,
        path: kubernetes_bin_dir().join("kube-controller-manager"),
    }
}

/// kubelet, the node agent of [`crate::node::Node`].
pub fn kubelet() -> Tool {
    Tool {
        name: "kubelet",
        version: KUBERNETES_VERSION,
        path: kubernetes_bin_dir().join("kubelet"),
    }
}

/// kube-scheduler, which binds Pods to the test node.
pub fn kube_scheduler() -> Tool {
    Tool {
        name: "kube-scheduler",
        version: KUBERNETES_VERSION,
        path: kubernetes_bin_dir().join("kube-scheduler"),
    }
}

/// kube-proxy, which makes Services reachable on the test node (iptables mode).
pub fn kube_proxy() -> Tool {
    Tool {
        name: "kube-proxy",
        version: KUBERNETES_VERSION,
        path: kubernetes_bin_dir().join("kube-proxy"),
    }
}

/// The static pause program Pod sandboxes run (see [`PAUSE_SOURCE`]).
pub fn pause() -> Tool {
    Tool {
        name: "pause",
        version: PAUSE_VERSION,
        path: pause_bin_dir().join("pause"),
    }
}

/// etcd.
pub fn etcd() -> Tool {
    Tool {
        name: "etcd",
        version: ETCD_VERSION,
        path: etcd_bin_dir().join("etcd"),
    }
}

/// helm.
pub fn helm() -> Tool {
    Tool {
        name: "helm",
        version: HELM_VERSION,
        path: helm_bin_dir().join("helm"),
    }
}

/// Sigstore's cosign CLI (key-pair signing and verification of OCI artifacts).
pub fn cosign() -> Tool {
    Tool {
        name: "cosign",
        version: COSIGN_VERSION,
        path: cosign_bin_dir().join("cosign"),
    }
}

/// CoreOS Ignition's config validator.
pub fn ignition_validate() -> Tool {
    Tool {
        name: "ignition-validate",
        version: IGNITION_VERSION,
        path: ignition_bin_dir().join("ignition-validate"),
    }
}

/// The live Redfish emulator.
pub fn sushy_emulator() -> Tool {
    Tool {
        name: "sushy-emulator",
        version: SUSHY_TOOLS_VERSION,
        path: sushy_venv_dir().join("bin").join("sushy-emulator"),
    }
}

/// The static Redfish mockup server.
pub fn sushy_static() -> Tool {
    Tool {
        name: "sushy-static",
        version: SUSHY_TOOLS_VERSION,
        path: sushy_venv_dir().join("bin").join("sushy-static"),
    }
}

/// Debian packages of real services tests run: `docker-registry` ([`oci_registry`]),
/// `lldpd` (metalprobe's LLDP source), `busybox` (its `udhcpc` and `tftp` are the DHCP and
/// TFTP test clients), `ipxe` (the images PXE firmware loads, and `ipxe.lkrn` the VMs boot),
/// `isc-dhcp-relay` (a real relay agent, DHCPv4 and DHCPv6), `isc-dhcp-client` (`dhclient
/// -6`, the DHCPv6 test client: Debian's busybox has no `udhcpc6`), `qemu-system-x86` (the
/// real-boot VMs), `ovmf` (their UEFI firmware), `systemd-boot-efi` (systemd-stub, which the
/// discovery image's UKI is built on), `binutils` (`objcopy`, which builds it) and `radvd`
/// (router advertisements, without which OVMF boots nothing over IPv6).
pub const TEST_PACKAGES: &[&str] = &[
    "docker-registry",
    "lldpd",
    "busybox",
    "ipxe",
    "isc-dhcp-relay",
    "isc-dhcp-client",
    "qemu-system-x86",
    "ovmf",
    "systemd-boot-efi",
    "binutils",
    "radvd",
];

/// The OCI registry (CNCF Distribution 2.8, from Debian's `docker-registry` package).
pub fn oci_registry() -> Tool {
    Tool {
        name: "docker-registry",
        version: "2.8 (Debian package docker-registry)",
        path: PathBuf::from("/usr/bin/docker-registry"),
    }
}

/// Debian packages of the test node's runtime: `containerd` (with `ctr`), `runc`,
/// `containernetworking-plugins` (bridge, host-local, portmap, loopback in [`CNI_BIN_DIR`])
/// and `iptables` (kube-proxy's Service rules).
pub const NODE_PACKAGES: &[&str] = &[
    "containerd",
    "runc",
    "containernetworking-plugins",
    "iptables",
];

/// Where Debian's `containernetworking-plugins` installs the CNI plugins.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";

/// containerd, the node's container runtime (Debian package `containerd`).
pub fn containerd() -> Tool {
    Tool {
        name: "containerd",
        version: "1.6 (Debian package containerd)",
        path: PathBuf::from("/usr/bin/containerd"),
    }
}

/// containerd's command-line client, which imports images into the node.
pub fn ctr() -> Tool {
    Tool {
        name: "ctr",
        version: "1.6 (Debian package containerd)",
        path: PathBuf::from("/usr/bin/ctr"),
    }
}

/// runc, the OCI runtime containerd starts containers with (Debian package `runc`).
pub fn runc() -> Tool {
    Tool {
        name: "runc",
        version: "1.1 (Debian package runc)",
        path: PathBuf::from("/usr/sbin/runc"),
    }
}

/// Every tool the harness can run, for set-up and diagnostics.
pub fn all() -> Vec<Tool> {
    vec![
        kube_apiserver(),
        kubectl(),
        kube_controller_manager(),
        kubelet(),
        kube_scheduler(),
        kube_proxy(),
        pause(),
        containerd(),
        ctr(),
        runc(),
        etcd(),
        helm(),
        ignition_validate(),
        sushy_emulator(),
        sushy_static(),
        oci_registry(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_directories_are_keyed_by_version() {
        assert!(
            kube_apiserver()
                .path
                .to_string_lossy()
                .contains(KUBERNETES_VERSION)
        );
        assert!(etcd().path.to_string_lossy().contains(ETCD_VERSION));
        assert!(helm().path.to_string_lossy().contains(HELM_VERSION));
        assert!(
            sushy_emulator()
                .path
                .to_string_lossy()
                .contains(SUSHY_TOOLS_VERSION)
        );
    }

    #[test]
    fn a_missing_tool_names_the_command_that_installs_it() {
        let tool = Tool {
            name: "etcd",
            version: ETCD_VERSION,
            path: PathBuf::from("/nonexistent/etcd"),
        };
        let message = tool.require().expect_err("missing tool").to_string();
        assert!(message.contains("cargo xtask setup"), "{message}");
        assert!(message.contains("/nonexistent/etcd"), "{message}");
    }
}
