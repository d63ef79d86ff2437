//! One training episode: a trace replay through the simulator's step hook with the learned
//! policy deciding (and exploring), turned into transitions (features of the chosen
//! placement, reward, the next decision's best candidates).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::buffer::Transition;
use super::recorded::Follow;
use crate::model::frag::TargetWorkload;
use crate::model::{Cluster, PodDemand};
use crate::policy::learned::features::COUNT;
use crate::policy::learned::{Learned, PolicyFile, Recording};
use crate::policy::{MAX_GPU_MILLI, Policy};
use crate::sim::metrics::RunCurves;
use crate::sim::replay::{Sample, context, replay, replay_with};

/// The arrived percentage of capacity at which a replay is scored.
const AT_PCT: usize = 100;

/// Candidates of the next decision kept per transition (by the behaviour policy's Q), to
/// bound memory: the max over them stands for the max over all candidates.
pub const NEXT_KEEP: usize = 16;

/// What one episode produced.
#[derive(Debug, Clone, Default)]
pub struct Episode {
    pub transitions: Vec<Transition>,
    /// Sum of rewards.
    pub reward: f64,
    /// Unallocated GPU % of capacity at 100 % arrived: the figure `allot simulate` reports
    /// and the FGD paper compares (arrivals go on to 130 %).
    pub unallocated_pct: f64,
}

/// The reward of one placement: GPU milli placed minus fragmentation created, in units of
/// the largest node's GPUs (8,000 milli), so a step's reward is about -1..1.
pub fn reward(allocated_delta: f64, frag_delta: f64) -> f64 {
    (allocated_delta - frag_delta) / MAX_GPU_MILLI
}

/// Replay `arrivals` on `cluster` with `file`'s weights, exploring with `epsilon`; `seed`
/// fixes the tie order and every draw.
pub fn run(
    cluster: &Cluster,
    target: &TargetWorkload,
    arrivals: &[PodDemand],
    file: &PolicyFile,
    epsilon: f64,
    seed: u64,
) -> Episode {
    run_inner(cluster, target, arrivals, file, epsilon, seed, None).0
}

/// [`run`] without exploration, each arrival `i` placed on node `nodes[i]` whenever that node
/// is a candidate ([`Follow`]); also returns how many arrivals were.
pub fn run_following(
    cluster: &Cluster,
    target: &TargetWorkload,
    arrivals: &[PodDemand],
    file: &PolicyFile,
    nodes: &[Option<usize>],
    seed: u64,
) -> (Episode, usize) {
    run_inner(cluster, target, arrivals, file, 0.0, seed, Some(nodes))
}

fn run_inner(
    cluster: &Cluster,
    target: &TargetWorkload,
    arrivals: &[PodDemand],
    file: &PolicyFile,
    epsilon: f64,
    seed: u64,
    follow: Option<&[Option<usize>]>,
) -> (Episode, usize) {
    let recorder = Arc::new(Mutex::new(Recording::default()));
    let learned = Learned::new(file, target.clone()).training(epsilon, recorder.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let mut policy: Box<dyn Policy> = match follow {
        Some(nodes) => Box::new(Follow::new(learned, nodes.to_vec(), next.clone())),
        None => Box::new(learned),
    };
    let mut followed = 0;
    let scorer = Learned::new(file, target.clone());
    let mut out = Episode::default();
    let mut pending: Option<([f64; COUNT], f64)> = None;
    let mut allocated = cluster.gpu_allocated_milli();
    let mut frag: f64 = cluster.nodes().iter().map(|n| target.node_frag(n)).sum();
    let capacity = cluster.gpu_capacity_milli().max(1) as f64;
    let outcome = replay_with(
        cluster,
        arrivals,
        policy.as_mut(),
        context(cluster, target, seed),
        |step| {
            next.store(step.index + 1, Ordering::Relaxed);
            let recorded = follow.and_then(|f| f.get(step.index).copied().flatten());
            if recorded.is_some() && recorded == step.placed.map(|at| at.node) {
                followed += 1;
            }
            let rec = recorder.lock().unwrap_or_else(PoisonError::into_inner);
            let (a0, f0) = (allocated, frag);
            allocated = step.sample.allocated;
            frag = step.sample.frag;
            let Some(at) = step.placed else {
                return;
            };
            // The candidates this decision saw are the next state of the pending transition.
            if let Some((features, r)) = pending.take() {
                out.transitions.push(Transition {
                    features,
                    reward: r,
                    next: best(&scorer, &rec.candidates),
                });
            }
            let Some(chosen) = rec.candidates.iter().find(|(n, _)| *n == at.node) else {
                return;
            };
            let r = reward(
                step.sample.allocated as f64 - a0 as f64,
                step.sample.frag - f0,
            );
            out.reward += r;
            pending = Some((chosen.1, r));
        },
    );
    if let Some((features, r)) = pending {
        out.transitions.push(Transition {
            features,
            reward: r,
            next: Vec::new(),
        });
    }
    out.unallocated_pct = unallocated_at_100(&outcome.samples, capacity);
    (out, followed)
}

/// The replay's figure: unallocated GPU % at 100 % arrived, as `allot simulate` reads it
/// from the curve (or, for arrivals that never reach 100 %, what is unallocated at the end).
fn unallocated_at_100(samples: &[Sample], capacity: f64) -> f64 {
    let curves = RunCurves::from_samples(samples, capacity as u64);
    match curves.unallocated_pct.get(AT_PCT).copied().flatten() {
        Some(pct) => pct,
        None => samples.last().map_or(100.0, |last| {
            100.0 * (capacity - last.allocated as f64) / capacity
        }),
    }
}

/// [`run`]'s figure alone, greedily and as `allot simulate` decides (no recording, no
/// exploration), stopping once the arrivals are past the point that figure reads: the
/// curve's value at 100 % averages the events rounding to 100 % (or to 99 and 101 when none
/// does), so every event up to 101 % is replayed and none after.
pub fn score(
    cluster: &Cluster,
    target: &TargetWorkload,
    arrivals: &[PodDemand],
    file: &PolicyFile,
    seed: u64,
) -> f64 {
    let capacity = cluster.gpu_capacity_milli().max(1) as f64;
    let mut arrived = 0u64;
    let end = arrivals
        .iter()
        .position(|p| {
            arrived += p.gpu.total_milli();
            (arrived as f64 / capacity * 100.0).round() as usize > AT_PCT + 1
        })
        .unwrap_or(arrivals.len());
    let mut policy = Learned::new(file, target.clone());
    let outcome = replay(
        cluster,
        &arrivals[..end],
        &mut policy,
        context(cluster, target, seed),
    );
    unallocated_at_100(&outcome.samples, capacity)
}

/// The `NEXT_KEEP` candidates with the highest Q under `scorer`.
fn best(scorer: &Learned, candidates: &[(usize, [f64; COUNT])]) -> Vec<[f64; COUNT]> {
    let mut scored: Vec<(f64, &[f64; COUNT])> =
        candidates.iter().map(|(_, f)| (scorer.q(f), f)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored
        .into_iter()
        .take(NEXT_KEEP)
        .map(|(_, f)| *f)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::learned::Provenance;
    use crate::policy::testkit::{cluster, share, target, whole};
    use crate::sim::replay::arrivals;

    #[test]
    fn the_shortened_greedy_score_is_the_full_replays_figure() {
        let c = cluster(&[8, 8, 4, 4, 2, 1, 8, 8, 4, 2]);
        let pods = vec![share(300), share(700), whole(1), whole(2), whole(4)];
        let t = target(&pods);
        let mut w = vec![0.0; COUNT];
        w[0] = 1.0;
        w[1] = -0.02;
        let file = PolicyFile::new(w, 100, Provenance::default());
        for seed in [1, 2, 3] {
            let arr = arrivals(&pods, c.gpu_capacity_milli(), seed);
            let mut policy = Learned::new(&file, t.clone());
            let full = replay(&c, &arr, &mut policy, context(&c, &t, seed));
            let capacity = c.gpu_capacity_milli() as f64;
            let expected = unallocated_at_100(&full.samples, capacity);
            assert_eq!(score(&c, &t, &arr, &file, seed), expected, "seed {seed}");
            let ep = run(&c, &t, &arr, &file, 0.0, seed);
            assert_eq!(ep.unallocated_pct, expected, "the recording replay agrees");
        }
    }
}
