//! `ferrometal run`: the operator process.
//!
//! - [`config`]: the flags (each also an env var) and their conversion into typed
//!   [`config::Settings`], failing with the flag's name;
//! - [`wiring`]: from settings and a Kubernetes client to running parts (metrics, plugins,
//!   the boot server, the controllers' contexts), and the controllers the leader starts;
//! - [`supervisor`]: the [`Supervisor`] that owns every server and controller task, stops
//!   them all on SIGINT/SIGTERM, and stops the operator when one of them ends unexpectedly.
//!
//! This module holds the sequence: check, wire, elect, lead, stop.

mod config;
mod supervisor;
mod wiring;

use std::time::Duration;

use anyhow::Context as _;
use ferrometal::leader::{Leadership, WriteFence};

pub use config::RunArgs;
use config::Settings;
use supervisor::{Stopped, Supervisor, TaskError, Watched};

/// How long a shutdown waits for the tasks to stop: longer than the 60-s deadline of a BMC
/// driver call, so a reconcile waiting on one finishes. Tasks still running after it are
/// named in the log and aborted (the exit stays a clean one: the stop was asked for).
const STOP_GRACE: Duration = Duration::from_secs(75);

/// How long the tasks get to stop when one of them ended unexpectedly: the process is
/// broken and should restart soon, and reconciles are safe to cut (as in a crash, the next
/// leader redoes them).
const FAILURE_GRACE: Duration = Duration::from_secs(10);

/// Runs the operator until SIGINT/SIGTERM (Ok), until the leader lease is lost or a task
/// ends unexpectedly (Err, so that a restart rejoins as a standby).
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let settings = Settings::try_from(args)?;
    let config = kube::Config::infer()
        .await
        .context("cannot reach the Kubernetes API (set KUBECONFIG or run in a cluster)")?;
    let election = settings
        .election
        .as_ref()
        .map(|election| election.settings(&config.default_namespace));
    // Without an election this process always leads; with one, the leader's writes wait for
    // the lease to be confirmed.
    let fence = match election {
        Some(_) => WriteFence::closed(),
        None => WriteFence::always_open(),
    };
    let clients = wiring::Clients::new(config, election.as_ref(), &fence)?;
    wiring::check_crds(&clients.any_replica).await?;

    let mut supervisor = Supervisor::new();
    let wired = wiring::wire(&settings, &clients, &mut supervisor).await?;
    // Campaign only once everything is validated, so a replica that cannot run never holds
    // the lease.
    let (mut leadership, elector) =
        wiring::elect(election, &clients, fence, wired.leader_metrics).await?;
    wired
        .boot_configurations
        .start(leadership.clone(), &mut supervisor);
    // Listening before the line that says so: a test (or a user) who saw it can stop us.
    supervisor.stop_on_signal();
    tracing::info!("ferrometal {} running", env!("CARGO_PKG_VERSION"));

    let ending = lead(&mut supervisor, &mut leadership, wired.leader).await;
    let result = match ending {
        Ending::Stopped { led } => {
            let lost = async {
                if led {
                    leadership.lost().await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            match supervisor.stop(STOP_GRACE, lost).await {
                Stopped::CutShort => Err(lost_lease()),
                Stopped::All | Stopped::GraceExceeded => Ok(()),
            }
        }
        Ending::Failed(error) => {
            supervisor.stop(FAILURE_GRACE, std::future::pending()).await;
            Err(error.into())
        }
        Ending::LeaseLost => {
            // Exit at once, without finishing reconciles: another replica leads now.
            supervisor.abort().await;
            Err(lost_lease())
        }
    };
    if let Some(elector) = elector {
        elector.release().await;
    }
    result?;
    tracing::info!("stopped");
    Ok(())
}

/// Why [`lead`] returned.
enum Ending {
    /// Shutdown was requested; `led` says whether this replica was leading.
    Stopped {
        /// Whether the leader's tasks run (so losing the lease still matters).
        led: bool,
    },
    /// A task ended unexpectedly.
    Failed(TaskError),
    /// The leader lease was lost.
    LeaseLost,
}

/// Waits for leadership, then starts the leader's tasks and runs until shutdown, a task's
/// unexpected end, or the loss of the lease.
async fn lead(
    supervisor: &mut Supervisor,
    leadership: &mut Leadership,
    leader: wiring::Leader,
) -> Ending {
    match supervisor.watch(leadership.acquired()).await {
        Watched::Happened(()) => leader.start(supervisor),
        Watched::Stopping => return Ending::Stopped { led: false },
        Watched::Failed(error) => return Ending::Failed(error),
    }
    match supervisor.watch(leadership.lost()).await {
        Watched::Happened(()) => Ending::LeaseLost,
        Watched::Stopping => Ending::Stopped { led: true },
        Watched::Failed(error) => Ending::Failed(error),
    }
}

fn lost_lease() -> anyhow::Error {
    anyhow::anyhow!("lost the leader lease; exiting so that a restart rejoins as a standby")
}
