//! Trying a credential database's default credentials in order, without locking accounts.
//!
//! The Endpoint reconciler creates a BMCSecret holding the first default credential and marks
//! it with [`INDEX_ANNOTATION`]. When the BMC refuses it, the BMC reconciler moves the secret
//! to the next credential — but only after a backoff that doubles with every attempt — until
//! one works (the annotation then records which) or all were refused. Secrets without the
//! annotation (written by people) are never touched.

use std::time::Duration;

/// Index (from 0) of the database credential a ferrometal-written BMCSecret holds.
pub const INDEX_ANNOTATION: &str = "ferrometal.dev/default-credential-index";
/// When the secret last moved to another credential (RFC 3339).
pub const TRIED_AT_ANNOTATION: &str = "ferrometal.dev/default-credential-tried-at";

/// What to do after the BMC refused credential `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Move the secret to credential `next` now.
    Advance {
        /// The credential to try.
        next: usize,
    },
    /// Too soon since the last attempt; look again after this long.
    Wait(Duration),
    /// Every credential was refused.
    Exhausted,
}

/// Decides the next step. `since_last_try` is how long ago the secret last moved (`None`:
/// never); attempt `n` (1-based, i.e. `index + 1`) waits `base × 2^(n-1)`.
pub fn next_step(
    index: usize,
    count: usize,
    since_last_try: Option<Duration>,
    base: Duration,
) -> Step {
    let next = index + 1;
    if next >= count {
        return Step::Exhausted;
    }
    let backoff = base.saturating_mul(1u32 << index.min(16));
    match since_last_try {
        Some(elapsed) if elapsed < backoff => Step::Wait(backoff - elapsed),
        _ => Step::Advance { next },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(10);

    #[test]
    fn the_first_refusal_moves_on_at_once_when_never_tried() {
        assert_eq!(next_step(0, 3, None, BASE), Step::Advance { next: 1 });
    }

    #[test]
    fn attempts_are_spaced_by_a_doubling_backoff() {
        assert_eq!(
            next_step(0, 3, Some(Duration::from_secs(4)), BASE),
            Step::Wait(Duration::from_secs(6))
        );
        assert_eq!(
            next_step(1, 3, Some(Duration::from_secs(4)), BASE),
            Step::Wait(Duration::from_secs(16))
        );
        assert_eq!(
            next_step(1, 3, Some(Duration::from_secs(20)), BASE),
            Step::Advance { next: 2 }
        );
    }

    #[test]
    fn the_last_refusal_exhausts_the_list() {
        assert_eq!(next_step(2, 3, None, BASE), Step::Exhausted);
        assert_eq!(next_step(0, 1, None, BASE), Step::Exhausted);
    }
}
