//! Prometheus metrics of the extender (`/metrics` on the admin port): requests and latency
//! per verb, requests by HTTP version, decisions per policy, snapshot age, policy settings and
//! the pricer's solves, and the cluster's GPUs as the snapshot shows them (`gauges.rs`,
//! `metrics/cluster.rs`). Labels come from enums, and GPU model names from the cluster's nodes.

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

mod cluster;
use super::waiting::Waiting;
use cluster::ClusterFamilies;

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

/// The HTTP version of a verb request: HTTP/2 when TLS negotiated it (`listen.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VerbLabels {
    verb: Verb,
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
    protocols: Family<ProtocolLabels, Counter>,
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
        let protocols = Family::<ProtocolLabels, Counter>::default();
        for protocol in ["http/1.1", "h2"] {
            drop(protocols.get_or_create(&ProtocolLabels { protocol }));
        }
        registry.register(
            "allot_extender_http_requests",
            "Requests to the verbs port by HTTP version (h2: HTTP/2, which kube-scheduler uses \
             over TLS)",
            protocols.clone(),
        );
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
            protocols,
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

    /// One request to the verbs port in `version`.
    pub fn served(&self, version: axum::http::Version) {
        use axum::http::Version;
        let protocol = match version {
            Version::HTTP_2 => "h2",
            Version::HTTP_10 => "http/1.0",
            Version::HTTP_09 => "http/0.9",
            _ => "http/1.1",
        };
        self.protocols
            .get_or_create(&ProtocolLabels { protocol })
            .inc();
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Version;

    #[test]
    fn requests_are_counted_under_the_http_version_they_came_in() {
        let metrics = Metrics::default();
        for v in [
            Version::HTTP_2,
            Version::HTTP_11,
            Version::HTTP_11,
            Version::HTTP_10,
        ] {
            metrics.served(v);
        }
        let text = metrics.render(Duration::ZERO, 0);
        let count = |protocol: &str| {
            let series = format!("allot_extender_http_requests_total{{protocol=\"{protocol}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&series))
                .map(str::to_string)
        };
        assert_eq!(count("h2").as_deref(), Some("1"));
        assert_eq!(count("http/1.1").as_deref(), Some("2"));
        assert_eq!(count("http/1.0").as_deref(), Some("1"));
        assert_eq!(count("http/0.9"), None, "no series before a request");
    }
}
