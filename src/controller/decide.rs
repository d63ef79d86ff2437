//! The plan step (pure): given the request's replicas, its pods as observed and the cluster,
//! decide which pods stay, which go (scale-down, failover) and where the missing replicas go.
//!
//! Running replicas are never disturbed unless their node failed them: kept pods are
//! reserved in a copy of the cluster first, and only the missing replicas are handed to the
//! LP ([`crate::alloc::plan`]), over the nodes that may take new pods. With `gang: true` the
//! LP places the missing replicas all together or not at all.

use std::collections::{BTreeMap, HashSet};

use super::decision::{
    Decision, REASON_GPU_UNHEALTHY, REASON_NODE_DELETED, REASON_PLAN_STALE, REASON_SCALE_DOWN,
    Removal,
};
use super::observed::{NodeHealth, NodeProblem, Observed, ObservedPod, PodPhase, World};
use super::status::{device_list, solver_stats};
use crate::alloc::{PlanError, PlanOptions, plan};
use crate::crd::batch::Replica;
use crate::crd::{PlannedReplica, ReplicaMove, UnplacedReplica};
use crate::model::{Cluster, DeviceSet, GpuDemand, ModelSet, Placement, PodDemand};

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
        min_replicas: replicas.iter().filter(|r| !r.pod.elastic).count(),
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
        // Blocked when a gang member is left out (elastic replicas are outside the gang).
        d.gang_blocked = missing
            .iter()
            .zip(&result.placements)
            .any(|(r, at)| r.pod.gang.is_some() && at.is_none());
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
                    d.elastic_unplaced += usize::from(replica.pod.elastic);
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
            // The LP withdraws incomplete gangs already; never half-create one regardless,
            // nor elastic replicas above a minimum that is not there.
            let elastic = |c: &PlannedReplica| {
                missing
                    .iter()
                    .any(|r| r.task == c.task && r.index == c.replica && r.pod.elastic)
            };
            for c in std::mem::take(&mut d.create) {
                d.elastic_unplaced += usize::from(elastic(&c));
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
