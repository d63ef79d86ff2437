//! RandomFit: a uniformly random feasible node, and a uniformly random fitting device.

use super::Policy;
use crate::model::{Cluster, DeviceSet, GpuDemand, Node, PodDemand};
use crate::rng::Rng;

#[derive(Debug, Clone)]
pub struct RandomFit {
    rng: Rng,
}

impl RandomFit {
    pub fn new(seed: u64) -> Self {
        RandomFit {
            rng: Rng::derive(seed, 0x5241_4e44),
        }
    }
}

impl Policy for RandomFit {
    fn name(&self) -> &'static str {
        "random"
    }

    fn score(&mut self, _: &Cluster, _: &PodDemand, _: &[usize], out: &mut [i64]) {
        // Distinct random scores make the arg-max a uniform draw over the candidates.
        for slot in out.iter_mut() {
            *slot = (self.rng.next_u64() >> 1) as i64;
        }
    }

    fn devices(&mut self, node: &Node, pod: &PodDemand) -> Option<DeviceSet> {
        let GpuDemand::Shared { milli } = pod.gpu else {
            return node.default_devices(pod.gpu);
        };
        let fitting: Vec<usize> = (0..node.gpu_count())
            .filter(|&i| u32::from(node.gpu_free()[i]) >= milli)
            .collect();
        if fitting.is_empty() {
            return None;
        }
        Some(DeviceSet::single(fitting[self.rng.below(fitting.len())]))
    }
}
