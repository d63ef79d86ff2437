//! `allot simulate` as users run it: the binary, its output and its errors.

#[path = "common/cli.rs"]
mod cli;

use cli::{allot, stderr};

#[test]
fn json_output_has_the_documented_fields() {
    let out = allot(&[
        "simulate",
        "--policy",
        "bestfit,fgd",
        "--seeds",
        "42",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    assert_eq!(v["trace"], "default");
    assert_eq!(v["gpus"], 6212);
    let policies = v["policies"].as_array().expect("policies array");
    assert_eq!(policies.len(), 2);
    for p in policies {
        assert_eq!(p["trace"], "default");
        assert_eq!(p["seeds"], serde_json::json!([42]));
        let mean = p["unallocated_gpu_pct_at_100"]["mean"]
            .as_f64()
            .expect("mean");
        assert!((0.0..=100.0).contains(&mean), "{mean}");
        assert!(p["unallocated_gpu_pct_at_100"]["sd"].is_number());
        assert!(p["published_unallocated_gpu_pct_at"]["mean"].is_number());
    }
}

#[test]
fn leftover_splits_the_unallocated_gpu_and_adds_up_to_it() {
    let out = allot(&[
        "simulate",
        "--policy",
        "fgd",
        "--seeds",
        "42",
        "--leftover",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    let row = &v["leftover"][0];
    assert_eq!(row["policy"], "fgd");
    assert_eq!(row["seeds"], 1);
    let part = |k: &str| row[k].as_f64().expect(k);
    let total = part("unallocated_pct");
    let sum = part("partial_pct") + part("idle_pct") + part("stranded_pct");
    assert!((total - sum).abs() < 1e-9, "{total} against {sum}");
    // Averaged over the same events as the table's figure, so equal to it.
    let table = v["policies"][0]["unallocated_gpu_pct_at"]["mean"]
        .as_f64()
        .expect("mean");
    assert!((total - table).abs() < 1e-9, "{total} against {table}");
    // On the default trace, an 810-milli share alone on its GPU is the largest leftover.
    assert_eq!(row["largest_partial"][0][0], 190);
    // Some of the partly used GPU is kept free by its nodes' CPU, never more than all of it.
    let cpu_bound = part("partial_cpu_bound_pct");
    assert!(
        cpu_bound > 0.0 && cpu_bound < part("partial_pct"),
        "{cpu_bound}"
    );
    let text = allot(&[
        "simulate",
        "-q",
        "--policy",
        "fgd",
        "--seeds",
        "42",
        "--leftover",
    ]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("Where the unallocated GPU lies at 100 % arrived"),
        "{stdout}"
    );
    let plain = allot(&["simulate", "--policy", "fgd", "--seeds", "42", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&plain.stdout).expect("json");
    assert!(v.get("leftover").is_none(), "only with --leftover");
}

#[test]
fn files_are_written_with_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("res");
    let out = allot(&[
        "simulate",
        "-q",
        "--policy",
        "packing",
        "--seeds",
        "1",
        "--out",
        out_dir.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    for file in ["summary.json", "runs.csv", "curves.csv", "unallocated.svg"] {
        let text = std::fs::read_to_string(out_dir.join(file)).expect(file);
        assert!(text.len() > 100, "{file} is nearly empty");
    }
    let svg = std::fs::read_to_string(out_dir.join("unallocated.svg")).expect("svg");
    assert!(svg.starts_with("<svg") && svg.contains("packing"));
    let runs = std::fs::read_to_string(out_dir.join("runs.csv")).expect("runs");
    assert_eq!(runs.lines().count(), 2);
}

#[test]
fn bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = dir.path().join("pods.csv");
    std::fs::write(
        &pods,
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1000,1024,1,500\np1,1000,-5,0,0\n",
    )
    .expect("write");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--policy".into(), "tetris".into()],
            "unknown policy \"tetris\"",
        ),
        (vec!["--seeds".into(), "9-1".into()], "start > end"),
        (
            vec!["--pods".into(), "nosuchtrace".into()],
            "trace \"nosuchtrace\" not found",
        ),
        (
            vec!["--pods".into(), "missing.csv".into()],
            "missing.csv: no such file",
        ),
        (
            vec!["--pods".into(), pods.display().to_string()],
            "pods.csv:3: column `memory_mib`",
        ),
        (vec!["--at".into(), "200".into()], "200"),
    ];
    for (args, expected) in cases {
        let mut full = vec!["simulate".to_string(), "-q".to_string()];
        full.extend(args.iter().cloned());
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let out = allot(&refs);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = stderr(&out);
        assert!(
            err.contains(expected),
            "{args:?}: expected {expected:?} in {err}"
        );
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    }
}

#[test]
fn a_cluster_without_gpus_is_refused_and_impossible_pods_just_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cpu_nodes = dir.path().join("nodes.csv");
    std::fs::write(&cpu_nodes, "name,cpu,memory,gpus,model\nc0,32,128Gi,0,\n").expect("write");
    let out = allot(&[
        "simulate",
        "-q",
        "--nodes",
        cpu_nodes.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("has no GPUs"), "{}", stderr(&out));

    let nodes = dir.path().join("gpu-nodes.csv");
    // Eight 1-GPU nodes: an 8-GPU pod fits nowhere and must count as a failed placement.
    let rows: String = (0..8).map(|i| format!("g{i},8,64Gi,1,T4\n")).collect();
    std::fs::write(&nodes, format!("name,cpu,memory,gpus,model\n{rows}")).expect("write");
    let pods = dir.path().join("pods.json");
    std::fs::write(
        &pods,
        r#"[{"name":"huge","cpu":"1","memory":"1Gi","gpus":8},{"name":"small","cpu":"1","memory":"1Gi","gpuMilli":500}]"#,
    )
    .expect("write");
    let out = allot(&[
        "simulate",
        "--json",
        "--policy",
        "fgd",
        "--seeds",
        "1",
        "--nodes",
        nodes.to_str().expect("utf-8"),
        "--pods",
        pods.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        v["policies"][0]["failed_pods"]["mean"]
            .as_f64()
            .expect("failed")
            >= 1.0
    );
}

#[test]
fn every_subcommand_has_help_and_train_refuses_what_it_cannot_learn_from() {
    let out = allot(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "extender",
        "controller",
        "agent",
        "simulate",
        "train",
        "plan",
        "crdgen",
    ] {
        assert!(help.contains(cmd), "--help lacks {cmd}");
        let sub = allot(&[cmd, "--help"]);
        assert!(sub.status.success(), "{cmd} --help failed");
    }
    // Refused before any replay: an evaluation seed, and a run that would train nothing.
    let out = allot(&["train", "--seeds", "41-42", "-o", "/nonexistent/p.json"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("seed 42 is an evaluation seed"),
        "{}",
        stderr(&out)
    );
    let out = allot(&[
        "train",
        "--epochs",
        "0",
        "--supervised-epochs",
        "0",
        "--search-generations",
        "0",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("zero epochs"), "{}", stderr(&out));
}

#[test]
fn check_learned_passes_the_embedded_policy_and_fails_a_regressed_one() {
    let out = allot(&[
        "simulate",
        "-q",
        "--policy",
        "fgd,learned",
        "--seeds",
        "1",
        "--check-learned",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("against FGD's"), "{}", stderr(&out));
    // Spreading GPU pods over the emptiest nodes: far worse than FGD.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("spread.json");
    let mut weights = vec![0.0; allot::policy::learned::features::COUNT];
    weights[0] = 1.0;
    weights[1] = 0.5;
    allot::policy::learned::PolicyFile::new(weights, 100, Default::default())
        .save(&path)
        .expect("write the policy file");
    let out = allot(&[
        "simulate",
        "-q",
        "--policy",
        "fgd,learned",
        "--seeds",
        "1",
        "--check-learned",
        "--policy-file",
        path.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("regressed"), "{}", stderr(&out));
    let out = allot(&[
        "simulate",
        "-q",
        "--policy",
        "fgd",
        "--seeds",
        "1",
        "--check-learned",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("needs both learned and fgd"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_trace_without_published_results_drops_those_columns_and_csv_quotes_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = dir.path().join("team a, week 2.csv");
    let mut text = String::from("name,cpu_milli,memory_mib,num_gpu,gpu_milli\n");
    for i in 0..400 {
        text.push_str(&format!(
            "p{i},4000,8192,1,{}\n",
            if i % 2 == 0 { 500 } else { 1000 }
        ));
    }
    std::fs::write(&pods, text).expect("write");
    let out_dir = dir.path().join("res");
    let out = allot(&[
        "simulate",
        "-q",
        "--pods",
        pods.to_str().expect("utf-8"),
        "--policy",
        "fgd,bestfit",
        "--seeds",
        "1",
        "--out",
        out_dir.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let header = table.lines().nth(1).expect("a header line");
    assert!(
        header.starts_with("policy") && header.contains("frag ratio %"),
        "{table}"
    );
    for absent in ["published", "repro", "gap to LP"] {
        assert!(!table.contains(absent), "{absent:?} in\n{table}");
    }
    assert!(
        table.contains("frag % = "),
        "the columns are explained:\n{table}"
    );
    let runs = std::fs::read_to_string(out_dir.join("runs.csv")).expect("runs");
    let mut reader = csv::Reader::from_reader(runs.as_bytes());
    for row in reader.records() {
        let row = row.expect("a well-formed CSV row");
        assert_eq!(&row[0], "team a, week 2", "{runs}");
        assert_eq!(row.len(), 11);
    }
    let curves = std::fs::read_to_string(out_dir.join("curves.csv")).expect("curves");
    let mut reader = csv::Reader::from_reader(curves.as_bytes());
    assert_eq!(reader.records().count(), 2 * 3, "2 policies x 3 metrics");
}

#[test]
fn a_snapshot_file_serves_as_the_node_list_and_a_bad_one_names_its_field() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = dir.path().join("pods.csv");
    let mut text = String::from("name,cpu_milli,memory_mib,num_gpu,gpu_milli\n");
    for i in 0..40 {
        text.push_str(&format!(
            "p{i},2000,4096,1,{}\n",
            if i % 2 == 0 { 300 } else { 1000 }
        ));
    }
    std::fs::write(&pods, text).expect("write");
    let snapshot = format!("{root}/examples/cluster.json");
    let args = |nodes: &str| {
        allot(&[
            "simulate",
            "-q",
            "--json",
            "--policy",
            "fgd",
            "--seeds",
            "1",
            "--pods",
            pods.to_str().expect("utf-8"),
            "--nodes",
            nodes,
        ])
    };
    let out = args(&snapshot);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (v["nodes"].as_u64(), v["gpus"].as_u64()),
        (Some(4), Some(14)),
        "{v}"
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"nodes": [{"name": "a", "cpu": "x", "memory": "1Gi"}], "pods": []}"#,
    )
    .expect("write");
    let out = args(bad.to_str().expect("utf-8"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("[0].cpu"), "{}", stderr(&out));
}
