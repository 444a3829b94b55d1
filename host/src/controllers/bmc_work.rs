//! BMC operations run beside the reconcile workers, so that no worker waits on a BMC: the
//! Server reconciler's (boot the system, change or read its power, read its inventory) and
//! the BMC reconciler's probes.
//!
//! A reconcile that needs its BMC [`BmcWork::start`]s the operation on a task of its own and
//! returns at once; when the operation ends its result is kept for the object and the object
//! is queued again (the receiver of [`BmcWork::new`] feeds the controller's `reconcile_on`),
//! and the next reconcile [`BmcWork::take`]s the result. The plugin runtime already runs one
//! driver call per BMC at a time, so operations for one BMC queue there, not in the
//! reconcile workers: a BMC that answers after 20 s delays only its own objects.
//!
//! At most one operation per object is kept (running or finished), so memory is bounded by
//! the number of objects. A finished result nobody took is replaced by the next operation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc;

use crate::api::Server;
use crate::api::common::PowerState;
use crate::plugins::types::{PowerAction, System};

/// One BMC operation a Server step needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BmcOperation {
    /// One-time network boot, then power on (restart when on): the discovery boot of
    /// `attempt`.
    NetworkBoot {
        /// The discovery attempt the boot belongs to.
        attempt: u32,
    },
    /// Cut the power after a discovery (or its timeout).
    PowerOff,
    /// Apply `spec.power` and read the power state back.
    SetPower(PowerAction),
    /// Read the power state.
    ReadPower,
    /// Read the Server's system (its NICs, its inventory), without the rest of the BMC.
    ReadSystem,
    /// The end of an in-band discovery with `--inventory-cross-check`: read the system with
    /// its hardware inventory, then (`power_off`) cut the power — one operation, so the
    /// cross-check costs no extra round through the queue when the server is powered off
    /// anyway.
    ReadInventory {
        /// Power the server off after reading.
        power_off: bool,
    },
}

/// What a finished operation gave.
#[derive(Debug, Clone)]
pub enum BmcAnswer {
    /// The operation was carried out; the power state it leaves, when known.
    Done(Option<PowerState>),
    /// The power state read.
    Power(PowerState),
    /// The Server's system.
    System(Arc<System>),
    /// What [`BmcOperation::ReadInventory`] gave: the system with its inventory, or why it
    /// could not be read; and, when it powered the server off, the power state it left or
    /// why the BMC refused. (When neither worked, the operation failed as a whole.)
    Inventory {
        /// The system as read.
        system: Result<Arc<System>, BmcFailure>,
        /// The power-off's outcome, when one was asked for.
        power: Option<Result<PowerState, BmcFailure>>,
    },
}

/// Why an operation failed: a condition reason and a one-line message (never a credential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BmcFailure {
    /// Condition reason (`ConnectionFailed`, ...).
    pub reason: &'static str,
    /// What went wrong.
    pub message: String,
}

/// The outcome of an operation.
pub type BmcResult = Result<BmcAnswer, BmcFailure>;

enum Slot<O, R> {
    Running,
    Finished(O, R),
}

/// A result that says whether the BMC answered.
pub trait Answer {
    /// Whether the BMC answered (the operation did not fail).
    fn answered(&self) -> bool;
}

impl<T, E> Answer for Result<T, E> {
    fn answered(&self) -> bool {
        self.is_ok()
    }
}

/// The BMC operations of objects of kind `K` (Servers, or BMCs for their probes): at most one
/// per object, running or finished, each described by an `O` and giving an `R`.
pub struct BmcWork<K: Resource<DynamicType = ()> = Server, O = BmcOperation, R = BmcResult> {
    slots: Mutex<HashMap<String, Slot<O, R>>>,
    /// When each object's BMC last answered an operation.
    answered: Mutex<HashMap<String, Instant>>,
    wake: mpsc::UnboundedSender<ObjectRef<K>>,
}

impl<K, O, R> BmcWork<K, O, R>
where
    K: Resource<DynamicType = ()> + 'static,
    O: Send + 'static,
    R: Answer + Send + 'static,
{
    /// A new set of operations and the stream of objects whose operation finished (for the
    /// controller's `reconcile_on`).
    pub fn new() -> (Self, mpsc::UnboundedReceiver<ObjectRef<K>>) {
        let (wake, woken) = mpsc::unbounded_channel();
        (
            Self {
                slots: Mutex::default(),
                answered: Mutex::default(),
                wake,
            },
            woken,
        )
    }

    /// The finished operation of `server` and its result, handed over once; `None` while
    /// one runs or when none was started.
    pub fn take(&self, server: &str) -> Option<(O, R)> {
        let mut slots = self.slots.lock().expect("BMC work lock");
        match slots.remove(server) {
            Some(Slot::Finished(operation, result)) => Some((operation, result)),
            Some(running) => {
                slots.insert(server.to_owned(), running);
                None
            }
            None => None,
        }
    }

    /// Starts `operation` for `server` on a task of its own (the Server is queued again when
    /// it ends) unless one is running; `false` when one is. A finished result not taken yet
    /// is dropped.
    pub fn start(
        self: &Arc<Self>,
        server: &str,
        operation: O,
        future: BoxFuture<'static, R>,
    ) -> bool {
        {
            let mut slots = self.slots.lock().expect("BMC work lock");
            if matches!(slots.get(server), Some(Slot::Running)) {
                return false;
            }
            slots.insert(server.to_owned(), Slot::Running);
        }
        let (work, key) = (self.clone(), server.to_owned());
        tokio::spawn(async move {
            let result = future.await;
            if result.answered() {
                work.answered
                    .lock()
                    .expect("BMC work lock")
                    .insert(key.clone(), Instant::now());
            }
            work.slots
                .lock()
                .expect("BMC work lock")
                .insert(key.clone(), Slot::Finished(operation, result));
            let _ = work.wake.send(ObjectRef::new(&key));
        });
        true
    }

    /// Whether an operation for `server` is running.
    pub fn running(&self, server: &str) -> bool {
        matches!(
            self.slots.lock().expect("BMC work lock").get(server),
            Some(Slot::Running)
        )
    }

    /// Whether `server`'s BMC answered an operation within `interval`.
    pub fn answered_within(&self, server: &str, interval: Duration) -> bool {
        self.answered
            .lock()
            .expect("BMC work lock")
            .get(server)
            .is_some_and(|at| at.elapsed() < interval)
    }

    /// Forgets what is kept for `server` but a running operation (the Server is gone).
    pub fn forget(&self, server: &str) {
        self.answered.lock().expect("BMC work lock").remove(server);
        let mut slots = self.slots.lock().expect("BMC work lock");
        if matches!(slots.get(server), Some(Slot::Finished(..))) {
            slots.remove(server);
        }
    }

    /// How many Servers have an operation running or a result waiting.
    pub fn len(&self) -> usize {
        self.slots.lock().expect("BMC work lock").len()
    }

    /// Whether no operation is running or waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(power: PowerState) -> BoxFuture<'static, BmcResult> {
        Box::pin(async move { Ok(BmcAnswer::Done(Some(power))) })
    }

    #[tokio::test]
    async fn an_operation_runs_beside_the_caller_and_wakes_its_server_with_the_result() {
        let (work, mut woken) = BmcWork::<Server>::new();
        let work = Arc::new(work);
        let boot = BmcOperation::NetworkBoot { attempt: 1 };
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let started = work.start(
            "s1",
            boot.clone(),
            Box::pin(async move {
                let _ = released.await;
                Ok(BmcAnswer::Done(Some(PowerState::On)))
            }),
        );
        assert!(started, "the caller does not wait for the BMC");
        assert!(work.running("s1"));
        assert!(work.take("s1").is_none(), "nothing to take while it runs");
        assert!(
            !work.start("s1", BmcOperation::ReadPower, answer(PowerState::Off)),
            "one operation per Server at a time"
        );
        release.send(()).expect("running");
        assert_eq!(woken.recv().await, Some(ObjectRef::new("s1")));
        match work.take("s1") {
            Some((operation, Ok(BmcAnswer::Done(Some(PowerState::On))))) => {
                assert_eq!(operation, boot);
            }
            other => panic!("expected the boot's result, got {other:?}"),
        }
        assert!(work.is_empty(), "a result is handed over once");
        assert!(work.take("s1").is_none());
    }

    #[tokio::test]
    async fn a_result_not_taken_is_replaced_by_the_next_operation() {
        let (work, mut woken) = BmcWork::<Server>::new();
        let work = Arc::new(work);
        assert!(work.start("s1", BmcOperation::ReadPower, answer(PowerState::On)));
        woken.recv().await;
        let off = BmcOperation::SetPower(PowerAction::ForceOff);
        assert!(work.start("s1", off.clone(), answer(PowerState::Off)));
        woken.recv().await;
        assert!(matches!(
            work.take("s1"),
            Some((operation, Ok(BmcAnswer::Done(Some(PowerState::Off))))) if operation == off
        ));
    }

    #[tokio::test]
    async fn failures_are_handed_over_like_results() {
        let (work, mut woken) = BmcWork::<Server>::new();
        let work = Arc::new(work);
        let failure = BmcFailure {
            reason: "ConnectionFailed",
            message: String::from("connection refused"),
        };
        let expected = failure.clone();
        work.start(
            "s1",
            BmcOperation::ReadPower,
            Box::pin(async move { Err(failure) }),
        );
        woken.recv().await;
        assert!(matches!(work.take("s1"), Some((_, Err(got))) if got == expected));
        work.start("s2", BmcOperation::ReadPower, answer(PowerState::On));
        woken.recv().await;
        assert!(work.answered_within("s2", Duration::from_secs(60)));
        assert!(
            !work.answered_within("s1", Duration::from_secs(60)),
            "s1 failed"
        );
        work.forget("s2");
        assert!(!work.answered_within("s2", Duration::from_secs(60)));
        assert!(work.is_empty());
    }
}
