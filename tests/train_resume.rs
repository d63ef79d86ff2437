//! Checkpoints of `allot train` at the library level: a run resumed from any of its
//! checkpoints (written to a file and read back) ends with the policy file and curves of the
//! uninterrupted run, and so does a run stopped after its first search generation.
// Test helpers panic on purpose: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use allot::learn::checkpoint::{self, Checkpoint, Phase};
use allot::learn::{self, CurvePoint, Options, SearchOptions, Trace, TrainError};
use allot::policy::learned::PolicyFile;

mod common;
use common::slice;

fn opts(supervised_epochs: usize, epochs: usize, generations: usize) -> Options {
    Options {
        supervised_epochs,
        epochs,
        updates_per_episode: 20,
        search: SearchOptions {
            generations,
            population: 4,
            elite: 2,
            sigma: 0.02,
            threads: 1,
            // The LP price weight and the whole pods' corrections searched too: more searched
            // weights to save and restore.
            prices: true,
            whole: true,
            // And the multi-GPU pods' corrections under the per-trace hinge, whose FGD figures
            // a resumed run replays again: the result must not change.
            multi: true,
            objective: learn::search::Objective {
                hinge: 1.0,
                ..Default::default()
            },
            ..SearchOptions::default()
        },
        ..Options::default()
    }
}

type Trained = Result<(PolicyFile, Vec<CurvePoint>), TrainError>;

const SEEDS: [u64; 1] = [1];
const VALIDATION: [u64; 1] = [60];

/// Train, collecting every checkpoint; `stop_at` makes the save of that checkpoint fail,
/// as a run killed right after writing it.
fn run(
    traces: &[Trace],
    opts: &Options,
    from: Option<Checkpoint>,
    stop_at: Option<(Phase, usize)>,
) -> (Trained, Vec<Checkpoint>) {
    let mut saved = Vec::new();
    let mut save = |c: &Checkpoint| {
        saved.push(c.clone());
        match stop_at {
            Some(at) if at == (c.phase, c.done) => Err("killed".to_string()),
            _ => Ok(()),
        }
    };
    let out = learn::train_resumable(traces, &SEEDS, &VALIDATION, opts, from, &mut save, |_| {});
    (out, saved)
}

/// `c` written to a checkpoint file and read back, as `allot train --resume` reads it.
fn through_a_file(traces: &[Trace], opts: &Options, c: &Checkpoint) -> Checkpoint {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.json.checkpoint.json");
    checkpoint::save(&path, c).unwrap();
    let config = checkpoint::config(traces, &SEEDS, &VALIDATION, opts);
    checkpoint::load(&path, &config, opts).unwrap()
}

#[test]
fn two_search_generations_equal_one_then_a_resume() {
    let traces = [slice(120, 900)];
    let opts = opts(0, 0, 2);
    let (whole, saved) = run(&traces, &opts, None, None);
    let (whole, whole_curves) = whole.unwrap();
    let at: Vec<(Phase, usize)> = saved.iter().map(|c| (c.phase, c.done)).collect();
    assert_eq!(
        at,
        [(Phase::Search, 0), (Phase::Search, 1), (Phase::Search, 2)]
    );

    let (killed, partial) = run(&traces, &opts, None, Some((Phase::Search, 1)));
    assert_eq!(killed.unwrap_err(), TrainError::Checkpoint("killed".into()));
    let last = partial.last().unwrap();
    assert_eq!(last.state.curves.len(), 2, "warm start and generation 1");
    let from = through_a_file(&traces, &opts, last);
    assert_eq!(from.search, last.search, "the search state is exact");
    assert_eq!(from.state.best, last.state.best);

    let (resumed, rest) = run(&traces, &opts, Some(from), None);
    let (resumed, resumed_curves) = resumed.unwrap();
    assert_eq!(resumed.weights, whole.weights, "the same weights");
    assert_eq!(
        resumed.provenance.kept, whole.provenance.kept,
        "the same kept generation"
    );
    assert_eq!(resumed.hash, whole.hash, "the same policy file");
    assert_eq!(resumed_curves, whole_curves, "the same curves");
    assert_eq!(rest.len(), 1, "only generation 2 is left");
    assert_ne!(
        saved[1].search, saved[2].search,
        "generation 2 moved the search"
    );
    assert_eq!(
        rest[0].search, saved[2].search,
        "the search ends in the same state"
    );
    assert_eq!(rest[0].state.weights, saved[2].state.weights);
    assert!(rest[0].elapsed >= last.elapsed, "elapsed time adds up");
}

#[test]
fn a_resume_from_any_checkpoint_of_every_phase_ends_as_the_uninterrupted_run() {
    let traces = [slice(60, 400)];
    let opts = opts(2, 1, 1);
    let (whole, saved) = run(&traces, &opts, None, None);
    let (whole, whole_curves) = whole.unwrap();
    let at: Vec<(Phase, usize)> = saved.iter().map(|c| (c.phase, c.done)).collect();
    assert_eq!(
        at,
        [
            (Phase::Supervised, 0),
            (Phase::Supervised, 1),
            (Phase::Supervised, 2),
            (Phase::QLearning, 0),
            (Phase::Search, 0),
            (Phase::Search, 1),
        ]
    );
    for c in &saved {
        let from = through_a_file(&traces, &opts, c);
        let (resumed, _) = run(&traces, &opts, Some(from), None);
        let (resumed, curves) = resumed.unwrap();
        let at = (c.phase, c.done);
        assert_eq!(resumed.hash, whole.hash, "resumed from {at:?}");
        assert_eq!(curves, whole_curves, "resumed from {at:?}");
    }
}

#[test]
fn a_checkpoint_of_other_settings_is_refused_naming_the_setting() {
    let traces = [slice(60, 400)];
    let (_, saved) = run(&traces, &opts(0, 0, 1), None, Some((Phase::Search, 0)));
    let other = Options {
        gamma: 0.25,
        ..opts(0, 0, 1)
    };
    let (out, _) = run(&traces, &other, Some(saved[0].clone()), None);
    let err = out.unwrap_err().to_string();
    assert!(err.contains("--gamma is 0.5 there and 0.25 here"), "{err}");
}
