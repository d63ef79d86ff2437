//! Failover scenarios of `allot controller`: a deleted node, an unhealthy GPU and stale
//! NodeTelemetry each move the replicas they affect, and the status records the move.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use super::{bound_pods, controller, create, status_where, task};
use crate::support::{self, Cluster, WAIT, poll, telemetry_api};

/// Delete `node`, run `body`, then put the node back as it was (kwok adopts it again).
async fn without_node<F, Fut>(cluster: &Cluster, node: &str, body: F) -> Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let nodes = Api::<Node>::all(cluster.client.clone());
    let mut saved = nodes.get(node).await?;
    nodes.delete(node, &DeleteParams::default()).await?;
    let outcome = body().await;
    saved.metadata.resource_version = None;
    saved.metadata.uid = None;
    saved.metadata.creation_timestamp = None;
    saved.metadata.managed_fields = None;
    let restored = poll(&format!("node {node} restored"), WAIT, || {
        let (nodes, saved) = (nodes.clone(), saved.clone());
        async move {
            match nodes.create(&PostParams::default(), &saved).await {
                Ok(_) => Ok(Some(())),
                // Still being deleted: try again.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
    })
    .await;
    outcome.and(restored)
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn deleting_a_node_moves_its_replicas_and_the_status_says_so() -> Result<()> {
    let test = "deleting_a_node_moves_its_replicas_and_the_status_says_so";
    let cluster = Cluster::from_env(test).await?;
    cluster
        .in_namespace("sr-failover", |cluster, ns| async move {
            let _ctl = controller(cluster, &ns, "controller-failover").await?;
            let spec = json!({ "tasks": [task("svc", 1, json!({ "cpu": "100m", "memory": "64Mi", "gpu": 1 }))] });
            create(cluster, &ns, "mover", spec).await?;
            let before = bound_pods(cluster, &ns, "mover", 1).await?;
            let (old_node, _) = before.get("mover-svc-0").context("mover-svc-0")?.clone();
            without_node(cluster, &old_node, || async {
                let status = status_where(cluster, &ns, "mover", "a recorded move", |s| {
                    s["moves"].as_array().is_some_and(|m| !m.is_empty())
                })
                .await?;
                let m = &status["moves"][0];
                ensure!(m["from"] == old_node.as_str(), "move: {m}");
                ensure!(m["reason"] == "NodeDeleted", "move: {m}");
                let after = poll("mover-svc-0 bound elsewhere", WAIT, || async {
                    let b = bound_pods(cluster, &ns, "mover", 1).await?;
                    let node = b.get("mover-svc-0").map(|(n, _)| n.clone());
                    Ok(node.filter(|n| *n != old_node))
                })
                .await?;
                println!("mover-svc-0 moved {old_node} -> {after}: {m}");
                Ok(())
            })
            .await
        })
        .await
}

/// Telemetry for `node` as an agent would write it: heartbeat `age_secs` ago, `gpus` devices
/// of which `unhealthy` is reported Unhealthy.
async fn publish_telemetry(
    cluster: &Cluster,
    node: &str,
    age_secs: u64,
    gpus: u32,
    unhealthy: Option<u32>,
) -> Result<()> {
    let health: Vec<Option<&str>> = (0..gpus)
        .map(|i| (Some(i) == unhealthy).then_some("e2e"))
        .collect();
    support::publish_telemetry(cluster, node, "e2e", Duration::from_secs(age_secs), &health).await
}

async fn node_gpus(cluster: &Cluster, node: &str) -> Result<u32> {
    let n = Api::<Node>::all(cluster.client.clone()).get(node).await?;
    let q = n
        .status
        .and_then(|s| s.allocatable)
        .and_then(|a| a.get("nvidia.com/gpu").cloned())
        .context("no GPUs")?;
    Ok(q.0.parse()?)
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn an_unhealthy_gpu_and_stale_telemetry_move_replicas() -> Result<()> {
    let test = "an_unhealthy_gpu_and_stale_telemetry_move_replicas";
    let cluster = Cluster::from_env(test).await?;
    let mut touched: Vec<String> = Vec::new();
    let outcome = cluster
        .in_namespace("sr-telemetry", |cluster, ns| {
            let touched = &mut touched;
            async move {
                let _ctl = controller(cluster, &ns, "controller-telemetry").await?;
                let spec = json!({ "tasks": [task("g", 1, json!({ "cpu": "100m", "memory": "64Mi", "gpu": 1 }))] });
                create(cluster, &ns, "health", spec).await?;
                let first = bound_pods(cluster, &ns, "health", 1).await?;
                let (node, _) = first.get("health-g-0").context("health-g-0")?.clone();
                let pod = Api::<Pod>::namespaced(cluster.client.clone(), &ns).get("health-g-0").await?;
                let device: u32 = pod
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("allot.dev/planned-devices"))
                    .context("no planned devices")?
                    .parse()?;
                touched.push(node.clone());
                publish_telemetry(cluster, &node, 0, node_gpus(cluster, &node).await?, Some(device)).await?;
                let status = status_where(cluster, &ns, "health", "a GpuUnhealthy move", |s| {
                    s["moves"].as_array().is_some_and(|m| m.iter().any(|m| m["reason"] == "GpuUnhealthy"))
                })
                .await?;
                println!("unhealthy GPU {device} on {node}: {}", status["moves"]);

                let second = poll("health-g-0 bound again", WAIT, || async {
                    let b = bound_pods(cluster, &ns, "health", 1).await?;
                    let uid_changed = Api::<Pod>::namespaced(cluster.client.clone(), &ns)
                        .get_opt("health-g-0")
                        .await?
                        .and_then(|p| p.metadata.uid)
                        != pod.metadata.uid;
                    Ok(b.get("health-g-0").filter(|_| uid_changed).map(|(n, _)| n.clone()))
                })
                .await?;
                if !touched.contains(&second) {
                    touched.push(second.clone());
                }
                publish_telemetry(cluster, &second, 600, node_gpus(cluster, &second).await?, None).await?;
                let status = status_where(cluster, &ns, "health", "a TelemetryStale move", |s| {
                    s["moves"].as_array().is_some_and(|m| m.iter().any(|m| m["reason"] == "TelemetryStale"))
                })
                .await?;
                let m = status["moves"]
                    .as_array()
                    .and_then(|m| m.iter().find(|m| m["reason"] == "TelemetryStale"))
                    .cloned()
                    .unwrap_or_default();
                ensure!(m["from"] == second.as_str(), "stale move: {m}");
                println!("stale telemetry on {second}: {m}");
                Ok(())
            }
        })
        .await;
    let api = telemetry_api(&cluster);
    for node in touched {
        let _ = api.delete(&node, &DeleteParams::default()).await;
    }
    outcome
}
