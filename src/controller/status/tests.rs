//! A ScheduleRequest's status from its planned and observed pods: phases, conditions, transition
//! times, invalid specs and bounded move counts.

use super::*;
use crate::model::DeviceSet;

fn now() -> Timestamp {
    "2026-11-22T10:00:00Z".parse().expect("time")
}

fn entry(replica: i32, node: &str) -> PlannedReplica {
    PlannedReplica {
        task: "train".into(),
        replica,
        node: node.into(),
        gpu_devices: vec![0],
    }
}

fn pod(index: i32, phase: PodPhase, bound: bool) -> ObservedPod {
    ObservedPod {
        name: format!("sr-train-{index}"),
        task: "train".into(),
        index,
        node: bound.then(|| "node-0".to_string()),
        planned_node: Some("node-0".into()),
        planned_devices: DeviceSet::single(0),
        bound_devices: None,
        phase,
        ready: phase == PodPhase::Running,
        terminating: false,
    }
}

fn cond<'a>(s: &'a ScheduleRequestStatus, t: &str) -> &'a Condition {
    s.conditions
        .iter()
        .find(|c| c.type_ == t)
        .expect("condition")
}

#[test]
fn all_running_is_running_with_every_condition_true() {
    let d = Decision {
        replicas: 2,
        tasks: 1,
        kept: vec![entry(1, "node-0"), entry(0, "node-0")],
        ..Decision::default()
    };
    let observed = Observed {
        pods: vec![
            pod(0, PodPhase::Running, true),
            pod(1, PodPhase::Running, true),
        ],
    };
    let s = planned(
        &ScheduleRequestStatus::default(),
        Some(3),
        &d,
        &observed,
        &now(),
    );
    assert_eq!(s.phase, Phase::Running);
    assert_eq!(s.observed_generation, Some(3));
    for t in [VALIDATED, PLANNED, SCHEDULED, READY] {
        let c = cond(&s, t);
        assert_eq!(
            (c.status.as_str(), c.observed_generation),
            ("True", Some(3)),
            "{t}"
        );
    }
    assert_eq!(s.plan.iter().map(|p| p.replica).collect::<Vec<_>>(), [0, 1]);
    let c = s.counts.expect("counts");
    assert_eq!(
        (c.replicas, c.planned, c.bound, c.running, c.failed),
        (2, 2, 2, 2, 0)
    );
}

#[test]
fn a_blocked_gang_is_pending_with_the_reason() {
    let d = Decision {
        replicas: 3,
        tasks: 1,
        to_place: 3,
        gang_blocked: true,
        unplaced: (0..3)
            .map(|i| UnplacedReplica {
                task: "train".into(),
                replica: i,
                reason: "gang: only 2 of its 3 replicas fit".into(),
            })
            .collect(),
        ..Decision::default()
    };
    let s = planned(
        &ScheduleRequestStatus::default(),
        Some(1),
        &d,
        &Observed::default(),
        &now(),
    );
    assert_eq!(s.phase, Phase::Pending);
    let c = cond(&s, PLANNED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", REASON_INFEASIBLE)
    );
    assert!(c.message.contains("gang"), "{}", c.message);
    assert!(s.message.expect("message").contains("none is created"));
}

#[test]
fn transition_times_survive_an_unchanged_condition() {
    let d = Decision {
        replicas: 1,
        tasks: 1,
        create: vec![entry(0, "node-0")],
        ..Decision::default()
    };
    let first = planned(
        &ScheduleRequestStatus::default(),
        Some(1),
        &d,
        &Observed::default(),
        &now(),
    );
    let later: Timestamp = "2026-11-22T11:00:00Z".parse().expect("time");
    let second = planned(&first, Some(1), &d, &Observed::default(), &later);
    assert_eq!(
        cond(&first, PLANNED).last_transition_time,
        cond(&second, PLANNED).last_transition_time
    );
    assert_eq!(transition_key(&first), transition_key(&second));
    assert_eq!(second.phase, Phase::Planned);
}

#[test]
fn an_invalid_spec_fails_naming_the_field() {
    let s = invalid(
        &ScheduleRequestStatus::default(),
        Some(2),
        4,
        &["spec.tasks[0].resources.cpu: \"lots\" is not a quantity".into()],
        &now(),
    );
    assert_eq!(s.phase, Phase::Failed);
    let c = cond(&s, VALIDATED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", REASON_SPEC_INVALID)
    );
    assert!(c.message.contains("spec.tasks[0].resources.cpu"));
    assert!(s.plan.is_empty());
}

#[test]
fn moves_accumulate_but_stay_bounded() {
    let previous = ScheduleRequestStatus {
        moves: (0..MAX_MOVES as i32)
            .map(|i| ReplicaMove {
                task: "train".into(),
                replica: i,
                from: "old".into(),
                to: None,
                reason: "NodeNotReady".into(),
                time: "t".into(),
            })
            .collect(),
        ..ScheduleRequestStatus::default()
    };
    let d = Decision {
        replicas: 1,
        tasks: 1,
        create: vec![entry(0, "node-1")],
        moves: vec![ReplicaMove {
            task: "train".into(),
            replica: 0,
            from: "node-0".into(),
            to: Some("node-1".into()),
            reason: "NodeDeleted".into(),
            time: "t".into(),
        }],
        ..Decision::default()
    };
    let s = planned(&previous, Some(1), &d, &Observed::default(), &now());
    assert_eq!(s.moves.len(), MAX_MOVES);
    assert_eq!(
        s.moves.last().map(|m| m.reason.as_str()),
        Some("NodeDeleted")
    );
    let c = cond(&s, SCHEDULED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", REASON_NODE_LOST)
    );
}
