//! The steps of each Server's discovery as this process saw them happen: the network boot
//! the Server reconciler requested and the fetches the boot server answered, recorded at the
//! moment they happen (a discovery that takes a second loses none of them, as sampling the
//! objects would). Bounded: a few steps per Server, the least recently active Server
//! forgotten first beyond a limit.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock, PoisonError};

use k8s_openapi::jiff::Timestamp;

/// The step: the Server reconciler requested the one-time network boot.
pub const BOOT_REQUESTED: &str = "Network boot requested";
/// The step: the machine fetched its iPXE script.
pub const SCRIPT_FETCHED: &str = "iPXE script fetched";
/// The step: the machine fetched its ignition.
pub const IGNITION_FETCHED: &str = "Ignition fetched";
/// The step: the discovery system said it booted.
pub const BOOT_STATE_RECEIVED: &str = "Boot state received";

/// Steps kept per Server (a discovery has six; retries add more).
const PER_SERVER: usize = 16;
/// Servers kept.
const SERVERS: usize = 50_000;

/// Discovery steps per Server.
#[derive(Debug, Default)]
pub struct DiscoverySteps {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_server: HashMap<String, VecDeque<(Timestamp, String)>>,
    order: VecDeque<String>,
}

/// The step that begins an attempt: `Discovery started (attempt N)`.
pub fn started(attempt: u32) -> String {
    format!("{STARTED_PREFIX} (attempt {attempt})")
}

const STARTED_PREFIX: &str = "Discovery started";

impl DiscoverySteps {
    /// The process's record, written by the Server reconciler and the boot server.
    pub fn global() -> &'static DiscoverySteps {
        static STEPS: OnceLock<DiscoverySteps> = OnceLock::new();
        STEPS.get_or_init(DiscoverySteps::default)
    }

    /// Records that `step` happened to `server` at `at`.
    pub fn record(&self, server: &str, step: impl Into<String>, at: Timestamp) {
        let step = step.into();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Inner { by_server, order } = &mut *inner;
        if !by_server.contains_key(server) {
            order.push_back(server.to_owned());
            while order.len() > SERVERS {
                if let Some(oldest) = order.pop_front() {
                    by_server.remove(&oldest);
                }
            }
        }
        let steps = by_server.entry(server.to_owned()).or_default();
        // A start recorded again for the same attempt (its first write did not land and the
        // reconciler started it again) is the same start: the steps after the first stay.
        if step.starts_with(STARTED_PREFIX)
            && steps
                .iter()
                .rev()
                .find(|(_, recorded)| recorded.starts_with(STARTED_PREFIX))
                .is_some_and(|(_, recorded)| *recorded == step)
        {
            return;
        }
        if steps.len() == PER_SERVER {
            steps.pop_front();
        }
        steps.push_back((at, step));
    }

    /// The steps of `server`'s latest attempt this process saw start (else those at or after
    /// `since`), the first of each kind.
    pub fn of(&self, server: &str, since: Option<Timestamp>) -> Vec<(Timestamp, String)> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(recorded) = inner.by_server.get(server) else {
            return Vec::new();
        };
        let from = recorded
            .iter()
            .rposition(|(_, step)| step.starts_with(STARTED_PREFIX))
            .unwrap_or(0);
        let mut steps: Vec<(Timestamp, String)> = Vec::new();
        for (at, step) in recorded.iter().skip(from) {
            if since.is_some_and(|since| *at < since) || steps.iter().any(|(_, s)| s == step) {
                continue;
            }
            steps.push((*at, step.clone()));
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("time")
    }

    #[test]
    fn steps_of_earlier_attempts_and_repeats_are_left_out() {
        let steps = DiscoverySteps::default();
        steps.record("a", "iPXE script fetched", at(1));
        steps.record("a", "iPXE script fetched", at(20));
        steps.record("a", "Ignition fetched", at(21));
        steps.record("a", "Ignition fetched", at(22));
        steps.record("b", "Ignition fetched", at(5));
        assert_eq!(
            steps.of("a", Some(at(10))),
            [
                (at(20), String::from("iPXE script fetched")),
                (at(21), String::from("Ignition fetched"))
            ]
        );
        assert_eq!(
            steps.of("a", None)[0],
            (at(1), String::from("iPXE script fetched"))
        );
        assert!(steps.of("c", None).is_empty());
    }

    #[test]
    fn only_the_latest_attempt_this_process_saw_start_counts() {
        let steps = DiscoverySteps::default();
        steps.record("a", started(1), at(0));
        steps.record("a", SCRIPT_FETCHED, at(1));
        steps.record("a", started(2), at(100));
        steps.record("a", BOOT_REQUESTED, at(101));
        assert_eq!(
            steps.of("a", None),
            [
                (at(100), String::from("Discovery started (attempt 2)")),
                (at(101), String::from(BOOT_REQUESTED))
            ]
        );
    }

    #[test]
    fn the_same_attempt_started_again_keeps_its_steps() {
        let steps = DiscoverySteps::default();
        steps.record("a", started(1), at(0));
        steps.record("a", BOOT_REQUESTED, at(1));
        steps.record("a", started(1), at(2));
        assert_eq!(
            steps.of("a", None),
            [
                (at(0), String::from("Discovery started (attempt 1)")),
                (at(1), String::from(BOOT_REQUESTED))
            ]
        );
    }

    #[test]
    fn a_server_keeps_only_its_latest_steps() {
        let steps = DiscoverySteps::default();
        for n in 0..(PER_SERVER as i64 + 4) {
            steps.record("a", "Network boot requested", at(n));
        }
        assert_eq!(
            steps.of("a", None),
            [(at(4), String::from("Network boot requested"))]
        );
    }
}
