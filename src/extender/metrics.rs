//! Prometheus metrics of the extender (`/metrics` on the admin port): requests and latency
//! per verb, decisions per policy, snapshot age. Labels come from enums only.

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::BadRequest => "bad_request",
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

/// The one policy file `learned` scores with: an info metric (value 1), one series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LearnedLabels {
    hash: String,
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
    learned: Family<LearnedLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<VerbLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let decisions = Family::<PolicyLabels, Counter>::default();
        let snapshot_age = Gauge::<f64, AtomicU64>::default();
        let nodes = Gauge::default();
        let learned = Family::<LearnedLabels, Gauge>::default();
        registry.register(
            "allot_extender_learned_policy_info",
            "The policy file the learned policy scores with, by content hash (value 1)",
            learned.clone(),
        );
        registry.register(
            "allot_extender_requests",
            "Extender requests by verb and outcome",
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
        Metrics {
            registry,
            requests,
            latency,
            decisions,
            snapshot_age,
            nodes,
            learned,
        }
    }
}

impl Metrics {
    pub fn observe(&self, verb: Verb, outcome: Outcome, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels { verb, outcome })
            .inc();
        self.latency
            .get_or_create(&VerbLabels { verb })
            .observe(took.as_secs_f64());
    }

    /// Record which policy file `learned` uses (its content hash).
    pub fn learned_policy(&self, hash: &str) {
        self.learned.clear();
        self.learned
            .get_or_create(&LearnedLabels {
                hash: hash.to_string(),
            })
            .set(1);
    }

    pub fn decided(&self, policy: &'static str) {
        self.decisions.get_or_create(&PolicyLabels { policy }).inc();
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
