//! A two-hop consolidation on the real control plane (issue 19): three kwok GPU nodes of a
//! model of their own. `a` (2 GPUs) holds a one-GPU pod of ReplicaSet `p`; `b` (1 GPU) a
//! half-GPU pod of ReplicaSet `q`; `c` (1 GPU) a bare half-GPU pod, which never moves. A
//! two-GPU pod fits only `a` once `p`'s pod leaves it, and that pod fits nowhere as the cluster
//! stands: no single hop makes room. The consolidator plans a chain: `q`'s pod moves on from
//! `b` to `c` (the middle hop), then `p`'s pod into the room it leaves on `b`, and the two-GPU
//! pod binds on `a`. The pods are put in place by cordoning the other nodes.

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::consolidation::{annotation, api, extender_log, object};
use super::two_nodes::{consolidator, node, on_two_nodes};
use crate::extender::extender_sees;
use crate::support::{Cluster, WAIT, poll, skip};

const TEST: &str = "a_chain_of_two_moves_makes_room_where_no_single_move_does";

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn a_chain_of_two_moves_makes_room_where_no_single_move_does() -> Result<()> {
    let cluster = Cluster::from_env(TEST).await?;
    if !cluster.extender_required {
        skip(
            TEST,
            "E2E_EXTENDER=0: no allot extender to place and hold GPUs",
        );
        return Ok(());
    }
    on_two_nodes(
        &cluster,
        "chain",
        "consolidate-chain",
        |cluster, ns, n| async move { scenario(cluster, &ns, &n.model, [&n.a, &n.b, &n.c]).await },
    )
    .await
}

/// A pod spec of `model` asking `gpu`: `("milli", "500")` by annotation or `("whole", "2")`
/// through the device resource.
fn pod_template(app: &str, model: &str, movable: bool, gpu: (&str, &str)) -> Value {
    let mut t = json!({
        "metadata": { "labels": { "app": app }, "annotations": { "allot.dev/gpu-models": model } },
        "spec": { "schedulerName": "allot", "terminationGracePeriodSeconds": 0,
            "containers": [{ "name": "main", "image": "allot-e2e/pause:never-pulled",
                "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } } }] }
    });
    if movable {
        t["metadata"]["labels"]["allot.dev/movable"] = json!("true");
    }
    match gpu {
        ("milli", m) => t["metadata"]["annotations"]["allot.dev/gpu-milli"] = json!(m),
        (_, n) => {
            t["spec"]["containers"][0]["resources"]["limits"] = json!({ "nvidia.com/gpu": n })
        }
    }
    t
}

/// Live pods labelled `app=APP`: (uid, node) of each.
async fn live(pods: &Api<Pod>, app: &str) -> Result<Vec<(String, Option<String>)>> {
    let list = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
            Some((p.metadata.uid?, node))
        })
        .collect())
}

/// Wait until the one live pod of `app` is bound; its (uid, node).
async fn bound_one(pods: &Api<Pod>, app: &str) -> Result<(String, String)> {
    poll(&format!("the pod of {app} to be bound"), WAIT, || async {
        let l = live(pods, app).await?;
        Ok(match l.as_slice() {
            [(uid, Some(n))] => Some((uid.clone(), n.clone())),
            _ => None,
        })
    })
    .await
}

async fn cordon(nodes: &Api<Node>, name: &str, on: bool) -> Result<()> {
    let patch = json!({ "spec": { "unschedulable": on } });
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("cordon {name}: {on}"))?;
    Ok(())
}

async fn replica_set(cluster: &Cluster, ns: &str, name: &str, template: Value) -> Result<()> {
    let rs = object(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": { "name": name },
        "spec": { "replicas": 1, "selector": { "matchLabels": { "app": name } }, "template": template }
    }))?;
    api(cluster, ns, "apps", "v1", "ReplicaSet", "replicasets")
        .create(&PostParams::default(), &rs)
        .await
        .with_context(|| format!("creating ReplicaSet {name}"))?;
    Ok(())
}

async fn bare(pods: &Api<Pod>, name: &str, template: Value) -> Result<()> {
    let mut pod = template;
    pod["metadata"]["name"] = json!(name);
    let pod: Pod = serde_json::from_value(pod)?;
    pods.create(&PostParams::default(), &pod)
        .await
        .with_context(|| format!("creating {name}"))?;
    Ok(())
}

/// Create node `name` with `gpus` GPUs of `model`, then the pod of `app` through `create`,
/// and check that it binds there (the scenario cordons the other nodes of the model first);
/// the pod's UID.
async fn alone_on(
    nodes: &Api<Node>,
    pods: &Api<Pod>,
    (name, model, gpus): (&str, &str, u32),
    app: &str,
    create: impl std::future::Future<Output = Result<()>>,
) -> Result<String> {
    nodes
        .create(&PostParams::default(), &node(name, model, gpus)?)
        .await
        .with_context(|| format!("node {name}"))?;
    extender_sees(name, gpus, false).await?;
    create.await?;
    let (uid, on) = bound_one(pods, app).await?;
    ensure!(on == name, "{app}'s pod bound on {on}, not {name}");
    Ok(uid)
}

async fn scenario(cluster: &Cluster, ns: &str, model: &str, [a, b, c]: [&str; 3]) -> Result<()> {
    let nodes = Api::<Node>::all(cluster.client.clone());
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), ns);
    // c first, with the bare half-GPU pod that stays; then b with q's half-GPU pod, c
    // cordoned; then a with p's one-GPU pod, b cordoned too.
    let stays = pod_template("stays", model, false, ("milli", "500"));
    alone_on(
        &nodes,
        &pods,
        (c, model, 1),
        "stays",
        bare(&pods, "stays", stays),
    )
    .await?;
    cordon(&nodes, c, true).await?;
    let q = pod_template("q", model, true, ("milli", "500"));
    let q_uid = alone_on(
        &nodes,
        &pods,
        (b, model, 1),
        "q",
        replica_set(cluster, ns, "q", q),
    )
    .await?;
    cordon(&nodes, b, true).await?;
    let p = pod_template("p", model, true, ("whole", "1"));
    let p_uid = alone_on(
        &nodes,
        &pods,
        (a, model, 2),
        "p",
        replica_set(cluster, ns, "p", p),
    )
    .await?;
    for n in [b, c] {
        cordon(&nodes, n, false).await?;
        extender_sees(n, 0, false).await?;
    }

    let (mut controller, _) = consolidator(cluster, ns, "chain", &[]).await?;
    bare(
        &pods,
        "two",
        pod_template("two", model, false, ("whole", "2")),
    )
    .await?;
    let bound = poll("two to be bound", WAIT, || async {
        Ok(pods.get("two").await?.spec.and_then(|s| s.node_name))
    })
    .await;
    let bound = match bound {
        Ok(node) => node,
        Err(e) => {
            let record = annotation(&pods, "two")
                .await
                .unwrap_or_else(|e| e.to_string());
            return Err(e.context(format!(
                "record: {record}\ncontroller's log:\n{}\nextender's log on this namespace:\n{}",
                controller.log_tail(30),
                extender_log(ns)
            )));
        }
    };
    ensure!(bound == a, "two bound on {bound}, not {a}");
    // The record: q's pod first (the middle hop, b to c), then p's (a to b).
    let record: Value = serde_json::from_str(&annotation(&pods, "two").await?)?;
    let moves: Vec<(&str, &str, &str)> = record["moves"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| Some((m["uid"].as_str()?, m["from"].as_str()?, m["to"].as_str()?)))
        .collect();
    ensure!(
        moves == [(q_uid.as_str(), b, c), (p_uid.as_str(), a, b)],
        "the record's moves: {record}"
    );
    // Both replacements land where the chain planned them.
    for (app, old, want) in [("q", &q_uid, c), ("p", &p_uid, b)] {
        let (uid, on) = poll(&format!("{app}'s replacement bound"), WAIT, || async {
            let l = live(&pods, app).await?;
            Ok(match l.as_slice() {
                [(uid, Some(n))] if uid != old => Some((uid.clone(), n.clone())),
                _ => None,
            })
        })
        .await
        .with_context(|| controller.log_tail(20))?;
        ensure!(
            on == want,
            "{app}'s replacement {uid} bound on {on}, not {want}"
        );
    }
    let (_, on) = bound_one(&pods, "stays").await?;
    ensure!(on == c, "the bare pod moved to {on}");
    controller.check_alive()?;
    println!("two on {a}; q's pod moved {b} -> {c}, then p's {a} -> {b}");
    Ok(())
}
