//! `allot snapshot` against the real API server: the file lists every node of the cluster with
//! its GPUs and every pod allot bound with the GPUs it holds, and `allot plan`,
//! `allot extender --snapshot` (its /filter passes a snapshot node a pod fits and fails one the
//! pod does not) and `allot simulate --nodes` read it back.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::Value;

use crate::extender::probe::{post_json, probe_filter};
use crate::support::{
    AllotProcess, Cluster, allot_binary, free_port, pod, repo_root, skip, wait_running,
};

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
            extender_filters_from(cluster, &file, &snap).await?;
            simulate_reads(&file, &snap)
        })
        .await
}

/// A GPU node of the snapshot no pod of it holds GPUs on: its name and GPU count.
fn free_gpu_node(snap: &Value) -> Result<(String, u64)> {
    let pods = snap["pods"].as_array().context("pods")?;
    ensure!(
        pods.iter().all(|p| p["node"].is_string()),
        "a snapshot pod without its node"
    );
    let held = |name: &str| pods.iter().any(|p| p["node"] == name);
    snap["nodes"]
        .as_array()
        .context("nodes")?
        .iter()
        .filter_map(|n| Some((n["name"].as_str()?, n["gpus"].as_u64()?)))
        .find(|(name, gpus)| *gpus > 0 && !held(name))
        .map(|(name, gpus)| (name.to_string(), gpus))
        .context("no GPU node of the snapshot is free")
}

/// `allot extender --snapshot FILE` on loopback ports of its own (killed when dropped, also
/// on failure): /filter passes a free snapshot node for a pod wanting all its GPUs, and fails
/// it for one wanting a GPU more.
async fn extender_filters_from(cluster: &Cluster, file: &Path, snap: &Value) -> Result<()> {
    let (node, gpus) = free_gpu_node(snap)?;
    let (port, admin) = (free_port()?, free_port()?);
    let (listen, admin) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{admin}"));
    let shown = file.display().to_string();
    let args = [
        "extender",
        "--snapshot",
        &shown,
        "--listen",
        &listen,
        "--admin-listen",
        &admin,
    ];
    let mut ext = AllotProcess::start(cluster, "extender-snapshot", &args)?;
    ext.wait_ready(&format!("http://{admin}/readyz")).await?;
    let url = format!("http://{listen}/filter");
    let more = u32::try_from(gpus + 1)?;
    let too_big = post_json(&url, &probe_filter(&[&node], more))?;
    let failed = ["FailedNodes", "FailedAndUnresolvableNodes"]
        .iter()
        .any(|k| too_big[k].get(&node).is_some());
    ensure!(
        failed && too_big["NodeNames"].as_array().is_none_or(Vec::is_empty),
        "{more} GPUs on {node} ({gpus} GPUs) passed: {too_big}"
    );
    let fits = post_json(&url, &probe_filter(&[&node], u32::try_from(gpus)?))?;
    ensure!(
        fits["NodeNames"] == serde_json::json!([node])
            && fits["Error"].as_str().is_none_or(str::is_empty),
        "{gpus} GPUs on the free {node}: {fits}"
    );
    println!("allot extender --snapshot: {gpus} GPUs pass on {node}, {more} fail");
    ext.check_alive()
}

/// `allot simulate --nodes FILE` takes the snapshot's nodes as its cluster.
fn simulate_reads(file: &Path, snap: &Value) -> Result<()> {
    let nodes = snap["nodes"].as_array().context("nodes")?;
    let gpus: u64 = nodes.iter().filter_map(|n| n["gpus"].as_u64()).sum();
    let pods = file.with_file_name("snapshot-pods.csv");
    let mut text = String::from("name,cpu_milli,memory_mib,num_gpu,gpu_milli\n");
    for i in 0..4 {
        text.push_str(&format!("p{i},1000,1024,1,1000\n"));
    }
    std::fs::write(&pods, text)?;
    let out = Command::new(allot_binary()?)
        .args([
            "simulate", "-q", "--json", "--policy", "fgd", "--seeds", "1",
        ])
        .arg("--pods")
        .arg(&pods)
        .arg("--nodes")
        .arg(file)
        .output()?;
    ensure!(
        out.status.success(),
        "allot simulate --nodes {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout)?;
    ensure!(
        v["nodes"].as_u64() == Some(nodes.len() as u64) && v["gpus"].as_u64() == Some(gpus),
        "simulate saw {} nodes and {} GPUs, the snapshot has {} and {gpus}",
        v["nodes"],
        v["gpus"],
        nodes.len()
    );
    Ok(())
}
