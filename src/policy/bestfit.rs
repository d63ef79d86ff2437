//! BestFit: prefer the node with the least CPU and GPU left after placing the pod, scores
//! min-max scaled over the feasible nodes with integer arithmetic.

use super::{MAX_CPU_MILLI, MAX_GPU_MILLI, Policy};
use crate::model::{Cluster, PodDemand};

#[derive(Debug, Clone, Default)]
pub struct BestFit;

impl Policy for BestFit {
    fn name(&self) -> &'static str {
        "bestfit"
    }

    fn score(&mut self, cluster: &Cluster, pod: &PodDemand, candidates: &[usize], out: &mut [i64]) {
        let pod_gpu = pod.gpu.total_milli() as f64;
        for (slot, &i) in out.iter_mut().zip(candidates) {
            let node = &cluster.nodes()[i];
            let cpu_left = node.cpu_free as f64 - pod.cpu_milli as f64;
            let gpu_left = f64::from(node.idle_gpu_milli()) - pod_gpu;
            let waste = 0.5 * cpu_left / MAX_CPU_MILLI + 0.5 * gpu_left / MAX_GPU_MILLI;
            *slot = (100.0 * (1.0 - waste)).floor() as i64;
        }
        min_max_scale(out);
    }
}

/// `(s - lo) * 100 / (hi - lo)` with integer division; all zero when every score is equal.
pub(crate) fn min_max_scale(scores: &mut [i64]) {
    let (Some(&lo), Some(&hi)) = (scores.iter().min(), scores.iter().max()) else {
        return;
    };
    for s in scores.iter_mut() {
        *s = if hi == lo {
            0
        } else {
            (*s - lo) * 100 / (hi - lo)
        };
    }
}
