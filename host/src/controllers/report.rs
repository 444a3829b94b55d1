//! Reporting a reconcile's outcome to people: the `Ready` condition and the Event that
//! mirrors each change of it.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Publishes the Event for a change of the `Ready` condition (`Normal` when ready, `Warning`
/// otherwise). An Event that cannot be written is logged; the reconcile goes on.
pub async fn ready_event(
    client: &Client,
    reporter: &Reporter,
    object: &ObjectReference,
    (ready, reason, message): (bool, &str, &str),
    action: &str,
) {
    let recorder = Recorder::new(client.clone(), reporter.clone());
    let event = Event {
        type_: if ready {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: reason.to_owned(),
        note: Some(message.to_owned()),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&event, object).await {
        tracing::warn!(%error, "cannot publish event");
    }
}

/// The first line of `text`: crash reports carry backtraces, condition messages do not.
pub fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}
