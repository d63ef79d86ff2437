//! Aggregation: identical pods become one pod class with a count, identical nodes one node
//! class with a member list. This is what keeps the LP small (openb: ~90 pod shapes, a few
//! dozen node shapes) whatever the number of pods and nodes.

use std::collections::HashMap;

use crate::model::{Cluster, GpuDemand, ModelId, Node, PodDemand};

use super::BatchPod;

/// Placement weight of a pod of priority `p`: placement always dominates the secondary terms.
pub fn weight(priority: i32) -> f64 {
    1.0 + f64::from(priority.max(0))
}

/// Pods that are interchangeable for the LP: same demand, priority, gang and elasticity.
#[derive(Debug, Clone)]
pub struct PodClass {
    pub demand: PodDemand,
    pub priority: i32,
    pub gang: Option<u32>,
    pub elastic: bool,
    /// Objective weight of one placed pod.
    pub weight: f64,
    /// Indices into the batch.
    pub members: Vec<usize>,
}

impl PodClass {
    pub fn count(&self) -> usize {
        self.members.len()
    }
}

/// Nodes that are interchangeable for the LP: same free CPU, memory, model and multiset of
/// per-device free milli.
#[derive(Debug, Clone)]
pub struct NodeClass {
    /// The first member, standing for all of them (they differ only in name and device order).
    pub node: Node,
    /// Free milli per device, sorted descending.
    pub gpu_free: Vec<u16>,
    /// Indices into the cluster.
    pub members: Vec<usize>,
}

impl NodeClass {
    pub fn count(&self) -> usize {
        self.members.len()
    }

    pub fn idle_milli(&self) -> u64 {
        u64::from(self.node.idle_gpu_milli())
    }

    pub fn full_free(&self) -> u64 {
        u64::from(self.node.full_free_gpus())
    }

    /// How many pods of `gpu` one node of this class holds at most, counting devices only.
    pub fn device_slots(&self, gpu: GpuDemand) -> u64 {
        match gpu {
            GpuDemand::None => u64::MAX,
            GpuDemand::Shared { milli } => self
                .gpu_free
                .iter()
                .map(|&g| u64::from(g) / u64::from(milli))
                .sum(),
            GpuDemand::Whole { count } => self.full_free() / u64::from(count),
        }
    }

    /// Whether one pod of `demand` fits one (fresh) node of this class.
    pub fn admits(&self, demand: &PodDemand) -> bool {
        self.node.fits(demand)
    }

    /// Whether the class's nodes host nothing yet.
    pub fn is_idle(&self) -> bool {
        self.node.is_idle()
    }
}

/// Group the batch's pods into classes, in first-seen order.
pub fn pod_classes(pods: &[BatchPod]) -> Vec<PodClass> {
    let mut index: HashMap<(PodDemand, i32, Option<u32>, bool), usize> = HashMap::new();
    let mut classes: Vec<PodClass> = Vec::new();
    // An elastic pod weighs less than 1 / (batch size) of its priority's weight, so that all
    // of them together never outweigh one pod that is not elastic.
    let elastic_share = 1.0 / (1.0 + pods.len() as f64);
    for (i, pod) in pods.iter().enumerate() {
        let key = (pod.demand, pod.priority, pod.gang, pod.elastic);
        let slot = *index.entry(key).or_insert_with(|| {
            let w = weight(pod.priority);
            classes.push(PodClass {
                demand: pod.demand,
                priority: pod.priority,
                gang: pod.gang,
                elastic: pod.elastic,
                weight: if pod.elastic { w * elastic_share } else { w },
                members: Vec::new(),
            });
            classes.len() - 1
        });
        classes[slot].members.push(i);
    }
    classes
}

/// Free CPU, free memory, CPU and memory capacity, model, device free milli (descending).
type NodeKey = (u64, u64, u64, u64, Option<ModelId>, Vec<u16>);

fn node_key(node: &Node) -> NodeKey {
    let mut free = node.gpu_free().to_vec();
    free.sort_unstable_by(|a, b| b.cmp(a));
    (
        node.cpu_free,
        node.memory_free,
        node.cpu_capacity,
        node.memory_capacity,
        node.model,
        free,
    )
}

/// Group the cluster's nodes into classes, in first-seen order.
pub fn node_classes(cluster: &Cluster) -> Vec<NodeClass> {
    let mut index: HashMap<NodeKey, usize> = HashMap::new();
    let mut classes: Vec<NodeClass> = Vec::new();
    for (i, node) in cluster.nodes().iter().enumerate() {
        let key = node_key(node);
        let slot = match index.get(&key) {
            Some(&slot) => slot,
            None => {
                classes.push(NodeClass {
                    node: node.clone(),
                    gpu_free: key.5.clone(),
                    members: Vec::new(),
                });
                index.insert(key, classes.len() - 1);
                classes.len() - 1
            }
        };
        classes[slot].members.push(i);
    }
    classes
}
