//! One replay of a pod list against a cluster, following the FGD paper's protocol
//! (`traces/README-benchmark-notes.md` §3): shuffle, tune the total GPU request to 130% of
//! capacity, fix a random tie-break rank per node, then place each pod at once or fail it.
//! Optionally each pod chooses only among the nodes kube-scheduler's node sampling would have
//! sent the extender ([`ReplayOptions::sampling`], `super::sampling`), or a pod that fits
//! nowhere may have pods moved to make room for it ([`ReplayOptions::consolidation`],
//! `super::consolidate`).

use crate::model::frag::TargetWorkload;
use crate::model::{Cluster, Placement, PodDemand};
use std::sync::Arc;

use super::consolidate::{Consolidator, MoveBudget};
use super::place::Placer;
pub use super::place::{PRICE_EVERY, Sample};
use super::sampling::{KubeFilter, NodeSampling};
use crate::policy::learned::PolicyFile;
use crate::policy::{Context, Policy, Unplaced, arrival_uid};
use crate::rng::Rng;

/// Arrivals are tuned to this multiple of the cluster's GPU capacity (the paper's 1.3).
pub const TUNE_RATIO: f64 = 1.3;

/// Independent random streams per purpose, so that each is fixed by the seed alone.
const STREAM_SHUFFLE: u64 = 1;
const STREAM_TUNE: u64 = 2;

/// What one replay produced.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub samples: Vec<Sample>,
    pub placed: usize,
    pub failed: usize,
    /// GPU milli requested by the pods that failed.
    pub failed_gpu_milli: u64,
    /// Fragmentation of the empty cluster (before the first pod).
    pub initial_frag: f64,
    /// Arrivals placed only after consolidation moved pods: (arrival index, pods moved).
    pub rescued: Vec<(usize, usize)>,
    /// Failed arrivals for which consolidation searched for moves.
    pub searches: usize,
    /// The longest of those searches (wall time; it decides nothing).
    pub longest_search: std::time::Duration,
}

/// Shuffle `pods` (already in name order) with `seed` and tune their total GPU request to
/// `TUNE_RATIO` x `capacity_milli`: append uniform draws while under (the last draw may
/// overshoot, as in the paper's simulator), or delete uniform pods while over.
pub fn arrivals(pods: &[PodDemand], capacity_milli: u64, seed: u64) -> Vec<PodDemand> {
    let mut list = pods.to_vec();
    Rng::derive(seed, STREAM_SHUFFLE).shuffle(&mut list);
    let target = (TUNE_RATIO * capacity_milli as f64).round() as u64;
    let mut total: u64 = list.iter().map(|p| p.gpu.total_milli()).sum();
    let mut rng = Rng::derive(seed, STREAM_TUNE);
    if total < target && pods.iter().any(|p| p.needs_gpu()) {
        // The stop test adds the drawn pod's per-GPU milli, not its total: a quirk of the
        // paper's simulator kept for fidelity.
        loop {
            let pod = pods[rng.below(pods.len())];
            if total + u64::from(pod.gpu.per_gpu_milli()) > target {
                break;
            }
            total += pod.gpu.total_milli();
            list.push(pod);
        }
    } else {
        while total > target && !list.is_empty() {
            let removed = list.remove(rng.below(list.len()));
            total -= removed.gpu.total_milli();
        }
    }
    list
}

/// The decision context of a replay of `cluster` with `seed`: the extender's, for a
/// cluster of the same node names and the same target workload.
pub fn context(cluster: &Cluster, target: &TargetWorkload, seed: u64) -> Arc<Context> {
    Arc::new(Context::new(cluster, Arc::new(target.clone()), seed))
}

/// One scheduling event of a replay, as the step hook sees it.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// Position in the arrivals; the pod's UID is [`arrival_uid`]`(index)`.
    pub index: usize,
    pub pod: &'a PodDemand,
    /// Where it went, or `None` when it failed.
    pub placed: Option<Placement>,
    /// The cluster after the event.
    pub cluster: &'a Cluster,
    pub sample: Sample,
}

/// How a replay departs from the paper's protocol; the default is the protocol itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayOptions {
    /// Which nodes each pod's decision chooses among: every feasible node (`All`, the
    /// paper's protocol), or the ones kube-scheduler's filter would find from its rotating
    /// start node.
    pub sampling: NodeSampling,
    /// What kube-scheduler counts as feasible while it samples (its own resource checks, or
    /// allot's filter, the most candidates a setting can give); no effect with
    /// `NodeSampling::All`.
    pub kube_filter: KubeFilter,
    /// The weights `learned` scores with (`--policy-file`); `None`: the embedded policy.
    pub learned: Option<Arc<PolicyFile>>,
    /// Move placed pods to make room for one that fits nowhere, within this budget
    /// (`super::consolidate`); `None` or a budget that is off: the online policy alone. Only
    /// with `NodeSampling::All`, where "fits nowhere" means no node of the cluster.
    pub consolidation: Option<MoveBudget>,
}

/// Place `arrivals` one by one on a copy of `cluster` with `policy`, recording a sample
/// after each pod. Arrival `i` is the pod with UID [`arrival_uid`]`(i)`.
pub fn replay(
    cluster: &Cluster,
    arrivals: &[PodDemand],
    policy: &mut dyn Policy,
    ctx: Arc<Context>,
) -> Outcome {
    replay_with(cluster, arrivals, policy, ctx, |_| {})
}

/// [`replay`], calling `on_step` after each event: the hook through which tests and training
/// watch a replay without a copy of its loop.
pub fn replay_with(
    cluster: &Cluster,
    arrivals: &[PodDemand],
    policy: &mut dyn Policy,
    ctx: Arc<Context>,
    on_step: impl FnMut(Step<'_>),
) -> Outcome {
    replay_with_options(
        cluster,
        arrivals,
        policy,
        ctx,
        ReplayOptions::default(),
        on_step,
    )
}

/// [`replay_with`] under `options`. With node sampling the rotating start node is part of the
/// replay's state, carried from one arrival to the next as kube-scheduler carries it.
pub fn replay_with_options(
    cluster: &Cluster,
    arrivals: &[PodDemand],
    policy: &mut dyn Policy,
    ctx: Arc<Context>,
    options: ReplayOptions,
    mut on_step: impl FnMut(Step<'_>),
) -> Outcome {
    let mut placer = Placer::new(
        cluster,
        ctx,
        (options.sampling, options.kube_filter),
        policy,
    );
    let mut out = Outcome {
        samples: Vec::with_capacity(arrivals.len()),
        initial_frag: placer.frag(),
        ..Outcome::default()
    };
    let mut arrived = 0u64;
    let mut consolidator = options
        .consolidation
        .filter(|b| !b.is_off() && options.sampling == NodeSampling::All)
        .map(|budget| Consolidator::new(cluster, budget));
    for (i, pod) in arrivals.iter().enumerate() {
        placer.price_before(i, arrivals);
        arrived += pod.gpu.total_milli();
        let decision = placer.try_place(policy, pod, &arrival_uid(i));
        let no_node = matches!(decision, Err(Unplaced::NoFeasibleNode { .. }));
        let mut placed = decision.ok();
        if let Some(c) = consolidator.as_mut() {
            if no_node && c.allowance() > 0 {
                let started = std::time::Instant::now();
                let rescue = c.make_room(&mut placer.cluster, &mut placer.decider, policy, pod, i);
                out.searches += 1;
                out.longest_search = out.longest_search.max(started.elapsed());
                if let Some(r) = rescue {
                    for n in r.moves.iter().flat_map(|m| [m.from.node, m.to.node]) {
                        placer.refresh(n);
                    }
                    placer.refresh(r.at.node);
                    out.rescued.push((i, r.moves.len()));
                    placed = Some(r.at);
                }
            }
            if let Some(at) = placed {
                c.record(i, pod, at);
            }
        }
        match placed {
            Some(_) => out.placed += 1,
            None => {
                out.failed += 1;
                out.failed_gpu_milli += pod.gpu.total_milli();
            }
        }
        let sample = placer.sample(arrived);
        out.samples.push(sample);
        on_step(Step {
            index: i,
            pod,
            placed,
            cluster: &placer.cluster,
            sample,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GpuDemand;
    use crate::policy::PolicyKind;
    use crate::policy::testkit::{cluster, pod, share, target, whole};

    #[test]
    fn tuning_reaches_the_target_from_below_and_above() {
        let c = cluster(&[8, 8]); // 16,000 milli -> target 20,800
        let few = vec![whole(1), share(500)];
        let up = arrivals(&few, c.gpu_capacity_milli(), 42);
        let total: u64 = up.iter().map(|p| p.gpu.total_milli()).sum();
        assert!(total <= 20_800 && total + 1000 > 20_800, "{total}");
        let many = vec![whole(8); 10];
        let down = arrivals(&many, c.gpu_capacity_milli(), 42);
        assert_eq!(down.len(), 2);
    }

    #[test]
    fn cpu_only_traces_are_not_inflated_forever() {
        let c = cluster(&[8]);
        let cpu = vec![pod(1000, GpuDemand::None); 3];
        assert_eq!(arrivals(&cpu, c.gpu_capacity_milli(), 1).len(), 3);
    }

    #[test]
    fn replay_is_deterministic_and_accounts_every_pod() {
        let c = cluster(&[8, 4, 2, 1]);
        let pods = vec![
            share(300),
            share(700),
            whole(1),
            whole(2),
            whole(8),
            pod(2000, GpuDemand::None),
        ];
        let t = target(&pods);
        let arr = arrivals(&pods, c.gpu_capacity_milli(), 7);
        let run = |kind: PolicyKind| {
            let mut p = kind.build(&t, 7);
            replay(&c, &arr, p.as_mut(), context(&c, &t, 7))
        };
        for kind in PolicyKind::ALL {
            let a = run(kind);
            let b = run(kind);
            assert_eq!(a.samples, b.samples, "{kind} is not deterministic");
            assert_eq!(a.placed + a.failed, arr.len());
            let last = a.samples.last().unwrap();
            assert!(last.allocated <= c.gpu_capacity_milli());
            assert_eq!(
                last.arrived,
                arr.iter().map(|p| p.gpu.total_milli()).sum::<u64>()
            );
        }
    }

    #[test]
    fn node_sampling_at_a_hundred_percent_is_the_protocol_and_below_it_is_not() {
        // 300 nodes: kube-scheduler samples from 100 nodes on.
        let gpus: Vec<usize> = [8, 4, 2, 1].into_iter().cycle().take(300).collect();
        let c = cluster(&gpus);
        let pods = vec![
            share(300),
            share(700),
            whole(1),
            whole(2),
            whole(4),
            whole(8),
        ];
        let t = target(&pods);
        let arr = arrivals(&pods, c.gpu_capacity_milli(), 11);
        let run = |kind: PolicyKind, sampling: NodeSampling| {
            let mut p = kind.build(&t, 11);
            let options = ReplayOptions {
                sampling,
                kube_filter: KubeFilter::Requests,
                learned: None,
                consolidation: None,
            };
            replay_with_options(&c, &arr, p.as_mut(), context(&c, &t, 11), options, |_| {})
        };
        for kind in PolicyKind::ALL {
            let all = run(kind, NodeSampling::All);
            let full = run(kind, NodeSampling::Percent(100));
            assert_eq!(all.samples, full.samples, "{kind}: 100 % differs from all");
            let sampled = run(kind, NodeSampling::Percent(10));
            assert_eq!(sampled.placed + sampled.failed, arr.len());
            assert_eq!(
                sampled.samples,
                run(kind, NodeSampling::Percent(10)).samples
            );
        }
        // FGD over 100 of 300 nodes does not make FGD's choices over all of them.
        let fgd_all = run(PolicyKind::Fgd, NodeSampling::All);
        let fgd_sampled = run(PolicyKind::Fgd, NodeSampling::Percent(10));
        assert_ne!(fgd_all.samples, fgd_sampled.samples);
    }

    /// Best fit that wants prices and notes, per decision, whether its context had any.
    struct Priced(Vec<bool>);

    impl Policy for Priced {
        fn name(&self) -> &'static str {
            "priced"
        }
        fn wants_prices(&self) -> bool {
            true
        }
        fn begin(&mut self, ctx: &Context, _: u64) {
            self.0.push(ctx.prices.is_some());
        }
        fn score(&mut self, _: &Cluster, _: &PodDemand, _: &[usize], out: &mut [i64]) {
            out.fill(0);
        }
    }

    #[test]
    fn a_policy_that_reads_prices_gets_them_solved_every_so_many_arrivals() {
        let c = cluster(&[8; 200]);
        let pods = vec![whole(1), share(500)];
        let arr = arrivals(&pods, c.gpu_capacity_milli(), 3);
        assert!(arr.len() > PRICE_EVERY + 10, "{}", arr.len());
        let mut p = Priced(Vec::new());
        let t = target(&pods);
        replay(&c, &arr, &mut p, context(&c, &t, 3));
        // begin() runs twice per placed decision (scoring, devices): look at the first call
        // of each arrival by counting where prices first appear.
        let first = p.0.iter().position(|&has| has).expect("prices were solved");
        assert!(p.0[..first].iter().all(|&has| !has));
        assert!(
            p.0[first..].iter().all(|&has| has),
            "prices stay once solved"
        );
        let decisions_before = first as f64;
        assert!(
            decisions_before >= PRICE_EVERY as f64,
            "no prices before arrival {PRICE_EVERY}: {first}"
        );
    }
}
