//! Training the learned policy (`allot train`), in two phases over trace replays driven
//! through the simulator's step hook (`sim::replay::replay_with`), never a copy of its loop:
//!
//! 1. supervised, learning from history: FGD's own replays on the training seeds are the
//!    history; the Q-function is fitted to each decision's discounted return in hindsight
//!    (mean squared error), with the validation seeds' replays as the held-out split;
//! 2. reinforcement: Q-learning in the simulator. Episodes are replays on the training seeds
//!    with epsilon-greedy exploration; transitions go to an experience-replay buffer;
//!    minibatch updates move the weights towards `r + gamma * max_a' Q_target(s', a')` with
//!    a target copy refreshed every few episodes.
//!
//! The weight of FGD's score stays 1 throughout: Q is FGD's score plus a learned linear
//! correction, on FGD's scale, so training starts exactly at FGD. After every epoch the
//! policy is replayed greedily on the validation seeds; the best weights seen (the warm
//! start included) are kept. Everything is seeded: one seed and thread count, one result.

pub mod buffer;
pub mod episode;
mod fit;
pub mod search;

use crate::model::frag::TargetWorkload;
use crate::model::{Cluster, PodDemand};
use crate::policy::learned::features::COUNT;
use crate::policy::learned::{PolicyFile, Provenance};
use crate::rng::Rng;
use crate::sim::replay::arrivals;
use buffer::Buffer;
use fit::{history, mse, step, td_target};
pub use search::SearchOptions;

/// The FGD feature's index: its weight is frozen at 1.
const FGD: usize = 0;

/// Hyperparameters of a training run (`allot train` flags).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub gamma: f64,
    pub learning_rate: f64,
    pub supervised_epochs: usize,
    pub epochs: usize,
    pub batch: usize,
    pub updates_per_episode: usize,
    /// Episodes between refreshes of the target copy.
    pub target_every: usize,
    pub epsilon_start: f64,
    pub epsilon_end: f64,
    pub buffer: usize,
    /// Pull of every weight towards the warm start (L2), against drift.
    pub l2: f64,
    /// Keep the last epoch's weights instead of the best on validation (for ablations).
    pub keep_last: bool,
    pub seed: u64,
    /// Phase 3, the cross-entropy search over the weights (0 generations skips it).
    pub search: SearchOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            gamma: 0.5,
            learning_rate: 0.05,
            supervised_epochs: 2,
            epochs: 6,
            batch: 64,
            updates_per_episode: 400,
            target_every: 2,
            epsilon_start: 0.10,
            epsilon_end: 0.01,
            buffer: 200_000,
            l2: 1e-4,
            keep_last: false,
            seed: 1,
            search: SearchOptions::default(),
        }
    }
}

/// One trace to train on: its cluster, pods (in name order) and fragmentation target.
#[derive(Debug, Clone)]
pub struct Trace {
    pub name: String,
    pub cluster: Cluster,
    pub pods: Vec<PodDemand>,
    pub target: TargetWorkload,
}

/// A point of the training curves.
#[derive(Debug, Clone, PartialEq)]
pub struct CurvePoint {
    pub phase: &'static str,
    pub epoch: usize,
    /// Mean reward per training episode (supervised: validation MSE's negative).
    pub train_reward: f64,
    /// Mean unallocated GPU % at 100 % arrived over the validation replays.
    pub validation_unallocated_pct: f64,
}

/// Why training cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrainError {
    #[error("no trace to train on")]
    NoTraces,
    #[error("trace {0} has no GPU pods: there is nothing to learn from it")]
    NoGpuPods(String),
    #[error("zero epochs in every phase: training would write an untrained policy")]
    ZeroEpochs,
    #[error("no training seeds")]
    NoSeeds,
    #[error("seed {0} is an evaluation seed (42-51); train and validate on other seeds")]
    EvaluationSeed(u64),
}

/// Progress after each episode.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub phase: &'static str,
}

/// The evaluation seeds the FGD paper reports; never trained or tuned on.
pub const EVALUATION_SEEDS: std::ops::RangeInclusive<u64> = 42..=51;

/// Train on `traces` with `seeds`, validating on `validation`; returns the policy file and
/// the curves.
pub fn train(
    traces: &[Trace],
    seeds: &[u64],
    validation: &[u64],
    opts: &Options,
    mut progress: impl FnMut(Progress),
) -> Result<(PolicyFile, Vec<CurvePoint>), TrainError> {
    check(traces, seeds, validation, opts)?;
    // Replays: one validation pass at the start and after every epoch, FGD's history once
    // for the supervised phase, and one episode per trace and seed per Q-learning epoch.
    let (t, v) = (traces.len(), traces.len() * validation.len());
    let generations = opts.search.generations;
    let total = v * (1 + opts.supervised_epochs + opts.epochs + generations)
        + t * (seeds.len() + validation.len()) * opts.supervised_epochs.min(1)
        + t * seeds.len() * opts.epochs
        + t * seeds.len() * opts.search.population.max(2) * generations;
    let mut done = 0;
    let mut tick = |phase| {
        done += 1;
        progress(Progress { done, total, phase });
    };
    let start = PolicyFile::fgd_start(Provenance::default());
    let mut w = start.weights.clone();
    let mut curves = Vec::new();
    let validate = |w: &[f64], tick: &mut dyn FnMut(&'static str)| {
        let levels = crate::policy::learned::file::DEFAULT_LEVELS;
        let threads = opts.search.threads;
        search::evaluate(
            traces,
            validation,
            &[w.to_vec()],
            levels,
            threads,
            &mut || tick("validate"),
        )[0]
    };
    // The best weights on the validation replays; the warm start wins ties, so a phase
    // that does not improve on FGD leaves FGD's weights.
    let mut best = (
        validate(&w, &mut tick),
        w.clone(),
        "warm start (FGD)".to_string(),
    );
    curves.push(CurvePoint {
        phase: "warm start (FGD)",
        epoch: 0,
        train_reward: 0.0,
        validation_unallocated_pct: best.0,
    });
    let mut rng = Rng::derive(opts.seed, 0x5452_4149);
    // Phase 1: hindsight returns of FGD's own decisions.
    if opts.supervised_epochs > 0 {
        let (fit, held) = history(traces, seeds, validation, &start, opts.gamma, &mut tick);
        for epoch in 1..=opts.supervised_epochs {
            for _ in 0..(fit.len() / opts.batch.max(1)).max(1) {
                let batch: Vec<(&[f64; COUNT], f64)> = (0..opts.batch)
                    .map(|_| {
                        let (f, y) = &fit[rng.below(fit.len())];
                        (f, *y)
                    })
                    .collect();
                step(&mut w, &start.weights, &batch, opts);
            }
            let mse = mse(&w, &held);
            let v = validate(&w, &mut tick);
            curves.push(CurvePoint {
                phase: "supervised",
                epoch,
                train_reward: -mse,
                validation_unallocated_pct: v,
            });
            if v < best.0 {
                best = (v, w.clone(), format!("supervised epoch {epoch}"));
            }
        }
    }
    // Phase 2: Q-learning with experience replay and a target copy.
    let mut buffer = Buffer::new(opts.buffer);
    let mut target_w = w.clone();
    let mut episodes = 0;
    for epoch in 1..=opts.epochs {
        let frac = if opts.epochs > 1 {
            (epoch - 1) as f64 / (opts.epochs - 1) as f64
        } else {
            1.0
        };
        let epsilon = opts.epsilon_start + (opts.epsilon_end - opts.epsilon_start) * frac;
        let mut reward = 0.0;
        let mut n = 0;
        for t in traces {
            for &s in seeds {
                let file = with_weights(&w, opts, traces, seeds, &[]);
                // A fresh shuffle per epoch: the seed's arrivals, reseeded by the epoch.
                let ep_seed = s.wrapping_mul(1_000).wrapping_add(epoch as u64);
                let arr = arrivals(&t.pods, t.cluster.gpu_capacity_milli(), ep_seed);
                let ep = episode::run(&t.cluster, &t.target, &arr, &file, epsilon, ep_seed);
                reward += ep.reward;
                n += 1;
                for tr in ep.transitions {
                    buffer.push(tr);
                }
                for _ in 0..opts.updates_per_episode {
                    let sample = buffer.sample(&mut rng, opts.batch);
                    let batch: Vec<(&[f64; COUNT], f64)> = sample
                        .iter()
                        .map(|t| (&t.features, td_target(t, &target_w, opts.gamma)))
                        .collect();
                    step(&mut w, &start.weights, &batch, opts);
                }
                episodes += 1;
                if episodes % opts.target_every.max(1) == 0 {
                    target_w = w.clone();
                }
                tick("q-learning");
            }
        }
        let v = validate(&w, &mut tick);
        curves.push(CurvePoint {
            phase: "q-learning",
            epoch,
            train_reward: reward / n.max(1) as f64,
            validation_unallocated_pct: v,
        });
        if v < best.0 {
            best = (v, w.clone(), format!("q-learning epoch {epoch}"));
        }
    }
    // Phase 3: the cross-entropy search, from the best weights so far.
    let mut search = search::Search::new(&best.1, &opts.search, opts.seed);
    for generation in 1..=generations {
        let levels = crate::policy::learned::file::DEFAULT_LEVELS;
        let g = search.generation(traces, seeds, levels, &opts.search, &mut || tick("search"));
        w = g.best.0;
        let v = validate(&w, &mut tick);
        curves.push(CurvePoint {
            phase: "policy search",
            epoch: generation,
            train_reward: -g.best.1,
            validation_unallocated_pct: v,
        });
        if v < best.0 {
            best = (
                v,
                w.clone(),
                format!("policy search generation {generation}"),
            );
        }
    }
    if opts.keep_last {
        let last = curves.last().map_or_else(String::new, |c| {
            format!("{} epoch {} (last, --keep last)", c.phase, c.epoch)
        });
        best = (f64::NAN, w.clone(), last);
    }
    let mut file = with_weights(&best.1, opts, traces, seeds, validation);
    file.provenance.kept = best.2;
    file.hash = file.content_hash();
    Ok((file, curves))
}

fn check(
    traces: &[Trace],
    seeds: &[u64],
    validation: &[u64],
    opts: &Options,
) -> Result<(), TrainError> {
    if traces.is_empty() {
        return Err(TrainError::NoTraces);
    }
    if let Some(t) = traces
        .iter()
        .find(|t| !t.pods.iter().any(PodDemand::needs_gpu))
    {
        return Err(TrainError::NoGpuPods(t.name.clone()));
    }
    if opts.epochs == 0 && opts.supervised_epochs == 0 && opts.search.generations == 0 {
        return Err(TrainError::ZeroEpochs);
    }
    if seeds.is_empty() {
        return Err(TrainError::NoSeeds);
    }
    if let Some(&s) = seeds
        .iter()
        .chain(validation)
        .find(|s| EVALUATION_SEEDS.contains(s))
    {
        return Err(TrainError::EvaluationSeed(s));
    }
    Ok(())
}

/// A sealed policy file for weights `w`, recording how it was trained.
fn with_weights(
    w: &[f64],
    opts: &Options,
    traces: &[Trace],
    seeds: &[u64],
    validation: &[u64],
) -> PolicyFile {
    let hyper = [
        ("gamma", opts.gamma),
        ("learning_rate", opts.learning_rate),
        ("supervised_epochs", opts.supervised_epochs as f64),
        ("epochs", opts.epochs as f64),
        ("batch", opts.batch as f64),
        ("updates_per_episode", opts.updates_per_episode as f64),
        ("target_every", opts.target_every as f64),
        ("epsilon_start", opts.epsilon_start),
        ("epsilon_end", opts.epsilon_end),
        ("l2", opts.l2),
        ("seed", opts.seed as f64),
        ("search_generations", opts.search.generations as f64),
        ("search_population", opts.search.population as f64),
        ("search_elite", opts.search.elite as f64),
        ("search_sigma", opts.search.sigma),
    ];
    let join = |s: &[u64]| s.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let provenance = Provenance {
        traces: traces.iter().map(|t| t.name.clone()).collect(),
        seeds: format!("train {}; validate {}", join(seeds), join(validation)),
        // The phases that ran (an ablation or a search-only run names fewer).
        phases: [
            ("supervised", opts.supervised_epochs),
            ("q-learning", opts.epochs),
            ("policy search", opts.search.generations),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(p, _)| p.to_string())
        .collect(),
        kept: String::new(),
        hyperparameters: hyper.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        code_version: env!("CARGO_PKG_VERSION").to_string(),
        // No timestamp: the same command, seeds and thread count write the same file.
        created: String::new(),
    };
    PolicyFile::new(
        w.to_vec(),
        crate::policy::learned::file::DEFAULT_LEVELS,
        provenance,
    )
}
