//! Operator metrics and the HTTP endpoint that serves them with health probes.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    controller: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: String,
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    reason: String,
}

/// Reconcile and BMC-probe metrics. Labels name controllers and outcomes, never objects.
#[derive(Debug, Clone)]
pub struct ControllerMetrics {
    reconciles: Family<ReconcileLabels, Counter>,
    durations: Family<ControllerLabels, Histogram>,
    probes: Family<ProbeLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        Self {
            reconciles: Family::default(),
            durations: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 4.0, 10))
            }),
            probes: Family::default(),
            errors: Family::default(),
        }
    }
}

impl ControllerMetrics {
    /// Registers the metrics under the `ferrometal` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("ferrometal");
        registry.register(
            "reconciles",
            "Reconciles by controller and outcome",
            self.reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciles by controller",
            self.durations.clone(),
        );
        registry.register(
            "bmc_probes",
            "BMC probes by outcome (the Ready condition's reason)",
            self.probes.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles by controller and kind of failure (conflict, not-found, forbidden, invalid, throttled, api-server-error, api, transport)",
            self.errors.clone(),
        );
    }

    /// Starts timing a reconcile; the guard records it when finished.
    pub fn reconcile(&self, controller: &'static str) -> ReconcileTimer {
        ReconcileTimer {
            metrics: self.clone(),
            controller,
            started: Instant::now(),
        }
    }

    /// Counts a failed reconcile by its kind (see `controllers::Error::kind`).
    pub fn error(&self, controller: &str, kind: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                controller: controller.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Counts a BMC probe outcome.
    pub fn probe(&self, reason: &str) {
        self.probes
            .get_or_create(&ProbeLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }
}

/// Times one reconcile; call [`ReconcileTimer::finish`] with its outcome.
#[derive(Debug)]
pub struct ReconcileTimer {
    metrics: ControllerMetrics,
    controller: &'static str,
    started: Instant,
}

impl ReconcileTimer {
    /// Records the outcome (`ok` or `error`) and the duration.
    pub fn finish(self, ok: bool) {
        self.metrics
            .reconciles
            .get_or_create(&ReconcileLabels {
                controller: self.controller.to_owned(),
                outcome: String::from(if ok { "ok" } else { "error" }),
            })
            .inc();
        self.metrics
            .durations
            .get_or_create(&ControllerLabels {
                controller: self.controller.to_owned(),
            })
            .observe(self.started.elapsed().as_secs_f64());
    }
}

/// A check `/readyz` makes.
type ReadinessCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// What `/readyz` waits for: named checks that must all pass (the boot index filled after a
/// start; on the leader, the controllers' watch caches listed). Cheap to clone.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<Mutex<Vec<(&'static str, ReadinessCheck)>>>,
}

impl Readiness {
    /// Adds a check: `/readyz` answers `503` naming `name` while `ready` says no.
    pub fn require(&self, name: &'static str, ready: impl Fn() -> bool + Send + Sync + 'static) {
        self.checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name, Arc::new(ready)));
    }

    /// The names of the checks that do not pass yet.
    pub fn waiting_for(&self) -> Vec<&'static str> {
        self.checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, ready)| !ready())
            .map(|(name, _)| *name)
            .collect()
    }
}

/// Serves `/metrics` (OpenMetrics text), `/healthz` and `/readyz` (see [`Readiness`]) on
/// `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Mutex<Registry>>,
    readiness: Readiness,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    let mut text = String::new();
                    let registry = registry.lock().unwrap_or_else(PoisonError::into_inner);
                    match prometheus_client::encoding::text::encode(&mut text, &registry) {
                        Ok(()) => (
                            StatusCode::OK,
                            [(
                                header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            text,
                        )
                            .into_response(),
                        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                    }
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let waiting = readiness.waiting_for();
                async move {
                    if waiting.is_empty() {
                        (StatusCode::OK, String::from("ok\n"))
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("waiting for: {}\n", waiting.join(", ")),
                        )
                    }
                }
            }),
        );
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[test]
    fn readiness_names_the_checks_that_do_not_pass() {
        let readiness = Readiness::default();
        assert!(readiness.waiting_for().is_empty());
        let flag = Arc::new(AtomicBool::new(false));
        let seen = flag.clone();
        readiness.require("boot index", move || seen.load(Ordering::Relaxed));
        readiness.require("always", || true);
        assert_eq!(readiness.waiting_for(), ["boot index"]);
        flag.store(true, Ordering::Relaxed);
        assert!(readiness.waiting_for().is_empty());
    }
}
