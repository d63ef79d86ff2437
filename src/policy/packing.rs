//! GpuPacking: fill partially used GPUs first, then partially used nodes, and open a fully
//! idle node last (the smallest one).

use super::Policy;
use crate::model::{Cluster, GpuDemand, MILLI_PER_GPU, Node, PodDemand};

#[derive(Debug, Clone, Copy, Default)]
pub struct GpuPacking;

/// Score tiers (from the FGD authors' simulator): idle nodes score below 33, placements that
/// open a fully free GPU on a busy node 33..=49, placements on partly used GPUs 50..=100.
fn packing_score(node: &Node, gpu: GpuDemand) -> i64 {
    let full = MILLI_PER_GPU as u16;
    let n_free = node.full_free_gpus() as i64;
    if n_free as usize == node.gpu_count() {
        return (33 - n_free).max(n_free);
    }
    let mut free: Vec<u16> = node.gpu_free().to_vec();
    free.sort_unstable();
    let per = gpu.per_gpu_milli() as u16;
    let used: Vec<u16> = free
        .into_iter()
        .filter(|&g| g >= per)
        .take(gpu.num_gpu() as usize)
        .collect();
    let opened = used.iter().filter(|&&g| g == full).count() as i64;
    if opened > 0 {
        return (50 - opened).max(33);
    }
    let sum: i64 = used.iter().map(|&g| i64::from(g) * 100 / 1000).sum();
    (100 - sum / 10).max(50)
}

impl Policy for GpuPacking {
    fn name(&self) -> &'static str {
        "packing"
    }

    fn score(&mut self, cluster: &Cluster, pod: &PodDemand, candidates: &[usize], out: &mut [i64]) {
        if !pod.needs_gpu() {
            out.fill(0);
            return;
        }
        for (slot, &i) in out.iter_mut().zip(candidates) {
            *slot = packing_score(&cluster.nodes()[i], pod.gpu);
        }
    }
}
