//! GpuClustering: keep GPU pods of the same kind (shared, 1-GPU, 2-GPU, ...) together, and
//! prefer fuller nodes within each preference tier.

use super::{MAX_GPU_MILLI, Policy};
use crate::model::node::GpuPodKinds;
use crate::model::{Cluster, PodDemand};

#[derive(Debug, Clone, Copy, Default)]
pub struct GpuClustering;

impl Policy for GpuClustering {
    fn name(&self) -> &'static str {
        "clustering"
    }

    fn score(&mut self, cluster: &Cluster, pod: &PodDemand, candidates: &[usize], out: &mut [i64]) {
        let Some(kind) = GpuPodKinds::kind_of(pod.gpu) else {
            out.fill(0);
            return;
        };
        for (slot, &i) in out.iter_mut().zip(candidates) {
            let node = &cluster.nodes()[i];
            let idle = f64::from(node.idle_gpu_milli());
            let base = (25.0 * (MAX_GPU_MILLI - idle) / MAX_GPU_MILLI).floor() as i64;
            let same = node.kinds.count(kind) > 0;
            let others = node.kinds.any_other(kind);
            let tier = match (same, others) {
                (true, false) => 75,
                (true, true) => 50,
                (false, false) => 25,
                (false, true) => 0,
            };
            *slot = base + tier;
        }
    }
}
