//! The one in-memory cluster snapshot, [`ClusterSnapshot`]: the core [`Cluster`] with every
//! bound pod placed on its devices, a node-name index, the bound pods themselves, and what the
//! core's allocation model does not hold (per-node readiness, cordon, telemetry freshness and
//! unhealthy GPUs, as [`NodeState`]). Never mutated once built.
//!
//! ```text
//! snapshot file --load_snapshot------------.
//!                                           >--> ClusterSnapshot --> extender Store
//! API watches --live::build::snapshot------'                     \--> controller, allot plan
//! ```
//!
//! The extender, the controller and `allot plan` all read this type; `live::ClusterSnapshot`,
//! `live::BoundPod`, `live::NodeState` and `extender::state::{BoundPod, ClusterSnapshot}` are
//! re-exports of it. A snapshot file loads into it with [`load_snapshot`] (the format is
//! described in `snapshot/file.rs`).

mod file;
mod name_index;
mod node;
mod write;

use std::sync::OnceLock;
use std::time::Instant;

use crate::model::frag::TargetWorkload;
use crate::model::{Cluster, Placement, PodDemand, PodShape};

pub use file::{BoundPodEntry, SnapshotFile, load_snapshot, parse_snapshot};
pub use name_index::{NameIndex, node_index};
pub use node::{NodeState, Telemetry};
pub use write::to_file;

/// A pod running on a node, as allot accounts it.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundPod {
    /// `namespace/name`.
    pub key: String,
    /// The pod UID; snapshot-file pods have none and use their key.
    pub uid: String,
    pub demand: PodDemand,
    pub at: Placement,
    pub priority: i32,
}

/// Nodes and bound pods at one instant, with a name index and per-node state. Never mutated
/// once built (a clone may be changed before it is used: it starts without the UID index).
#[derive(Debug)]
pub struct ClusterSnapshot {
    /// Every node, with every pod of `pods` placed (and unhealthy GPUs withheld).
    pub cluster: Cluster,
    /// Node name -> position in `cluster`.
    pub index: NameIndex,
    pub pods: Vec<BoundPod>,
    /// Per node, parallel to `cluster.nodes()`: readiness, cordon, telemetry, GPU health.
    /// [`NodeState::healthy`] where nothing is known beyond allocation (snapshot files).
    pub states: Vec<NodeState>,
    pub taken_at: Instant,
    /// Pod UID -> position in `pods`, built on the first [`ClusterSnapshot::pod_by_uid`].
    uids: OnceLock<NameIndex>,
}

impl Clone for ClusterSnapshot {
    fn clone(&self) -> Self {
        ClusterSnapshot {
            cluster: self.cluster.clone(),
            index: self.index.clone(),
            pods: self.pods.clone(),
            states: self.states.clone(),
            taken_at: self.taken_at,
            uids: OnceLock::new(),
        }
    }
}

impl ClusterSnapshot {
    /// `cluster` (with `pods` already placed) taken now; every node counts as healthy.
    pub fn new(cluster: Cluster, pods: Vec<BoundPod>) -> Self {
        let index = node_index(&cluster);
        let states = vec![NodeState::healthy(); cluster.len()];
        Self::indexed(cluster, index, pods, states)
    }

    /// [`ClusterSnapshot::new`] with the name index already built (it must be `cluster`'s)
    /// and each node's state (parallel to `cluster.nodes()`).
    pub fn indexed(
        cluster: Cluster,
        index: NameIndex,
        pods: Vec<BoundPod>,
        states: Vec<NodeState>,
    ) -> Self {
        debug_assert_eq!(states.len(), cluster.len(), "one state per node");
        ClusterSnapshot {
            cluster,
            index,
            pods,
            states,
            taken_at: Instant::now(),
            uids: OnceLock::new(),
        }
    }

    /// The bound pod with this UID: a probe of an index built once per snapshot, where a scan
    /// of every bound pod per bind grew with the cluster.
    pub fn pod_by_uid(&self, uid: &str) -> Option<&BoundPod> {
        let pod = self.pods.get(self.uid_index().get(uid)?)?;
        (pod.uid == uid).then_some(pod)
    }

    /// Build the UID index now (the extender does as it installs a snapshot), so that no
    /// request's [`ClusterSnapshot::pod_by_uid`] pays for it.
    pub fn index_uids(&self) {
        self.uid_index();
    }

    fn uid_index(&self) -> &NameIndex {
        self.uids
            .get_or_init(|| NameIndex::new(self.pods.iter().map(|p| p.uid.as_str())))
    }

    /// The typical workload FGD measures fragmentation against: the bound pods' shapes, or
    /// `fallback` when nothing runs yet.
    pub fn target(&self, fallback: &[PodShape]) -> TargetWorkload {
        let shapes: Vec<PodShape> = self.pods.iter().map(|p| p.demand.shape()).collect();
        let shapes = if shapes.is_empty() { fallback } else { &shapes };
        TargetWorkload::from_pods(shapes, |_| String::new())
    }
}
