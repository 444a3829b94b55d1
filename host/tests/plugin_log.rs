//! A plugin's log lines (the SDK's `log` function and the `log` crate's macros) land in the operator's `tracing` output with plugin, world and
//! operation fields.
//!
//! Alone in its test binary: tracing caches per call site whether anyone listens, and with a
//! single thread-local subscriber in the process, another test's thread reaching the host's
//! log call site first would cache "nobody" for everyone.

use ferrometal::plugins::{PluginMetrics, PluginRuntime, RuntimeConfig};

/// One event's fields (`message` and `level` included), in order.
type EventFields = Vec<(String, String)>;

/// Collects the events of the `plugin` target with their fields.
#[derive(Clone, Default)]
struct PluginEvents(std::sync::Arc<std::sync::Mutex<Vec<EventFields>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PluginEvents {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Fields(Vec<(String, String)>);
        impl tracing::field::Visit for Fields {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.push((field.name().to_owned(), value.to_owned()));
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push((field.name().to_owned(), format!("{value:?}")));
            }
        }
        if event.metadata().target() != "plugin" {
            return;
        }
        let mut fields = Fields(vec![(
            String::from("level"),
            event.metadata().level().to_string(),
        )]);
        event.record(&mut fields);
        self.0.lock().expect("events").push(fields.0);
    }
}

#[tokio::test]
async fn plugin_log_lines_land_in_tracing_with_plugin_world_and_operation() {
    use tracing_subscriber::layer::SubscriberExt;
    let events = PluginEvents::default();
    let subscriber = tracing_subscriber::registry().with(events.clone());
    // The test runtime is single-threaded, so the host's log import runs on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime =
        PluginRuntime::new(RuntimeConfig::default(), PluginMetrics::default()).expect("engine");
    let path = testenv::components::component("lookup-echo").expect("built by `make plugins`");
    let echo = runtime.load_credential_lookup(&path).expect("load");
    echo.lookup(
        "52-54-00-AA-BB-CC",
        &[(String::from("log"), String::from("on"))],
    )
    .await
    .expect("lookup");

    let events = events.0.lock().expect("events").clone();
    let field = |event: &EventFields, name: &str| {
        event
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let line = events
        .iter()
        .find(|event| field(event, "message").as_deref() == Some("looking up a MAC"))
        .unwrap_or_else(|| panic!("no plugin log line in {events:?}"));
    assert_eq!(field(line, "level").as_deref(), Some("INFO"));
    assert_eq!(field(line, "plugin").as_deref(), Some("lookup-echo"));
    assert_eq!(field(line, "world").as_deref(), Some("credential-lookup"));
    assert_eq!(field(line, "op").as_deref(), Some("lookup"));
    assert_eq!(
        field(line, "fields").as_deref(),
        Some("mac=52:54:00:aa:bb:cc")
    );

    // The `log` crate's macros reach the host the same way, with the record's target.
    let line = events
        .iter()
        .find(|event| field(event, "message").as_deref() == Some("answering for 52:54:00:aa:bb:cc"))
        .unwrap_or_else(|| panic!("no `log::debug!` line in {events:?}"));
    assert_eq!(field(line, "level").as_deref(), Some("DEBUG"));
    assert_eq!(field(line, "plugin").as_deref(), Some("lookup-echo"));
    assert_eq!(field(line, "op").as_deref(), Some("lookup"));
    assert_eq!(field(line, "fields").as_deref(), Some("target=lookup_echo"));
}
