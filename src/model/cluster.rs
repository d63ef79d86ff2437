//! A cluster: the nodes, the GPU model catalog, and running totals kept in step with every
//! placement.

use super::gpu::ModelCatalog;
use super::node::{DeviceSet, Misfit, Node};
use super::nodes::Nodes;
use super::pod::{MILLI_PER_GPU, PodDemand};

/// Where a pod goes: a node index and the devices it takes there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Placement {
    pub node: usize,
    pub devices: DeviceSet,
}

/// Nodes plus totals. Node indices are stable for the life of the cluster.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub models: ModelCatalog,
    nodes: Nodes,
    gpu_capacity_milli: u64,
    gpu_allocated_milli: u64,
}

impl Cluster {
    pub fn new(models: ModelCatalog, nodes: Vec<Node>) -> Self {
        let gpu_capacity_milli = nodes
            .iter()
            .map(|n| n.gpu_count() as u64 * u64::from(MILLI_PER_GPU))
            .sum();
        let idle: u64 = nodes.iter().map(|n| u64::from(n.idle_gpu_milli())).sum();
        Cluster {
            models,
            nodes: Nodes::new(nodes),
            gpu_capacity_milli,
            gpu_allocated_milli: gpu_capacity_milli - idle,
        }
    }

    #[inline]
    pub fn nodes(&self) -> &Nodes {
        &self.nodes
    }

    #[inline]
    pub fn node(&self, index: usize) -> Option<&Node> {
        self.nodes.get(index)
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn gpu_capacity_milli(&self) -> u64 {
        self.gpu_capacity_milli
    }

    pub fn gpu_allocated_milli(&self) -> u64 {
        self.gpu_allocated_milli
    }

    pub fn gpu_count(&self) -> usize {
        self.nodes.iter().map(Node::gpu_count).sum()
    }

    /// Commit a placement. Refuses (and changes nothing) if it would overbook the node.
    pub fn place(&mut self, pod: &PodDemand, at: Placement) -> Result<(), Misfit> {
        let node = self.nodes.get_mut(at.node).ok_or(Misfit::NoGpus)?;
        node.assign(pod, at.devices)?;
        self.gpu_allocated_milli += pod.gpu.total_milli();
        Ok(())
    }

    /// Take a GPU out of service (see [`Node::withhold_gpu`]); its idle milli counts as
    /// allocated, so capacity = allocated + idle still holds.
    pub fn withhold_gpu(&mut self, node: usize, device: usize) {
        if let Some(n) = self.nodes.get_mut(node) {
            let before = n.idle_gpu_milli();
            n.withhold_gpu(device);
            self.gpu_allocated_milli += u64::from(before - n.idle_gpu_milli());
        }
    }

    /// Undo a placement made with [`Cluster::place`].
    pub fn remove(&mut self, pod: &PodDemand, at: Placement) {
        if let Some(node) = self.nodes.get_mut(at.node) {
            let before = node.idle_gpu_milli();
            node.release(pod, at.devices);
            let freed = u64::from(node.idle_gpu_milli() - before);
            self.gpu_allocated_milli = self.gpu_allocated_milli.saturating_sub(freed);
        }
    }
}
