//! The supervisor of `ferrometal run`: one [`JoinSet`] holding every long-running task by
//! name, and the one shutdown request they all stop on.
//!
//! Two kinds of task:
//! - **listeners** ([`Supervisor::listen`]: metrics, boot server, DHCP, TFTP) are dropped the
//!   moment shutdown is requested, so their ports are free at once for a replacement;
//! - **workers** ([`Supervisor::spawn`]: the controllers, the fetch recorder, the DHCP Endpoint
//!   writer) see the same request themselves and end once their work in hand is done
//!   (running reconciles finish, pending records are written).
//!
//! A task that ends before shutdown was requested — a listener whose socket failed, a
//! controller whose stream ended, a panic — is logged with its name and stops the operator
//! with an error: no half-running process. On shutdown every task is joined, for at most a
//! grace period; any still running then is named in the log and aborted.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::watch;
use tokio::task::{Id, JoinError, JoinHandle, JoinSet};

/// The operator's one shutdown request, shared by everything that stops on it (listeners,
/// controllers, the wait for leadership). Clones resolve together.
pub type Shutdown = Shared<BoxFuture<'static, ()>>;

/// What a listener's failure may carry.
type BoxError = Box<dyn StdError + Send + Sync>;

/// A task's end as the set reports it.
type Joined = Result<(Id, Result<(), BoxError>), JoinError>;

/// Why a task stopped the operator.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The task returned an error.
    #[error("the {task} failed: {source}")]
    Failed {
        /// The task's name.
        task: String,
        /// Its error.
        #[source]
        source: BoxError,
    },
    /// The task ended without an error while the operator was not stopping.
    #[error("the {task} ended although the operator was not stopping")]
    Ended {
        /// The task's name.
        task: String,
    },
    /// The task panicked (or was cancelled from outside).
    #[error("the {task} panicked: {message}")]
    Panicked {
        /// The task's name.
        task: String,
        /// The panic's message.
        message: String,
    },
}

/// What ended [`Supervisor::watch`].
#[derive(Debug)]
pub enum Watched<T> {
    /// The awaited event happened.
    Happened(T),
    /// Shutdown was requested.
    Stopping,
    /// A task ended unexpectedly (already logged); the operator must stop.
    Failed(TaskError),
}

/// How [`Supervisor::stop`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every task ended within the grace period.
    All,
    /// Some did not and were aborted (they are named in the log).
    GraceExceeded,
    /// The `cut_short` event came first; the remaining tasks were aborted.
    CutShort,
}

/// Owns every long-running task of the operator and the shutdown request.
pub struct Supervisor {
    tasks: JoinSet<Result<(), BoxError>>,
    names: HashMap<Id, String>,
    stop: watch::Sender<bool>,
    shutdown: Shutdown,
    /// The signal listener: outside the set because it must keep listening (for a second
    /// signal) while the set drains; aborted once it has.
    signals: Option<JoinHandle<()>>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    /// A supervisor with no tasks whose shutdown nothing has requested yet.
    pub fn new() -> Self {
        let (stop, mut stopping) = watch::channel(false);
        let shutdown = async move {
            // The supervisor keeps a sender until it has joined every task; were they all
            // dropped, the request would simply never come.
            if stopping.wait_for(|stop| *stop).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        .boxed()
        .shared();
        Self {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            stop,
            shutdown,
            signals: None,
        }
    }

    /// Resolves once shutdown is requested (for controllers' `graceful_shutdown_on` and
    /// workers that finish their work in hand).
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Requests shutdown: listeners are dropped, workers finish what they hold.
    pub fn request_stop(&self) {
        self.stop.send_replace(true);
    }

    /// Runs a listener until shutdown, when it is dropped (freeing its socket at once), or
    /// until it fails, which stops the operator.
    pub fn listen<E>(
        &mut self,
        name: impl Into<String>,
        serve: impl Future<Output = Result<(), E>> + Send + 'static,
    ) where
        E: Into<BoxError>,
    {
        let shutdown = self.shutdown();
        self.start(name.into(), async move {
            tokio::select! {
                result = serve => result.map_err(Into::into),
                () = shutdown => Ok(()),
            }
        });
    }

    /// Runs a worker that ends by itself once shutdown is requested and its work in hand is
    /// done; ending any earlier stops the operator.
    pub fn spawn(
        &mut self,
        name: impl Into<String>,
        work: impl Future<Output = ()> + Send + 'static,
    ) {
        self.start(name.into(), work.map(Ok));
    }

    fn start(
        &mut self,
        name: String,
        task: impl Future<Output = Result<(), BoxError>> + Send + 'static,
    ) {
        tracing::debug!(task = %name, "task started");
        let handle = self.tasks.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Listens for SIGINT and SIGTERM from now on: the first one is logged once and requests
    /// shutdown (listeners close, controllers stop taking work and let running reconciles
    /// finish); a second one exits at once with status 130.
    ///
    /// One listener for the whole process, instead of kube's `shutdown_on_signal` per
    /// controller, which printed its Ctrl-C prompt once per controller.
    pub fn stop_on_signal(&mut self) {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                let stop = self.stop.clone();
                self.signals = Some(tokio::spawn(async move {
                    let mut next = async || {
                        tokio::select! {
                            _ = interrupt.recv() => "SIGINT",
                            _ = terminate.recv() => "SIGTERM",
                        }
                    };
                    let signal = next().await;
                    tracing::info!(
                        signal,
                        "shutting down: ports closed, running reconciles finish first; send the signal again to exit at once"
                    );
                    stop.send_replace(true);
                    let signal = next().await;
                    tracing::warn!(
                        signal,
                        "second signal: exiting without waiting for reconciles"
                    );
                    std::process::exit(130);
                }));
            }
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!(%error, "cannot listen for SIGINT and SIGTERM; stop the operator with SIGKILL");
            }
        }
    }

    /// Waits for `event` while watching the tasks: returns early when shutdown is requested
    /// or when a task ends, which before shutdown is always unexpected (logged here with the
    /// task's name).
    pub async fn watch<T>(&mut self, event: impl Future<Output = T>) -> Watched<T> {
        let shutdown = self.shutdown();
        tokio::select! {
            biased;
            () = shutdown => Watched::Stopping,
            Some(joined) = self.tasks.join_next_with_id() => Watched::Failed(self.failure(joined)),
            value = event => Watched::Happened(value),
        }
    }

    /// Logs the task that ended before shutdown and any that ended with it, and returns the
    /// cause: a task that failed or panicked rather than one that merely ended (a DHCP
    /// Endpoint writer ends because the failed DHCP server dropped its channel).
    fn failure(&mut self, first: Joined) -> TaskError {
        let mut ended = vec![self.unexpected(first)];
        while let Some(joined) = self.tasks.try_join_next_with_id() {
            ended.push(self.unexpected(joined));
        }
        for error in &ended {
            tracing::error!(%error, "stopping the operator: a task ended unexpectedly");
        }
        let cause = ended
            .iter()
            .position(|error| !matches!(error, TaskError::Ended { .. }))
            .unwrap_or(0);
        ended.swap_remove(cause)
    }

    /// What a task that ended before shutdown means.
    fn unexpected(&mut self, joined: Joined) -> TaskError {
        match joined {
            Ok((id, Ok(()))) => TaskError::Ended {
                task: self.name(id),
            },
            Ok((id, Err(source))) => TaskError::Failed {
                task: self.name(id),
                source,
            },
            Err(error) => TaskError::Panicked {
                task: self.name(error.id()),
                message: panic_message(error),
            },
        }
    }

    fn name(&mut self, id: Id) -> String {
        self.names
            .remove(&id)
            .unwrap_or_else(|| String::from("unnamed task"))
    }

    /// Requests shutdown and joins every task, for at most `grace`, or until `cut_short`
    /// happens (e.g. the leader lease is lost while reconciles finish); tasks still running
    /// then are aborted, and after a full grace period named in the log. The signal
    /// listener stays up until the set is drained, so a second signal still exits at once.
    pub async fn stop(mut self, grace: Duration, cut_short: impl Future<Output = ()>) -> Stopped {
        self.request_stop();
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline, cut_short);
        let stopped = loop {
            tokio::select! {
                biased;
                joined = self.tasks.join_next_with_id() => match joined {
                    Some(joined) => self.stopped(joined),
                    None => break Stopped::All,
                },
                () = &mut cut_short => break Stopped::CutShort,
                () = &mut deadline => break Stopped::GraceExceeded,
            }
        };
        if stopped == Stopped::GraceExceeded {
            let mut still: Vec<&str> = self.names.values().map(String::as_str).collect();
            still.sort_unstable();
            tracing::warn!(tasks = ?still, ?grace, "tasks did not stop in time; aborting them");
        }
        self.abort_all().await;
        stopped
    }

    /// Requests shutdown and aborts every task at once, without letting reconciles finish
    /// (for a replica that must not act any more, such as one that lost the lease).
    pub async fn abort(mut self) {
        self.request_stop();
        self.abort_all().await;
    }

    async fn abort_all(&mut self) {
        self.tasks.abort_all();
        while let Some(joined) = self.tasks.join_next_with_id().await {
            match joined {
                Err(error) if error.is_cancelled() => {
                    let task = self.name(error.id());
                    tracing::debug!(%task, "task aborted");
                }
                joined => self.stopped(joined),
            }
        }
        if let Some(signals) = self.signals.take() {
            signals.abort();
            let _ = signals.await;
        }
    }

    /// Logs how a task ended during shutdown.
    fn stopped(&mut self, joined: Joined) {
        match joined {
            Ok((id, Ok(()))) => {
                let task = self.name(id);
                tracing::debug!(%task, "task stopped");
            }
            Ok((id, Err(error))) => {
                let task = self.name(id);
                tracing::error!(%task, %error, "task failed while stopping");
            }
            Err(error) => {
                let task = self.name(error.id());
                let message = panic_message(error);
                tracing::error!(%task, %message, "task panicked while stopping");
            }
        }
    }
}

/// The message of a panicked task (or why else it did not finish).
fn panic_message(error: JoinError) -> String {
    if !error.is_panic() {
        return error.to_string();
    }
    let payload = error.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| String::from("(not a text)"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    const LONG: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn a_failing_listener_stops_the_operator_with_its_name() {
        let mut supervisor = Supervisor::new();
        supervisor.listen("boot server", async {
            Err::<(), _>(std::io::Error::other("address in use"))
        });
        let watched = supervisor.watch(std::future::pending::<()>()).await;
        let Watched::Failed(error) = watched else {
            panic!("not a failure: {watched:?}");
        };
        assert_eq!(error.to_string(), "the boot server failed: address in use");
        assert_eq!(
            supervisor.stop(LONG, std::future::pending()).await,
            Stopped::All
        );
    }

    #[tokio::test]
    async fn the_failure_is_named_rather_than_a_task_that_ended_because_of_it() {
        let mut supervisor = Supervisor::new();
        let (onboard, mut onboarded) = tokio::sync::mpsc::channel::<()>(1);
        supervisor.spawn("DHCP Endpoint writer", async move {
            while onboarded.recv().await.is_some() {}
        });
        supervisor.listen("DHCP server", async move {
            let _onboard = onboard;
            Err::<(), _>(std::io::Error::other("cannot read the lease file"))
        });
        let watched = supervisor.watch(std::future::pending::<()>()).await;
        let Watched::Failed(error) = watched else {
            panic!("not a failure: {watched:?}");
        };
        assert_eq!(
            error.to_string(),
            "the DHCP server failed: cannot read the lease file"
        );
    }

    #[tokio::test]
    async fn a_worker_that_ends_before_shutdown_is_unexpected() {
        let mut supervisor = Supervisor::new();
        supervisor.spawn("Server controller", async {});
        let watched = supervisor.watch(std::future::pending::<()>()).await;
        assert!(
            matches!(&watched, Watched::Failed(TaskError::Ended { task }) if task == "Server controller"),
            "{watched:?}"
        );
    }

    #[tokio::test]
    async fn a_panicking_task_is_named_with_its_message() {
        let mut supervisor = Supervisor::new();
        supervisor.spawn("fetch recorder", async { panic!("boom") });
        let watched = supervisor.watch(std::future::pending::<()>()).await;
        let Watched::Failed(error) = watched else {
            panic!("not a failure: {watched:?}");
        };
        assert_eq!(error.to_string(), "the fetch recorder panicked: boom");
    }

    #[tokio::test]
    async fn watch_returns_the_event_while_tasks_run() {
        let mut supervisor = Supervisor::new();
        supervisor.listen(
            "metrics server",
            std::future::pending::<Result<(), BoxError>>(),
        );
        let watched = supervisor.watch(async { 7 }).await;
        assert!(matches!(watched, Watched::Happened(7)), "{watched:?}");
    }

    #[tokio::test]
    async fn a_requested_stop_is_seen_before_the_tasks_it_ends() {
        let mut supervisor = Supervisor::new();
        let shutdown = supervisor.shutdown();
        supervisor.spawn("BMC controller", shutdown);
        supervisor.request_stop();
        let watched = supervisor.watch(std::future::pending::<()>()).await;
        assert!(matches!(watched, Watched::Stopping), "{watched:?}");
    }

    #[tokio::test]
    async fn stopping_drops_listeners_at_once_and_lets_workers_finish() {
        let mut supervisor = Supervisor::new();
        let (dropped, listener_dropped) = tokio::sync::oneshot::channel::<()>();
        supervisor.listen("DHCP server", async move {
            let _dropped = dropped;
            std::future::pending::<Result<(), BoxError>>().await
        });
        let finished = Arc::new(AtomicBool::new(false));
        let shutdown = supervisor.shutdown();
        let worker_finished = finished.clone();
        supervisor.spawn("Endpoint controller", async move {
            shutdown.await;
            // A reconcile still running when the request came.
            tokio::time::sleep(Duration::from_millis(50)).await;
            worker_finished.store(true, Ordering::SeqCst);
        });
        assert_eq!(
            supervisor.stop(LONG, std::future::pending()).await,
            Stopped::All
        );
        assert!(
            finished.load(Ordering::SeqCst),
            "the worker finished its work"
        );
        assert!(listener_dropped.await.is_err(), "the listener was dropped");
    }

    #[tokio::test]
    async fn a_task_that_ignores_shutdown_is_aborted_after_the_grace_period() {
        let mut supervisor = Supervisor::new();
        let (dropped, aborted) = tokio::sync::oneshot::channel::<()>();
        supervisor.spawn("stuck worker", async move {
            let _dropped = dropped;
            std::future::pending::<()>().await;
        });
        let stopped = supervisor
            .stop(Duration::from_millis(20), std::future::pending())
            .await;
        assert_eq!(stopped, Stopped::GraceExceeded);
        assert!(aborted.await.is_err(), "the stuck task is gone");
    }

    #[tokio::test]
    async fn cut_short_aborts_what_still_runs() {
        let mut supervisor = Supervisor::new();
        supervisor.spawn("stuck worker", std::future::pending::<()>());
        assert_eq!(supervisor.stop(LONG, async {}).await, Stopped::CutShort);
    }
}
