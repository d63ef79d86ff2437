//! Consolidation on the real control plane (issue 19 item 4): two kwok GPU nodes of a model
//! of their own, one with 4 GPUs holding two half-GPU pods of a ReplicaSet (opted in with
//! `allot.dev/movable`), one with 2 free GPUs. A 4-GPU pod fits neither. While a
//! PodDisruptionBudget forbids evicting the shares, the consolidator moves nothing and says
//! why on the waiting pod; once the budget is gone it evicts one share and dies there (a
//! failpoint, before its record says so); a second controller takes the Lease, reads the
//! record, evicts only the other share, the ReplicaSet recreates both on the nodes the record
//! planned for them (the other node; the extender holds that room for the replacements, and
//! the freed one for the waiting pod), and the 4-GPU pod binds on the freed node. Past the
//! record's deadline the hold label comes off the bound pod, the record stays.

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::two_nodes::{consolidator, node, on_two_nodes};
use crate::extender::extender_sees;
use crate::support::{Cluster, WAIT, curl_ok, poll, skip};

const TEST: &str =
    "consolidation_moves_opted_in_pods_to_fit_a_four_gpu_pod_unless_a_budget_forbids_it";

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn consolidation_moves_opted_in_pods_to_fit_a_four_gpu_pod_unless_a_budget_forbids_it()
-> Result<()> {
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
        "consol",
        "consolidate",
        |cluster, ns, n| async move { scenario(cluster, &ns, &n.model, &n.a, &n.b).await },
    )
    .await
}

pub(super) fn api(
    cluster: &Cluster,
    ns: &str,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::namespaced_with(cluster.client.clone(), ns, &ar)
}

pub(super) fn object(value: Value) -> Result<DynamicObject> {
    Ok(serde_json::from_value(value)?)
}

/// The ReplicaSet's live pods: name -> (uid, node).
async fn shares(pods: &Api<Pod>) -> Result<BTreeMap<String, (String, Option<String>)>> {
    let list = pods
        .list(&ListParams::default().labels("app=shares"))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
            Some((p.metadata.name?, (p.metadata.uid?, node)))
        })
        .collect())
}

/// Notes of the Events with `reason` in the namespace.
async fn events(cluster: &Cluster, ns: &str, reason: &str) -> Result<Vec<String>> {
    let list = Api::<Event>::namespaced(cluster.client.clone(), ns)
        .list(&ListParams::default())
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| e.note.unwrap_or_default())
        .collect())
}

/// The extender's log lines that name namespace `ns` (its log is in the run directory's
/// `logs/`, where `e2e/up` writes it).
pub(super) fn extender_log(ns: &str) -> String {
    let dir = match crate::own::run_dir() {
        Ok(dir) => dir,
        Err(e) => return format!("({e})"),
    };
    let text = std::fs::read_to_string(dir.join("logs/allot-extender.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(ns)).collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The exit status of a process stopped by a failpoint.
const FAILPOINT_EXIT: i32 = 86;

/// The consolidation record on pod `name`.
pub(super) async fn annotation(pods: &Api<Pod>, name: &str) -> Result<String> {
    let notes = pods
        .get(name)
        .await?
        .metadata
        .annotations
        .unwrap_or_default();
    notes
        .get("allot.dev/consolidation")
        .cloned()
        .with_context(|| format!("no allot.dev/consolidation on {name}"))
}

async fn scenario(cluster: &Cluster, ns: &str, model: &str, a: &str, b: &str) -> Result<()> {
    let nodes = Api::<Node>::all(cluster.client.clone());
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), ns);
    nodes
        .create(&PostParams::default(), &node(a, model, 4)?)
        .await
        .context("node a")?;
    // A pod refused as "node unknown to allot" waits for the next cluster event; wait for the
    // extender to know the node instead.
    extender_sees(a, 4, false).await?;
    let template = json!({
        "metadata": { "labels": { "app": "shares", "allot.dev/movable": "true" },
            "annotations": { "allot.dev/gpu-milli": "500", "allot.dev/gpu-models": model } },
        "spec": { "schedulerName": "allot", "terminationGracePeriodSeconds": 0,
            "containers": [{ "name": "main", "image": "allot-e2e/pause:never-pulled",
                "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } } }] }
    });
    let rs = object(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": { "name": "shares" },
        "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "shares" } }, "template": template }
    }))?;
    api(cluster, ns, "apps", "v1", "ReplicaSet", "replicasets")
        .create(&PostParams::default(), &rs)
        .await
        .context("creating the ReplicaSet")?;
    let before = poll("both shares bound on node a", WAIT, || async {
        let s = shares(&pods).await?;
        let on_a = s.values().filter(|(_, n)| n.as_deref() == Some(a)).count();
        Ok((s.len() == 2 && on_a == 2).then_some(s))
    })
    .await?;
    nodes
        .create(&PostParams::default(), &node(b, model, 2)?)
        .await
        .context("node b")?;
    extender_sees(b, 2, false).await?;
    let pdb = object(json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": { "name": "shares" },
        "spec": { "minAvailable": 2, "selector": { "matchLabels": { "app": "shares" } } }
    }))?;
    let pdbs = api(
        cluster,
        ns,
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
    );
    pdbs.create(&PostParams::default(), &pdb)
        .await
        .context("creating the PDB")?;

    let (mut first, _) = consolidator(
        cluster,
        ns,
        "1",
        &[("ALLOT_FAILPOINTS", "controller.consolidation-evicted=1")],
    )
    .await?;

    let big: Pod = serde_json::from_value(json!({
        "metadata": { "name": "big", "annotations": { "allot.dev/gpu-models": model } },
        "spec": { "schedulerName": "allot", "containers": [{ "name": "main",
            "image": "allot-e2e/pause:never-pulled",
            "resources": { "requests": { "cpu": "1", "memory": "1Gi" },
                           "limits": { "nvidia.com/gpu": "4" } } }] }
    }))?;
    pods.create(&PostParams::default(), &big)
        .await
        .context("creating big")?;

    // The budget allows no eviction: nothing moves, and the waiting pod says why.
    let refused = poll("a ConsolidationRefused event", WAIT, || async {
        let notes = events(cluster, ns, "ConsolidationRefused").await?;
        Ok(notes.into_iter().next())
    })
    .await
    .with_context(|| first.log_tail(40))?;
    ensure!(refused.contains("DisruptionBudget"), "refusal: {refused}");
    ensure!(
        shares(&pods).await? == before,
        "a share moved despite the budget"
    );
    println!("refused: {refused}");

    // Without it, the first controller evicts one share and dies before recording it.
    pdbs.delete("shares", &DeleteParams::default()).await?;
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = first.exit_status()? {
            break status;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the first controller did not stop at its failpoint:\n{}",
            first.log_tail(30)
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    ensure!(
        status.code() == Some(FAILPOINT_EXIT),
        "the first controller exited with {status}, not {FAILPOINT_EXIT}:\n{}",
        first.log_tail(30)
    );
    let record = annotation(&pods, "big").await?;
    ensure!(
        record.contains("\"phase\":\"Evicting\"") && !record.contains("\"evicted\":true"),
        "the record after the crash: {record}"
    );
    // The successor resumes from the record: one more eviction, then big binds on a.
    let (mut controller, admin) = consolidator(cluster, ns, "2", &[]).await?;
    let bound = poll("big to be bound", WAIT, || async {
        let p = pods.get("big").await?;
        Ok(p.spec.and_then(|s| s.node_name))
    })
    .await;
    let bound = match bound {
        Ok(node) => node,
        Err(e) => {
            // What the next reader needs: the record, where the shares are, both sides' logs.
            let record = annotation(&pods, "big")
                .await
                .unwrap_or_else(|e| e.to_string());
            let now = shares(&pods).await.map(|s| format!("{s:?}"));
            return Err(e.context(format!(
                "record: {record}\nshares before: {before:?}\nshares now: {}\n\
                 successor's log:\n{}\nextender's log on this namespace:\n{}",
                now.unwrap_or_else(|e| e.to_string()),
                controller.log_tail(30),
                extender_log(ns)
            )));
        }
    };
    ensure!(bound == a, "big bound on {bound}, not the freed node {a}");
    let after = poll("both shares recreated and bound", WAIT, || async {
        let s = shares(&pods).await?;
        Ok((s.len() == 2 && s.values().all(|(_, n)| n.is_some())).then_some(s))
    })
    .await?;
    let old: Vec<&String> = before.values().map(|(uid, _)| uid).collect();
    ensure!(
        after
            .values()
            .all(|(uid, n)| !old.contains(&uid) && n.as_deref() == Some(b)),
        "the shares were not moved to {b}: before {before:?}, after {after:?}"
    );
    // The replacements landed where the record planned each move (`to`), whose room the
    // extender held for them (owner the ReplicaSet, planned devices recorded).
    let record: Value = serde_json::from_str(&annotation(&pods, "big").await?)?;
    let moves = record["moves"].as_array().cloned().unwrap_or_default();
    let planned: Vec<&str> = moves.iter().filter_map(|m| m["to"].as_str()).collect();
    ensure!(
        moves.len() == 2
            && moves.iter().all(|m| m["owner"]["kind"] == "ReplicaSet"
                && m["planned"]["gpuMilli"] == 500
                && m["planned"]["devices"].is_string()),
        "the moves do not name their owner and planned room: {record}"
    );
    let mut landed: Vec<&str> = after.values().filter_map(|(_, n)| n.as_deref()).collect();
    let mut planned = planned.clone();
    landed.sort_unstable();
    planned.sort_unstable();
    ensure!(
        landed == planned,
        "the replacements landed on {landed:?}, the record planned {planned:?}"
    );
    // The second share was evicted seconds after the record was written (by the successor),
    // so the extender held its destination by then, and its replacement claimed it.
    let extender_admin = std::env::var("ALLOT_E2E_EXTENDER_ADMIN")
        .context("ALLOT_E2E_EXTENDER_ADMIN not set (e2e/up's env sets it)")?;
    let extender = curl_ok(&[format!("{extender_admin}/metrics")])?;
    let holds = |outcome: &str| -> f64 {
        let series = format!("allot_extender_holds_total{{outcome=\"{outcome}\"}} ");
        extender
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str())?.trim().parse().ok())
            .unwrap_or(-1.0)
    };
    ensure!(
        holds("destination") >= 1.0 && holds("claimed") >= 1.0,
        "the extender held no destination for a replacement, or none was claimed: \
         destination {}, claimed {}",
        holds("destination"),
        holds("claimed")
    );
    println!(
        "destinations held {}, claimed {}",
        holds("destination"),
        holds("claimed")
    );
    // One Event on each moved pod: the first controller's and its successor's.
    let moved = poll(
        "a MovedByConsolidation event on each moved pod",
        WAIT,
        || async {
            let list = Api::<Event>::namespaced(cluster.client.clone(), ns)
                .list(&ListParams::default())
                .await?;
            let mut on: Vec<String> = list
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("MovedByConsolidation"))
                .filter_map(|e| e.regarding?.uid)
                .collect();
            on.sort();
            on.dedup();
            Ok((on.len() == 2).then_some(on))
        },
    )
    .await?;
    ensure!(
        moved.iter().all(|uid| old.contains(&uid)),
        "events on {moved:?}, not on the moved pods {old:?}"
    );
    // The successor writes each move's Event before the record that counts it, and the
    // phase `Holding` last: wait for it rather than read the record once.
    poll("the record to say Holding", WAIT, || async {
        let record = annotation(&pods, "big").await?;
        Ok(record.contains("\"phase\":\"Holding\"").then_some(()))
    })
    .await
    .with_context(|| format!("successor's log:\n{}", controller.log_tail(30)))?;
    let metrics = curl_ok(&[format!("http://{admin}/metrics")])?;
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(-1.0)
    };
    // The successor evicted one pod: the other was already terminating or gone.
    ensure!(
        value("allot_consolidation_moves_total") == 1.0
            && value("allot_consolidation_plans_total{outcome=\"moved\"}") == 1.0
            && value("allot_consolidation_refusals_total{reason=\"DisruptionBudget\"}") == 0.0,
        "the successor's metrics do not say 1 move, 1 consolidation, no refusal:\n{metrics}"
    );
    println!("big on {bound}; shares moved to {b}: {moved:?}");
    // Past the record's deadline (60 s after the plan) the controller takes the hold label off
    // the bound pod; the record stays.
    let label = "allot.dev/consolidating";
    poll(
        "the hold label off big after the deadline",
        std::time::Duration::from_secs(90),
        || async {
            let p = pods.get("big").await?;
            Ok((!p.labels().contains_key(label)).then_some(()))
        },
    )
    .await
    .with_context(|| controller.log_tail(20))?;
    ensure!(
        annotation(&pods, "big")
            .await?
            .contains("\"phase\":\"Holding\""),
        "the record went with the label"
    );
    controller.check_alive()?;
    Ok(())
}
