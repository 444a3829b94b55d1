//! Vendor quirks, keyed by the system's manufacturer and model (prefix match,
//! case-insensitive) and the manager's firmware version.

/// Behaviour that differs from the Redfish specification or from other vendors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quirk {
    /// Never send `BootSourceOverrideMode` (not writable, or changing it triggers a
    /// lifecycle job): only target and enabled are patched.
    OmitBootMode,
    /// `BootSourceOverrideEnabled` always reads back `Continuous`, whatever was set: a
    /// `Once` request that reads back `Continuous` is expected, not a surprise.
    ContinuousReadBack,
    /// `UefiHttp` with `HttpBootUri` is rejected; send `UefiHttp` alone (the BMC then uses
    /// its configured URI, or falls back to PXE).
    NoHttpBootUri,
    /// Clearing with `BootSourceOverrideEnabled: Disabled` is rejected while the target is
    /// `None`: clear with target `Pxe` instead (ignored once the override is disabled).
    ClearWithPxeTarget,
    /// Accounts live in fixed slots (`Accounts/1` … `Accounts/16`, slot 1 reserved): a new
    /// account is an empty slot PATCHed with `UserName`, `Password`, `RoleId` and `Enabled`;
    /// a POST to the collection is refused.
    AccountSlots,
    /// A new account also carries `Oem.Hpe.LoginName` (the name iLO shows), set to its
    /// user name.
    HpeLoginName,
    /// `MemorySummary.TotalSystemMemoryGiB` is not to be trusted (decimal GB on some
    /// firmware): the memory total comes from the modules' `CapacityMiB` only.
    UnreliableMemorySummary,
    /// Drives behind a Smart Array controller appear only in the OEM `SmartStorage` tree
    /// (`Oem.Hpe.Links.SmartStorage`), not in DMTF `Storage`: read it when `Storage` and
    /// `SimpleStorage` list no drive.
    HpeSmartStorage,
    /// An inventory resource the BMC has no data for answers `500` instead of `404`: read it
    /// as missing (a `500` elsewhere is still a fault).
    InventoryServerErrors,
}

/// Which manager firmware versions a row applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// Every version, and an unknown one.
    Any,
    /// `FirmwareVersion` starts with this (case-insensitive), e.g. `iLO 5`.
    Prefix(&'static str),
}

impl Firmware {
    /// Whether `version` (the manager's `FirmwareVersion`) is covered. A row with a firmware
    /// condition never applies to an unknown version.
    fn matches(self, version: Option<&str>) -> bool {
        match (self, version) {
            (Self::Any, _) => true,
            (_, None) => false,
            (Self::Prefix(prefix), Some(version)) => version
                .to_ascii_lowercase()
                .starts_with(&prefix.to_ascii_lowercase()),
        }
    }
}

/// One row of the table.
struct Row {
    manufacturer: &'static str,
    model: &'static str,
    firmware: Firmware,
    quirks: &'static [Quirk],
}

/// The table. Every row names its evidence.
const TABLE: &[Row] = &[
    // sushy-emulator's fake driver ignores `BootSourceOverrideEnabled` and reads back
    // `Continuous`; `UefiHttp` with a URI makes it download the URI and answer 400
    // (checked against sushy-tools 2.2.0, see host/tests/redfish_plugin.rs). Its `Storage`
    // answers 500 "Error finding storage collection by UUID" when no storage is configured
    // (sushy-tools 2.2.0, host/tests/redfish_plugin.rs `get_system_reads_one_system…`).
    Row {
        manufacturer: "Sushy Emulator",
        model: "",
        firmware: Firmware::Any,
        quirks: &[
            Quirk::ContinuousReadBack,
            Quirk::NoHttpBootUri,
            Quirk::InventoryServerErrors,
        ],
    },
    // HPE iLO rejects `Enabled: Disabled` with target `None` (metal-operator PR #998 clears
    // with `Pxe` in its HPE driver). iLO accounts are created with `Oem.Hpe.LoginName`
    // beside `UserName` (HPE's python-ilorest-library example `add_ilo_user_account.py`).
    // iLO 4/5 list Smart Array drives only under `Oem.Hpe.Links.SmartStorage`
    // (SNIA Swordfish-Powershell-Toolkit #19; idrac_exporter #136).
    Row {
        manufacturer: "HPE",
        model: "",
        firmware: Firmware::Any,
        quirks: &[
            Quirk::ClearWithPxeTarget,
            Quirk::HpeLoginName,
            Quirk::HpeSmartStorage,
        ],
    },
    // iLO 5 answers 400 `iLO.2.30.UnsupportedOperation` when the PATCH writes
    // `BootSourceOverrideMode` (metal-operator #606; community.general #3509).
    Row {
        manufacturer: "HPE",
        model: "",
        firmware: Firmware::Prefix("iLO 5"),
        quirks: &[Quirk::OmitBootMode],
    },
    // Setting the mode on iDRAC starts a Lifecycle Controller job (metal-operator #80, #81,
    // PR #107). iDRAC has 16 fixed account slots and answers 405 to a POST on its Accounts
    // collection; users are added by PATCHing an empty slot (Dell's iDRAC Redfish API guide;
    // community.general's redfish_utils `add_user_via_patch` does the same after a 405).
    // iDRAC 9 before 4.20 reports `TotalSystemMemoryGiB` in decimal GB (a 192 GB server as
    // 206; bb-Ricardo/check_redfish #48), so only the modules' capacities count.
    Row {
        manufacturer: "Dell",
        model: "",
        firmware: Firmware::Any,
        quirks: &[
            Quirk::OmitBootMode,
            Quirk::AccountSlots,
            Quirk::UnreliableMemorySummary,
        ],
    },
];

/// Whether any row for this system depends on the firmware version (so the manager must
/// be read before choosing quirks).
pub fn needs_firmware(manufacturer: Option<&str>, model: Option<&str>) -> bool {
    rows(manufacturer, model).any(|row| row.firmware != Firmware::Any)
}

fn rows<'a>(manufacturer: Option<&str>, model: Option<&str>) -> impl Iterator<Item = &'a Row> {
    let manufacturer = manufacturer.unwrap_or_default().to_ascii_lowercase();
    let model = model.unwrap_or_default().to_ascii_lowercase();
    TABLE.iter().filter(move |row| {
        manufacturer.starts_with(&row.manufacturer.to_ascii_lowercase())
            && model.starts_with(&row.model.to_ascii_lowercase())
    })
}

/// The quirks of a system by its `manufacturer` and `model` and its manager's `firmware`.
pub fn quirks_for(
    manufacturer: Option<&str>,
    model: Option<&str>,
    firmware: Option<&str>,
) -> Vec<Quirk> {
    let mut quirks: Vec<Quirk> = Vec::new();
    for quirk in rows(manufacturer, model)
        .filter(|row| row.firmware.matches(firmware))
        .flat_map(|row| row.quirks.iter().copied())
    {
        if !quirks.contains(&quirk) {
            quirks.push(quirk);
        }
    }
    quirks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quirks_match_by_manufacturer_prefix_case_insensitively() {
        assert_eq!(
            quirks_for(
                Some("Dell Inc."),
                Some("PowerEdge R750"),
                Some("7.00.00.00")
            ),
            [
                Quirk::OmitBootMode,
                Quirk::AccountSlots,
                Quirk::UnreliableMemorySummary
            ]
        );
        assert_eq!(
            quirks_for(Some("hpe"), None, None),
            [
                Quirk::ClearWithPxeTarget,
                Quirk::HpeLoginName,
                Quirk::HpeSmartStorage
            ]
        );
        assert!(quirks_for(Some("Lenovo"), Some("ThinkSystem SR650"), None).is_empty());
        assert!(quirks_for(Some("Contoso"), None, None).is_empty());
        assert!(quirks_for(None, None, None).is_empty());
    }

    #[test]
    fn firmware_conditions_select_rows_by_the_managers_version() {
        assert_eq!(
            quirks_for(
                Some("HPE"),
                Some("ProLiant DL380 Gen10"),
                Some("iLO 5 v2.72")
            ),
            [
                Quirk::ClearWithPxeTarget,
                Quirk::HpeLoginName,
                Quirk::HpeSmartStorage,
                Quirk::OmitBootMode
            ]
        );
        assert_eq!(
            quirks_for(
                Some("HPE"),
                Some("ProLiant DL380a Gen11"),
                Some("iLO 6 v1.58")
            ),
            [
                Quirk::ClearWithPxeTarget,
                Quirk::HpeLoginName,
                Quirk::HpeSmartStorage
            ]
        );
        assert!(needs_firmware(Some("HPE"), None));
        assert!(!needs_firmware(Some("Dell Inc."), None));
    }

    #[test]
    fn firmware_matches_by_prefix_and_never_an_unknown_version() {
        assert!(Firmware::Any.matches(None));
        assert!(!Firmware::Prefix("iLO 5").matches(None));
        assert!(Firmware::Prefix("ilo 5").matches(Some("iLO 5 v2.72")));
        assert!(!Firmware::Prefix("iLO 5").matches(Some("iLO 6 v1.58")));
    }
}
