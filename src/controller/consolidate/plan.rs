//! The consolidation plan for one waiting pod (pure): which movable pods to evict from which
//! node so that the pod fits there, and where each moved pod fits afterwards. It is the
//! simulator's search ([`crate::sim::consolidate::Consolidator`]), run on the live cluster,
//! with the same decider and policy the extender places pods with: one decision path for the
//! replay's consolidation and the cluster's.

use std::sync::Arc;

use crate::model::{Cluster, Placement, PodDemand};
use crate::policy::{Context, Decider, PolicyKind};
use crate::sim::consolidate::{Consolidator, MoveBudget, TotalBudget};
use crate::snapshot::ClusterSnapshot;

/// What the consolidator may use of the cluster, parallel to the snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Per node (`snap.cluster` order): whether it may take pods (Ready, not cordoned, fresh
    /// telemetry where required). Other nodes are neither targets nor destinations.
    pub usable: &'a [bool],
    /// Per bound pod (`snap.pods` order): whether it may be moved.
    pub movable: &'a [bool],
    /// Elastic replicas of ScheduleRequests that may be given back (positions in
    /// `snap.pods`, on usable nodes), in the order they are: tried before any move.
    pub elastic: &'a [usize],
    /// Most pods moved for this one waiting pod.
    pub max_moves: usize,
}

/// One pod to evict: its position in `snap.pods` and where it fits once moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedMove {
    pub pod: usize,
    /// A node index of `snap.cluster` and devices there; `None` for an elastic replica given
    /// back (its request waits for capacity for it, as for any elastic replica).
    pub to: Option<Placement>,
}

/// The outcome of planning for one waiting pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proposal {
    /// Some usable node fits the pod as the cluster stands: nothing to move (the scheduler
    /// has not caught up, or a pod left since).
    FitsNow,
    /// No set of at most `max_moves` movable pods makes room.
    NoRoom,
    /// Evict `moves` (or give them back), then the pod fits `at` (a node index of
    /// `snap.cluster`, and devices).
    Move {
        at: Placement,
        moves: Vec<PlannedMove>,
    },
}

/// Plan for `pod` (decided by `policy` as the extender would, with `seed`'s tie-break order)
/// on `snap` within `scope`.
pub fn propose(
    snap: &ClusterSnapshot,
    scope: Scope<'_>,
    pod: &PodDemand,
    policy: PolicyKind,
    seed: u64,
) -> Proposal {
    // The usable nodes only, so that nothing is planned onto a node that takes no pods.
    let keep: Vec<usize> = (0..snap.cluster.len())
        .filter(|&n| scope.usable.get(n).copied().unwrap_or(false))
        .collect();
    let mut position = vec![None; snap.cluster.len()];
    for (i, &n) in keep.iter().enumerate() {
        position[n] = Some(i);
    }
    let nodes = keep.iter().map(|&n| snap.cluster.nodes()[n].clone());
    let mut cluster = Cluster::new(snap.cluster.models.clone(), nodes.collect());
    if cluster.nodes().iter().any(|n| n.fits(pod)) {
        return Proposal::FitsNow;
    }
    if let Some(given) = give_back(snap, scope, pod) {
        return given;
    }
    let budget = MoveBudget {
        per_arrival: scope.max_moves,
        total: TotalBudget::Unlimited,
    };
    // Chains too (e2e `controller::chain`): a middle hop's pod is evicted before the pod
    // moving into the room it leaves, and the extender holds that room once it is free.
    let mut consolidator = Consolidator::new(&cluster, budget);
    for (i, bound) in snap.pods.iter().enumerate() {
        let node = position.get(bound.at.node).copied().flatten();
        if let (Some(node), true) = (node, scope.movable.get(i).copied().unwrap_or(false)) {
            let at = Placement {
                node,
                devices: bound.at.devices,
            };
            consolidator.record(i, &bound.demand, at);
        }
    }
    let ctx = Context::new(&cluster, Arc::new(snap.target(&[])), seed);
    let mut policy = policy.build_for(&ctx);
    let mut decider = Decider::new(Arc::new(ctx));
    // The arrival index only seeds the policy's per-pod draws; past every bound pod's.
    let id = snap.pods.len();
    let Some(rescue) = consolidator.make_room(&mut cluster, &mut decider, &mut *policy, pod, id)
    else {
        return Proposal::NoRoom;
    };
    let back = |p: Placement| Placement {
        node: keep[p.node],
        devices: p.devices,
    };
    Proposal::Move {
        at: back(rescue.at),
        moves: rescue
            .moves
            .iter()
            .map(|m| PlannedMove {
                pod: m.id,
                to: Some(back(m.to)),
            })
            .collect(),
    }
}

/// Elastic replicas first: the fewest of `scope.elastic` (a prefix, within `max_moves`) whose
/// room lets `pod` fit one of their nodes, the first such node in their order.
fn give_back(snap: &ClusterSnapshot, scope: Scope<'_>, pod: &PodDemand) -> Option<Proposal> {
    let elastic = &scope.elastic[..scope.elastic.len().min(scope.max_moves)];
    let mut cluster = snap.cluster.clone();
    for (k, &i) in elastic.iter().enumerate() {
        let bound = snap.pods.get(i)?;
        cluster.remove(&bound.demand, bound.at);
        let freed = elastic[..=k].iter().filter_map(|&j| snap.pods.get(j));
        for node in freed.map(|b| b.at.node) {
            let n = &cluster.nodes()[node];
            if let Some(devices) = n.fits(pod).then(|| n.default_devices(pod.gpu)).flatten() {
                let moves = elastic[..=k]
                    .iter()
                    .map(|&pod| PlannedMove { pod, to: None });
                return Some(Proposal::Move {
                    at: Placement { node, devices },
                    moves: moves.collect(),
                });
            }
        }
    }
    None
}
