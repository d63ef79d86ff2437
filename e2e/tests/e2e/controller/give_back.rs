//! Elastic requests on the real control plane (issue 19 item 4, elastic half), on two kwok
//! GPU nodes of a model of their own: an elastic request grows when a node is added, and
//! gives its highest elastic replicas back when a request of higher priority cannot place
//! its minimum; the room stays with the higher-priority request (the lender does not grow
//! back into it on its next plans). A bare pod that fits nowhere then gets the room of two
//! more elastic replicas from the consolidator, before it would move anything.

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use super::two_nodes::{consolidator, node, on_two_nodes};
use super::{bound_pods, create};
use crate::extender::{extender_sees, touch_node};
use crate::support::{Cluster, WAIT, poll, skip};

const TEST: &str = "an_elastic_request_grows_with_a_node_and_gives_back_to_a_higher_priority_one";

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn an_elastic_request_grows_with_a_node_and_gives_back_to_a_higher_priority_one() -> Result<()>
{
    let cluster = Cluster::from_env(TEST).await?;
    if !cluster.extender_required {
        skip(
            TEST,
            "E2E_EXTENDER=0: no allot extender to hold pods to their planned nodes",
        );
        return Ok(());
    }
    on_two_nodes(
        &cluster,
        "lend",
        "sr-give-back",
        |cluster, ns, n| async move { scenario(cluster, &ns, &n.model, &n.a, &n.b).await },
    )
    .await
}

/// A task of one-GPU replicas of `model`; `counts` holds `replicas` or the elastic bounds.
fn task(name: &str, model: &str, gpus: u32, counts: serde_json::Value) -> serde_json::Value {
    let mut t = json!({
        "name": name,
        "resources": { "cpu": "100m", "memory": "64Mi", "gpu": gpus },
        "gpuModels": [model],
        "podTemplate": { "spec": { "containers": [
            { "name": "main", "image": "allot-e2e/pause:never-pulled" }
        ] } }
    });
    for (k, v) in counts.as_object().into_iter().flatten() {
        t[k] = v.clone();
    }
    t
}

/// The nodes of `pods` (name -> (node, planned node)), by pod name.
fn nodes_of(pods: &BTreeMap<String, (String, Option<String>)>) -> BTreeMap<&str, &str> {
    pods.iter()
        .map(|(p, (n, _))| (p.as_str(), n.as_str()))
        .collect()
}

/// Objects the Events with `reason` in `ns` are about.
async fn regarding(cluster: &Cluster, ns: &str, reason: &str) -> Result<Vec<String>> {
    let list = Api::<Event>::namespaced(cluster.client.clone(), ns)
        .list(&ListParams::default())
        .await?;
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.regarding?.name)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

async fn scenario(cluster: &Cluster, ns: &str, model: &str, a: &str, b: &str) -> Result<()> {
    let nodes = Api::<Node>::all(cluster.client.clone());
    nodes
        .create(&PostParams::default(), &node(a, model, 4)?)
        .await
        .context("node a")?;
    extender_sees(a, 4, false).await?;
    // Consolidation on, for the last part: a bare pod waiting.
    let (mut ctl, _) = consolidator(cluster, ns, "give-back", &[]).await?;

    // Priority 0, one to six one-GPU replicas: four fit node a.
    let elastic = json!({ "minReplicas": 1, "maxReplicas": 6 });
    let spec = json!({ "priority": 0, "tasks": [task("w", model, 1, elastic)] });
    create(cluster, ns, "low", spec).await?;
    let four = bound_pods(cluster, ns, "low", 4).await?;
    ensure!(nodes_of(&four).values().all(|n| *n == a), "low: {four:?}");

    // A node with two GPUs more: the request grows to its maximum.
    nodes
        .create(&PostParams::default(), &node(b, model, 2)?)
        .await
        .context("node b")?;
    // Known to the extender (a pod of no GPU passes it): the request may have grown onto it
    // already, and a pod the extender turned down while the node was new to it waits for the
    // next cluster event, which a node update is.
    extender_sees(b, 0, false).await?;
    touch_node(cluster, b).await?;
    let six = bound_pods(cluster, ns, "low", 6).await?;
    let grown: Vec<&str> = nodes_of(&six)
        .into_iter()
        .filter(|(_, n)| *n == b)
        .map(|(p, _)| p)
        .collect();
    ensure!(
        grown == ["low-w-4", "low-w-5"],
        "low grew onto b as {six:?}"
    );
    println!("low grew to 6 with node {b}: {grown:?}");

    // Priority 10 needs two GPUs on one node: low's two highest replicas give theirs back.
    let spec = json!({ "priority": 10, "tasks": [task("t", model, 2, json!({ "replicas": 1 }))] });
    create(cluster, ns, "high", spec).await?;
    let high = bound_pods(cluster, ns, "high", 1)
        .await
        .with_context(|| ctl.log_tail(12))?;
    ensure!(
        nodes_of(&high).values().all(|n| *n == b),
        "high bound as {high:?}, not on {b}"
    );
    let left = bound_pods(cluster, ns, "low", 4).await?;
    ensure!(
        left.keys().all(|p| !grown.contains(&p.as_str())),
        "low kept {left:?}"
    );
    let given = regarding(cluster, ns, "GivenBack").await?;
    ensure!(
        given == grown,
        "GivenBack Events on {given:?}, not on {grown:?}"
    );
    let took = regarding(cluster, ns, "ElasticGivenBack").await?;
    ensure!(took == ["high"], "ElasticGivenBack Events on {took:?}");

    // Past the lender's next plans (a retry every 15 s): the room stays with high.
    tokio::time::sleep(std::time::Duration::from_secs(17)).await;
    let low = super::requests(cluster, ns).get("low").await?;
    let status = &low.data["status"];
    ensure!(
        status["counts"]["planned"] == 4
            && status["unplaced"].as_array().is_some_and(|u| u.len() == 2),
        "low's status after high took its room: {status}"
    );
    let still = bound_pods(cluster, ns, "high", 1).await?;
    ensure!(still == high, "high moved: {still:?}");
    bound_pods(cluster, ns, "low", 4).await?;
    // A bare 2-GPU pod of the same priority fits nowhere: the consolidator gives back low's
    // two highest elastic replicas (on a) before it would move anything.
    let solo: Pod = serde_json::from_value(json!({
        "metadata": { "name": "solo", "annotations": { "allot.dev/gpu-models": model } },
        "spec": { "schedulerName": "allot", "containers": [{ "name": "main",
            "image": "allot-e2e/pause:never-pulled",
            "resources": { "requests": { "cpu": "100m", "memory": "64Mi" },
                           "limits": { "nvidia.com/gpu": "2" } } }] }
    }))?;
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), ns);
    pods.create(&PostParams::default(), &solo)
        .await
        .context("solo")?;
    let on = poll("solo to be bound", WAIT, || async {
        Ok(pods.get("solo").await?.spec.and_then(|s| s.node_name))
    })
    .await
    .with_context(|| ctl.log_tail(20))?;
    ensure!(on == a, "solo bound on {on}, not {a}");
    let kept = bound_pods(cluster, ns, "low", 2).await?;
    ensure!(
        kept.keys().map(String::as_str).collect::<Vec<_>>() == ["low-w-0", "low-w-1"],
        "low kept {kept:?}"
    );
    let given = regarding(cluster, ns, "GivenBack").await?;
    ensure!(
        given == ["low-w-2", "low-w-3", "low-w-4", "low-w-5"],
        "GivenBack Events on {given:?}"
    );
    ctl.check_alive()?;
    println!(
        "high on {b}; low gave back {given:?}; low status: {}",
        status["conditions"]
    );
    Ok(())
}
