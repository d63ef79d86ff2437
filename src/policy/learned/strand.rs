//! The GPU a placement leaves that no GPU pod of the target workload could use for want of its
//! node's CPU: free milli in devices big enough for one of the target's GPU classes, on a node
//! whose free CPU is below every such class's. A share's device table sees only a device's
//! free milli; this is what it cannot see.

use crate::model::frag::TargetWorkload;
use crate::model::{GpuDemand, MILLI_PER_GPU, Node, PodDemand};

/// What the target's GPU classes need, arranged to answer "the least CPU of a class that fits
/// a device with `f` free milli" quickly.
#[derive(Debug, Clone, Default)]
pub struct CpuReach {
    /// The target's shares by milli, ascending, each with the least CPU of any share of at
    /// most that many milli.
    shares: Vec<(u16, u64)>,
    /// The least CPU of a whole-GPU class per count (index `k - 1`), then the least over
    /// every count up to it.
    whole: Vec<u64>,
}

impl CpuReach {
    pub fn of(target: &TargetWorkload) -> Self {
        let mut shares: Vec<(u16, u64)> = Vec::new();
        let mut whole: Vec<u64> = Vec::new();
        for (class, _) in target.classes() {
            match class.gpu {
                GpuDemand::Shared { milli } => {
                    shares.push((milli.min(u32::from(u16::MAX)) as u16, class.cpu_milli))
                }
                GpuDemand::Whole { count } if count >= 1 => {
                    let k = count as usize;
                    if whole.len() < k {
                        whole.resize(k, u64::MAX);
                    }
                    whole[k - 1] = whole[k - 1].min(class.cpu_milli);
                }
                _ => {}
            }
        }
        shares.sort_unstable();
        let mut least = u64::MAX;
        for s in &mut shares {
            least = least.min(s.1);
            s.1 = least;
        }
        let mut least = u64::MAX;
        for w in &mut whole {
            least = least.min(*w);
            *w = least;
        }
        CpuReach { shares, whole }
    }

    /// The least CPU of a target class that a device with `free` milli fits, on a node with
    /// `idle` whole free devices; `None` when no class fits it by size.
    fn least_cpu(&self, free: u16, idle: usize) -> Option<u64> {
        let fitting = self.shares.partition_point(|&(m, _)| m <= free);
        let share = fitting.checked_sub(1).map(|i| self.shares[i].1);
        let whole = (free == MILLI_PER_GPU as u16 && idle > 0 && !self.whole.is_empty())
            .then(|| self.whole[idle.min(self.whole.len()) - 1]);
        match (share, whole) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .filter(|&c| c != u64::MAX)
    }

    /// Free milli of `free`'s devices that some class fits by size but none by `cpu_free`.
    fn bound(&self, free: &[u16], cpu_free: u64) -> u64 {
        let idle = free.iter().filter(|&&f| f == MILLI_PER_GPU as u16).count();
        free.iter()
            .filter(|&&f| f > 0)
            .filter(|&&f| self.least_cpu(f, idle).is_some_and(|cpu| cpu > cpu_free))
            .map(|&f| u64::from(f))
            .sum()
    }

    /// How much GPU (in GPUs) placing `pod` on `node` leaves bound by CPU, less what was bound
    /// before; a share takes `device` (else the fullest that fits), whole GPUs idle ones.
    pub fn change(&self, node: &Node, pod: &PodDemand, device: Option<usize>) -> f64 {
        let before = node.gpu_free();
        let mut after = [0u16; crate::model::MAX_GPUS_PER_NODE];
        let after = &mut after[..before.len()];
        after.copy_from_slice(before);
        match pod.gpu {
            GpuDemand::None => {}
            GpuDemand::Shared { milli } => {
                let milli = milli as u16;
                let slot = device
                    .filter(|&d| d < after.len() && after[d] >= milli)
                    .or_else(|| {
                        (0..after.len())
                            .filter(|&d| after[d] >= milli)
                            .min_by_key(|&d| after[d])
                    });
                if let Some(d) = slot {
                    after[d] -= milli;
                }
            }
            GpuDemand::Whole { count } => {
                let full = MILLI_PER_GPU as u16;
                for f in after
                    .iter_mut()
                    .filter(|f| **f == full)
                    .take(count as usize)
                {
                    *f = 0;
                }
            }
        }
        let cpu_after = node.cpu_free.saturating_sub(pod.cpu_milli);
        let b = self.bound(before, node.cpu_free) as f64;
        let a = self.bound(after, cpu_after) as f64;
        (a - b) / f64::from(MILLI_PER_GPU)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeviceSet, Placement};
    use crate::policy::learned::features::{self, CPU_BOUND, Globals};
    use crate::policy::testkit::{cluster, pod, target};

    /// Shares of 100 milli with 2 cores and of 500 milli with 16; whole GPUs with 8 cores.
    fn reach() -> CpuReach {
        CpuReach::of(&target(&[
            pod(2_000, GpuDemand::Shared { milli: 100 }),
            pod(16_000, GpuDemand::Shared { milli: 500 }),
            pod(8_000, GpuDemand::Whole { count: 1 }),
        ]))
    }

    #[test]
    fn a_device_is_cpu_bound_when_no_class_that_fits_it_fits_the_node() {
        let r = reach();
        assert_eq!(r.least_cpu(50, 0), None, "too small for any share");
        assert_eq!(r.least_cpu(400, 0), Some(2_000));
        assert_eq!(
            r.least_cpu(1_000, 1),
            Some(2_000),
            "the small share is cheapest"
        );
        // One core is below every class that fits them (the 100-milli share's 2 the least).
        assert_eq!(r.bound(&[600, 1_000, 50], 1_000), 1_600);
        assert_eq!(r.bound(&[600, 1_000, 50], 2_000), 0);
    }

    #[test]
    fn a_placement_that_eats_the_nodes_cpu_binds_its_free_gpu() {
        let r = reach();
        // A 2-GPU node with 64 cores, one device half used.
        let mut c = cluster(&[2]);
        let share = |cpu, milli| pod(cpu, GpuDemand::Shared { milli });
        let on = |d| Placement {
            node: 0,
            devices: DeviceSet::single(d),
        };
        c.place(&share(4_000, 500), on(0)).unwrap();
        let node = &c.nodes()[0];
        // 59 of the 60 free cores: 1 core left, below every class.
        let hungry = pod(59_000, GpuDemand::Shared { milli: 100 });
        // The share takes 100 of device 0 (the fullest that fits): 400 + 1,000 bound.
        assert!((r.change(node, &hungry, None) - 1.4).abs() < 1e-9);
        // Sent to device 1 instead: 500 + 900 bound.
        assert!((r.change(node, &hungry, Some(1)) - 1.4).abs() < 1e-9);
        // A modest share binds nothing.
        assert_eq!(r.change(node, &share(4_000, 100), None), 0.0);
        // The measure holds for a CPU-only pod, but the feature is a GPU pod's only.
        let cpu_only = pod(59_000, GpuDemand::None);
        assert!((r.change(node, &cpu_only, None) - 1.5).abs() < 1e-9);
        let g = Globals {
            load: 0.0,
            frag: 0.0,
            cpu_per_gpu: 8_000.0,
        };
        let feature =
            |p: &PodDemand, reach| features::of(node, p, 0, 0.0, &g, None, reach)[CPU_BOUND];
        assert!((feature(&hungry, Some(&r)) - 1.4).abs() < 1e-9);
        assert_eq!(
            feature(&hungry, None),
            0.0,
            "computed only when it carries weight"
        );
        assert_eq!(feature(&cpu_only, Some(&r)), 0.0);
    }
}
