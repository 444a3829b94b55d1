//! The DHCP client a fleet's BMCs and machines lease through: DHCPv4 over loopback
//! ([`crate::dhcp`]) or DHCPv6 on the fleet's IPv6 link ([`crate::dhcp6`]).

use std::net::IpAddr;
use std::sync::Arc;

use crate::dhcp::{ClientClass, DhcpClient, DhcpError};
use crate::dhcp6::{Dhcp6Client, Dhcp6Error};

/// A fleet's DHCP client, of either family.
#[derive(Debug, Clone)]
pub enum FleetDhcp {
    /// DHCPv4 over loopback.
    V4(Arc<DhcpClient>),
    /// DHCPv6 on the fleet's link.
    V6(Arc<Dhcp6Client>),
}

/// What the server granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// The client's address.
    pub address: IpAddr,
    /// The boot file (a URL for iPXE and HTTP boot clients).
    pub boot_file: Option<String>,
}

/// Why no lease was had.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Over DHCPv4.
    #[error(transparent)]
    V4(#[from] DhcpError),
    /// Over DHCPv6.
    #[error(transparent)]
    V6(#[from] Dhcp6Error),
}

impl FleetDhcp {
    /// Gets an address for `mac`; a machine's firmware also names its system `uuid`, which
    /// DHCPv4 carries in option 97 and DHCPv6 as the client's DUID-UUID.
    pub async fn lease(
        &self,
        mac: &str,
        class: ClientClass,
        uuid: Option<&str>,
    ) -> Result<Granted, LeaseError> {
        Ok(match self {
            Self::V4(client) => {
                let lease = client.lease(mac, class, uuid).await?;
                Granted {
                    address: lease.address.into(),
                    boot_file: lease.boot_file,
                }
            }
            Self::V6(client) => {
                let lease = client.lease(mac, class, uuid).await?;
                Granted {
                    address: lease.address.into(),
                    boot_file: lease.boot_file,
                }
            }
        })
    }
}
