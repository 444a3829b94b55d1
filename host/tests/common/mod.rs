//! Shared helpers of the host's integration tests.

use std::future::Future;
use std::time::Duration;

/// Polls `probe` every 100 ms until it returns `Some`, for at most 60 s.
pub async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    for _ in 0..600 {
        if let Some(value) = probe().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}
