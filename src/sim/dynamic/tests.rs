//! The dynamic replay on hand-built traces: a departure lets a queued pod in, FIFO retry
//! order, no head-of-line blocking, timeouts, determinism of every policy, the load knobs.

use super::*;
use crate::policy::PolicyKind;
use crate::policy::testkit::{cluster, share, target, whole};
use crate::sim::replay::context;
use crate::sim::trace::times::Lifetime;

fn job(pod: PodDemand, arrive_s: u64, run_s: u64) -> Job {
    Job {
        pod,
        arrive_ms: arrive_s * 1000,
        run_ms: run_s * 1000,
    }
}

fn run(
    c: &Cluster,
    jobs: &[Job],
    kind: PolicyKind,
    max_wait: MaxWait,
    seed: u64,
) -> DynamicOutcome {
    let pods: Vec<PodDemand> = jobs.iter().map(|j| j.pod).collect();
    let t = target(&pods);
    let ctx = context(c, &t, seed);
    let mut policy = kind.build_for(&ctx);
    replay_dynamic(
        c,
        jobs,
        policy.as_mut(),
        ctx,
        &ReplayOptions::default(),
        max_wait,
    )
}

const MINUTE: MaxWait = MaxWait::Millis(60_000);

#[test]
fn a_departure_lets_a_queued_pod_in() {
    // One 2-GPU node: a 2-GPU pod runs 0..10 s; a 1-GPU pod arriving at 1 s waits 9 s.
    let c = cluster(&[2]);
    let jobs = [job(whole(2), 0, 10), job(whole(1), 1, 5)];
    let out = run(&c, &jobs, PolicyKind::Fgd, MINUTE, 42);
    assert_eq!((out.placed, out.failed, out.still_waiting), (2, 0, 0));
    assert_eq!(out.waits_ms, vec![0, 9_000]);
    let at_1s = out.samples.iter().find(|s| s.t_ms == 1_000).unwrap();
    assert_eq!((at_1s.waiting, at_1s.allocated), (1, 2000));
    let at_10s = out.samples.iter().find(|s| s.t_ms == 10_000).unwrap();
    assert_eq!((at_10s.waiting, at_10s.allocated), (0, 1000));
    assert_eq!(out.samples.last().unwrap().allocated, 0, "everyone left");
    assert_eq!(out.horizon_ms, 1_000);
}

#[test]
fn the_queue_is_retried_in_arrival_order() {
    // The node is full until 10 s; then only one of the two waiting 1-GPU pods fits, and it
    // is the one that arrived first (arrival 1, not arrival 2, which comes later in time).
    let c = cluster(&[1]);
    let jobs = [
        job(whole(1), 0, 10),
        job(whole(1), 2, 10),
        job(whole(1), 3, 10),
    ];
    let out = run(&c, &jobs, PolicyKind::BestFit, MaxWait::Forever, 42);
    assert_eq!(out.placed, 3);
    // Placement order: arrival 0 at once, arrival 1 after 8 s, arrival 2 after 17 s.
    assert_eq!(out.waits_ms, vec![0, 8_000, 17_000]);
}

#[test]
fn a_newcomer_that_fits_does_not_wait_behind_the_queue() {
    // A 2-GPU pod waits for the busy node; a share arriving later fits the free GPU at once.
    let c = cluster(&[2]);
    let jobs = [
        job(whole(1), 0, 10),
        job(whole(2), 1, 5),
        job(share(500), 2, 5),
    ];
    let out = run(&c, &jobs, PolicyKind::Fgd, MaxWait::Forever, 42);
    assert_eq!(out.waits_ms[..2], [0, 0]);
    assert_eq!(out.placed, 3, "the 2-GPU pod gets in once both have left");
}

#[test]
fn a_pod_that_waits_past_the_timeout_fails() {
    let c = cluster(&[1]);
    let jobs = [job(whole(1), 0, 120), job(whole(1), 1, 10)];
    let out = run(&c, &jobs, PolicyKind::Fgd, MINUTE, 42);
    assert_eq!((out.placed, out.failed, out.failed_gpu_milli), (1, 1, 1000));
    let failed_at = out.samples.iter().find(|s| s.failed == 1).unwrap();
    assert_eq!(failed_at.t_ms, 61_000, "arrival at 1 s + 60 s");
    // A departure at the very deadline lets the pod in instead.
    let jobs = [job(whole(1), 0, 61), job(whole(1), 1, 10)];
    let out = run(&c, &jobs, PolicyKind::Fgd, MINUTE, 42);
    assert_eq!((out.placed, out.failed), (2, 0));
    // No waiting at all: the static protocol's rule.
    let out = run(&c, &jobs, PolicyKind::Fgd, MaxWait::Millis(0), 42);
    assert_eq!((out.placed, out.failed), (1, 1));
}

#[test]
fn forever_leaves_the_unplaceable_waiting() {
    let c = cluster(&[1]);
    let jobs = [job(whole(2), 0, 10)];
    let out = run(&c, &jobs, PolicyKind::Fgd, MaxWait::Forever, 42);
    assert_eq!((out.placed, out.failed, out.still_waiting), (0, 0, 1));
}

fn busy_jobs() -> Vec<Job> {
    let shapes = [
        share(300),
        share(700),
        whole(1),
        whole(2),
        whole(4),
        share(500),
    ];
    (0..300)
        .map(|i| {
            job(
                shapes[i % shapes.len()],
                (i as u64 * 7) % 400,
                20 + (i as u64 * 13) % 90,
            )
        })
        .collect()
}

#[test]
fn every_policy_is_deterministic_and_accounts_every_pod() {
    let c = cluster(&[8, 4, 2, 1]);
    let jobs = busy_jobs();
    for kind in PolicyKind::ALL {
        let a = run(&c, &jobs, kind, MINUTE, 7);
        let b = run(&c, &jobs, kind, MINUTE, 7);
        assert_eq!(a.samples, b.samples, "{kind} is not deterministic");
        assert_eq!(a.waits_ms, b.waits_ms);
        assert_eq!(a.placed + a.failed + a.still_waiting, jobs.len(), "{kind}");
        assert!(
            a.failed > 0 && a.waits_ms.iter().any(|&w| w > 0),
            "{kind}: not loaded"
        );
        let cap = c.gpu_capacity_milli();
        assert!(a.samples.iter().all(|s| s.allocated <= cap));
        assert_eq!(a.samples.last().map(|s| s.allocated), Some(0));
    }
}

#[test]
fn time_scale_compresses_arrivals_and_keeps_durations() {
    let times = [
        Lifetime {
            created: 100,
            deleted: 400,
        },
        Lifetime {
            created: 50,
            deleted: 60,
        },
    ];
    let jobs = jobs_from_lifetimes(&[whole(1), share(500)], &times, 10.0).unwrap();
    assert_eq!((jobs[0].arrive_ms, jobs[0].run_ms), (0, 10_000));
    assert_eq!((jobs[1].arrive_ms, jobs[1].run_ms), (5_000, 300_000));
    assert!(
        Load {
            time_scale: 0.5,
            nodes_fraction: 1.0
        }
        .validate()
        .is_err()
    );
    assert!(
        Load {
            time_scale: 2.0,
            nodes_fraction: 0.0
        }
        .validate()
        .is_err()
    );
    assert!(
        Load {
            time_scale: f64::NAN,
            nodes_fraction: 1.0
        }
        .validate()
        .is_err()
    );
}

#[test]
fn synthesized_times_and_node_subsets_are_fixed_by_the_seed() {
    let donor: Vec<Lifetime> = (0..50)
        .map(|i| Lifetime {
            created: i * 100,
            deleted: i * 100 + 30 + i,
        })
        .collect();
    let a = synthesize_lifetimes(40, &donor, 3).unwrap();
    assert_eq!(a, synthesize_lifetimes(40, &donor, 3).unwrap());
    assert_ne!(a, synthesize_lifetimes(40, &donor, 4).unwrap());
    assert!(a.windows(2).all(|w| w[0].created <= w[1].created));
    assert!(
        a.iter()
            .all(|t| donor.iter().any(|d| d.duration() == t.duration()))
    );
    assert_eq!(synthesize_lifetimes(3, &[], 3), Err(LoadError::NoDonor));
    let c = cluster(&[8; 20]);
    let half = node_subset(&c, 0.5, 9);
    assert_eq!(half.len(), 10);
    let names = |c: &Cluster| c.nodes().iter().map(|n| n.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&half), names(&node_subset(&c, 0.5, 9)));
    assert_eq!(node_subset(&c, 0.01, 9).len(), 1);
}

#[test]
fn summary_averages_over_the_arrival_window() {
    let c = cluster(&[2]);
    // 2 GPUs busy 0..10 s, the last arrival at 20 s: mean allocation 50 %.
    let jobs = [job(whole(2), 0, 10), job(whole(1), 20, 5)];
    let out = run(&c, &jobs, PolicyKind::Fgd, MINUTE, 42);
    let s = RunSummary::of(&out, 2, 3000, c.gpu_capacity_milli());
    assert!((s.alloc_pct - 50.0).abs() < 1e-9, "{}", s.alloc_pct);
    assert_eq!((s.peak_alloc_pct, s.end_alloc_pct), (100.0, 50.0));
    assert_eq!((s.failed, s.waited), (0, 0));
    let g = grid(&out, 4);
    assert_eq!(
        g.iter().map(|p| p.t_ms).collect::<Vec<_>>(),
        [0, 5_000, 10_000, 15_000, 20_000]
    );
    assert_eq!(
        g.iter().map(|p| p.allocated).collect::<Vec<_>>(),
        [2000, 2000, 0, 0, 1000]
    );
}

#[test]
fn waits_are_binned_by_the_grid_interval_the_pod_was_placed_in() {
    // One 2-GPU node, busy 0..10 s. Two 1-GPU pods arriving at 2 s and 6 s both get in at
    // 10 s (waits 8 s and 4 s); a 2-GPU pod arriving at 20 s (the horizon) waits for them
    // to leave at 30 s, after the horizon, so it is in no interval.
    let c = cluster(&[2]);
    let jobs = [
        job(whole(2), 0, 10),
        job(whole(1), 2, 20),
        job(whole(1), 6, 20),
        job(whole(2), 20, 1),
    ];
    let out = run(&c, &jobs, PolicyKind::Fgd, MaxWait::Forever, 42);
    assert_eq!(out.placed_ms, [0, 10_000, 10_000, 30_000]);
    // Grid times 0, 5, 10, 15, 20 s; 10 s closes the interval (5 s, 10 s].
    let w = wait_grid(&out, 4);
    let empty = WaitWindow::default();
    let both = WaitWindow {
        waited: 2,
        mean_s: Some(6.0),
        max_s: Some(8.0),
    };
    assert_eq!(w, [empty, empty, both, empty, empty]);
    assert_eq!(RunSummary::of(&out, 4, 6000, 2000).waited, 3);
}

#[test]
fn a_pod_placed_on_a_grid_time_after_waiting_counts_there_not_later() {
    // The queued pod gets in at exactly 5 s, the first grid time after 0 (horizon 10 s).
    let c = cluster(&[1]);
    let jobs = [
        job(whole(1), 0, 5),
        job(whole(1), 1, 1),
        job(share(500), 10, 1),
    ];
    let out = run(&c, &jobs, PolicyKind::BestFit, MINUTE, 42);
    let w = wait_grid(&out, 2);
    assert_eq!(w.iter().map(|x| x.waited).collect::<Vec<_>>(), [0, 1, 0]);
    assert_eq!((w[1].mean_s, w[1].max_s), (Some(4.0), Some(4.0)));
}
