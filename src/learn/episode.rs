//! One training episode: a trace replay through the simulator's step hook with the learned
//! policy deciding (and exploring), turned into transitions (features of the chosen
//! placement, reward, the next decision's best candidates).

use std::sync::{Arc, Mutex, PoisonError};

use super::buffer::Transition;
use crate::model::frag::TargetWorkload;
use crate::model::{Cluster, PodDemand};
use crate::policy::MAX_GPU_MILLI;
use crate::policy::learned::features::COUNT;
use crate::policy::learned::{Learned, PolicyFile, Recording};
use crate::sim::metrics::RunCurves;
use crate::sim::replay::{context, replay_with};

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
    let recorder = Arc::new(Mutex::new(Recording::default()));
    let mut policy = Learned::new(file, target.clone()).training(epsilon, recorder.clone());
    let scorer = Learned::new(file, target.clone());
    let mut out = Episode::default();
    let mut pending: Option<([f64; COUNT], f64)> = None;
    let mut allocated = cluster.gpu_allocated_milli();
    let mut frag: f64 = cluster.nodes().iter().map(|n| target.node_frag(n)).sum();
    let capacity = cluster.gpu_capacity_milli().max(1) as f64;
    let outcome = replay_with(
        cluster,
        arrivals,
        &mut policy,
        context(cluster, target, seed),
        |step| {
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
    let curves = RunCurves::from_samples(&outcome.samples, cluster.gpu_capacity_milli());
    out.unallocated_pct = match curves.unallocated_pct.get(AT_PCT).copied().flatten() {
        Some(pct) => pct,
        // Arrivals that never reach 100 % of capacity: what is unallocated at their end.
        None => outcome.samples.last().map_or(100.0, |last| {
            100.0 * (capacity - last.allocated as f64) / capacity
        }),
    };
    out
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
