//! Kubernetes' NodeResourcesFit scoring strategies LeastAllocated and MostAllocated, over
//! cpu, memory and GPU (milli) with weight 1 each, in kube-scheduler's integer arithmetic.
//! A resource the node does not have (GPU on a CPU node) is left out of the average, as
//! kube-scheduler leaves out zero-allocatable resources.

use super::Policy;
use crate::model::{Cluster, MILLI_PER_GPU, Node, PodDemand};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocatedMode {
    /// Spread: prefer the node with the most left after placement.
    Least,
    /// Pack: prefer the node with the least left after placement.
    Most,
}

#[derive(Debug, Clone, Copy)]
pub struct Allocated {
    mode: AllocatedMode,
}

impl Allocated {
    pub fn new(mode: AllocatedMode) -> Self {
        Allocated { mode }
    }

    fn node_score(&self, node: &Node, pod: &PodDemand) -> i64 {
        let gpu_cap = node.gpu_count() as u64 * u64::from(MILLI_PER_GPU);
        let resources = [
            (
                node.cpu_capacity,
                node.cpu_capacity - node.cpu_free,
                pod.cpu_milli,
            ),
            (
                node.memory_capacity,
                node.memory_capacity - node.memory_free,
                pod.memory_bytes,
            ),
            (
                gpu_cap,
                gpu_cap - u64::from(node.idle_gpu_milli()),
                pod.gpu.total_milli(),
            ),
        ];
        let (mut total, mut weight) = (0i128, 0i128);
        for (capacity, used, request) in resources {
            if capacity == 0 {
                continue;
            }
            let requested = i128::from((used + request).min(capacity));
            let capacity = i128::from(capacity);
            total += match self.mode {
                AllocatedMode::Least => (capacity - requested) * 100 / capacity,
                AllocatedMode::Most => requested * 100 / capacity,
            };
            weight += 1;
        }
        if weight == 0 {
            0
        } else {
            (total / weight) as i64
        }
    }
}

impl Policy for Allocated {
    fn name(&self) -> &'static str {
        match self.mode {
            AllocatedMode::Least => "least-allocated",
            AllocatedMode::Most => "most-allocated",
        }
    }

    fn score(&mut self, cluster: &Cluster, pod: &PodDemand, candidates: &[usize], out: &mut [i64]) {
        for (slot, &i) in out.iter_mut().zip(candidates) {
            *slot = self.node_score(&cluster.nodes()[i], pod);
        }
    }
}
