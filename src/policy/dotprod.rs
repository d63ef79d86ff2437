//! DotProd (Tetris-style alignment): prefer the node whose free vector has the smallest dot
//! product with the pod's demand, both normalised by the largest node.

use super::{MAX_CPU_MILLI, MAX_GPU_MILLI, Policy};
use crate::model::{Cluster, PodDemand};

#[derive(Debug, Clone, Copy, Default)]
pub struct DotProd;

impl Policy for DotProd {
    fn name(&self) -> &'static str {
        "dotprod"
    }

    fn score(&mut self, cluster: &Cluster, pod: &PodDemand, candidates: &[usize], out: &mut [i64]) {
        let pod_cpu = pod.cpu_milli as f64 / MAX_CPU_MILLI;
        let pod_gpu = pod.gpu.total_milli() as f64 / MAX_GPU_MILLI;
        for (slot, &i) in out.iter_mut().zip(candidates) {
            let node = &cluster.nodes()[i];
            let dot = node.cpu_free as f64 / MAX_CPU_MILLI * pod_cpu
                + f64::from(node.idle_gpu_milli()) / MAX_GPU_MILLI * pod_gpu;
            *slot = (100.0 * (1.0 - dot / 2.0)).floor() as i64;
        }
    }
}
