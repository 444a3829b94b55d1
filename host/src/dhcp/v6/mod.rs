//! DHCPv6 (RFC 8415) beside the DHCPv4 server: addresses (IA_NA) from configured prefixes per
//! link, directly on a served interface or through relay agents (nested Relay-Forward
//! messages, Interface-Id echoed), leases kept in a file of their own, allow-listed BMCs
//! onboarded as Endpoints with their IPv6 address through the same queue as DHCPv4, and boot
//! replies (option 59) for UEFI HTTP boot, UEFI PXE and iPXE clients.
//!
//! dhcproto reads and writes the client messages; the relay layers are read and written here
//! ([`packet`]) because dhcproto 0.15 decodes a Relay Message option as another relay message
//! even when it carries a client's message, and encodes the user and vendor class options
//! with wrong lengths (the replies carry the vendor class as raw bytes instead).

pub mod client;
pub mod config;
pub mod leases;
pub mod packet;
pub mod reply;
pub mod server;
