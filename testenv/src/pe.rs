//! Minimal PE images shaped like unified kernel images (UKIs), for tests of code that reads
//! or rewrites a UKI's sections without booting it: DOS and PE headers, then `.osrel`,
//! `.cmdline` and `.linux` sections with their bytes.

/// Bytes of one entry of the PE section table.
const SECTION_HEADER_BYTES: usize = 40;

/// Where the `.cmdline` section's bytes start in a [`uki`] image.
pub const CMDLINE_OFFSET: usize = 0x600;

/// Where the COFF header starts in a [`uki`] image.
const COFF: usize = 0x84;

/// Bytes of the optional header in a [`uki`] image.
const OPTIONAL_HEADER_BYTES: usize = 0xf0;

/// Where the section table starts in a [`uki`] image.
pub const SECTION_TABLE_OFFSET: usize = COFF + 20 + OPTIONAL_HEADER_BYTES;

/// A PE image with `.osrel` (`ID=x`), `.cmdline` (`cmdline`, in `cmdline_room` bytes of the
/// file) and `.linux` (`KERNEL`, mapped `linux_gap` bytes after the command line's address).
pub fn uki(cmdline: &[u8], cmdline_room: u32, linux_gap: u32) -> Vec<u8> {
    let room = cmdline_room as usize;
    let mut file = vec![0u8; CMDLINE_OFFSET + room + 0x200];
    file[..2].copy_from_slice(b"MZ");
    file[0x3c..0x40].copy_from_slice(&(0x80u32).to_le_bytes());
    file[0x80..0x84].copy_from_slice(b"PE\0\0");
    file[COFF + 2..COFF + 4].copy_from_slice(&3u16.to_le_bytes());
    file[COFF + 16..COFF + 18].copy_from_slice(&(OPTIONAL_HEADER_BYTES as u16).to_le_bytes());
    // (name, bytes, virtual address, raw size, file offset)
    type SectionLayout<'a> = (&'a [u8], &'a [u8], u32, u32, usize);
    let sections: [SectionLayout<'_>; 3] = [
        (b".osrel", b"ID=x", 0x20000, 0x200, 0x400),
        (b".cmdline", cmdline, 0x30000, cmdline_room, CMDLINE_OFFSET),
        (
            b".linux",
            b"KERNEL",
            0x30000 + linux_gap,
            0x200,
            CMDLINE_OFFSET + room,
        ),
    ];
    for (index, (name, bytes, address, raw_size, offset)) in sections.into_iter().enumerate() {
        let at = SECTION_TABLE_OFFSET + index * SECTION_HEADER_BYTES;
        file[at..at + name.len()].copy_from_slice(name);
        let size = u32::try_from(bytes.len()).expect("small section");
        let offset32 = u32::try_from(offset).expect("small image");
        for (field, value) in [(8, size), (12, address), (16, raw_size), (20, offset32)] {
            file[at + field..at + field + 4].copy_from_slice(&value.to_le_bytes());
        }
        file[offset..offset + bytes.len()].copy_from_slice(bytes);
    }
    file
}

/// The command line of a UKI (its `.cmdline` section, `VirtualSize` bytes), found through
/// its section table; `None` when there is none.
pub fn command_line(image: &[u8]) -> Option<String> {
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(image.get(at..at + 4)?.try_into().ok()?))
    };
    let pe = u32_at(0x3c)? as usize;
    let count = u16::from_le_bytes(image.get(pe + 6..pe + 8)?.try_into().ok()?);
    let optional = u16::from_le_bytes(image.get(pe + 20..pe + 22)?.try_into().ok()?);
    let table = pe + 24 + usize::from(optional);
    (0..usize::from(count)).find_map(|index| {
        let at = table + index * SECTION_HEADER_BYTES;
        if image.get(at..at + 8)? != b".cmdline" {
            return None;
        }
        let size = u32_at(at + 8)? as usize;
        let offset = u32_at(at + 20)? as usize;
        Some(String::from_utf8_lossy(image.get(offset..offset + size)?).into_owned())
    })
}
