//! Vendor quirks, keyed by manufacturer and model (prefix match, case-insensitive).

/// Behaviour that differs from the Redfish specification or from other vendors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quirk {
    /// Never send `BootSourceOverrideMode` (unsupported, or changing it triggers a
    /// lifecycle job): only target and enabled are patched.
    OmitBootMode,
    /// `BootSourceOverrideEnabled` always reads back `Continuous`, whatever was set.
    ContinuousReadBack,
    /// `UefiHttp` with `HttpBootUri` is rejected; send `UefiHttp` alone (the BMC then uses
    /// its configured URI, or falls back to PXE).
    NoHttpBootUri,
    /// Clearing the override needs `BootSourceOverrideEnabled: Disabled` (not just target `None`).
    NoneMeansDisabled,
}

/// One row of the table.
struct Row {
    manufacturer: &'static str,
    model: &'static str,
    quirks: &'static [Quirk],
}

const TABLE: &[Row] = &[
    Row {
        manufacturer: "Sushy Emulator",
        model: "",
        quirks: &[Quirk::ContinuousReadBack, Quirk::NoHttpBootUri],
    },
    Row {
        manufacturer: "HPE",
        model: "",
        quirks: &[Quirk::NoneMeansDisabled],
    },
    Row {
        manufacturer: "Dell",
        model: "",
        quirks: &[Quirk::OmitBootMode],
    },
    Row {
        manufacturer: "Lenovo",
        model: "",
        quirks: &[Quirk::NoneMeansDisabled],
    },
];

/// The quirks of a system by `manufacturer` and `model`.
pub fn quirks_for(manufacturer: Option<&str>, model: Option<&str>) -> Vec<Quirk> {
    let manufacturer = manufacturer.unwrap_or_default().to_ascii_lowercase();
    let model = model.unwrap_or_default().to_ascii_lowercase();
    TABLE
        .iter()
        .filter(|row| {
            manufacturer.starts_with(&row.manufacturer.to_ascii_lowercase())
                && model.starts_with(&row.model.to_ascii_lowercase())
        })
        .flat_map(|row| row.quirks.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quirks_match_by_manufacturer_prefix_case_insensitively() {
        assert_eq!(
            quirks_for(Some("Dell Inc."), Some("PowerEdge R750")),
            [Quirk::OmitBootMode]
        );
        assert_eq!(quirks_for(Some("hpe"), None), [Quirk::NoneMeansDisabled]);
        assert!(quirks_for(Some("Contoso"), None).is_empty());
        assert!(quirks_for(None, None).is_empty());
    }
}
