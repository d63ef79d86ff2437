//! Prometheus metrics of the controller and its admin HTTP endpoints (`/healthz`, `/readyz`,
//! `/metrics` on `--admin-listen`). Every label value comes from a fixed set.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How one plan step ended (the `outcome` label of `allot_controller_plans`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlanOutcome {
    /// Every missing replica got a node.
    Complete,
    /// Some replicas got a node, some did not.
    Partial,
    /// A gang did not fit: nothing was created.
    GangBlocked,
    /// No missing replica got a node.
    Unplaced,
}

impl PlanOutcome {
    pub fn name(self) -> &'static str {
        match self {
            PlanOutcome::Complete => "complete",
            PlanOutcome::Partial => "partial",
            PlanOutcome::GangBlocked => "gang_blocked",
            PlanOutcome::Unplaced => "unplaced",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    /// `ok` or `error`.
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    /// An error's `reason()` or a move reason: CamelCase constants.
    reason: &'static str,
}

fn seconds_histogram() -> Histogram {
    // 100 µs .. ~6.5 s in doublings: one solve of a small batch up to a slow API round trip.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

/// All controller metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<OutcomeLabels, Counter>,
    errors: Family<ReasonLabels, Counter>,
    duration: Histogram,
    plans: Family<OutcomeLabels, Counter>,
    solver: Histogram,
    moves: Family<ReasonLabels, Counter>,
    leader: Gauge,
    consolidations: Family<OutcomeLabels, Counter>,
    consolidation_moves: Counter,
    consolidation_refusals: Family<ReasonLabels, Counter>,
    consolidation_gpu_milli: Counter,
    /// The caches have synced (readiness).
    pub ready: AtomicBool,
    /// Why the Lease cannot be taken part in, while that lasts (readiness).
    lease_problem: std::sync::Mutex<Option<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        crate::process::register_build_info(&mut registry, "controller");
        let reconciles = Family::<OutcomeLabels, Counter>::default();
        let errors = Family::<ReasonLabels, Counter>::default();
        let duration = seconds_histogram();
        let plans = Family::<OutcomeLabels, Counter>::default();
        let solver = seconds_histogram();
        let moves = Family::<ReasonLabels, Counter>::default();
        let leader = Gauge::default();
        let consolidations = Family::<OutcomeLabels, Counter>::default();
        let consolidation_moves = Counter::default();
        let consolidation_refusals = Family::<ReasonLabels, Counter>::default();
        let consolidation_gpu_milli = Counter::default();
        for outcome in ["moved", "dry_run", "no_room", "refused", "expired"] {
            drop(consolidations.get_or_create(&OutcomeLabels { outcome }));
        }
        for reason in ["DisruptionBudget", "Api"] {
            drop(consolidation_refusals.get_or_create(&ReasonLabels { reason }));
        }
        registry.register(
            "allot_consolidation_plans",
            "Consolidations for waiting pods, by outcome (moved, dry_run, no_room, refused, expired)",
            consolidations.clone(),
        );
        registry.register(
            "allot_consolidation_moves",
            "Pods evicted by the consolidator to make room",
            consolidation_moves.clone(),
        );
        registry.register(
            "allot_consolidation_refusals",
            "Evictions turned down, by reason (DisruptionBudget, Api)",
            consolidation_refusals.clone(),
        );
        registry.register(
            "allot_consolidation_gpu_milli",
            "GPU milli asked by the waiting pods the consolidator started moving pods for",
            consolidation_gpu_milli.clone(),
        );
        registry.register(
            "allot_controller_reconciles",
            "ScheduleRequest reconciles, by outcome (ok, error)",
            reconciles.clone(),
        );
        registry.register(
            "allot_controller_reconcile_errors",
            "Failed reconciles, by reason",
            errors.clone(),
        );
        registry.register(
            "allot_controller_reconcile_duration_seconds",
            "Time of one reconcile (observe, validate, plan, apply, status)",
            duration.clone(),
        );
        registry.register(
            "allot_controller_plans",
            "Plan steps that ran the solver, by outcome",
            plans.clone(),
        );
        registry.register(
            "allot_controller_solver_duration_seconds",
            "Wall-clock time of the LP plan of one reconcile",
            solver.clone(),
        );
        registry.register(
            "allot_controller_moves",
            "Replicas moved off a node, by reason",
            moves.clone(),
        );
        registry.register(
            "allot_controller_leader",
            "1 while this process holds the controller Lease",
            leader.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            plans,
            solver,
            moves,
            leader,
            consolidations,
            consolidation_moves,
            consolidation_refusals,
            consolidation_gpu_milli,
            ready: AtomicBool::new(false),
            lease_problem: std::sync::Mutex::new(None),
        }
    }
}

impl Metrics {
    /// Note why the lease rounds fail (`None`: they succeed); `/readyz` says it.
    pub fn set_lease_problem(&self, problem: Option<String>) {
        *self
            .lease_problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = problem;
    }

    fn lease_problem(&self) -> Option<String> {
        self.lease_problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// One reconcile finished; `error` is the failure's reason, if any.
    pub fn reconciled(&self, took: Duration, error: Option<&'static str>) {
        let outcome = if error.is_some() { "error" } else { "ok" };
        self.reconciles
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        if let Some(reason) = error {
            self.errors.get_or_create(&ReasonLabels { reason }).inc();
        }
        self.duration.observe(took.as_secs_f64());
    }

    pub fn planned(&self, outcome: PlanOutcome, solver_millis: u64) {
        self.plans
            .get_or_create(&OutcomeLabels {
                outcome: outcome.name(),
            })
            .inc();
        self.solver.observe(solver_millis as f64 / 1000.0);
    }

    pub fn moved(&self, reason: &'static str) {
        self.moves.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// A consolidation ended its planning or its moves with `outcome` (a fixed word).
    pub fn consolidation_planned(&self, outcome: &'static str) {
        self.consolidations
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The consolidator started moving pods for a pod asking `gpu_milli`.
    pub fn consolidation_started(&self, gpu_milli: u64) {
        self.consolidation_gpu_milli.inc_by(gpu_milli);
    }

    pub fn consolidation_moved(&self) {
        self.consolidation_moves.inc();
    }

    pub fn consolidation_refused(&self, reason: &'static str) {
        self.consolidation_refusals
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
            let _ = writeln!(out, "# metrics encoding failed");
        }
        out
    }
}

/// `/healthz` (the process serves), `/readyz` (caches synced and the Lease reachable),
/// `/metrics`.
pub fn admin_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render))
        .with_state(metrics)
}

async fn readyz(State(m): State<Arc<Metrics>>) -> Response {
    if !m.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet\n").into_response();
    }
    match m.lease_problem() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(p) => (StatusCode::SERVICE_UNAVAILABLE, format!("{p}\n")).into_response(),
    }
}

async fn render(State(m): State<Arc<Metrics>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_named_and_labelled_from_fixed_sets() {
        let m = Metrics::default();
        m.reconciled(Duration::from_millis(3), None);
        m.reconciled(Duration::from_millis(5), Some("KubeApi"));
        m.planned(PlanOutcome::GangBlocked, 12);
        m.moved("NodeDeleted");
        m.set_leader(true);
        let text = m.render();
        for line in [
            "allot_controller_reconciles_total{outcome=\"error\"} 1",
            "allot_controller_reconcile_errors_total{reason=\"KubeApi\"} 1",
            "allot_controller_plans_total{outcome=\"gang_blocked\"} 1",
            "allot_controller_moves_total{reason=\"NodeDeleted\"} 1",
            "allot_controller_leader 1",
            "allot_controller_solver_duration_seconds_count 1",
            "allot_build_info{role=\"controller\",version=\"",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
