//! Sending the report to the registry, with retries for what may pass.

use std::time::Duration;

use crate::report::Registration;

/// Why a report did not arrive.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The registry refused the report; retrying will not help.
    #[error("the registry refused the report: HTTP {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The registry's explanation.
        body: String,
    },
    /// Every attempt failed to reach the registry or met a server error.
    #[error("the registry could not take the report after {attempts} attempts: {last}")]
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// Whether an HTTP status is worth retrying (server trouble or rate limiting).
pub fn retryable(status: u16) -> bool {
    status >= 500 || status == 429 || status == 408
}

/// The delay before attempt `attempt` (1-based): 1 s, doubling, at most 30 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs((1u64 << attempt.saturating_sub(1).min(5)).min(30))
}

/// Posts `registration` to `<registry_url>/register` with the boot token as a bearer token,
/// retrying connection failures and server errors up to `attempts` times.
pub async fn register(
    client: &reqwest::Client,
    registry_url: &str,
    token: Option<&str>,
    registration: &Registration,
    attempts: u32,
) -> Result<(), PostError> {
    let url = format!("{}/register", registry_url.trim_end_matches('/'));
    let mut last = String::new();
    for attempt in 1..=attempts.max(1) {
        let mut request = client.post(&url).json(registration);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                let body = body.trim().to_owned();
                if !retryable(status) {
                    return Err(PostError::Refused { status, body });
                }
                last = format!("HTTP {status}: {body}");
            }
            Err(error) => last = error.to_string(),
        }
        if attempt < attempts {
            let delay = backoff(attempt);
            eprintln!("metalprobe: attempt {attempt} failed ({last}); retrying in {delay:?}");
            tokio::time::sleep(delay).await;
        }
    }
    Err(PostError::GaveUp {
        attempts: attempts.max(1),
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_are_retried_and_refusals_are_not() {
        for status in [500, 502, 503, 429, 408] {
            assert!(retryable(status), "{status}");
        }
        for status in [400, 401, 403, 404, 413] {
            assert!(!retryable(status), "{status}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let delays: Vec<u64> = (1..=8).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
