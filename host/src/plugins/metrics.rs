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
}

/// Counts a call as in flight until dropped.
pub(crate) struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
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
        }
    }
}

impl PluginMetrics {
    /// Registers every metric under the `ferrometal_plugin` prefix.
    pub fn register(&self, registry: &mut Registry) {
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
