//! `Server`: one computer system behind a BMC, and its discovery lifecycle.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{
    LocalObjectReference, ObjectReference, Power, PowerState, Protocol, field_docs_win, uuid_rule,
};

/// Desired state of a Server.
///
/// `spec.systemUUID` is the canonical identity. `spec.uuid` is metal-operator v0.1's name for
/// it and still accepted: give at least one, and if both are given they must be the same UUID
/// (case-insensitive). ferrometal reads `systemUUID`, or `uuid` when only that is given.
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    doc = "A bare-metal server: one computer system behind a BMC. Created for every system a BMC exposes (or by a user), discovered by network-booting it into a probe, then Available.",
    kind = "Server",
    status = "ServerStatus",
    shortname = "srv",
    printcolumn(
        name = "SystemUUID",
        type_ = "string",
        json_path = ".spec.systemUUID",
        description = "System UUID"
    ),
    printcolumn(
        name = "Manufacturer",
        type_ = "string",
        json_path = ".status.manufacturer",
        description = "Manufacturer"
    ),
    printcolumn(
        name = "Model",
        type_ = "string",
        json_path = ".status.model",
        description = "Model"
    ),
    printcolumn(
        name = "Memory",
        type_ = "string",
        json_path = ".status.totalSystemMemory",
        description = "Total system memory"
    ),
    printcolumn(
        name = "SKU",
        type_ = "string",
        json_path = ".status.sku",
        priority = 100,
        description = "SKU"
    ),
    printcolumn(
        name = "SerialNumber",
        type_ = "string",
        json_path = ".status.serialNumber",
        priority = 100,
        description = "Serial number"
    ),
    printcolumn(
        name = "PowerState",
        type_ = "string",
        json_path = ".status.powerState",
        description = "Power state"
    ),
    printcolumn(
        name = "IndicatorLED",
        type_ = "string",
        json_path = ".status.indicatorLED",
        priority = 100,
        description = "Indicator LED"
    ),
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.state",
        description = "Lifecycle state"
    ),
    printcolumn(
        name = "Unclaimable",
        type_ = "boolean",
        json_path = ".spec.unclaimable",
        priority = 100,
        description = "Whether the server can be claimed"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("has(self.systemUUID) || has(self.uuid)").message("spec.systemUUID is required (spec.uuid is accepted as its deprecated alias)"))]
#[x_kube(validation = Rule::new("!has(self.systemUUID) || !has(self.uuid) || self.systemUUID.lowerAscii() == self.uuid.lowerAscii()").message("spec.uuid and spec.systemUUID name different UUIDs; give only spec.systemUUID"))]
#[x_kube(validation = Rule::new("!(has(self.bmcRef) && has(self.bmc))").message("set at most one of spec.bmcRef and spec.bmc"))]
#[serde(rename_all = "camelCase")]
#[schemars(transform = field_docs_win)]
pub struct ServerSpec {
    /// Deprecated alias of `systemUUID` (metal-operator v0.1). Use `systemUUID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = uuid_rule())]
    #[schemars(length(max = 36))]
    pub uuid: Option<String>,
    /// SMBIOS system UUID of the server, e.g. `123e4567-e89b-12d3-a456-426614174000`.
    #[serde(
        rename = "systemUUID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[x_kube(validation = uuid_rule())]
    #[schemars(length(max = 36))]
    pub system_uuid: Option<String>,
    /// Redfish `@odata.id` of the system, e.g. `/redfish/v1/Systems/437XR1138R2`.
    #[serde(rename = "systemURI", default, skip_serializing_if = "Option::is_none")]
    pub system_uri: Option<String>,
    /// Desired power state. Deprecated in metal-operator, where a ServerClaim's power wins;
    /// ferrometal honours it while the server is Available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<Power>,
    /// Desired state of the chassis indicator LED.
    #[serde(
        rename = "indicatorLED",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub indicator_led: Option<IndicatorLED>,
    /// What happens when a claim releases the server: `Recycle` returns it to the pool,
    /// `Retain` keeps it Released until an operator acts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Recycle"))]
    pub reclaim_policy: Option<ReclaimPolicy>,
    /// The ServerClaim bound to this server. Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.serverClaimRef is immutable"))]
    pub server_claim_ref: Option<ObjectReference>,
    /// The BMC that manages this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc_ref: Option<LocalObjectReference>,
    /// How to reach the BMC directly, instead of `bmcRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc: Option<BMCAccess>,
    /// The ServerBootConfiguration the server boots with next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_configuration_ref: Option<ObjectReference>,
    /// Desired firmware boot order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boot_order: Vec<BootOrder>,
    /// Taints that keep claims away unless tolerated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// When true, no new claim can bind the server (a bound claim stays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub unclaimable: Option<bool>,
}

impl ServerSpec {
    /// The server's system UUID, lower-cased: `systemUUID`, or the deprecated `uuid` when
    /// only that is given.
    pub fn system_uuid(&self) -> Option<String> {
        self.system_uuid
            .as_deref()
            .or(self.uuid.as_deref())
            .map(str::to_ascii_lowercase)
    }
}

/// Direct access to a server's BMC (alternative to `bmcRef`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BMCAccess {
    /// Management protocol.
    pub protocol: Protocol,
    /// Address (host or IP) of the BMC.
    pub address: String,
    /// BMCSecret holding the credentials.
    #[serde(rename = "bmcSecretRef")]
    pub bmc_secret_ref: LocalObjectReference,
}

/// Chassis indicator LED state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum IndicatorLED {
    /// Not known.
    Unknown,
    /// Steadily on.
    Lit,
    /// Blinking.
    Blinking,
    /// Off.
    Off,
}

/// What happens to a server when its claim is released.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum ReclaimPolicy {
    /// Return the server to the pool (the default).
    #[default]
    Recycle,
    /// Keep it `Released` until an operator acts.
    Retain,
}

/// One entry of the firmware boot order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct BootOrder {
    /// Name of the boot entry.
    pub name: String,
    /// Position; lower boots first.
    pub priority: i32,
    /// Device the entry boots from.
    pub device: String,
}

/// A taint that repels claims that do not tolerate it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[schemars(transform = field_docs_win)]
pub struct Taint {
    /// Taint key.
    #[schemars(length(min = 1))]
    pub key: String,
    /// Taint value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Effect on claims that do not tolerate it: `NoBind` (the default) keeps new claims
    /// away; `Evict` is reserved (as in metal-operator, it evicts nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "NoBind"))]
    pub effect: Option<TaintEffect>,
}

/// Effect of a taint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum TaintEffect {
    /// New claims cannot bind (the default).
    NoBind,
    /// Reserved for evicting bound claims; as in metal-operator, it has no effect yet.
    Evict,
}

/// Lifecycle state of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ServerState {
    /// Just created; discovery has not started.
    Initial,
    /// Booting the discovery image and waiting for the probe's report.
    Discovery,
    /// Discovered and free to claim.
    Available,
    /// Bound to a claim.
    Reserved,
    /// Released by a claim with the Retain policy.
    Released,
    /// Something went wrong; the conditions say what.
    Error,
    /// Taken out of service by an operator.
    Parked,
}

/// Observed state of a server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = field_docs_win)]
pub struct ServerStatus {
    /// Manufacturer reported by the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// BIOS version reported by the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bios_version: Option<String>,
    /// Model reported by the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// SKU reported by the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// Serial number reported by the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Power state reported by the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_state: Option<PowerState>,
    /// Indicator LED state reported by the BMC.
    #[serde(
        rename = "indicatorLED",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub indicator_led: Option<IndicatorLED>,
    /// Lifecycle state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ServerState>,
    /// Network interfaces seen by the probe.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<NetworkInterface>,
    /// Total memory, e.g. `64Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_system_memory: Option<Quantity>,
    /// Processors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processors: Vec<Processor>,
    /// Storage controllers with their volumes and drives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storages: Vec<Storage>,
    /// GPUs, FPGAs and other accelerators (a ferrometal extension; metal-operator's Server
    /// has no such field): out-of-band discovery fills it from the BMC's processors and
    /// PCIe devices, in-band discovery from the PCI devices metalprobe reports, with the same
    /// rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accelerators: Vec<Accelerator>,
    /// Conditions of the discovery flow and of the BMC connection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // A map keyed by type, so controllers can each server-side-apply their own conditions.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// A network interface of a server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    /// Interface name, e.g. `eth0`.
    pub name: String,
    /// First IP address (deprecated; see `ips`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// IP addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// MAC address.
    pub mac_address: String,
    /// Link state, e.g. `up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier_status: Option<String>,
    /// LLDP neighbours seen on this interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neighbors: Vec<LldpNeighbor>,
}

/// An LLDP neighbour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LldpNeighbor {
    /// Chassis MAC address of the neighbour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// Port id on the neighbour.
    #[serde(rename = "portID", default, skip_serializing_if = "Option::is_none")]
    pub port_id: Option<String>,
    /// Port description on the neighbour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_description: Option<String>,
    /// The neighbour's system name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_name: Option<String>,
    /// The neighbour's system description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_description: Option<String>,
}

/// A processor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Processor {
    /// Processor id.
    pub id: String,
    /// Processor type, e.g. `CPU`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Architecture, e.g. `x86`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Instruction set, e.g. `x86-64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction_set: Option<String>,
    /// Manufacturer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Maximum speed in MHz.
    #[serde(
        rename = "maxSpeedMHz",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_speed_mhz: Option<i32>,
    /// Number of cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cores: Option<i32>,
    /// Number of hardware threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_threads: Option<i32>,
}

/// An accelerator: a GPU, FPGA, AI or other co-processor (ferrometal extension).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accelerator {
    /// Name as the source reports it, e.g. the BMC's processor id `GPU1` or its PCIe device
    /// name; in-band, the PCI address (`0000:41:00.0`).
    pub name: String,
    /// What it is: a Redfish `ProcessorType` (`GPU`, `FPGA`, `DSP`, `Accelerator`, ...) or
    /// PCIe device class (`DisplayController`, `ProcessingAccelerators`, `Coprocessor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// PCI vendor id, e.g. `0x10de` (`0x` and four lowercase hex digits, whichever form the
    /// source wrote).
    #[serde(rename = "vendorID", default, skip_serializing_if = "Option::is_none")]
    pub vendor_id: Option<String>,
    /// PCI device id, in the same form, e.g. `0x2330`.
    #[serde(rename = "deviceID", default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

/// A storage controller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Controller name (optional, as in metal-operator).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// State of the controller as the BMC reports it, typically `Enabled`, `Disabled` or
    /// `Absent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<StorageVolume>,
    /// Drives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drives: Vec<StorageDrive>,
}

/// A storage volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageVolume {
    /// Volume name (optional, as in metal-operator).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Capacity, e.g. `960Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Quantity>,
    /// Volume state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// RAID type, e.g. `RAID1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raid_type: Option<String>,
    /// Usage, e.g. `Data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_usage: Option<String>,
}

/// A drive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageDrive {
    /// Drive name (optional, as in metal-operator).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Media type, e.g. `SSD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Interface type, e.g. `NVMe`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Quantity>,
    /// Vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Drive state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(uuid: Option<&str>, system_uuid: Option<&str>) -> ServerSpec {
        ServerSpec {
            uuid: uuid.map(str::to_owned),
            system_uuid: system_uuid.map(str::to_owned),
            system_uri: None,
            power: None,
            indicator_led: None,
            reclaim_policy: None,
            server_claim_ref: None,
            bmc_ref: None,
            bmc: None,
            boot_configuration_ref: None,
            boot_order: Vec::new(),
            taints: Vec::new(),
            unclaimable: None,
        }
    }

    #[test]
    fn the_deprecated_uuid_stands_in_for_a_missing_system_uuid() {
        let spec = spec(Some("123E4567-E89B-12D3-A456-426614174000"), None);
        assert_eq!(
            spec.system_uuid().as_deref(),
            Some("123e4567-e89b-12d3-a456-426614174000")
        );
    }

    #[test]
    fn system_uuid_wins_over_the_deprecated_alias() {
        let spec = spec(
            Some("00000000-0000-0000-0000-000000000001"),
            Some("00000000-0000-0000-0000-000000000002"),
        );
        assert_eq!(
            spec.system_uuid().as_deref(),
            Some("00000000-0000-0000-0000-000000000002")
        );
    }

    #[test]
    fn no_uuid_at_all_gives_none() {
        assert_eq!(spec(None, None).system_uuid(), None);
    }
}
