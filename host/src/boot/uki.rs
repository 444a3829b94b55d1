//! Unified kernel images personalised per machine, for firmware that boots them straight
//! over UEFI HTTP.
//!
//! A UKI is a PE executable (systemd-stub) whose `.linux`, `.initrd` and `.cmdline`
//! sections carry the kernel, the initramfs and the kernel command line. Firmware that
//! boots one over HTTP passes it no arguments, so the only way to tell a machine where its
//! ignition is — with its single-use fetch ticket — is the image's own `.cmdline`. The boot
//! server therefore serves each machine the image layer with its `.cmdline` rewritten in
//! place: the image's command line, then the ignition arguments. Nothing moves: the new
//! text must fit in the room the section already has on disk (its raw size) and in memory
//! (up to the next section), and only the section's bytes and its `VirtualSize` change, so
//! the download is the layer streamed from the layer cache with two small patches.
//!
//! Images built for this leave room by padding `.cmdline` with spaces (`cargo xtask
//! discovery-image` pads to 1024 bytes). A signed UKI loses its signature when patched;
//! under Secure Boot, boot such images through iPXE instead (`/ipxe/<uuid>` passes the
//! arguments on the `chain` line).

use std::io::SeekFrom;

use axum::body::Body;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// How much of a UKI's beginning is read to find its section table.
pub const HEAD_BYTES: usize = 64 * 1024;

/// The section holding the kernel command line.
const CMDLINE: &[u8; 8] = b".cmdline";

/// Bytes of one entry of the PE section table.
const SECTION_HEADER_BYTES: usize = 40;

/// Why a UKI cannot be personalised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UkiError {
    /// Not a PE executable, or its headers are cut short or inconsistent.
    #[error("not a PE image: {0}")]
    NotPe(&'static str),
    /// The image has no `.cmdline` section to rewrite.
    #[error("the UKI has no .cmdline section to carry the ignition arguments")]
    NoCommandLine,
    /// The new command line does not fit in the section.
    #[error(
        "the UKI's .cmdline has room for {room} bytes but needs {needed} (build the UKI with its command line padded, e.g. to 1024 bytes)"
    )]
    NoRoom {
        /// Bytes the personalised command line needs.
        needed: usize,
        /// Bytes the section can hold.
        room: usize,
    },
}

/// One entry of the PE section table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The name (8 bytes, NUL-padded).
    pub name: [u8; 8],
    /// Where its table entry starts in the file.
    pub header_offset: u64,
    /// Its size in memory.
    pub virtual_size: u32,
    /// Its address in memory, relative to the image base.
    pub virtual_address: u32,
    /// Its size in the file.
    pub raw_size: u32,
    /// Where its bytes start in the file.
    pub raw_offset: u32,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The section table of the PE image that `head` begins.
pub fn sections(head: &[u8]) -> Result<Vec<Section>, UkiError> {
    if head.get(..2) != Some(b"MZ") {
        return Err(UkiError::NotPe("no MZ header"));
    }
    let pe = u32_at(head, 0x3c).ok_or(UkiError::NotPe("no PE header offset"))? as usize;
    if head.get(pe..pe + 4) != Some(b"PE\0\0") {
        return Err(UkiError::NotPe("no PE signature"));
    }
    let coff = pe + 4;
    let count = u16_at(head, coff + 2).ok_or(UkiError::NotPe("COFF header cut short"))?;
    let optional = u16_at(head, coff + 16).ok_or(UkiError::NotPe("COFF header cut short"))?;
    let table = coff + 20 + usize::from(optional);
    (0..usize::from(count))
        .map(|index| {
            let at = table + index * SECTION_HEADER_BYTES;
            let entry = head
                .get(at..at + SECTION_HEADER_BYTES)
                .ok_or(UkiError::NotPe("section table cut short"))?;
            let field = |offset| u32_at(entry, offset).unwrap_or_default();
            let mut name = [0; 8];
            name.copy_from_slice(&entry[..8]);
            Ok(Section {
                name,
                header_offset: at as u64,
                virtual_size: field(8),
                virtual_address: field(12),
                raw_size: field(16),
                raw_offset: field(20),
            })
        })
        .collect()
}

/// The `.cmdline` section of `sections`.
pub fn command_line_section(sections: &[Section]) -> Result<&Section, UkiError> {
    sections
        .iter()
        .find(|section| &section.name == CMDLINE)
        .ok_or(UkiError::NoCommandLine)
}

/// Bytes to write over a file at an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// Where in the file.
    pub offset: u64,
    /// What to write there.
    pub bytes: Bytes,
}

/// The patches that append `args` to the command line of `section` (one of `sections`),
/// whose current bytes in the file are `current`: the section's bytes (the trimmed command
/// line, a space, `args`, then zeros over the rest of what it held) and its new
/// `VirtualSize`.
pub fn append_arguments(
    sections: &[Section],
    section: &Section,
    current: &[u8],
    args: &str,
) -> Result<Vec<Patch>, UkiError> {
    let held = current.len().min(section.virtual_size as usize);
    let base = current[..held]
        .iter()
        .rposition(|b| !matches!(b, 0 | b' ' | b'\n' | b'\r' | b'\t'))
        .map_or(&[][..], |last| &current[..=last]);
    let mut text = base.to_vec();
    if !text.is_empty() {
        text.push(b' ');
    }
    text.extend_from_slice(args.trim().as_bytes());
    // In memory the section may grow up to the next section (the loader maps sections at
    // their addresses); in the file, up to its raw size.
    let next = sections
        .iter()
        .map(|other| other.virtual_address)
        .filter(|&address| address > section.virtual_address)
        .min()
        .map_or(u32::MAX, |address| address - section.virtual_address);
    let room = section.raw_size.min(next) as usize;
    if text.len() > room {
        return Err(UkiError::NoRoom {
            needed: text.len(),
            room,
        });
    }
    let length = u32::try_from(text.len()).map_err(|_| UkiError::NotPe("huge command line"))?;
    text.resize(text.len().max(held), 0);
    let mut patches = vec![
        Patch {
            offset: section.header_offset + 8,
            bytes: Bytes::copy_from_slice(&length.to_le_bytes()),
        },
        Patch {
            offset: u64::from(section.raw_offset),
            bytes: Bytes::from(text),
        },
    ];
    patches.sort_by_key(|patch| patch.offset);
    if patches[0].offset + patches[0].bytes.len() as u64 > patches[1].offset {
        return Err(UkiError::NotPe(".cmdline overlaps the section table"));
    }
    Ok(patches)
}

/// Reads what [`append_arguments`] needs from the UKI `file` and returns its patches.
pub async fn personalise(
    file: &mut tokio::fs::File,
    length: u64,
    args: &str,
) -> Result<Result<Vec<Patch>, UkiError>, std::io::Error> {
    let mut head = vec![0; HEAD_BYTES.min(usize::try_from(length).unwrap_or(HEAD_BYTES))];
    file.seek(SeekFrom::Start(0)).await?;
    file.read_exact(&mut head).await?;
    let sections = match sections(&head) {
        Ok(sections) => sections,
        Err(error) => return Ok(Err(error)),
    };
    let section = match command_line_section(&sections) {
        Ok(section) => section,
        Err(error) => return Ok(Err(error)),
    };
    let start = u64::from(section.raw_offset);
    if start + u64::from(section.raw_size) > length {
        return Ok(Err(UkiError::NotPe(
            ".cmdline lies past the end of the file",
        )));
    }
    let mut current = vec![0; section.raw_size.min(section.virtual_size) as usize];
    file.seek(SeekFrom::Start(start)).await?;
    file.read_exact(&mut current).await?;
    Ok(append_arguments(&sections, section, &current, args))
}

/// `file` (`length` bytes) as a response body with `patches` (sorted, not overlapping,
/// inside the file) written over it, read in chunks as the client takes them.
pub fn patched_body(file: tokio::fs::File, length: u64, patches: Vec<Patch>) -> Body {
    const CHUNK: u64 = 64 * 1024;
    // `None` until the file is positioned at its start (it may have been read elsewhere).
    let state = (file, None, patches.into_iter().peekable(), false);
    let stream = futures::stream::unfold(
        state,
        move |(mut file, at, mut patches, failed)| async move {
            let at = match at {
                Some(at) => at,
                None => match file.seek(SeekFrom::Start(0)).await {
                    Ok(_) => 0,
                    Err(error) => return Some((Err(error), (file, Some(0), patches, true))),
                },
            };
            if failed || at >= length {
                return None;
            }
            if let Some(patch) = patches.next_if(|patch| patch.offset == at) {
                let next = at + patch.bytes.len() as u64;
                let item = match file.seek(SeekFrom::Start(next)).await {
                    Ok(_) => Ok(patch.bytes),
                    Err(error) => Err(error),
                };
                let failed = item.is_err();
                return Some((item, (file, Some(next), patches, failed)));
            }
            let until = patches
                .peek()
                .map_or(length, |patch| patch.offset.min(length));
            let mut chunk = vec![0; (until - at).min(CHUNK) as usize];
            match file.read_exact(&mut chunk).await {
                Ok(_) => {
                    let next = at + chunk.len() as u64;
                    Some((Ok(Bytes::from(chunk)), (file, Some(next), patches, false)))
                }
                Err(error) => Some((Err(error), (file, Some(at), patches, true))),
            }
        },
    );
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use testenv::pe::{CMDLINE_OFFSET, SECTION_TABLE_OFFSET, command_line, uki};

    use super::*;

    fn apply(file: &[u8], patches: &[Patch]) -> Vec<u8> {
        let mut out = file.to_vec();
        for patch in patches {
            let at = patch.offset as usize;
            out[at..at + patch.bytes.len()].copy_from_slice(&patch.bytes);
        }
        out
    }

    /// The patches that append `args` to the command line of `file`.
    fn append(file: &[u8], args: &str) -> Result<Vec<Patch>, UkiError> {
        let sections = sections(file)?;
        let section = command_line_section(&sections)?;
        let start = section.raw_offset as usize;
        let current = &file[start..start + section.raw_size as usize];
        append_arguments(&sections, section, current, args)
    }

    #[test]
    fn the_arguments_follow_the_images_own_command_line_and_nothing_else_moves() {
        let mut padded = b"console=ttyS0,115200".to_vec();
        padded.resize(1024, b' ');
        let file = uki(&padded, 1024, 0x1000);
        let patches = append(&file, "ignition.config.url=http://x/i?ticket=t").expect("fits");
        let patched = apply(&file, &patches);
        assert_eq!(
            command_line(&patched).as_deref(),
            Some("console=ttyS0,115200 ignition.config.url=http://x/i?ticket=t")
        );
        assert_eq!(patched.len(), file.len());
        let (before, after) = (
            sections(&file).expect("before"),
            sections(&patched).expect("after"),
        );
        assert_eq!(after[0], before[0], ".osrel untouched");
        assert_eq!(after[2], before[2], ".linux untouched");
        assert_eq!(
            &patched[CMDLINE_OFFSET + 1024..CMDLINE_OFFSET + 1030],
            b"KERNEL"
        );
        assert!(
            patched[CMDLINE_OFFSET + 62..CMDLINE_OFFSET + 1024]
                .iter()
                .all(|b| *b == 0),
            "what the padding held is cleared"
        );
    }

    #[test]
    fn a_command_line_without_room_is_refused_with_what_it_needs() {
        let file = uki(b"console=ttyS0", 0x200, 0x1000);
        assert_eq!(
            append(&file, &"x".repeat(600)),
            Err(UkiError::NoRoom {
                needed: 14 + 600,
                room: 0x200
            })
        );
    }

    #[test]
    fn the_next_sections_address_bounds_the_room_in_memory() {
        let file = uki(b"a", 0x400, 0x10);
        assert_eq!(
            append(&file, "0123456789abcdef"),
            Err(UkiError::NoRoom {
                needed: 18,
                room: 0x10
            })
        );
    }

    #[test]
    fn an_empty_command_line_gets_just_the_arguments() {
        let file = uki(b"", 0x200, 0x1000);
        let patches = append(&file, " a=b ").expect("fits");
        assert_eq!(
            command_line(&apply(&file, &patches)).as_deref(),
            Some("a=b")
        );
    }

    #[test]
    fn files_that_are_not_ukis_are_refused() {
        assert_eq!(sections(b"ELF"), Err(UkiError::NotPe("no MZ header")));
        let mut file = uki(b"x", 0x200, 0x1000);
        file[0x80] = b'X';
        assert_eq!(sections(&file), Err(UkiError::NotPe("no PE signature")));
        let file = uki(b"x", 0x200, 0x1000);
        assert_eq!(
            sections(&file[..SECTION_TABLE_OFFSET + 50]),
            Err(UkiError::NotPe("section table cut short"))
        );
        let mut file = uki(b"x", 0x200, 0x1000);
        let second = SECTION_TABLE_OFFSET + SECTION_HEADER_BYTES;
        file[second..second + 8].copy_from_slice(b".text\0\0\0");
        assert_eq!(append(&file, "a"), Err(UkiError::NoCommandLine));
    }

    #[tokio::test]
    async fn the_served_bytes_are_the_file_with_the_patches_written_over_it() {
        let mut padded = b"quiet".to_vec();
        padded.resize(0x300, b' ');
        let mut file = uki(&padded, 0x300, 0x1000);
        // Longer than one chunk, so the stream reads in several pieces.
        file.extend((0..200_000u32).map(|i| (i % 251) as u8));
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("uki.efi");
        std::fs::write(&path, &file).expect("write");
        let mut opened = tokio::fs::File::open(&path).await.expect("open");
        let patches = personalise(&mut opened, file.len() as u64, "ignition.config.url=u")
            .await
            .expect("read")
            .expect("fits");
        let body = patched_body(opened, file.len() as u64, patches.clone());
        let served = axum::body::to_bytes(body, usize::MAX).await.expect("body");
        let expected = apply(&file, &patches);
        assert_eq!(served.len(), expected.len());
        let first_difference = served.iter().zip(&expected).position(|(a, b)| a != b);
        assert_eq!(
            first_difference, None,
            "the served bytes differ from the patched file"
        );
        assert_eq!(
            command_line(&served).as_deref(),
            Some("quiet ignition.config.url=u")
        );
    }
}
