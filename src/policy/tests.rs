//! Tests of the policies: each heuristic's preferences on small clusters, the caches against fresh
//! scoring, and properties over random pods.

use proptest::prelude::*;

use super::testkit::{cluster, pod, share, target, whole};
use super::*;
use crate::model::{GpuDemand, Misfit, Placement};

fn scores(policy: &mut dyn Policy, cluster: &Cluster, pod: &PodDemand) -> Vec<i64> {
    let candidates: Vec<usize> = (0..cluster.len())
        .filter(|&i| cluster.nodes()[i].fits(pod))
        .collect();
    let mut out = vec![0; candidates.len()];
    policy.score(cluster, pod, &candidates, &mut out);
    out
}

fn place(c: &mut Cluster, node: usize, p: &PodDemand) {
    let devices = c.nodes()[node].default_devices(p.gpu).expect("fits");
    c.place(p, Placement { node, devices }).expect("fits");
}

#[test]
fn names_round_trip_and_unknown_names_list_the_valid_ones() {
    for kind in PolicyKind::ALL {
        assert_eq!(kind.name().parse::<PolicyKind>(), Ok(kind));
    }
    assert_eq!("BestFit".parse::<PolicyKind>(), Ok(PolicyKind::BestFit));
    let err = "tetris".parse::<PolicyKind>().unwrap_err().to_string();
    assert!(err.contains("tetris") && err.contains("fgd"), "{err}");
}

#[test]
fn ties_go_to_the_lowest_rank() {
    let c = cluster(&[8, 8, 8]);
    let mut decider = Decider::new(std::sync::Arc::new(Context::with_rank(vec![2, 0, 1])));
    let mut policy = GpuClustering;
    let at = decider.decide(&mut policy, &c, &share(500), "pod").unwrap();
    assert_eq!(at.node, 1);
}

#[test]
fn infeasible_pods_say_why() {
    let c = cluster(&[1]);
    let err = Decider::new(std::sync::Arc::new(Context::with_rank(vec![0])))
        .decide(&mut DotProd, &c, &whole(2), "pod")
        .unwrap_err();
    assert!(matches!(
        err,
        Unplaced::NoFeasibleNode {
            example: Some(Misfit::WholeGpus { need: 2, .. })
        }
    ));
}

#[test]
fn dotprod_prefers_the_emptier_alignment() {
    let mut c = cluster(&[8, 8]);
    place(&mut c, 0, &whole(4));
    // Node 0 has fewer idle GPUs, so its dot product with a GPU pod is smaller.
    let s = scores(&mut DotProd, &c, &whole(1));
    assert!(s[0] > s[1], "{s:?}");
    // (64000/128000 * 8000/128000 + 8000/8000 * 1000/8000) = 0.15625 -> floor(100 * (1 - 0.078125))
    assert_eq!(s[1], 92);
}

#[test]
fn clustering_groups_pods_of_a_kind() {
    let mut c = cluster(&[8, 8, 8, 8]);
    place(&mut c, 0, &share(500));
    place(&mut c, 1, &whole(1));
    place(&mut c, 2, &share(500));
    place(&mut c, 2, &whole(2));
    let s = scores(&mut GpuClustering, &c, &share(300));
    // only its kind (75) > mixed (50) > empty (25) > only other kinds (0), plus a small base
    assert!(s[0] > s[2] && s[2] > s[3] && s[3] > s[1], "{s:?}");
    assert_eq!(s[3], 25);
    assert_eq!(
        scores(&mut GpuClustering, &c, &pod(1000, GpuDemand::None)),
        vec![0; 4]
    );
}

#[test]
fn packing_fills_partial_gpus_first_and_opens_small_nodes_last() {
    let mut c = cluster(&[8, 8, 2]);
    place(&mut c, 0, &share(600));
    place(&mut c, 1, &whole(1));
    let s = scores(&mut GpuPacking, &c, &share(300));
    // node 0: partial GPU with 400 free -> 100 - 40/10 = 96; node 1: opens a free GPU -> 49;
    // node 2: idle 2-GPU node -> max(33 - 2, 2) = 31.
    assert_eq!(s, vec![96, 49, 31]);
}

#[test]
fn bestfit_scales_to_0_100() {
    let mut c = cluster(&[8, 8, 4]);
    place(&mut c, 0, &whole(4));
    let s = scores(&mut BestFit, &c, &whole(1));
    assert_eq!(s.iter().max(), Some(&100));
    assert_eq!(s.iter().min(), Some(&0));
    assert_eq!(s[1], 0);
    let equal = cluster(&[8, 8]);
    assert_eq!(scores(&mut BestFit, &equal, &whole(1)), vec![0, 0]);
}

#[test]
fn fgd_fills_the_sliver_that_fits_instead_of_cutting_a_fresh_gpu() {
    let mut c = cluster(&[2, 2]);
    place(&mut c, 0, &share(700)); // node 0 GPUs: [300, 1000]
    let t = target(&[share(300), whole(1)]);
    let mut fgd = Fgd::new(t);
    let s = scores(&mut fgd, &c, &share(300));
    assert!(s[0] > s[1], "{s:?}");
    let at = Decider::new(std::sync::Arc::new(Context::with_rank(vec![0, 1])))
        .decide(&mut fgd, &c, &share(300), "pod")
        .unwrap();
    assert_eq!(
        at,
        Placement {
            node: 0,
            devices: DeviceSet::single(0)
        }
    );
}

#[test]
fn fgd_cache_follows_node_changes() {
    let mut c = cluster(&[2, 2]);
    let t = target(&[share(500), whole(2)]);
    let mut fgd = Fgd::new(t.clone());
    let p = share(500);
    let first = scores(&mut fgd, &c, &p);
    place(&mut c, 0, &share(500));
    let cached = scores(&mut fgd, &c, &p);
    let fresh = scores(&mut Fgd::new(t), &c, &p);
    assert_eq!(cached, fresh);
    assert_ne!(first, cached);
}

#[test]
fn scores_kept_by_node_shape_survive_a_rebase_and_equal_fresh_ones() {
    let t = target(&[share(500), whole(2), share(250)]);
    let pods = [share(500), whole(1), pod(4_000, GpuDemand::None)];
    let snapshot = |on_1: PodDemand, on_3: PodDemand| {
        let mut c = cluster(&[2, 2, 4, 4]);
        place(&mut c, 1, &on_1);
        place(&mut c, 3, &on_3);
        c
    };
    // Each snapshot is built afresh: node 1 has the same generation in all three, in
    // different states, so a per-index cache kept across them would answer wrongly.
    let snapshots = [
        snapshot(share(500), whole(2)),
        snapshot(whole(1), share(250)),
        snapshot(share(500), share(250)),
    ];
    let mut fgd = Fgd::new(t.clone());
    let mut learned = learned::embedded(&t);
    for c in &snapshots {
        fgd.rebase();
        learned.rebase();
        for p in &pods {
            assert_eq!(
                scores(&mut fgd, c, p),
                scores(&mut Fgd::new(t.clone()), c, p)
            );
            let fresh = scores(&mut learned::embedded(&t), c, p);
            assert_eq!(scores(&mut learned, c, p), fresh);
        }
    }
}

#[test]
fn outside_its_support_learned_scores_exactly_as_fgd() {
    use learned::{PolicyFile, Provenance, Support, WorkloadMix};
    let t = target(&[share(500), whole(2), share(250)]);
    let mut c = cluster(&[2, 4, 8, 8]);
    place(&mut c, 1, &share(250));
    place(&mut c, 2, &whole(2));
    let mut w = learned::embedded_file().weights.clone();
    w[1] = 0.5; // a correction far larger than FGD's levels: it changes the scores
    let file = PolicyFile::new(w, 100, Provenance::default());
    let mix = WorkloadMix::of(&t);
    let inside = Support::spanning(&[mix], 0.05);
    let mut far = mix;
    far.0[2] += 0.2; // the trained workloads had 20 points more multi-GPU demand
    let outside = Support::spanning(&[far], 0.05);
    for p in [share(500), whole(1), share(250)] {
        let fgd = scores(&mut Fgd::new(t.clone()), &c, &p);
        let plain = scores(&mut learned::Learned::new(&file, t.clone()), &c, &p);
        assert_ne!(
            plain, fgd,
            "the correction must matter for this test to test anything"
        );
        let within = file.clone().with_support(inside.clone());
        let mut l = learned::Learned::new(&within, t.clone());
        assert!(l.outside().is_none());
        assert_eq!(
            scores(&mut l, &c, &p),
            plain,
            "inside: the corrections apply"
        );
        let beyond = file.clone().with_support(outside.clone());
        let mut l = learned::Learned::new(&beyond, t.clone());
        assert_eq!(l.outside().map(|o| o.stat), Some("multi_gpu_demand"));
        assert_eq!(scores(&mut l, &c, &p), fgd, "outside: FGD's own scores");
    }
}

#[test]
fn allocated_strategies_mirror_each_other() {
    let mut c = cluster(&[8, 8]);
    place(&mut c, 0, &whole(4));
    let least = scores(&mut Allocated::new(AllocatedMode::Least), &c, &whole(1));
    let most = scores(&mut Allocated::new(AllocatedMode::Most), &c, &whole(1));
    assert!(least[1] > least[0] && most[0] > most[1]);
}

fn arb_pod() -> impl Strategy<Value = PodDemand> {
    (
        0u64..40_000,
        prop_oneof![
            Just(GpuDemand::None),
            (1u32..1000).prop_map(|milli| GpuDemand::Shared { milli }),
            (1u32..=8).prop_map(|count| GpuDemand::Whole { count }),
        ],
    )
        .prop_map(|(cpu, gpu)| pod(cpu, gpu))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the policy and the arrivals, no placement ever exceeds a node's capacity.
    #[test]
    fn no_policy_ever_overbooks(
        gpus in prop::collection::vec(prop_oneof![Just(0usize), Just(1), Just(2), Just(4), Just(8)], 1..6),
        pods in prop::collection::vec(arb_pod(), 1..60),
        seed in 0u64..1000,
    ) {
        let t = target(&pods);
        for kind in PolicyKind::ALL {
            let mut c = cluster(&gpus);
            let mut policy = kind.build(&t, seed);
            let mut decider = Decider::new(std::sync::Arc::new(Context::with_rank((0..c.len() as u32).collect())));
            for p in &pods {
                if let Ok(at) = decider.decide(policy.as_mut(), &c, p, "pod") {
                    prop_assert!(c.place(p, at).is_ok(), "{kind} overbooked");
                }
            }
            for n in c.nodes() {
                prop_assert!(n.cpu_free <= n.cpu_capacity);
                prop_assert!(n.gpu_free().iter().all(|&g| g <= 1000));
            }
            let idle: u64 = c.nodes().iter().map(|n| u64::from(n.idle_gpu_milli())).sum();
            prop_assert_eq!(c.gpu_allocated_milli() + idle, c.gpu_capacity_milli());
        }
    }
}

#[test]
fn with_a_device_cost_table_a_share_takes_the_device_the_table_chooses() {
    use learned::costs::{DeviceCosts, LEVELS, WEIGHT};
    use learned::features::DEVICE_COST;
    use learned::{PolicyFile, Provenance};
    let mut c = cluster(&[2, 2]);
    place(&mut c, 0, &share(700)); // node 0 GPUs: [300, 1000]
    let t = target(&[share(300), whole(1)]);
    let decide = |file: &PolicyFile| {
        let mut l = learned::Learned::new(file, t.clone());
        Decider::new(std::sync::Arc::new(Context::with_rank(vec![0, 1])))
            .decide(&mut l, &c, &share(300), "pod")
            .unwrap()
    };
    let table = |full: f64| {
        let mut values: Vec<f64> = (0..LEVELS).map(|k| k as f64 * 10.0).collect();
        values[0] = full;
        DeviceCosts { values }
    };
    let with = |t: DeviceCosts| {
        let mut f = PolicyFile::fgd_start(Provenance::default());
        f.weights[DEVICE_COST] = WEIGHT;
        f.device_costs = Some(t);
        f.hash = f.content_hash();
        f
    };
    let fgd = decide(&PolicyFile::fgd_start(Provenance::default()));
    assert_eq!(
        (fgd.node, fgd.devices),
        (0, DeviceSet::single(0)),
        "FGD fills the sliver"
    );
    // Best fit by the table: the same.
    let fit = decide(&with(table(0.0)));
    assert_eq!((fit.node, fit.devices), (0, DeviceSet::single(0)));
    // A full device made dear: the share opens an idle device instead, the fullest node's.
    let spread = decide(&with(table(10_000.0)));
    assert_eq!((spread.node, spread.devices), (0, DeviceSet::single(1)));
    // A table at weight 0 is not in force.
    let mut off = with(table(10_000.0));
    off.weights[DEVICE_COST] = 0.0;
    off.hash = off.content_hash();
    assert_eq!(decide(&off).devices, DeviceSet::single(0));
}
