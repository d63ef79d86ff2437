//! `allot simulate --dynamic` as users run it: its outputs, and its errors for bad times and
//! flags (exit 2, naming what is wrong).

#[path = "common/cli.rs"]
mod cli;

use cli::{allot, stderr};

#[test]
fn dynamic_replay_writes_its_outputs_and_refuses_bad_times_and_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let nodes = path(
        "n.csv",
        "name,cpu,memory,gpus,model\nn0,32,128Gi,2,T4\nn1,32,128Gi,1,T4\n",
    );
    let head = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,creation_time,deletion_time\n";
    let rows = "p0,1000,1024,2,1000,0,100\np1,1000,1024,1,500,10,50\np2,1000,1024,2,1000,20,90\n";
    let pods = path("p.csv", &format!("{head}{rows}"));
    let res = dir.path().join("res").display().to_string();
    let base = [
        "simulate",
        "-q",
        "--dynamic",
        "--nodes",
        &nodes,
        "--seeds",
        "1-2",
    ];
    let run = |extra: &[&str]| allot(&[&base[..], extra].concat());
    let out = run(&["--pods", &pods, "--policy", "fgd,bestfit", "--out", &res]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("wait p99 s") && stdout.contains("pods waiting over time"));
    for file in ["dynamic_runs.csv", "dynamic_timeline.csv", "dynamic.svg"] {
        assert!(std::path::Path::new(&res).join(file).is_file(), "{file}");
    }
    let bad = path("bad.csv", &format!("{head}p0,1000,1024,1,500,-4,10\n"));
    let cases: [(&[&str], &str); 6] = [
        (
            &["--pods", &bad],
            "bad.csv:2: column `creation_time`: \"-4\" is negative",
        ),
        (
            &["--pods", &pods, "--time-scale", "0.5"],
            "--time-scale 0.5",
        ),
        (
            &["--pods", &pods, "--nodes-fraction", "2"],
            "--nodes-fraction 2",
        ),
        (&["--pods", &pods, "--max-wait", "5x"], "--max-wait"),
        (
            &["--pods", &pods, "--bound"],
            "--bound belongs to the static protocol",
        ),
        (
            &["--pods", &pods, "--leftover"],
            "--leftover belongs to the static protocol",
        ),
    ];
    for (args, expected) in cases {
        let out = run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(expected),
            "{args:?}: expected {expected:?} in {err}"
        );
    }
    let out = allot(&["simulate", "-q", "--time-scale", "10"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a dynamic flag without --dynamic"
    );
}
