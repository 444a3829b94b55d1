//! System UUIDs as machines, BMCs and users spell them.
//!
//! Redfish reports a system's UUID in RFC 4122 text form, iPXE expands `${uuid}` from SMBIOS,
//! and users type either case. Everything is compared in one canonical form: lowercase,
//! hyphenated `8-4-4-4-12`.
//!
//! SMBIOS stores the first three fields little-endian since version 2.6, and firmware of
//! older or careless vendors stores them big-endian. Both iPXE and Redfish are meant to print
//! the RFC 4122 order, but a machine whose firmware disagrees with its BMC asks for the UUID
//! with those three fields byte-swapped; [`SystemUuid::smbios_swapped`] gives that spelling so
//! the boot server can match it as a second choice.

use std::fmt;

/// A system UUID in canonical form (lowercase, hyphenated).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SystemUuid(String);

impl SystemUuid {
    /// Parses `8-4-4-4-12` hex (any case), the same without hyphens, or either in braces.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text
            .strip_prefix('{')
            .and_then(|inner| inner.strip_suffix('}'))
            .unwrap_or(text);
        let hex: String = match text.len() {
            36 => {
                let bytes = text.as_bytes();
                if [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
                    return None;
                }
                text.chars().filter(|c| *c != '-').collect()
            }
            32 => text.to_owned(),
            _ => return None,
        };
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let hex = hex.to_ascii_lowercase();
        Some(Self(format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )))
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same UUID with its first three fields byte-swapped (the other SMBIOS byte order).
    pub fn smbios_swapped(&self) -> Self {
        let fields: Vec<&str> = self.0.split('-').collect();
        let swap = |field: &str| -> String {
            let pairs: Vec<&str> = (0..field.len())
                .step_by(2)
                .map(|i| &field[i..i + 2])
                .collect();
            pairs.into_iter().rev().collect()
        };
        Self(format!(
            "{}-{}-{}-{}-{}",
            swap(fields[0]),
            swap(fields[1]),
            swap(fields[2]),
            fields[3],
            fields[4]
        ))
    }
}

impl fmt::Display for SystemUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_one_uuid_has_one_canonical_form() {
        let canonical = "4c4c4544-0042-4d10-8056-b4c04f4a5a31";
        for spelling in [
            canonical,
            "4C4C4544-0042-4D10-8056-B4C04F4A5A31",
            "4c4c454400424d108056b4c04f4a5a31",
            "{4C4C4544-0042-4D10-8056-B4C04F4A5A31}",
            " 4c4c4544-0042-4d10-8056-b4c04f4a5a31\n",
        ] {
            assert_eq!(
                SystemUuid::parse(spelling).map(|u| u.0),
                Some(canonical.to_owned()),
                "{spelling:?}"
            );
        }
    }

    #[test]
    fn anything_else_is_not_a_uuid() {
        for bad in [
            "",
            "system-0",
            "4c4c4544-0042-4d10-8056-b4c04f4a5a3",
            "4c4c4544-0042-4d10-8056-b4c04f4a5a3g",
            "4c4c45440-042-4d10-8056-b4c04f4a5a31",
            "../../etc/passwd/aaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(SystemUuid::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_swapped_smbios_order_reverses_the_first_three_fields() {
        let uuid = SystemUuid::parse("00112233-4455-6677-8899-aabbccddeeff").expect("uuid");
        assert_eq!(
            uuid.smbios_swapped().as_str(),
            "33221100-5544-7766-8899-aabbccddeeff"
        );
        assert_eq!(uuid.smbios_swapped().smbios_swapped(), uuid);
    }
}
