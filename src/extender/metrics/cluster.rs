//! The cluster-state families of the extender's metrics (GPUs by model, fragmentation,
//! nodes by telemetry, pending GPU pods by reason), set from a view at each scrape.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::extender::gauges::ClusterGauges;
use crate::extender::waiting::Waiting;
use crate::model::MILLI_PER_GPU;

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
pub(super) struct ClusterFamilies {
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
    pub(super) fn register(&self, r: &mut Registry) {
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

    pub(super) fn set(&self, cluster: &ClusterGauges, waiting: &[u64; Waiting::ALL.len()]) {
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
