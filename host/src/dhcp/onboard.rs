//! BMCs waiting for their Endpoint: the DHCP server hands each acknowledged allow-listed
//! client over without waiting, and the Endpoint writer takes them in batches.
//!
//! Nothing is dropped however many BMCs ask at once (a row of racks powering up): the queue
//! keeps the latest address per MAC, so its size is bounded by the number of MACs the DHCP
//! server leases to (its address pool), not by how often they ask.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use super::reply::Onboard;

#[derive(Debug, Default)]
struct Pending {
    by_mac: HashMap<String, Ipv4Addr>,
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
    pub fn push(&self, onboard: Onboard) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_mac
            .insert(onboard.mac, onboard.ip);
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
    pub async fn next_batch(&self) -> Option<Vec<Onboard>> {
        loop {
            {
                let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                if !pending.by_mac.is_empty() {
                    return Some(
                        pending
                            .by_mac
                            .drain()
                            .map(|(mac, ip)| Onboard { mac, ip })
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
    pub fn push(&self, onboard: Onboard) {
        self.0.0.push(onboard);
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
    use super::*;

    fn onboard(mac: &str, ip: [u8; 4]) -> Onboard {
        Onboard {
            mac: mac.to_owned(),
            ip: Ipv4Addr::from(ip),
        }
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
