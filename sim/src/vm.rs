//! Machines that are real QEMU virtual machines: power On starts `qemu-system-x86_64` with the
//! machine's SMBIOS UUID, MAC, CPU count, memory and a virtio disk; a one-time network boot
//! makes that start boot real iPXE (`ipxe.lkrn`), which gets its address and boot file from
//! QEMU's user-mode network (the host's loopback is `10.0.2.2` there) and follows
//! ferrometal's boot server; power off kills the process, and a guest that powers itself off
//! ends the process, which the BMC then reports as Off. QEMU processes are started through
//! [`testenv::Program`]: tracked by PID, killed when dropped, and reaped by the next run if
//! the test process died.
//!
//! A fleet's VMs run SeaBIOS by default ([`Firmware::Bios`]), or OVMF ([`Firmware::Uefi`]):
//! then a one-time `UefiHttp` override makes the firmware boot over UEFI HTTP — it asks the
//! segment's DHCP server with vendor class `HTTPClient` for the URL of an EFI image (a UKI)
//! and boots what it downloads. OVMF's PXE is switched off through its firmware
//! configuration (`opt/org.tianocore/IPv4PXESupport=n`, `IPv6PXESupport=n`), so the NIC's
//! boot options are its HTTP ones; the NIC is first in the boot order only for that boot.

use std::path::{Path, PathBuf};
use std::process::Command;

use testenv::netns::try_ip;

use crate::machine::{BootSource, Probe};
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
    /// What the VMs boot with.
    pub firmware: Firmware,
}

/// A VM's firmware.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Firmware {
    /// SeaBIOS, QEMU's default: a network boot runs iPXE, given to QEMU as a kernel.
    #[default]
    Bios,
    /// OVMF, UEFI: a network boot is a UEFI HTTP boot from the URL the segment's DHCP server
    /// names. Each VM keeps its own copy of the variable store (`vm-<index>.vars.fd`).
    Uefi(Ovmf),
}

/// OVMF's flash images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ovmf {
    /// The firmware code, mapped read-only (pflash unit 0).
    pub code: PathBuf,
    /// The empty variable store each VM's writable copy starts from (pflash unit 1).
    pub vars_template: PathBuf,
}

impl Ovmf {
    /// Debian's `ovmf` package: the 4 MiB images without Secure Boot (a UKI personalised by
    /// the boot server is unsigned).
    pub fn debian() -> Self {
        Self {
            code: PathBuf::from("/usr/share/OVMF/OVMF_CODE_4M.fd"),
            vars_template: PathBuf::from("/usr/share/OVMF/OVMF_VARS_4M.fd"),
        }
    }
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
            firmware: Firmware::Bios,
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

    /// The UEFI variable store of machine `index` (OVMF only).
    pub fn uefi_vars(&self, index: usize) -> PathBuf {
        self.dir.join(format!("vm-{index}.vars.fd"))
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
    /// UEFI HTTP boot (OVMF): the firmware asks DHCP for an HTTP boot file (vendor class
    /// `HTTPClient`) and boots the EFI image it downloads.
    HttpBoot {
        /// The URL QEMU's built-in DHCP hands out (user network only).
        boot_file: Option<&'a str>,
    },
}

/// The boot files QEMU's built-in DHCP hands out on the user network (on a tap network the
/// segment's DHCP server names them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserBootFiles<'a> {
    /// For iPXE: the boot server's `/ipxe`.
    pub ipxe: Option<&'a str>,
    /// For UEFI HTTP boot: the boot server's `/uki/<uuid>.efi`.
    pub uefi_http: Option<&'a str>,
}

/// How a VM of `options` starts for a boot from `source`, or why it cannot.
pub fn start_for<'a>(
    options: &VmOptions,
    source: &BootSource,
    files: UserBootFiles<'a>,
) -> Result<Start<'a>, String> {
    match (source, &options.firmware, &options.network) {
        (BootSource::Disk, _, _) => Ok(Start::Disk),
        (BootSource::Pxe, Firmware::Uefi(_), _) => Err(String::from(
            "a PXE boot on an OVMF VM is not modelled (its PXE is off): ask for UefiHttp",
        )),
        // On a tap network the segment's DHCP server names the boot file.
        (BootSource::Pxe, Firmware::Bios, VmNetwork::Tap { .. }) => {
            Ok(Start::Network { boot_file: None })
        }
        (BootSource::Pxe, Firmware::Bios, VmNetwork::User) => match files.ipxe {
            Some(url) => Ok(Start::Network {
                boot_file: Some(url),
            }),
            None => Err(String::from("no boot server URL for the VM")),
        },
        (BootSource::Http(_), Firmware::Bios, _) => Err(String::from(
            "UEFI HTTP boot needs OVMF, and this VM runs SeaBIOS (VmOptions::firmware)",
        )),
        (BootSource::Http(Some(uri)), Firmware::Uefi(_), _) => Err(format!(
            "HttpBootUri {uri} is not supported by VM machines: their firmware takes the boot \
             file URL from DHCP"
        )),
        (BootSource::Http(None), Firmware::Uefi(_), VmNetwork::Tap { .. }) => {
            Ok(Start::HttpBoot { boot_file: None })
        }
        (BootSource::Http(None), Firmware::Uefi(_), VmNetwork::User) => match files.uefi_http {
            Some(url) => Ok(Start::HttpBoot {
                boot_file: Some(url),
            }),
            None => Err(String::from("no boot server URL for the VM")),
        },
    }
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
    ];
    let network_first = matches!(start, Start::HttpBoot { .. });
    match &options.firmware {
        Firmware::Bios => args.extend([
            "-drive".into(),
            format!(
                "file={},if=virtio,format=raw",
                options.disk(spec.index).display()
            ),
        ]),
        Firmware::Uefi(ovmf) => {
            args.extend([
                "-drive".into(),
                format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={}",
                    ovmf.code.display()
                ),
                "-drive".into(),
                format!(
                    "if=pflash,format=raw,unit=1,file={}",
                    options.uefi_vars(spec.index).display()
                ),
                // OVMF boots in QEMU's boot order; without PXE the NIC's options are HTTP.
                "-fw_cfg".into(),
                "name=opt/org.tianocore/IPv4PXESupport,string=n".into(),
                "-fw_cfg".into(),
                "name=opt/org.tianocore/IPv6PXESupport,string=n".into(),
                "-drive".into(),
                format!(
                    "file={},if=none,id=disk0,format=raw",
                    options.disk(spec.index).display()
                ),
                "-device".into(),
                format!(
                    "virtio-blk-pci,drive=disk0,bootindex={}",
                    if network_first { 1 } else { 0 }
                ),
            ]);
        }
    }
    let netdev = match (&options.network, start) {
        (VmNetwork::Tap { .. }, _) => format!(
            "tap,id=net0,ifname={},script=no,downscript=no",
            tap_name(spec.index)
        ),
        (
            VmNetwork::User,
            Start::Network {
                boot_file: Some(boot_file),
            }
            | Start::HttpBoot {
                boot_file: Some(boot_file),
            },
        ) => {
            format!("user,id=net0,bootfile={boot_file}")
        }
        (VmNetwork::User, _) => String::from("user,id=net0"),
    };
    // The NIC option ROMs are not in QEMU's ROM path on Debian: iPXE comes as a kernel, and
    // OVMF has its own virtio-net driver. Only a network boot puts the NIC in OVMF's boot
    // order (an OVMF VM started from its empty disk idles in the UEFI shell).
    let boot_index = if network_first { ",bootindex=0" } else { "" };
    args.extend([
        "-netdev".into(),
        netdev,
        "-device".into(),
        format!(
            "virtio-net-pci,netdev=net0,mac={},romfile={boot_index}",
            spec.macs[0]
        ),
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
    if let Firmware::Uefi(ovmf) = &options.firmware {
        ensure_uefi_vars(&options.uefi_vars(spec.index), &ovmf.vars_template)?;
    }
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

/// A VM's variable store: copied from the template on its first start, then kept, like a
/// machine's NVRAM.
fn ensure_uefi_vars(path: &Path, template: &Path) -> Result<(), String> {
    if path.is_file() {
        return Ok(());
    }
    std::fs::copy(template, path).map(drop).map_err(|error| {
        format!(
            "copy the OVMF variable store {} (Debian package ovmf): {error}",
            template.display()
        )
    })
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
            gpus: 0,
            bmc_unlisted_disks: Vec::new(),
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

    fn uefi_on_tap() -> VmOptions {
        VmOptions {
            network: VmNetwork::Tap {
                namespace: String::from("ns"),
                bridge: String::from("br0"),
            },
            firmware: Firmware::Uefi(Ovmf::debian()),
            ..options()
        }
    }

    #[test]
    fn a_uefi_http_boot_maps_ovmf_without_pxe_and_puts_the_nic_first() {
        let args = qemu_args(
            &uefi_on_tap(),
            &spec(),
            &Start::HttpBoot { boot_file: None },
            Probe::Report,
            false,
        )
        .join(" ");
        for expected in [
            "-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
            "-drive if=pflash,format=raw,unit=1,file=/tmp/vms/vm-3.vars.fd",
            "-fw_cfg name=opt/org.tianocore/IPv4PXESupport,string=n",
            "-fw_cfg name=opt/org.tianocore/IPv6PXESupport,string=n",
            "-drive file=/tmp/vms/vm-3.disk,if=none,id=disk0,format=raw",
            "-device virtio-blk-pci,drive=disk0,bootindex=1",
            "-device virtio-net-pci,netdev=net0,mac=52:54:fd:00:00:03,romfile=,bootindex=0",
            "-netdev tap,id=net0,ifname=vmtap3,script=no,downscript=no",
        ] {
            assert!(args.contains(expected), "{expected} in {args}");
        }
        assert!(!args.contains("-kernel"), "no iPXE: {args}");
        assert!(!args.contains("if=virtio"), "{args}");
    }

    #[test]
    fn a_uefi_http_boot_on_the_user_network_gets_its_boot_file_from_qemus_dhcp() {
        let options = VmOptions {
            firmware: Firmware::Uefi(Ovmf::debian()),
            ..options()
        };
        let args = qemu_args(
            &options,
            &spec(),
            &Start::HttpBoot {
                boot_file: Some(
                    "http://10.0.2.2:8082/uki/6e7c1b1e-8d8a-4a57-9f55-0d9b1a5c2a10.efi",
                ),
            },
            Probe::Report,
            false,
        )
        .join(" ");
        assert!(
            args.contains(
                "-netdev user,id=net0,bootfile=http://10.0.2.2:8082/uki/6e7c1b1e-8d8a-4a57-9f55-0d9b1a5c2a10.efi"
            ),
            "{args}"
        );
        assert!(args.contains("romfile=,bootindex=0"), "{args}");
    }

    #[test]
    fn a_uefi_disk_boot_leaves_the_nic_out_of_the_boot_order() {
        let args = qemu_args(&uefi_on_tap(), &spec(), &Start::Disk, Probe::Report, false).join(" ");
        assert!(
            args.contains("virtio-blk-pci,drive=disk0,bootindex=0"),
            "{args}"
        );
        assert!(
            args.contains("-device virtio-net-pci,netdev=net0,mac=52:54:fd:00:00:03,romfile="),
            "{args}"
        );
        assert!(!args.contains("romfile=,bootindex"), "{args}");
    }

    #[test]
    fn a_bios_vm_keeps_its_arguments() {
        let args = qemu_args(
            &options(),
            &spec(),
            &Start::Network { boot_file: None },
            Probe::Report,
            false,
        )
        .join(" ");
        assert!(!args.contains("pflash"));
        assert!(!args.contains("bootindex"));
        assert!(!args.contains("org.tianocore"));
    }

    #[test]
    fn each_boot_source_starts_the_vm_its_firmware_can_run() {
        let bios_user = options();
        let bios_tap = VmOptions {
            network: uefi_on_tap().network,
            ..options()
        };
        let uefi_user = VmOptions {
            firmware: Firmware::Uefi(Ovmf::debian()),
            ..options()
        };
        let uefi_tap = uefi_on_tap();
        let files = UserBootFiles {
            ipxe: Some("http://10.0.2.2:1/ipxe"),
            uefi_http: Some("http://10.0.2.2:1/uki/6e7c1b1e-8d8a-4a57-9f55-0d9b1a5c2a10.efi"),
        };
        let http = BootSource::Http(None);
        assert_eq!(
            start_for(&uefi_tap, &BootSource::Disk, files),
            Ok(Start::Disk)
        );
        assert_eq!(
            start_for(&uefi_tap, &http, files),
            Ok(Start::HttpBoot { boot_file: None }),
            "on a tap network the segment's DHCP names the file"
        );
        assert_eq!(
            start_for(&uefi_user, &http, files),
            Ok(Start::HttpBoot {
                boot_file: files.uefi_http
            })
        );
        assert_eq!(
            start_for(&bios_user, &BootSource::Pxe, files),
            Ok(Start::Network {
                boot_file: files.ipxe
            })
        );
        assert_eq!(
            start_for(&bios_tap, &BootSource::Pxe, files),
            Ok(Start::Network { boot_file: None })
        );
        for (options, source, reason) in [
            (&bios_user, &BootSource::Pxe, "no boot server URL"),
            (&uefi_user, &http, "no boot server URL"),
            (&bios_tap, &http, "needs OVMF"),
            (&uefi_tap, &BootSource::Pxe, "ask for UefiHttp"),
            (
                &uefi_tap,
                &BootSource::Http(Some(String::from("http://h/x.efi"))),
                "HttpBootUri http://h/x.efi is not supported",
            ),
        ] {
            let refused = start_for(options, source, UserBootFiles::default()).expect_err(reason);
            assert!(refused.contains(reason), "{refused}");
        }
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
