//! Where a cluster's unallocated GPU lies at one moment of a replay: in partly used devices
//! (by how much each has left, and whether the shares that would fit in it still fit their
//! node's CPU) and in idle devices, split by whether their node still has the CPU for a GPU pod
//! of the target workload. `allot simulate --leftover` reports it at the
//! table's arrival point, which says what a better placement could still win back.

use std::collections::BTreeMap;

use crate::model::frag::TargetWorkload;
use crate::model::{Cluster, GpuDemand, MILLI_PER_GPU};
use crate::sim::metrics::at_or_near;

/// The unallocated GPU of one cluster, in milli-GPU, or the sum of `samples` such
/// measurements (see [`Leftover::add`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Leftover {
    /// How many measurements are summed here (1 for one cluster).
    pub samples: u64,
    /// Free milli of partly used devices, summed by the free milli of each device: the
    /// leftovers of shares (190 is what a 810-milli share leaves alone on its GPU).
    pub partial: BTreeMap<u16, u64>,
    /// The part of `partial` in devices big enough for a share of the target workload whose
    /// node has not the CPU for any such share: the node's limits, not the device's size, keep
    /// it free.
    pub partial_cpu_bound: u64,
    /// Idle devices on nodes with the CPU left for at least one GPU class of the target.
    pub idle: u64,
    /// Idle devices on nodes whose free CPU is below every GPU class of the target: GPU
    /// that no typical pod can use, stranded by CPU.
    pub stranded: u64,
}

impl Leftover {
    /// Measure `cluster`. `target` decides which idle devices count as stranded.
    pub fn of(cluster: &Cluster, target: &TargetWorkload) -> Self {
        let least_cpu = target
            .classes()
            .iter()
            .filter(|(class, _)| class.needs_gpu())
            .map(|(class, _)| class.cpu_milli)
            .min()
            .unwrap_or(0);
        // The target's shares, (milli, CPU), smallest first.
        let mut shares: Vec<(u32, u64)> = target
            .classes()
            .iter()
            .filter_map(|(class, _)| match class.gpu {
                GpuDemand::Shared { milli } => Some((milli, class.cpu_milli)),
                _ => None,
            })
            .collect();
        shares.sort_unstable();
        let mut out = Leftover {
            samples: 1,
            ..Leftover::default()
        };
        for node in cluster.nodes().iter() {
            for &free in node.gpu_free() {
                let free_milli = u64::from(free);
                if free == 0 {
                    continue;
                } else if free_milli < u64::from(MILLI_PER_GPU) {
                    *out.partial.entry(free).or_default() += free_milli;
                    let fitting = &shares[..shares.partition_point(|&(m, _)| m <= u32::from(free))];
                    if !fitting.is_empty() && fitting.iter().all(|&(_, cpu)| cpu > node.cpu_free) {
                        out.partial_cpu_bound += free_milli;
                    }
                } else if node.cpu_free >= least_cpu {
                    out.idle += free_milli;
                } else {
                    out.stranded += free_milli;
                }
            }
        }
        out
    }

    /// Add `other`'s measurements to these.
    pub fn add(&mut self, other: &Leftover) {
        for (&size, &milli) in &other.partial {
            *self.partial.entry(size).or_default() += milli;
        }
        self.partial_cpu_bound += other.partial_cpu_bound;
        self.idle += other.idle;
        self.stranded += other.stranded;
        self.samples += other.samples;
    }

    /// All free milli in partly used devices.
    pub fn partial_total(&self) -> u64 {
        self.partial.values().sum()
    }

    /// All unallocated milli: partly used devices, idle and stranded ones.
    pub fn total(&self) -> u64 {
        self.partial_total() + self.idle + self.stranded
    }

    /// The `n` leftover sizes holding the most milli, largest amount first (ties: smaller
    /// size first).
    pub fn largest_partial(&self, n: usize) -> Vec<(u16, u64)> {
        let mut sizes: Vec<(u16, u64)> = self.partial.iter().map(|(&s, &m)| (s, m)).collect();
        sizes.sort_by_key(|&(size, milli)| (std::cmp::Reverse(milli), size));
        sizes.truncate(n);
        sizes
    }
}

/// One replay's [`Leftover`] at an arrival point, averaged as the table's curves are (see
/// `sim/metrics.rs`): over the events whose arrived workload rounds to the point, or where
/// there are none, over those within one point of it.
#[derive(Debug, Clone)]
pub struct LeftoverAt {
    at: usize,
    /// Sums at `at - 1`, `at` and `at + 1`.
    near: [Leftover; 3],
}

impl LeftoverAt {
    pub fn new(at: usize) -> Self {
        LeftoverAt {
            at,
            near: Default::default(),
        }
    }

    /// Measure `cluster` if `x` (the event's rounded arrived %) is within a point of the mark.
    pub fn record(&mut self, x: usize, cluster: &Cluster, target: &TargetWorkload) {
        if let Some(slot) = (x + 1).checked_sub(self.at).filter(|&i| i < 3) {
            self.near[slot].add(&Leftover::of(cluster, target));
        }
    }

    /// The sum to average, or `None` if no event came within a point of the mark.
    pub fn finish(self) -> Option<Leftover> {
        let [below, at, above] = self.near;
        at_or_near(below, at, above, |l| l.samples > 0, |near, l| near.add(&l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeviceSet, GpuDemand, Placement};
    use crate::policy::testkit::{cluster, pod, share, target};

    #[test]
    fn leftovers_are_split_into_partial_idle_and_stranded_devices() {
        // Two 4-GPU nodes with 64 cores; the target's only GPU class wants 8 cores.
        let mut cluster = cluster(&[4, 4]);
        let on = |node, device| Placement {
            node,
            devices: DeviceSet::single(device),
        };
        cluster.place(&share(810), on(0, 0)).unwrap();
        let hungry = pod(60_000, GpuDemand::Whole { count: 1 });
        cluster.place(&hungry, on(1, 0)).unwrap();
        let target = target(&[pod(8_000, GpuDemand::Whole { count: 1 })]);
        let left = Leftover::of(&cluster, &target);
        assert_eq!(left.partial, BTreeMap::from([(190, 190)]));
        // Node 0 keeps 60 cores: its three idle GPUs are usable. Node 1 keeps 4: stranded.
        assert_eq!(left.idle, 3_000);
        assert_eq!(left.stranded, 3_000);
        assert_eq!(left.total(), 6_190);
        assert_eq!(left.samples, 1);
        let mut sum = left.clone();
        sum.add(&left);
        assert_eq!(
            (sum.samples, sum.total(), sum.partial[&190]),
            (2, 12_380, 380)
        );
    }

    #[test]
    fn partly_used_devices_are_cpu_bound_when_no_share_that_fits_them_fits_the_node() {
        // The target's shares: 100 milli with 2 cores, 500 milli with 16 cores.
        let target = target(&[
            pod(2_000, GpuDemand::Shared { milli: 100 }),
            pod(16_000, GpuDemand::Shared { milli: 500 }),
        ]);
        let on = |node, device| Placement {
            node,
            devices: DeviceSet::single(device),
        };
        let mut cluster = cluster(&[2, 2, 2]);
        // Node 0 keeps 8 cores: its 400 free fit the 100-milli share (2 cores): open.
        cluster
            .place(&pod(56_000, GpuDemand::Shared { milli: 600 }), on(0, 0))
            .unwrap();
        // Node 1 keeps 1 core: its 700 free fit both shares by GPU, neither by CPU.
        cluster
            .place(&pod(63_000, GpuDemand::Shared { milli: 300 }), on(1, 0))
            .unwrap();
        // Node 2 keeps 1 core and 50 free milli: too small for any share, so not CPU-bound.
        cluster
            .place(&pod(63_000, GpuDemand::Shared { milli: 950 }), on(2, 0))
            .unwrap();
        let left = Leftover::of(&cluster, &target);
        assert_eq!(
            left.partial,
            BTreeMap::from([(50, 50), (400, 400), (700, 700)])
        );
        assert_eq!(left.partial_cpu_bound, 700);
        let mut sum = left.clone();
        sum.add(&left);
        assert_eq!(sum.partial_cpu_bound, 1_400);
    }

    #[test]
    fn the_mark_averages_its_own_events_else_its_neighbours() {
        let empty = cluster(&[4]);
        let mut half = cluster(&[4]);
        let whole = |count| pod(1_000, GpuDemand::Whole { count });
        let on = |devices| Placement { node: 0, devices };
        half.place(&whole(2), on(DeviceSet::single(0).with(1)))
            .unwrap();
        let target = target(&[whole(1)]);
        let marked = |at, events: &[(usize, &Cluster)]| {
            let mut mark = LeftoverAt::new(at);
            for &(x, c) in events {
                mark.record(x, c, &target);
            }
            mark.finish()
        };
        let events = [
            (98, &half),
            (99, &empty),
            (100, &empty),
            (100, &half),
            (102, &half),
        ];
        let left = marked(100, &events).unwrap();
        assert_eq!(
            (left.samples, left.idle),
            (2, 6_000),
            "the events at 100 only"
        );
        let left = marked(100, &[(99, &empty), (101, &half), (102, &half)]).unwrap();
        assert_eq!(
            (left.samples, left.idle),
            (2, 6_000),
            "99 and 101, none at 100"
        );
        assert!(marked(100, &[]).is_none());
        assert!(marked(0, &[(2, &half)]).is_none(), "two points off");
    }

    #[test]
    fn the_largest_leftover_sizes_come_first() {
        let left = Leftover {
            partial: BTreeMap::from([(30, 300), (60, 600), (190, 1900), (90, 600)]),
            ..Leftover::default()
        };
        assert_eq!(
            left.largest_partial(3),
            vec![(190, 1900), (60, 600), (90, 600)]
        );
        assert_eq!(left.partial_total(), 3_400);
    }
}
