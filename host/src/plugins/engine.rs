//! The process-wide wasmtime engine and its epoch ticker.

use std::time::Duration;

use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, WasmBacktraceDetails,
};

/// How often the epoch advances. A call's CPU deadline is enforced to within one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The largest linear memory any plugin may have (the bmc-driver world's limit); the pool's
/// memory slots are this big.
pub const MAX_PLUGIN_MEMORY: usize = 128 << 20;

/// Pool slots per concurrent call: a component built by `wasm32-wasip2` instantiates a few
/// core modules (the program and wit-component's shims), one or two memories and a few tables.
const CORE_INSTANCES_PER_CALL: u32 = 8;
const MEMORIES_PER_CALL: u32 = 2;
const TABLES_PER_CALL: u32 = 4;

/// Builds the engine every plugin runs in and starts the thread that advances its epoch. The
/// thread holds only a weak reference and ends when the engine is dropped.
///
/// Instances come from a pool sized for `max_concurrent_calls` (the runtime never runs more):
/// memories, tables and stacks are reserved once and reused, so a call does not map and unmap
/// its memory — most of what a fresh instance per call would otherwise cost. A memory slot is
/// as large as the largest memory a call may have ([`pool_memory_slot`]); what the slots
/// actually hold is bounded by the memory budget (the store's limiter charges it).
pub(crate) fn new_engine(
    max_concurrent_calls: usize,
    memory_budget_bytes: usize,
) -> wasmtime::Result<Engine> {
    let calls = u32::try_from(max_concurrent_calls.max(1)).unwrap_or(u32::MAX);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(calls)
        .total_core_instances(calls.saturating_mul(CORE_INSTANCES_PER_CALL))
        .total_memories(calls.saturating_mul(MEMORIES_PER_CALL))
        .total_tables(calls.saturating_mul(TABLES_PER_CALL))
        .total_stacks(calls)
        .max_memory_size(pool_memory_slot(memory_budget_bytes));
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .wasm_backtrace_details(WasmBacktraceDetails::Enable)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
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

/// The size of the pool's memory slots: the largest memory any plugin may have, but no more
/// than the whole budget (a call never gets more than that).
pub(crate) fn pool_memory_slot(memory_budget_bytes: usize) -> usize {
    MAX_PLUGIN_MEMORY.min(memory_budget_bytes)
}

#[cfg(test)]
mod tests {
    use super::{MAX_PLUGIN_MEMORY, pool_memory_slot};
    use crate::plugins::{bmc_driver, credential_lookup, ignition_generator, server_classifier};

    #[test]
    fn pool_slots_are_no_larger_than_the_budget() {
        assert_eq!(pool_memory_slot(256 << 20), MAX_PLUGIN_MEMORY);
        assert_eq!(pool_memory_slot(64 << 20), 64 << 20);
    }

    #[test]
    fn every_worlds_memory_limit_fits_a_pool_slot() {
        for limits in [
            bmc_driver::DEFAULT_LIMITS,
            credential_lookup::DEFAULT_LIMITS,
            ignition_generator::DEFAULT_LIMITS,
            server_classifier::DEFAULT_LIMITS,
        ] {
            assert!(limits.memory_bytes <= MAX_PLUGIN_MEMORY, "{limits:?}");
        }
    }
}
