//! Machines that are real QEMU virtual machines: power On starts `qemu-system-x86_64` with the
//! machine's SMBIOS UUID, MAC, CPU count, memory and a virtio disk; a one-time network boot
//! makes that start boot real iPXE (`ipxe.lkrn`), which gets its address and boot file from
//! QEMU's user-mode network (the host's loopback is `10.0.2.2` there) and follows
//! ferrometal's boot server; power off kills the process, and a guest that powers itself off
//! ends the process, which the BMC then reports as Off. QEMU processes are started through
//! [`testenv::Program`]: tracked by PID, killed when dropped, and reaped by the next run if
//! the test process died.

use std::path::{Path, PathBuf};
use std::process::Command;

use testenv::netns::try_ip;

use crate::machine::Probe;
use crate::spec::MachineSpec;

/// The host's address as QEMU's user-mode network shows it to guests.
pub const GUEST_HOST_ADDRESS: &str = "10.0.2.2";

/// The hardware of one VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmShape {
    /// Virtual CPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Size of its (empty, sparse) virtio disk in bytes.
    pub disk_bytes: u64,
}

/// How to run the VMs of a fleet.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// iPXE as a Linux kernel image (Debian's `/usr/lib/ipxe/ipxe.lkrn`).
    pub ipxe: PathBuf,
    /// Machine `i` gets shape `i % shapes.len()`.
    pub shapes: Vec<VmShape>,
    /// Where consoles (`vm-<index>.console.log`, all boots appended) and disks go.
    pub dir: PathBuf,
    /// Use KVM when `/dev/kvm` is usable; otherwise (the default) software emulation, which
    /// works everywhere — nested KVM in CI machines is often broken.
    pub kvm: bool,
    /// How the VMs are networked.
    pub network: VmNetwork,
}

/// A VM's network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum VmNetwork {
    /// QEMU's user-mode network: its built-in DHCP server hands out `10.0.2.15` and the boot
    /// file; the host's loopback is `10.0.2.2`.
    #[default]
    User,
    /// A tap device `vmtap<index>` on `bridge` inside network namespace `namespace` (which
    /// the caller created, with whatever DHCP server it wants on the bridge's segment — e.g.
    /// ferrometal's). QEMU runs inside the namespace.
    Tap {
        /// The network namespace.
        namespace: String,
        /// The bridge the taps join.
        bridge: String,
    },
}

impl VmOptions {
    /// Debian's QEMU and iPXE, consoles and disks under `dir`; KVM only when
    /// `FERROMETAL_VM_KVM=1`.
    pub fn debian(shapes: Vec<VmShape>, dir: PathBuf) -> Self {
        Self {
            qemu: PathBuf::from("/usr/bin/qemu-system-x86_64"),
            ipxe: PathBuf::from("/usr/lib/ipxe/ipxe.lkrn"),
            shapes,
            dir,
            kvm: std::env::var("FERROMETAL_VM_KVM").is_ok_and(|value| value == "1"),
            network: VmNetwork::User,
        }
    }

    /// The shape of machine `index`.
    pub fn shape(&self, index: usize) -> VmShape {
        self.shapes[index % self.shapes.len().max(1)]
    }

    /// The console log of machine `index`.
    pub fn console(&self, index: usize) -> PathBuf {
        self.dir.join(format!("vm-{index}.console.log"))
    }

    fn disk(&self, index: usize) -> PathBuf {
        self.dir.join(format!("vm-{index}.disk"))
    }
}

/// Gives `spec` the hardware of `shape`: one CPU package with `cpus` cores, its memory and
/// one virtio disk, so the BMC reports what the VM has (model `SimVM`).
pub fn shape_spec(spec: &mut MachineSpec, shape: VmShape) {
    spec.model = String::from("SimVM");
    spec.cpus = (1, shape.cpus);
    spec.memory_mib = shape.memory_mib;
    spec.disks = vec![(String::from("vda"), shape.disk_bytes, false)];
    spec.macs.truncate(1);
}

/// How a VM starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start<'a> {
    /// From its disk (which is empty: the VM idles at "no bootable device").
    Disk,
    /// Network boot: iPXE asks DHCP and chains the boot file it names.
    Network {
        /// The boot file URL QEMU's built-in DHCP hands out (user network only; on a tap
        /// network the segment's DHCP server names it).
        boot_file: Option<&'a str>,
    },
}

/// The QEMU arguments for machine `spec` (pure; the disk must exist).
pub fn qemu_args(
    options: &VmOptions,
    spec: &MachineSpec,
    start: &Start<'_>,
    probe: Probe,
    kvm: bool,
) -> Vec<String> {
    let shape = options.shape(spec.index);
    let mut args: Vec<String> = vec![
        "-machine".into(),
        "pc".into(),
        "-accel".into(),
        if kvm { "kvm" } else { "tcg" }.into(),
        "-m".into(),
        shape.memory_mib.to_string(),
        "-smp".into(),
        shape.cpus.to_string(),
        "-display".into(),
        "none".into(),
        "-monitor".into(),
        "none".into(),
        "-no-reboot".into(),
        "-chardev".into(),
        format!(
            "file,id=console,path={},append=on",
            options.console(spec.index).display()
        ),
        "-serial".into(),
        "chardev:console".into(),
        "-smbios".into(),
        format!(
            "type=1,uuid={},manufacturer={},product={},serial={}",
            spec.uuid,
            crate::spec::MANUFACTURER,
            spec.model.replace(',', ""),
            spec.serial
        ),
        "-drive".into(),
        format!(
            "file={},if=virtio,format=raw",
            options.disk(spec.index).display()
        ),
    ];
    let netdev = match (&options.network, start) {
        (VmNetwork::Tap { .. }, _) => format!(
            "tap,id=net0,ifname={},script=no,downscript=no",
            tap_name(spec.index)
        ),
        (
            VmNetwork::User,
            Start::Network {
                boot_file: Some(boot_file),
            },
        ) => {
            format!("user,id=net0,bootfile={boot_file}")
        }
        (VmNetwork::User, _) => String::from("user,id=net0"),
    };
    args.extend([
        "-netdev".into(),
        netdev,
        "-device".into(),
        // The NIC option ROMs are not in QEMU's ROM path on Debian: iPXE comes as a kernel.
        format!("virtio-net-pci,netdev=net0,mac={},romfile=", spec.macs[0]),
    ]);
    if let Start::Network { .. } = start {
        args.extend(["-kernel".into(), options.ipxe.display().to_string()]);
    }
    let fault = match probe {
        Probe::Report => None,
        Probe::Never => Some("never"),
        Probe::WrongToken => Some("wrong-token"),
    };
    if let Some(fault) = fault {
        args.extend([
            "-fw_cfg".into(),
            format!("name=opt/ferrometal/probe,string={fault}"),
        ]);
    }
    args
}

/// The tap device of machine `index` on a tap network.
pub fn tap_name(index: usize) -> String {
    format!("vmtap{index}")
}

/// Whether KVM can be used here.
pub fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// Starts the VM of `spec`: creates its sparse disk if needed and launches QEMU.
pub fn start(
    options: &VmOptions,
    spec: &MachineSpec,
    start: &Start<'_>,
    probe: Probe,
) -> Result<testenv::Program, String> {
    std::fs::create_dir_all(&options.dir)
        .map_err(|error| format!("create {}: {error}", options.dir.display()))?;
    let disk = options.disk(spec.index);
    ensure_disk(&disk, options.shape(spec.index).disk_bytes)?;
    let kvm = options.kvm && kvm_usable();
    let mut command = match &options.network {
        VmNetwork::User => Command::new(&options.qemu),
        VmNetwork::Tap { namespace, bridge } => {
            let tap = tap_name(spec.index);
            // Made once per machine, then reused by every start.
            let _ = try_ip(&["-n", namespace, "tuntap", "add", "dev", &tap, "mode", "tap"]);
            try_ip(&["-n", namespace, "link", "set", &tap, "master", bridge, "up"])?;
            let mut command = Command::new("ip");
            command
                .args(["netns", "exec", namespace])
                .arg(&options.qemu);
            command
        }
    };
    command.args(qemu_args(options, spec, start, probe, kvm));
    testenv::Program::start(&format!("vm-{}", spec.index), command)
        .map_err(|error| format!("cannot start QEMU: {error}"))
}

fn ensure_disk(path: &Path, bytes: u64) -> Result<(), String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|error| format!("create {}: {error}", path.display()))?;
    file.set_len(bytes)
        .map_err(|error| format!("size {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> MachineSpec {
        MachineSpec {
            index: 3,
            uuid: String::from("6e7c1b1e-8d8a-4a57-9f55-0d9b1a5c2a10"),
            serial: String::from("SIM-3"),
            model: String::from("Sim, 1U"),
            macs: vec![String::from("52:54:fd:00:00:03")],
            cpus: (1, 2),
            memory_mib: 768,
            disks: Vec::new(),
            boot_override: true,
            bmc_only_nics: Vec::new(),
        }
    }

    fn options() -> VmOptions {
        VmOptions::debian(
            vec![VmShape {
                cpus: 2,
                memory_mib: 768,
                disk_bytes: 1 << 30,
            }],
            PathBuf::from("/tmp/vms"),
        )
    }

    #[test]
    fn a_network_boot_starts_ipxe_with_the_machines_identity() {
        let args = qemu_args(
            &options(),
            &spec(),
            &Start::Network {
                boot_file: Some("http://10.0.2.2:8082/ipxe"),
            },
            Probe::Report,
            false,
        )
        .join(" ");
        for expected in [
            "-accel tcg",
            "-m 768",
            "-smp 2",
            "-smbios type=1,uuid=6e7c1b1e-8d8a-4a57-9f55-0d9b1a5c2a10,manufacturer=ferrometal-sim,product=Sim 1U,serial=SIM-3",
            "-netdev user,id=net0,bootfile=http://10.0.2.2:8082/ipxe",
            "mac=52:54:fd:00:00:03,romfile=",
            "-kernel /usr/lib/ipxe/ipxe.lkrn",
            "file=/tmp/vms/vm-3.disk,if=virtio,format=raw",
            "path=/tmp/vms/vm-3.console.log,append=on",
        ] {
            assert!(args.contains(expected), "{expected} in {args}");
        }
        assert!(!args.contains("fw_cfg"));
    }

    #[test]
    fn a_disk_boot_has_no_ipxe_and_faults_reach_the_guest() {
        let args = qemu_args(&options(), &spec(), &Start::Disk, Probe::WrongToken, true).join(" ");
        assert!(!args.contains("-kernel"));
        assert!(!args.contains("bootfile"));
        assert!(args.contains("-accel kvm"));
        assert!(args.contains("-fw_cfg name=opt/ferrometal/probe,string=wrong-token"));
    }

    #[test]
    fn a_tap_network_leaves_dhcp_to_the_segment() {
        let options = VmOptions {
            network: VmNetwork::Tap {
                namespace: String::from("ns"),
                bridge: String::from("br0"),
            },
            ..options()
        };
        let args = qemu_args(
            &options,
            &spec(),
            &Start::Network { boot_file: None },
            Probe::Report,
            false,
        )
        .join(" ");
        assert!(args.contains("-netdev tap,id=net0,ifname=vmtap3,script=no,downscript=no"));
        assert!(!args.contains("bootfile"));
        assert!(args.contains("-kernel /usr/lib/ipxe/ipxe.lkrn"));
    }

    #[test]
    fn the_spec_takes_the_vms_hardware() {
        let mut spec = spec();
        spec.macs.push(String::from("52:54:fc:00:00:03"));
        shape_spec(
            &mut spec,
            VmShape {
                cpus: 4,
                memory_mib: 1024,
                disk_bytes: 2 << 30,
            },
        );
        assert_eq!(spec.model, "SimVM");
        assert_eq!(spec.cpus, (1, 4));
        assert_eq!(spec.memory_mib, 1024);
        assert_eq!(spec.disks, [(String::from("vda"), 2 << 30, false)]);
        assert_eq!(spec.macs.len(), 1, "a VM has one NIC");
    }
}
