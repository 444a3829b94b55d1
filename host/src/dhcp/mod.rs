//! DHCPv4 in the operator: addresses from configured pools with leases kept in a file, BMCs
//! on an allow-list onboarded as Endpoints, and boot replies that send PXE, iPXE and UEFI
//! HTTP boot clients to ferrometal's boot server, with a read-only TFTP server for the iPXE
//! images PXE firmware loads; and DHCPv6 beside it ([`v6`]), sharing onboarding and source
//! binding.

pub mod bindings;
pub mod config;
pub mod leases;
pub mod onboard;
pub mod packet;
pub mod reply;
pub mod server;
pub mod tftp;
pub mod v6;

/// Seconds since the Unix epoch (0 if the clock is before it): the clock leases are kept by.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
