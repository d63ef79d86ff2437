//! Consolidation on hand-built clusters (one move makes room; no move helps; models and
//! caps respected) and on whole replays (budget 0 is the online policy; moves never
//! overbook a node nor lose a pod).

use super::*;
use crate::model::frag::TargetWorkload;
use crate::model::{GpuDemand, ModelCatalog, ModelSet, Node};
use crate::policy::PolicyKind;
use crate::policy::testkit::{cluster, pod, share, target, whole};
use crate::sim::replay::{ReplayOptions, arrivals, context, replay_with_options};

pub(super) const UNCAPPED: MoveBudget = MoveBudget {
    per_arrival: usize::MAX,
    total: TotalBudget::Unlimited,
};

/// Place `pod` (arrival `id`) on `node` with the default devices and track it.
pub(super) fn put(
    c: &mut Cluster,
    cons: &mut Consolidator,
    id: usize,
    pod: PodDemand,
    node: usize,
) {
    let devices = c.nodes()[node].default_devices(pod.gpu).unwrap();
    let at = Placement { node, devices };
    c.place(&pod, at).unwrap();
    cons.record(id, &pod, at);
}

/// Try to make room for `pod` as arrival 99 with best fit.
fn rescue(
    c: &mut Cluster,
    cons: &mut Consolidator,
    t: &TargetWorkload,
    pod: PodDemand,
) -> Option<Rescue> {
    let ctx = context(c, t, 1);
    let mut decider = Decider::new(ctx);
    let mut policy = PolicyKind::BestFit.build(t, 1);
    assert!(
        c.nodes().iter().all(|n| !n.fits(&pod)),
        "the pod must fit nowhere"
    );
    cons.make_room(c, &mut decider, policy.as_mut(), &pod, 99)
}

/// Each node's free GPU vector, CPU and memory.
pub(super) fn free_state(c: &Cluster) -> Vec<(Vec<u16>, u64, u64)> {
    c.nodes()
        .iter()
        .map(|n| (n.gpu_free().to_vec(), n.cpu_free, n.memory_free))
        .collect()
}

#[test]
fn one_move_makes_room_and_the_consolidator_finds_it() {
    let mut c = cluster(&[1, 1]);
    let t = target(&[share(300), whole(1)]);
    let mut cons = Consolidator::new(&c, UNCAPPED);
    put(&mut c, &mut cons, 0, share(300), 0);
    put(&mut c, &mut cons, 1, share(500), 1);
    let r = rescue(&mut c, &mut cons, &t, whole(1)).expect("one move makes room");
    assert_eq!(r.moves.len(), 1);
    assert_eq!(
        (r.moves[0].id, r.moves[0].from.node, r.moves[0].to.node),
        (0, 0, 1)
    );
    assert_eq!(r.at.node, 0);
    assert_eq!(c.nodes()[1].gpu_free(), &[200]);
    assert_eq!(
        c.gpu_allocated_milli(),
        1800,
        "both shares and the new whole GPU"
    );
    assert_eq!(cons.moves(), 1);
    assert_eq!(cons.residents(1).len(), 2);
    assert!(cons.residents(0).is_empty());
}

#[test]
fn the_fewest_moves_win_over_a_node_needing_more() {
    // Node 0 needs two pods moved, node 1 one; node 2 has room for the movers.
    let mut c = cluster(&[1, 1, 1]);
    let t = target(&[share(300), whole(1)]);
    let mut cons = Consolidator::new(&c, UNCAPPED);
    put(&mut c, &mut cons, 0, share(200), 0);
    put(&mut c, &mut cons, 1, share(200), 0);
    put(&mut c, &mut cons, 2, share(400), 1);
    put(&mut c, &mut cons, 3, share(500), 2);
    let r = rescue(&mut c, &mut cons, &t, whole(1)).unwrap();
    assert_eq!((r.moves.len(), r.at.node), (1, 1));
}

#[test]
fn no_move_helps_and_the_cluster_is_left_as_it_was() {
    let mut c = cluster(&[1, 1]);
    let t = target(&[share(300), whole(1)]);
    let mut cons = Consolidator::new(&c, UNCAPPED);
    put(&mut c, &mut cons, 0, share(300), 0);
    put(&mut c, &mut cons, 1, share(800), 1);
    let before = free_state(&c);
    assert!(rescue(&mut c, &mut cons, &t, whole(1)).is_none());
    assert_eq!(free_state(&c), before);
    assert_eq!(c.gpu_allocated_milli(), 1100);
    assert_eq!(cons.moves(), 0);
    assert_eq!(cons.residents(0).len() + cons.residents(1).len(), 2);
}

#[test]
fn a_move_never_breaks_a_pods_gpu_model_constraint() {
    let mut models = ModelCatalog::default();
    let t4 = models.intern("T4").ok();
    let v100 = models.intern("V100M32").ok();
    let nodes = vec![
        Node::new("a", 64_000, 256 << 30, 1, t4).unwrap(),
        Node::new("b", 64_000, 256 << 30, 1, v100).unwrap(),
    ];
    let mut c = Cluster::new(models, nodes);
    let mut only_t4 = share(300);
    only_t4.models = ModelSet::only(t4.unwrap());
    let t = target(&[share(300), whole(1)]);
    let mut cons = Consolidator::new(&c, UNCAPPED);
    put(&mut c, &mut cons, 0, only_t4, 0);
    put(&mut c, &mut cons, 1, share(800), 1);
    // Capacity alone would allow moving the T4-only share to b; its model does not.
    assert!(rescue(&mut c, &mut cons, &t, whole(1)).is_none());
    assert_eq!(cons.residents(0)[0].id, 0);
    assert_eq!(c.nodes()[0].gpu_free(), &[700]);
}

#[test]
fn the_per_arrival_cap_and_the_total_budget_bound_the_moves() {
    // Node 0 needs its two shares moved (one to each other node); neither other node's
    // share fits anywhere else, so two moves is the least that helps.
    let build = |budget: MoveBudget| {
        let mut c = cluster(&[1, 1, 1]);
        let mut cons = Consolidator::new(&c, budget);
        put(&mut c, &mut cons, 0, share(200), 0);
        put(&mut c, &mut cons, 1, share(200), 0);
        put(&mut c, &mut cons, 2, share(700), 1);
        put(&mut c, &mut cons, 3, share(650), 2);
        (c, cons)
    };
    let t = target(&[share(200), whole(1)]);
    let attempt = |budget: MoveBudget| {
        let (mut c, mut cons) = build(budget);
        let allowance = cons.allowance();
        (
            allowance,
            rescue(&mut c, &mut cons, &t, whole(1)).map(|r| r.moves.len()),
        )
    };
    let budget = |per_arrival, total| MoveBudget { per_arrival, total };
    assert_eq!(attempt(budget(1, TotalBudget::Unlimited)), (1, None));
    assert_eq!(attempt(budget(2, TotalBudget::Moves(1))), (1, None));
    assert_eq!(attempt(budget(2, TotalBudget::Unlimited)), (2, Some(2)));
    // 50 % of 4 placed pods: 2 moves; 40 %: 1.6, rounded down to 1.
    assert_eq!(
        attempt(budget(5, TotalBudget::PercentOfPlaced(50.0))),
        (2, Some(2))
    );
    assert_eq!(
        attempt(budget(5, TotalBudget::PercentOfPlaced(40.0))),
        (1, None)
    );
}

/// A small cluster under heavy, mixed load: many failures, so many chances to move.
fn busy() -> (Cluster, Vec<PodDemand>, TargetWorkload) {
    let gpus: Vec<usize> = [8, 4, 2, 1, 2, 2].into_iter().cycle().take(30).collect();
    let c = cluster(&gpus);
    let pods = vec![
        share(300),
        share(600),
        share(450),
        whole(1),
        whole(2),
        pod(20_000, GpuDemand::None),
    ];
    let t = target(&pods);
    (c, pods, t)
}

#[test]
fn budget_zero_is_the_online_policy_exactly() {
    let (c, pods, t) = busy();
    let arr = arrivals(&pods, c.gpu_capacity_milli(), 5);
    for kind in PolicyKind::ALL {
        let run = |consolidation: Option<MoveBudget>| {
            let mut p = kind.build(&t, 5);
            let options = ReplayOptions {
                consolidation,
                ..ReplayOptions::default()
            };
            replay_with_options(&c, &arr, p.as_mut(), context(&c, &t, 5), options, |_| {})
        };
        let online = run(None);
        for off in [
            MoveBudget {
                per_arrival: 0,
                total: TotalBudget::Unlimited,
            },
            MoveBudget {
                per_arrival: 3,
                total: TotalBudget::Moves(0),
            },
            MoveBudget {
                per_arrival: 3,
                total: TotalBudget::PercentOfPlaced(0.0),
            },
        ] {
            let same = run(Some(off));
            assert_eq!(same.samples, online.samples, "{kind} {off:?}");
            assert_eq!((same.placed, same.failed), (online.placed, online.failed));
            assert!(same.rescued.is_empty() && same.searches == 0);
        }
        let moved = run(Some(UNCAPPED));
        assert_eq!(moved.placed + moved.failed, arr.len());
        if kind == PolicyKind::Random {
            assert!(
                !moved.rescued.is_empty(),
                "the busy cluster gives moves a chance"
            );
        }
    }
}

#[test]
fn moves_never_exceed_capacity_nor_lose_a_pod() {
    let (c, pods, t) = busy();
    let mut rescued = 0;
    for (kind, seed) in [
        (PolicyKind::Random, 5),
        (PolicyKind::LeastAllocated, 5),
        (PolicyKind::Fgd, 6),
    ] {
        let arr = arrivals(&pods, c.gpu_capacity_milli(), seed);
        let mut p = kind.build(&t, seed);
        let options = ReplayOptions {
            consolidation: Some(UNCAPPED),
            ..ReplayOptions::default()
        };
        let (mut gpu, mut cpu) = (0u64, 0u64);
        let out = replay_with_options(&c, &arr, p.as_mut(), context(&c, &t, seed), options, |s| {
            if s.placed.is_some() {
                gpu += s.pod.gpu.total_milli();
                cpu += s.pod.cpu_milli;
            }
            let nodes = s.cluster.nodes();
            let used_cpu: u64 = nodes.iter().map(|n| n.cpu_capacity - n.cpu_free).sum();
            let idle: u64 = nodes.iter().map(|n| u64::from(n.idle_gpu_milli())).sum();
            assert_eq!(used_cpu, cpu, "every placed pod's CPU is held exactly once");
            assert_eq!(s.cluster.gpu_allocated_milli(), gpu);
            assert_eq!(c.gpu_capacity_milli() - idle, gpu);
            assert!(
                nodes
                    .iter()
                    .all(|n| n.cpu_free <= n.cpu_capacity && n.memory_free <= n.memory_capacity)
            );
        });
        rescued += out.rescued.len();
    }
    assert!(rescued > 0, "the replays moved pods");
}
