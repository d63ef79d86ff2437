//! Fixtures shared by the integration tests that train or replay on the bundled trace.
// Test helpers panic on purpose: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use allot::learn::Trace;
use allot::model::Cluster;
use allot::sim::load_trace;

/// The first `nodes` nodes and `pods` pods of the bundled trace.
pub fn slice(nodes: usize, pods: usize) -> Trace {
    let t = load_trace("default", None, &[]).unwrap();
    let target = t.workload().target();
    let cluster = Cluster::new(
        t.cluster.models.clone(),
        t.cluster.nodes().iter().take(nodes).cloned().collect(),
    );
    Trace {
        name: "default-slice".into(),
        cluster,
        pods: t.pods.pods[..pods].to_vec(),
        target,
        recorded: None,
        lifetimes: None,
    }
}
