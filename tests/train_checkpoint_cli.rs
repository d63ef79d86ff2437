//! `allot train --resume` as users run it, on a tiny trace (80 nodes, 600 pods): a run
//! killed after its first search generation and resumed writes the uninterrupted run's policy
//! file and curves, and a missing, corrupt or mismatched checkpoint is refused with exit 2
//! and a message naming the file.
// Test helpers panic on purpose: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use allot::learn::checkpoint::{self, Checkpoint, Phase};
use allot::learn::{self, Options, SearchOptions, Trace};
use allot::sim::load_trace;

/// `openb_pod_list_tiny.csv` and its node list in `dir`: the bundled trace's first lines.
fn tiny_trace(dir: &Path) {
    let openb = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/openb");
    for (from, to, lines) in [
        ("openb_pod_list_default.csv", "openb_pod_list_tiny.csv", 601),
        (
            "openb_node_list_gpu_node.csv",
            "openb_node_list_gpu_node.csv",
            81,
        ),
    ] {
        let text = std::fs::read_to_string(openb.join(from)).unwrap();
        let head: Vec<&str> = text.lines().take(lines).collect();
        std::fs::write(dir.join(to), head.join("\n") + "\n").unwrap();
    }
}

fn train(dir: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--trace-dir",
        dir.to_str().unwrap(),
        "--pods",
        "tiny",
        "--seeds",
        "1",
        "--validation-seeds",
        "60",
        "--supervised-epochs",
        "0",
        "--epochs",
        "0",
        // Wide enough that generation 2 does not just keep generation 1's mean: its
        // candidates, and so the curves, depend on the restored search state.
        "--search-population",
        "4",
        "--search-elite",
        "2",
        "--search-sigma",
        "0.2",
        "--threads",
        "1",
        "-q",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(&args)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The run `train(dir, _, ["--search-generations", "2"])` makes, stopped (as if killed)
/// right after the checkpoint of its first generation; returns that checkpoint.
fn killed_after_generation_one(dir: &Path) -> Checkpoint {
    let t = load_trace("tiny", None, &[dir.to_path_buf()]).unwrap();
    let target = t.workload().target();
    let traces = [Trace {
        name: t.name.clone(),
        cluster: t.cluster,
        pods: t.pods.pods,
        target,
        recorded: None,
        lifetimes: None,
    }];
    let opts = Options {
        supervised_epochs: 0,
        epochs: 0,
        search: SearchOptions {
            generations: 2,
            population: 4,
            elite: 2,
            sigma: 0.2,
            threads: 1,
            ..Default::default()
        },
        ..Options::default()
    };
    let mut last = None;
    let mut save = |c: &Checkpoint| {
        last = Some(c.clone());
        if (c.phase, c.done) == (Phase::Search, 1) {
            return Err("killed".to_string());
        }
        Ok(())
    };
    let out = learn::train_resumable(&traces, &[1], &[60], &opts, None, &mut save, |_| {});
    assert!(out.is_err(), "the run was to stop after generation 1");
    last.unwrap()
}

#[test]
fn a_killed_run_resumed_writes_the_uninterrupted_runs_policy_and_curves() {
    let dir = tempfile::tempdir().unwrap();
    tiny_trace(dir.path());
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let gens = ["--search-generations", "2", "--keep-checkpoint"];

    let whole = train(dir.path(), &a.join("p.json"), &gens);
    assert!(whole.status.success(), "{}", stderr(&whole));

    let c = killed_after_generation_one(dir.path());
    checkpoint::save(&b.join("p.json.checkpoint.json"), &c).unwrap();
    let resumed = train(
        dir.path(),
        &b.join("p.json"),
        &[&gens[..], &["--resume"]].concat(),
    );
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains("policy search 1 of 2 done"),
        "{}",
        stderr(&resumed)
    );
    for file in ["p.json", "curves.csv"] {
        let (x, y) = (
            std::fs::read(a.join(file)).unwrap(),
            std::fs::read(b.join(file)).unwrap(),
        );
        assert!(x == y, "{file} differs after the resume");
    }
    // The kept final checkpoints: the same search state, best and curves (not elapsed time).
    let ckpt = |d: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("p.json.checkpoint.json")).unwrap())
            .unwrap()
    };
    let (x, y) = (ckpt(&a), ckpt(&b));
    for field in [
        "phase", "done", "weights", "rng", "best", "search", "curves",
    ] {
        assert_eq!(x[field], y[field], "{field}");
    }
    let curves = std::fs::read_to_string(a.join("curves.csv")).unwrap();
    let scores: Vec<Vec<&str>> = curves
        .lines()
        .skip(2)
        .map(|row| row.split(',').skip(2).collect())
        .collect();
    assert_ne!(scores[0], scores[1], "generation 2 changed something");
}

#[test]
fn a_missing_corrupt_or_mismatched_checkpoint_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    tiny_trace(dir.path());
    let out = dir.path().join("p.json");
    let ckpt = dir.path().join("p.json.checkpoint.json");
    let gens = ["--search-generations", "1"];

    let missing = train(dir.path(), &out, &[&gens[..], &["--resume"]].concat());
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    let err = stderr(&missing);
    assert!(
        err.contains(&format!("checkpoint {} does not exist", ckpt.display())),
        "{err}"
    );

    let corrupt = dir.path().join("elsewhere.json");
    std::fs::write(&corrupt, "{\"format\": \"allot-train-checkpoint\", \"vers").unwrap();
    let flag = ["--checkpoint", corrupt.to_str().unwrap(), "--resume"];
    let refused = train(dir.path(), &out, &[&gens[..], &flag].concat());
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let err = stderr(&refused);
    assert!(
        err.contains(&format!("checkpoint {} is corrupt", corrupt.display())),
        "{err}"
    );

    // Without --resume an existing checkpoint, even a corrupt one, is overwritten.
    std::fs::write(&ckpt, "not a checkpoint").unwrap();
    let kept = train(
        dir.path(),
        &out,
        &[&gens[..], &["--keep-checkpoint"]].concat(),
    );
    assert!(kept.status.success(), "{}", stderr(&kept));
    assert!(
        stderr(&kept).contains("overwriting the checkpoint"),
        "{}",
        stderr(&kept)
    );
    assert!(ckpt.exists(), "--keep-checkpoint keeps it");

    let other = train(
        dir.path(),
        &out,
        &[&gens[..], &["--seed", "2", "--resume"]].concat(),
    );
    assert_eq!(other.status.code(), Some(2), "{}", stderr(&other));
    let err = stderr(&other);
    assert!(err.contains(&ckpt.display().to_string()), "{err}");
    assert!(err.contains("--seed is 1 there and 2 here"), "{err}");

    // The same settings resume from the finished run's checkpoint: nothing is left to do.
    let again = train(dir.path(), &out, &[&gens[..], &["--resume"]].concat());
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(!ckpt.exists(), "removed once the run is complete");
}
