//! A node's free-resource shape: everything about a node a placement score can read except
//! its name, its generation and the kinds of pods it hosts. Nodes of one shape score alike
//! under every shape-only policy (FGD, the learned policy's node features), so a score is
//! computed once per distinct shape and shared (`policy::fgd`'s memo).

use super::{MAX_GPUS_PER_NODE, ModelId, Node};

/// The free-resource shape of a [`Node`]: hardware (model, CPU, memory, device count) and what
/// is free of it, device by device in index order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeShape {
    model: Option<ModelId>,
    gpu_count: u8,
    cpu_capacity: u64,
    memory_capacity: u64,
    cpu_free: u64,
    memory_free: u64,
    gpu_free: [u16; MAX_GPUS_PER_NODE],
}

impl Node {
    /// This node's [`NodeShape`].
    pub fn shape(&self) -> NodeShape {
        let mut gpu_free = [0u16; MAX_GPUS_PER_NODE];
        gpu_free[..self.gpu_count()].copy_from_slice(self.gpu_free());
        NodeShape {
            model: self.model,
            gpu_count: self.gpu_count() as u8,
            cpu_capacity: self.cpu_capacity,
            memory_capacity: self.memory_capacity,
            cpu_free: self.cpu_free,
            memory_free: self.memory_free,
            gpu_free,
        }
    }
}

/// How many distinct shapes `nodes` have.
pub fn distinct_shapes<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> usize {
    nodes
        .into_iter()
        .map(Node::shape)
        .collect::<std::collections::HashSet<_>>()
        .len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeviceSet, GpuDemand, ModelCatalog, ModelSet, PodDemand};

    #[test]
    fn names_and_generations_do_not_change_a_shape_but_free_resources_do() {
        let model = Some(ModelCatalog::default().intern("A100").unwrap());
        let a = Node::new("a", 32_000, 1 << 30, 2, model).unwrap();
        let mut b = Node::new("b", 32_000, 1 << 30, 2, model).unwrap();
        b.generation = 7;
        assert_eq!(a.shape(), b.shape());
        let share = PodDemand {
            cpu_milli: 1_000,
            memory_bytes: 0,
            gpu: GpuDemand::Shared { milli: 500 },
            models: ModelSet::ANY,
        };
        b.assign(&share, DeviceSet::single(1)).unwrap();
        assert_ne!(a.shape(), b.shape());
        let mut c = a.clone();
        c.assign(&share, DeviceSet::single(0)).unwrap();
        // The same use on another device is another shape: device order is kept.
        assert_ne!(b.shape(), c.shape());
        assert_eq!(distinct_shapes([&a, &b, &c, &a.clone()]), 3);
    }
}
