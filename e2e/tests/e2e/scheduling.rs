//! The real kube-scheduler with the `allot` profile places GPU pods on kwok's fake GPU nodes:
//! the profile, the GPU capacity of the nodes and the pod lifecycle. They hold with or without
//! the allot extender (`E2E_EXTENDER`); what the extender adds is proved in `extender.rs`.

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, PostParams};

use crate::support::{Cluster, GPU, WAIT, pod, poll, wait_running};

const MODEL_LABEL: &str = "allot.dev/gpu-model";

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn allot_profile_binds_a_gpu_pod_to_a_kwok_gpu_node() -> Result<()> {
    let test = "allot_profile_binds_a_gpu_pod_to_a_kwok_gpu_node";
    let cluster = Cluster::from_env(test).await?;
    cluster
        .in_namespace("gpu-pod", |cluster, ns| async move {
            let pods = Api::<Pod>::namespaced(cluster.client.clone(), &ns);
            pods.create(&PostParams::default(), &pod("gpu-1", "allot", Some(1))?)
                .await?;
            let running = wait_running(&pods, "gpu-1").await?;
            let node_name = running
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .context("a Running pod without a node")?;

            let node = Api::<Node>::all(cluster.client.clone())
                .get(&node_name)
                .await?;
            let labels = node.metadata.labels.unwrap_or_default();
            ensure!(
                labels.contains_key(MODEL_LABEL),
                "node {node_name} has no {MODEL_LABEL} label"
            );
            let gpus = node
                .status
                .and_then(|s| s.allocatable)
                .and_then(|a| a.get(GPU).cloned())
                .with_context(|| format!("node {node_name} has no allocatable {GPU}"))?;
            ensure!(
                gpus.0 != "0",
                "node {node_name} has no GPUs but got a GPU pod"
            );

            // The Scheduled event comes from the `allot` profile, not the default one.
            let events = Api::<Event>::namespaced(cluster.client.clone(), &ns);
            let seen: Vec<String> = poll("the Scheduled event of gpu-1", WAIT, || {
                let events = events.clone();
                async move {
                    let list = events
                        .list(&ListParams::default().fields("involvedObject.name=gpu-1"))
                        .await?;
                    let seen: Vec<String> = list
                        .items
                        .into_iter()
                        .filter(|e| e.reason.as_deref() == Some("Scheduled"))
                        .map(|e| {
                            e.reporting_component
                                .filter(|c| !c.is_empty())
                                .or_else(|| e.source.and_then(|s| s.component))
                                .unwrap_or_default()
                        })
                        .collect();
                    Ok((!seen.is_empty()).then_some(seen))
                }
            })
            .await?;
            ensure!(
                seen.iter().all(|c| c == "allot"),
                "Scheduled by {seen:?}, expected the allot profile"
            );
            println!(
                "gpu-1 bound to {node_name} ({}: {}) by {seen:?}",
                MODEL_LABEL, labels[MODEL_LABEL]
            );
            Ok(())
        })
        .await
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn a_pod_wanting_more_gpus_than_any_node_stays_pending() -> Result<()> {
    let test = "a_pod_wanting_more_gpus_than_any_node_stays_pending";
    let cluster = Cluster::from_env(test).await?;
    cluster
        .in_namespace("too-many-gpus", |cluster, ns| async move {
            let pods = Api::<Pod>::namespaced(cluster.client.clone(), &ns);
            // openb's largest GPU node has 8 GPUs.
            pods.create(&PostParams::default(), &pod("gpu-64", "allot", Some(64))?)
                .await?;
            let message = poll("gpu-64 to be reported Unschedulable", WAIT, || {
                let pods = pods.clone();
                async move {
                    let p = pods.get("gpu-64").await?;
                    let cond = p
                        .status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .into_iter()
                        .find(|c| c.type_ == "PodScheduled" && c.status == "False");
                    Ok(cond
                        .filter(|c| c.reason.as_deref() == Some("Unschedulable"))
                        .map(|c| c.message.unwrap_or_default()))
                }
            })
            .await?;
            ensure!(
                message.contains(GPU),
                "Unschedulable without naming {GPU}: {message}"
            );
            let p = pods.get("gpu-64").await?;
            ensure!(
                p.spec.and_then(|s| s.node_name).is_none(),
                "gpu-64 was bound"
            );
            Ok(())
        })
        .await
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn the_default_profile_still_schedules_plain_pods() -> Result<()> {
    let cluster = Cluster::from_env("the_default_profile_still_schedules_plain_pods").await?;
    cluster
        .in_namespace("default-profile", |cluster, ns| async move {
            let pods = Api::<Pod>::namespaced(cluster.client.clone(), &ns);
            pods.create(
                &PostParams::default(),
                &pod("plain", "default-scheduler", None)?,
            )
            .await?;
            wait_running(&pods, "plain").await?;
            Ok(())
        })
        .await
}
