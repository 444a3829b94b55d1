//! Per-call host state: WASI context, resource table, memory cap and the `log` import.

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use wasmtime::component::Resource;

use super::bindings::bmc_driver::ferrometal::plugin::{bmc_http, credentials, reveal};
use super::bindings::credential_lookup::ferrometal::plugin::{log, types};
use super::bmc_http::{Auth, BmcCall, HttpFailure, Method, PluginRequest};
use super::error::DeadlineExceeded;
use super::runtime::PluginIdentity;

/// Longest log message kept from a plugin, in bytes.
const MAX_LOG_MESSAGE: usize = 4096;
/// Most log lines a plugin may emit in one call; later ones are counted and dropped.
const MAX_LOG_LINES: u32 = 1000;

/// Caps a store's linear memory and remembers when it had to refuse growth.
pub(crate) struct MemoryCap {
    pub(crate) limit_bytes: usize,
    pub(crate) refused: Option<usize>,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit_bytes {
            self.refused = Some(desired);
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} bytes exceeded",
                self.limit_bytes
            )));
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
    log_lines: u32,
    /// The last panic message the plugin logged (the SDK's panic hook logs it before the trap).
    pub(crate) panic: Option<String>,
    /// The BMC of a driver call.
    pub(crate) bmc: Option<BmcCall>,
}

/// The host side of a `credential` handle: which call's credential it stands for. The
/// values stay in the host ([`BmcCall`]); the plugin only holds the handle.
pub struct BmcCredential;

impl HostState {
    pub(crate) fn new(
        plugin: PluginIdentity,
        operation: &'static str,
        memory_bytes: usize,
    ) -> Self {
        Self {
            // No preopens, environment, arguments, sockets or name lookups.
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            memory: MemoryCap {
                limit_bytes: memory_bytes,
                refused: None,
            },
            plugin,
            operation,
            log_lines: 0,
            panic: None,
            bmc: None,
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
        let mut message = message;
        if message.len() > MAX_LOG_MESSAGE {
            let mut end = MAX_LOG_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        if level == log::Level::Error && message.starts_with("panic: ") {
            self.panic = Some(message.trim_start_matches("panic: ").to_owned());
        }
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        let fields = fields
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(" ");
        let plugin = self.plugin.name.as_str();
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
        self.table.get(&credential)?;
        Ok(self.bmc()?.endpoint.username.clone())
    }

    fn drop(&mut self, credential: Resource<BmcCredential>) -> wasmtime::Result<()> {
        self.table.delete(credential)?;
        Ok(())
    }
}

impl reveal::Host for HostState {
    fn password(&mut self, credential: Resource<BmcCredential>) -> wasmtime::Result<String> {
        self.table.get(&credential)?;
        Ok(self.bmc()?.endpoint.password.clone())
    }
}

impl bmc_http::Host for HostState {
    async fn send(
        &mut self,
        request: bmc_http::Request,
    ) -> wasmtime::Result<Result<bmc_http::Response, bmc_http::HttpError>> {
        let auth = match request.auth {
            bmc_http::Auth::None => Auth::None,
            bmc_http::Auth::Basic(credential) => {
                self.table.get(&credential)?;
                Auth::Basic
            }
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
    use bmc_http::Host as _;

    fn state(deadline: Instant) -> HostState {
        let (call, _) = test_call("http", "127.0.0.1", 9, deadline);
        let mut state = HostState::new(test_plugin(), "probe", 1 << 20);
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
        let mut state = state(Instant::now() - Duration::from_millis(1));
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
        let mut state = state(Instant::now() + Duration::from_secs(5));
        let answer = state
            .send(request("//evil.example/"))
            .await
            .expect("no trap");
        assert!(
            matches!(answer, Err(bmc_http::HttpError::Denied(_))),
            "{answer:?}"
        );
    }
}
