//! The parts of the Redfish schema the driver reads.

use serde::Deserialize;

/// A `{"@odata.id": …}` link.
#[derive(Debug, Clone, Deserialize)]
pub struct Link {
    /// The target's path.
    #[serde(rename = "@odata.id")]
    pub id: String,
}

/// A resource collection.
#[derive(Debug, Clone, Deserialize)]
pub struct Collection {
    /// Members.
    #[serde(rename = "Members", default)]
    pub members: Vec<Link>,
}

/// `/redfish/v1`.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceRoot {
    /// Systems collection.
    #[serde(rename = "Systems")]
    pub systems: Option<Link>,
    /// Managers collection.
    #[serde(rename = "Managers")]
    pub managers: Option<Link>,
    /// Session service, if the BMC has one.
    #[serde(rename = "SessionService")]
    pub session_service: Option<Link>,
    /// `Links.Sessions`, where sessions are created.
    #[serde(rename = "Links", default)]
    pub links: RootLinks,
    /// `ProtocolFeaturesSupported` as JSON (`null` when absent), read leniently by
    /// [`crate::expand::Expand::advertised`] so that an odd value never fails a call.
    #[serde(rename = "ProtocolFeaturesSupported", default)]
    pub protocol_features: serde_json::Value,
}

/// `ServiceRoot.Links`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RootLinks {
    /// Sessions collection.
    #[serde(rename = "Sessions")]
    pub sessions: Option<Link>,
}

/// A manager (the BMC itself).
#[derive(Debug, Clone, Deserialize)]
pub struct Manager {
    /// Manager UUID.
    #[serde(rename = "UUID")]
    pub uuid: Option<String>,
    /// Firmware version.
    #[serde(rename = "FirmwareVersion")]
    pub firmware_version: Option<String>,
    /// Manufacturer.
    #[serde(rename = "Manufacturer")]
    pub manufacturer: Option<String>,
    /// Model.
    #[serde(rename = "Model")]
    pub model: Option<String>,
    /// Serial number.
    #[serde(rename = "SerialNumber")]
    pub serial_number: Option<String>,
}

/// A computer system.
#[derive(Debug, Clone, Deserialize)]
pub struct ComputerSystem {
    /// SMBIOS UUID.
    #[serde(rename = "UUID")]
    pub uuid: Option<String>,
    /// Manufacturer.
    #[serde(rename = "Manufacturer")]
    pub manufacturer: Option<String>,
    /// Model.
    #[serde(rename = "Model")]
    pub model: Option<String>,
    /// Serial number.
    #[serde(rename = "SerialNumber")]
    pub serial_number: Option<String>,
    /// Power state.
    #[serde(rename = "PowerState")]
    pub power_state: Option<String>,
    /// Boot settings.
    #[serde(rename = "Boot")]
    pub boot: Option<Boot>,
    /// NICs.
    #[serde(rename = "EthernetInterfaces")]
    pub ethernet_interfaces: Option<Link>,
    /// Actions.
    #[serde(rename = "Actions", default)]
    pub actions: Actions,
    /// Related resources.
    #[serde(rename = "Links", default)]
    pub links: SystemLinks,
}

/// `ComputerSystem.Links`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SystemLinks {
    /// The managers (BMCs) of the system; the first one's firmware keys the quirks.
    #[serde(rename = "ManagedBy", default)]
    pub managed_by: Vec<Link>,
}

/// `ComputerSystem.Boot`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Boot {
    /// Override target.
    #[serde(rename = "BootSourceOverrideTarget")]
    pub target: Option<String>,
    /// `Once`, `Continuous` or `Disabled`.
    #[serde(rename = "BootSourceOverrideEnabled")]
    pub enabled: Option<String>,
    /// `UEFI` or `Legacy`; absent on some BMCs.
    #[serde(rename = "BootSourceOverrideMode")]
    pub mode: Option<String>,
    /// UEFI HTTP boot URI.
    #[serde(rename = "HttpBootUri")]
    pub http_boot_uri: Option<String>,
    /// Targets the BMC accepts.
    #[serde(rename = "BootSourceOverrideTarget@Redfish.AllowableValues", default)]
    pub allowed_targets: Vec<String>,
}

/// `ComputerSystem.Actions`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Actions {
    /// `#ComputerSystem.Reset`.
    #[serde(rename = "#ComputerSystem.Reset")]
    pub reset: Option<ResetAction>,
}

/// The reset action.
#[derive(Debug, Clone, Deserialize)]
pub struct ResetAction {
    /// Where to POST.
    pub target: String,
    /// Reset types the BMC accepts.
    #[serde(rename = "ResetType@Redfish.AllowableValues", default)]
    pub allowed: Vec<String>,
}

/// An Ethernet interface.
#[derive(Debug, Clone, Deserialize)]
pub struct EthernetInterface {
    /// MAC address.
    #[serde(rename = "MACAddress")]
    pub mac: Option<String>,
    /// Permanent MAC address, when `MACAddress` is absent.
    #[serde(rename = "PermanentMACAddress")]
    pub permanent_mac: Option<String>,
    /// Name.
    #[serde(rename = "Name")]
    pub name: Option<String>,
    /// Whether the interface is enabled.
    #[serde(rename = "InterfaceEnabled")]
    pub enabled: Option<bool>,
    /// Its status (`State`: `Enabled`, `Disabled`, `Absent`, ...).
    #[serde(rename = "Status", default)]
    pub status: Status,
    /// `LinkUp`, `LinkDown` or `NoLink`.
    #[serde(rename = "LinkStatus")]
    pub link_status: Option<String>,
    /// Related resources.
    #[serde(rename = "Links", default)]
    pub links: InterfaceLinks,
}

/// A resource's `Status`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Status {
    /// `Enabled`, `Disabled`, `Absent`, `StandbyOffline`, ...
    #[serde(rename = "State")]
    pub state: Option<String>,
}

/// `EthernetInterface.Links`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InterfaceLinks {
    /// Set on the host's end of a Redfish host interface (the BMC-to-host NIC).
    #[serde(rename = "HostInterface")]
    pub host_interface: Option<Link>,
}
