//! DHCPv4 in the operator: addresses from configured pools with leases kept in a file, BMCs
//! on an allow-list onboarded as Endpoints, and boot replies that send PXE, iPXE and UEFI
//! HTTP boot clients to ferrometal's boot server, with a read-only TFTP server for the iPXE
//! images PXE firmware loads.

pub mod bindings;
pub mod config;
pub mod leases;
pub mod onboard;
pub mod packet;
pub mod reply;
pub mod server;
pub mod tftp;
