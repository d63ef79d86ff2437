//! The workload history (issue 20 items 1 and 5): pods created and deleted over a minute
//! behind the real kube-scheduler are recorded by the extender e2e/up starts with
//! `--history-dir $ALLOT_E2E_DIR/history --history-plain-names`, and the recorded directory
//! replays with `allot simulate --dynamic --pods DIR/`. (`allot train --history`, item 4, is
//! not built yet.)

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};

use crate::support::{Cluster, allot_binary, pod, poll, skip, wait_running};

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
            Ok(())
        })
        .await
}
