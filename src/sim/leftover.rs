//! Where a cluster's unallocated GPU lies at one moment of a replay: in partly used devices
//! (by how much each has left) and in idle devices, split by whether their node still has the
//! CPU for a GPU pod of the target workload. `allot simulate --leftover` reports it at the
//! table's arrival point, which says what a better placement could still win back.

use std::collections::BTreeMap;

use crate::model::frag::TargetWorkload;
use crate::model::{Cluster, MILLI_PER_GPU};

/// The unallocated GPU of one cluster, in milli-GPU.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Leftover {
    /// Free milli of partly used devices, summed by the free milli of each device: the
    /// leftovers of shares (190 is what a 810-milli share leaves alone on its GPU).
    pub partial: BTreeMap<u16, u64>,
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
        let mut out = Leftover::default();
        for node in cluster.nodes().iter() {
            for &free in node.gpu_free() {
                let free_milli = u64::from(free);
                if free == 0 {
                    continue;
                } else if free_milli < u64::from(MILLI_PER_GPU) {
                    *out.partial.entry(free).or_default() += free_milli;
                } else if node.cpu_free >= least_cpu {
                    out.idle += free_milli;
                } else {
                    out.stranded += free_milli;
                }
            }
        }
        out
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
