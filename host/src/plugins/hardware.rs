//! A system's hardware as a BMC driver reports it (WIT `inventory`), as domain types, and
//! their conversion from the bindings (which never leave the plugin runtime).

use super::bindings::bmc_driver::exports::ferrometal::plugin::driver as wit;

/// A processor: a CPU package, or a GPU, FPGA or other accelerator.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Processor {
    /// The BMC's name for it (Redfish `Id`, e.g. `CPU1`).
    pub id: String,
    /// Redfish `ProcessorType`: `CPU`, `GPU`, `FPGA`, `DSP`, `Accelerator`, `OEM`, ...
    pub processor_type: Option<String>,
    /// Redfish `ProcessorArchitecture`, e.g. `x86`.
    pub architecture: Option<String>,
    /// Redfish `InstructionSet`, e.g. `x86-64`.
    pub instruction_set: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Highest clock in MHz.
    pub max_speed_mhz: Option<u32>,
    /// Cores.
    pub total_cores: Option<u32>,
    /// Hardware threads.
    pub total_threads: Option<u32>,
    /// The PCIe device it is (a [`PcieDevice::id`]), so an accelerator is not counted twice.
    pub pcie_device: Option<String>,
}

/// A memory module or an empty slot.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryModule {
    /// Redfish `Id`, e.g. `DIMM1`.
    pub id: String,
    /// Capacity in bytes.
    pub capacity_bytes: Option<u64>,
    /// Redfish `MemoryDeviceType`, e.g. `DDR5`.
    pub device_type: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Part number.
    pub part_number: Option<String>,
    /// Speed in MHz.
    pub operating_speed_mhz: Option<u32>,
    /// Redfish `Status.State`: `Enabled`, `Absent` (an empty slot), ...
    pub state: Option<String>,
}

/// A drive of a storage subsystem.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drive {
    /// Name.
    pub name: String,
    /// Redfish `MediaType`: `HDD`, `SSD`, `SMR`.
    pub media_type: Option<String>,
    /// Redfish `Protocol`: `SATA`, `SAS`, `NVMe`, ...
    pub protocol: Option<String>,
    /// Capacity in bytes.
    pub capacity_bytes: Option<u64>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// Redfish `Status.State`.
    pub state: Option<String>,
}

/// A volume of a storage subsystem.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// Name.
    pub name: String,
    /// Capacity in bytes.
    pub capacity_bytes: Option<u64>,
    /// Redfish `RAIDType`, e.g. `RAID1`.
    pub raid_type: Option<String>,
    /// Redfish `VolumeUsage`, e.g. `Data`.
    pub volume_usage: Option<String>,
    /// Redfish `Status.State`.
    pub state: Option<String>,
}

/// A storage subsystem with its drives and volumes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Name.
    pub name: String,
    /// Redfish `Status.State`.
    pub state: Option<String>,
    /// Drives.
    pub drives: Vec<Drive>,
    /// Volumes.
    pub volumes: Vec<Volume>,
}

/// A PCIe device with the class and ids of its first function.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PcieDevice {
    /// Its address on the BMC (Redfish `@odata.id`).
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Redfish `PCIeFunction.DeviceClass`, e.g. `DisplayController`.
    pub device_class: Option<String>,
    /// PCI vendor id as the BMC writes it (e.g. `0x10de`).
    pub vendor_id: Option<String>,
    /// PCI device id.
    pub device_id: Option<String>,
    /// Redfish `Status.State`.
    pub state: Option<String>,
}

/// The hardware of a system, as `get-system` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    /// Firmware (BIOS/UEFI) version.
    pub bios_version: Option<String>,
    /// Redfish `SKU`.
    pub sku: Option<String>,
    /// Present processors.
    pub processors: Vec<Processor>,
    /// Installed memory in bytes (the modules' sum, else the BMC's summary).
    pub total_memory_bytes: Option<u64>,
    /// Memory modules and slots.
    pub memory: Vec<MemoryModule>,
    /// Storage subsystems.
    pub storage: Vec<Storage>,
    /// PCIe devices.
    pub pcie_devices: Vec<PcieDevice>,
}

impl From<wit::Inventory> for Inventory {
    fn from(inventory: wit::Inventory) -> Self {
        Self {
            bios_version: inventory.bios_version,
            sku: inventory.sku,
            processors: inventory
                .processors
                .into_iter()
                .map(|p| Processor {
                    id: p.id,
                    processor_type: p.processor_type,
                    architecture: p.architecture,
                    instruction_set: p.instruction_set,
                    manufacturer: p.manufacturer,
                    model: p.model,
                    max_speed_mhz: p.max_speed_mhz,
                    total_cores: p.total_cores,
                    total_threads: p.total_threads,
                    pcie_device: p.pcie_device,
                })
                .collect(),
            total_memory_bytes: inventory.total_memory_bytes,
            memory: inventory
                .memory
                .into_iter()
                .map(|m| MemoryModule {
                    id: m.id,
                    capacity_bytes: m.capacity_bytes,
                    device_type: m.device_type,
                    manufacturer: m.manufacturer,
                    part_number: m.part_number,
                    operating_speed_mhz: m.operating_speed_mhz,
                    state: m.state,
                })
                .collect(),
            storage: inventory
                .storage
                .into_iter()
                .map(|s| Storage {
                    name: s.name,
                    state: s.state,
                    drives: s
                        .drives
                        .into_iter()
                        .map(|d| Drive {
                            name: d.name,
                            media_type: d.media_type,
                            protocol: d.protocol,
                            capacity_bytes: d.capacity_bytes,
                            manufacturer: d.manufacturer,
                            model: d.model,
                            serial: d.serial,
                            state: d.state,
                        })
                        .collect(),
                    volumes: s
                        .volumes
                        .into_iter()
                        .map(|v| Volume {
                            name: v.name,
                            capacity_bytes: v.capacity_bytes,
                            raid_type: v.raid_type,
                            volume_usage: v.volume_usage,
                            state: v.state,
                        })
                        .collect(),
                })
                .collect(),
            pcie_devices: inventory
                .pcie_devices
                .into_iter()
                .map(|d| PcieDevice {
                    id: d.id,
                    name: d.name,
                    manufacturer: d.manufacturer,
                    model: d.model,
                    device_class: d.device_class,
                    vendor_id: d.vendor_id,
                    device_id: d.device_id,
                    state: d.state,
                })
                .collect(),
        }
    }
}
