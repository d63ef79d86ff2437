//! GPU fragmentation against a target workload, as defined by the FGD paper (Weng et al.,
//! USENIX ATC'23, §4): the idle GPU milli on a node that the typical pods cannot use.
//!
//! For each pod class m with probability p_m, a node's unusable idle GPU f_m is all of it when
//! m cannot run there at all (CPU-only class, excluded model, not enough CPU or devices), and
//! otherwise only the devices with less free milli than m needs per device. The node's
//! fragmentation is F = sum_m p_m f_m; the cluster's is the sum over nodes.

use std::collections::HashMap;

use super::node::Node;
use super::pod::PodShape;

/// Share of pods the target workload must cover: the paper keeps the most frequent classes
/// until they account for 95% of pods.
pub const TARGET_COVERAGE: f64 = 0.95;

/// The "typical pods": the most frequent demand classes and their renormalised weights.
#[derive(Debug, Clone, Default)]
pub struct TargetWorkload {
    classes: Vec<(PodShape, f64)>,
    distinct: usize,
}

impl TargetWorkload {
    /// Group `pods` into classes by shape, keep the most frequent ones covering
    /// [`TARGET_COVERAGE`] of pods (ties by shape, descending) and renormalise.
    /// `spec_key` renders a class's model constraint for the tie-break, as the trace spells it.
    pub fn from_pods<'a>(
        pods: impl IntoIterator<Item = &'a PodShape>,
        spec_key: impl Fn(&PodShape) -> String,
    ) -> Self {
        let mut counts: HashMap<PodShape, u64> = HashMap::new();
        let mut total = 0u64;
        for pod in pods {
            *counts.entry(*pod).or_default() += 1;
            total += 1;
        }
        let distinct = counts.len();
        let mut ranked: Vec<(PodShape, u64, String)> = counts
            .into_iter()
            .map(|(shape, n)| (shape, n, spec_key(&shape)))
            .collect();
        ranked.sort_by(|a, b| {
            let key = |(s, n, spec): &(PodShape, u64, String)| {
                (
                    *n,
                    s.cpu_milli,
                    s.gpu.per_gpu_milli(),
                    s.gpu.num_gpu(),
                    spec.clone(),
                )
            };
            key(b).cmp(&key(a))
        });
        let mut kept = Vec::new();
        let mut covered = 0u64;
        for (shape, n, _) in ranked {
            if total == 0 || covered as f64 >= TARGET_COVERAGE * total as f64 {
                break;
            }
            covered += n;
            kept.push((shape, n));
        }
        let classes = kept
            .into_iter()
            .map(|(shape, n)| (shape, n as f64 / covered as f64))
            .collect();
        TargetWorkload { classes, distinct }
    }

    pub fn classes(&self) -> &[(PodShape, f64)] {
        &self.classes
    }

    /// How many distinct classes the source pods had before the cut.
    pub fn distinct_classes(&self) -> usize {
        self.distinct
    }

    /// Fragmentation F of a node in milli-GPU, given its free CPU and per-device free milli.
    pub fn node_frag_of(&self, node: &Node, cpu_free: u64, gpu_free: &[u16]) -> f64 {
        let idle: u32 = gpu_free.iter().map(|&g| u32::from(g)).sum();
        if idle == 0 {
            return 0.0;
        }
        let mut frag = 0.0;
        for (class, p) in &self.classes {
            frag += p * f64::from(class_frag(node, cpu_free, gpu_free, idle, class));
        }
        frag
    }

    /// Fragmentation F of a node as it stands.
    pub fn node_frag(&self, node: &Node) -> f64 {
        self.node_frag_of(node, node.cpu_free, node.gpu_free())
    }
}

/// f_m: the idle milli on the node that class m cannot use.
fn class_frag(node: &Node, cpu_free: u64, gpu_free: &[u16], idle: u32, class: &PodShape) -> u32 {
    if !class.needs_gpu() || !node.model_allowed(class.models) || cpu_free < class.cpu_milli {
        return idle;
    }
    let per = class.gpu.per_gpu_milli();
    let mut usable = 0u32;
    let mut slivers = 0u32;
    for &g in gpu_free {
        if u32::from(g) >= per {
            usable += 1;
        } else {
            slivers += u32::from(g);
        }
    }
    if usable >= class.gpu.num_gpu() {
        slivers
    } else {
        idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GpuDemand, ModelCatalog, ModelSet, PodDemand};

    fn shape(cpu: u64, gpu: GpuDemand) -> PodShape {
        PodShape {
            cpu_milli: cpu,
            gpu,
            models: ModelSet::ANY,
        }
    }

    #[test]
    fn keeps_the_frequent_classes_and_renormalises() {
        let a = shape(1000, GpuDemand::Shared { milli: 500 });
        let b = shape(2000, GpuDemand::Whole { count: 1 });
        let c = shape(3000, GpuDemand::None);
        let pods: Vec<PodShape> = std::iter::repeat_n(a, 90)
            .chain(std::iter::repeat_n(b, 8))
            .chain(std::iter::repeat_n(c, 2))
            .collect();
        let t = TargetWorkload::from_pods(&pods, |_| String::new());
        assert_eq!(t.distinct_classes(), 3);
        assert_eq!(t.classes().len(), 2);
        assert!((t.classes()[0].1 - 90.0 / 98.0).abs() < 1e-12);
    }

    #[test]
    fn slivers_count_only_for_classes_that_fit() {
        let mut cat = ModelCatalog::default();
        let t4 = cat.intern("T4").unwrap();
        let mut node = crate::model::Node::new("n", 8000, 1 << 30, 2, Some(t4)).unwrap();
        let p = PodDemand {
            cpu_milli: 1000,
            memory_bytes: 0,
            gpu: GpuDemand::Shared { milli: 700 },
            models: ModelSet::ANY,
        };
        node.assign(&p, crate::model::DeviceSet::single(0)).unwrap();
        // free: [300, 1000]
        let half = shape(1000, GpuDemand::Shared { milli: 500 });
        let two = shape(1000, GpuDemand::Whole { count: 2 });
        let cpu = shape(1000, GpuDemand::None);
        let only = |s| TargetWorkload::from_pods(&[s], |_| String::new());
        assert_eq!(only(half).node_frag(&node), 300.0);
        assert_eq!(only(two).node_frag(&node), 1300.0);
        assert_eq!(only(cpu).node_frag(&node), 1300.0);
        let greedy = shape(9000, GpuDemand::Shared { milli: 100 });
        assert_eq!(only(greedy).node_frag(&node), 1300.0);
    }
}
