//! A unified kernel image (UKI) of the discovery system, for firmware that boots it straight
//! over UEFI HTTP: systemd-stub from Debian's `systemd-boot-efi` with the kernel, the
//! initramfs, an os-release and a kernel command line added as sections by `objcopy`
//! (Debian 12 has no `ukify`), at the addresses systemd 252's documented `objcopy` recipe
//! computes: each section after the end of the previous one, here aligned to 4 KiB.
//!
//! The `.cmdline` section holds [`CMDLINE`] padded with spaces to [`CMDLINE_BYTES`]: the boot
//! server personalises each machine's download by rewriting that section in place (the
//! ignition URL with its single-use ticket), and the padding is the room it writes into.
//! `.linux` comes last, as in systemd's recipe, so nothing follows the kernel in memory.
//!
//! Built UKIs are kept beside a digest of their inputs and built again only when one of them
//! changed.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::discovery_image::run;
use crate::{Error, Result};

/// systemd-stub for x86-64 as Debian's `systemd-boot-efi` installs it.
pub const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";

/// The discovery system's own kernel command line (the boot server appends the ignition
/// arguments and `--boot-kernel-args`).
pub const CMDLINE: &str = "console=ttyS0,115200";

/// Bytes of the `.cmdline` section: [`CMDLINE`] and the spaces that leave room for the boot
/// server's arguments.
pub const CMDLINE_BYTES: usize = 1024;

/// Alignment of the added sections' addresses (a multiple of any section alignment the stub
/// declares; systemd-stub itself uses 512 bytes).
const ALIGNMENT: u64 = 4096;

/// Bytes of one entry of the PE section table.
const SECTION_HEADER_BYTES: usize = 40;

/// What goes into a UKI.
#[derive(Debug, Clone)]
pub struct UkiInputs<'a> {
    /// systemd-stub ([`STUB`]).
    pub stub: &'a Path,
    /// The kernel (`vmlinuz`).
    pub kernel: &'a Path,
    /// The initramfs.
    pub initramfs: &'a Path,
    /// The os-release text of `.osrel`.
    pub os_release: &'a str,
}

/// Where a PE image's loaded sections end: its image base and the first free address after
/// its last section, and its section alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeEnd {
    /// `ImageBase` (objcopy's section addresses include it).
    pub image_base: u64,
    /// The highest `VirtualAddress + VirtualSize` of its sections (relative to the base).
    pub end: u64,
    /// `SectionAlignment`.
    pub section_alignment: u64,
}

/// Reads where the sections of the PE image `image` end.
pub fn pe_end(image: &[u8]) -> Result<PeEnd> {
    let bad = |what: &str| Error::CommandFailed {
        command: String::from("read the systemd-stub's PE headers"),
        message: what.to_owned(),
    };
    let bytes = |at: usize, len: usize| image.get(at..at + len).ok_or_else(|| bad("cut short"));
    let u16_at = |at: usize| -> Result<u16> {
        Ok(u16::from_le_bytes(
            bytes(at, 2)?.try_into().map_err(|_| bad("cut short"))?,
        ))
    };
    let u32_at = |at: usize| -> Result<u32> {
        Ok(u32::from_le_bytes(
            bytes(at, 4)?.try_into().map_err(|_| bad("cut short"))?,
        ))
    };
    let pe = u32_at(0x3c)? as usize;
    if bytes(pe, 4)? != b"PE\0\0" {
        return Err(bad("no PE signature"));
    }
    let sections = usize::from(u16_at(pe + 6)?);
    let optional = pe + 24;
    let optional_bytes = usize::from(u16_at(pe + 20)?);
    let image_base = match u16_at(optional)? {
        // PE32+: a 64-bit ImageBase at 24.
        0x20b => u64::from_le_bytes(
            bytes(optional + 24, 8)?
                .try_into()
                .map_err(|_| bad("cut short"))?,
        ),
        0x10b => u64::from(u32_at(optional + 28)?),
        _ => return Err(bad("unknown optional header magic")),
    };
    let section_alignment = u64::from(u32_at(optional + 32)?);
    let table = optional + optional_bytes;
    let mut end = 0;
    for index in 0..sections {
        let at = table + index * SECTION_HEADER_BYTES;
        let size = u64::from(u32_at(at + 8)?);
        let address = u64::from(u32_at(at + 12)?);
        end = end.max(address + size);
    }
    Ok(PeEnd {
        image_base,
        end,
        section_alignment,
    })
}

fn align(value: u64, to: u64) -> u64 {
    value.div_ceil(to) * to
}

/// The `objcopy` section addresses (image base included) of `sections` (name, size) placed
/// one after another behind the stub's own, in the given order.
pub fn layout(stub: PeEnd, sections: &[(&str, u64)]) -> Vec<(String, u64)> {
    let alignment = ALIGNMENT.max(stub.section_alignment);
    let mut next = align(stub.end, alignment);
    sections
        .iter()
        .map(|(name, size)| {
            let address = next;
            next = align(address + size, alignment);
            ((*name).to_owned(), stub.image_base + address)
        })
        .collect()
}

/// The `.cmdline` section's bytes: `cmdline` padded with spaces to [`CMDLINE_BYTES`].
pub fn padded_cmdline(cmdline: &str) -> Result<Vec<u8>> {
    if cmdline.len() > CMDLINE_BYTES {
        return Err(Error::CommandFailed {
            command: String::from("build the UKI's .cmdline"),
            message: format!(
                "the command line is {} bytes, more than the section's {CMDLINE_BYTES}",
                cmdline.len()
            ),
        });
    }
    let mut bytes = cmdline.as_bytes().to_vec();
    bytes.resize(CMDLINE_BYTES, b' ');
    Ok(bytes)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(Error::io(format!("read {}", path.display())))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(Error::io(format!("write {}", path.display())))
}

/// Builds the UKI of `inputs` at `out_dir/uki.efi` (unless the one there was built from the
/// same inputs) and returns its path.
pub fn build(inputs: &UkiInputs<'_>, out_dir: &Path) -> Result<PathBuf> {
    if !inputs.stub.is_file() {
        return Err(Error::CommandFailed {
            command: format!("read {}", inputs.stub.display()),
            message: String::from(
                "systemd-stub is missing: install Debian's systemd-boot-efi (`cargo xtask setup` does)",
            ),
        });
    }
    let stub = read(inputs.stub)?;
    let kernel = read(inputs.kernel)?;
    let initramfs = read(inputs.initramfs)?;
    let cmdline = padded_cmdline(CMDLINE)?;
    let mut digest = Sha256::new();
    for part in [
        stub.as_slice(),
        kernel.as_slice(),
        initramfs.as_slice(),
        inputs.os_release.as_bytes(),
        cmdline.as_slice(),
    ] {
        digest.update((part.len() as u64).to_le_bytes());
        digest.update(part);
    }
    let key = format!("{:x}", digest.finalize());
    let uki = out_dir.join("uki.efi");
    let key_file = out_dir.join("uki.efi.inputs-sha256");
    if uki.is_file() && std::fs::read_to_string(&key_file).is_ok_and(|cached| cached == key) {
        return Ok(uki);
    }
    let os_release_file = out_dir.join("uki.os-release");
    let cmdline_file = out_dir.join("uki.cmdline");
    write(&os_release_file, inputs.os_release.as_bytes())?;
    write(&cmdline_file, &cmdline)?;
    let sections: [(&str, &Path, u64); 4] = [
        (".osrel", &os_release_file, inputs.os_release.len() as u64),
        (".cmdline", &cmdline_file, CMDLINE_BYTES as u64),
        (".initrd", inputs.initramfs, initramfs.len() as u64),
        (".linux", inputs.kernel, kernel.len() as u64),
    ];
    let sizes: Vec<(&str, u64)> = sections.iter().map(|(n, _, s)| (*n, *s)).collect();
    let addresses = layout(pe_end(&stub)?, &sizes);
    let partial = out_dir.join("uki.efi.partial");
    let mut objcopy = Command::new("objcopy");
    for ((name, file, _), (_, address)) in sections.iter().zip(&addresses) {
        objcopy
            .arg("--add-section")
            .arg(format!("{name}={}", file.display()))
            .arg("--change-section-vma")
            .arg(format!("{name}={address:#x}"));
    }
    objcopy.arg(inputs.stub).arg(&partial);
    run(&mut objcopy)?;
    std::fs::rename(&partial, &uki).map_err(Error::io(format!("rename {}", partial.display())))?;
    write(&key_file, key.as_bytes())?;
    Ok(uki)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_follow_the_stub_aligned_in_order() {
        let stub = PeEnd {
            image_base: 0,
            end: 0x19134,
            section_alignment: 0x200,
        };
        let placed = layout(
            stub,
            &[(".osrel", 0x34), (".cmdline", 1024), (".initrd", 0x1001)],
        );
        assert_eq!(
            placed,
            [
                (String::from(".osrel"), 0x1a000),
                (String::from(".cmdline"), 0x1b000),
                (String::from(".initrd"), 0x1c000),
            ]
        );
    }

    #[test]
    fn addresses_include_the_image_base_and_a_larger_alignment() {
        let stub = PeEnd {
            image_base: 0x1_0000_0000,
            end: 0x2000,
            section_alignment: 0x10000,
        };
        let placed = layout(stub, &[(".osrel", 1), (".linux", 5)]);
        assert_eq!(placed[0].1, 0x1_0001_0000);
        assert_eq!(placed[1].1, 0x1_0002_0000);
    }

    #[test]
    fn the_command_line_is_padded_to_its_room_and_too_long_ones_refused() {
        let padded = padded_cmdline("console=ttyS0").expect("fits");
        assert_eq!(padded.len(), CMDLINE_BYTES);
        assert!(padded.starts_with(b"console=ttyS0 "));
        assert!(padded[13..].iter().all(|b| *b == b' '));
        assert!(padded_cmdline(&"x".repeat(CMDLINE_BYTES + 1)).is_err());
    }

    #[test]
    fn the_end_of_a_pe_image_is_read_from_its_section_table() {
        // The test image of `crate::pe`: sections end at 0x30000 + gap + 6 (`.linux`).
        let mut image = crate::pe::uki(b"x", 1024, 0x4000);
        // Its optional header is zeros: make it PE32+ with a base and an alignment.
        let optional = 0x80 + 24;
        image[optional..optional + 2].copy_from_slice(&0x20bu16.to_le_bytes());
        image[optional + 24..optional + 32].copy_from_slice(&0x4000_0000u64.to_le_bytes());
        image[optional + 32..optional + 36].copy_from_slice(&0x200u32.to_le_bytes());
        let end = pe_end(&image).expect("a PE image");
        assert_eq!(
            end,
            PeEnd {
                image_base: 0x4000_0000,
                end: 0x34006,
                section_alignment: 0x200
            }
        );
        assert!(pe_end(b"MZ not a PE image").is_err());
    }

    /// Builds a real UKI from Debian's systemd-stub (when installed) and checks what the boot
    /// server relies on: the padded `.cmdline`, and sections that do not overlap.
    #[test]
    fn a_uki_built_from_the_real_stub_has_the_padded_command_line() {
        if !Path::new(STUB).is_file() {
            eprintln!("skipped: {STUB} is not installed (Debian's systemd-boot-efi)");
            return;
        }
        let dir = tempfile_dir();
        let kernel = dir.join("vmlinuz");
        let initramfs = dir.join("initramfs");
        write(&kernel, &vec![0x4b; 5000]).expect("kernel");
        write(&initramfs, &vec![0x49; 7000]).expect("initramfs");
        let inputs = UkiInputs {
            stub: Path::new(STUB),
            kernel: &kernel,
            initramfs: &initramfs,
            os_release: "ID=test\n",
        };
        let uki = build(&inputs, &dir).expect("objcopy builds the UKI");
        let image = read(&uki).expect("uki");
        let cmdline = crate::pe::command_line(&image).expect(".cmdline");
        assert_eq!(cmdline.len(), CMDLINE_BYTES);
        assert_eq!(cmdline.trim_end(), CMDLINE);
        let end = pe_end(&image).expect("PE");
        let stub_end = pe_end(&read(Path::new(STUB)).expect("stub")).expect("stub PE");
        assert!(end.end >= stub_end.end + 5000 + 7000 + CMDLINE_BYTES as u64);
        let modified = std::fs::metadata(&uki).and_then(|m| m.modified()).ok();
        build(&inputs, &dir).expect("cached");
        assert_eq!(
            std::fs::metadata(&uki).and_then(|m| m.modified()).ok(),
            modified,
            "the same inputs reuse the built UKI"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ferrometal-uki-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }
}
