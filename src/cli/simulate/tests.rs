//! `allot simulate`'s flags: what each accepts, and the error a user sees for a bad value.

use super::*;
use crate::policy::PolicyKind;

#[test]
fn seeds_parse_ranges_and_lists() {
    assert_eq!(parse_seeds("42-44").unwrap(), vec![42, 43, 44]);
    assert_eq!(parse_seeds("1,5,5,2-3").unwrap(), vec![1, 5, 2, 3]);
    for bad in ["", "a", "5-1", "-3", "1-", "0-99999999"] {
        assert!(parse_seeds(bad).is_err(), "{bad}");
    }
}

#[test]
fn policies_parse_groups_and_reject_unknown_names() {
    assert_eq!(
        parse_policies("fgd, bestfit,fgd").unwrap(),
        vec![PolicyKind::Fgd, PolicyKind::BestFit]
    );
    assert_eq!(parse_policies("paper").unwrap().len(), 6);
    let err = parse_policies("fgd,tetris").unwrap_err().to_string();
    assert!(err.contains("tetris"), "{err}");
}

/// `SimulateArgs` as clap parses them from a command line.
#[derive(Debug, clap::Parser)]
struct Line {
    #[command(flatten)]
    args: SimulateArgs,
}

fn flags(argv: &[&str]) -> Result<SimulateArgs, String> {
    use clap::Parser;
    let argv = std::iter::once("simulate").chain(argv.iter().copied());
    Line::try_parse_from(argv)
        .map(|l| l.args)
        .map_err(|e| e.to_string())
}

/// Issue 16: bad values of --seeds name the text given, not a piece of it.
#[test]
fn bad_seeds_name_the_text_given() {
    for (text, want) in [
        (
            "-3",
            r#"--seeds: "-3" is not a non-negative integer or a range like 42-51"#,
        ),
        (
            "a",
            r#"--seeds: "a" is not a non-negative integer or a range like 42-51"#,
        ),
        (
            "1-",
            r#"--seeds: "1-" is not a non-negative integer or a range like 42-51"#,
        ),
        (
            "3--5",
            r#"--seeds: "3--5" is not a non-negative integer or a range like 42-51"#,
        ),
        (
            "42,x-7",
            r#"--seeds: "x-7" is not a non-negative integer or a range like 42-51"#,
        ),
        ("5-1", r#"--seeds: range "5-1" is empty (start > end)"#),
        ("0-99999999", "--seeds: more than 10000 seeds"),
        (" , ", "--seeds is empty; give e.g. 42-51"),
    ] {
        assert_eq!(parse_seeds(text).unwrap_err().to_string(), want, "{text}");
    }
}

/// Issue 16: `--threads 0` is refused instead of reporting a run "on 0 threads".
#[test]
fn zero_threads_is_refused() {
    let err = flags(&["--threads", "0"]).unwrap_err();
    assert!(
        err.contains(
            "invalid value '0' for '--threads <N>': at least one thread is needed; \
             leave --threads out to use one per core"
        ),
        "{err}"
    );
    assert_eq!(flags(&["--threads", "3"]).unwrap().threads, Some(3));
    assert_eq!(flags(&[]).unwrap().threads, None);
}

/// Issue 16: `--pods DIR` says the path is a folder, not that it does not exist.
#[test]
fn a_folder_as_pods_is_named_as_one() {
    let dir = std::env::temp_dir().join(format!("allot-pods-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let shown = dir.display().to_string();
    let args = flags(&["--pods", &shown, "-q"]).unwrap();
    let err = run(&args).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        err,
        format!(
            "--pods {shown}: is a directory but not a recorded history (no pods-*.csv or \
             open.csv); give a pod list file (CSV or JSON), a trace NAME (with --trace-dir for \
             the folder), or an `allot extender --history-dir` directory"
        )
    );
}

/// Consolidation flags: a bad value names its flag, and bad input is a usage error (exit 2).
#[test]
fn bad_move_budgets_name_their_flag() {
    let err = flags(&["--move-budget-per-pod", "two"]).unwrap_err();
    assert!(err.contains("--move-budget-per-pod"), "{err}");
    assert_eq!(
        flags(&["--move-budget-per-pod", "unlimited"])
            .unwrap()
            .move_budget_per_pod,
        usize::MAX
    );
    for (argv, want) in [
        (
            vec!["--move-budget", "2%"],
            "--move-budget 2%: no pod may move while --move-budget-per-pod is 0",
        ),
        (
            vec!["--move-budget-per-pod", "1", "--move-budget", "x"],
            "--move-budget: \"x\" is not a move count",
        ),
        (
            vec!["--move-budget-per-pod", "1", "--node-sampling", "adaptive"],
            "--move-budget-per-pod: consolidation needs --node-sampling all",
        ),
    ] {
        let mut argv = argv;
        argv.push("-q");
        let err = run(&flags(&argv).unwrap()).unwrap_err();
        assert!(err.to_string().starts_with(want), "{argv:?}: {err}");
        assert_eq!(crate::cli::usage::exit_code(&err), ExitCode::from(2));
    }
}

/// Issue 20: a recorded history directory replays, statically and with --dynamic; a newer
/// format version stops with the file named.
#[test]
fn a_recorded_history_directory_replays() {
    use crate::sim::trace::history::{NodeRecord, PodRecord, node_header, pod_header};
    let dir = tempfile::tempdir().unwrap();
    let node = NodeRecord::four_t4_for_tests("n");
    std::fs::write(dir.path().join("nodes.csv"), node_header() + &node.line()).unwrap();
    let mut text = pod_header();
    for i in 0..6u64 {
        let rec = PodRecord::one_gpu_for_tests(i, 60, "n", "0", "fgd");
        text.push_str(&rec.line());
    }
    std::fs::write(dir.path().join("pods-000000000001-000001.csv"), &text).unwrap();
    let shown = format!("{}/", dir.path().display());
    for extra in [&[][..], &["--dynamic"][..]] {
        let mut argv = vec!["--pods", &shown, "--policy", "fgd", "--seeds", "42", "-q"];
        argv.extend_from_slice(extra);
        let code = run(&flags(&argv).unwrap()).unwrap();
        assert_eq!(code, ExitCode::SUCCESS, "{extra:?}");
    }
    let newer = text.replace(",1\n", ",2\n");
    std::fs::write(dir.path().join("pods-000000000001-000002.csv"), newer).unwrap();
    let argv = ["--pods", &shown, "--dynamic", "-q"];
    let err = run(&flags(&argv).unwrap()).unwrap_err().to_string();
    assert!(
        err.contains("pods-000000000001-000002.csv") && err.contains("newer allot"),
        "{err}"
    );
}

/// An --out that cannot be a directory is refused before any replay (exit 2), not after.
#[test]
fn an_out_directory_that_cannot_be_made_is_refused_first() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, "").unwrap();
    let out = file.join("runs").display().to_string();
    let err = run(&flags(&["--out", &out, "--seeds", "42", "-q"]).unwrap()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("--out {out}: cannot create it")),
        "{err}"
    );
    assert_eq!(crate::cli::usage::exit_code(&err), ExitCode::from(2));
}
