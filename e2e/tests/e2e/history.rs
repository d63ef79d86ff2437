//! The workload history (issue 20 items 1 and 5): pods created and deleted over a minute
//! behind the real kube-scheduler are recorded by the extender e2e/up starts with
//! `--history-dir $ALLOT_E2E_DIR/history --history-plain-names`, and the recorded directory
//! replays with `allot simulate --dynamic --pods DIR/` and trains with
//! `allot train --history DIR` (a short run), whose policy file names the history and loads
//! with `allot simulate --policy-file`. One recorder among several replicas: `lease.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};

use crate::support::{Cluster, allot_binary, pod, poll, skip, wait_running};

mod lease;

/// Pods created, one every [`GAP`]: a minute of arrivals.
const PODS: usize = 12;
const GAP: Duration = Duration::from_secs(5);
/// The recorder writes every 5 s; generous.
const RECORDED: Duration = Duration::from_secs(60);

fn history_dir() -> PathBuf {
    let base =
        std::env::var_os("ALLOT_E2E_DIR").map_or_else(|| "/tmp/allot-e2e".into(), PathBuf::from);
    base.join("history")
}

/// The rows of the pod files (not open.csv) whose name is in namespace `ns`.
fn closed_rows(ns: &str) -> Result<Vec<String>> {
    let dir = history_dir();
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("pods-") && name.ends_with(".csv") {
            let text = std::fs::read_to_string(&path)?;
            rows.extend(
                text.lines()
                    .filter(|l| l.starts_with(&format!("{ns}/")))
                    .map(str::to_string),
            );
        }
    }
    Ok(rows)
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn records_pods_created_and_deleted_and_the_record_replays() -> Result<()> {
    let test = "records_pods_created_and_deleted_and_the_record_replays";
    let cluster = Cluster::from_env(test).await?;
    if !cluster.extender_required {
        skip(test, "E2E_EXTENDER=0: no extender records");
        return Ok(());
    }
    cluster
        .in_namespace("history", |cluster, ns| async move {
            let pods = Api::<Pod>::namespaced(cluster.client.clone(), &ns);
            for i in 0..PODS {
                let name = format!("h{i}");
                pods.create(&PostParams::default(), &pod(&name, "allot", Some(1))?)
                    .await?;
                wait_running(&pods, &name).await?;
                if i % 2 == 1 {
                    pods.delete(&format!("h{}", i - 1), &DeleteParams::default())
                        .await?;
                }
                tokio::time::sleep(GAP).await;
            }
            let want = PODS / 2;
            let rows = poll("the deleted pods recorded", RECORDED, || {
                let ns = ns.clone();
                async move {
                    let rows = closed_rows(&ns)?;
                    Ok((rows.len() >= want).then_some(rows))
                }
            })
            .await?;
            ensure!(
                rows.len() == want,
                "{} rows for {want} deleted pods: {rows:?}",
                rows.len()
            );
            for row in &rows {
                let cells: Vec<&str> = row.split(',').collect();
                ensure!(cells.len() == 17, "not a version-1 row: {row}");
                ensure!(
                    cells[3] == "1" && cells[4] == "1000",
                    "one whole GPU: {row}"
                );
                ensure!(cells[7] == "Terminated", "phase: {row}");
                let created: u64 = cells[8].parse()?;
                let deleted: u64 = cells[9].parse()?;
                let scheduled: u64 = cells[10].parse()?;
                ensure!(created <= scheduled && scheduled <= deleted, "times: {row}");
                ensure!(
                    !cells[11].is_empty() && !cells[12].is_empty(),
                    "node and devices: {row}"
                );
                ensure!(cells[16] == "1", "version: {row}");
            }
            let dir = format!("{}/", history_dir().display());
            let out = Command::new(allot_binary()?)
                .args([
                    "simulate",
                    "--dynamic",
                    "--pods",
                    &dir,
                    "--policy",
                    "fgd,bestfit",
                ])
                .args(["--seeds", "42", "--threads", "1", "-q"])
                .output()?;
            ensure!(
                out.status.success(),
                "allot simulate --dynamic --pods {dir} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let table = String::from_utf8_lossy(&out.stdout);
            ensure!(
                table.contains("fgd") && table.contains("bestfit"),
                "{table}"
            );
            trains_and_the_policy_loads(&history_dir(), want)
        })
        .await
}

/// A training run of seconds: one epoch of each gradient phase, no search, one thread.
const SHORT_TRAINING: [&str; 13] = [
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
    "--threads",
    "1",
    "-q",
];

/// `allot train --history DIR` with `extra` flags (one epoch of each gradient phase, no
/// search: seconds): the policy file it wrote, read back.
fn train(dir: &Path, policy: &Path, extra: &[&str]) -> Result<serde_json::Value> {
    let _ = std::fs::remove_file(policy);
    let shown = dir.display().to_string();
    let out = Command::new(allot_binary()?)
        .args(["train", "--history", &shown])
        .args(extra)
        .arg("-o")
        .arg(policy)
        .args(SHORT_TRAINING)
        .output()?;
    ensure!(
        out.status.success(),
        "allot train --history {shown} {extra:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text =
        std::fs::read_to_string(policy).with_context(|| format!("reading {}", policy.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// `allot train --history DIR` writes a policy file whose provenance names DIR, and `allot
/// simulate` replays DIR with it; so does `--dynamic`, which replays DIR's departures too.
fn trains_and_the_policy_loads(dir: &Path, recorded: usize) -> Result<()> {
    let out_dir = dir.with_file_name("history-train");
    std::fs::create_dir_all(&out_dir)?;
    let policy = out_dir.join("policy.json");
    let shown = dir.display().to_string();
    let file = train(dir, &policy, &[])?;
    let h = &file["provenance"]["history"];
    ensure!(h["dir"] == shown.as_str(), "history named: {h}");
    ensure!(
        h["digest"].as_str().is_some_and(|d| d.len() == 32),
        "digest: {h}"
    );
    ensure!(
        h["records"]
            .as_u64()
            .is_some_and(|n| n as usize >= recorded)
            && h["decisions"]
                .as_u64()
                .is_some_and(|n| n as usize >= recorded),
        "at least this test's {recorded} pods, each with its node: {h}"
    );
    let pods = format!("{shown}/");
    let out = Command::new(allot_binary()?)
        .args(["simulate", "--pods", &pods, "--policy", "learned,fgd"])
        .arg("--policy-file")
        .arg(&policy)
        .args(["--seeds", "42", "--threads", "1", "-q"])
        .output()?;
    ensure!(
        out.status.success(),
        "allot simulate --policy-file {} failed: {}",
        policy.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    ensure!(table.contains("learned"), "{table}");
    // And with the history replayed as it ran (arrivals and departures at their recorded
    // times): the provenance names that setting.
    let file = train(dir, &out_dir.join("policy-dynamic.json"), &["--dynamic"])?;
    let hyper = &file["provenance"]["hyperparameters"];
    ensure!(
        hyper["dynamic_time_scale"] == 1.0
            && file["provenance"]["history"]["dir"] == shown.as_str(),
        "a dynamic run on the history names both: {}",
        file["provenance"]
    );
    Ok(())
}
