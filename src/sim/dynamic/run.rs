//! Many dynamic replays: every policy x every seed on one trace at one load, spread over
//! threads. Per seed: the node subset, the synthesized times (for a trace without them), the
//! tie-break order and every random draw, all fixed by the seed alone.

use std::time::{Duration, Instant};

use super::load::{Load, LoadError, jobs_from_lifetimes, node_subset, synthesize_lifetimes};
use super::summary::{RunSummary, WaitWindow, grid, wait_grid};
use super::{Job, MaxWait, TimeSample, replay_dynamic};
use crate::model::Cluster;
use crate::policy::PolicyKind;
use crate::sim::experiment::{Progress, Workload};
use crate::sim::parallel::run_indexed;
use crate::sim::replay::{ReplayOptions, context};
use crate::sim::trace::times::Lifetime;

/// Points of the over-time grid (101 samples from the first arrival to the last).
pub const GRID_POINTS: usize = 100;

/// What to replay and how.
#[derive(Debug, Clone)]
pub struct DynamicSetup<'a> {
    pub workload: Workload<'a>,
    /// The trace's own times, row by row; `None`: drawn per seed from `donor`.
    pub lifetimes: Option<&'a [Lifetime]>,
    /// Times to draw from for a trace without them (the embedded openb default's).
    pub donor: &'a [Lifetime],
    pub load: Load,
    pub max_wait: MaxWait,
    pub options: ReplayOptions,
}

/// One dynamic replay's results.
#[derive(Debug, Clone)]
pub struct DynamicRun {
    pub seed: u64,
    pub summary: RunSummary,
    /// GPU capacity of the seed's node subset, milli.
    pub capacity: u64,
    pub grid: Vec<TimeSample>,
    /// The waits of the pods placed after waiting in each grid interval (same length as
    /// `grid`; see [`wait_grid`]).
    pub waits: Vec<WaitWindow>,
    pub elapsed: Duration,
}

/// All seeds of one policy.
#[derive(Debug, Clone)]
pub struct DynamicResult {
    pub policy: PolicyKind,
    pub runs: Vec<DynamicRun>,
}

/// What seed `seed` replays of `setup`'s workload at its load: its node subset and its jobs (the trace's times compressed, or times drawn with the seed for a trace without them).
/// The one place a dynamic replay's input is made: `allot simulate --dynamic` and the policy
/// search of `allot train --dynamic` (`learn::search::dynamic`) both come here.
pub fn seed_jobs(setup: &DynamicSetup<'_>, seed: u64) -> Result<(Cluster, Vec<Job>), LoadError> {
    let (cluster, pods) = (setup.workload.cluster, setup.workload.pods);
    let drawn;
    let times = match setup.lifetimes {
        Some(t) => t,
        None => {
            drawn = synthesize_lifetimes(pods.len(), setup.donor, seed)?;
            &drawn[..]
        }
    };
    let jobs = jobs_from_lifetimes(pods, times, setup.load.time_scale)?;
    Ok((node_subset(cluster, setup.load.nodes_fraction, seed), jobs))
}

/// Replay every policy over every seed with `threads` workers.
pub fn run_dynamic(
    setup: &DynamicSetup<'_>,
    policies: &[PolicyKind],
    seeds: &[u64],
    threads: usize,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<DynamicResult>, LoadError> {
    setup.load.validate()?;
    let target = setup.workload.target();
    let pods = setup.workload.pods;
    let requested: u64 = pods.iter().map(|p| p.gpu.total_milli()).sum();
    // Jobs per seed first (cheap, and any error is reported before replays start).
    let mut per_seed = Vec::with_capacity(seeds.len());
    for &seed in seeds {
        let (cluster, jobs) = seed_jobs(setup, seed)?;
        per_seed.push((seed, cluster, jobs));
    }
    let tasks: Vec<(usize, usize)> = (0..policies.len())
        .flat_map(|p| (0..seeds.len()).map(move |s| (p, s)))
        .collect();
    let job = |t: usize| {
        let (p, s) = tasks[t];
        let started = Instant::now();
        let (seed, cluster, jobs) = &per_seed[s];
        let ctx = context(cluster, &target, *seed);
        let ctx = std::sync::Arc::new((*ctx).clone().with_learned(setup.options.learned.clone()));
        let mut policy = policies[p].build_for(&ctx);
        let out = replay_dynamic(
            cluster,
            jobs,
            policy.as_mut(),
            ctx,
            &setup.options,
            setup.max_wait,
        );
        let capacity = cluster.gpu_capacity_milli();
        let run = DynamicRun {
            seed: *seed,
            summary: RunSummary::of(&out, jobs.len(), requested, capacity),
            capacity,
            grid: grid(&out, GRID_POINTS),
            waits: wait_grid(&out, GRID_POINTS),
            elapsed: started.elapsed(),
        };
        (p, run)
    };
    let finished = |t: usize, done: usize| {
        let (p, s) = tasks[t];
        progress(Progress {
            done,
            total: tasks.len(),
            policy: policies[p],
            seed: per_seed[s].0,
        });
    };
    let mut runs = run_indexed(tasks.len(), threads, job, finished);
    runs.sort_by_key(|(p, r)| (*p, r.seed));
    Ok(policies
        .iter()
        .enumerate()
        .map(|(i, &policy)| DynamicResult {
            policy,
            runs: runs
                .iter()
                .filter(|(p, _)| *p == i)
                .map(|(_, r)| r.clone())
                .collect(),
        })
        .collect())
}
