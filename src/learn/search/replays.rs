//! The replays that score the policy search's candidates: every candidate on every training
//! trace and seed (the same arrivals for all of them), spread over threads, summed in a fixed
//! order so the result does not depend on the thread count. Each replay is the static one
//! ([`episode::score`]) or, with a [`DynamicSetting`], the dynamic one ([`dynamic::score`]).

use super::super::{Trace, episode};
use super::dynamic::{self, DynamicSetting};
use crate::policy::learned::PolicyFile;
use crate::policy::learned::costs::DeviceCosts;
use crate::sim::replay::arrivals;

impl super::SearchOptions {
    /// The device cost table of `--search-from`'s policy, which every candidate carries: its
    /// weights are searched with the table in force.
    pub fn device_costs(&self) -> Option<&DeviceCosts> {
        self.from.as_ref().and_then(|f| f.device_costs.as_ref())
    }
}

/// One candidate's replays: the mean over all of them, and the mean per trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub mean: f64,
    pub per_trace: Vec<f64>,
}

/// Unallocated GPU % at 100 % arrived of each of `weights` on every trace and seed (greedy
/// replays, no exploration), or with `dynamic` the failed GPU % of the dynamic replay,
/// replayed on `threads` threads: the mean and the per-trace means. With `costs`, each
/// candidate carries that device cost table (in force where its weight is not 0).
#[allow(clippy::too_many_arguments)]
pub fn evaluate_traces(
    traces: &[Trace],
    seeds: &[u64],
    weights: &[Vec<f64>],
    levels: u32,
    threads: usize,
    dynamic: Option<&DynamicSetting>,
    costs: Option<&DeviceCosts>,
    tick: &mut dyn FnMut(),
) -> Vec<Evaluation> {
    let files: Vec<PolicyFile> = weights
        .iter()
        .map(|w| {
            let mut f = PolicyFile::new(w.clone(), levels, Default::default());
            f.device_costs = costs.cloned();
            f
        })
        .collect();
    evaluate_files(traces, seeds, &files, threads, dynamic, tick)
}

/// [`evaluate_traces`] of whole policy files (their support and device cost table in force).
pub fn evaluate_files(
    traces: &[Trace],
    seeds: &[u64],
    files: &[PolicyFile],
    threads: usize,
    dynamic: Option<&DynamicSetting>,
    tick: &mut dyn FnMut(),
) -> Vec<Evaluation> {
    let jobs: Vec<(usize, usize, u64)> = (0..files.len())
        .flat_map(|c| (0..traces.len()).flat_map(move |t| seeds.iter().map(move |&s| (c, t, s))))
        .collect();
    // Results by job, summed in job order once all are in: the sum must not depend on which
    // thread finished first (f64 addition is not associative).
    let mut results = vec![0.0; jobs.len()];
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let threads = threads.clamp(1, jobs.len().max(1));
        for part in 0..threads {
            let (tx, jobs) = (tx.clone(), &jobs);
            scope.spawn(move || {
                for (j, &(c, t, s)) in jobs.iter().enumerate().skip(part).step_by(threads) {
                    let t = &traces[t];
                    let pct = match dynamic {
                        Some(setting) => dynamic::score(t, &files[c], s, setting),
                        None => {
                            let arr = arrivals(&t.pods, t.cluster.gpu_capacity_milli(), s);
                            episode::score(&t.cluster, &t.target, &arr, &files[c], s)
                        }
                    };
                    // The receiver outlives the scope's threads.
                    let _ = tx.send((j, pct));
                }
            });
        }
        drop(tx);
        for (j, pct) in rx {
            results[j] = pct;
            tick();
        }
    });
    let per = (traces.len() * seeds.len()).max(1) as f64;
    let mut out = vec![
        Evaluation {
            mean: 0.0,
            per_trace: vec![0.0; traces.len()],
        };
        files.len()
    ];
    for (&(c, t, _), pct) in jobs.iter().zip(results) {
        out[c].mean += pct;
        out[c].per_trace[t] += pct / seeds.len().max(1) as f64;
    }
    for e in &mut out {
        e.mean /= per;
    }
    out
}
