//! BMCs waiting for their Endpoint: the DHCP server hands each acknowledged allow-listed
//! client over without waiting, and the Endpoint writer takes them in batches.
//!
//! Nothing is dropped however many BMCs ask at once (a row of racks powering up): the queue
//! keeps the latest address per MAC and family (DHCPv4 and DHCPv6 feed one queue), so its
//! size is bounded by the number of MACs the DHCP servers lease to (their address pools), not
//! by how often they ask.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use super::bindings::Family;
use super::reply::Onboard;

/// A BMC announced by either DHCP server: its MAC and the address it was leased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    /// MAC address (`aa:bb:…`).
    pub mac: String,
    /// Its address, of either family (an Endpoint's `ip` holds either).
    pub ip: IpAddr,
}

impl From<Onboard> for Announced {
    fn from(onboard: Onboard) -> Self {
        Self {
            mac: onboard.mac,
            ip: IpAddr::V4(onboard.ip),
        }
    }
}

#[derive(Debug, Default)]
struct Pending {
    by_mac: HashMap<(String, Family), IpAddr>,
    /// The DHCP server is gone: the writer finishes what is pending and ends.
    closed: bool,
}

/// The clients waiting for their Endpoint write, latest address per MAC.
#[derive(Debug, Default)]
pub struct OnboardQueue {
    pending: Mutex<Pending>,
    wake: Notify,
}

impl OnboardQueue {
    /// A queue, the DHCP server's end of it (closing the queue when its last clone is
    /// dropped) and the writer's end.
    pub fn new() -> (OnboardSender, Arc<OnboardQueue>) {
        let queue = Arc::new(OnboardQueue::default());
        (OnboardSender(Arc::new(Closer(queue.clone()))), queue)
    }

    /// Adds (or updates) a client; never blocks, never drops.
    pub fn push(&self, client: impl Into<Announced>) {
        let Announced { mac, ip } = client.into();
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_mac
            .insert((mac, Family::of(ip)), ip);
        self.wake.notify_one();
    }

    /// How many clients wait.
    pub fn len(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_mac
            .len()
    }

    /// Whether no client waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every waiting client, once some wait; `None` once the queue is closed and empty.
    pub async fn next_batch(&self) -> Option<Vec<Announced>> {
        loop {
            {
                let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                if !pending.by_mac.is_empty() {
                    return Some(
                        pending
                            .by_mac
                            .drain()
                            .map(|((mac, _), ip)| Announced { mac, ip })
                            .collect(),
                    );
                }
                if pending.closed {
                    return None;
                }
            }
            self.wake.notified().await;
        }
    }

    /// Whether the DHCP server is gone.
    pub fn is_closed(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed
    }

    fn close(&self) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.wake.notify_one();
    }
}

/// The DHCP server's end of an [`OnboardQueue`]; the queue closes when the last clone goes.
#[derive(Debug, Clone)]
pub struct OnboardSender(Arc<Closer>);

impl OnboardSender {
    /// Hands a client over (see [`OnboardQueue::push`]).
    pub fn push(&self, client: impl Into<Announced>) {
        self.0.0.push(client);
    }
}

#[derive(Debug)]
struct Closer(Arc<OnboardQueue>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn onboard(mac: &str, ip: [u8; 4]) -> Announced {
        Announced {
            mac: mac.to_owned(),
            ip: IpAddr::V4(Ipv4Addr::from(ip)),
        }
    }

    #[tokio::test]
    async fn a_bmc_announced_by_both_servers_waits_once_per_family() {
        let (sender, queue) = OnboardQueue::new();
        sender.push(onboard("a", [10, 0, 0, 1]));
        let v6 = Announced {
            mac: String::from("a"),
            ip: "fd00::100".parse().expect("v6"),
        };
        sender.push(v6.clone());
        sender.push(onboard("a", [10, 0, 0, 2]));
        let mut batch = queue.next_batch().await.expect("a batch");
        batch.sort_by_key(|client| client.ip);
        assert_eq!(batch, [onboard("a", [10, 0, 0, 2]), v6]);
    }

    #[tokio::test]
    async fn a_burst_is_kept_whole_with_the_latest_address_per_mac() {
        let (sender, queue) = OnboardQueue::new();
        for i in 0..5000u32 {
            sender.push(onboard(&format!("mac-{i}"), [10, 0, 0, 1]));
        }
        sender.push(onboard("mac-7", [10, 0, 0, 9]));
        assert_eq!(queue.len(), 5000);
        let batch = queue.next_batch().await.expect("a batch");
        assert_eq!(batch.len(), 5000);
        assert!(batch.contains(&onboard("mac-7", [10, 0, 0, 9])));
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn the_writer_ends_after_the_last_client_once_the_server_is_gone() {
        let (sender, queue) = OnboardQueue::new();
        let copy = sender.clone();
        sender.push(onboard("a", [10, 0, 0, 1]));
        drop(sender);
        assert!(!queue.is_closed(), "a clone still serves");
        drop(copy);
        assert!(queue.is_closed());
        assert_eq!(queue.next_batch().await.map(|b| b.len()), Some(1));
        assert_eq!(queue.next_batch().await, None);
    }

    #[tokio::test]
    async fn a_waiting_writer_wakes_for_a_new_client() {
        let (sender, queue) = OnboardQueue::new();
        let writer = tokio::spawn({
            let queue = queue.clone();
            async move { queue.next_batch().await }
        });
        tokio::task::yield_now().await;
        sender.push(onboard("a", [10, 0, 0, 1]));
        let batch = writer.await.expect("join").expect("a batch");
        assert_eq!(batch, [onboard("a", [10, 0, 0, 1])]);
    }
}
