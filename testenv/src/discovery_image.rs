//! The discovery OS image for real first boots, built from Debian packages: Debian's kernel
//! (`linux-image-amd64`) and an initramfs holding `busybox-static`, the virtio modules, the
//! real `ferrometal-ignite` (it applies the discovery ignition) with the libraries it and
//! metalprobe need, and an `/init` that brings the network up with DHCP (DHCPv6, through
//! `ferrometal-ignite --dhcp6`, when the ignition URL is an IPv6 literal), applies the ignition
//! named on the kernel command line — which downloads the real metalprobe from the boot server
//! and runs it — and powers the machine off. metalprobe itself is not in the initramfs: the
//! ignition fetches it, as Ignition would, and carrying a second copy made every emulated
//! boot about 25 s slower.
//!
//! Packages are downloaded with `apt-get download` and unpacked with `dpkg-deb` into the
//! tool cache, keyed by package version; the initramfs is assembled again on every build (a
//! second or so).
//!
//! The same kernel and initramfs also come as a unified kernel image ([`crate::uki`]) for
//! firmware that boots over UEFI HTTP; [`DiscoveryImage::push`] pushes all three layers.
//!
//! Test faults, set per VM through QEMU's firmware configuration
//! (`-fw_cfg name=opt/ferrometal/probe,string=…`): `wrong-token` reports with a corrupted
//! token, `never` does not report.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools;
use crate::{Error, Result};

/// The kernel modules `/init` loads, in dependency order.
pub const MODULES: [&str; 10] = [
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
    "virtio_blk",
    "qemu_fw_cfg",
];

/// Media types of an IronCore OS image's layers.
pub const KERNEL_MEDIA_TYPE: &str = "application/vnd.ironcore.image.kernel";
/// Media type of the initramfs layer.
pub const INITRAMFS_MEDIA_TYPE: &str = "application/vnd.ironcore.image.initramfs";
/// Media type of the unified kernel image layer.
pub const UKI_MEDIA_TYPE: &str = "application/vnd.ironcore.image.uki";

const INIT: &str = r#"#!/bin/busybox sh
# ferrometal discovery image: network up, apply the discovery ignition, power off.
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "ferrometal discovery image, kernel $(uname -r)"
for module in MODULES; do
  insmod /lib/modules/$module.ko || echo "ferrometal: module $module not loaded"
done
ip link set lo up
for i in $(seq 1 100); do [ -e /sys/class/net/eth0 ] && break; usleep 100000; done
# Addresses come from DHCP: no duplicate address detection, the link-local one usable at once.
echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad
ip link set eth0 up
# The family of the ignition URL: an IPv6 boot server is reached over DHCPv6 (ferrometal-ignite
# leases the address; the on-link prefix comes from router advertisements), others over DHCPv4.
dhcp6=""
case " $(cat /proc/cmdline) " in
  *" ignition.config.url=http://["*|*" ignition.config.url=https://["*) dhcp6="--dhcp6 eth0" ;;
  *) udhcpc -i eth0 -f -q -n -t 20 -s /etc/udhcpc.script || echo "ferrometal: no DHCP lease" ;;
esac
fault=$(cat /sys/firmware/qemu_fw_cfg/by_name/opt/ferrometal/probe/raw 2>/dev/null)
case "$fault" in
  never) echo "ferrometal: test fault: not reporting" ;;
  wrong-token) ferrometal-ignite $dhcp6 --corrupt-token; echo "ferrometal: ignite exited with $?" ;;
  *) ferrometal-ignite $dhcp6; echo "ferrometal: ignite exited with $?" ;;
esac
case " $(cat /proc/cmdline) " in
  *" ferrometal.after=wait "*) echo "ferrometal: waiting (ferrometal.after=wait)"; while true; do sleep 3600; done ;;
esac
echo "ferrometal: powering off"
sync
poweroff -f
"#;

const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for gateway in $router; do ip route add default via "$gateway" dev "$interface"; break; done
    : > /etc/resolv.conf
    for server in $dns; do echo "nameserver $server" >> /etc/resolv.conf; done
    echo "ferrometal: $interface has $ip/${mask:-24}"
    ;;
esac
"#;

/// A built discovery image.
#[derive(Debug, Clone)]
pub struct DiscoveryImage {
    /// The kernel (`vmlinuz`).
    pub kernel: PathBuf,
    /// The initramfs (uncompressed newc cpio).
    pub initramfs: PathBuf,
    /// Both as a unified kernel image for UEFI HTTP boot, its `.cmdline` padded with room
    /// for the boot server's arguments (see [`crate::uki`]).
    pub uki: PathBuf,
    /// A stripped metalprobe for the boot server to offer (`--metalprobe-binary`).
    pub metalprobe: PathBuf,
    /// The kernel's release, e.g. `6.1.0-57-amd64`.
    pub kernel_release: String,
}

impl DiscoveryImage {
    /// Pushes the image to `registry` as an IronCore OS image: kernel and initramfs layers
    /// (what iPXE boots) and the UKI layer (what UEFI HTTP boots).
    pub async fn push(
        &self,
        registry: &crate::OciRegistry,
        repository_tag: &str,
    ) -> Result<crate::PushedImage> {
        let (kernel, initramfs) = (read(&self.kernel)?, read(&self.initramfs)?);
        let uki = read(&self.uki)?;
        registry
            .push_image(
                repository_tag,
                &[
                    (KERNEL_MEDIA_TYPE, kernel.as_slice()),
                    (INITRAMFS_MEDIA_TYPE, initramfs.as_slice()),
                    (UKI_MEDIA_TYPE, uki.as_slice()),
                ],
            )
            .await
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(Error::io(format!("read {}", path.display())))
}

/// Runs `command`; its standard output, or an error naming the command with its status and
/// error output.
pub(crate) fn run(command: &mut Command) -> Result<String> {
    let described = format!("{command:?}");
    let output = command
        .output()
        .map_err(Error::io(format!("run {described}")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(Error::CommandFailed {
            command: described,
            message: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }
}

/// The candidate version of a Debian package.
fn candidate_version(package: &str) -> Result<String> {
    let policy = run(Command::new("apt-cache").args(["policy", package]))?;
    policy
        .lines()
        .find_map(|line| line.trim().strip_prefix("Candidate:"))
        .map(|version| version.trim().to_owned())
        .filter(|version| version != "(none)")
        .ok_or_else(|| Error::CommandFailed {
            command: format!("apt-cache policy {package}"),
            message: String::from("no candidate version (run `apt-get update`)"),
        })
}

/// The versioned kernel package `linux-image-amd64` depends on.
fn kernel_package() -> Result<String> {
    let depends = run(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    depends
        .lines()
        .find_map(|line| line.trim().strip_prefix("Depends:"))
        .map(|package| package.trim().to_owned())
        .ok_or_else(|| Error::CommandFailed {
            command: String::from("apt-cache depends linux-image-amd64"),
            message: String::from("no kernel package dependency"),
        })
}

/// Downloads and unpacks `package` into the tool cache once per version; returns the tree.
pub fn unpacked_package(package: &str) -> Result<PathBuf> {
    let version = candidate_version(package)?;
    let dir = tools::cache_dir()
        .join("debian")
        .join(format!("{package}_{}", version.replace(':', "%3a")));
    let marker = dir.join(".unpacked");
    if marker.is_file() {
        return Ok(dir);
    }
    let download = dir.with_extension("download");
    let _ = std::fs::remove_dir_all(&download);
    std::fs::create_dir_all(&download)
        .map_err(Error::io(format!("create {}", download.display())))?;
    eprintln!("testenv: downloading Debian package {package} {version}");
    // Retried twice, like every other download of the set-up.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match run(Command::new("apt-get")
            .args(["download", "-qq", &format!("{package}={version}")])
            .current_dir(&download))
        {
            Ok(_) => break,
            Err(error) if attempt >= 3 => return Err(error),
            Err(error) => {
                eprintln!("testenv: {error}; retrying");
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
        }
    }
    let deb = std::fs::read_dir(&download)
        .map_err(Error::io(format!("list {}", download.display())))?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .ok_or_else(|| Error::CommandFailed {
            command: format!("apt-get download {package}={version}"),
            message: String::from("no .deb was downloaded"),
        })?;
    let _ = std::fs::remove_dir_all(&dir);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir))?;
    let _ = std::fs::remove_dir_all(&download);
    std::fs::write(&marker, &version).map_err(Error::io(format!("write {}", marker.display())))?;
    Ok(dir)
}

/// The shared libraries `binary` loads, as absolute paths (from `ldd`), the loader included.
fn libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let listing = run(Command::new("ldd").arg(binary))?;
    Ok(listing
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, target)) => target.trim(),
                None => line,
            };
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// A stripped copy of `binary` at `to`.
fn stripped(binary: &Path, to: &Path) -> Result<()> {
    run(Command::new("strip").arg("-o").arg(to).arg(binary))?;
    Ok(())
}

/// A newc ("070701") cpio archive, the initramfs format. Parent directories are added
/// before the first entry inside them.
#[derive(Debug, Default)]
pub struct Cpio {
    bytes: Vec<u8>,
    inode: u32,
    directories: std::collections::BTreeSet<String>,
}

impl Cpio {
    fn header(&mut self, name: &str, mode: u32, size: usize) {
        self.inode += 1;
        let fields = [
            self.inode,
            mode,
            0,
            0,
            1,
            0,
            size as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    /// Adds a directory and its missing parents (once each).
    pub fn directory(&mut self, name: &str) {
        if let Some((parent, _)) = name.rsplit_once('/') {
            self.directory(parent);
        }
        if self.directories.insert(name.to_owned()) {
            self.header(name, 0o040_755, 0);
        }
    }

    /// Adds a regular file with permission bits `mode` (and its missing parent directories).
    pub fn file(&mut self, name: &str, mode: u32, contents: &[u8]) {
        if let Some((parent, _)) = name.rsplit_once('/') {
            self.directory(parent);
        }
        self.header(name, 0o100_000 | mode, contents.len());
        self.bytes.extend_from_slice(contents);
        self.pad();
    }

    /// Ends the archive and returns it.
    pub fn finish(mut self) -> Vec<u8> {
        self.header("TRAILER!!!", 0, 0);
        self.bytes
    }
}

/// Builds the image into `out_dir` from the Debian packages and the workspace's
/// `ferrometal-ignite` and `metalprobe` binaries.
pub fn build(out_dir: &Path) -> Result<DiscoveryImage> {
    std::fs::create_dir_all(out_dir).map_err(Error::io(format!("create {}", out_dir.display())))?;
    let kernel_package = kernel_package()?;
    let kernel_tree = unpacked_package(&kernel_package)?;
    let busybox_tree = unpacked_package("busybox-static")?;
    let kernel_release = kernel_package
        .strip_prefix("linux-image-")
        .unwrap_or(&kernel_package)
        .to_owned();
    let kernel = kernel_tree
        .join("boot")
        .join(format!("vmlinuz-{kernel_release}"));
    let modules = kernel_tree.join("lib/modules").join(&kernel_release);

    let ignite_binary = crate::components::workspace_binary("ferrometal-ignite")?;
    let ignite = out_dir.join("ferrometal-ignite");
    stripped(&ignite_binary, &ignite)?;
    let metalprobe = out_dir.join("metalprobe");
    stripped(
        &crate::components::workspace_binary("metalprobe")?,
        &metalprobe,
    )?;

    let mut cpio = Cpio::default();
    // Mount points and directories /init and the ignition write into.
    for dir in ["dev", "proc", "root", "run", "sys", "tmp", "usr/local/bin"] {
        cpio.directory(dir);
    }
    cpio.file(
        "init",
        0o755,
        INIT.replace("MODULES", &MODULES.join(" ")).as_bytes(),
    );
    cpio.file("etc/udhcpc.script", 0o755, UDHCPC_SCRIPT.as_bytes());
    cpio.file(
        "bin/busybox",
        0o755,
        &read(&busybox_tree.join("bin/busybox"))?,
    );
    for module in MODULES {
        let found = find_module(&modules, module)?;
        cpio.file(&format!("lib/modules/{module}.ko"), 0o644, &read(&found)?);
    }
    cpio.file("usr/bin/ferrometal-ignite", 0o755, &read(&ignite)?);
    let libraries: std::collections::BTreeSet<PathBuf> = libraries(&ignite_binary)?
        .into_iter()
        .chain(libraries(&metalprobe)?)
        .collect();
    for library in &libraries {
        let name = library.to_string_lossy();
        cpio.file(name.trim_start_matches('/'), 0o755, &read(library)?);
    }
    let initramfs = out_dir.join("initramfs.cpio");
    std::fs::write(&initramfs, cpio.finish())
        .map_err(Error::io(format!("write {}", initramfs.display())))?;
    let kernel_copy = out_dir.join("vmlinuz");
    std::fs::copy(&kernel, &kernel_copy)
        .map_err(Error::io(format!("copy {}", kernel.display())))?;
    let uki = crate::uki::build(
        &crate::uki::UkiInputs {
            stub: Path::new(crate::uki::STUB),
            kernel: &kernel_copy,
            initramfs: &initramfs,
            os_release: &format!(
                "NAME=\"ferrometal discovery\"\nID=ferrometal-discovery\nVERSION_ID={kernel_release}\n\
                 PRETTY_NAME=\"ferrometal discovery (Debian kernel {kernel_release})\"\n"
            ),
        },
        out_dir,
    )?;
    Ok(DiscoveryImage {
        kernel: kernel_copy,
        initramfs,
        uki,
        metalprobe,
        kernel_release,
    })
}

fn find_module(modules: &Path, name: &str) -> Result<PathBuf> {
    let wanted = format!("{name}.ko");
    let mut stack = vec![modules.join("kernel")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)
            .map_err(Error::io(format!("list {}", dir.display())))?
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|file| file == wanted.as_str()) {
                return Ok(path);
            }
        }
    }
    Err(Error::CommandFailed {
        command: format!("find {wanted} in {}", modules.display()),
        message: String::from("the kernel package has no such module"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_directories_come_once_before_their_entries() {
        let mut cpio = Cpio::default();
        cpio.file("lib/x86_64-linux-gnu/libc.so.6", 0o755, b"c");
        cpio.file("lib/x86_64-linux-gnu/libm.so.6", 0o755, b"m");
        cpio.directory("lib");
        let bytes = cpio.finish();
        let text = String::from_utf8_lossy(&bytes);
        let position = |name: &str| text.find(&format!("{name}\0")).expect(name);
        assert_eq!(text.matches("lib\0").count(), 1);
        assert_eq!(text.matches("lib/x86_64-linux-gnu\0").count(), 1);
        assert!(position("lib") < position("lib/x86_64-linux-gnu"));
        assert!(position("lib/x86_64-linux-gnu") < position("lib/x86_64-linux-gnu/libc.so.6"));
    }

    #[test]
    fn cpio_entries_are_newc_and_four_byte_aligned() {
        let mut cpio = Cpio::default();
        cpio.directory("etc");
        cpio.file("etc/x", 0o600, b"hello");
        let bytes = cpio.finish();
        assert!(bytes.starts_with(b"070701"));
        assert_eq!(bytes.len() % 4, 0);
        let text = String::from_utf8_lossy(&bytes);
        // The file's header: mode 0100600, size 5, name length 6.
        assert!(text.contains("000081800000000000000000000000010000000000000005"));
        assert!(text.contains("etc/x\0"));
        assert!(text.contains("hello"));
        assert!(text.contains("TRAILER!!!\0"));
    }
}
