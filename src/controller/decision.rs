//! What the plan step hands on (plain data): the [`Decision`] of one reconcile, which the
//! apply step carries out and the status step reports, and the bounded reasons of its moves.

use crate::crd::{PlannedReplica, ReplicaMove, SolverStats, UnplacedReplica};

/// Reason of a move off a node that no longer exists.
pub const REASON_NODE_DELETED: &str = "NodeDeleted";
/// Reason of a move off a GPU reported unhealthy.
pub const REASON_GPU_UNHEALTHY: &str = "GpuUnhealthy";
/// Reason of a move of an unbound pod whose planned room was taken by someone else.
pub const REASON_PLAN_STALE: &str = "PlanStale";
/// Reason of a deletion because the task shrank or went away.
pub const REASON_SCALE_DOWN: &str = "ScaleDown";
/// Reason of an elastic replica's deletion to give its room to a higher-priority request.
pub const REASON_GIVEN_BACK: &str = "GivenBack";

/// A pod to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub name: String,
    /// Delete without grace: the node is gone or unreachable, nobody would confirm.
    pub force: bool,
    pub reason: &'static str,
}

/// What the plan step decided for one reconcile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// Replicas requested (elastic tasks at their maximum) and tasks in the spec.
    pub replicas: usize,
    /// Replicas that must be placed (elastic tasks at their minimum).
    pub min_replicas: usize,
    /// Of `unplaced`, the elastic replicas (above their task's minimum).
    pub elastic_unplaced: usize,
    pub tasks: usize,
    /// Replicas whose pod stays where it is.
    pub kept: Vec<PlannedReplica>,
    /// Pods to create, with their planned node and devices.
    pub create: Vec<PlannedReplica>,
    pub remove: Vec<Removal>,
    pub moves: Vec<ReplicaMove>,
    /// Replicas that should leave a distrusted node but have nowhere to go: they stay.
    pub held: Vec<ReplicaMove>,
    pub unplaced: Vec<UnplacedReplica>,
    /// Set when the LP ran.
    pub solver: Option<SolverStats>,
    /// Replicas handed to the LP.
    pub to_place: usize,
    /// Gang request whose missing replicas do not fit together: nothing is created.
    pub gang_blocked: bool,
    /// Some unplaced replica fits no node of the cluster even when empty.
    pub permanently_infeasible: bool,
    /// Replicas waiting for their old pod's deletion to finish.
    pub waiting: usize,
    /// Elastic replicas of lower-priority requests whose room this plan uses: given back in
    /// this reconcile, or earlier and still terminating.
    pub given_back: usize,
}

impl Decision {
    /// The whole plan after this step (kept and new), ordered by task then replica.
    pub fn plan_entries(&self) -> Vec<PlannedReplica> {
        let mut all: Vec<PlannedReplica> = self.kept.iter().chain(&self.create).cloned().collect();
        all.sort_by(|a, b| (&a.task, a.replica).cmp(&(&b.task, b.replica)));
        all
    }
}
