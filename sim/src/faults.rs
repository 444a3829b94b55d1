//! Fault injection: what a simulated BMC does wrong, decided per request (pure).

use std::time::Duration;

use crate::spec::Rng;

/// Faults a BMC injects. Rates are probabilities per request; a burst fails the next
/// requests outright.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Added before every answer.
    pub latency: Duration,
    /// Requests answered `503 Service Unavailable` with a Redfish error body.
    pub server_error_rate: f64,
    /// Requests answered `200` with an HTML page instead of JSON.
    pub html_rate: f64,
    /// Requests that get no answer for a minute (the client's deadline decides).
    pub timeout_rate: f64,
    /// Requests whose connection is closed without an answer.
    pub drop_rate: f64,
    /// The next this-many requests are answered `500 Internal Server Error`.
    pub server_error_burst: u32,
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answered normally.
    None,
    /// `500`, part of a burst.
    Burst,
    /// `503`.
    ServerError,
    /// `200` with HTML.
    Html,
    /// No answer for a minute.
    Hang,
    /// Connection closed.
    Drop,
}

impl Faults {
    /// Decides the fate of the next request, counting down a burst.
    pub fn next(&mut self, rng: &mut Rng) -> Fault {
        if self.server_error_burst > 0 {
            self.server_error_burst -= 1;
            return Fault::Burst;
        }
        if rng.chance(self.server_error_rate) {
            Fault::ServerError
        } else if rng.chance(self.html_rate) {
            Fault::Html
        } else if rng.chance(self.timeout_rate) {
            Fault::Hang
        } else if rng.chance(self.drop_rate) {
            Fault::Drop
        } else {
            Fault::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_fails_exactly_its_length_then_requests_pass() {
        let mut faults = Faults {
            server_error_burst: 3,
            ..Faults::default()
        };
        let mut rng = Rng::new(1, 0);
        let fates: Vec<Fault> = (0..5).map(|_| faults.next(&mut rng)).collect();
        assert_eq!(
            fates,
            [
                Fault::Burst,
                Fault::Burst,
                Fault::Burst,
                Fault::None,
                Fault::None
            ]
        );
    }

    #[test]
    fn rates_are_roughly_honoured_and_deterministic() {
        let mut faults = Faults {
            server_error_rate: 0.25,
            drop_rate: 0.1,
            ..Faults::default()
        };
        let run = |faults: &mut Faults| {
            let mut rng = Rng::new(9, 1);
            (0..4000).map(|_| faults.next(&mut rng)).collect::<Vec<_>>()
        };
        let first = run(&mut faults);
        assert_eq!(first, run(&mut faults));
        let errors = first.iter().filter(|f| **f == Fault::ServerError).count();
        let drops = first.iter().filter(|f| **f == Fault::Drop).count();
        assert!((800..1200).contains(&errors), "{errors} of 4000");
        // 10 % of the 75 % that were not server errors.
        assert!((200..400).contains(&drops), "{drops} of 4000");
        assert!(
            first
                .iter()
                .all(|f| !matches!(f, Fault::Html | Fault::Hang))
        );
    }
}
