//! A policy file the CLI cannot use is refused with exit code 2 and a message naming the
//! file and what is wrong, by every subcommand that takes `--policy-file`.

use std::path::Path;
use std::process::{Command, Output};

fn allot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(args)
        .output()
        .expect("the allot binary runs")
}

fn embedded_text() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/default.json"))
        .expect("the shipped policy is in the repository")
}

#[test]
fn a_missing_corrupt_or_mismatched_policy_file_exits_2_naming_file_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let good = embedded_text();
    let missing = dir.path().join("absent.json").display().to_string();
    let cases = [
        (missing, "No such file"),
        (
            write("corrupt.json", "{\"format\": \"allot-po"),
            "not a policy file",
        ),
        (
            write("v9.json", &good.replace("\"version\": 1", "\"version\": 9")),
            "version 9 is not supported",
        ),
        (
            write("edited.json", &good.replacen("1.0,", "0.5,", 1)),
            "does not match its content",
        ),
    ];
    for (path, problem) in &cases {
        let sim = allot(&[
            "simulate",
            "--policy",
            "learned",
            "--seeds",
            "1",
            "--policy-file",
            path,
        ]);
        let extender = allot(&[
            "extender",
            "--snapshot",
            "examples/cluster.json",
            "--policy-file",
            path,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ]);
        for (what, out) in [("simulate", sim), ("extender", extender)] {
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{what} with {path}: {err}");
            assert!(
                err.contains(&format!("policy file {path}")) && err.contains(problem),
                "{what} with {path} should say {problem:?}: {err}"
            );
        }
    }
}

#[test]
fn the_shipped_policy_is_its_parts_combined_and_bad_combinations_exit_2() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let part = |name: &str| root.join("experts").join(name).display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("combined.json");
    let combine_with = |parts: &str, weight: &str| {
        allot(&[
            "train",
            "--combine",
            parts,
            "--cpu-bound-weight",
            weight,
            "-o",
            &out.display().to_string(),
        ])
    };
    let combine = |parts: &str| combine_with(parts, "-3");
    let parts = [
        part("multigpu-costs.json"),
        part("gpushare-costs.json"),
        part("gpuspec-costs.json"),
        part("cpu-costs.json"),
        part("base-costs.json"),
    ]
    .join(",");
    let run = combine(&parts);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        embedded_text(),
        "policies/default.json is the combination BENCHMARKS.md section 8 names"
    );
    for bad in ["NaN", "inf", "-1e9", "three"] {
        let run = combine_with(&parts, bad);
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("cpu-bound-weight"), "{bad}: {err}");
    }
    for (parts, says) in [
        (part("base.json"), "at least one expert"),
        (
            format!(
                "{},{}",
                part("base.json"),
                dir.path().join("no.json").display()
            ),
            "no.json",
        ),
    ] {
        let run = combine(&parts);
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{parts}: {err}");
        assert!(err.contains(says), "{parts}: {err}");
    }
}
