//! The fewest elastic replicas given back, in order, on small clusters planned by the
//! controller's own plan step.

use std::collections::HashSet;

use super::*;
use crate::alloc::PlanOptions;
use crate::controller::decide::decide;
use crate::controller::observed::{NodeHealth, Observed, World};
use crate::controller::validate::validate;
use crate::crd::ScheduleRequestSpec;
use crate::model::{DeviceSet, GpuDemand, ModelCatalog, ModelSet, Node};

const GIB: u64 = 1 << 30;

/// `n` nodes of 4 A100.
fn cluster(n: usize) -> Cluster {
    let mut models = ModelCatalog::default();
    let a100 = models.intern("A100").expect("model");
    let nodes = (0..n)
        .map(|i| Node::new(format!("node-{i}"), 32_000, 128 * GIB, 4, Some(a100)).expect("node"))
        .collect();
    Cluster::new(models, nodes)
}

fn gpus(count: u32) -> PodDemand {
    PodDemand {
        cpu_milli: 1000,
        memory_bytes: GIB,
        gpu: GpuDemand::Whole { count },
        models: ModelSet::ANY,
    }
}

/// A lendable replica of `request` on `node`, devices `devices`, placed into `c`.
fn lent(
    c: &mut Cluster,
    request: &str,
    priority: i32,
    replica: i32,
    node: usize,
    devices: &[usize],
) -> Lendable {
    let devices = devices.iter().fold(DeviceSet::EMPTY, |s, &d| s.with(d));
    let demand = gpus(devices.len() as u32);
    let at = Placement { node, devices };
    c.place(&demand, at).expect("room for the lender");
    Lendable {
        pod: format!("ns/{request}-w-{replica}"),
        uid: format!("uid-{request}-{replica}"),
        request: format!("ns/{request}"),
        priority,
        replica,
        demand,
        at,
    }
}

/// A request of `replicas` x `count` GPUs.
fn request(gang: bool, replicas: i32, count: u32) -> ScheduleRequestSpec {
    serde_saphyr::from_str(&format!(
        "gang: {gang}\npriority: 10\ntasks:\n- name: t\n  replicas: {replicas}\n  resources: {{cpu: '1', memory: 1Gi, gpu: {count}}}\n  podTemplate: {{spec: {{containers: [{{name: main, image: img}}]}}}}\n"
    ))
    .expect("spec")
}

/// The plan step of `spec` (no pods yet) on `c`.
fn plan_on(spec: &ScheduleRequestSpec, c: &Cluster) -> Result<Decision, crate::alloc::PlanError> {
    let replicas = validate("sr", spec, c).expect("valid");
    let health = vec![NodeHealth::default(); c.len()];
    let accounted = HashSet::new();
    let world = World {
        cluster: c,
        health: &health,
        accounted: &accounted,
    };
    decide(
        &replicas,
        1,
        &Observed { pods: vec![] },
        &world,
        &PlanOptions::default(),
        "now",
    )
}

#[test]
fn the_lowest_priority_and_highest_replicas_go_first() {
    let mut c = cluster(3);
    let mut l = vec![
        lent(&mut c, "b", 5, 1, 0, &[0]),
        lent(&mut c, "a", 1, 1, 1, &[0]),
        lent(&mut c, "a", 1, 3, 2, &[0]),
        lent(&mut c, "c", 1, 2, 2, &[1]),
    ];
    order(&mut l);
    let picked: Vec<(&str, i32)> = l.iter().map(|l| (l.request.as_str(), l.replica)).collect();
    assert_eq!(picked, [("ns/a", 3), ("ns/c", 2), ("ns/a", 1), ("ns/b", 1)]);
}

#[test]
fn the_fewest_replicas_that_make_room_for_the_minimum_are_given_back() {
    // Two nodes, each full with two 2-GPU elastic replicas of a lower-priority request. A
    // 4-GPU replica needs one node emptied: the two highest replicas (4 and 3, both on
    // node-1), not all four.
    let mut c = cluster(2);
    let mut l = vec![
        lent(&mut c, "low", 0, 1, 0, &[0, 1]),
        lent(&mut c, "low", 0, 2, 0, &[2, 3]),
        lent(&mut c, "low", 0, 3, 1, &[0, 1]),
        lent(&mut c, "low", 0, 4, 1, &[2, 3]),
    ];
    order(&mut l);
    let spec = request(true, 1, 4);
    assert!(short_of_minimum(&plan_on(&spec, &c).expect("plan")));
    let (k, d) = fewest(&l, &c, |c| plan_on(&spec, c))
        .expect("plan")
        .expect("room");
    assert_eq!(k, 2, "given back: {:?}", &l[..k]);
    assert!(!short_of_minimum(&d));
    assert_eq!(d.create.len(), 1);
    assert_eq!(d.create[0].node, "node-1");
}

#[test]
fn nothing_is_given_back_when_even_all_of_it_is_not_enough() {
    // A gang of two 4-GPU replicas, and only one node's worth of elastic replicas to take.
    let mut c = cluster(2);
    let full = gpus(4);
    c.place(
        &full,
        Placement {
            node: 0,
            devices: DeviceSet::EMPTY.with(0).with(1).with(2).with(3),
        },
    )
    .expect("a pod that is not elastic");
    let l = vec![lent(&mut c, "low", 0, 2, 1, &[0, 1, 2, 3])];
    let spec = request(true, 2, 4);
    let found = fewest(&l, &c, |c| plan_on(&spec, c)).expect("plan");
    assert!(found.is_none(), "{found:?}");
    assert!(
        fewest(&[], &c, |c| plan_on(&spec, c))
            .expect("plan")
            .is_none()
    );
}

#[test]
fn only_a_missing_minimum_that_room_could_fix_counts_as_short() {
    let c = cluster(1);
    assert!(!short_of_minimum(
        &plan_on(&request(false, 1, 4), &c).expect("plan")
    ));
    let mut d = plan_on(&request(false, 2, 4), &c).expect("plan");
    assert!(short_of_minimum(&d), "one of two replicas is unplaced");
    d.elastic_unplaced = d.unplaced.len();
    assert!(!short_of_minimum(&d), "only elastic replicas wait");
    d.elastic_unplaced = 0;
    d.permanently_infeasible = true;
    assert!(
        !short_of_minimum(&d),
        "no room helps a replica larger than every node"
    );
}
