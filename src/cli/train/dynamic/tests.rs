//! `allot train --dynamic` on a tiny trace with times: the same seed and thread count write
//! the same policy file, whose provenance names the setting; a checkpoint of another setting
//! is not resumed; load flags out of range exit 2.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::train::{TrainArgs, run};
use crate::cli::usage::exit_code;
use crate::policy::learned::PolicyFile;

#[derive(Debug, clap::Parser)]
struct Line {
    #[command(flatten)]
    args: TrainArgs,
}

fn parse(argv: &[&str]) -> Result<TrainArgs, clap::Error> {
    use clap::Parser;
    let argv = std::iter::once("train").chain(argv.iter().copied());
    Line::try_parse_from(argv).map(|l| l.args)
}

/// `openb_pod_list_tiny.csv` (the bundled trace's first 300 pods, with their times) and the
/// first 40 nodes in `dir`.
fn tiny_trace(dir: &Path) {
    let openb = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/openb");
    for (from, to, lines) in [
        ("openb_pod_list_default.csv", "openb_pod_list_tiny.csv", 301),
        (
            "openb_node_list_gpu_node.csv",
            "openb_node_list_gpu_node.csv",
            41,
        ),
    ] {
        let text = std::fs::read_to_string(openb.join(from)).unwrap();
        let head: Vec<&str> = text.lines().take(lines).collect();
        std::fs::write(dir.join(to), head.join("\n") + "\n").unwrap();
    }
}

fn train(dir: &Path, out: &Path, extra: &[&str]) -> anyhow::Result<ExitCode> {
    let (d, o) = (dir.display().to_string(), out.display().to_string());
    let mut argv = vec![
        "--trace-dir",
        &d,
        "--pods",
        "tiny",
        "--seeds",
        "1-2",
        "--validation-seeds",
        "60",
        "--supervised-epochs",
        "0",
        "--epochs",
        "0",
        "--search-generations",
        "2",
        "--search-population",
        "3",
        "--search-elite",
        "1",
        "--search-sigma",
        "0.2",
        "--threads",
        "2",
        "-q",
        "-o",
        &o,
    ];
    argv.extend_from_slice(extra);
    run(&parse(&argv).unwrap())
}

const DYNAMIC: [&str; 5] = [
    "--dynamic",
    "--time-scale",
    "100000",
    "--nodes-fraction",
    "0.3",
];

#[test]
fn dynamic_training_is_deterministic_and_names_its_setting() {
    let dir = tempfile::tempdir().unwrap();
    tiny_trace(dir.path());
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    assert_eq!(train(dir.path(), &a, &DYNAMIC).unwrap(), ExitCode::SUCCESS);
    let curves = std::fs::read_to_string(dir.path().join("curves.csv")).unwrap();
    assert!(curves.starts_with("phase,epoch,train_reward,validation_failed_gpu_pct\n"));
    assert_eq!(train(dir.path(), &b, &DYNAMIC).unwrap(), ExitCode::SUCCESS);
    let (ta, tb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(ta, tb, "same seed and threads, same file");
    let file = PolicyFile::load(&a).unwrap();
    let hyper = |f: &PolicyFile, name: &str| {
        f.provenance
            .hyperparameters
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    };
    assert_eq!(hyper(&file, "dynamic_time_scale"), Some(100000.0));
    assert_eq!(hyper(&file, "dynamic_nodes_fraction"), Some(0.3));
    assert_eq!(hyper(&file, "dynamic_max_wait_s"), Some(3600.0));
    assert_eq!(hyper(&file, "dynamic_objective_failed_gpu_pct"), Some(1.0));
    let phase = "policy search and validation scored by dynamic replay: failed GPU %, \
                 time scale 100000, nodes fraction 0.3, max wait 3600 s";
    assert!(
        file.provenance.phases.iter().any(|p| p == phase),
        "{file:?}"
    );
    // A static run names none of it.
    let s = dir.path().join("static.json");
    assert_eq!(train(dir.path(), &s, &[]).unwrap(), ExitCode::SUCCESS);
    let st = PolicyFile::load(&s).unwrap();
    assert_eq!(hyper(&st, "dynamic_time_scale"), None);
    assert!(!st.provenance.phases.iter().any(|p| p.contains("dynamic")));
}

#[test]
fn a_checkpoint_of_another_setting_does_not_resume() {
    let dir = tempfile::tempdir().unwrap();
    tiny_trace(dir.path());
    let out = dir.path().join("p.json");
    let refused = |extra: &[&str]| {
        let err = train(dir.path(), &out, extra).unwrap_err();
        assert_eq!(exit_code(&err), ExitCode::from(2), "{err:#}");
        format!("{err:#}")
    };
    // A static checkpoint: the dynamic run reads the pods' times too, another trace input.
    assert_eq!(
        train(dir.path(), &out, &["--keep-checkpoint"]).unwrap(),
        ExitCode::SUCCESS
    );
    let mut resume = DYNAMIC.to_vec();
    resume.push("--resume");
    assert!(refused(&resume).contains("belongs to another training run"));
    // A dynamic checkpoint at another time scale: the setting itself is named.
    let mut keep = DYNAMIC.to_vec();
    keep.push("--keep-checkpoint");
    assert_eq!(train(dir.path(), &out, &keep).unwrap(), ExitCode::SUCCESS);
    let mut other = resume.clone();
    other[2] = "50000";
    let err = refused(&other);
    assert!(err.contains("--dynamic-time-scale"), "{err}");
    // The same setting resumes.
    assert_eq!(train(dir.path(), &out, &resume).unwrap(), ExitCode::SUCCESS);
}

#[test]
fn load_flags_out_of_range_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.json");
    for (flag, value, says) in [
        ("--time-scale", "0", "--time-scale 0"),
        ("--time-scale", "0.5", "--time-scale 0.5"),
        ("--nodes-fraction", "0", "--nodes-fraction 0"),
        ("--nodes-fraction", "1.5", "--nodes-fraction 1.5"),
        ("--nodes-fraction=-0.25", "--nodes-fraction", "-0.25"),
    ] {
        let args = ["--dynamic", flag, value];
        // `--flag=value` keeps a negative value from reading as a flag.
        let args = if flag.contains('=') {
            &args[..2]
        } else {
            &args[..]
        };
        let err = train(dir.path(), &out, args).unwrap_err();
        assert_eq!(exit_code(&err), ExitCode::from(2), "{err:#}");
        assert!(format!("{err:#}").contains(says), "{err:#}");
    }
    // The load flags mean nothing without --dynamic (a clap error: exit 2).
    let err = parse(&["--time-scale", "800"]).unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    assert!(!out.exists());
}
