//! Small clusters and pods for policy tests.

use crate::model::frag::TargetWorkload;
use crate::model::{Cluster, GpuDemand, ModelCatalog, ModelSet, Node, PodDemand};

pub fn pod(cpu_milli: u64, gpu: GpuDemand) -> PodDemand {
    PodDemand {
        cpu_milli,
        memory_bytes: 1 << 30,
        gpu,
        models: ModelSet::ANY,
    }
}

pub fn share(milli: u32) -> PodDemand {
    pod(4000, GpuDemand::Shared { milli })
}

pub fn whole(count: u32) -> PodDemand {
    pod(8000, GpuDemand::Whole { count })
}

/// A cluster of `T4` nodes with 64 cores, 256 GiB and the given GPU counts.
pub fn cluster(gpus: &[usize]) -> Cluster {
    let mut models = ModelCatalog::default();
    let t4 = models.intern("T4").ok();
    let nodes = gpus
        .iter()
        .enumerate()
        .filter_map(|(i, &g)| Node::new(format!("node-{i}"), 64_000, 256 << 30, g, t4).ok())
        .collect();
    Cluster::new(models, nodes)
}

/// A target workload of the given pods, equally likely.
pub fn target(pods: &[PodDemand]) -> TargetWorkload {
    let shapes: Vec<_> = pods.iter().map(PodDemand::shape).collect();
    TargetWorkload::from_pods(&shapes, |_| String::new())
}
