//! Reporting a reconcile's outcome to people: Events beside the conditions.
//!
//! The policy, the same for every controller: an Event is published for what needs a
//! person's attention (a `Warning` when a condition turns bad); a condition that turns good
//! is not repeated as an Event — not even a Server's discovery (its `Discovery` condition
//! turning `True` says it) — since the condition already says it and each Event is a write
//! to the API server per object.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Publishes an Event about `object`. An Event that cannot be written is logged; the
/// reconcile goes on.
pub async fn publish(
    client: &Client,
    reporter: &Reporter,
    object: &ObjectReference,
    type_: EventType,
    (reason, note): (&str, &str),
    action: &str,
) {
    crate::ui::events::RecentEvents::global().record(
        object.kind.as_deref().unwrap_or_default(),
        object.name.as_deref().unwrap_or_default(),
        crate::ui::events::now(
            match type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            },
            reason,
            note,
        ),
    );
    let recorder = Recorder::new(client.clone(), reporter.clone());
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.to_owned()),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&event, object).await {
        tracing::warn!(%error, "cannot publish event");
    }
}

/// Publishes the Event for a change of the `Ready` condition: a `Warning` when it turned
/// false; nothing when it turned true (see the module's policy).
pub async fn ready_event(
    client: &Client,
    reporter: &Reporter,
    object: &ObjectReference,
    (ready, reason, message): (bool, &str, &str),
    action: &str,
) {
    if !ready {
        publish(
            client,
            reporter,
            object,
            EventType::Warning,
            (reason, message),
            action,
        )
        .await;
    }
}

/// `error` and its sources, joined with `: ` (what a log line or condition message shows of
/// an error from a library that keeps the cause in its sources).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// The first line of `text`: crash reports carry backtraces, condition messages do not.
pub fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}
