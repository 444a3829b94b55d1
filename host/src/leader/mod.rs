//! Leader election with a `coordination.k8s.io/v1` Lease, so several replicas of the
//! operator can run and only one of them reconciles.
//!
//! Every replica serves the boot server, the probe registry and the boot index (so a Service
//! in front of all replicas always answers machines); only the leader runs the Endpoint, BMC
//! and Server reconcilers and the DHCP server, and only the leader writes the status of
//! ServerBootConfigurations. A replica that loses the lease exits, so its restart rejoins as a
//! standby with no half-finished work in memory.
//!
//! The leader's controllers write through a client fenced by [`fence::WriteFence`], which
//! this module opens only as far as it has confirmed the lease in the API server.

pub mod fence;

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{oneshot, watch};

pub use fence::WriteFence;

/// Why leader election could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Lease could not be read or created.
    #[error("cannot use Lease {namespace}/{name} for leader election: {source}")]
    Lease {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// The cause.
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
    /// The lease timing is impossible.
    #[error(
        "the leader lease must last longer than its renewal margin (lease {lease:?}, renew {renew:?} before expiry)"
    )]
    Timing {
        /// Lease duration.
        lease: Duration,
        /// Renewal margin.
        renew: Duration,
    },
}

/// Where and how the lease is held.
#[derive(Debug, Clone)]
pub struct ElectionSettings {
    /// Name of the Lease.
    pub lease_name: String,
    /// Namespace of the Lease.
    pub namespace: String,
    /// This replica's identity (the Lease's `holderIdentity` while it leads).
    pub identity: String,
    /// How long the lease lasts without renewal; a crashed leader is replaced after at most
    /// this long.
    pub lease_duration: Duration,
    /// How long before expiry the leader renews.
    pub renew_before: Duration,
}

/// A unique identity for this process: the host name (the Pod's name in a cluster) and a
/// random suffix, so a restarted container never mistakes its predecessor's lease for its own.
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| String::from("ferrometal"));
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{host}_{:08x}", random as u32)
}

/// Whether this replica leads, as it changes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Leadership {
    state: watch::Receiver<bool>,
    // Keeps the channel open when there is no election (`always`), so waits never end.
    _always: Option<Arc<watch::Sender<bool>>>,
}

impl Leadership {
    /// Leadership without an election: this process always leads.
    pub fn always() -> Self {
        let (sender, state) = watch::channel(true);
        Self {
            state,
            _always: Some(Arc::new(sender)),
        }
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        *self.state.borrow()
    }

    /// Returns once this replica leads.
    pub async fn acquired(&mut self) {
        if self.state.wait_for(|leads| *leads).await.is_err() {
            // The elector stopped before ever leading: never lead.
            std::future::pending::<()>().await;
        }
    }

    /// Returns once this replica no longer leads (or can no longer know that it does).
    pub async fn lost(&mut self) {
        let _ = self.state.wait_for(|leads| !*leads).await;
    }

    /// Yields each time this replica becomes the leader.
    pub fn acquisitions(&self) -> impl Stream<Item = ()> + Send + 'static {
        futures::stream::unfold(self.state.clone(), |mut state| async move {
            loop {
                state.changed().await.ok()?;
                if *state.borrow_and_update() {
                    return Some(((), state));
                }
            }
        })
    }
}

/// The running election; [`Elector::release`] gives the lease up on shutdown.
#[derive(Debug)]
pub struct Elector {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    /// Ends with the campaign (its leadership channel closes).
    confirmer: tokio::task::JoinHandle<()>,
}

impl Elector {
    /// Stops campaigning and releases the lease if held, so a standby takes over at once
    /// instead of after the lease expires.
    pub async fn release(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
        let _ = self.confirmer.await;
    }
}

/// Metric of this replica's leadership.
#[derive(Debug, Clone, Default)]
pub struct LeaderMetrics {
    leader: Gauge,
}

impl LeaderMetrics {
    /// Sets the gauge (for a process that leads without an election).
    pub fn set_leading(&self, leads: bool) {
        self.leader.set(i64::from(leads));
    }

    /// Registers `ferrometal_leader`.
    pub fn register(&self, registry: &mut Registry) {
        registry.sub_registry_with_prefix("ferrometal").register(
            "leader",
            "1 while this replica holds the leader lease (always 1 without leader election)",
            self.leader.clone(),
        );
    }
}

/// Starts campaigning for the lease in the background; `fence` opens as far as the lease is
/// confirmed to be this replica's (its client must not be the fenced one).
pub async fn elect(
    client: Client,
    settings: ElectionSettings,
    metrics: LeaderMetrics,
    fence: WriteFence,
) -> Result<(Leadership, Elector), Error> {
    let seconds = |d: Duration| d.as_secs().max(1);
    if seconds(settings.renew_before) >= seconds(settings.lease_duration) {
        return Err(Error::Timing {
            lease: settings.lease_duration,
            renew: settings.renew_before,
        });
    }
    let confirmer = LeaseConfirmer {
        leases: Api::namespaced(client.clone(), &settings.namespace),
        settings: settings.clone(),
        fence,
    };
    let manager = LeaseManagerBuilder::new(client, &settings.lease_name)
        .with_namespace(&settings.namespace)
        .with_identity(&settings.identity)
        .with_duration(seconds(settings.lease_duration))
        .with_grace(seconds(settings.renew_before))
        .with_field_manager(format!("ferrometal-leader-{}", settings.identity))
        .build()
        .await
        .map_err(|source| Error::Lease {
            namespace: settings.namespace.clone(),
            name: settings.lease_name.clone(),
            source,
        })?;
    let (sender, state) = watch::channel(false);
    let (stop, stopped) = oneshot::channel();
    let confirming = tokio::spawn(confirmer.clone().run(state.clone()));
    let task = tokio::spawn(campaign(
        manager, settings, confirmer, sender, stopped, metrics,
    ));
    Ok((
        Leadership {
            state,
            _always: None,
        },
        Elector {
            stop,
            task,
            confirmer: confirming,
        },
    ))
}

/// Keeps the write fence open as far as the Lease in the API server says this replica holds
/// it.
#[derive(Clone)]
struct LeaseConfirmer {
    leases: Api<Lease>,
    settings: ElectionSettings,
    fence: WriteFence,
}

impl LeaseConfirmer {
    /// How long before the confirmed expiry the fence closes: writes stop before a standby
    /// may take over.
    fn margin(&self) -> Duration {
        self.settings.renew_before / 2
    }

    /// How often the lease is read while leading: often enough that a renewal is seen well
    /// within the margin.
    fn interval(&self) -> Duration {
        (self.settings.renew_before / 4).clamp(Duration::from_millis(250), Duration::from_secs(1))
    }

    /// Reads the Lease; opens the fence until a margin before its expiry if it is this
    /// replica's, closes it if it is not. An unanswered read leaves the fence to close on
    /// its own when its time is up. Returns whether the lease is confirmed.
    async fn confirm(&self) -> bool {
        let asked = std::time::SystemTime::now();
        let read = tokio::time::timeout(
            self.settings.renew_before,
            self.leases.get_opt(&self.settings.lease_name),
        )
        .await;
        let lease = match read {
            Ok(Ok(lease)) => lease,
            Ok(Err(error)) => {
                tracing::debug!(%error, "cannot read the leader lease to confirm it");
                return false;
            }
            Err(_) => {
                tracing::debug!("reading the leader lease to confirm it timed out");
                return false;
            }
        };
        let spec = lease.and_then(|lease| lease.spec).unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(self.settings.identity.as_str());
        let lasts = spec
            .lease_duration_seconds
            .and_then(|seconds| u64::try_from(seconds).ok())
            .map_or(self.settings.lease_duration, Duration::from_secs)
            .min(self.settings.lease_duration);
        let until = spec
            .renew_time
            .or(spec.acquire_time)
            .map(|renewed| std::time::SystemTime::from(renewed.0) + lasts - self.margin())
            // A renewal whose time was up before the read was even sent confirms nothing.
            .filter(|until| *until > asked);
        match until {
            Some(until) if ours => {
                self.fence.open_until(until);
                true
            }
            _ => {
                self.fence.close();
                false
            }
        }
    }

    /// Confirms the lease every [`Self::interval`] while `leads` says this replica leads,
    /// and keeps the fence closed while it does not.
    async fn run(self, mut leads: watch::Receiver<bool>) {
        loop {
            if *leads.borrow_and_update() {
                self.confirm().await;
            } else {
                self.fence.close();
            }
            tokio::select! {
                () = tokio::time::sleep(self.interval()) => {}
                changed = leads.changed() => if changed.is_err() {
                    // The election ended.
                    self.fence.close();
                    return;
                }
            }
        }
    }
}

async fn campaign(
    manager: LeaseManager,
    settings: ElectionSettings,
    confirmer: LeaseConfirmer,
    sender: watch::Sender<bool>,
    mut stopped: oneshot::Receiver<()>,
    metrics: LeaderMetrics,
) {
    let span = tracing::info_span!("leader-election", lease = %format!("{}/{}", settings.namespace, settings.lease_name), identity = %settings.identity);
    let _entered = span.enter();
    tracing::info!("waiting to become the leader");
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => {
                confirmer.fence.close();
                if *sender.borrow() {
                    match manager.release().await {
                        Ok(()) => tracing::info!("released the leader lease"),
                        Err(error) => tracing::warn!(%error, "could not release the leader lease; a standby takes over when it expires"),
                    }
                }
                metrics.leader.set(0);
                return;
            }
            changed = manager.changed() => match changed {
                Ok(leads) => {
                    if leads {
                        // The controllers start writing at once: open the fence first.
                        if !confirmer.confirm().await {
                            tracing::warn!("holding the leader lease, but could not confirm it yet; writes wait for that");
                        }
                        tracing::info!("became the leader");
                    } else {
                        confirmer.fence.close();
                        tracing::warn!("lost the leader lease");
                    }
                    metrics.leader.set(i64::from(leads));
                    sender.send_replace(leads);
                }
                Err(error) => {
                    // Unsure whether the lease is still ours: stop leading (a leader exits),
                    // keep campaigning as a standby.
                    confirmer.fence.close();
                    if sender.send_replace(false) {
                        tracing::warn!(%error, "cannot renew the leader lease; stepping down");
                    } else {
                        tracing::warn!(%error, "leader election request failed; retrying");
                    }
                    metrics.leader.set(0);
                    tokio::time::sleep(settings.renew_before.min(Duration::from_secs(2))).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn elected() -> (watch::Sender<bool>, Leadership) {
        let (sender, state) = watch::channel(false);
        (
            sender,
            Leadership {
                state,
                _always: None,
            },
        )
    }

    #[tokio::test]
    async fn without_an_election_this_process_leads_and_never_loses() {
        let mut leadership = Leadership::always();
        assert!(leadership.is_leader());
        leadership.acquired().await;
        let lost = tokio::time::timeout(Duration::from_millis(50), leadership.lost()).await;
        assert!(lost.is_err(), "leadership without election is never lost");
        let mut acquisitions = std::pin::pin!(leadership.acquisitions());
        let next = tokio::time::timeout(Duration::from_millis(50), acquisitions.next()).await;
        assert!(next.is_err(), "and never acquired anew");
    }

    #[tokio::test]
    async fn acquisitions_yield_once_per_rise_and_loss_is_seen() {
        let (sender, mut leadership) = elected();
        assert!(!leadership.is_leader());
        let mut acquisitions = std::pin::pin!(leadership.acquisitions());
        sender.send_replace(true);
        acquisitions.next().await.expect("first acquisition");
        assert!(leadership.is_leader());
        sender.send_replace(false);
        leadership.lost().await;
        sender.send_replace(true);
        acquisitions.next().await.expect("second acquisition");
        drop(sender);
        assert!(
            acquisitions.next().await.is_none(),
            "the stream ends with the election"
        );
        leadership.lost().await;
    }

    #[test]
    fn identities_differ_per_process_start() {
        assert_ne!(default_identity(), default_identity());
    }
}
