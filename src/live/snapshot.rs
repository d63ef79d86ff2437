//! The in-memory cluster snapshot the extender and the controller read: nodes with every
//! bound pod placed on its devices, a name index, and what the core does not model (per-node
//! readiness, telemetry and GPU health). Built from the watches (`build.rs`) or from a
//! snapshot file; never mutated once built.

use std::sync::Arc;
use std::time::Instant;

use super::NodeState;
use super::fxhash::FxHashMap;
use crate::model::frag::TargetWorkload;
use crate::model::{Cluster, Placement, PodDemand, PodShape};
use crate::snapshot::Snapshot;

/// A pod running on a node, as allot accounts it.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundPod {
    pub key: String,
    /// The pod UID; snapshot pods have none and use their key.
    pub uid: String,
    pub demand: PodDemand,
    pub at: Placement,
    pub priority: i32,
}

/// Nodes and bound pods at one instant, with a name index. Never mutated once built.
#[derive(Debug, Clone)]
pub struct ClusterSnapshot {
    pub cluster: Cluster,
    pub index: NodeIndex,
    pub pods: Vec<BoundPod>,
    /// Per node (parallel to `cluster`): readiness, telemetry, GPU health. Empty when
    /// nothing is known beyond allocation (snapshot files): every node counts as usable.
    pub states: Vec<NodeState>,
    pub taken_at: Instant,
}

/// Node name -> position in the cluster. Keys share the nodes' names.
pub type NodeIndex = FxHashMap<Arc<str>, usize>;

/// The name index of `cluster`'s nodes.
pub fn node_index(cluster: &Cluster) -> NodeIndex {
    cluster
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), i))
        .collect()
}

impl ClusterSnapshot {
    pub fn new(cluster: Cluster, pods: Vec<BoundPod>) -> Self {
        let index = node_index(&cluster);
        Self::indexed(cluster, index, pods)
    }

    /// [`ClusterSnapshot::new`] with the name index already built (it must be `cluster`'s).
    pub fn indexed(cluster: Cluster, index: NodeIndex, pods: Vec<BoundPod>) -> Self {
        ClusterSnapshot {
            cluster,
            index,
            pods,
            states: Vec::new(),
            taken_at: Instant::now(),
        }
    }

    /// From a `--snapshot` file: pods get their key as UID and priority 0.
    pub fn from_file(s: Snapshot) -> Self {
        let pods = s
            .pods
            .into_iter()
            .map(|(key, demand, at)| BoundPod {
                uid: key.clone(),
                key,
                demand,
                at,
                priority: 0,
            })
            .collect();
        ClusterSnapshot::new(s.cluster, pods)
    }

    /// The typical workload FGD measures fragmentation against: the bound pods' shapes, or
    /// `fallback` when nothing runs yet.
    pub fn target(&self, fallback: &[PodShape]) -> TargetWorkload {
        let shapes: Vec<PodShape> = self.pods.iter().map(|p| p.demand.shape()).collect();
        let shapes = if shapes.is_empty() { fallback } else { &shapes };
        TargetWorkload::from_pods(shapes, |_| String::new())
    }
}
