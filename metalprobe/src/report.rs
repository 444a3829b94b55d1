//! What metalprobe reports: metal-operator's registry JSON (`POST /register` body), so either
//! side can talk to the other.
//!
//! Reads accept whatever Go's `encoding/json` writes for metal-operator's types: every field
//! may be absent (Go's `omitempty`) or `null` (a nil slice, map or pointer, and Go reads `null`
//! into any field as "leave it zero"), and fields metal-operator has and we do not are ignored.
//! Writes are JSON Go reads back into those types: no `""` where Go expects a time.

use serde::{Deserialize, Deserializer, Serialize};

/// Reads `null` as the field's default, the way Go's `encoding/json` leaves a field zero on
/// `null`. Absent fields default through the container's `#[serde(default)]`.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// What Go's zero `time.Time` marshals as (metal-operator's `metav1.Time` writes `null`).
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The body of `POST /register`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Registration {
    /// The machine's SMBIOS system UUID.
    #[serde(rename = "systemUUID")]
    #[serde(deserialize_with = "nullable")]
    pub system_uuid: String,
    /// The facts.
    #[serde(deserialize_with = "nullable")]
    pub data: Report,
}

/// Hardware facts of one machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Report {
    /// When the facts were collected (RFC 3339), by the machine's clock; empty when the report
    /// does not say (left out when writing, since Go cannot read `""` as a time). See
    /// [`Report::collected_at`].
    #[serde(skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub timestamp: String,
    /// DMI: BIOS, system and board.
    #[serde(deserialize_with = "nullable")]
    pub system_info: SystemInfo,
    /// One entry per CPU package.
    #[serde(deserialize_with = "nullable")]
    pub cpu: Vec<Cpu>,
    /// Network interfaces with addresses and link state.
    #[serde(deserialize_with = "nullable")]
    pub network_interfaces: Vec<NetworkInterface>,
    /// LLDP neighbours per interface (when lldpd runs).
    #[serde(deserialize_with = "nullable")]
    pub lldp: Vec<LldpInterface>,
    /// Block devices.
    #[serde(deserialize_with = "nullable")]
    pub storage: Vec<BlockDevice>,
    /// Memory (metalprobe reports one entry with the total).
    #[serde(deserialize_with = "nullable")]
    pub memory: Vec<Memory>,
    /// NIC hardware details.
    #[serde(deserialize_with = "nullable")]
    pub nics: Vec<Nic>,
    /// PCI devices (functions), in metal-operator's shape plus the class code and subsystem
    /// ids of ours; the registry finds the accelerators among them.
    #[serde(deserialize_with = "nullable")]
    pub pci_devices: Vec<PciDevice>,
}

/// When a report says its facts were collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collected {
    /// The report says when.
    At(jiff::Timestamp),
    /// The report does not say: no timestamp, `null`, `""` or Go's zero time.
    Unstated,
    /// The timestamp is not an RFC 3339 time.
    Unreadable,
}

impl Report {
    /// When the facts were collected, as the report states it. Go writes a nil time pointer
    /// as nothing, metal-operator's zero `metav1.Time` as `null` and a zero `time.Time` as
    /// [`GO_ZERO_TIME`]: all of them mean "not stated", never "two thousand years old".
    pub fn collected_at(&self) -> Collected {
        let text = self.timestamp.trim();
        if text.is_empty() {
            return Collected::Unstated;
        }
        match text.parse::<jiff::Timestamp>() {
            Ok(at)
                if GO_ZERO_TIME
                    .parse::<jiff::Timestamp>()
                    .is_ok_and(|zero| zero == at) =>
            {
                Collected::Unstated
            }
            Ok(at) => Collected::At(at),
            Err(_) => Collected::Unreadable,
        }
    }
}

/// DMI facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SystemInfo {
    /// BIOS vendor, version and date.
    #[serde(deserialize_with = "nullable")]
    pub bios_information: BiosInformation,
    /// System manufacturer, product, serial, UUID.
    #[serde(deserialize_with = "nullable")]
    pub system_information: SystemInformation,
    /// Mainboard.
    #[serde(deserialize_with = "nullable")]
    pub board_information: BoardInformation,
}

/// DMI BIOS facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BiosInformation {
    /// Vendor.
    #[serde(deserialize_with = "nullable")]
    pub vendor: String,
    /// Version.
    #[serde(deserialize_with = "nullable")]
    pub version: String,
    /// Release date.
    #[serde(deserialize_with = "nullable")]
    pub date: String,
}

/// DMI system facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SystemInformation {
    /// Manufacturer.
    #[serde(deserialize_with = "nullable")]
    pub manufacturer: String,
    /// Product name (model).
    #[serde(deserialize_with = "nullable")]
    pub product_name: String,
    /// Version.
    #[serde(deserialize_with = "nullable")]
    pub version: String,
    /// Serial number.
    #[serde(deserialize_with = "nullable")]
    pub serial_number: String,
    /// SMBIOS system UUID.
    #[serde(deserialize_with = "nullable")]
    pub uuid: String,
    /// SKU.
    #[serde(deserialize_with = "nullable")]
    pub sku_number: String,
    /// Family.
    #[serde(deserialize_with = "nullable")]
    pub family: String,
}

/// DMI board facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BoardInformation {
    /// Manufacturer.
    #[serde(deserialize_with = "nullable")]
    pub manufacturer: String,
    /// Product.
    #[serde(deserialize_with = "nullable")]
    pub product: String,
    /// Version.
    #[serde(deserialize_with = "nullable")]
    pub version: String,
    /// Serial number.
    #[serde(deserialize_with = "nullable")]
    pub serial_number: String,
    /// Asset tag.
    #[serde(deserialize_with = "nullable")]
    pub asset_tag: String,
}

/// One CPU package.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Cpu {
    /// Package id.
    #[serde(deserialize_with = "nullable")]
    pub id: u32,
    /// Cores.
    #[serde(deserialize_with = "nullable")]
    pub total_cores: u32,
    /// Hardware threads.
    #[serde(deserialize_with = "nullable")]
    pub total_hardware_threads: u32,
    /// Vendor (e.g. `GenuineIntel`).
    #[serde(deserialize_with = "nullable")]
    pub vendor: String,
    /// Model name.
    #[serde(deserialize_with = "nullable")]
    pub model: String,
    /// CPU flags.
    #[serde(deserialize_with = "nullable")]
    pub capabilities: Vec<String>,
}

/// One network interface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NetworkInterface {
    /// Kernel name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// First address (deprecated by metal-operator; kept for its readers).
    #[serde(deserialize_with = "nullable")]
    pub ip_address: String,
    /// Every address.
    #[serde(deserialize_with = "nullable")]
    pub ip_addresses: Vec<String>,
    /// MAC address, lowercase.
    #[serde(deserialize_with = "nullable")]
    pub mac_address: String,
    /// `up` or `down`.
    #[serde(deserialize_with = "nullable")]
    pub carrier_status: String,
}

/// LLDP neighbours seen on one interface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LldpInterface {
    /// Interface name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Neighbours.
    #[serde(deserialize_with = "nullable")]
    pub neighbors: Vec<LldpNeighbor>,
}

/// One LLDP neighbour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LldpNeighbor {
    /// Chassis id (often the switch MAC).
    #[serde(deserialize_with = "nullable")]
    pub chassis_id: String,
    /// Port id.
    #[serde(deserialize_with = "nullable")]
    pub port_id: String,
    /// Port description.
    #[serde(deserialize_with = "nullable")]
    pub port_description: String,
    /// System name.
    #[serde(deserialize_with = "nullable")]
    pub system_name: String,
    /// System description.
    #[serde(deserialize_with = "nullable")]
    pub system_description: String,
}

/// One block device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BlockDevice {
    /// `/dev/<name>`.
    #[serde(deserialize_with = "nullable")]
    pub path: String,
    /// Kernel name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Spinning disk.
    #[serde(deserialize_with = "nullable")]
    pub rotational: bool,
    /// Removable medium.
    #[serde(deserialize_with = "nullable")]
    pub removable: bool,
    /// Read-only.
    #[serde(deserialize_with = "nullable")]
    pub read_only: bool,
    /// Vendor.
    #[serde(deserialize_with = "nullable")]
    pub vendor: String,
    /// Model.
    #[serde(deserialize_with = "nullable")]
    pub model: String,
    /// Serial number.
    #[serde(deserialize_with = "nullable")]
    pub serial: String,
    /// Size in bytes.
    #[serde(deserialize_with = "nullable")]
    pub size_bytes: u64,
    /// Physical block size.
    #[serde(deserialize_with = "nullable")]
    pub physical_block_size: u64,
    /// Logical block size.
    #[serde(deserialize_with = "nullable")]
    pub logical_block_size: u64,
}

/// Memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Memory {
    /// Bytes.
    #[serde(deserialize_with = "nullable")]
    pub size: u64,
}

/// NIC hardware.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Nic {
    /// Kernel name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// MAC address.
    #[serde(deserialize_with = "nullable")]
    pub mac: String,
    /// PCI address, when the NIC is a PCI device.
    #[serde(deserialize_with = "nullable")]
    pub pci_address: String,
    /// Link speed in Mb/s, as the kernel reports it.
    #[serde(deserialize_with = "nullable")]
    pub speed: String,
}

/// One PCI function: metal-operator's `PCIDevice` (`address`, `vendor`, `vendorID`, `product`,
/// `productID`, `numaNodeID`, ids written as metal-operator's probe writes them: four
/// lowercase hex digits without `0x`), plus `class`, `subsystemVendorID` and
/// `subsystemProductID` of ours, which Go's `encoding/json` ignores and which are left out
/// when empty (metal-operator's probe does not send them, so its devices have no class).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PciDevice {
    /// PCI address, `domain:bus:device.function` (e.g. `0000:41:00.0`).
    #[serde(deserialize_with = "nullable")]
    pub address: String,
    /// Vendor name as `pci.ids` spells it; metalprobe knows only a few vendors (see
    /// [`crate::collect::vendor_name`]) and leaves the others empty.
    #[serde(deserialize_with = "nullable")]
    pub vendor: String,
    /// PCI vendor id (e.g. `10de`).
    #[serde(rename = "vendorID")]
    #[serde(deserialize_with = "nullable")]
    pub vendor_id: String,
    /// Product name; metalprobe carries no product table and leaves it empty (metal-operator's
    /// probe fills it from `pci.ids`).
    #[serde(deserialize_with = "nullable")]
    pub product: String,
    /// PCI device id (e.g. `2330`).
    #[serde(rename = "productID")]
    #[serde(deserialize_with = "nullable")]
    pub product_id: String,
    /// NUMA node the device is attached to; `-1` when the kernel knows none.
    #[serde(rename = "numaNodeID")]
    #[serde(deserialize_with = "nullable")]
    pub numa_node_id: i32,
    /// PCI class code as sysfs writes it, `0x` + class, subclass and programming interface
    /// (e.g. `0x030200`, a 3D controller): what tells a GPU from a NIC. Ours.
    #[serde(skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub class: String,
    /// Subsystem (board) vendor id, in the form of `vendorID`. Ours.
    #[serde(rename = "subsystemVendorID", skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub subsystem_vendor_id: String,
    /// Subsystem (board) device id, in the form of `productID`. Ours.
    #[serde(
        rename = "subsystemProductID",
        skip_serializing_if = "String::is_empty"
    )]
    #[serde(deserialize_with = "nullable")]
    pub subsystem_product_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Go's `encoding/json` writes for metal-operator's `RegistrationPayload` whose
    /// slices are nil and whose `Timestamp` points at a zero `metav1.Time`.
    const GO_NIL_SLICES: &str = r#"{"systemUUID":"f1b0000a-0000-4000-8000-000000000001","data":{
        "timestamp":null,
        "systemInfo":{"biosInformation":{"vendor":"","version":"","date":""},
            "systemInformation":{"manufacturer":"Contoso","productName":"","version":"",
                "serialNumber":"","uuid":"","skuNumber":"","family":""},
            "boardInformation":{"manufacturer":"","product":"","version":"","serialNumber":"",
                "assetTag":""}},
        "cpu":[{"id":0,"totalCores":4,"totalHardwareThreads":8,"vendor":"GenuineIntel",
            "model":"Xeon","capabilities":null}],
        "networkInterfaces":[{"name":"eno1","ipAddresses":null,
            "macAddress":"52:54:00:f1:00:01","carrierStatus":"up"}],
        "lldp":[{"name":"eno1","neighbors":null}],
        "nics":[{"name":"eno1","mac":"52:54:00:f1:00:01","pciAddress":"","speed":"",
            "linkModes":null,"supportedPorts":null,"firmwareVersion":""}],
        "pciDevices":null}}"#;

    #[test]
    fn go_nil_slices_and_null_times_read_as_empty() {
        let registration: Registration = serde_json::from_str(GO_NIL_SLICES).expect("parses");
        let report = &registration.data;
        assert!(report.cpu[0].capabilities.is_empty());
        assert!(report.network_interfaces[0].ip_addresses.is_empty());
        assert!(report.lldp[0].neighbors.is_empty());
        assert!(report.pci_devices.is_empty());
        assert_eq!(report.collected_at(), Collected::Unstated);
    }

    #[test]
    fn metal_operators_pci_devices_read_without_a_class_and_ours_carry_one() {
        // As metal-operator's probe writes them (ghw: ids without `0x`, `omitempty`).
        let report: Report = serde_json::from_str(
            r#"{"pciDevices":[{"address":"0000:41:00.0","vendor":"NVIDIA Corporation",
                "vendorID":"10de","product":"GH100 [H100 SXM5 80GB]","productID":"2330",
                "numaNodeID":1},{"address":"0000:00:1f.0","vendorID":"8086","product":null}]}"#,
        )
        .expect("parses");
        assert_eq!(report.pci_devices[0].product_id, "2330");
        assert_eq!(report.pci_devices[0].numa_node_id, 1);
        assert_eq!(report.pci_devices[0].class, "");
        assert_eq!(report.pci_devices[1].product, "");
        assert_eq!(
            report.pci_devices[1].numa_node_id, 0,
            "Go omits a zero node"
        );

        let ours = PciDevice {
            address: String::from("0000:41:00.0"),
            vendor_id: String::from("10de"),
            product_id: String::from("2330"),
            numa_node_id: -1,
            class: String::from("0x030200"),
            ..PciDevice::default()
        };
        let written = serde_json::to_value(&ours).expect("serializes");
        assert_eq!(written["class"], "0x030200");
        assert_eq!(written["vendorID"], "10de");
        assert_eq!(written["numaNodeID"], -1);
        assert!(
            written.get("subsystemVendorID").is_none(),
            "extras are left out when empty: {written}"
        );
        assert_eq!(
            serde_json::from_value::<PciDevice>(written).expect("reads back"),
            ours
        );
    }

    #[test]
    fn null_reads_as_zero_in_every_kind_of_field() {
        let registration: Registration = serde_json::from_str(
            r#"{"systemUUID":null,"data":{"timestamp":null,"systemInfo":null,"cpu":[
                {"id":null,"totalCores":null,"vendor":null,"capabilities":[]}],
                "storage":[{"name":"sda","rotational":null,"sizeBytes":null}],
                "memory":null,"nics":null,"lldp":[{"name":"eno1","neighbors":[
                {"chassisId":null,"mgmtIp":"192.0.2.1","capabilities":null}]}]}}"#,
        )
        .expect("parses");
        assert_eq!(registration.system_uuid, "");
        let report = registration.data;
        assert_eq!(report.cpu[0], Cpu::default());
        assert_eq!(report.storage[0].name, "sda");
        assert!(!report.storage[0].rotational);
        assert!(report.memory.is_empty());
        assert_eq!(report.lldp[0].neighbors[0], LldpNeighbor::default());
    }

    #[test]
    fn an_empty_registration_is_all_defaults() {
        let registration: Registration = serde_json::from_str("{}").expect("parses");
        assert_eq!(registration, Registration::default());
    }

    #[test]
    fn go_zero_times_and_empty_strings_state_no_collection_time() {
        let at = |timestamp: &str| {
            Report {
                timestamp: timestamp.to_owned(),
                ..Report::default()
            }
            .collected_at()
        };
        assert_eq!(at(""), Collected::Unstated);
        assert_eq!(at(GO_ZERO_TIME), Collected::Unstated);
        assert_eq!(at("0001-01-01T00:00:00+00:00"), Collected::Unstated);
        assert_eq!(at("yesterday"), Collected::Unreadable);
        assert_eq!(
            at("2026-05-01T10:00:00.5+02:00"),
            Collected::At("2026-05-01T08:00:00.5Z".parse().expect("time"))
        );
    }

    #[test]
    fn an_unstated_timestamp_is_left_out_when_writing() {
        let written = serde_json::to_value(Report::default()).expect("serializes");
        assert!(written.get("timestamp").is_none(), "{written}");
    }
}
