//! The in-band hardware probe.
//!
//! Empty until the first-boot issue (#9) lands: it will collect DMI, CPU, memory, NIC,
//! disk and LLDP facts from a configurable sysfs root and post them to the registry.
