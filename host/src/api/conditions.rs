//! Condition types and reasons ferrometal reports, in one place (users see them in
//! `kubectl describe`; docs/conditions.md explains each), and the rule for updating a list of
//! conditions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The object is doing what it should (BMC reachable, Endpoint onboarded, ...).
pub const READY: &str = "Ready";

/// Endpoint: its MAC matched the credential database and the BMC was created.
pub const REASON_BMC_CREATED: &str = "BMCCreated";
/// Endpoint: no database entry matches its MAC; nothing was created.
pub const REASON_UNKNOWN_MAC: &str = "UnknownMACAddress";
/// Endpoint: the credential-lookup plugin failed (or none is installed).
pub const REASON_LOOKUP_FAILED: &str = "CredentialLookupFailed";

/// BMC: probed successfully.
pub const REASON_CONNECTED: &str = "Connected";
/// BMC: the BMC refused the credentials.
pub const REASON_AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
/// BMC: the BMC could not be reached (connection refused, TLS failure, timeout).
pub const REASON_CONNECTION_FAILED: &str = "ConnectionFailed";
/// BMC: the BMC answered with an error (5xx, HTML instead of JSON, ...).
pub const REASON_INTERNAL_SERVER_ERROR: &str = "InternalServerError";
/// BMC: the driver plugin crashed, ran out of time or memory, or none serves the protocol.
pub const REASON_DRIVER_FAILED: &str = "DriverFailed";
/// BMC: its Endpoint or BMCSecret does not exist (yet).
pub const REASON_REFERENCE_NOT_FOUND: &str = "ReferenceNotFound";
/// Endpoint or BMC: a field the schema leaves optional (as metal-operator's does) but the
/// object needs is empty, e.g. an Endpoint without `macAddress` or a BMC without an IP.
pub const REASON_INCOMPLETE: &str = "Incomplete";

/// `True`, `False` or `Unknown`.
pub fn status(value: bool) -> String {
    String::from(if value { "True" } else { "False" })
}

/// Sets condition `kind` in `conditions`: the transition time changes only when the status
/// does; reason, message and observed generation are always updated. Returns whether status,
/// reason or message changed (what warrants an Event).
pub fn set(
    conditions: &mut Vec<Condition>,
    kind: &str,
    value: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) -> bool {
    let status = status(value);
    match conditions.iter_mut().find(|c| c.type_ == kind) {
        Some(existing) => {
            let changed = existing.status != status
                || existing.reason != reason
                || existing.message != message;
            if existing.status != status {
                existing.last_transition_time = now;
            }
            existing.status = status;
            existing.reason = reason.to_owned();
            existing.message = message.to_owned();
            existing.observed_generation = generation;
            changed
        }
        None => {
            conditions.push(Condition {
                type_: kind.to_owned(),
                status,
                reason: reason.to_owned(),
                message: message.to_owned(),
                observed_generation: generation,
                last_transition_time: now,
            });
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).expect("timestamp"))
    }

    #[test]
    fn the_transition_time_moves_only_when_the_status_changes() {
        let mut conditions = Vec::new();
        let unknown = (false, REASON_UNKNOWN_MAC, "a");
        let failed = (false, REASON_LOOKUP_FAILED, "b");
        let created = (true, REASON_BMC_CREATED, "c");
        let mut apply = |(value, reason, message): (bool, &str, &str), generation, at| {
            set(
                &mut conditions,
                READY,
                value,
                reason,
                message,
                Some(generation),
                time(at),
            )
        };
        assert!(apply(unknown, 1, 10), "a new condition is news");
        assert!(apply(failed, 2, 20), "a new reason is news");
        assert!(!apply(failed, 3, 25), "a new generation alone is not");
        assert!(apply(created, 3, 30));
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].status, "True");
        assert_eq!(conditions[0].reason, REASON_BMC_CREATED);
        assert_eq!(conditions[0].observed_generation, Some(3));
        assert_eq!(conditions[0].last_transition_time, time(30));
    }

    #[test]
    fn a_new_reason_with_the_same_status_keeps_the_transition_time() {
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            READY,
            false,
            REASON_UNKNOWN_MAC,
            "a",
            Some(1),
            time(10),
        );
        set(
            &mut conditions,
            READY,
            false,
            REASON_LOOKUP_FAILED,
            "b",
            Some(2),
            time(20),
        );
        assert_eq!(conditions[0].last_transition_time, time(10));
        assert_eq!(conditions[0].observed_generation, Some(2));
    }
}
