//! The learned policy end to end: a smoke run of training (seconds, on a slice of the
//! default trace) that must be deterministic and write a valid policy file, and the embedded
//! policy's placement quality on the bundled trace against FGD, so a regression in the
//! shipped policy fails `cargo test`.
// Test helpers panic on purpose: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use allot::learn::{self, Options, TrainError};
use allot::policy::PolicyKind;
use allot::policy::learned::{PolicyFile, WorkloadMix};
use allot::sim::load_trace;
use allot::sim::replay::{arrivals, context, replay};

mod common;
use common::slice;

fn smoke() -> Options {
    Options {
        supervised_epochs: 1,
        epochs: 2,
        updates_per_episode: 50,
        ..Options::default()
    }
}

#[test]
fn a_smoke_run_writes_a_valid_policy_and_is_deterministic() {
    let traces = [slice(120, 900)];
    let (a, curves) = learn::train(&traces, &[1, 2], &[60], &smoke(), |_| {}).unwrap();
    let (b, _) = learn::train(&traces, &[1, 2], &[60], &smoke(), |_| {}).unwrap();
    assert_eq!(a.weights, b.weights, "same seeds, same weights");
    let text = serde_json::to_string(&a).unwrap();
    let back = PolicyFile::parse("smoke.json", &text).unwrap();
    assert_eq!(back.hash, a.content_hash());
    assert_eq!(a.weights[0], 1.0, "FGD's weight stays frozen at 1");
    // warm start, one supervised epoch, two Q-learning epochs
    assert_eq!(curves.len(), 4);
    assert!(
        curves
            .iter()
            .all(|c| c.validation_unallocated_pct.is_finite())
    );
    assert_eq!(a.provenance.seeds, "train 1,2; validate 60");
    // The file names the workload it was trained on, and that workload lies within it.
    let support = a
        .support
        .as_ref()
        .expect("a trained file carries its support");
    let mix = WorkloadMix::of(&traces[0].target);
    assert_eq!(support.outside(&mix), None);
    assert_eq!(support.tolerance, 0.05, "the default tolerance");
    let without = Options {
        support_tolerance: None,
        ..smoke()
    };
    let (c, _) = learn::train(&traces, &[1, 2], &[60], &without, |_| {}).unwrap();
    assert_eq!(
        (c.support, &c.weights),
        (None, &a.weights),
        "--no-support: the same weights"
    );
}

#[test]
fn the_search_phase_moves_only_searched_weights_and_does_not_depend_on_threads() {
    use allot::learn::search::SEARCHED;
    let traces = [slice(120, 900)];
    let opts = |threads| Options {
        supervised_epochs: 0,
        epochs: 0,
        keep_last: true,
        search: learn::SearchOptions {
            generations: 2,
            population: 4,
            elite: 2,
            sigma: 0.02,
            threads,
            ..Default::default()
        },
        ..Options::default()
    };
    let mut ticks = 0;
    let (one, curves) = learn::train(&traces, &[1], &[60], &opts(1), |p| {
        ticks += 1;
        assert_eq!(p.done, ticks);
        assert!(p.done <= p.total, "{} of {}", p.done, p.total);
    })
    .unwrap();
    let (two, _) = learn::train(&traces, &[1], &[60], &opts(2), |_| {}).unwrap();
    assert_eq!(
        one.weights, two.weights,
        "one result whatever the thread count"
    );
    assert_eq!(curves.len(), 3, "warm start and two generations");
    assert_eq!(curves[1].phase, "policy search");
    for (i, w) in one.weights.iter().enumerate() {
        if i == 0 {
            assert_eq!(*w, 1.0, "FGD's weight stays 1");
        } else if !SEARCHED.contains(&i) {
            assert_eq!(*w, 0.0, "weight {i} is the same for every candidate node");
        }
    }
    assert!(
        SEARCHED.iter().any(|&i| one.weights[i] != 0.0),
        "a search that moved nothing"
    );
}

#[test]
fn bad_training_requests_say_what_is_wrong() {
    let traces = [slice(20, 50)];
    let zero = Options {
        supervised_epochs: 0,
        epochs: 0,
        ..Options::default()
    };
    assert_eq!(
        learn::train(&traces, &[1], &[60], &zero, |_| {}).unwrap_err(),
        TrainError::ZeroEpochs
    );
    assert_eq!(
        learn::train(&traces, &[1, 42], &[60], &smoke(), |_| {}).unwrap_err(),
        TrainError::EvaluationSeed(42)
    );
    let mut cpu_only = slice(20, 50);
    cpu_only.pods.retain(|p| !p.needs_gpu());
    let err = learn::train(&[cpu_only], &[1], &[60], &smoke(), |_| {}).unwrap_err();
    assert!(err.to_string().contains("no GPU pods"), "{err}");
}

/// Mean unallocated GPU % at 100 % arrived over `seeds` for `kind` on the bundled trace.
fn unallocated(kind: PolicyKind, seeds: &[u64]) -> f64 {
    let t = load_trace("default", None, &[]).unwrap();
    let target = t.workload().target();
    let capacity = t.cluster.gpu_capacity_milli() as f64;
    let mut sum = 0.0;
    for &s in seeds {
        let arr = arrivals(&t.pods.pods, t.cluster.gpu_capacity_milli(), s);
        let mut p = kind.build(&target, s);
        let out = replay(
            &t.cluster,
            &arr,
            p.as_mut(),
            context(&t.cluster, &target, s),
        );
        let last = out.samples.last().unwrap();
        sum += 100.0 * (capacity - last.allocated as f64) / capacity;
    }
    sum / seeds.len() as f64
}

#[test]
fn the_embedded_policy_places_no_worse_than_fgd_on_the_bundled_trace() {
    // Evaluation seeds: this measures the shipped policy, it trains nothing.
    let seeds = [42, 43, 44];
    let learned = unallocated(PolicyKind::Learned, &seeds);
    let fgd = unallocated(PolicyKind::Fgd, &seeds);
    assert!(
        learned <= fgd + 0.05,
        "the embedded policy leaves {learned:.3} % of GPUs unallocated, FGD {fgd:.3} %"
    );
}

#[test]
fn explain_shows_the_node_the_replay_chose_and_refuses_bad_indices() {
    let run = |explain: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_allot"))
            .args(["simulate", "-q", "--policy", "learned", "--seeds", "3"])
            .args(["--explain", explain])
            .output()
            .unwrap()
    };
    let out = run("0,4000");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let mut explained = 0;
    for (i, line) in lines.iter().enumerate() {
        let Some(placed) = line.split("; placed on ").nth(1) else {
            continue;
        };
        let chosen = lines[i + 1];
        assert!(
            chosen.contains(&format!("chosen {placed} (level")),
            "the explanation's choice is the replay's: {line} / {chosen}"
        );
        assert!(lines[i + 3].starts_with("fgd_score"), "{text}");
        explained += 1;
    }
    assert_eq!(explained, 2, "{text}");
    for (bad, says) in [
        ("x", "\"x\" is not an arrival index"),
        ("99999999", "arrivals (0.."),
    ] {
        let out = run(bad);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{bad}: {err}");
    }
}
