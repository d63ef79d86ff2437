//! RandomFit: a uniformly random feasible node, and a uniformly random fitting device.

use super::{Context, Policy};
use crate::model::{Cluster, DeviceSet, GpuDemand, Node, PodDemand};
use crate::rng::Rng;

/// Streams of one decision's draws: node scores, then a device.
const STREAM_SCORES: u64 = 0x5241_4e44;
const STREAM_DEVICE: u64 = 0x4445_5649;

#[derive(Debug, Clone)]
pub struct RandomFit {
    /// The draws of the current decision (see [`Policy::begin`]).
    rng: Rng,
    draw: u64,
}

impl RandomFit {
    pub fn new(seed: u64) -> Self {
        RandomFit {
            rng: Rng::derive(seed, STREAM_SCORES),
            draw: seed,
        }
    }
}

impl Policy for RandomFit {
    fn name(&self) -> &'static str {
        "random"
    }

    fn begin(&mut self, _: &Context, draw: u64) {
        self.draw = draw;
        self.rng = Rng::derive(draw, STREAM_SCORES);
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
        let mut rng = Rng::derive(self.draw, STREAM_DEVICE);
        Some(DeviceSet::single(fitting[rng.below(fitting.len())]))
    }
}
