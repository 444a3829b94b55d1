//! metalprobe: the in-band agent of ferrometal's discovery boot. It reads the machine's
//! facts (DMI, CPUs, memory, NICs with addresses and link state, block devices, PCI devices)
//! from `/sys` and `/proc` under a configurable root, and LLDP neighbours from lldpd when it
//! runs, and posts them to the registry with the per-boot token. The report is
//! metal-operator's registry JSON, so either side talks to the other.

pub mod collect;
pub mod dhcp6;
pub mod ignition;
pub mod lldp;
pub mod post;
pub mod report;
