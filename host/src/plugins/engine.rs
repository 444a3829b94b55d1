//! The process-wide wasmtime engine and its epoch ticker.

use std::time::Duration;

use wasmtime::{Config, Engine, WasmBacktraceDetails};

/// How often the epoch advances. A call's CPU deadline is enforced to within one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Builds the engine every plugin runs in and starts the thread that advances its epoch. The
/// thread holds only a weak reference and ends when the engine is dropped.
pub(crate) fn new_engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .wasm_backtrace_details(WasmBacktraceDetails::Enable);
    let engine = Engine::new(&config)?;
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("plugin-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map_err(|error| wasmtime::Error::msg(format!("cannot start the epoch ticker: {error}")))?;
    Ok(engine)
}
