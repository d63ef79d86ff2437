//! The controller's decision for one request: a new request planned, a gang that cannot fit,
//! scaling up and down, replicas moved off lost nodes and GPUs, pending and terminating pods.

use super::*;
use crate::crd::ScheduleRequestSpec;
use fixtures::{cluster, nodes_of, run, running, spec, with_pods};

mod elastic;
mod fixtures;

#[test]
fn a_new_request_plans_and_creates_every_replica() {
    let c = cluster(2);
    let d = run(
        &spec(false, 2, 4),
        vec![],
        &c,
        &[NodeHealth::default(); 2],
        &HashSet::new(),
    );
    assert_eq!(d.create.len(), 2);
    assert!(d.remove.is_empty() && d.unplaced.is_empty() && d.kept.is_empty());
    let mut nodes: Vec<&str> = d.create.iter().map(|e| e.node.as_str()).collect();
    nodes.sort();
    assert_eq!(
        nodes,
        ["node-0", "node-1"],
        "4 GPUs each: one replica per node"
    );
    assert!(d.create.iter().all(|e| e.gpu_devices == [0, 1, 2, 3]));
    assert!(d.solver.is_some());
}

#[test]
fn a_gang_that_does_not_fit_creates_nothing_and_says_why() {
    let c = cluster(2);
    let d = run(
        &spec(true, 3, 4),
        vec![],
        &c,
        &[NodeHealth::default(); 2],
        &HashSet::new(),
    );
    assert!(d.create.is_empty(), "{:?}", d.create);
    assert!(d.gang_blocked);
    assert_eq!(d.unplaced.len(), 3);
    assert!(
        d.unplaced[0].reason.contains("gang"),
        "{}",
        d.unplaced[0].reason
    );
    assert!(!d.permanently_infeasible, "each replica alone fits a node");
}

#[test]
fn without_gang_what_fits_is_created() {
    let c = cluster(2);
    let d = run(
        &spec(false, 3, 4),
        vec![],
        &c,
        &[NodeHealth::default(); 2],
        &HashSet::new(),
    );
    assert_eq!((d.create.len(), d.unplaced.len()), (2, 1));
    assert!(!d.gang_blocked);
}

#[test]
fn scaling_up_keeps_running_replicas_where_they_are() {
    let pods = vec![running(0, "node-1", &[0, 1]), running(1, "node-1", &[2, 3])];
    let (c, accounted) = with_pods(cluster(2), 2, &pods);
    let d = run(
        &spec(false, 3, 2),
        pods,
        &c,
        &[NodeHealth::default(); 2],
        &accounted,
    );
    assert_eq!(nodes_of(&d.kept), [(0, "node-1"), (1, "node-1")]);
    assert_eq!(nodes_of(&d.create), [(2, "node-0")], "node-1 is full");
    assert!(d.remove.is_empty() && d.moves.is_empty());
    assert_eq!(d.to_place, 1);
}

#[test]
fn scaling_down_deletes_the_highest_replicas_gracefully() {
    let pods: Vec<_> = (0..4)
        .map(|i| running(i, "node-0", &[i as usize]))
        .collect();
    let (c, accounted) = with_pods(cluster(1), 1, &pods);
    let d = run(
        &spec(false, 2, 1),
        pods,
        &c,
        &[NodeHealth::default()],
        &accounted,
    );
    let removed: Vec<(&str, bool, &str)> = d
        .remove
        .iter()
        .map(|r| (r.name.as_str(), r.force, r.reason))
        .collect();
    assert_eq!(
        removed,
        [
            ("sr-train-2", false, REASON_SCALE_DOWN),
            ("sr-train-3", false, REASON_SCALE_DOWN)
        ]
    );
    assert_eq!(d.kept.len(), 2);
    assert!(d.create.is_empty() && d.solver.is_none(), "nothing to plan");
}

#[test]
fn a_not_ready_node_moves_its_replicas_elsewhere() {
    let pods = vec![
        running(0, "node-0", &[0, 1, 2, 3]),
        running(1, "node-1", &[0, 1, 2, 3]),
    ];
    let (c, accounted) = with_pods(cluster(3), 4, &pods);
    let health = [
        NodeHealth {
            problem: Some(NodeProblem::NotReady),
            ..NodeHealth::default()
        },
        NodeHealth::default(),
        NodeHealth::default(),
    ];
    let d = run(&spec(false, 2, 4), pods, &c, &health, &accounted);
    assert_eq!(nodes_of(&d.kept), [(1, "node-1")]);
    assert_eq!(nodes_of(&d.create), [(0, "node-2")]);
    assert_eq!(d.remove.len(), 1);
    assert!(
        d.remove[0].force,
        "an unreachable node confirms no graceful deletion"
    );
    assert_eq!(d.moves.len(), 1);
    let m = &d.moves[0];
    assert_eq!(
        (
            m.replica,
            m.from.as_str(),
            m.to.as_deref(),
            m.reason.as_str()
        ),
        (0, "node-0", Some("node-2"), "NodeNotReady")
    );
}

#[test]
fn a_deleted_node_and_stale_telemetry_both_move_replicas() {
    let mut pods = vec![running(0, "node-9", &[0]), running(1, "node-0", &[0])];
    pods[0].bound_devices = None;
    let (c, accounted) = with_pods(cluster(2), 1, &pods[1..]);
    let health = [
        NodeHealth {
            problem: Some(NodeProblem::TelemetryStale),
            ..NodeHealth::default()
        },
        NodeHealth::default(),
    ];
    let d = run(&spec(false, 2, 1), pods, &c, &health, &accounted);
    let reasons: Vec<(i32, &str)> = d
        .moves
        .iter()
        .map(|m| (m.replica, m.reason.as_str()))
        .collect();
    assert_eq!(reasons, [(0, REASON_NODE_DELETED), (1, "TelemetryStale")]);
    assert!(
        d.create.iter().all(|e| e.node == "node-1"),
        "{:?}",
        d.create
    );
    assert_eq!(d.create.len(), 2);
}

#[test]
fn an_unhealthy_gpu_moves_only_the_replica_on_it_and_is_avoided() {
    let pods = vec![running(0, "node-0", &[0]), running(1, "node-0", &[1])];
    let (c, accounted) = with_pods(cluster(1), 1, &pods);
    let health = [NodeHealth {
        unhealthy: DeviceSet::single(1),
        ..NodeHealth::default()
    }];
    let d = run(&spec(false, 2, 1), pods, &c, &health, &accounted);
    assert_eq!(nodes_of(&d.kept), [(0, "node-0")]);
    assert_eq!(d.moves.len(), 1);
    assert_eq!(d.moves[0].reason, REASON_GPU_UNHEALTHY);
    assert_eq!(d.create.len(), 1);
    assert!(!d.create[0].gpu_devices.contains(&1), "{:?}", d.create[0]);
}

#[test]
fn pending_pods_not_yet_in_the_snapshot_hold_their_planned_room() {
    let mut pending = running(0, "node-0", &[0, 1, 2, 3]);
    pending.node = None;
    pending.bound_devices = None;
    pending.phase = PodPhase::Pending;
    let c = cluster(2);
    let d = run(
        &spec(false, 2, 4),
        vec![pending],
        &c,
        &[NodeHealth::default(); 2],
        &HashSet::new(),
    );
    assert_eq!(nodes_of(&d.kept), [(0, "node-0")]);
    assert_eq!(
        nodes_of(&d.create),
        [(1, "node-1")],
        "node-0's GPUs are promised to replica 0"
    );
}

#[test]
fn an_unbound_pod_whose_planned_room_was_taken_is_replanned() {
    let mut pending = running(0, "node-0", &[0, 1, 2, 3]);
    pending.node = None;
    pending.bound_devices = None;
    pending.phase = PodPhase::Pending;
    // Someone else's pod took node-0's GPUs meanwhile.
    let other = running(7, "node-0", &[0, 1, 2, 3]);
    let (c, _) = with_pods(cluster(2), 4, &[other]);
    let d = run(
        &spec(false, 1, 4),
        vec![pending],
        &c,
        &[NodeHealth::default(); 2],
        &HashSet::new(),
    );
    assert_eq!(d.moves.len(), 1);
    assert_eq!(d.moves[0].reason, REASON_PLAN_STALE);
    assert_eq!(nodes_of(&d.create), [(0, "node-1")]);
}

#[test]
fn a_cordoned_node_keeps_its_replicas_but_gets_no_new_ones() {
    let pods = vec![running(0, "node-0", &[0])];
    let (c, accounted) = with_pods(cluster(2), 1, &pods);
    let health = [
        NodeHealth {
            unschedulable: true,
            ..NodeHealth::default()
        },
        NodeHealth::default(),
    ];
    let d = run(&spec(false, 3, 1), pods, &c, &health, &accounted);
    assert_eq!(nodes_of(&d.kept), [(0, "node-0")]);
    assert!(
        d.create.iter().all(|e| e.node == "node-1"),
        "{:?}",
        d.create
    );
    assert!(d.moves.is_empty());
}

#[test]
fn terminating_pods_wait_instead_of_being_recreated() {
    let mut old = running(0, "node-0", &[0]);
    old.terminating = true;
    let c = cluster(1);
    let d = run(
        &spec(false, 1, 1),
        vec![old],
        &c,
        &[NodeHealth::default()],
        &HashSet::new(),
    );
    assert_eq!(d.waiting, 1);
    assert!(d.create.is_empty() && d.remove.is_empty());
}

#[test]
fn a_distrusted_node_keeps_its_replicas_when_there_is_nowhere_else() {
    let pods = vec![running(0, "node-0", &[0]), running(1, "node-1", &[0])];
    let (c, accounted) = with_pods(cluster(2), 1, &pods);
    let stale = NodeHealth {
        problem: Some(NodeProblem::TelemetryStale),
        ..NodeHealth::default()
    };
    let not_ready = NodeHealth {
        problem: Some(NodeProblem::NotReady),
        ..NodeHealth::default()
    };
    // Every agent is silent: nothing can move, so nothing running is thrown away.
    let d = run(
        &spec(false, 2, 1),
        pods.clone(),
        &c,
        &[stale; 2],
        &accounted,
    );
    assert!(d.remove.is_empty() && d.moves.is_empty(), "{d:?}");
    assert_eq!(nodes_of(&d.kept), [(0, "node-0"), (1, "node-1")]);
    assert_eq!(d.held.len(), 2);
    assert!(d.unplaced.is_empty());
    // A node that is gone or unreachable loses its pod anyway: it is deleted and waits.
    let d = run(
        &spec(false, 2, 1),
        pods,
        &c,
        &[not_ready, stale],
        &accounted,
    );
    assert_eq!(d.remove.len(), 1);
    assert_eq!(d.moves[0].to, None);
    assert_eq!(nodes_of(&d.kept), [(1, "node-1")]);
    assert_eq!(d.unplaced.len(), 1);
}

#[test]
fn a_replica_larger_than_every_node_is_permanently_infeasible() {
    let s: ScheduleRequestSpec = serde_saphyr::from_str(
        "tasks:\n- name: train\n  replicas: 1\n  resources: {cpu: '64', memory: 8Gi}\n  podTemplate: {spec: {containers: [{name: main, image: img}]}}\n",
    )
    .expect("spec");
    let c = cluster(2);
    let d = run(&s, vec![], &c, &[NodeHealth::default(); 2], &HashSet::new());
    assert!(d.permanently_infeasible);
    assert_eq!(d.unplaced.len(), 1);
    assert!(
        d.unplaced[0].reason.contains("cpu") || d.unplaced[0].reason.contains("CPU"),
        "{}",
        d.unplaced[0].reason
    );
    let status = crate::controller::status::planned(
        &crate::crd::ScheduleRequestStatus::default(),
        Some(1),
        &d,
        &Observed::default(),
        &"2026-11-22T00:00:00Z".parse().expect("time"),
    );
    assert_eq!(status.phase, crate::crd::Phase::Infeasible);
}

/// The consolidator's hold for a waiting two-GPU pod (`cpu_milli`) on node-0's devices 1
/// and 2, in `c`.
fn hold_devices_1_and_2(c: &mut Cluster, cpu_milli: u64) {
    let two = PodDemand {
        cpu_milli,
        memory_bytes: 0,
        gpu: GpuDemand::Whole { count: 2 },
        models: ModelSet::ANY,
    };
    let at = Placement {
        node: 0,
        devices: DeviceSet::single(1).with(2),
    };
    crate::controller::observe::hold_room(c, &two, at);
}

#[test]
fn room_held_for_a_consolidated_pod_is_not_planned_into_while_a_moved_pod_is_still_there() {
    // Replica 0 on device 0, and a pod making way (moved, or given back) still on device 1.
    let kept = running(0, "node-0", &[0]);
    let leaving = running(7, "node-0", &[1]);
    let (mut c, accounted) = with_pods(cluster(1), 1, &[kept.clone(), leaving]);
    hold_devices_1_and_2(&mut c, 0);
    let d = run(
        &spec(false, 3, 1),
        vec![kept],
        &c,
        &[NodeHealth::default()],
        &accounted,
    );
    assert_eq!(nodes_of(&d.create), [(1, "node-0")], "{:?}", d.create);
    assert_eq!(
        d.create[0].gpu_devices,
        [3],
        "only the device outside the hold"
    );
    assert_eq!(d.unplaced.len(), 1);
}

#[test]
fn room_held_for_a_consolidated_pod_is_placed_as_its_demand_once_free() {
    let kept = running(0, "node-0", &[0]);
    let (mut c, accounted) = with_pods(cluster(1), 1, std::slice::from_ref(&kept));
    hold_devices_1_and_2(&mut c, 1000);
    assert_eq!(c.nodes()[0].gpu_free(), [0, 0, 0, 1000]);
    assert_eq!(c.nodes()[0].cpu_free, 32_000 - 4000 - 1000);
    let d = run(
        &spec(false, 2, 1),
        vec![kept],
        &c,
        &[NodeHealth::default()],
        &accounted,
    );
    assert_eq!(d.create[0].gpu_devices, [3]);
}
