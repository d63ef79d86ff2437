//! The cluster's GPU state as the extender sees it, for `/metrics`: GPUs allocated,
//! unallocated, fragmented and unhealthy per GPU model, and GPU nodes by telemetry freshness.
//!
//! The definitions are `allot simulate`'s (README-benchmark-notes §4–5): allocated is the GPU
//! milli the bound pods hold, unallocated is the rest of the capacity (unhealthy devices
//! included), and fragmented is FGD's measure, the idle GPU milli that the target workload's
//! typical pods cannot use, summed over nodes. The frag ratio is fragmented / unallocated.

use std::collections::BTreeMap;

use super::view::View;
use crate::model::MILLI_PER_GPU;
use crate::snapshot::Telemetry;

/// Totals for one GPU model, in milli-GPU (devices for `gpus` and `unhealthy`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ModelTally {
    pub gpus: u64,
    pub allocated_milli: u64,
    pub fragmented_milli: f64,
    pub unhealthy: u64,
}

impl ModelTally {
    pub fn unallocated_milli(&self) -> u64 {
        (self.gpus * u64::from(MILLI_PER_GPU)).saturating_sub(self.allocated_milli)
    }
}

/// GPU nodes by how fresh their agent's telemetry is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TelemetryTally {
    pub fresh: u64,
    pub stale: u64,
    pub missing: u64,
}

/// One view's GPU figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterGauges {
    /// By GPU model name; nodes without GPUs are not listed.
    pub models: BTreeMap<String, ModelTally>,
    pub telemetry: TelemetryTally,
}

impl ClusterGauges {
    /// Tally `view`: its nodes with the overlay's binds placed, and its base's node states.
    pub fn of(view: &View) -> Self {
        let cluster = &view.cluster;
        let mut allocated = vec![0u64; cluster.len()];
        for pod in view.pods() {
            if let Some(slot) = allocated.get_mut(pod.at.node) {
                *slot += pod.demand.gpu.total_milli();
            }
        }
        let mut out = ClusterGauges::default();
        for (i, node) in cluster.nodes().iter().enumerate() {
            // CPU-only nodes need no agent: only GPU nodes count for telemetry.
            if node.gpu_count() == 0 {
                continue;
            }
            let state = view.state(i);
            match state.map(|s| s.telemetry) {
                None | Some(Telemetry::Fresh) => out.telemetry.fresh += 1,
                Some(Telemetry::Stale { .. }) => out.telemetry.stale += 1,
                Some(Telemetry::Missing) => out.telemetry.missing += 1,
            }
            let model = node
                .model
                .map_or("unknown", |m| cluster.models.name(m))
                .to_string();
            let tally = out.models.entry(model).or_default();
            let gpus = node.gpu_count() as u64;
            tally.gpus += gpus;
            tally.allocated_milli += allocated[i].min(gpus * u64::from(MILLI_PER_GPU));
            tally.fragmented_milli += view.ctx.target.node_frag(node);
            tally.unhealthy += state.map_or(0, |s| s.unhealthy.len() as u64);
        }
        out
    }

    /// Every model's figures added up.
    pub fn total(&self) -> ModelTally {
        self.models
            .values()
            .fold(ModelTally::default(), |a, t| ModelTally {
                gpus: a.gpus + t.gpus,
                allocated_milli: a.allocated_milli + t.allocated_milli,
                fragmented_milli: a.fragmented_milli + t.fragmented_milli,
                unhealthy: a.unhealthy + t.unhealthy,
            })
    }

    /// Fragmented / unallocated GPU for the whole cluster, 0 when nothing is idle.
    pub fn frag_ratio(&self) -> f64 {
        let total = self.total();
        match total.unallocated_milli() {
            0 => 0.0,
            idle => total.fragmented_milli / idle as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::extender::FilterAnswer;
    use crate::extender::server::Extender;
    use crate::extender::state::Store;
    use crate::extender::verbs::filter;
    use crate::model::DeviceSet;
    use crate::snapshot::{NodeState, parse_snapshot};

    /// a: 2 T4, one taken whole; b: 4 V100, a half share on GPU 0, GPU 3 unhealthy, stale
    /// telemetry; c: CPU only, no telemetry.
    fn store() -> Store {
        let mut snap = parse_snapshot(
            "inline",
            r#"{"nodes": [
                 {"name": "a", "cpu": "16", "memory": "64Gi", "gpus": 2, "model": "T4"},
                 {"name": "b", "cpu": "32", "memory": "64Gi", "gpus": 4, "model": "V100"},
                 {"name": "c", "cpu": "8", "memory": "16Gi"}],
               "pods": [
                 {"name": "w", "node": "a", "cpu": "1", "memory": "1Gi", "gpus": 1},
                 {"name": "s", "node": "b", "cpu": "1", "memory": "1Gi",
                  "gpuMilli": 500, "devices": [0]}]}"#,
        )
        .unwrap();
        snap.cluster.withhold_gpu(1, 3);
        let stale = Telemetry::Stale {
            age: Duration::from_secs(600),
            limit: Duration::from_secs(120),
        };
        snap.states[1] = NodeState {
            telemetry: stale,
            unhealthy: DeviceSet::single(3),
            ..NodeState::healthy()
        };
        snap.states[2].telemetry = Telemetry::Missing;
        let store = Store::new(None, Vec::new()).with_filter_answer(FilterAnswer::Feasible);
        store.replace(snap);
        store
    }

    #[test]
    fn gpus_are_tallied_per_model_as_the_simulator_defines_them() {
        let store = store();
        let g = ClusterGauges::of(&store.view());
        assert_eq!(g.models.len(), 2, "the CPU-only node has no model entry");
        let t4 = g.models["T4"];
        assert_eq!((t4.gpus, t4.allocated_milli, t4.unhealthy), (2, 1000, 0));
        assert_eq!(t4.unallocated_milli(), 1000);
        let v100 = g.models["V100"];
        assert_eq!(
            (v100.gpus, v100.allocated_milli, v100.unhealthy),
            (4, 500, 1)
        );
        assert_eq!(
            v100.unallocated_milli(),
            3500,
            "the unhealthy GPU is unallocated"
        );
        let total = g.total();
        assert_eq!((total.gpus, total.allocated_milli), (6, 1500));
        let t = g.telemetry;
        assert_eq!(
            (t.fresh, t.stale, t.missing),
            (1, 1, 0),
            "c has no GPUs: no agent needed"
        );
        // The target workload is the two running pods: a whole GPU and a half share. On b the
        // 500-milli sliver can hold the share class but not the whole-GPU class.
        assert!(v100.fragmented_milli > 0.0 && v100.fragmented_milli <= 500.0);
        let ratio = g.frag_ratio();
        assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");
    }

    #[test]
    fn the_metrics_show_the_gpus_and_a_pod_that_fits_nowhere() {
        let store = Arc::new(store());
        let args = serde_json::from_value(serde_json::json!({
            "Pod": { "metadata": { "name": "big", "namespace": "ns", "uid": "u-big" },
                     "spec": { "containers": [{ "name": "c", "resources": {
                         "requests": { "cpu": "1", "nvidia.com/gpu": "8" } } }] } },
            "NodeNames": ["a", "b", "c"]
        }))
        .unwrap();
        let (out, _) = filter(&store, &args).unwrap();
        assert!(out.node_names.iter().flatten().next().is_none());
        let ext = Extender::new(store.clone());
        ext.metrics
            .set_cluster(&ClusterGauges::of(&store.view()), &store.waiting());
        let text = ext.metrics.render(Duration::ZERO, 3);
        for line in [
            r#"allot_cluster_gpus{model="V100"} 4.0"#,
            r#"allot_cluster_gpus_allocated{model="T4"} 1.0"#,
            r#"allot_cluster_gpus_allocated{model="V100"} 0.5"#,
            r#"allot_cluster_gpus_unallocated{model="V100"} 3.5"#,
            r#"allot_cluster_gpus_unhealthy{model="V100"} 1.0"#,
            r#"allot_cluster_nodes{telemetry="stale"} 1"#,
            r#"allot_cluster_nodes{telemetry="missing"} 0"#,
            r#"allot_extender_pending_gpu_pods{reason="gpu"} 1"#,
            r#"allot_extender_pending_gpu_pods{reason="cpu"} 0"#,
            r#"allot_build_info{role="extender",version=""#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
