//! Per-call host state: WASI context, resource table, memory cap and the `log` import.

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use wasmtime::component::Resource;

use super::accounts::{AccountPassword, redact};
use super::bindings::bmc_driver::ferrometal::plugin::{bmc_http, credentials, reveal};
use super::bindings::credential_lookup::ferrometal::plugin::{log, types};
use super::bmc_http::{Auth, BmcCall, HttpFailure, Method, PluginRequest};
use super::budget::MemoryCharge;
use super::error::DeadlineExceeded;
use super::metrics::{LogTruncation, PluginMetrics};
use super::runtime::PluginIdentity;

/// Longest log message kept from a plugin, in bytes.
const MAX_LOG_MESSAGE: usize = 4096;
/// Most log lines a plugin may emit in one call; later ones are counted and dropped.
const MAX_LOG_LINES: u32 = 1000;
/// Most key/value fields kept of one log line; the rest are counted and dropped.
const MAX_LOG_FIELDS: usize = 16;
/// Longest field key kept, in bytes.
const MAX_LOG_FIELD_KEY: usize = 64;
/// Longest field value kept, in bytes.
const MAX_LOG_FIELD_VALUE: usize = 1024;
/// What marks a cut.
const CUT: char = '…';

/// Caps a store's linear memory, charges it to the memory budget, and remembers when it had
/// to refuse growth.
pub(crate) struct MemoryCap {
    /// The call's own limit.
    pub(crate) limit_bytes: usize,
    /// What the plugin asked for when its own limit refused it.
    pub(crate) refused: Option<usize>,
    /// What the plugin asked for when the budget could not give it.
    pub(crate) budget_refused: Option<usize>,
    /// What the call holds of the budget.
    pub(crate) charge: MemoryCharge,
}

impl MemoryCap {
    /// A cap of `limit_bytes`, charged to `charge`.
    pub(crate) fn new(limit_bytes: usize, charge: MemoryCharge) -> Self {
        Self {
            limit_bytes,
            refused: None,
            budget_refused: None,
            charge,
        }
    }
}

impl ResourceLimiter for MemoryCap {
    /// Called for every memory as it is created (`current` 0) and as it grows. A growth past
    /// the limit or the budget fails softly: `memory.grow` returns -1, which the plugin's
    /// allocator reports as an allocation failure (`Vec::try_reserve` returns an error the
    /// plugin can handle; an infallible allocation aborts, and the trap is classified from
    /// `refused` / `budget_refused`). A growth that passes both checks but then fails in
    /// wasmtime (the module's own maximum) stays charged until the call ends: the budget
    /// errs on the safe side.
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit_bytes {
            self.refused = Some(desired);
            return Ok(false);
        }
        if !self.charge.grow(desired.saturating_sub(current)) {
            self.budget_refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Everything a store carries for one call.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) memory: MemoryCap,
    plugin: PluginIdentity,
    operation: &'static str,
    metrics: PluginMetrics,
    log_lines: u32,
    /// The last panic message the plugin logged (the SDK's panic hook logs it before the trap).
    pub(crate) panic: Option<String>,
    /// The BMC of a driver call.
    pub(crate) bmc: Option<BmcCall>,
    /// Secrets of this call (a new account password) that the plugin's log lines must not
    /// show: each is replaced by [`REDACTED`](super::accounts::REDACTED).
    pub(crate) redact: Vec<String>,
}

/// The host side of a `credential` handle: which credential it stands for. The values stay
/// in the host; the plugin only holds the handle.
pub enum BmcCredential {
    /// The credential of the call's BMC ([`BmcCall`]).
    Call,
    /// The account and new password of `set-account-password`: readable with `reveal`, never
    /// used to authenticate a request.
    Account(AccountPassword),
}

impl HostState {
    pub(crate) fn new(
        plugin: PluginIdentity,
        operation: &'static str,
        memory: MemoryCap,
        metrics: PluginMetrics,
    ) -> Self {
        Self {
            // No preopens, environment or arguments; sockets and name lookups are not even
            // linked (`runtime::add_wasi`).
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            memory,
            plugin,
            operation,
            metrics,
            log_lines: 0,
            panic: None,
            bmc: None,
            redact: Vec::new(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

/// `text` with control characters (newlines, carriage returns, escape sequences) written as
/// Rust escapes, so a plugin cannot start a line of its own in the operator's log or move the
/// terminal's cursor.
fn printable(text: String) -> String {
    if !text.chars().any(char::is_control) {
        return text;
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Cuts `text` to at most `max` bytes (on a character boundary) and marks the cut; `true`
/// when it did.
fn cut(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push(CUT);
    true
}

/// A log line's fields as the operator's log shows them (`key=value`, space-separated),
/// bounded: at most [`MAX_LOG_FIELDS`] fields, keys and values cut to
/// [`MAX_LOG_FIELD_KEY`] and [`MAX_LOG_FIELD_VALUE`] bytes, and a last `…=N` saying how many
/// fields were left out. Also says what had to be cut.
fn bounded_fields(fields: Vec<(String, String)>) -> (String, Vec<LogTruncation>) {
    let mut truncations = Vec::new();
    let total = fields.len();
    let mut shown: Vec<String> = fields
        .into_iter()
        .take(MAX_LOG_FIELDS)
        .map(|(key, value)| {
            let (mut key, mut value) = (printable(key), printable(value));
            let key_cut = cut(&mut key, MAX_LOG_FIELD_KEY);
            let value_cut = cut(&mut value, MAX_LOG_FIELD_VALUE);
            if key_cut || value_cut {
                truncations.push(LogTruncation::Field);
            }
            format!("{key}={value}")
        })
        .collect();
    if total > MAX_LOG_FIELDS {
        shown.push(format!("{CUT}={}", total - MAX_LOG_FIELDS));
        truncations.push(LogTruncation::FieldCount);
    }
    (shown.join(" "), truncations)
}

impl log::Host for HostState {
    fn enabled(&mut self, level: log::Level) -> bool {
        match level {
            log::Level::Trace => tracing::enabled!(target: "plugin", tracing::Level::TRACE),
            log::Level::Debug => tracing::enabled!(target: "plugin", tracing::Level::DEBUG),
            log::Level::Info => tracing::enabled!(target: "plugin", tracing::Level::INFO),
            log::Level::Warn => tracing::enabled!(target: "plugin", tracing::Level::WARN),
            log::Level::Error => tracing::enabled!(target: "plugin", tracing::Level::ERROR),
        }
    }

    fn log(&mut self, level: log::Level, message: String, fields: Vec<(String, String)>) {
        let plugin = self.plugin.name.as_str();
        let mut message = printable(message);
        for secret in &self.redact {
            message = redact(&message, secret);
        }
        if cut(&mut message, MAX_LOG_MESSAGE) {
            self.metrics.log_truncated(plugin, LogTruncation::Message);
        }
        if level == log::Level::Error && message.starts_with("panic: ") {
            self.panic = Some(message.trim_start_matches("panic: ").to_owned());
        }
        self.log_lines = self.log_lines.saturating_add(1);
        if self.log_lines > MAX_LOG_LINES {
            self.metrics.log_truncated(plugin, LogTruncation::Line);
            return;
        }
        let fields = fields
            .into_iter()
            .map(|(key, value)| {
                let value = self
                    .redact
                    .iter()
                    .fold(value, |value, secret| redact(&value, secret));
                (key, value)
            })
            .collect();
        let (fields, truncations) = bounded_fields(fields);
        for truncation in truncations {
            self.metrics.log_truncated(plugin, truncation);
        }
        let world = self.plugin.world.as_str();
        let op = self.operation;
        match level {
            log::Level::Trace => {
                tracing::trace!(target: "plugin", plugin, world, op, fields, "{message}")
            }
            log::Level::Debug => {
                tracing::debug!(target: "plugin", plugin, world, op, fields, "{message}")
            }
            log::Level::Info => {
                tracing::info!(target: "plugin", plugin, world, op, fields, "{message}")
            }
            log::Level::Warn => {
                tracing::warn!(target: "plugin", plugin, world, op, fields, "{message}")
            }
            log::Level::Error => {
                tracing::error!(target: "plugin", plugin, world, op, fields, "{message}")
            }
        }
    }
}

impl HostState {
    /// Adds a credential handle to the call's resource table.
    pub(crate) fn table_push(
        &mut self,
        credential: BmcCredential,
    ) -> wasmtime::Result<Resource<BmcCredential>> {
        Ok(self.table.push(credential)?)
    }

    fn bmc(&self) -> wasmtime::Result<&BmcCall> {
        self.bmc
            .as_ref()
            .ok_or_else(|| wasmtime::Error::msg("BMC import used outside a driver call"))
    }
}

impl credentials::Host for HostState {}

impl credentials::HostCredential for HostState {
    fn username(&mut self, credential: Resource<BmcCredential>) -> wasmtime::Result<String> {
        match self.table.get(&credential)? {
            BmcCredential::Call => Ok(self.bmc()?.endpoint.username.clone()),
            BmcCredential::Account(account) => Ok(account.username.clone()),
        }
    }

    fn drop(&mut self, credential: Resource<BmcCredential>) -> wasmtime::Result<()> {
        self.table.delete(credential)?;
        Ok(())
    }
}

impl reveal::Host for HostState {
    fn password(&mut self, credential: Resource<BmcCredential>) -> wasmtime::Result<String> {
        match self.table.get(&credential)? {
            BmcCredential::Call => Ok(self.bmc()?.endpoint.password.clone()),
            BmcCredential::Account(account) => Ok(account.password.clone()),
        }
    }
}

impl bmc_http::Host for HostState {
    async fn send(
        &mut self,
        request: bmc_http::Request,
    ) -> wasmtime::Result<Result<bmc_http::Response, bmc_http::HttpError>> {
        let auth = match request.auth {
            bmc_http::Auth::None => Auth::None,
            bmc_http::Auth::Basic(credential) => match self.table.get(&credential)? {
                BmcCredential::Call => Auth::Basic,
                BmcCredential::Account(_) => {
                    return Ok(Err(bmc_http::HttpError::Denied(String::from(
                        "the account credential of set-account-password cannot authenticate requests",
                    ))));
                }
            },
            bmc_http::Auth::Bearer(token) => Auth::Token(token),
        };
        let request = PluginRequest {
            method: match request.method {
                bmc_http::Method::Get => Method::Get,
                bmc_http::Method::Head => Method::Head,
                bmc_http::Method::Post => Method::Post,
                bmc_http::Method::Put => Method::Put,
                bmc_http::Method::Patch => Method::Patch,
                bmc_http::Method::Delete => Method::Delete,
            },
            path_and_query: request.path_and_query,
            headers: request.headers,
            body: request.body,
            auth,
        };
        let result = self.bmc()?.send(request).await;
        if matches!(result, Err(HttpFailure::Timeout)) {
            // Every BMC timeout is the call's deadline: end the call rather than hand the
            // plugin an error it might swallow and carry on past its deadline.
            return Err(wasmtime::Error::new(DeadlineExceeded));
        }
        Ok(result
            .map(|response| bmc_http::Response {
                status: response.status,
                headers: response.headers,
                body: response.body,
            })
            .map_err(|failure| match failure {
                HttpFailure::Denied(why) => bmc_http::HttpError::Denied(why),
                HttpFailure::Timeout => bmc_http::HttpError::Timeout,
                HttpFailure::Connect(why) => bmc_http::HttpError::Connect(why),
                HttpFailure::Tls(why) => bmc_http::HttpError::Tls(why),
                HttpFailure::TooLarge(cap) => bmc_http::HttpError::ResponseTooLarge(cap),
                HttpFailure::Other(why) => bmc_http::HttpError::Other(Some(why)),
            }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::plugins::bmc_http::{test_call, test_plugin};
    use crate::plugins::budget::MemoryBudget;
    use bmc_http::Host as _;

    async fn state(deadline: Instant) -> HostState {
        let (call, _) = test_call("http", "127.0.0.1", 9, deadline);
        let metrics = PluginMetrics::default();
        let budget = MemoryBudget::new(1 << 20, metrics.clone());
        let charge = budget.reserve(0).await.expect("open budget");
        let mut state = HostState::new(
            test_plugin(),
            "probe",
            MemoryCap::new(1 << 20, charge),
            metrics,
        );
        state.bmc = Some(call);
        state
    }

    fn request(path: &str) -> bmc_http::Request {
        bmc_http::Request {
            method: bmc_http::Method::Get,
            path_and_query: path.to_owned(),
            headers: Vec::new(),
            body: None,
            auth: bmc_http::Auth::None,
        }
    }

    #[tokio::test]
    async fn a_bmc_request_past_the_deadline_ends_the_call_instead_of_failing() {
        let mut state = state(Instant::now() - Duration::from_millis(1)).await;
        let error = state
            .send(request("/redfish/v1"))
            .await
            .expect_err("a trap, not an answer the plugin could swallow");
        assert!(
            error.downcast_ref::<DeadlineExceeded>().is_some(),
            "{error}"
        );
    }

    #[tokio::test]
    async fn other_failures_are_answers_the_plugin_handles() {
        let mut state = state(Instant::now() + Duration::from_secs(5)).await;
        let answer = state
            .send(request("//evil.example/"))
            .await
            .expect("no trap");
        assert!(
            matches!(answer, Err(bmc_http::HttpError::Denied(_))),
            "{answer:?}"
        );
    }

    fn pairs(count: usize) -> Vec<(String, String)> {
        (0..count)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .collect()
    }

    #[test]
    fn control_characters_cannot_start_a_line_of_their_own() {
        let forged = "done\n2026-12-06T00:00:00Z  INFO ferrometal: leader elected\x1b[2K";
        let shown = printable(forged.to_owned());
        assert_eq!(
            shown,
            "done\\n2026-12-06T00:00:00Z  INFO ferrometal: leader elected\\u{1b}[2K"
        );
        let (fields, _) = bounded_fields(vec![(String::from("k\r"), String::from("a\nb"))]);
        assert_eq!(fields, "k\\r=a\\nb");
        assert_eq!(printable(String::from("plain ü")), "plain ü");
    }

    #[test]
    fn a_few_short_fields_are_shown_as_they_are() {
        let (shown, truncations) = bounded_fields(pairs(2));
        assert_eq!(shown, "k0=v0 k1=v1");
        assert!(truncations.is_empty());
    }

    #[test]
    fn fields_beyond_the_count_are_left_out_and_said_so() {
        let (shown, truncations) = bounded_fields(pairs(MAX_LOG_FIELDS + 5));
        assert!(shown.starts_with("k0=v0 k1=v1 "), "{shown}");
        assert!(
            shown.contains(&format!("k{}=", MAX_LOG_FIELDS - 1)),
            "{shown}"
        );
        assert!(!shown.contains(&format!("k{}=", MAX_LOG_FIELDS)), "{shown}");
        assert!(shown.ends_with(" …=5"), "{shown}");
        assert_eq!(truncations, [LogTruncation::FieldCount]);
    }

    #[test]
    fn long_keys_and_values_are_cut_on_a_character_boundary_and_marked() {
        let key = "k".repeat(MAX_LOG_FIELD_KEY + 10);
        // Two-byte characters, so the limit falls inside one.
        let value = "é".repeat(MAX_LOG_FIELD_VALUE);
        let (shown, truncations) =
            bounded_fields(vec![(key, value), (String::from("ok"), String::from("1"))]);
        let (shown_key, rest) = shown.split_once('=').expect("key=value");
        assert_eq!(shown_key, format!("{}…", "k".repeat(MAX_LOG_FIELD_KEY)));
        let (shown_value, last) = rest.rsplit_once(' ').expect("two fields");
        assert_eq!(last, "ok=1");
        assert!(shown_value.ends_with('…'), "{shown_value}");
        assert!(shown_value.len() <= MAX_LOG_FIELD_VALUE + '…'.len_utf8());
        assert!(shown_value.trim_end_matches('…').chars().all(|c| c == 'é'));
        assert_eq!(truncations, [LogTruncation::Field], "one field was cut");
    }

    #[tokio::test]
    async fn what_the_host_cuts_from_a_plugins_log_is_counted() {
        use log::Host as _;
        let mut state = state(Instant::now() + Duration::from_secs(5)).await;
        let metrics = state.metrics.clone();
        state.log(
            log::Level::Error,
            "m".repeat(MAX_LOG_MESSAGE + 1),
            pairs(MAX_LOG_FIELDS + 1),
        );
        for _ in 0..MAX_LOG_LINES {
            state.log(log::Level::Trace, String::from("again"), Vec::new());
        }
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for (part, count) in [("message", 1), ("field_count", 1), ("line", 1)] {
            let line = format!(
                r#"ferrometal_plugin_log_truncations_total{{plugin="test-driver",part="{part}"}} {count}"#
            );
            assert!(text.contains(&line), "{line} in\n{text}");
        }
        assert!(!text.contains(r#"part="field""#), "no key or value was cut");
    }
}
