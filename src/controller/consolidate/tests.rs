//! The consolidation loop's pure parts: the plan on a hand-built live snapshot (room made by
//! moving opted-in pods; nothing when none may move, when no destination is usable, or past
//! the move cap; nothing to do when the pod fits), which pods may move, how long a pod has
//! been Unschedulable, and which held pods lose the hold label.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::plan::{PlannedMove, Proposal, Scope, propose};
use super::{movable, unschedulable_for};
use crate::model::{Cluster, DeviceSet, Placement, PodDemand};
use crate::policy::PolicyKind;
use crate::policy::testkit::{cluster, share, whole};
use crate::snapshot::{BoundPod, ClusterSnapshot};

/// A snapshot of nodes with `gpus` GPUs each, and `pods` (node, demand) bound to device 0 of
/// their node, named `ns/p<i>` with UID `uid-<i>`.
fn snapshot(gpus: &[usize], pods: &[(usize, PodDemand)]) -> ClusterSnapshot {
    let mut c: Cluster = cluster(gpus);
    let mut bound = Vec::new();
    for (i, &(node, demand)) in pods.iter().enumerate() {
        let at = Placement {
            node,
            devices: DeviceSet::single(0),
        };
        c.place(&demand, at).unwrap();
        bound.push(BoundPod {
            key: format!("ns/p{i}"),
            uid: format!("uid-{i}"),
            demand,
            at,
            priority: 0,
        });
    }
    ClusterSnapshot::new(c, bound)
}

/// Node 0 with 4 GPUs and two half-GPU pods on its device 0; node 1 with 2 idle GPUs. No
/// node fits a 4-GPU pod; moving both share pods to node 1 makes room on node 0.
fn fragmented() -> ClusterSnapshot {
    snapshot(&[4, 2], &[(0, share(500)), (0, share(500))])
}

fn plan(
    snap: &ClusterSnapshot,
    usable: &[bool],
    movable: &[bool],
    max: usize,
    pod: PodDemand,
) -> Proposal {
    plan_giving_back(snap, usable, movable, &[], max, pod)
}

fn plan_giving_back(
    snap: &ClusterSnapshot,
    usable: &[bool],
    movable: &[bool],
    elastic: &[usize],
    max: usize,
    pod: PodDemand,
) -> Proposal {
    let scope = Scope {
        usable,
        movable,
        elastic,
        max_moves: max,
    };
    propose(snap, scope, &pod, PolicyKind::Fgd, 42)
}

#[test]
fn moving_the_opted_in_pods_off_a_node_makes_room_there() {
    let snap = fragmented();
    let got = plan(&snap, &[true, true], &[true, true], 4, whole(4));
    let Proposal::Move { at, moves } = got else {
        panic!("expected moves, got {got:?}");
    };
    assert_eq!(at.node, 0);
    assert_eq!(at.devices.len(), 4);
    let mut moved: Vec<usize> = moves.iter().map(|m: &PlannedMove| m.pod).collect();
    moved.sort_unstable();
    assert_eq!(moved, vec![0, 1]);
    assert!(
        moves.iter().all(|m| m.to.is_some_and(|to| to.node == 1)),
        "{moves:?}"
    );
}

#[test]
fn elastic_replicas_are_given_back_before_anything_moves() {
    // Both share pods are elastic replicas (and movable): given back, in the order given,
    // with no destination; the pod fits where they were.
    let snap = fragmented();
    let got = plan_giving_back(&snap, &[true, true], &[true, true], &[1, 0], 4, whole(4));
    let Proposal::Move { at, moves } = got else {
        panic!("expected the elastic replicas given back, got {got:?}");
    };
    assert_eq!((at.node, at.devices.len()), (0, 4));
    let given: Vec<(usize, Option<Placement>)> = moves.iter().map(|m| (m.pod, m.to)).collect();
    assert_eq!(given, vec![(1, None), (0, None)]);
    // A half-GPU pod fits node 1 as it is: nothing is given back.
    let fits = plan_giving_back(&snap, &[true, true], &[true, true], &[1, 0], 4, share(500));
    assert_eq!(fits, Proposal::FitsNow);
    // One elastic replica is not enough and the cap allows one: the moves' search follows,
    // under the same cap, and finds no room either.
    let capped = plan_giving_back(&snap, &[true, true], &[true, true], &[1], 1, whole(4));
    assert_eq!(capped, Proposal::NoRoom);
}

#[test]
fn nothing_moves_without_opted_in_pods_a_usable_destination_or_enough_budget() {
    let snap = fragmented();
    assert_eq!(
        plan(&snap, &[true, true], &[false, true], 4, whole(4)),
        Proposal::NoRoom
    );
    // Node 1 cordoned: the share pods would have nowhere to go.
    assert_eq!(
        plan(&snap, &[true, false], &[true, true], 4, whole(4)),
        Proposal::NoRoom
    );
    assert_eq!(
        plan(&snap, &[true, true], &[true, true], 1, whole(4)),
        Proposal::NoRoom
    );
}

#[test]
fn a_pod_that_fits_a_usable_node_needs_no_moves() {
    let snap = fragmented();
    assert_eq!(
        plan(&snap, &[true, true], &[true, true], 4, whole(2)),
        Proposal::FitsNow
    );
    // Only on an unusable node: room is made on the usable one instead.
    let got = plan(&snap, &[true, false], &[true, true], 4, share(600));
    assert!(
        matches!(got, Proposal::Move { .. } | Proposal::FitsNow),
        "{got:?}"
    );
}

/// The e2e chain scenario's cluster: node 0 (2 GPUs) with a one-GPU pod, node 1 (1 GPU) with
/// a half-GPU pod, node 2 (1 GPU) with a half-GPU pod that may not move.
fn chained() -> ClusterSnapshot {
    snapshot(
        &[2, 1, 1],
        &[(0, whole(1)), (1, share(500)), (2, share(500))],
    )
}

#[test]
fn a_chain_moves_the_middle_hop_first_where_no_single_move_makes_room() {
    let snap = chained();
    let usable = [true; 3];
    let got = plan(&snap, &usable, &[true, true, false], 4, whole(2));
    let Proposal::Move { at, moves } = got else {
        panic!("expected a chain, got {got:?}");
    };
    assert_eq!(at.node, 0);
    let hops: Vec<(usize, Option<usize>)> = moves
        .iter()
        .map(|m| (m.pod, m.to.map(|t| t.node)))
        .collect();
    assert_eq!(hops, [(1, Some(2)), (0, Some(1))], "the middle hop first");
    // Two moves are the least a chain takes.
    let got = plan(&snap, &usable, &[true, true, false], 1, whole(2));
    assert_eq!(got, Proposal::NoRoom);
}

fn pod(labels: serde_json::Value, owner: bool, priority: i32, deleting: bool) -> Pod {
    let mut v = json!({
        "metadata": { "name": "p", "namespace": "ns", "labels": labels },
        "spec": { "containers": [], "priority": priority },
    });
    if owner {
        v["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-uid",
            "controller": true
        }]);
    }
    if deleting {
        v["metadata"]["deletionTimestamp"] = json!("2026-12-05T00:00:00Z");
    }
    serde_json::from_value(v).unwrap()
}

#[test]
fn only_opted_in_recreated_pods_of_no_higher_priority_outside_gangs_move() {
    let none = |_: &str, _: &str| None;
    let yes = json!({ "allot.dev/movable": "true" });
    assert!(movable(&pod(yes.clone(), true, 0, false), 0, none));
    assert!(
        !movable(&pod(json!({}), true, 0, false), 0, none),
        "not opted in"
    );
    let no = json!({ "allot.dev/movable": "false" });
    assert!(!movable(&pod(no, true, 0, false), 0, none), "opted out");
    assert!(
        !movable(&pod(yes.clone(), false, 0, false), 0, none),
        "a bare pod"
    );
    assert!(
        !movable(&pod(yes.clone(), true, 5, false), 0, none),
        "higher priority"
    );
    assert!(
        !movable(&pod(yes.clone(), true, 0, true), 0, none),
        "being deleted"
    );
    let member = json!({ "allot.dev/movable": "true", "allot.dev/schedule-request": "job" });
    assert!(
        !movable(&pod(member.clone(), true, 0, false), 0, none),
        "a request that cannot be found counts as a gang"
    );
    let request = |gang: bool| {
        let sr: crate::crd::ScheduleRequest = serde_json::from_value(json!({
            "apiVersion": "allot.dev/v1alpha1", "kind": "ScheduleRequest",
            "metadata": { "name": "job", "namespace": "ns" },
            "spec": { "gang": gang, "tasks": [] },
        }))
        .unwrap();
        Some(Arc::new(sr))
    };
    assert!(!movable(&pod(member.clone(), true, 0, false), 0, |_, _| {
        request(true)
    }));
    assert!(movable(&pod(member, true, 0, false), 0, |_, _| request(
        false
    )));
}

#[test]
fn a_pod_counts_as_waiting_from_its_unschedulable_condition() {
    let mut p = pod(json!({}), false, 0, false);
    assert_eq!(unschedulable_for(&p, 100), None);
    let at = "1970-01-01T00:01:00Z"; // 60 s
    p.status = serde_json::from_value(json!({ "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "lastTransitionTime": at
    }] }))
    .unwrap();
    assert_eq!(unschedulable_for(&p, 100), Some(40));
    p.status = serde_json::from_value(json!({ "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "SchedulingGated",
        "lastTransitionTime": at
    }] }))
    .unwrap();
    assert_eq!(unschedulable_for(&p, 100), None);
}

/// A pod labelled for the hold watch, bound to `node` or not, whose record is `record`.
fn held(node: Option<&str>, record: &str) -> Arc<Pod> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "big", "namespace": "ns",
            "labels": { crate::names::CONSOLIDATING_LABEL: "true" },
            "annotations": { crate::names::CONSOLIDATION_ANNOTATION: record } },
        "spec": { "nodeName": node, "containers": [{ "name": "c" }] }
    }))
    .expect("a pod");
    Arc::new(pod)
}

#[test]
fn only_bound_pods_whose_record_no_longer_holds_lose_the_hold_label() {
    use crate::live::consolidation::{Phase, Record, VERSION};
    let record = |phase: Phase, until: i64| {
        Record {
            version: VERSION,
            phase,
            planned_at: 900,
            until: Some(until),
            node: Some("a".into()),
            devices: None,
            moves: Vec::new(),
            message: String::new(),
            freed: true,
        }
        .to_json()
    };
    let now = 1000;
    let holding = record(Phase::Holding, now + 60);
    let over = record(Phase::Holding, now);
    let cases = [
        (held(Some("a"), &holding), false), // bound, its destinations still held
        (held(None, &over), false),         // waiting: the loop expires it itself
        (held(Some("a"), &over), true),     // bound, deadline passed
        (held(Some("a"), "{not json"), true), // bound, unreadable: nothing to hold
    ];
    for (i, (pod, released)) in cases.iter().enumerate() {
        let got = super::finished_holds(std::slice::from_ref(pod), now);
        assert_eq!(got.len() == 1, *released, "case {i}");
    }
}
