//! Depth-2 moves on hand-built clusters (only a chain makes room; a chain past the budget
//! moves nothing) and in a replay driven move by move (every rescue keeps CPU, memory and
//! GPU held equal to the pods placed, and some rescues use a chain).

use super::*;
use crate::model::frag::TargetWorkload;
use crate::model::{GpuDemand, Node};
use crate::policy::PolicyKind;
use crate::policy::testkit::{cluster, pod, share, target, whole};
use crate::sim::replay::{arrivals, context};

use super::tests::{UNCAPPED, free_state, put};

/// Node 0 (2 GPUs) holds P = share(300) and is the only node that can take whole(2). P fits
/// neither node 1 (GPU free 200: Q = share(200, 1 core) and T = share(600)) nor node 2 (free
/// 250). Without Q node 1 has 400 free, and Q fits node 2: target <- P <- node 1 <- Q -> 2.
fn chain_only(budget: MoveBudget, chains: bool) -> (Cluster, Consolidator) {
    let mut c = cluster(&[2, 1, 1]);
    let mut cons = Consolidator::new(&c, budget).with_chains(chains);
    put(&mut c, &mut cons, 0, share(300), 0);
    put(
        &mut c,
        &mut cons,
        1,
        pod(1000, GpuDemand::Shared { milli: 200 }),
        1,
    );
    put(&mut c, &mut cons, 2, share(600), 1);
    put(&mut c, &mut cons, 3, share(750), 2);
    (c, cons)
}

fn rescue(c: &mut Cluster, cons: &mut Consolidator, pod: PodDemand) -> Option<Rescue> {
    let t = target(&[share(300), whole(1), whole(2)]);
    let mut decider = Decider::new(context(c, &t, 1));
    let mut policy = PolicyKind::BestFit.build(&t, 1);
    assert!(c.nodes().iter().all(|n| !n.fits(&pod)), "fits nowhere");
    cons.make_room(c, &mut decider, policy.as_mut(), &pod, 99)
}

#[test]
fn only_a_two_hop_chain_makes_room_and_the_depth_two_search_finds_it() {
    let (mut c, mut cons) = chain_only(UNCAPPED, false);
    let before = free_state(&c);
    assert!(
        rescue(&mut c, &mut cons, whole(2)).is_none(),
        "no single hop"
    );
    assert_eq!(free_state(&c), before);

    let (mut c, mut cons) = chain_only(UNCAPPED, true);
    let r = rescue(&mut c, &mut cons, whole(2)).expect("a chain makes room");
    let hops: Vec<_> = r
        .moves
        .iter()
        .map(|m| (m.id, m.from.node, m.to.node))
        .collect();
    assert_eq!(
        hops,
        [(1, 1, 2), (0, 0, 1)],
        "Q to node 2, then P to node 1"
    );
    assert_eq!(r.at.node, 0);
    assert_eq!(cons.moves(), 2);
    assert_eq!(c.nodes()[0].gpu_free(), &[0, 0]);
    assert_eq!(c.nodes()[1].gpu_free(), &[100]);
    assert_eq!(c.nodes()[2].gpu_free(), &[50]);
    assert_eq!(c.gpu_allocated_milli(), 300 + 200 + 600 + 750 + 2000);
    let ids = |n: usize| -> Vec<usize> { cons.residents(n).iter().map(|r| r.id).collect() };
    assert_eq!((ids(0), ids(1), ids(2)), (vec![], vec![2, 0], vec![3, 1]));
}

#[test]
fn a_chain_past_the_budget_moves_nothing_and_leaves_the_cluster_as_it_was() {
    let budget = |per_arrival, total| MoveBudget { per_arrival, total };
    for b in [
        budget(1, TotalBudget::Unlimited),
        budget(5, TotalBudget::Moves(1)),
        // 25 % of the 4 pods placed: 1 move.
        budget(5, TotalBudget::PercentOfPlaced(25.0)),
    ] {
        let (mut c, mut cons) = chain_only(b, true);
        let before = free_state(&c);
        assert_eq!(cons.allowance(), 1, "{b:?}");
        assert!(rescue(&mut c, &mut cons, whole(2)).is_none(), "{b:?}");
        assert_eq!(free_state(&c), before, "{b:?}");
        assert_eq!(cons.moves(), 0);
        let ids = |n: usize| -> Vec<usize> { cons.residents(n).iter().map(|r| r.id).collect() };
        assert_eq!((ids(0), ids(1), ids(2)), (vec![0], vec![1, 2], vec![3]));
    }
    let (mut c, mut cons) = chain_only(budget(2, TotalBudget::Moves(2)), true);
    assert_eq!(
        rescue(&mut c, &mut cons, whole(2)).map(|r| r.moves.len()),
        Some(2)
    );
}

/// A busy cluster with CPU-heavy pods, so CPU as well as GPU runs out.
fn busy() -> (Cluster, Vec<PodDemand>, TargetWorkload) {
    let gpus: Vec<usize> = [8, 4, 2, 1, 2, 2, 0].into_iter().cycle().take(28).collect();
    let pods = vec![
        share(300),
        share(600),
        pod(1000, GpuDemand::Shared { milli: 150 }),
        pod(24_000, GpuDemand::Shared { milli: 450 }),
        whole(1),
        whole(2),
        pod(20_000, GpuDemand::None),
        pod(6_000, GpuDemand::None),
    ];
    let t = target(&pods);
    (cluster(&gpus), pods, t)
}

#[test]
fn a_replay_with_chains_keeps_every_resource_accounted() {
    let (c0, pods, t) = busy();
    let mut chained = 0;
    for (kind, seed) in [
        (PolicyKind::Random, 5),
        (PolicyKind::BestFit, 6),
        (PolicyKind::Fgd, 7),
    ] {
        let arr = arrivals(&pods, c0.gpu_capacity_milli(), seed);
        let mut c = c0.clone();
        let mut decider = Decider::new(context(&c, &t, seed));
        let mut policy = kind.build(&t, seed);
        let mut cons = Consolidator::new(&c, UNCAPPED);
        let (mut gpu, mut cpu, mut mem, mut moves) = (0u64, 0u64, 0u64, 0u64);
        for (i, p) in arr.iter().enumerate() {
            let uid = crate::policy::arrival_uid(i);
            let placed = match decider.decide(policy.as_mut(), &c, p, &uid) {
                Ok(at) => c.place(p, at).ok().map(|()| at),
                Err(_) => cons
                    .make_room(&mut c, &mut decider, policy.as_mut(), p, i)
                    .map(|r| {
                        moves += r.moves.len() as u64;
                        let from = r.moves.first().map(|m| m.from.node);
                        chained += usize::from(r.moves.iter().any(|m| Some(m.from.node) != from));
                        r.at
                    }),
            };
            if let Some(at) = placed {
                cons.record(i, p, at);
                (gpu, cpu, mem) = (
                    gpu + p.gpu.total_milli(),
                    cpu + p.cpu_milli,
                    mem + p.memory_bytes,
                );
            }
            let nodes = c.nodes();
            let held = |f: fn(&Node) -> u64| -> u64 { nodes.iter().map(f).sum() };
            assert_eq!(held(|n| n.cpu_capacity - n.cpu_free), cpu, "{kind} {i}");
            assert_eq!(held(|n| n.memory_capacity - n.memory_free), mem);
            assert_eq!(c.gpu_allocated_milli(), gpu);
            let idle = held(|n| u64::from(n.idle_gpu_milli()));
            assert_eq!(c0.gpu_capacity_milli() - idle, gpu);
            let tracked: usize = (0..c.len()).map(|n| cons.residents(n).len()).sum();
            assert_eq!(
                tracked as u64, cons.placed,
                "every placed pod is tracked once"
            );
            assert_eq!(cons.moves(), moves);
        }
    }
    assert!(chained > 0, "some rescue used a chain");
}
