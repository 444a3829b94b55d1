//! Replies awaited by transaction id: a fleet's DHCP clients (v4 and v6) serve every BMC and
//! machine from one socket, so a receiving task hands each reply to whoever waits for its
//! transaction, and the sender retries until one arrives.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

/// Waiters by transaction id.
#[derive(Debug)]
pub struct Transactions<Id, Reply> {
    pending: Mutex<HashMap<Id, oneshot::Sender<Reply>>>,
}

impl<Id, Reply> Default for Transactions<Id, Reply> {
    fn default() -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
        }
    }
}

impl<Id: Hash + Eq + Copy, Reply> Transactions<Id, Reply> {
    /// Hands `reply` to whoever waits for transaction `id` (dropped when nobody does: a late
    /// answer to a retried message, or another client's).
    pub fn deliver(&self, id: Id, reply: Reply) {
        let waiter = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        if let Some(waiter) = waiter {
            let _ = waiter.send(reply);
        }
    }

    /// Sends (with `send`) and waits `timeout` for the reply to transaction `id`, up to
    /// `attempts` times; `Ok(None)` when none came.
    pub async fn exchange<E, F>(
        &self,
        id: Id,
        attempts: u32,
        timeout: Duration,
        send: impl Fn() -> F,
    ) -> Result<Option<Reply>, E>
    where
        F: Future<Output = Result<(), E>>,
    {
        for _ in 0..attempts {
            let (sender, answer) = oneshot::channel();
            self.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id, sender);
            if let Err(error) = send().await {
                self.forget(id);
                return Err(error);
            }
            match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(reply)) => return Ok(Some(reply)),
                _ => self.forget(id),
            }
        }
        Ok(None)
    }

    fn forget(&self, id: Id) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_reply_reaches_the_waiter_of_its_transaction_and_a_silent_one_is_retried() {
        let transactions: Arc<Transactions<u32, &'static str>> = Arc::default();
        let sent = Arc::new(AtomicU32::new(0));
        let answered = {
            let (transactions, sent) = (transactions.clone(), sent.clone());
            transactions
                .clone()
                .exchange::<(), _>(7, 3, Duration::from_secs(5), move || {
                    let (transactions, sent) = (transactions.clone(), sent.clone());
                    async move {
                        sent.fetch_add(1, Ordering::Relaxed);
                        transactions.deliver(8, "another client's");
                        transactions.deliver(7, "ours");
                        Ok(())
                    }
                })
                .await
        };
        assert_eq!(answered, Ok(Some("ours")));
        assert_eq!(sent.load(Ordering::Relaxed), 1);
        let unanswered = transactions
            .exchange::<(), _>(9, 2, Duration::from_millis(10), || {
                let sent = sent.clone();
                async move {
                    sent.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
            })
            .await;
        assert_eq!(unanswered, Ok(None));
        assert_eq!(
            sent.load(Ordering::Relaxed),
            3,
            "sent once more per attempt"
        );
        assert_eq!(
            transactions
                .exchange(10, 2, Duration::from_secs(5), || async { Err("no route") })
                .await,
            Err("no route")
        );
    }
}
