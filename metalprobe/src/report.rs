//! What metalprobe reports: metal-operator's registry JSON (`POST /register` body), so either
//! side can talk to the other. Every field defaults, so partial reports still parse.

use serde::{Deserialize, Serialize};

/// The body of `POST /register`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// The machine's SMBIOS system UUID.
    #[serde(rename = "systemUUID")]
    pub system_uuid: String,
    /// The facts.
    pub data: Report,
}

/// Hardware facts of one machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Report {
    /// When the facts were collected (RFC 3339).
    pub timestamp: String,
    /// DMI: BIOS, system and board.
    pub system_info: SystemInfo,
    /// One entry per CPU package.
    pub cpu: Vec<Cpu>,
    /// Network interfaces with addresses and link state.
    pub network_interfaces: Vec<NetworkInterface>,
    /// LLDP neighbours per interface (when lldpd runs).
    pub lldp: Vec<LldpInterface>,
    /// Block devices.
    pub storage: Vec<BlockDevice>,
    /// Memory (metalprobe reports one entry with the total).
    pub memory: Vec<Memory>,
    /// NIC hardware details.
    pub nics: Vec<Nic>,
}

/// DMI facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SystemInfo {
    /// BIOS vendor, version and date.
    pub bios_information: BiosInformation,
    /// System manufacturer, product, serial, UUID.
    pub system_information: SystemInformation,
    /// Mainboard.
    pub board_information: BoardInformation,
}

/// DMI BIOS facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BiosInformation {
    /// Vendor.
    pub vendor: String,
    /// Version.
    pub version: String,
    /// Release date.
    pub date: String,
}

/// DMI system facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SystemInformation {
    /// Manufacturer.
    pub manufacturer: String,
    /// Product name (model).
    pub product_name: String,
    /// Version.
    pub version: String,
    /// Serial number.
    pub serial_number: String,
    /// SMBIOS system UUID.
    pub uuid: String,
    /// SKU.
    pub sku_number: String,
    /// Family.
    pub family: String,
}

/// DMI board facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BoardInformation {
    /// Manufacturer.
    pub manufacturer: String,
    /// Product.
    pub product: String,
    /// Version.
    pub version: String,
    /// Serial number.
    pub serial_number: String,
    /// Asset tag.
    pub asset_tag: String,
}

/// One CPU package.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Cpu {
    /// Package id.
    pub id: u32,
    /// Cores.
    pub total_cores: u32,
    /// Hardware threads.
    pub total_hardware_threads: u32,
    /// Vendor (e.g. `GenuineIntel`).
    pub vendor: String,
    /// Model name.
    pub model: String,
    /// CPU flags.
    pub capabilities: Vec<String>,
}

/// One network interface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NetworkInterface {
    /// Kernel name.
    pub name: String,
    /// First address (deprecated by metal-operator; kept for its readers).
    pub ip_address: String,
    /// Every address.
    pub ip_addresses: Vec<String>,
    /// MAC address, lowercase.
    pub mac_address: String,
    /// `up` or `down`.
    pub carrier_status: String,
}

/// LLDP neighbours seen on one interface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LldpInterface {
    /// Interface name.
    pub name: String,
    /// Neighbours.
    pub neighbors: Vec<LldpNeighbor>,
}

/// One LLDP neighbour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LldpNeighbor {
    /// Chassis id (often the switch MAC).
    pub chassis_id: String,
    /// Port id.
    pub port_id: String,
    /// Port description.
    pub port_description: String,
    /// System name.
    pub system_name: String,
    /// System description.
    pub system_description: String,
}

/// One block device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BlockDevice {
    /// `/dev/<name>`.
    pub path: String,
    /// Kernel name.
    pub name: String,
    /// Spinning disk.
    pub rotational: bool,
    /// Removable medium.
    pub removable: bool,
    /// Read-only.
    pub read_only: bool,
    /// Vendor.
    pub vendor: String,
    /// Model.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Physical block size.
    pub physical_block_size: u64,
    /// Logical block size.
    pub logical_block_size: u64,
}

/// Memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Memory {
    /// Bytes.
    pub size: u64,
}

/// NIC hardware.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Nic {
    /// Kernel name.
    pub name: String,
    /// MAC address.
    pub mac: String,
    /// PCI address, when the NIC is a PCI device.
    pub pci_address: String,
    /// Link speed in Mb/s, as the kernel reports it.
    pub speed: String,
}
