//! Issue 16: bad flags of every `allot` subcommand, with the exit code and the part of stderr
//! that names the flag and the value. One table, one loop: every row that differs is reported
//! at once. Every row fails before a replay, a training run or a server starts.
#![cfg(feature = "k8s")]

mod table;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A row that has not exited by then would be serving or replaying: a failure, killed.
const ROW_TIMEOUT: Duration = Duration::from_secs(20);

/// Every row is input the user must fix, and exits with 2, as clap's own usage errors do
/// (src/cli/usage.rs); 1 is left for failures while running.
const USAGE: i32 = 2;

/// Arguments, the exit code, and a substring of stderr.
struct Row {
    args: Vec<String>,
    code: i32,
    stderr: String,
}

fn row(args: &[&str], code: i32, stderr: &str) -> Row {
    Row {
        args: args.iter().map(|a| a.to_string()).collect(),
        code,
        stderr: stderr.to_string(),
    }
}

fn rows(tmp: &Path) -> Vec<Row> {
    let p = |name: &str| tmp.join(name).display().to_string();
    let dir = tmp.display().to_string();
    let (missing_policy, not_yaml, missing_yaml, a_file) = (
        p("missing.json"),
        p("bad.yaml"),
        p("missing.yaml"),
        p("a-file"),
    );
    let output = p("policy.json");
    let train = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["train", "-q", "-o", output.as_str()];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect()
    };
    let train_row = |extra: &[&str], code, stderr: &str| Row {
        args: train(extra),
        code,
        stderr: stderr.to_string(),
    };
    vec![
        // simulate
        row(
            &["simulate", "--seeds", ""],
            USAGE,
            "error: --seeds is empty; give e.g. 42-51",
        ),
        row(
            &["simulate", "--seeds", "5-3"],
            USAGE,
            r#"error: --seeds: range "5-3" is empty (start > end)"#,
        ),
        row(
            &["simulate", "--seeds", "x"],
            USAGE,
            r#"error: --seeds: "x" is not a non-negative integer or a range like 42-51"#,
        ),
        // A separate "-3" reads as a flag; with `=` it reaches the seed parser.
        row(
            &["simulate", "--seeds", "-3"],
            USAGE,
            "error: unexpected argument '-3' found",
        ),
        row(
            &["simulate", "--seeds=-3"],
            USAGE,
            r#"error: --seeds: "-3" is not a non-negative integer or a range like 42-51"#,
        ),
        row(
            &["simulate", "--threads", "0"],
            USAGE,
            "invalid value '0' for '--threads <N>': at least one thread is needed; leave --threads out to use one per core",
        ),
        row(
            &["simulate", "--threads", "two"],
            USAGE,
            r#"invalid value 'two' for '--threads <N>': "two" is not a whole number of threads"#,
        ),
        row(
            &["simulate", "--policy", "nosuch"],
            USAGE,
            r#"error: unknown policy "nosuch"; valid policies: random, dotprod, clustering, packing, bestfit, fgd, least-allocated, most-allocated, learned"#,
        ),
        row(
            &[
                "simulate",
                "--policy",
                "fgd",
                "--seeds",
                "42",
                "--policy-file",
                &missing_policy,
            ],
            USAGE,
            &format!("error: policy file {missing_policy}: No such file or directory"),
        ),
        row(
            &["simulate", "--pods", &dir],
            USAGE,
            &format!(
                "error: --pods {dir}: is a directory but not a recorded history (no pods-*.csv or \
                 open.csv); give a pod list file (CSV or JSON), a trace NAME"
            ),
        ),
        row(
            &["simulate", "--node-sampling", "101"],
            USAGE,
            r#"invalid value '101' for '--node-sampling <all|adaptive|PCT>': node sampling "101": expected `all`, `adaptive` or a percentageOfNodesToScore from 0 to 100 (0 = adaptive)"#,
        ),
        row(
            &["simulate", "--node-sampling", "abc"],
            USAGE,
            r#"invalid value 'abc' for '--node-sampling <all|adaptive|PCT>': node sampling "abc": expected"#,
        ),
        // 0 is valid (it means adaptive): the run gets as far as the next bad flag.
        row(
            &["simulate", "--node-sampling", "0", "--policy", "nosuch"],
            USAGE,
            r#"error: unknown policy "nosuch""#,
        ),
        row(
            &["simulate", "--at", "131"],
            USAGE,
            "invalid value '131' for '--at <AT>': 131 is not in 0..=130",
        ),
        // train
        train_row(
            &["--search-population", "1"],
            USAGE,
            "invalid value '1' for '--search-population <SEARCH_POPULATION>': 1 is not in 2..=1000",
        ),
        train_row(
            &["--search-elite", "50", "--search-population", "12"],
            USAGE,
            "error: --search-elite 50 must not exceed --search-population 12",
        ),
        train_row(
            &["--search-sigma", "0"],
            USAGE,
            "error: --search-sigma 0 must be in (0, 1]",
        ),
        train_row(
            &["--search-sigma", "2"],
            USAGE,
            "error: --search-sigma 2 must be in (0, 1]",
        ),
        train_row(
            &["--search-hinge=-1"],
            USAGE,
            "error: --search-hinge -1 must be in 0..=1000",
        ),
        train_row(
            &["--search-bound", "2"],
            USAGE,
            "error: --search-bound 2 must be in 0..=1",
        ),
        train_row(
            &["--support-tolerance", "1.5"],
            USAGE,
            "error: --support-tolerance 1.5 must be in 0..=1",
        ),
        // The evaluation seeds are never trained or validated on.
        train_row(
            &["--seeds", "42-51"],
            USAGE,
            "error: seed 42 is an evaluation seed (42-51); train and validate on other seeds",
        ),
        train_row(
            &["--seeds", "1,45"],
            USAGE,
            "error: seed 45 is an evaluation seed (42-51); train and validate on other seeds",
        ),
        train_row(
            &["--validation-seeds", "51"],
            USAGE,
            "error: seed 51 is an evaluation seed (42-51); train and validate on other seeds",
        ),
        train_row(
            &["--seeds", "5-3"],
            USAGE,
            r#"error: --seeds: range "5-3" is empty (start > end)"#,
        ),
        train_row(
            &["--validation-seeds", "5-3"],
            USAGE,
            r#"error: --validation-seeds: range "5-3" is empty (start > end)"#,
        ),
        train_row(
            &["--resume"],
            USAGE,
            &format!(
                "error: checkpoint {output}.checkpoint.json does not exist: nothing to resume (run without --resume to start afresh)"
            ),
        ),
        // plan
        row(
            &[
                "plan",
                "-f",
                "examples/request.yaml",
                "--snapshot",
                &missing_policy,
            ],
            USAGE,
            &format!("error: {missing_policy}: cannot read: No such file or directory"),
        ),
        row(
            &[
                "plan",
                "-f",
                &not_yaml,
                "--snapshot",
                "examples/cluster.json",
            ],
            USAGE,
            &format!(
                "error: {not_yaml} is not a ScheduleRequest (apiVersion allot.dev/v1alpha1): line 1 column 6: unclosed bracket '['"
            ),
        ),
        row(
            &[
                "plan",
                "-f",
                &missing_yaml,
                "--snapshot",
                "examples/cluster.json",
            ],
            USAGE,
            &format!("error: cannot read {missing_yaml}: No such file or directory"),
        ),
        // snapshot
        row(
            &["snapshot", "--timeout-seconds", "0"],
            USAGE,
            "invalid value '0' for '--timeout-seconds <TIMEOUT_SECONDS>': 0 is not in 1..=3600",
        ),
        // extender: every row fails while reading its flags, before it listens.
        row(
            &["extender", "--price-seconds", "3601"],
            USAGE,
            "invalid value '3601' for '--price-seconds <PRICE_SECONDS>': 3601 is not in 0..=3600",
        ),
        row(
            &["extender", "--max-connections", "0"],
            USAGE,
            "invalid value '0' for '--max-connections <MAX_CONNECTIONS>': 0 is not in 1..=65536",
        ),
        row(
            &["extender", "--max-connections", "65537"],
            USAGE,
            "invalid value '65537' for '--max-connections <MAX_CONNECTIONS>': 65537 is not in 1..=65536",
        ),
        row(
            &["extender", "--default-policy", "nosuch"],
            USAGE,
            r#"invalid value 'nosuch' for '--default-policy <POLICY>': unknown policy "nosuch""#,
        ),
        row(
            &[
                "extender",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--snapshot",
                &missing_policy,
                "--policy-dir",
                &a_file,
            ],
            USAGE,
            &format!(
                "error: {a_file}: not a directory (--policy-dir names a folder of policy settings)"
            ),
        ),
        // agent: likewise.
        row(
            &[
                "agent",
                "--node-name",
                "n1",
                "--sample-seconds",
                "10000000000000000000",
            ],
            USAGE,
            "allot agent: --sample-seconds 10000000000000000000 is too large: it must be between 1 and 86400 (a day)",
        ),
        row(
            &[
                "agent",
                "--node-name",
                "n1",
                "--sample-seconds",
                "100000000000000000000",
            ],
            USAGE,
            "invalid value '100000000000000000000' for '--sample-seconds <SAMPLE_SECONDS>': number too large to fit in target type",
        ),
        row(
            &["agent", "--node-name", "n1", "--sample-seconds", "0"],
            USAGE,
            "allot agent: --sample-seconds must be at least 1",
        ),
        row(
            &["agent"],
            USAGE,
            "allot agent: no node name: pass --node-name or set NODE_NAME",
        ),
        // The device plugin's flags (checked only with --device-plugin).
        row(
            &[
                "agent",
                "--node-name",
                "n1",
                "--device-plugin",
                "--share-slots",
                "0",
            ],
            USAGE,
            "allot agent: --share-slots 0 must be between 1 and 1000",
        ),
        row(
            &[
                "agent",
                "--node-name",
                "n1",
                "--device-plugin",
                "--cdi-kind",
                "gpu",
            ],
            USAGE,
            "allot agent: --cdi-kind \"gpu\" is not a CDI kind: it must look like vendor.com/class (e.g. nvidia.com/gpu)",
        ),
    ]
}

/// Exit code (-1 when killed or signalled) and stderr of one row.
fn run(args: &[String]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(args)
        .env_remove("ALLOT_TRACE_DIR")
        .env_remove("NODE_NAME")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the allot binary starts");
    let started = Instant::now();
    while child.try_wait().expect("wait for allot").is_none() {
        if started.elapsed() > ROW_TIMEOUT {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("collect allot's stderr");
    let code = out.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_flags_give_the_exit_code_and_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("bad.yaml"), "not: [yaml").expect("write bad.yaml");
    std::fs::write(tmp.path().join("a-file"), "fgd\n").expect("write a-file");
    let rows = rows(tmp.path());
    let mut failures = Vec::new();
    for r in &rows {
        let (code, stderr) = run(&r.args);
        if code != r.code || !stderr.contains(&r.stderr) {
            failures.push(format!(
                "args:     {:?}\nexpected: exit {}, stderr containing {:?}\nactual:   exit {code}, stderr {:?}",
                r.args, r.code, r.stderr, stderr
            ));
        }
    }
    table::assert_rows(&failures, rows.len());
}
