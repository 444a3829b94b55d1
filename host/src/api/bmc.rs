//! `BMC`: a baseboard management controller and how to reach it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{
    ConsoleProtocol, InlineEndpoint, LocalObjectReference, MAC_ADDRESS_PATTERN, PowerState,
    Protocol, field_docs_win,
};

/// Desired state of a BMC: how to reach it, with which credentials and protocol.
///
/// Exactly one of `access` and `endpointRef` must be set.
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    doc = "A baseboard management controller that ferrometal manages; every computer system behind it becomes a Server. Reached through spec.access (MAC and IP inline) or spec.endpointRef (an Endpoint), exactly one of the two.",
    kind = "BMC",
    plural = "bmcs",
    singular = "bmc",
    status = "BMCStatus",
    printcolumn(
        name = "MACAddress",
        type_ = "string",
        json_path = ".status.macAddress",
        description = "MAC address of the BMC"
    ),
    printcolumn(
        name = "IP",
        type_ = "string",
        json_path = ".status.ip",
        description = "IP address of the BMC"
    ),
    printcolumn(
        name = "Model",
        type_ = "string",
        json_path = ".status.model",
        description = "BMC model"
    ),
    printcolumn(
        name = "SKU",
        type_ = "string",
        json_path = ".status.sku",
        priority = 100,
        description = "BMC SKU"
    ),
    printcolumn(
        name = "SerialNumber",
        type_ = "string",
        json_path = ".status.serialNumber",
        priority = 100,
        description = "BMC serial number"
    ),
    printcolumn(
        name = "FirmwareVersion",
        type_ = "string",
        json_path = ".status.firmwareVersion",
        priority = 100,
        description = "BMC firmware version"
    ),
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.state",
        description = "BMC state"
    ),
    printcolumn(
        name = "PowerState",
        type_ = "string",
        json_path = ".status.powerState",
        description = "BMC power state"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("has(self.access) != has(self.endpointRef)").message("exactly one of spec.access and spec.endpointRef must be set"))]
#[serde(rename_all = "camelCase")]
pub struct BMCSpec {
    /// UUID of the BMC (Redfish Manager UUID), used to pick the right manager when a service
    /// exposes several.
    #[serde(rename = "bmcUUID", default, skip_serializing_if = "Option::is_none")]
    pub bmc_uuid: Option<String>,
    /// Endpoint that holds the BMC's MAC and IP. Deprecated in metal-operator in favour of
    /// `access`, still fully supported. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.endpointRef is immutable"))]
    pub endpoint_ref: Option<LocalObjectReference>,
    /// MAC and IP of the BMC, given inline. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.access is immutable"))]
    pub access: Option<InlineEndpoint>,
    /// BMCSecret holding the credentials (`username`, `password`).
    #[serde(rename = "bmcSecretRef")]
    pub bmc_secret_ref: LocalObjectReference,
    /// Management protocol, port and scheme; the protocol selects the driver plugin.
    pub protocol: Protocol,
    /// Serial console the BMC offers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_protocol: Option<ConsoleProtocol>,
    /// Host name to give the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// Observed state of a BMC.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = field_docs_win)]
pub struct BMCStatus {
    /// MAC address the BMC is reached at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(MAC_ADDRESS_PATTERN))]
    pub mac_address: Option<String>,
    /// IP address the BMC is reached at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Manufacturer reported by the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Model reported by the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// SKU (part number) reported by the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// Serial number reported by the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Firmware version of the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<String>,
    /// State of the BMC: `Enabled`, `Error` or `Pending`, or the Redfish manager state as
    /// reported (e.g. `StandbyOffline`). `Pending` until the BMC was first probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Pending"))]
    pub state: Option<String>,
    /// Power state of the BMC itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_state: Option<PowerState>,
    /// When the BMC was last reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reset_time: Option<Time>,
    /// Link of the Redfish metrics report subscription made for this BMC (metal-operator sets
    /// it; ferrometal keeps it for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_report_subscription_link: Option<String>,
    /// Link of the Redfish event subscription made for this BMC (metal-operator sets it;
    /// ferrometal keeps it for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_subscription_link: Option<String>,
    /// Conditions: whether the BMC is reachable and the credentials work, and why not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // A map keyed by type, so controllers can each server-side-apply their own conditions.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
