//! Prometheus metrics of the plugin runtime. Labels name plugins, worlds and operations
//! (a handful each), never servers or BMCs.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    plugin: String,
    world: String,
    operation: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    plugin: String,
    world: String,
    operation: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DenialLabels {
    plugin: String,
    capability: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LogTruncationLabels {
    plugin: String,
    part: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BmcRequestLabels {
    plugin: String,
    method: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BmcMethodLabels {
    plugin: String,
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupCacheLabels {
    operation: &'static str,
    outcome: &'static str,
}

/// Counters and timings of plugin loads and calls.
#[derive(Debug, Clone)]
pub struct PluginMetrics {
    calls: Family<CallLabels, Counter>,
    durations: Family<OperationLabels, Histogram>,
    loads: Family<OutcomeLabels, Counter>,
    compile_cache: Family<OutcomeLabels, Counter>,
    denials: Family<DenialLabels, Counter>,
    in_flight: Gauge,
    lookup_cache: Family<LookupCacheLabels, Counter>,
    memory_budget: Gauge,
    memory_in_use: Gauge,
    waiting_for_memory: Gauge,
    log_truncations: Family<LogTruncationLabels, Counter>,
    /// HTTP requests drivers sent to BMCs through `bmc-http`, by plugin, method and outcome
    /// (never by BMC: a fleet has thousands).
    bmc_requests: Family<BmcRequestLabels, Counter>,
    bmc_request_durations: Family<BmcMethodLabels, Histogram>,
    /// Calls the outer timeout ended because the deadline inside them did not.
    abandoned: Counter,
}

/// Counts a call as in flight (or waiting, for the gauge it holds) until dropped.
pub(crate) struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Which part of a plugin's log record the host cut short or left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogTruncation {
    /// The message was longer than the host keeps.
    Message,
    /// A field's key or value was longer than the host keeps.
    Field,
    /// The record had more fields than the host keeps.
    FieldCount,
    /// The call had written as many lines as the host keeps; the line was dropped.
    Line,
}

impl LogTruncation {
    fn label(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Field => "field",
            Self::FieldCount => "field_count",
            Self::Line => "line",
        }
    }
}

impl Default for PluginMetrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            durations: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_05, 4.0, 10))
            }),
            loads: Family::default(),
            compile_cache: Family::default(),
            denials: Family::default(),
            in_flight: Gauge::default(),
            lookup_cache: Family::default(),
            memory_budget: Gauge::default(),
            memory_in_use: Gauge::default(),
            waiting_for_memory: Gauge::default(),
            log_truncations: Family::default(),
            bmc_requests: Family::default(),
            // 5 ms to about 41 s: a BMC answers in milliseconds or takes seconds.
            bmc_request_durations: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            }),
            abandoned: Counter::default(),
        }
    }
}

impl PluginMetrics {
    /// Registers every metric under the `ferrometal_plugin` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let bmc = registry.sub_registry_with_prefix("ferrometal_bmc");
        bmc.register(
            "requests",
            "HTTP requests BMC drivers sent to BMCs by plugin, method and outcome (2xx, 3xx, 4xx, 5xx by the BMC's status; timeout, connect, tls, too_large, error when there was no answer)",
            self.bmc_requests.clone(),
        );
        bmc.register(
            "request_duration_seconds",
            "Duration of HTTP requests BMC drivers sent to BMCs (until the whole body arrived or the request failed)",
            self.bmc_request_durations.clone(),
        );
        let registry = registry.sub_registry_with_prefix("ferrometal_plugin");
        registry.register("calls", "Plugin calls by outcome", self.calls.clone());
        registry.register(
            "call_duration_seconds",
            "Duration of plugin calls, instantiation included",
            self.durations.clone(),
        );
        registry.register("loads", "Plugin loads by outcome", self.loads.clone());
        registry.register(
            "compile_cache",
            "Compiled-component cache lookups by outcome",
            self.compile_cache.clone(),
        );
        registry.register(
            "capability_denials",
            "Capabilities the host refused a plugin: at load time (a capability not granted or not declared) and per request (paths leaving the BMC, forbidden headers, ...)",
            self.denials.clone(),
        );
        registry.register(
            "calls_in_flight",
            "Plugin calls running now (holding one of the global call slots)",
            self.in_flight.clone(),
        );
        registry.register(
            "lookup_cache",
            "Credential-lookup operations answered from the host's cache (hit) or by the plugin (miss)",
            self.lookup_cache.clone(),
        );
        registry.register(
            "memory_budget_bytes",
            "The memory budget all running plugin calls' linear memories share (--plugin-memory-budget-mib)",
            self.memory_budget.clone(),
        );
        registry.register(
            "memory_in_use_bytes",
            "Linear memory of the plugin calls running now, charged against the budget",
            self.memory_in_use.clone(),
        );
        registry.register(
            "calls_waiting_for_memory",
            "Plugin calls waiting for the memory budget to give them their reservation",
            self.waiting_for_memory.clone(),
        );
        registry.register(
            "calls_abandoned",
            "Plugin calls ended by the host's outer timeout because the deadline inside the call (epoch interruption, host-call deadlines) did not end them: should stay 0",
            self.abandoned.clone(),
        );
        registry.register(
            "log_truncations",
            "Parts of plugin log records the host cut short or left out (part: message, field, field_count, line)",
            self.log_truncations.clone(),
        );
    }

    /// Calls the outer timeout had to end (see [`Self::call_abandoned`]).
    pub fn calls_abandoned(&self) -> u64 {
        self.abandoned.get()
    }

    /// Counts a call that outlived its deadline and was ended by the outer timeout: a host
    /// import that ignored the deadline, or an epoch interruption that never came.
    pub(crate) fn call_abandoned(&self) {
        self.abandoned.inc();
    }

    /// Plugin calls running now.
    pub fn calls_in_flight(&self) -> i64 {
        self.in_flight.get()
    }

    /// Counts a call as running until the returned guard is dropped.
    pub(crate) fn call_started(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Bytes of linear memory the running calls hold now.
    pub fn memory_in_use(&self) -> i64 {
        self.memory_in_use.get()
    }

    /// Calls waiting for the memory budget now.
    pub fn calls_waiting_for_memory(&self) -> i64 {
        self.waiting_for_memory.get()
    }

    pub(crate) fn set_memory_budget(&self, bytes: usize) {
        self.memory_budget
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Adds `bytes` to (or, with `taken` false, removes them from) the memory in use.
    pub(crate) fn memory_used(&self, bytes: usize, taken: bool) {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        if taken {
            self.memory_in_use.inc_by(bytes);
        } else {
            self.memory_in_use.dec_by(bytes);
        }
    }

    /// Counts a call as waiting for memory until the returned guard is dropped.
    pub(crate) fn waiting_for_memory(&self) -> InFlight {
        self.waiting_for_memory.inc();
        InFlight(self.waiting_for_memory.clone())
    }

    pub(crate) fn log_truncated(&self, plugin: &str, part: LogTruncation) {
        self.log_truncations
            .get_or_create(&LogTruncationLabels {
                plugin: plugin.to_owned(),
                part: part.label(),
            })
            .inc();
    }

    pub(crate) fn capability_denied(&self, plugin: &str, capability: &str) {
        self.denials
            .get_or_create(&DenialLabels {
                plugin: plugin.to_owned(),
                capability: capability.to_owned(),
            })
            .inc();
    }

    pub(crate) fn call(
        &self,
        plugin: &str,
        world: &str,
        operation: &str,
        outcome: &str,
        seconds: f64,
    ) {
        self.calls
            .get_or_create(&CallLabels {
                plugin: plugin.to_owned(),
                world: world.to_owned(),
                operation: operation.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.durations
            .get_or_create(&OperationLabels {
                plugin: plugin.to_owned(),
                world: world.to_owned(),
                operation: operation.to_owned(),
            })
            .observe(seconds);
    }

    pub(crate) fn load(&self, outcome: &str) {
        self.loads
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub(crate) fn cache(&self, outcome: &str) {
        self.compile_cache
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts a request a driver sent to its BMC and times it.
    pub(crate) fn bmc_request(
        &self,
        plugin: &str,
        method: &'static str,
        outcome: &'static str,
        seconds: f64,
    ) {
        self.bmc_requests
            .get_or_create(&BmcRequestLabels {
                plugin: plugin.to_owned(),
                method,
                outcome,
            })
            .inc();
        self.bmc_request_durations
            .get_or_create(&BmcMethodLabels {
                plugin: plugin.to_owned(),
                method,
            })
            .observe(seconds);
    }

    /// Records a sample in every family (an empty family is not exported at all), for the
    /// test that compares what is exported with what the alerts, dashboard and docs name.
    #[cfg(test)]
    pub(crate) fn sample_every_family(&self) {
        self.call("redfish", "bmc-driver", "probe", "ok", 0.1);
        self.bmc_request("redfish", "GET", "2xx", 0.1);
        self.load("ok");
        self.cache("hit");
        self.capability_denied("redfish", "bmc-http");
        self.lookup_cache("lookup", true);
        self.log_truncated("redfish", LogTruncation::Message);
    }

    /// Counts a credential-lookup `operation` answered from the cache (`hit`) or not.
    pub(crate) fn lookup_cache(&self, operation: &'static str, hit: bool) {
        self.lookup_cache
            .get_or_create(&LookupCacheLabels {
                operation,
                outcome: if hit { "hit" } else { "miss" },
            })
            .inc();
    }
}
