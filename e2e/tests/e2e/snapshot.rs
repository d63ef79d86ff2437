//! `allot snapshot` against the real API server: the file lists every node of the cluster with
//! its GPUs and every pod allot bound with the GPUs it holds, and `allot plan` and
//! `allot extender --snapshot` read it back.

use std::process::Command;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::Value;

use crate::support::{Cluster, allot_binary, pod, repo_root, skip, wait_running};

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn a_snapshot_of_the_cluster_lists_its_nodes_and_bound_gpus_and_plans_against_it()
-> Result<()> {
    let test = "a_snapshot_of_the_cluster_lists_its_nodes_and_bound_gpus_and_plans_against_it";
    let cluster = Cluster::from_env(test).await?;
    cluster
        .in_namespace("snapshot", |cluster, ns| async move {
            let pods = Api::<Pod>::namespaced(cluster.client.clone(), &ns);
            let bound = cluster.extender_required;
            if bound {
                let p = pod("snap-train", "allot", Some(2))?;
                pods.create(&PostParams::default(), &p).await?;
                wait_running(&pods, "snap-train").await?;
            } else {
                skip(test, "E2E_EXTENDER=0: no pod bound by allot to look for");
            }
            let dir = repo_root().join("target/e2e-logs");
            std::fs::create_dir_all(&dir)?;
            let file = dir.join("snapshot.json");
            let out = Command::new(allot_binary()?)
                .args(["snapshot", "-o"])
                .arg(&file)
                .env("KUBECONFIG", &cluster.kubeconfig)
                .output()
                .context("running allot snapshot")?;
            ensure!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let snap: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
            let nodes = Api::<Node>::all(cluster.client.clone())
                .list(&ListParams::default())
                .await?;
            let listed = snap["nodes"].as_array().context("nodes")?;
            ensure!(
                listed.len() == nodes.items.len(),
                "{} of {} nodes",
                listed.len(),
                nodes.items.len()
            );
            ensure!(
                listed
                    .iter()
                    .any(|n| n["gpus"].as_u64().unwrap_or(0) > 0 && n["model"].is_string()),
                "no GPU node with a model in the snapshot"
            );
            if bound {
                let key = |p: &&Value| p["namespace"] == ns.as_str() && p["name"] == "snap-train";
                let ours = snap["pods"].as_array().and_then(|p| p.iter().find(key));
                let ours = ours.context("the bound pod is not in the snapshot")?;
                ensure!(
                    ours["gpus"] == 2 && ours["devices"].as_array().map(Vec::len) == Some(2),
                    "{ours}"
                );
            }
            let request = repo_root().join("manifests/examples/schedulerequest.yaml");
            let plan = Command::new(allot_binary()?)
                .args(["plan", "--yaml-only", "-f"])
                .arg(&request)
                .arg("--snapshot")
                .arg(&file)
                .output()?;
            ensure!(
                plan.status.success(),
                "{}",
                String::from_utf8_lossy(&plan.stderr)
            );
            let status: Value = serde_saphyr::from_slice(&plan.stdout)?;
            ensure!(
                status["plan"].as_array().map(Vec::len) == Some(3),
                "{status}"
            );
            Ok(())
        })
        .await
}
