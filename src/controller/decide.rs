//! The plan step (pure): given the request's replicas, its pods as observed and the cluster,
//! decide which pods stay, which go (scale-down, failover) and where the missing replicas go.
//!
//! Running replicas are never disturbed unless their node failed them: kept pods are
//! reserved in a copy of the cluster first, and only the missing replicas are handed to the
//! LP ([`crate::alloc::plan`]), over the nodes that may take new pods. With `gang: true` the
//! LP places the missing replicas all together or not at all.

use std::collections::{BTreeMap, HashSet};

use super::status::{device_list, solver_stats};
use crate::alloc::{PlanError, PlanOptions, plan};
use crate::crd::ReplicaMove;
use crate::crd::batch::Replica;
use crate::crd::{PlannedReplica, SolverStats, UnplacedReplica};
use crate::model::{Cluster, DeviceSet, GpuDemand, ModelSet, Placement, PodDemand};

/// A pod's lifecycle phase, as far as the controller cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// One pod of the request, read from the API.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedPod {
    pub name: String,
    pub task: String,
    pub index: i32,
    /// `spec.nodeName`: set once the pod is bound.
    pub node: Option<String>,
    /// The node and devices of the plan the pod was created with.
    pub planned_node: Option<String>,
    pub planned_devices: DeviceSet,
    /// Devices the extender bound the pod to, when it says.
    pub bound_devices: Option<DeviceSet>,
    pub phase: PodPhase,
    pub ready: bool,
    /// A deletion is in progress.
    pub terminating: bool,
}

/// The request's pods.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub pods: Vec<ObservedPod>,
}

/// Why a node may not keep or take replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeProblem {
    NotReady,
    TelemetryStale,
    /// No NodeTelemetry at all; a problem only when the controller fails closed.
    TelemetryMissing,
}

impl NodeProblem {
    /// Bounded CamelCase reason for moves, events and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            NodeProblem::NotReady => "NodeNotReady",
            NodeProblem::TelemetryStale => "TelemetryStale",
            NodeProblem::TelemetryMissing => "TelemetryMissing",
        }
    }
}

/// Reason of a move off a node that no longer exists.
pub const REASON_NODE_DELETED: &str = "NodeDeleted";
/// Reason of a move off a GPU reported unhealthy.
pub const REASON_GPU_UNHEALTHY: &str = "GpuUnhealthy";
/// Reason of a move of an unbound pod whose planned room was taken by someone else.
pub const REASON_PLAN_STALE: &str = "PlanStale";
/// Reason of a deletion because the task shrank or went away.
pub const REASON_SCALE_DOWN: &str = "ScaleDown";

/// Health of one node, parallel to the cluster's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeHealth {
    pub problem: Option<NodeProblem>,
    /// Cordoned: running pods stay, new ones are not planned here.
    pub unschedulable: bool,
    /// GPUs reported unhealthy.
    pub unhealthy: DeviceSet,
}

/// The cluster the plan step reads.
#[derive(Debug, Clone, Copy)]
pub struct World<'a> {
    /// Every bound pod placed (including this request's, as far as the caches know).
    pub cluster: &'a Cluster,
    /// Parallel to `cluster.nodes()`.
    pub health: &'a [NodeHealth],
    /// Names of this request's pods that `cluster` already accounts for.
    pub accounted: &'a HashSet<String>,
}

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
    /// Replicas requested and tasks in the spec.
    pub replicas: usize,
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
}

impl Decision {
    /// The whole plan after this step (kept and new), ordered by task then replica.
    pub fn plan_entries(&self) -> Vec<PlannedReplica> {
        let mut all: Vec<PlannedReplica> = self.kept.iter().chain(&self.create).cloned().collect();
        all.sort_by(|a, b| (&a.task, a.replica).cmp(&(&b.task, b.replica)));
        all
    }
}

/// A demand that takes what is left of one device, to keep an unhealthy GPU out of a plan.
fn burn(free: u16) -> PodDemand {
    let gpu = if u32::from(free) >= crate::model::MILLI_PER_GPU {
        GpuDemand::Whole { count: 1 }
    } else {
        GpuDemand::Shared {
            milli: u32::from(free),
        }
    };
    PodDemand {
        cpu_milli: 0,
        memory_bytes: 0,
        gpu,
        models: ModelSet::ANY,
    }
}

/// The nodes new replicas may go to, as their own cluster, with the index map back.
fn planning_cluster(state: &Cluster, health: &[NodeHealth]) -> (Cluster, Vec<usize>) {
    let mut nodes = Vec::new();
    let mut back = Vec::new();
    for (i, node) in state.nodes().iter().enumerate() {
        let h = health.get(i).copied().unwrap_or_default();
        if h.problem.is_some() || h.unschedulable {
            continue;
        }
        let mut node = node.clone();
        for d in h.unhealthy.iter() {
            let free = node.gpu_free().get(d).copied().unwrap_or(0);
            if free > 0 {
                // Cannot fail: the demand is exactly what the device has left.
                let _ = node.assign(&burn(free), DeviceSet::single(d));
            }
        }
        nodes.push(node);
        back.push(i);
    }
    (Cluster::new(state.models.clone(), nodes), back)
}

/// Why a kept pod must leave its node, if it must.
fn eviction(pod: &ObservedPod, node: Option<usize>, world: &World) -> Option<&'static str> {
    let Some(i) = node else {
        return Some(REASON_NODE_DELETED);
    };
    let h = world.health.get(i).copied().unwrap_or_default();
    if let Some(p) = h.problem {
        return Some(p.reason());
    }
    let devices = pod.bound_devices.unwrap_or(pod.planned_devices);
    if devices.iter().any(|d| h.unhealthy.contains(d)) {
        return Some(REASON_GPU_UNHEALTHY);
    }
    None
}

/// Decide one reconcile. `now` stamps the moves (RFC 3339).
pub fn decide(
    replicas: &[Replica],
    tasks: usize,
    observed: &Observed,
    world: &World,
    options: &PlanOptions,
    now: &str,
) -> Result<Decision, PlanError> {
    let desired: BTreeMap<(&str, i32), &Replica> = replicas
        .iter()
        .map(|r| ((r.task.as_str(), r.index), r))
        .collect();
    let index_of = |name: &str| world.cluster.nodes().iter().position(|n| &*n.name == name);
    let mut d = Decision {
        replicas: replicas.len(),
        tasks,
        ..Decision::default()
    };
    let mut state = world.cluster.clone();
    let mut covered: HashSet<(&str, i32)> = HashSet::new();
    let mut moved: BTreeMap<(String, i32), Moving> = BTreeMap::new();

    for pod in &observed.pods {
        let key = (pod.task.as_str(), pod.index);
        if pod.terminating {
            if desired.contains_key(&key) {
                covered.insert(key);
                d.waiting += 1;
            }
            continue;
        }
        let Some(replica) = desired.get(&key) else {
            d.remove.push(Removal {
                name: pod.name.clone(),
                force: false,
                reason: REASON_SCALE_DOWN,
            });
            continue;
        };
        if !covered.insert(key) {
            continue;
        }
        let Some(node_name) = pod.node.as_ref().or(pod.planned_node.as_ref()) else {
            continue;
        };
        let finished = matches!(pod.phase, PodPhase::Succeeded | PodPhase::Failed);
        let node = index_of(node_name);
        let mut why = if finished {
            None
        } else {
            eviction(pod, node, world)
        };
        let devices = pod.bound_devices.unwrap_or(pod.planned_devices);
        if why.is_none()
            && let Some(i) = node
            && !world.accounted.contains(&pod.name)
            && !finished
        {
            let n = &state.nodes()[i];
            let devices = if n.devices_fit(replica.pod.demand.gpu, devices) {
                Some(devices)
            } else {
                n.default_devices(replica.pod.demand.gpu)
            };
            let placed = devices.is_some_and(|devices| {
                state
                    .place(&replica.pod.demand, Placement { node: i, devices })
                    .is_ok()
            });
            // A bound pod runs there whatever the caches say; an unbound one would wait forever.
            if !placed && pod.node.is_none() {
                why = Some(REASON_PLAN_STALE);
            }
        }
        match why {
            None => d.kept.push(PlannedReplica {
                task: pod.task.clone(),
                replica: pod.index,
                node: node_name.clone(),
                gpu_devices: device_list(devices),
            }),
            Some(reason) => {
                covered.remove(&key);
                let moving = Moving {
                    pod: pod.name.clone(),
                    from: node_name.clone(),
                    devices,
                    reason,
                };
                moved.insert((pod.task.clone(), pod.index), moving);
            }
        }
    }

    let missing: Vec<Replica> = replicas
        .iter()
        .filter(|r| !covered.contains(&(r.task.as_str(), r.index)))
        .cloned()
        .collect();
    d.to_place = missing.len();
    if !missing.is_empty() {
        let (planning, back) = planning_cluster(&state, world.health);
        let pods: Vec<_> = missing.iter().map(|r| r.pod).collect();
        let result = plan(&planning, &pods, options)?;
        d.solver = Some(solver_stats(&result));
        let placed = result.placed();
        d.gang_blocked = missing.iter().any(|r| r.pod.gang.is_some()) && placed < missing.len();
        for ((replica, at), reason) in missing.iter().zip(&result.placements).zip(&result.reasons) {
            let to = at.map(|at| {
                let node = &world.cluster.nodes()[back[at.node]];
                (node.name.to_string(), at.devices)
            });
            match to {
                Some((node, devices)) => d.create.push(PlannedReplica {
                    task: replica.task.clone(),
                    replica: replica.index,
                    node,
                    gpu_devices: device_list(devices),
                }),
                None => {
                    let never = world
                        .cluster
                        .nodes()
                        .iter()
                        .all(|n| n.check(&replica.pod.demand).is_err_and(|m| m.permanent()));
                    d.permanently_infeasible |= never;
                    d.unplaced.push(UnplacedReplica {
                        task: replica.task.clone(),
                        replica: replica.index,
                        reason: reason
                            .clone()
                            .unwrap_or_else(|| "not placed by the plan".into()),
                    });
                }
            }
        }
        if d.gang_blocked {
            // The LP withdraws incomplete gangs already; never half-create one regardless.
            for c in std::mem::take(&mut d.create) {
                d.unplaced.push(UnplacedReplica {
                    task: c.task,
                    replica: c.replica,
                    reason: "gang: the rest of the batch does not fit, so none is placed".into(),
                });
            }
            d.unplaced
                .sort_by(|a, b| (&a.task, a.replica).cmp(&(&b.task, b.replica)));
        }
    }
    settle_moves(&mut d, moved, now);
    Ok(d)
}

/// A replica whose pod must leave its node, pending a new place.
#[derive(Debug)]
struct Moving {
    pod: String,
    from: String,
    devices: DeviceSet,
    reason: &'static str,
}

/// Whether the pod is gone or unreachable anyway (so it is deleted even with nowhere to go),
/// rather than running on a node allot merely distrusts.
fn hard(reason: &str) -> bool {
    reason == REASON_NODE_DELETED || reason == NodeProblem::NotReady.reason()
}

/// After the plan: a moving replica with a new place is deleted and recreated there; one
/// without stays put when its node is only distrusted (stale telemetry, a bad GPU), so no
/// running work is thrown away for nothing, and is deleted when its node is gone.
fn settle_moves(d: &mut Decision, moved: BTreeMap<(String, i32), Moving>, now: &str) {
    for ((task, replica), m) in moved {
        let to = d
            .create
            .iter()
            .find(|c| c.task == task && c.replica == replica)
            .map(|c| c.node.clone());
        let record = ReplicaMove {
            task: task.clone(),
            replica,
            from: m.from.clone(),
            to: to.clone(),
            reason: m.reason.to_string(),
            time: now.to_string(),
        };
        if to.is_none() && !hard(m.reason) {
            d.unplaced
                .retain(|u| !(u.task == task && u.replica == replica));
            d.kept.push(PlannedReplica {
                task,
                replica,
                node: m.from,
                gpu_devices: device_list(m.devices),
            });
            d.held.push(record);
            continue;
        }
        d.remove.push(Removal {
            name: m.pod,
            force: true,
            reason: m.reason,
        });
        d.moves.push(record);
    }
}

#[cfg(test)]
mod tests;
