//! Retry delays after failed reconciles: per object, doubling with each failure in a row,
//! capped, and forgotten at the object's next success. A conflict is retried within a second;
//! an API server that keeps refusing an object is asked less and less often.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::controller::Action;

use super::Error;
use crate::telemetry::ControllerMetrics;

/// Failures in a row per object (keyed by [`super::object_key`]).
#[derive(Debug)]
pub struct ErrorBackoff {
    base: Duration,
    cap: Duration,
    streaks: Mutex<HashMap<String, u32>>,
}

impl Default for ErrorBackoff {
    /// 1 s after the first failure, doubling, at most 5 minutes.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(300))
    }
}

impl ErrorBackoff {
    /// A backoff starting at `base` and never longer than `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            streaks: Mutex::default(),
        }
    }

    /// Records a failure of `key` and returns how long to wait before retrying it.
    pub fn failed(&self, key: &str) -> Duration {
        let mut streaks = self
            .streaks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let streak = streaks.entry(key.to_owned()).or_default();
        let delay = self
            .base
            .saturating_mul(1u32 << (*streak).min(20))
            .min(self.cap);
        *streak = streak.saturating_add(1);
        delay
    }

    /// Records a success of `key`: its next failure starts again at the base delay.
    pub fn succeeded(&self, key: &str) {
        self.streaks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

/// The error policy every controller shares: logs the failure with its kind, counts it, and
/// retries the object after its backoff.
pub fn retry_after(
    controller: &'static str,
    key: &str,
    error: &Error,
    backoff: &ErrorBackoff,
    metrics: &ControllerMetrics,
) -> Action {
    let kind = error.kind();
    metrics.error(controller, kind);
    let delay = backoff.failed(key);
    tracing::warn!(%error, kind, object = key, retry_in = ?delay, "{controller} reconcile failed");
    Action::requeue(delay)
}

impl Error {
    /// What kind of failure this is, for the errors metric: `conflict`, `not-found`,
    /// `forbidden`, `invalid`, `throttled`, `api-server-error`, `api` (another refusal) or
    /// `transport` (no answer from the API server).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(status)) => match status.code {
                409 => "conflict",
                404 => "not-found",
                401 | 403 => "forbidden",
                400 | 422 => "invalid",
                429 => "throttled",
                500..=599 => "api-server-error",
                _ => "api",
            },
            Self::Kube(_) => "transport",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_in_a_row_double_up_to_the_cap_and_a_success_resets() {
        let backoff = ErrorBackoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let delays: Vec<u64> = (0..6).map(|_| backoff.failed("a").as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
        assert_eq!(
            backoff.failed("b"),
            Duration::from_secs(1),
            "per object, not per controller"
        );
        backoff.succeeded("a");
        assert_eq!(backoff.failed("a"), Duration::from_secs(1));
        // A very long streak neither overflows nor passes the cap.
        for _ in 0..100 {
            assert!(backoff.failed("c") <= Duration::from_secs(10));
        }
    }
}
