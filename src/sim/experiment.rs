//! Many replays: every policy x every seed on one trace, spread over threads, each replay
//! independent and deterministic in its seed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::leftover::{Leftover, LeftoverAt};
use super::metrics::{Band, MeanSd, RunCurves};
use super::replay::{ReplayOptions, arrivals, context, replay_with_options};
use crate::alloc::{Backend, OfflineBound, SolveError, offline_bound};
use crate::model::frag::TargetWorkload;
use crate::model::{Cluster, PodDemand, PodShape};
use crate::policy::PolicyKind;
use crate::sim::parallel::run_indexed;

/// Time limit of one offline-bound LP; the class-aggregated LP of a whole openb replay solves
/// in well under a second.
const BOUND_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The workload to replay: pods in name order with their model-constraint text.
#[derive(Debug, Clone)]
pub struct Workload<'a> {
    pub cluster: &'a Cluster,
    pub pods: &'a [PodDemand],
    pub specs: &'a [String],
}

impl Workload<'_> {
    /// The fragmentation target: the original (un-tuned) pods' most frequent classes.
    pub fn target(&self) -> TargetWorkload {
        let mut spec_of: HashMap<PodShape, &str> = HashMap::new();
        for (pod, spec) in self.pods.iter().zip(self.specs) {
            spec_of.entry(pod.shape()).or_insert(spec);
        }
        let shapes: Vec<PodShape> = self.pods.iter().map(PodDemand::shape).collect();
        TargetWorkload::from_pods(&shapes, |s| {
            spec_of.get(s).map_or_else(String::new, |t| t.to_string())
        })
    }
}

/// What consolidation did in one replay; all zero without it. "At 100" counts the arrivals
/// up to the discretisation point x = 100 (arrived rounds to at most 100 % of capacity).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MoveStats {
    /// Pods moved in the whole replay.
    pub moves: usize,
    pub moves_at_100: usize,
    pub placed_at_100: usize,
    /// Arrivals placed only thanks to moves.
    pub rescued_at_100: usize,
    /// Failed arrivals for which a search ran, and the longest search (wall time).
    pub searches: usize,
    pub longest_search: Duration,
}

impl MoveStats {
    /// Moves up to 100 % arrived as a percentage of the pods placed by then.
    pub fn moves_pct_at_100(&self) -> f64 {
        100.0 * self.moves_at_100 as f64 / self.placed_at_100.max(1) as f64
    }
}

/// One replay's results.
#[derive(Debug, Clone)]
pub struct SeedRun {
    pub seed: u64,
    pub arrivals: usize,
    pub placed: usize,
    pub failed: usize,
    pub failed_gpu_milli: u64,
    pub curves: RunCurves,
    pub elapsed: Duration,
    pub moves: MoveStats,
    /// Where the unallocated GPU lay at the report point, summed over the events the table's
    /// figure averages (`None` if not asked for, or the replay never got near it).
    pub leftover: Option<Leftover>,
}

/// All seeds of one policy.
#[derive(Debug, Clone)]
pub struct PolicyResult {
    pub policy: PolicyKind,
    pub runs: Vec<SeedRun>,
}

impl PolicyResult {
    /// Mean and sd over seeds of the unallocated GPU % at arrived = `x`%.
    pub fn unallocated_at(&self, x: usize) -> Option<MeanSd> {
        self.stat(x, |r| &r.curves.unallocated_pct)
    }

    pub fn frag_at(&self, x: usize) -> Option<MeanSd> {
        self.stat(x, |r| &r.curves.frag_pct)
    }

    pub fn frag_ratio_at(&self, x: usize) -> Option<MeanSd> {
        self.stat(x, |r| &r.curves.frag_ratio_pct)
    }

    pub fn failed(&self) -> Option<MeanSd> {
        MeanSd::of(
            &self
                .runs
                .iter()
                .map(|r| r.failed as f64)
                .collect::<Vec<_>>(),
        )
    }

    fn stat(&self, x: usize, curve: impl Fn(&SeedRun) -> &super::metrics::Curve) -> Option<MeanSd> {
        let values: Vec<f64> = self
            .runs
            .iter()
            .filter_map(|r| curve(r).get(x).copied().flatten())
            .collect();
        MeanSd::of(&values)
    }

    /// Median and quartiles over seeds of the unallocated GPU % curve.
    pub fn unallocated_band(&self) -> Band {
        Band::of(
            &self
                .runs
                .iter()
                .map(|r| &r.curves.unallocated_pct)
                .collect::<Vec<_>>(),
        )
    }

    /// Mean wall time of one replay.
    pub fn mean_elapsed(&self) -> Duration {
        let total: Duration = self.runs.iter().map(|r| r.elapsed).sum();
        total / self.runs.len().max(1) as u32
    }
}

/// Progress of an experiment, reported after each replay.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub policy: PolicyKind,
    pub seed: u64,
}

/// Replay every policy over every seed with `threads` workers.
pub fn run_experiment(
    workload: &Workload<'_>,
    policies: &[PolicyKind],
    seeds: &[u64],
    threads: usize,
    progress: &(dyn Fn(Progress) + Sync),
) -> Vec<PolicyResult> {
    run_experiment_with(
        workload,
        policies,
        seeds,
        threads,
        ReplayOptions::default(),
        None,
        progress,
    )
}

/// [`run_experiment`] with every replay under `options` (e.g. kube-scheduler's node sampling),
/// taking each run's [`Leftover`] at `leftover_at` (% arrived) if asked, averaged over the
/// events the curves average there.
pub fn run_experiment_with(
    workload: &Workload<'_>,
    policies: &[PolicyKind],
    seeds: &[u64],
    threads: usize,
    options: ReplayOptions,
    leftover_at: Option<usize>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Vec<PolicyResult> {
    let target = workload.target();
    let capacity = workload.cluster.gpu_capacity_milli();
    let jobs: Vec<(usize, u64)> = (0..policies.len())
        .flat_map(|p| seeds.iter().map(move |&s| (p, s)))
        .collect();
    let job = |t: usize| {
        let (p, seed) = jobs[t];
        let started = Instant::now();
        let arr = arrivals(workload.pods, capacity, seed);
        let ctx = context(workload.cluster, &target, seed);
        let ctx = std::sync::Arc::new((*ctx).clone().with_learned(options.learned.clone()));
        let mut policy = policies[p].build_for(&ctx);
        let x_of = |arrived: u64| (arrived as f64 / capacity.max(1) as f64 * 100.0).round();
        let up_to_100 = |arrived: u64| x_of(arrived) <= 100.0;
        let mut placed_at_100 = 0;
        let mut leftover = leftover_at.map(LeftoverAt::new);
        let out = replay_with_options(
            workload.cluster,
            &arr,
            policy.as_mut(),
            ctx,
            options.clone(),
            |step| {
                if step.placed.is_some() && up_to_100(step.sample.arrived) {
                    placed_at_100 += 1;
                }
                if let Some(l) = &mut leftover {
                    l.record(x_of(step.sample.arrived) as usize, step.cluster, &target);
                }
            },
        );
        let rescued_at_100: Vec<usize> = out
            .rescued
            .iter()
            .filter(|(i, _)| up_to_100(out.samples[*i].arrived))
            .map(|(_, moves)| *moves)
            .collect();
        let moves = MoveStats {
            moves: out.rescued.iter().map(|(_, m)| m).sum(),
            moves_at_100: rescued_at_100.iter().sum(),
            placed_at_100,
            rescued_at_100: rescued_at_100.len(),
            searches: out.searches,
            longest_search: out.longest_search,
        };
        let run = SeedRun {
            seed,
            arrivals: arr.len(),
            placed: out.placed,
            failed: out.failed,
            failed_gpu_milli: out.failed_gpu_milli,
            curves: RunCurves::from_samples(&out.samples, capacity),
            elapsed: started.elapsed(),
            moves,
            leftover: leftover.and_then(LeftoverAt::finish),
        };
        (p, run)
    };
    let finished = |t: usize, done: usize| {
        let (p, seed) = jobs[t];
        progress(Progress {
            done,
            total: jobs.len(),
            policy: policies[p],
            seed,
        });
    };
    let mut runs = run_indexed(jobs.len(), threads, job, finished);
    runs.sort_by_key(|(p, r)| (*p, r.seed));
    policies
        .iter()
        .enumerate()
        .map(|(i, &policy)| PolicyResult {
            policy,
            runs: runs
                .iter()
                .filter(|(p, _)| *p == i)
                .map(|(_, r)| r.clone())
                .collect(),
        })
        .collect()
}

/// The offline LP bound (see [`crate::alloc::offline_bound`]) of each seed's arrivals at each
/// of `points` (% arrived), seeds spread over `threads` workers.
pub fn offline_bounds(
    workload: &Workload<'_>,
    seeds: &[u64],
    points: &[usize],
    threads: usize,
) -> Result<Vec<(u64, OfflineBound)>, SolveError> {
    let capacity = workload.cluster.gpu_capacity_milli();
    let bounds = run_indexed(
        seeds.len(),
        threads,
        |i| {
            let arr = arrivals(workload.pods, capacity, seeds[i]);
            let bound = offline_bound(
                workload.cluster,
                &arr,
                points,
                Backend::default(),
                BOUND_TIME_LIMIT,
            );
            bound.map(|b| (seeds[i], b))
        },
        |_, _| {},
    );
    let mut out = bounds.into_iter().collect::<Result<Vec<_>, _>>()?;
    out.sort_by_key(|(seed, _)| *seed);
    Ok(out)
}
