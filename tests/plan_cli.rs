//! `allot plan` on the bundled example and on bad input.
#![cfg(feature = "k8s")]

use std::process::{Command, Output};

fn allot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(args)
        .output()
        .expect("the allot binary runs")
}

#[test]
fn plans_the_example_and_explains_what_does_not_fit() {
    let out = allot(&[
        "plan",
        "-f",
        "examples/request.yaml",
        "--snapshot",
        "examples/cluster.json",
        "--yaml-only",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_saphyr::from_slice(&out.stdout).expect("YAML status");
    assert_eq!(status["counts"]["replicas"], 8);
    assert_eq!(status["counts"]["planned"], 7);
    let plan = status["plan"].as_array().expect("plan list");
    // Trainers need 4 V100M32 each: only the two V100 nodes qualify.
    for p in plan.iter().filter(|p| p["task"] == "trainer") {
        let node = p["node"].as_str().expect("node");
        assert!(node.starts_with("v100"), "{node}");
        assert_eq!(p["gpuDevices"].as_array().map(Vec::len), Some(4));
    }
    // resnet-0 holds devices 0 and 1 of v100-a: no trainer may take them.
    for p in plan.iter().filter(|p| p["node"] == "v100-a") {
        for d in p["gpuDevices"].as_array().into_iter().flatten() {
            assert!(
                d.as_u64().expect("device") >= 2,
                "device {d:?} is taken by resnet-0"
            );
        }
    }
    let reason = status["unplaced"][0]["reason"].as_str().expect("reason");
    assert_eq!(reason, "needs 8 x V100M32, largest free block is 6");
}

#[test]
fn invalid_requests_name_every_bad_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: allot.dev/v1alpha1\nkind: ScheduleRequest\nmetadata: {name: x}\nspec:\n  tasks:\n  - name: a\n    replicas: -2\n    resources: {cpu: '1', memory: 1Gi}\n  - name: b\n    replicas: 1\n    resources: {cpu: '1', memory: 12GB}\n",
    )
    .expect("write");
    let out = allot(&[
        "plan",
        "-f",
        bad.to_str().expect("utf-8"),
        "--snapshot",
        "examples/cluster.json",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.tasks[0].replicas: must be >= 0, got -2"),
        "{err}"
    );
    assert!(err.contains("spec.tasks[1].resources.memory"), "{err}");
    assert!(err.contains("nothing was planned"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "no plan may be printed for an invalid request"
    );

    let out = allot(&[
        "plan",
        "-f",
        "examples/request.yaml",
        "--snapshot",
        "missing.json",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.json: cannot read"));
    let out = allot(&[
        "plan",
        "-f",
        "examples/request.yaml",
        "--snapshot",
        "examples/cluster.json",
        "--backend",
        "cplex",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown LP backend \"cplex\""));
}
