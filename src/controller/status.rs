//! The status step's pure half: from what was observed and decided to a
//! [`ScheduleRequestStatus`] (phase, conditions, plan, counts, moves). `allot plan` uses the
//! same plan-to-status conversion, so offline and in-cluster answers read alike.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::decision::Decision;
use super::observed::{Observed, ObservedPod, PodPhase};
use crate::alloc::{Method, Plan};
#[cfg(test)]
use crate::crd::ReplicaMove;
use crate::crd::batch::Replica;
use crate::crd::condition::*;
use crate::crd::{
    Phase, PlannedReplica, ReplicaCounts, ScheduleRequestStatus, SolverStats, UnplacedReplica,
};
use crate::model::Cluster;

/// Moves kept in the status: enough to explain recent failovers without growing forever.
pub const MAX_MOVES: usize = 16;

/// Solver facts of one plan.
pub fn solver_stats(plan: &Plan) -> SolverStats {
    // Six decimals: `kubectl get sr` should show 0, not 1.18e-12 of solver round-off.
    let round = |x: f64| (x * 1e6).round() / 1e6;
    SolverStats {
        objective: round(plan.value),
        bound: round(plan.bound),
        gap: round(plan.gap),
        millis: plan.total_millis,
        backend: plan.backend.to_string(),
        timed_out: plan.method == Method::GreedyAfterTimeout,
    }
}

/// Device indices as the status and the planned-devices annotation carry them.
pub fn device_list(devices: crate::model::DeviceSet) -> Vec<u32> {
    devices.iter().map(|d| d as u32).collect()
}

/// Split a plan of `replicas` into planned entries (node names from `cluster`) and unplaced
/// entries with the solver's reason.
pub fn plan_entries(
    replicas: &[Replica],
    plan: &Plan,
    cluster: &Cluster,
) -> (Vec<PlannedReplica>, Vec<UnplacedReplica>) {
    let mut planned = Vec::new();
    let mut unplaced = Vec::new();
    for ((replica, at), reason) in replicas.iter().zip(&plan.placements).zip(&plan.reasons) {
        match at.and_then(|at| cluster.node(at.node).map(|n| (n, at.devices))) {
            Some((node, devices)) => planned.push(PlannedReplica {
                task: replica.task.clone(),
                replica: replica.index,
                node: node.name.to_string(),
                gpu_devices: device_list(devices),
            }),
            None => unplaced.push(UnplacedReplica {
                task: replica.task.clone(),
                replica: replica.index,
                reason: reason.clone().unwrap_or_else(|| "NotPlaced".into()),
            }),
        }
    }
    (planned, unplaced)
}

/// A condition with its transition time kept from `previous` when the status did not change.
fn condition(
    previous: &[Condition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &Timestamp,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(*now));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// The status of a request whose spec failed validation: nothing is planned or created.
pub fn invalid(
    previous: &ScheduleRequestStatus,
    generation: Option<i64>,
    total_replicas: i32,
    problems: &[String],
    now: &Timestamp,
) -> ScheduleRequestStatus {
    let message = format!("invalid spec: {}", problems.join("; "));
    let prev = &previous.conditions;
    let pending = |t| {
        condition(
            prev,
            t,
            false,
            REASON_SPEC_INVALID,
            "the spec is invalid".into(),
            generation,
            now,
        )
    };
    ScheduleRequestStatus {
        observed_generation: generation,
        phase: Phase::Failed,
        conditions: vec![
            condition(
                prev,
                VALIDATED,
                false,
                REASON_SPEC_INVALID,
                message.clone(),
                generation,
                now,
            ),
            pending(PLANNED),
            pending(SCHEDULED),
            pending(READY),
        ],
        counts: Some(ReplicaCounts {
            replicas: total_replicas,
            ..ReplicaCounts::default()
        }),
        moves: previous.moves.clone(),
        message: Some(message),
        ..ScheduleRequestStatus::default()
    }
}

/// Replica counts from the observed pods and the plan.
pub fn counts(
    (min, replicas): (usize, usize),
    planned: usize,
    observed: &Observed,
) -> ReplicaCounts {
    let live = || observed.pods.iter().filter(|p| !p.terminating);
    let count = |f: &dyn Fn(&&ObservedPod) -> bool| live().filter(f).count() as i32;
    ReplicaCounts {
        replicas: replicas as i32,
        min_replicas: min as i32,
        planned: planned as i32,
        bound: count(&|p| p.node.is_some()),
        running: count(&|p| p.phase == PodPhase::Running),
        failed: count(&|p| p.phase == PodPhase::Failed),
    }
}

/// The status after a reconcile of a valid request: `decision` is what the plan step chose,
/// `observed` the request's pods before the apply step acted on it.
pub fn planned(
    previous: &ScheduleRequestStatus,
    generation: Option<i64>,
    decision: &Decision,
    observed: &Observed,
    now: &Timestamp,
) -> ScheduleRequestStatus {
    let prev = &previous.conditions;
    let requested = decision.replicas;
    let plan = decision.plan_entries();
    let c = counts((decision.min_replicas, requested), plan.len(), observed);
    let unplaced = decision.unplaced.clone();
    let all_planned = unplaced.is_empty() && plan.len() == requested;
    // With every replica it must have planned, an elastic request is whole at what it got:
    // the rest waits for capacity (the request is planned again every RETRY).
    let waits_elastic = !all_planned
        && !decision.gang_blocked
        && decision.elastic_unplaced == unplaced.len()
        && plan.len() >= decision.min_replicas;
    let total = if waits_elastic { plan.len() } else { requested };
    let ready_pods = observed
        .pods
        .iter()
        .filter(|p| !p.terminating && p.ready)
        .count();
    let succeeded = observed
        .pods
        .iter()
        .filter(|p| p.phase == PodPhase::Succeeded)
        .count();

    let (planned_reason, planned_msg) = if waits_elastic {
        (
            REASON_PLAN_FOUND,
            format!(
                "{} of {requested} replicas planned (at least {}); {} elastic ones wait for capacity",
                plan.len(),
                decision.min_replicas,
                unplaced.len()
            ),
        )
    } else if all_planned {
        let reason = if decision.solver.as_ref().is_some_and(|s| s.timed_out) {
            REASON_SOLVER_TIMED_OUT
        } else {
            REASON_PLAN_FOUND
        };
        (
            reason,
            format!("{} of {total} replicas planned", plan.len()),
        )
    } else if decision.gang_blocked {
        (
            REASON_INFEASIBLE,
            format!(
                "gang: the {} replicas do not fit together, so none is created; first reason: {}",
                decision.to_place,
                first_reason(&unplaced)
            ),
        )
    } else {
        (
            REASON_INFEASIBLE,
            format!(
                "{} of {total} replicas unplaced; first reason: {}",
                unplaced.len(),
                first_reason(&unplaced)
            ),
        )
    };
    let scheduled = c.bound as usize == total && total > 0;
    let (sched_reason, sched_msg) = if !decision.moves.is_empty() {
        (
            REASON_NODE_LOST,
            format!(
                "{} replicas re-planned off failed nodes",
                decision.moves.len()
            ),
        )
    } else if scheduled {
        (REASON_PODS_BOUND, format!("{} pods bound", c.bound))
    } else {
        (
            REASON_PODS_PENDING,
            format!("{} of {total} pods bound", c.bound),
        )
    };
    let ready = total > 0 && ready_pods == total;
    let (ready_reason, ready_msg) = if c.failed > 0 {
        (REASON_PODS_FAILED, format!("{} pods failed", c.failed))
    } else if ready {
        (REASON_PODS_READY, format!("{ready_pods} pods ready"))
    } else {
        (
            REASON_PODS_PENDING,
            format!("{ready_pods} of {total} pods ready"),
        )
    };

    let phase = if total > 0 && succeeded == total {
        Phase::Succeeded
    } else if c.failed > 0 {
        Phase::Failed
    } else if decision.permanently_infeasible && plan.len() < total {
        Phase::Infeasible
    } else if plan.is_empty() && requested > 0 {
        Phase::Pending
    } else if c.running as usize == total {
        Phase::Running
    } else {
        Phase::Planned
    };
    let mut message = match phase {
        Phase::Pending | Phase::Infeasible => planned_msg.clone(),
        _ if decision.min_replicas < requested => format!(
            "{} planned, {} bound, {} running of {requested} (at least {})",
            c.planned, c.bound, c.running, decision.min_replicas
        ),
        _ => format!(
            "{} planned, {} bound, {} running of {total}",
            c.planned, c.bound, c.running
        ),
    };
    if !decision.held.is_empty() {
        let held: Vec<String> = decision
            .held
            .iter()
            .map(|m| format!("{}[{}] on {} ({})", m.task, m.replica, m.from, m.reason))
            .collect();
        message.push_str(&format!(
            "; staying on distrusted nodes, no room elsewhere: {}",
            held.join(", ")
        ));
    }
    let mut moves = previous.moves.clone();
    moves.extend(decision.moves.iter().cloned());
    let excess = moves.len().saturating_sub(MAX_MOVES);
    moves.drain(..excess);

    ScheduleRequestStatus {
        observed_generation: generation,
        phase,
        conditions: vec![
            condition(
                prev,
                VALIDATED,
                true,
                REASON_SPEC_VALID,
                format!("{requested} replicas in {} tasks", decision.tasks),
                generation,
                now,
            ),
            condition(
                prev,
                PLANNED,
                all_planned || waits_elastic,
                planned_reason,
                planned_msg,
                generation,
                now,
            ),
            condition(
                prev,
                SCHEDULED,
                scheduled && decision.moves.is_empty(),
                sched_reason,
                sched_msg,
                generation,
                now,
            ),
            condition(prev, READY, ready, ready_reason, ready_msg, generation, now),
        ],
        plan,
        solver: decision.solver.clone().or_else(|| previous.solver.clone()),
        counts: Some(c),
        unplaced,
        moves,
        message: Some(message),
    }
}

fn first_reason(unplaced: &[UnplacedReplica]) -> String {
    unplaced
        .first()
        .map(|u| format!("{}[{}]: {}", u.task, u.replica, u.reason))
        .unwrap_or_else(|| "none given".into())
}

/// A stable description of a status for deciding whether a transition happened (an Event is
/// recorded only when this changes).
pub fn transition_key(status: &ScheduleRequestStatus) -> String {
    let mut key = format!("{:?}", status.phase);
    for c in &status.conditions {
        key.push_str(&format!(" {}={}/{}", c.type_, c.status, c.reason));
    }
    key
}

#[cfg(test)]
mod tests;
