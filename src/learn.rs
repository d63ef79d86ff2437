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
//! A run saves checkpoints as it goes ([`checkpoint`]) and can resume from one to the same
//! result ([`train_resumable`]).

pub mod buffer;
pub mod checkpoint;
pub mod episode;
mod fit;
pub mod pool;
pub mod recorded;
mod run;
pub mod search;
mod setup;

use crate::policy::learned::features::COUNT;
use crate::policy::learned::{PolicyFile, Provenance};
use crate::rng::Rng;
use crate::sim::replay::arrivals;
use buffer::Buffer;
use checkpoint::{Best, Checkpoint, Phase, State};
use fit::{history, mse, step, td_target};
pub use run::{CurvePoint, EVALUATION_SEEDS, Options, Progress, Trace, TrainError};
pub use search::SearchOptions;
use search::{Search, SearchState};
pub use setup::check;
use setup::{Work, with_weights};
use std::time::Instant;

/// The FGD feature's index: its weight is frozen at 1.
const FGD: usize = 0;

/// Train on `traces` with `seeds`, validating on `validation`; returns the policy file and
/// the curves.
pub fn train(
    traces: &[Trace],
    seeds: &[u64],
    validation: &[u64],
    opts: &Options,
    progress: impl FnMut(Progress),
) -> Result<(PolicyFile, Vec<CurvePoint>), TrainError> {
    train_resumable(
        traces,
        seeds,
        validation,
        opts,
        None,
        &mut |_| Ok(()),
        progress,
    )
}

/// [`train`], continuing from `from` when given (a checkpoint of this very configuration, as
/// [`checkpoint::load`] reads), and handing `save` a [`Checkpoint`] at the start of every
/// phase that runs, after every supervised epoch and after every search generation. An error
/// from `save` stops training ([`TrainError::Checkpoint`]). A resumed run ends with the
/// policy file and curves of the uninterrupted run.
pub fn train_resumable(
    traces: &[Trace],
    seeds: &[u64],
    validation: &[u64],
    opts: &Options,
    from: Option<Checkpoint>,
    save: &mut dyn FnMut(&Checkpoint) -> Result<(), String>,
    mut progress: impl FnMut(Progress),
) -> Result<(PolicyFile, Vec<CurvePoint>), TrainError> {
    check(traces, seeds, validation, opts)?;
    let config = checkpoint::config(traces, seeds, validation, opts);
    if let Some(c) = &from {
        checkpoint::check_config("to resume from", &c.config, &config)
            .map_err(|e| TrainError::Checkpoint(e.to_string()))?;
    }
    let (phase, reached) = from
        .as_ref()
        .map_or((Phase::Supervised, 0), |c| (c.phase, c.done));
    let work = Work::new(traces, seeds, validation, opts);
    let total = work.total();
    let mut done = from.as_ref().map_or(0, |c| work.before(c.phase, c.done));
    let mut tick = |phase| {
        done += 1;
        progress(Progress { done, total, phase });
    };
    let (started, before) = (Instant::now(), from.as_ref().map(|c| c.elapsed));
    let mut snapshot = |phase, done, state: &State, search: Option<SearchState>| {
        let c = Checkpoint {
            config: config.clone(),
            phase,
            done,
            elapsed: before.unwrap_or_default() + started.elapsed(),
            state: state.clone(),
            search,
        };
        save(&c).map_err(TrainError::Checkpoint)
    };
    let start = opts
        .start
        .clone()
        .unwrap_or_else(|| PolicyFile::fgd_start(Provenance::default()));
    let start_is_fgd = start.weights == PolicyFile::fgd_start(Provenance::default()).weights;
    let validate_traces = |w: &[f64], tick: &mut dyn FnMut(&'static str)| {
        let levels = crate::policy::learned::file::DEFAULT_LEVELS;
        let threads = opts.search.threads;
        let mut e = search::evaluate_traces(
            traces,
            validation,
            &[w.to_vec()],
            levels,
            threads,
            opts.search.dynamic.as_ref(),
            opts.search.device_costs(),
            &mut || tick("validate"),
        );
        e.swap_remove(0)
    };
    // FGD's per-trace validation figures, for an objective with a hinge: the warm start's own
    // replays in a fresh run, replayed again when a run resumes.
    let objective = opts.search.objective;
    let mut fgd_validation: Option<Vec<f64>> = None;
    // The weights' (mean, objective) on the validation replays: the curve shows the mean, the
    // best weights are kept by the objective (the same as the mean without a hinge).
    let validate = |w: &[f64], fgd: &mut Option<Vec<f64>>, tick: &mut dyn FnMut(&'static str)| {
        let e = validate_traces(w, tick);
        if !objective.uses_fgd() {
            return (e.mean, e.mean);
        }
        let fgd =
            fgd.get_or_insert_with(|| validate_traces(&search::fgd_weights(), tick).per_trace);
        (e.mean, objective.score(e.mean, &e.per_trace, fgd))
    };
    let (mut st, saved_search) = match from {
        Some(c) => (c.state, c.search),
        None => {
            // The best weights on the validation replays; the warm start wins ties, so a
            // phase that does not improve on it leaves its weights.
            // A warm start that is FGD's replays are FGD's validation figures as well.
            let e = validate_traces(&start.weights, &mut tick);
            let mean = e.mean;
            let score = if !objective.uses_fgd() {
                mean
            } else if start_is_fgd {
                let score = objective.score(mean, &e.per_trace, &e.per_trace);
                fgd_validation = Some(e.per_trace);
                score
            } else {
                let fgd = validate_traces(&search::fgd_weights(), &mut tick).per_trace;
                let score = objective.score(mean, &e.per_trace, &fgd);
                fgd_validation = Some(fgd);
                score
            };
            let kept = if start_is_fgd {
                "warm start (FGD)"
            } else {
                "warm start (starting policy)"
            };
            let curve = CurvePoint {
                phase: kept,
                epoch: 0,
                train_reward: 0.0,
                validation_unallocated_pct: mean,
            };
            let best = Best {
                score,
                weights: start.weights.clone(),
                kept: kept.to_string(),
            };
            let rng = Rng::derive(opts.seed, 0x5452_4149);
            let weights = start.weights.clone();
            let curves = vec![curve];
            (
                State {
                    weights,
                    rng,
                    best,
                    curves,
                },
                None,
            )
        }
    };
    // Phase 1: hindsight returns of FGD's own decisions.
    if phase == Phase::Supervised && opts.supervised_epochs > 0 {
        if reached == 0 {
            snapshot(Phase::Supervised, 0, &st, None)?;
        }
        if reached < opts.supervised_epochs {
            let (fit, held) = history(traces, seeds, validation, &start, opts.gamma, &mut tick);
            for epoch in reached + 1..=opts.supervised_epochs {
                for _ in 0..(fit.len() / opts.batch.max(1)).max(1) {
                    let batch: Vec<(&[f64; COUNT], f64)> = (0..opts.batch)
                        .map(|_| {
                            let (f, y) = &fit[st.rng.below(fit.len())];
                            (f, *y)
                        })
                        .collect();
                    step(&mut st.weights, &start.weights, &batch, opts);
                }
                let mse = mse(&st.weights, &held);
                let v = validate(&st.weights, &mut fgd_validation, &mut tick);
                record(&mut st, "supervised", epoch, -mse, v);
                snapshot(Phase::Supervised, epoch, &st, None)?;
            }
        }
    }
    // Phase 2: Q-learning with experience replay and a target copy. Its buffer is not
    // checkpointed: an interrupted phase restarts from the checkpoint at its start.
    if phase <= Phase::QLearning && opts.epochs > 0 {
        snapshot(Phase::QLearning, 0, &st, None)?;
        let mut buffer = Buffer::new(opts.buffer);
        let mut target_w = st.weights.clone();
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
                    let file = with_weights(&st.weights, opts, traces, seeds, &[]);
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
                        let sample = buffer.sample(&mut st.rng, opts.batch);
                        let batch: Vec<(&[f64; COUNT], f64)> = sample
                            .iter()
                            .map(|t| (&t.features, td_target(t, &target_w, opts.gamma)))
                            .collect();
                        step(&mut st.weights, &start.weights, &batch, opts);
                    }
                    episodes += 1;
                    if episodes % opts.target_every.max(1) == 0 {
                        target_w = st.weights.clone();
                    }
                    tick("q-learning");
                }
            }
            let v = validate(&st.weights, &mut fgd_validation, &mut tick);
            record(&mut st, "q-learning", epoch, reward / n.max(1) as f64, v);
        }
    }
    // Phase 3: the cross-entropy search, from the best weights so far.
    let generations = opts.search.generations;
    if generations > 0 {
        let (mut search, first) = match saved_search {
            Some(s) => (
                Search::restore(s, &opts.search).map_err(TrainError::Checkpoint)?,
                reached,
            ),
            None => {
                let from = opts.search.from.as_ref();
                let start = from.map_or(&st.best.weights, |f| &f.weights);
                (Search::new(start, &opts.search, opts.seed), 0)
            }
        };
        if first == 0 {
            snapshot(Phase::Search, 0, &st, Some(search.state()))?;
        }
        for generation in first + 1..=generations {
            let levels = crate::policy::learned::file::DEFAULT_LEVELS;
            let g = search.generation(traces, seeds, levels, &opts.search, &mut || tick("search"));
            st.weights = g.best.0;
            let v = validate(&st.weights, &mut fgd_validation, &mut tick);
            record(&mut st, "policy search", generation, -g.best.1, v);
            snapshot(Phase::Search, generation, &st, Some(search.state()))?;
        }
    }
    if opts.keep_last {
        let kept = st.curves.last().map_or_else(String::new, |c| {
            format!("{} epoch {} (last, --keep last)", c.phase, c.epoch)
        });
        let weights = st.weights.clone();
        st.best = Best {
            score: f64::NAN,
            weights,
            kept,
        };
    }
    let mut file = with_weights(&st.best.weights, opts, traces, seeds, validation);
    file.provenance.kept = st.best.kept;
    file.hash = file.content_hash();
    Ok((file, st.curves))
}

/// A curve row for the weights just validated (`v`: mean unallocated GPU % and objective on
/// the validation replays); they become the best if their objective beats the best's.
fn record(st: &mut State, phase: &'static str, epoch: usize, train_reward: f64, v: (f64, f64)) {
    let (v, score) = v;
    st.curves.push(CurvePoint {
        phase,
        epoch,
        train_reward,
        validation_unallocated_pct: v,
    });
    if score < st.best.score {
        let unit = if phase == "policy search" {
            "generation"
        } else {
            "epoch"
        };
        st.best = Best {
            score,
            weights: st.weights.clone(),
            kept: format!("{phase} {unit} {epoch}"),
        };
    }
}
