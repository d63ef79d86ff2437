//! `--since`/`--until` of `allot simulate` and `allot train --history` as users run them: the
//! pods created outside the window are left out and counted, on a plain trace with times and
//! on a recorded history; bad values, traces without times and windows without a GPU pod exit
//! 2 naming the flag and the value.

#[path = "common/cli.rs"]
mod cli;

use allot::sim::trace::history::{NodeRecord, node_header, pod_header};
use cli::{allot, stderr};

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.display().to_string()
}

/// `allot ARGS` must fail with exit 2 and `expected` in its stderr.
fn refused(args: &[&str], expected: &str) {
    let out = allot(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.contains(expected),
        "{args:?}: expected {expected:?} in {err}"
    );
}

#[test]
fn a_plain_trace_with_times_is_cut_to_the_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = write(
        dir.path(),
        "n.csv",
        "name,cpu,memory,gpus,model\nn0,32,128Gi,2,T4\n",
    );
    // GPU pods created at 0, 100 and 300 s; a CPU-only pod at 200 s.
    let pods = write(
        dir.path(),
        "p.csv",
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,creation_time,deletion_time\n\
         p0,1000,1024,1,1000,0,50\np1,1000,1024,1,500,100,150\n\
         p2,1000,1024,0,0,200,250\np3,1000,1024,1,1000,300,350\n",
    );
    let base = [
        "simulate", "-q", "--nodes", &nodes, "--pods", &pods, "--seeds", "1", "--policy", "fgd",
    ];
    let run = |extra: &[&str]| allot(&[&base[..], extra].concat());
    // The last minute before the newest creation (300 s): p3 alone.
    let out = run(&["--dynamic", "--since", "1m"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("window [240, ..): 1 of 4 pods kept, 3 left out"),
        "{}",
        stderr(&out)
    );
    // Static protocol, up to (not including) 150 s: p0 and p1.
    let out = run(&["--until", "150"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("window [.., 150): 2 of 4 pods kept, 2 left out"));
    let args = |extra: &'static [&'static str]| [&base[..], extra].concat();
    refused(
        &args(&["--since", "150", "--until", "300"]),
        "no GPU pod of --pods",
    );
    refused(&args(&["--since", "7w"]), "--since <TIME>");
    refused(&args(&["--since", "7w"]), "\"7w\": give Unix seconds");
    refused(&args(&["--until=-3d"]), "--until <TIME>");
    let json = write(
        dir.path(),
        "p.json",
        r#"[{"name": "p1", "cpu": "4", "memory": "16Gi", "gpuMilli": 500}]"#,
    );
    refused(
        &[
            "simulate", "-q", "--nodes", &nodes, "--pods", &json, "--since", "1d",
        ],
        "have no creation_time",
    );
}

/// A history of one 4-GPU node and six one-GPU pods created a minute apart.
fn history(dir: &std::path::Path) -> String {
    let node = NodeRecord::four_t4_for_tests("n");
    write(dir, "nodes.csv", &(node_header() + &node.line()));
    let mut text = pod_header();
    for i in 0..6u64 {
        // The columns of docs/history-format.md: openb's eleven, then allot's.
        let c = 1_780_000_000 + 60 * i;
        let end = c + 300;
        text.push_str(&format!(
            "p{i},1000,1024,1,1000,,,Terminated,{c},{end},{c},n,0,fgd,,u{i},1\n"
        ));
    }
    write(dir, "pods-000000000001-000001.csv", &text);
    format!("{}/", dir.display())
}

#[test]
fn a_recorded_history_replays_and_trains_on_its_last_minutes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hist = history(dir.path());
    let sim = |extra: &[&str]| {
        let base = [
            "simulate", "-q", "--pods", &hist, "--policy", "fgd", "--seeds", "42",
        ];
        allot(&[&base[..], extra].concat())
    };
    // Created at 1_780_000_000 + 60 i: the last 2 minutes keep i = 3, 4, 5.
    let out = sim(&["--dynamic", "--since", "2m"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("3 of 6 pods kept, 3 left out"),
        "{}",
        stderr(&out)
    );
    let out = sim(&["--since", "1780000000", "--until", "1780000060"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("window [1780000000, 1780000060): 1 of 6 pods kept"));
    let out = sim(&["--until", "1700000000"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no GPU pod of --pods"),
        "{}",
        stderr(&out)
    );

    let policy = dir.path().join("policy.json");
    let short = [
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
        "-q",
    ];
    let train = |extra: &[&str]| {
        let base = [
            "train",
            "--history",
            &hist,
            "-o",
            policy.to_str().expect("utf-8"),
        ];
        allot(&[&base[..], &short[..], extra].concat())
    };
    let out = train(&["--since", "2m"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let file = std::fs::read_to_string(&policy).expect("the policy file is written");
    assert!(
        file.contains("[1780000180, ..): 3 record(s) left out"),
        "the provenance names the window: {file}"
    );
    let out = train(&["--until", "90x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--until <TIME>") && stderr(&out).contains("90x"));
    let out = train(&["--until", "1700000000"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no GPU pod of --history"),
        "{}",
        stderr(&out)
    );
    refused(&["train", "--since", "7d"], "--history");
}
