//! `allot train --history`: a recorded directory trains into a policy file that names it,
//! and bad directories stop with exit 2 and the file or directory named.

use super::*;
use crate::policy::learned::embedded_file;
use crate::sim::trace::history::{NodeRecord, PodRecord, node_header, pod_header};

/// `TrainArgs` as clap parses them from a command line.
#[derive(Debug, clap::Parser)]
struct Line {
    #[command(flatten)]
    args: TrainArgs,
}

fn flags(argv: &[&str]) -> TrainArgs {
    use clap::Parser;
    let argv = std::iter::once("train").chain(argv.iter().copied());
    Line::try_parse_from(argv).expect("flags parse").args
}

/// A history of two 4-GPU nodes and `pods` one-GPU pods, all bound to node `b` (which FGD,
/// packing onto `a` first, would not choose for the first of them).
fn history(dir: &Path, pods: u64) -> String {
    let mut nodes = node_header();
    for name in ["a", "b"] {
        let node = NodeRecord::four_t4_for_tests(name);
        nodes += &node.line();
    }
    std::fs::write(dir.join("nodes.csv"), nodes).unwrap();
    let mut text = pod_header();
    for i in 0..pods {
        let rec = PodRecord::one_gpu_for_tests(i, 10, "b", &(i % 4).to_string(), "learned");
        text.push_str(&rec.line());
    }
    text
}

const SHORT: [&str; 10] = [
    "--seeds",
    "1",
    "--validation-seeds",
    "60",
    "--supervised-epochs",
    "1",
    "--epochs",
    "1",
    "--search-generations",
    "0",
];

fn train(dir: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    let (d, o) = (dir.display().to_string(), out.display().to_string());
    let mut argv = vec!["--history", &d, "-o", &o, "-q"];
    argv.extend_from_slice(&SHORT);
    run(&flags(&argv))
}

#[test]
fn a_recorded_history_trains_into_a_policy_file_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = history(dir.path(), 8);
    // The recorder was killed mid-write: the last line has no newline.
    let cut = format!("{text}{}", &text[text.len() - 40..text.len() - 1]);
    std::fs::write(dir.path().join("pods-000000000001-000001.csv"), cut).unwrap();
    let out = tempfile::tempdir().unwrap();
    let policy = out.path().join("policy.json");
    assert_eq!(train(dir.path(), &policy).unwrap(), ExitCode::SUCCESS);
    let file = PolicyFile::load(&policy).expect("the written file loads");
    let h = file
        .provenance
        .history
        .as_ref()
        .expect("the history is named");
    assert_eq!(h.dir, dir.path().display().to_string());
    assert_eq!(h.digest.len(), 32, "{h:?}");
    assert_eq!(
        h.files,
        vec![
            "pods-000000000001-000001.csv".to_string(),
            "nodes.csv".into()
        ]
    );
    assert_eq!((h.records, h.skipped, h.gpu_pods), (8, 1, 8));
    assert_eq!((h.decisions, h.nodes), (8, 2));
    // It starts from the part of the embedded policy that scores this workload (whole 1-GPU
    // pods only, no CPU-only pods: all four shares 0, which no part holds, so FGD's warm start).
    let part = embedded_file().part_for(&crate::policy::learned::WorkloadMix([0.0; 4]));
    assert_eq!(
        part.weights,
        PolicyFile::fgd_start(Default::default()).weights
    );
    let started = format!("started from policy {}", part.hash);
    assert!(file.provenance.phases.contains(&started), "{file:?}");
    // Another history (one more pod) is another digest.
    let more = tempfile::tempdir().unwrap();
    let text = history(more.path(), 9);
    std::fs::write(more.path().join("pods-000000000001-000001.csv"), text).unwrap();
    let other = out.path().join("other.json");
    assert_eq!(train(more.path(), &other).unwrap(), ExitCode::SUCCESS);
    let other = PolicyFile::load(&other).unwrap();
    let digest = |f: &PolicyFile| f.provenance.history.as_ref().map(|h| h.digest.clone());
    assert_ne!(digest(&other), digest(&file));
}

#[test]
fn bad_history_directories_exit_2_naming_what_is_wrong() {
    use crate::cli::usage::exit_code;
    let out = tempfile::tempdir().unwrap();
    let policy = out.path().join("policy.json");
    let fails = |dir: &Path| {
        let err = train(dir, &policy).unwrap_err();
        assert_eq!(exit_code(&err), ExitCode::from(2), "{err:#}");
        format!("{err:#}")
    };
    let missing = out.path().join("missing");
    assert!(fails(&missing).contains("not a directory"));
    // Empty: nothing recorded.
    let empty = tempfile::tempdir().unwrap();
    assert!(fails(empty.path()).contains("no recorded pods here"));
    // Only a header: no GPU pods.
    let headers = tempfile::tempdir().unwrap();
    history(headers.path(), 0);
    let file = headers.path().join("pods-000000000001-000001.csv");
    std::fs::write(&file, pod_header()).unwrap();
    let err = fails(headers.path());
    assert!(err.contains("no GPU pods"), "{err}");
    // CPU-only pods: no GPU pods either.
    let cpu = history(headers.path(), 3).replace(",1,1000,,", ",0,0,,");
    std::fs::write(&file, cpu).unwrap();
    let err = fails(headers.path());
    assert!(err.contains("no GPU pods among its 3 record(s)"), "{err}");
    // A newer format version names the file.
    let newer = history(headers.path(), 3).replace(",1\n", ",2\n");
    std::fs::write(&file, newer).unwrap();
    let err = fails(headers.path());
    assert!(err.contains("pods-000000000001-000001.csv") && err.contains("newer allot"));
    assert!(!policy.exists(), "no policy file is written for bad input");
}

/// With --dynamic the history is replayed as the cluster ran it: pods arrive and leave at their
/// recorded times on the recorded nodes (time scale 1, every node, by default). 20 one-GPU pods
/// of 300 s each, one every 10 s, on 8 GPUs: only departures make room for the last 12.
#[test]
fn a_dynamic_run_on_a_history_replays_its_departures() {
    let dir = tempfile::tempdir().unwrap();
    let text = history(dir.path(), 20);
    std::fs::write(dir.path().join("pods-000000000001-000001.csv"), text).unwrap();
    let out = tempfile::tempdir().unwrap();
    let validation = |wait: &str| {
        let policy = out.path().join(format!("policy-{wait}.json"));
        let (d, o) = (
            dir.path().display().to_string(),
            policy.display().to_string(),
        );
        let mut argv = vec![
            "--history",
            &d,
            "-o",
            &o,
            "-q",
            "--dynamic",
            "--max-wait",
            wait,
        ];
        argv.extend_from_slice(&SHORT);
        assert_eq!(run(&flags(&argv)).unwrap(), ExitCode::SUCCESS);
        let file = PolicyFile::load(&policy).unwrap();
        let hyper = |k: &str| file.provenance.hyperparameters.get(k).copied();
        assert_eq!(hyper("dynamic_time_scale"), Some(1.0));
        assert_eq!(hyper("dynamic_nodes_fraction"), Some(1.0));
        assert!(file.provenance.history.is_some());
        let csv = std::fs::read_to_string(out.path().join("curves.csv")).unwrap();
        assert!(csv.starts_with("phase,epoch,train_reward,validation_failed_gpu_pct\n"));
        let last = csv.lines().last().unwrap().rsplit(',').next().unwrap();
        last.parse::<f64>().unwrap()
    };
    // Every pod waits at most 220 s for a departure: none fails within 10 minutes.
    assert_eq!(validation("10m"), 0.0);
    // Within a minute the 12 that must wait fail: the figure is the replay's, not a constant.
    let failed = validation("1m");
    assert!(failed > 50.0 && failed < 100.0, "{failed}");
}

#[test]
fn a_run_starting_from_a_file_with_experts_starts_from_the_part_for_its_trace() {
    let trace = Trace::of(load_trace("default", None, &[]).unwrap());
    let shipped = embedded_file().clone();
    // The default trace is scored by the gpushare expert (BENCHMARKS.md section 8).
    let part = combine::starting_part(shipped.clone(), std::slice::from_ref(&trace), "test");
    assert!(part.experts.is_empty());
    assert_eq!(part.weights, shipped.experts[0].weights);
    assert_ne!(part.weights, shipped.weights);
    let plain = shipped.part_for(&crate::policy::learned::WorkloadMix::of(&trace.target));
    let again = combine::starting_part(plain.clone(), &[trace], "test");
    assert_eq!(again, plain, "a file without experts is used as it is");
}

/// `allot train` flags for one generation of two tables on the bundled trace, seed 1,
/// validated on seed 60, written to `out`, then `extra`.
fn one_table_generation<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec![
        "--pods",
        "default",
        "--seeds",
        "1",
        "--validation-seeds",
        "60",
        "--device-costs",
        "1",
        "--device-costs-population",
        "2",
        "--device-costs-elite",
        "1",
        "--threads",
        "2",
        "-q",
        "-o",
        out,
    ];
    argv.extend_from_slice(extra);
    argv
}

#[test]
fn device_costs_keep_the_table_only_if_the_simulator_validates_it_and_say_what_they_did() {
    let out = tempfile::tempdir().unwrap();
    // -o's missing directories are made before the run, not found missing after it.
    let file = out.path().join("new/dir/p.json");
    let f = file.display().to_string();
    let curves = out.path().join("curves-here");
    let c = curves.display().to_string();
    assert_eq!(
        run(&flags(&one_table_generation(&f, &["--curves", &c]))).unwrap(),
        ExitCode::SUCCESS
    );
    let written = PolicyFile::load(&file).unwrap();
    // The curves go where --curves says, not beside the policy file.
    assert!(!out.path().join("new/dir/curves.csv").exists());
    assert!(curves.join("curves.svg").exists());
    let csv = std::fs::read_to_string(curves.join("curves.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert_eq!((rows[0][0], rows[1][0]), ("warm start", "device costs"));
    let v = |r: &Vec<&str>| r[3].parse::<f64>().unwrap();
    // The table is kept exactly when it validated better than FGD's warm start.
    let kept = v(&rows[1]) < v(&rows[0]);
    assert_eq!(written.device_costs.is_some(), kept, "{csv}");
    assert_eq!(written.provenance.kept == "device costs generation 1", kept);
    // Other phases do not mix with it, and the evaluation seeds stay out of it.
    let mixed = ["--device-costs", "2", "--epochs", "3"];
    let err =
        <Line as clap::Parser>::try_parse_from(std::iter::once("train").chain(mixed)).unwrap_err();
    assert!(err.to_string().contains("--epochs"), "{err}");
    let eval = [
        "--pods",
        "default",
        "--seeds",
        "42",
        "--device-costs",
        "1",
        "-q",
        "-o",
        &f,
    ];
    let err = run(&flags(&eval)).unwrap_err().to_string();
    assert!(err.contains("42"), "{err}");
}

#[test]
fn device_costs_in_the_simulator_start_from_the_policys_own_table() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("p.json");
    let f = file.display().to_string();
    let start = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/experts/gpushare-costs.json"
    );
    let simulated = [
        "--policy-file",
        start,
        "--device-costs-in",
        "simulator",
        "--device-costs-sigma",
        "1",
    ];
    let argv = one_table_generation(&f, &simulated);
    assert_eq!(run(&flags(&argv)).unwrap(), ExitCode::SUCCESS);
    let written = PolicyFile::load(&file).unwrap();
    let own = PolicyFile::load(Path::new(start)).unwrap();
    let (own_table, table) = (own.device_costs.unwrap(), written.device_costs.unwrap());
    // Kept or not, the table is the start's or one drawn 1 milli around it (not FGD's).
    let off = own_table
        .values
        .iter()
        .zip(&table.values)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(off < 10.0, "the table moved {off} milli from the start's");
    if written.provenance.kept.starts_with("device costs") {
        assert!(
            written
                .provenance
                .phases
                .iter()
                .any(|p| p.contains("simulator"))
        );
    } else {
        assert_eq!(written.weights, own.weights);
    }
    for bad in ["0", "-1", "nan"] {
        let sigma = format!("--device-costs-sigma={bad}");
        let argv = ["--device-costs", "1", sigma.as_str()];
        let err = <Line as clap::Parser>::try_parse_from(std::iter::once("train").chain(argv))
            .unwrap_err();
        assert!(err.to_string().contains("positive number"), "{err}");
    }
}

#[test]
fn an_output_that_cannot_be_written_is_refused_before_training() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().display().to_string();
    let err = run(&flags(&["--epochs", "1", "-o", &dir])).unwrap_err();
    assert!(err.to_string().contains("is a directory"), "{err}");
    assert_eq!(super::super::usage::exit_code(&err), ExitCode::from(2));
    let file = out.path().join("f");
    std::fs::write(&file, "").unwrap();
    let under = file.join("p.json").display().to_string();
    let err = run(&flags(&["--epochs", "1", "-o", &under])).unwrap_err();
    assert!(err.to_string().contains("cannot create"), "{err}");
    let ok = out.path().join("p.json").display().to_string();
    let argv = ["--epochs", "1", "-o", &ok, "--curves", &under];
    let err = run(&flags(&argv)).unwrap_err();
    assert!(err.to_string().starts_with("--curves "), "{err}");
    assert_eq!(super::super::usage::exit_code(&err), ExitCode::from(2));
}
