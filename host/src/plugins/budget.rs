//! The plugin memory budget: one pool of bytes that the linear memories of every running
//! call come out of, so that plugins together never hold more than the operator was told
//! (`ferrometal run --plugin-memory-budget-mib`) however many calls run at once.
//!
//! A call's own memory limit still applies; the budget bounds all calls together, and so
//! also any single call whose limit is larger than the budget.
//!
//! A call's linear memory is charged as it is created and as it grows (through the store's
//! resource limiter, [`MemoryCharge::grow`]) and given back when the call's store is dropped.
//! Before a call starts it waits until the budget can give it what its plugin needed at most
//! so far (its *peak*), and takes that up front: under pressure calls queue for memory
//! instead of starting and failing halfway. A call that grows past its reservation takes the
//! rest from what is free; when nothing is free the growth is refused and the call ends with
//! [`CallErrorKind::MemoryBudgetExhausted`](super::CallErrorKind::MemoryBudgetExhausted).
//! Nothing is ever allocated beyond the budget.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::metrics::PluginMetrics;

/// The unit of WebAssembly linear memory (and of the budget's accounting).
pub(crate) const WASM_PAGE: usize = 64 << 10;

/// The default budget: the chart's Pod limit is 512 MiB, and the operator itself (watch
/// caches, boot server, compiled plugins, the pool's stacks) needs the other half.
pub const DEFAULT_MEMORY_BUDGET: usize = 256 << 20;

/// Whole pages needed to hold `bytes`.
pub(crate) fn pages(bytes: usize) -> usize {
    bytes.div_ceil(WASM_PAGE)
}

/// What a call reserves before it starts: its plugin's peak so far, within its limit (and
/// [`MemoryBudget::reserve`] takes at most the whole budget, so no call waits for ever).
pub(crate) fn reservation(peak_bytes: usize, limit_bytes: usize) -> usize {
    pages(peak_bytes.min(limit_bytes)) * WASM_PAGE
}

/// The budget shared by every call of a runtime.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    total_bytes: usize,
    /// Free pages.
    free: Semaphore,
    metrics: PluginMetrics,
}

/// The budget is closed only when the runtime is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BudgetClosed;

impl MemoryBudget {
    /// A budget of `total_bytes` (rounded down to whole pages, at least one page), reported
    /// in `metrics`.
    pub(crate) fn new(total_bytes: usize, metrics: PluginMetrics) -> Arc<Self> {
        let total_pages = (total_bytes / WASM_PAGE)
            .clamp(1, u32::MAX as usize)
            .min(Semaphore::MAX_PERMITS);
        let total_bytes = total_pages * WASM_PAGE;
        metrics.set_memory_budget(total_bytes);
        Arc::new(Self {
            total_bytes,
            free: Semaphore::new(total_pages),
            metrics,
        })
    }

    /// The budget in bytes (whole pages).
    pub(crate) fn total_bytes(&self) -> usize {
        self.total_bytes
    }

    /// Bytes no call holds or has reserved.
    #[cfg(test)]
    pub(crate) fn free_bytes(&self) -> usize {
        self.free.available_permits() * WASM_PAGE
    }

    /// Waits until `bytes` (at most the whole budget) are free and takes them for one call.
    pub(crate) async fn reserve(
        self: &Arc<Self>,
        bytes: usize,
    ) -> Result<MemoryCharge, BudgetClosed> {
        let wanted = pages(bytes.min(self.total_bytes));
        let wanted = u32::try_from(wanted).unwrap_or(u32::MAX);
        if wanted > 0 {
            let _waiting = self.metrics.waiting_for_memory();
            self.free
                .acquire_many(wanted)
                .await
                .map_err(|_| BudgetClosed)?
                .forget();
        }
        Ok(MemoryCharge {
            budget: self.clone(),
            reserved_pages: wanted as usize,
            used_pages: 0,
        })
    }
}

/// What one call has taken from the budget; all of it goes back when this is dropped.
#[derive(Debug)]
pub(crate) struct MemoryCharge {
    budget: Arc<MemoryBudget>,
    /// Taken before the call started and not yet used by its memories.
    reserved_pages: usize,
    /// Backing the call's linear memories.
    used_pages: usize,
}

impl MemoryCharge {
    /// Takes `bytes` more for a memory that is created or grows: from the call's reservation
    /// first, then from what is free. `false` (and nothing taken) when the budget cannot give
    /// them.
    pub(crate) fn grow(&mut self, bytes: usize) -> bool {
        let needed = pages(bytes);
        let from_reservation = needed.min(self.reserved_pages);
        let from_free = needed - from_reservation;
        if from_free > 0 {
            let Ok(from_free_u32) = u32::try_from(from_free) else {
                return false;
            };
            match self.budget.free.try_acquire_many(from_free_u32) {
                Ok(permit) => permit.forget(),
                Err(_) => return false,
            }
        }
        self.reserved_pages -= from_reservation;
        self.used_pages += needed;
        self.budget.metrics.memory_used(needed * WASM_PAGE, true);
        true
    }

    /// Bytes backing the call's memories.
    pub(crate) fn used_bytes(&self) -> usize {
        self.used_pages * WASM_PAGE
    }

    /// The whole budget, in bytes.
    pub(crate) fn budget_bytes(&self) -> usize {
        self.budget.total_bytes
    }
}

impl Drop for MemoryCharge {
    fn drop(&mut self) {
        self.budget
            .free
            .add_permits(self.reserved_pages + self.used_pages);
        self.budget
            .metrics
            .memory_used(self.used_pages * WASM_PAGE, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn a_reservation_is_the_peak_in_whole_pages_within_the_limit() {
        assert_eq!(reservation(0, 32 * MIB), 0, "a plugin not run yet");
        assert_eq!(reservation(1, 32 * MIB), WASM_PAGE);
        assert_eq!(reservation(17 * WASM_PAGE, 32 * MIB), 17 * WASM_PAGE);
        assert_eq!(reservation(40 * MIB, 32 * MIB), 32 * MIB);
    }

    #[test]
    fn the_budget_is_whole_pages_and_never_empty() {
        let metrics = PluginMetrics::default();
        assert_eq!(
            MemoryBudget::new(256 * MIB + 100, metrics.clone()).total_bytes(),
            256 * MIB
        );
        assert_eq!(MemoryBudget::new(0, metrics).total_bytes(), WASM_PAGE);
    }

    #[tokio::test]
    async fn growth_comes_from_the_reservation_then_from_what_is_free() {
        let metrics = PluginMetrics::default();
        let budget = MemoryBudget::new(10 * WASM_PAGE, metrics.clone());
        let mut first = budget.reserve(4 * WASM_PAGE).await.expect("open");
        assert_eq!(budget.free_bytes(), 6 * WASM_PAGE);
        assert!(first.grow(3 * WASM_PAGE), "within the reservation");
        assert_eq!(budget.free_bytes(), 6 * WASM_PAGE, "nothing more taken");
        assert!(first.grow(2 * WASM_PAGE), "one page reserved, one free");
        assert_eq!(budget.free_bytes(), 5 * WASM_PAGE);
        assert_eq!(first.used_bytes(), 5 * WASM_PAGE);
        assert_eq!(metrics.memory_in_use(), 5 * WASM_PAGE as i64);

        let mut second = budget.reserve(0).await.expect("open");
        assert!(second.grow(5 * WASM_PAGE), "the rest of the budget");
        assert!(
            !second.grow(WASM_PAGE),
            "nothing is ever taken beyond the budget"
        );
        assert_eq!(
            second.used_bytes(),
            5 * WASM_PAGE,
            "a refusal takes nothing"
        );
        drop(first);
        assert_eq!(budget.free_bytes(), 5 * WASM_PAGE, "all of it came back");
        drop(second);
        assert_eq!(budget.free_bytes(), 10 * WASM_PAGE);
        assert_eq!(metrics.memory_in_use(), 0);
    }

    #[tokio::test]
    async fn a_call_waits_for_its_reservation_until_another_gives_memory_back() {
        let metrics = PluginMetrics::default();
        let budget = MemoryBudget::new(10 * WASM_PAGE, metrics.clone());
        let holder = budget.reserve(8 * WASM_PAGE).await.expect("open");
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move {
                budget
                    .reserve(4 * WASM_PAGE)
                    .await
                    .map(|c| c.reserved_pages)
            }
        });
        while metrics.calls_waiting_for_memory() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "2 pages free, 4 wanted");
        drop(holder);
        assert_eq!(waiter.await.expect("task"), Ok(4));
        assert_eq!(metrics.calls_waiting_for_memory(), 0);
    }

    #[tokio::test]
    async fn a_reservation_beyond_the_budget_takes_the_whole_budget_rather_than_waiting_for_ever() {
        let budget = MemoryBudget::new(4 * WASM_PAGE, PluginMetrics::default());
        let charge = budget.reserve(100 * WASM_PAGE).await.expect("open");
        assert_eq!(charge.reserved_pages, 4);
        assert_eq!(budget.free_bytes(), 0);
    }
}
