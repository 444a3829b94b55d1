//! Per-call host state: WASI context, resource table, memory cap and the `log` import.

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::credential_lookup::ferrometal::plugin::{log, types};
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
}

impl HostState {
    pub(crate) fn new(plugin: PluginIdentity, operation: &'static str, memory_bytes: usize) -> Self {
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
            log::Level::Trace => tracing::trace!(target: "plugin", plugin, world, op, fields, "{message}"),
            log::Level::Debug => tracing::debug!(target: "plugin", plugin, world, op, fields, "{message}"),
            log::Level::Info => tracing::info!(target: "plugin", plugin, world, op, fields, "{message}"),
            log::Level::Warn => tracing::warn!(target: "plugin", plugin, world, op, fields, "{message}"),
            log::Level::Error => tracing::error!(target: "plugin", plugin, world, op, fields, "{message}"),
        }
    }
}
