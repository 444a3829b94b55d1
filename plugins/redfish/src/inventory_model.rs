//! The parts of the Redfish schema the inventory reads (processors, memory, storage, PCIe).
//! Every field is optional: BMCs leave out whatever they like.

use serde::Deserialize;
use serde_json::Value;

use crate::model::{Link, Status};

/// `ComputerSystem`, as far as the inventory reads it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SystemInventoryLinks {
    /// Redfish `BiosVersion`.
    #[serde(rename = "BiosVersion")]
    pub bios_version: Option<String>,
    /// Redfish `SKU`.
    #[serde(rename = "SKU")]
    pub sku: Option<String>,
    /// Processors collection.
    #[serde(rename = "Processors")]
    pub processors: Option<Link>,
    /// Memory collection.
    #[serde(rename = "Memory")]
    pub memory: Option<Link>,
    /// `MemorySummary`.
    #[serde(rename = "MemorySummary", default)]
    pub memory_summary: MemorySummary,
    /// Storage collection.
    #[serde(rename = "Storage")]
    pub storage: Option<Link>,
    /// SimpleStorage collection (older BMCs).
    #[serde(rename = "SimpleStorage")]
    pub simple_storage: Option<Link>,
    /// PCIe devices, listed on the system (deprecated in newer schemas, still common).
    #[serde(rename = "PCIeDevices", default)]
    pub pcie_devices: Vec<Link>,
    /// Related resources.
    #[serde(rename = "Links", default)]
    pub links: SystemChassisLinks,
    /// Vendor extensions.
    #[serde(rename = "Oem", default)]
    pub oem: Value,
}

/// `ComputerSystem.Links.Chassis`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SystemChassisLinks {
    /// The chassis the system is in.
    #[serde(rename = "Chassis", default)]
    pub chassis: Vec<Link>,
}

/// `ComputerSystem.MemorySummary`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MemorySummary {
    /// Installed memory in GiB (may be fractional).
    #[serde(rename = "TotalSystemMemoryGiB")]
    pub total_gib: Option<f64>,
}

/// A `Processor`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Processor {
    /// `Id`.
    #[serde(rename = "Id")]
    pub id: Option<String>,
    /// `ProcessorType`.
    #[serde(rename = "ProcessorType")]
    pub processor_type: Option<String>,
    /// `ProcessorArchitecture`.
    #[serde(rename = "ProcessorArchitecture")]
    pub architecture: Option<String>,
    /// `InstructionSet`.
    #[serde(rename = "InstructionSet")]
    pub instruction_set: Option<String>,
    /// `Manufacturer`.
    #[serde(rename = "Manufacturer")]
    pub manufacturer: Option<String>,
    /// `Model`.
    #[serde(rename = "Model")]
    pub model: Option<String>,
    /// `MaxSpeedMHz`.
    #[serde(rename = "MaxSpeedMHz")]
    pub max_speed_mhz: Option<Value>,
    /// `TotalCores`.
    #[serde(rename = "TotalCores")]
    pub total_cores: Option<Value>,
    /// `TotalThreads`.
    #[serde(rename = "TotalThreads")]
    pub total_threads: Option<Value>,
    /// `Status`.
    #[serde(rename = "Status", default)]
    pub status: Status,
    /// `Links` (`PCIeDevice`).
    #[serde(rename = "Links", default)]
    pub links: ProcessorLinks,
}

/// `Processor.Links`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProcessorLinks {
    /// The PCIe device the processor is.
    #[serde(rename = "PCIeDevice")]
    pub pcie_device: Option<Link>,
}

/// A `Memory` resource (a module or a slot).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Memory {
    /// `Id`.
    #[serde(rename = "Id")]
    pub id: Option<String>,
    /// `CapacityMiB`.
    #[serde(rename = "CapacityMiB")]
    pub capacity_mib: Option<Value>,
    /// `MemoryDeviceType`.
    #[serde(rename = "MemoryDeviceType")]
    pub device_type: Option<String>,
    /// `Manufacturer`.
    #[serde(rename = "Manufacturer")]
    pub manufacturer: Option<String>,
    /// `PartNumber`.
    #[serde(rename = "PartNumber")]
    pub part_number: Option<String>,
    /// `OperatingSpeedMhz` (sic, as the schema spells it).
    #[serde(rename = "OperatingSpeedMhz")]
    pub operating_speed_mhz: Option<Value>,
    /// `Status`.
    #[serde(rename = "Status", default)]
    pub status: Status,
}

/// A `Storage` resource.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Storage {
    /// `Id`.
    #[serde(rename = "Id")]
    pub id: Option<String>,
    /// `Name`.
    #[serde(rename = "Name")]
    pub name: Option<String>,
    /// `Status`.
    #[serde(rename = "Status", default)]
    pub status: Status,
    /// `Drives` (links).
    #[serde(rename = "Drives", default)]
    pub drives: Vec<Link>,
    /// `Volumes` collection.
    #[serde(rename = "Volumes")]
    pub volumes: Option<Link>,
}

/// A `Drive`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Drive {
    /// `Id`.
    #[serde(rename = "Id")]
    pub id: Option<String>,
    /// `Name`.
    #[serde(rename = "Name")]
    pub name: Option<String>,
    /// `MediaType`.
    #[serde(rename = "MediaType")]
    pub media_type: Option<String>,
    /// `Protocol`.
    #[serde(rename = "Protocol")]
    pub protocol: Option<String>,
    /// `CapacityBytes`.
    #[serde(rename = "CapacityBytes")]
    pub capacity_bytes: Option<Value>,
    /// `Manufacturer`.
    #[serde(rename = "Manufacturer")]
    pub manufacturer: Option<String>,
    /// `Model`.
    #[serde(rename = "Model")]
    pub model: Option<String>,
    /// `SerialNumber`.
    #[serde(rename = "SerialNumber")]
    pub serial_number: Option<String>,
    /// `Status`.
    #[serde(rename = "Status", default)]
    pub status: Status,
}

/// A `Volume`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Volume {
    /// `Id`.
    #[serde(rename = "Id")]
    pub id: Option<String>,
    /// `Name`.
    #[serde(rename = "Name")]
    pub name: Option<String>,
    /// `CapacityBytes`.
    #[serde(rename = "CapacityBytes")]
    pub capacity_bytes: Option<Value>,
    /// `RAIDType`.
    #[serde(rename = "RAIDType")]
    pub raid_type: Option<String>,
    /// `VolumeUsage`.
    #[serde(rename = "VolumeUsage")]
    pub volume_usage: Option<String>,
    /// `Status`.
    #[serde(rename = "Status", default)]
    pub status: Status,
}

/// A `SimpleStorage` resource.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SimpleStorage {
    /// `Id`.
    #[serde(rename = "Id")]
    pub id: Option<String>,
    /// `Name`.
    #[serde(rename = "Name")]
    pub name: Option<String>,
    /// `Status`.
    #[serde(rename = "Status", default)]
    pub status: Status,
    /// `Devices`.
    #[serde(rename = "Devices", default)]
    pub devices: Vec<SimpleDevice>,
}

/// A `SimpleStorage` device.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SimpleDevice {
    /// `Name`.
    #[serde(rename = "Name")]
    pub name: Option<String>,
    /// `Manufacturer`.
    #[serde(rename = "Manufacturer")]
    pub manufacturer: Option<String>,
    /// `Model`.
    #[serde(rename = "Model")]
    pub model: Option<String>,
    /// `CapacityBytes`.
    #[serde(rename = "CapacityBytes")]
    pub capacity_bytes: Option<Value>,
    /// `Status`.
    #[serde(rename = "Status", default)]
    pub status: Status,
}

/// A `Chassis`, as far as its PCIe devices go.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Chassis {
    /// `PCIeDevices` collection.
    #[serde(rename = "PCIeDevices")]
    pub pcie_devices: Option<Link>,
}

/// A `PCIeDevice`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PcieDevice {
    /// `Name`.
    #[serde(rename = "Name")]
    pub name: Option<String>,
    /// `Manufacturer`.
    #[serde(rename = "Manufacturer")]
    pub manufacturer: Option<String>,
    /// `Model`.
    #[serde(rename = "Model")]
    pub model: Option<String>,
    /// `Status`.
    #[serde(rename = "Status", default)]
    pub status: Status,
    /// `PCIeFunctions` collection (schema 1.4 and later).
    #[serde(rename = "PCIeFunctions")]
    pub functions: Option<Link>,
    /// `Links.PCIeFunctions` (before 1.4).
    #[serde(rename = "Links", default)]
    pub links: PcieDeviceLinks,
}

/// `PCIeDevice.Links`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PcieDeviceLinks {
    /// The device's functions.
    #[serde(rename = "PCIeFunctions", default)]
    pub functions: Vec<Link>,
}

/// A `PCIeFunction`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PcieFunction {
    /// `DeviceClass`.
    #[serde(rename = "DeviceClass")]
    pub device_class: Option<String>,
    /// `VendorId`.
    #[serde(rename = "VendorId")]
    pub vendor_id: Option<String>,
    /// `DeviceId`.
    #[serde(rename = "DeviceId")]
    pub device_id: Option<String>,
}

/// HPE's `SmartStorage` array controller (iLO 4/5 OEM storage).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HpeArrayController {
    /// `Model`.
    #[serde(rename = "Model")]
    pub model: Option<String>,
    /// `Name`.
    #[serde(rename = "Name")]
    pub name: Option<String>,
    /// `Status`.
    #[serde(rename = "Status", default)]
    pub status: Status,
    /// `Links.PhysicalDrives` and `Links.LogicalDrives`.
    #[serde(rename = "Links", default)]
    pub links: HpeArrayLinks,
}

/// `ArrayController.Links`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HpeArrayLinks {
    /// Physical drives collection.
    #[serde(rename = "PhysicalDrives")]
    pub physical_drives: Option<Link>,
    /// Logical drives collection.
    #[serde(rename = "LogicalDrives")]
    pub logical_drives: Option<Link>,
}

/// HPE's `DiskDrive`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HpeDiskDrive {
    /// `Id`.
    #[serde(rename = "Id")]
    pub id: Option<String>,
    /// `Location`, e.g. `1I:1:1`.
    #[serde(rename = "Location")]
    pub location: Option<String>,
    /// `CapacityMiB`.
    #[serde(rename = "CapacityMiB")]
    pub capacity_mib: Option<Value>,
    /// `MediaType`: `HDD`, `SSD`.
    #[serde(rename = "MediaType")]
    pub media_type: Option<String>,
    /// `InterfaceType`: `SAS`, `SATA`, `NVMe`.
    #[serde(rename = "InterfaceType")]
    pub interface_type: Option<String>,
    /// `Model`.
    #[serde(rename = "Model")]
    pub model: Option<String>,
    /// `SerialNumber`.
    #[serde(rename = "SerialNumber")]
    pub serial_number: Option<String>,
    /// `Status`.
    #[serde(rename = "Status", default)]
    pub status: Status,
}

/// HPE's `LogicalDrive`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HpeLogicalDrive {
    /// `LogicalDriveName`.
    #[serde(rename = "LogicalDriveName")]
    pub name: Option<String>,
    /// `Id`.
    #[serde(rename = "Id")]
    pub id: Option<String>,
    /// `CapacityMiB`.
    #[serde(rename = "CapacityMiB")]
    pub capacity_mib: Option<Value>,
    /// `Raid`, e.g. `1` (RAID 1).
    #[serde(rename = "Raid")]
    pub raid: Option<String>,
    /// `Status`.
    #[serde(rename = "Status", default)]
    pub status: Status,
}
