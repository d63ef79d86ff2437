//! The LP planner on small clusters: fits, devices, model constraints, gangs, priority, objectives,
//! shadow prices, bad quantities, the offline bound, and properties over random batches.

use proptest::prelude::*;

use super::*;
use crate::model::{Cluster, GpuDemand, ModelCatalog, ModelSet, Node, PodDemand};
use crate::policy::testkit::{cluster, pod};

fn batch(pods: &[PodDemand]) -> Vec<BatchPod> {
    pods.iter()
        .map(|&demand| BatchPod {
            demand,
            priority: 0,
            gang: None,
            elastic: false,
        })
        .collect()
}

fn opts(objective: Objective, backend: Backend) -> PlanOptions {
    PlanOptions {
        objective,
        backend,
        time_limit: Duration::from_secs(5),
    }
}

/// Apply a plan to a copy of the cluster; fails if any placement overbooks.
fn apply(c: &Cluster, pods: &[BatchPod], plan: &Plan) -> Cluster {
    let mut state = c.clone();
    for (p, at) in pods.iter().zip(&plan.placements) {
        if let Some(at) = at {
            state
                .place(&p.demand, *at)
                .expect("the plan never overbooks");
        }
    }
    state
}

#[test]
fn everything_fits_with_no_gap() {
    let c = cluster(&[8, 8, 4]);
    let pods = batch(&[
        pod(4000, GpuDemand::Whole { count: 4 }),
        pod(4000, GpuDemand::Shared { milli: 500 }),
        pod(1000, GpuDemand::None),
    ]);
    for backend in Backend::all() {
        let plan = plan(&c, &pods, &opts(Objective::MaxPlaced, backend)).unwrap();
        assert_eq!(plan.placed(), 3, "{backend:?}");
        assert!(plan.gap < 1e-6, "{backend:?} gap {}", plan.gap);
        assert_eq!(plan.method, Method::Lp);
        assert!(plan.reasons.iter().all(Option::is_none));
        apply(&c, &pods, &plan);
    }
}

#[test]
fn whole_gpus_need_free_devices_on_one_node() {
    // Two 4-GPU nodes: 8 free GPUs in total, but an 8-GPU pod fits neither.
    let c = cluster(&[4, 4]);
    let pods = batch(&[pod(1000, GpuDemand::Whole { count: 8 })]);
    let plan = plan(&c, &pods, &PlanOptions::default()).unwrap();
    assert_eq!(plan.placed(), 0);
    let reason = plan.reasons[0].as_deref().unwrap();
    assert!(
        reason.contains("needs 8 x GPU on one node, but the largest GPU node has 4"),
        "{reason}"
    );
    assert!(
        plan.bound < 1e-6,
        "the LP must not pretend the pod fits: bound {}",
        plan.bound
    );
}

#[test]
fn model_constraints_are_explained() {
    let mut models = ModelCatalog::default();
    let t4 = models.intern("T4").unwrap();
    let v100 = models.intern("V100M32").unwrap();
    let nodes = vec![
        Node::new("a", 64_000, 256 << 30, 4, Some(t4)).unwrap(),
        Node::new("b", 64_000, 256 << 30, 4, Some(v100)).unwrap(),
    ];
    let c = Cluster::new(models, nodes);
    let mut p = pod(1000, GpuDemand::Whole { count: 8 });
    p.models = ModelSet::only(v100);
    let mut fits = pod(1000, GpuDemand::Whole { count: 4 });
    fits.models = ModelSet::only(v100);
    let pods = batch(&[p, fits, fits]);
    let plan = plan(&c, &pods, &PlanOptions::default()).unwrap();
    assert_eq!(plan.placements[1].map(|at| at.node), Some(1));
    let r0 = plan.reasons[0].as_deref().unwrap();
    assert!(
        r0.contains("needs 8 x V100M32 on one node, but the largest V100M32 node has 4"),
        "{r0}"
    );
    let r2 = plan.reasons[2].as_deref().unwrap();
    assert!(r2.contains("taken by other pods of this batch"), "{r2}");
}

#[test]
fn gangs_are_all_or_nothing() {
    let c = cluster(&[2, 2]);
    let mut pods = batch(&[pod(1000, GpuDemand::Whole { count: 2 }); 3]);
    for p in &mut pods {
        p.gang = Some(7);
    }
    pods.push(BatchPod {
        demand: pod(1000, GpuDemand::Whole { count: 1 }),
        priority: 0,
        gang: None,
        elastic: false,
    });
    let plan = plan(&c, &pods, &PlanOptions::default()).unwrap();
    assert!(
        plan.placements[..3].iter().all(Option::is_none),
        "{:?}",
        plan.placements
    );
    assert!(plan.placements[3].is_some());
    assert!(
        plan.reasons[0]
            .as_deref()
            .unwrap()
            .contains("only 2 of its 3 replicas")
    );
}

#[test]
fn priority_wins_scarce_capacity() {
    let c = cluster(&[1]);
    let mut pods = batch(&[pod(1000, GpuDemand::Whole { count: 1 }); 2]);
    pods[1].priority = 10;
    let plan = plan(&c, &pods, &PlanOptions::default()).unwrap();
    assert!(plan.placements[1].is_some() && plan.placements[0].is_none());
}

#[test]
fn pack_touches_fewer_nodes_than_spread() {
    let c = cluster(&[8, 8, 8, 8]);
    let pods = batch(&[pod(2000, GpuDemand::Whole { count: 1 }); 8]);
    let nodes_used = |objective| {
        let plan = plan(&c, &pods, &opts(objective, Backend::default())).unwrap();
        assert_eq!(plan.placed(), 8);
        let mut used: Vec<usize> = plan.placements.iter().flatten().map(|at| at.node).collect();
        used.sort_unstable();
        used.dedup();
        used.len()
    };
    assert_eq!(nodes_used(Objective::Pack), 1);
    assert_eq!(nodes_used(Objective::Spread), 4);
}

#[test]
fn shadow_prices_mark_the_scarce_resource() {
    // GPUs are scarce (1 per node for 3 GPU pods); CPU is plentiful.
    let c = cluster(&[1, 1]);
    let pods = batch(&[pod(1000, GpuDemand::Whole { count: 1 }); 3]);
    let plan = plan(&c, &pods, &opts(Objective::MaxPlaced, Backend::Clarabel)).unwrap();
    let prices = plan.prices.expect("clarabel reports duals");
    let p = &prices[0];
    assert!(p.gpu_per_milli + p.per_device > 1e-4, "{p:?}");
    assert!(p.cpu_per_milli < 1e-6, "{p:?}");
}

#[test]
fn oversized_quantities_are_rejected_before_the_solver() {
    let c = cluster(&[1]);
    let pods = batch(&[pod(MAX_QUANTITY + 1, GpuDemand::None)]);
    let err = plan(&c, &pods, &PlanOptions::default()).unwrap_err();
    assert!(err.to_string().contains("pod 0: cpu request"), "{err}");
    let zero = PlanOptions {
        time_limit: Duration::ZERO,
        ..PlanOptions::default()
    };
    assert_eq!(plan(&c, &[], &zero).unwrap_err(), PlanError::NoTime);
}

#[test]
fn offline_bound_never_exceeds_capacity_or_arrivals() {
    let c = cluster(&[8, 4, 2]);
    let arrivals = vec![
        pod(1000, GpuDemand::Whole { count: 4 }),
        pod(1000, GpuDemand::Shared { milli: 700 }),
        pod(1000, GpuDemand::Whole { count: 8 }),
        pod(1000, GpuDemand::Whole { count: 2 }),
    ];
    let b = offline_bound(
        &c,
        &arrivals,
        &[50, 100, 130],
        Backend::default(),
        Duration::from_secs(5),
    )
    .unwrap();
    let cap = c.gpu_capacity_milli() as f64;
    for (x, milli) in &b.points {
        assert!(
            *milli <= cap + 1e-6 && *milli <= cap * *x as f64 / 100.0 + 1e-6,
            "{x}: {milli}"
        );
    }
    // All four arrive by 130%: 8 + 4 + 2 whole GPUs fill every device, the 0.7 share is left out.
    assert!((b.points[2].1 - 14_000.0).abs() < 1.0, "{:?}", b.points);
    assert!((b.points[1].1 - 12_700.0).abs() < 1.0, "{:?}", b.points);
}

fn arb_pod() -> impl Strategy<Value = BatchPod> {
    (
        0u64..40_000,
        prop_oneof![
            Just(GpuDemand::None),
            (1u32..1000).prop_map(|milli| GpuDemand::Shared { milli }),
            (1u32..=8).prop_map(|count| GpuDemand::Whole { count }),
        ],
        0i32..3,
        prop_oneof![Just(None), (0u32..3).prop_map(Some)],
    )
        .prop_map(|(cpu, gpu, priority, gang)| BatchPod {
            demand: pod(cpu, gpu),
            priority,
            gang,
            elastic: false,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// No plan ever exceeds a capacity, gangs are whole, and the bound holds.
    #[test]
    fn plans_respect_capacity_gangs_and_bound(
        gpus in prop::collection::vec(prop_oneof![Just(0usize), Just(1), Just(2), Just(4), Just(8)], 1..6),
        pods in prop::collection::vec(arb_pod(), 0..40),
        objective in prop_oneof![Just(Objective::MaxPlaced), Just(Objective::Pack), Just(Objective::Spread)],
    ) {
        let c = cluster(&gpus);
        for backend in Backend::all() {
            let plan = plan(&c, &pods, &opts(objective, backend)).unwrap();
            let state = apply(&c, &pods, &plan);
            for n in state.nodes() {
                prop_assert!(n.cpu_free <= n.cpu_capacity && n.gpu_free().iter().all(|&g| g <= 1000));
            }
            for g in 0..3u32 {
                let members: Vec<_> = pods.iter().zip(&plan.placements).filter(|(p, _)| p.gang == Some(g)).collect();
                let placed = members.iter().filter(|(_, at)| at.is_some()).count();
                prop_assert!(placed == 0 || placed == members.len(), "gang {} half placed", g);
            }
            prop_assert!(plan.value <= plan.bound + 1e-6, "{} > {}", plan.value, plan.bound);
            prop_assert_eq!(plan.reasons.iter().filter(|r| r.is_some()).count(), pods.len() - plan.placed());
        }
    }
}
