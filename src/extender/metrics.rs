//! Prometheus metrics of the extender (`/metrics` on the admin port): requests and latency
//! per verb, decisions per policy, snapshot age, policy settings and the pricer's solves,
//! and the cluster's GPUs as the snapshot shows them (`gauges.rs`). Labels come from enums,
//! and GPU model names from the cluster's nodes.

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::gauges::ClusterGauges;
use super::waiting::Waiting;
use crate::model::MILLI_PER_GPU;

/// The extender's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Filter,
    Prioritize,
    Bind,
    Preempt,
}

impl Verb {
    pub fn name(self) -> &'static str {
        match self {
            Verb::Filter => "filter",
            Verb::Prioritize => "prioritize",
            Verb::Bind => "bind",
            Verb::Preempt => "preempt",
        }
    }
}

impl EncodeLabelValue for Verb {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.name())
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Answered with 200.
    Ok,
    /// The body could not be read as the verb's request (4xx).
    BadRequest,
    /// Answered with 200 and an `Error` (a bind allot could not make).
    Refused,
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::BadRequest => "bad_request",
            Outcome::Refused => "refused",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    verb: Verb,
    outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VerbLabels {
    verb: Verb,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TelemetryLabels {
    telemetry: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

type GpuGauge = Family<ModelLabels, Gauge<f64, AtomicU64>>;

/// The cluster-state families, set from a view at each scrape.
#[derive(Debug, Default)]
struct ClusterFamilies {
    gpus: GpuGauge,
    allocated: GpuGauge,
    unallocated: GpuGauge,
    fragmented: GpuGauge,
    unhealthy: GpuGauge,
    frag_ratio: Gauge<f64, AtomicU64>,
    nodes: Family<TelemetryLabels, Gauge>,
    pending: Family<ReasonLabels, Gauge>,
}

impl ClusterFamilies {
    fn register(&self, r: &mut Registry) {
        let gpu_families = [
            (
                "allot_cluster_gpus",
                "GPUs in the extender's snapshot, by GPU model",
                &self.gpus,
            ),
            (
                "allot_cluster_gpus_allocated",
                "GPUs the bound pods hold (fractional for shares), by GPU model",
                &self.allocated,
            ),
            (
                "allot_cluster_gpus_unallocated",
                "GPUs not held by any pod (unhealthy ones included), by GPU model",
                &self.unallocated,
            ),
            (
                "allot_cluster_gpus_fragmented",
                "Idle GPU the target workload's typical pods cannot use (FGD's fragmentation, as \
                 allot simulate measures it), by GPU model",
                &self.fragmented,
            ),
            (
                "allot_cluster_gpus_unhealthy",
                "GPUs the agents report unhealthy (withheld from placement), by GPU model",
                &self.unhealthy,
            ),
        ];
        for (name, help, family) in gpu_families {
            r.register(name, help, family.clone());
        }
        r.register(
            "allot_cluster_gpu_fragmentation_ratio",
            "Fragmented / unallocated GPU in the whole cluster (0 when nothing is idle)",
            self.frag_ratio.clone(),
        );
        r.register(
            "allot_cluster_nodes",
            "GPU nodes in the extender's snapshot by their agent's telemetry: fresh, stale, \
             missing (CPU-only nodes need no agent and are not counted)",
            self.nodes.clone(),
        );
        r.register(
            "allot_extender_pending_gpu_pods",
            "GPU pods whose last filter (within 5 minutes, not bound since) found no node, by \
             the reason most refused nodes gave",
            self.pending.clone(),
        );
    }

    fn set(&self, cluster: &ClusterGauges, waiting: &[u64; Waiting::ALL.len()]) {
        let gpus = |milli: f64| milli / f64::from(MILLI_PER_GPU);
        for family in [
            &self.gpus,
            &self.allocated,
            &self.unallocated,
            &self.fragmented,
            &self.unhealthy,
        ] {
            family.clear();
        }
        for (model, t) in &cluster.models {
            let labels = ModelLabels {
                model: model.clone(),
            };
            self.gpus.get_or_create(&labels).set(t.gpus as f64);
            let allocated = gpus(t.allocated_milli as f64);
            self.allocated.get_or_create(&labels).set(allocated);
            let unallocated = gpus(t.unallocated_milli() as f64);
            self.unallocated.get_or_create(&labels).set(unallocated);
            let fragmented = gpus(t.fragmented_milli);
            self.fragmented.get_or_create(&labels).set(fragmented);
            self.unhealthy
                .get_or_create(&labels)
                .set(t.unhealthy as f64);
        }
        self.frag_ratio.set(cluster.frag_ratio());
        let t = cluster.telemetry;
        for (telemetry, n) in [
            ("fresh", t.fresh),
            ("stale", t.stale),
            ("missing", t.missing),
        ] {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            self.nodes
                .get_or_create(&TelemetryLabels { telemetry })
                .set(n);
        }
        for why in Waiting::ALL {
            let n = i64::try_from(waiting[why as usize]).unwrap_or(i64::MAX);
            let labels = ReasonLabels { reason: why.name() };
            self.pending.get_or_create(&labels).set(n);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PolicyLabels {
    /// A `PolicyKind::name()`: a fixed set.
    policy: &'static str,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s in doublings: covers one small filter up to a stalled request.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// All extender metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<VerbLabels, Histogram, fn() -> Histogram>,
    decisions: Family<PolicyLabels, Counter>,
    snapshot_age: Gauge<f64, AtomicU64>,
    nodes: Gauge,
    cluster: ClusterFamilies,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        // Every verb and outcome from the start, at 0: a series that appears only with its
        // first error makes rate() and increase() miss that error.
        for verb in [Verb::Filter, Verb::Prioritize, Verb::Bind, Verb::Preempt] {
            for outcome in [Outcome::Ok, Outcome::BadRequest, Outcome::Refused] {
                drop(requests.get_or_create(&RequestLabels { verb, outcome }));
            }
        }
        let latency = Family::<VerbLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let decisions = Family::<PolicyLabels, Counter>::default();
        let snapshot_age = Gauge::<f64, AtomicU64>::default();
        let nodes = Gauge::default();
        registry.register(
            "allot_extender_requests",
            "Extender requests by verb and outcome (ok; bad_request: unreadable body; refused: \
             a bind answered with an Error)",
            requests.clone(),
        );
        registry.register(
            "allot_extender_request_duration_seconds",
            "Time to answer an extender request, by verb",
            latency.clone(),
        );
        registry.register(
            "allot_extender_decisions",
            "Pods whose node allot's policy chose (filter) or ranked (prioritize), by policy",
            decisions.clone(),
        );
        registry.register(
            "allot_extender_snapshot_age_seconds",
            "Age of the cluster snapshot the extender decides on",
            snapshot_age.clone(),
        );
        registry.register(
            "allot_extender_nodes",
            "Nodes in the extender's snapshot",
            nodes.clone(),
        );
        let cluster = ClusterFamilies::default();
        cluster.register(&mut registry);
        crate::process::register_build_info(&mut registry, "extender");
        Metrics {
            registry,
            requests,
            latency,
            decisions,
            snapshot_age,
            nodes,
            cluster,
        }
    }
}

impl Metrics {
    /// The extender's metrics, with the policy families of `store` (which it updates when
    /// `--policy-dir` changes or a shadowed pod binds).
    pub fn for_store(store: &super::state::Store) -> Self {
        let mut metrics = Metrics::default();
        let stats = store.policy_stats();
        let r = &mut metrics.registry;
        r.register(
            "allot_extender_policy_info",
            "The policy settings in force: default and shadow policy, and the content hash of \
             the weights learned scores with (value 1)",
            stats.info.clone(),
        );
        r.register(
            "allot_extender_learned_outside_support",
            "1 while the cluster's workload lies outside the workloads the learned policy was \
             trained on (the statistic that is, as label): learned then places as FGD does",
            stats.outside.clone(),
        );
        r.register(
            "allot_extender_shadow_binds",
            "Binds of pods whose shadow policy ran at filter, by whether it chose the bound node",
            stats.shadow.clone(),
        );
        r.register(
            "allot_extender_policy_reloads",
            "Changes to --policy-dir, by outcome (ok, or why the previous settings were kept)",
            stats.reloads.clone(),
        );
        r.register(
            "allot_extender_holds",
            "Placements held from filter to bind (--filter-answer chosen or auto) and rooms held \
             by consolidation, by outcome: made; reserved (for a waiting pod); destination (for \
             a moved pod's replacement); claimed (by a replacement); bound (the bind took it \
             over); released (filtered again, bound elsewhere, or no longer held); expired unbound",
            store.hold_stats().outcomes.clone(),
        );
        r.register(
            "allot_extender_snapshot_build_seconds",
            "Rebuilds of the extender's view from its watch caches, by duration: each reads every \
             node and pod, so it grows with the cluster, and the rebuild loop waits at least ten \
             times the last one's duration before the next",
            store.build_seconds().clone(),
        );
        let prices = store.price_stats();
        r.register(
            "allot_extender_price_solves",
            "Solves of the pricing LP over the recent arrivals, by outcome (ok, error, timeout: \
             the previous prices stay)",
            prices.solves.clone(),
        );
        r.register(
            "allot_extender_price_solve_seconds",
            "Wall time of the last solve of the pricing LP",
            prices.solve_seconds.clone(),
        );
        r.register(
            "allot_extender_price_solved_timestamp_seconds",
            "Unix time of the last successful solve of the pricing LP, whose prices are in force \
             (0: none yet)",
            prices.solved_at.clone(),
        );
        metrics
    }

    /// Add the workload history recorder's families (`--history-dir`).
    pub fn register_history(&mut self, stats: &super::history::HistoryStats) {
        stats.register(&mut self.registry);
    }

    pub fn observe(&self, verb: Verb, outcome: Outcome, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels { verb, outcome })
            .inc();
        self.latency
            .get_or_create(&VerbLabels { verb })
            .observe(took.as_secs_f64());
    }

    pub fn decided(&self, policy: &'static str) {
        self.decisions.get_or_create(&PolicyLabels { policy }).inc();
    }

    /// Refresh the cluster-state gauges: the GPUs of a view, and the pods waiting by reason.
    pub fn set_cluster(&self, cluster: &ClusterGauges, waiting: &[u64; Waiting::ALL.len()]) {
        self.cluster.set(cluster, waiting);
    }

    /// The text exposition, with the gauges refreshed from `age` and `nodes`.
    pub fn render(&self, age: Duration, nodes: usize) -> String {
        self.snapshot_age.set(age.as_secs_f64());
        self.nodes.set(i64::try_from(nodes).unwrap_or(i64::MAX));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
            let _ = writeln!(out, "# metrics encoding failed");
        }
        out
    }
}
