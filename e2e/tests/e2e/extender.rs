//! The allot extender inside the real scheduling path: kube-scheduler (configured by
//! `e2e/up` to require it) asks it to filter, prioritize and bind, and what it decides shows
//! on the pods: the GPU devices it recorded, the nodes it allowed, the reasons users read.
//! Every scenario here fails if the extender is not called.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use crate::support::{Cluster, WAIT, poll, publish_telemetry, telemetry_api};

mod cluster;
mod pods;
pub(crate) mod probe;

pub(crate) use cluster::touch_node;
use cluster::{cluster_with_extender, gpu_nodes};
use pods::{bound, failed_scheduling, pinned};
pub(crate) use probe::extender_sees;
use probe::{extender_metric, post_json, probe_filter, second_extender};

const DEVICES: &str = "allot.dev/gpu-devices";

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn shared_gpu_pods_get_distinct_devices_recorded_by_the_extender() -> Result<()> {
    let test = "shared_gpu_pods_get_distinct_devices_recorded_by_the_extender";
    let Some(cluster) = cluster_with_extender(test).await? else {
        return Ok(());
    };
    let (node, _) = gpu_nodes(&cluster)
        .await?
        .into_iter()
        .next()
        .context("no GPU node")?;
    // Both GPUs of the node must be free in the extender's view, or share-b is turned down,
    // and kube-scheduler asks again only on its next cluster event.
    extender_sees(&node, 2, false).await?;
    let binds_before = extender_metric("allot_extender_requests_total{verb=\"bind\"").await?;
    cluster
        .in_namespace("shares", |cluster, ns| async move {
            let pods = Api::<Pod>::namespaced(cluster.client.clone(), &ns);
            // 600 + 600 milli cannot share one GPU: allot must give them different devices.
            for name in ["share-a", "share-b"] {
                let p = pinned(
                    name,
                    Some(&node),
                    None,
                    json!({ "allot.dev/gpu-milli": "600" }),
                )?;
                pods.create(&PostParams::default(), &p).await?;
            }
            let (_, a) = bound(&pods, "share-a").await?;
            let (_, b) = bound(&pods, "share-b").await?;
            let (da, db) = (a.get(DEVICES), b.get(DEVICES));
            ensure!(
                da.is_some() && db.is_some(),
                "no {DEVICES} annotation: {a:?} {b:?}"
            );
            ensure!(da != db, "both shares on device {da:?}");
            println!("share-a on {node} GPU {da:?}, share-b on GPU {db:?}");
            Ok(())
        })
        .await?;
    let binds_after = extender_metric("allot_extender_requests_total{verb=\"bind\"").await?;
    ensure!(
        binds_after >= binds_before + 2.0,
        "the extender counted {binds_before} -> {binds_after} binds"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn a_bad_annotation_is_the_reason_users_see_in_events() -> Result<()> {
    let test = "a_bad_annotation_is_the_reason_users_see_in_events";
    let Some(cluster) = cluster_with_extender(test).await? else {
        return Ok(());
    };
    cluster
        .in_namespace("bad-annotation", |cluster, ns| async move {
            let pods = Api::<Pod>::namespaced(cluster.client.clone(), &ns);
            let p = pinned("half", None, None, json!({ "allot.dev/gpu-milli": "half" }))?;
            pods.create(&PostParams::default(), &p).await?;
            let message = failed_scheduling(cluster, &ns, "half", "allot.dev/gpu-milli").await?;
            ensure!(message.contains("\"half\""), "{message}");
            let p = pods.get("half").await?;
            ensure!(p.spec.and_then(|s| s.node_name).is_none(), "half was bound");
            println!("event: {message}");
            Ok(())
        })
        .await
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn gpu_model_constraints_and_plans_decide_the_node() -> Result<()> {
    let test = "gpu_model_constraints_and_plans_decide_the_node";
    let Some(cluster) = cluster_with_extender(test).await? else {
        return Ok(());
    };
    let nodes = gpu_nodes(&cluster).await?;
    // The rarest model: a pod that names it can only be placed right by the extender.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, m) in nodes.values() {
        *counts.entry(m.as_str()).or_default() += 1;
    }
    let (model, _) = counts
        .iter()
        .min_by_key(|(_, c)| **c)
        .context("no models")?;
    let model = model.to_string();
    let (planned, _) = nodes
        .iter()
        .rev()
        .find(|(_, (g, _))| *g >= 2)
        .context("no 2-GPU node")?;
    let planned = planned.clone();
    cluster
        .in_namespace("models-plans", |cluster, ns| async move {
            let pods = Api::<Pod>::namespaced(cluster.client.clone(), &ns);
            let p = pinned(
                "model",
                None,
                Some(1),
                json!({ "allot.dev/gpu-models": &model }),
            )?;
            pods.create(&PostParams::default(), &p).await?;
            let (at, _) = bound(&pods, "model").await?;
            ensure!(
                nodes[&at].1 == model,
                "asked for {model}, got {at} ({})",
                nodes[&at].1
            );

            let plan =
                json!({ "allot.dev/planned-node": planned, "allot.dev/planned-devices": "1" });
            pods.create(
                &PostParams::default(),
                &pinned("planned", None, Some(1), plan)?,
            )
            .await?;
            let (at, annotations) = bound(&pods, "planned").await?;
            ensure!(at == planned, "planned for {planned}, bound to {at}");
            ensure!(
                annotations.get(DEVICES).map(String::as_str) == Some("1"),
                "planned device 1, recorded {:?}",
                annotations.get(DEVICES)
            );
            println!("{model} pod on {at}; planned pod on {planned} GPU 1");
            Ok(())
        })
        .await
}

/// In the scheduling path, the extender's `--filter-answer` (e2e/up's `E2E_FILTER_ANSWER`)
/// decides whether kube-scheduler ranks a plain pod's nodes: with `feasible` it asks
/// prioritize; with `auto` or `chosen` the filter leaves it one node, which it binds without
/// asking.
#[tokio::test]
#[ignore = "needs e2e/up"]
async fn kube_scheduler_asks_prioritize_only_when_filter_passes_every_feasible_node() -> Result<()>
{
    let test = "kube_scheduler_asks_prioritize_only_when_filter_passes_every_feasible_node";
    let Some(cluster) = cluster_with_extender(test).await? else {
        return Ok(());
    };
    let answer = std::env::var("ALLOT_E2E_FILTER_ANSWER").unwrap_or_else(|_| "auto".into());
    let prioritized = || extender_metric("allot_extender_requests_total{verb=\"prioritize\"");
    cluster
        .in_namespace("filter-answer", |cluster, ns| async move {
            let pods = Api::<Pod>::namespaced(cluster.client.clone(), &ns);
            let before = prioritized().await?;
            pods.create(
                &PostParams::default(),
                &pinned("plain", None, Some(1), json!({}))?,
            )
            .await?;
            let (at, _) = bound(&pods, "plain").await?;
            let after = prioritized().await?;
            if answer == "feasible" {
                ensure!(
                    after > before,
                    "--filter-answer feasible: no prioritize call ({before} -> {after})"
                );
            } else {
                ensure!(
                    after == before,
                    "--filter-answer {answer}: prioritize was called ({before} -> {after})"
                );
            }
            println!(
                "--filter-answer {answer}: plain pod on {at}, prioritize calls {before} -> {after}"
            );
            Ok(())
        })
        .await
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn unhealthy_gpus_in_telemetry_keep_pods_off_them() -> Result<()> {
    let test = "unhealthy_gpus_in_telemetry_keep_pods_off_them";
    let Some(cluster) = cluster_with_extender(test).await? else {
        return Ok(());
    };
    let (node, (gpus, model)) = gpu_nodes(&cluster)
        .await?
        .into_iter()
        .next()
        .context("no GPU node")?;
    let reports = telemetry_api(&cluster);
    let sick = vec![Some("XID 79 (e2e)"); gpus as usize];
    let well = vec![None; gpus as usize];
    let outcome = async {
        cluster
            .in_namespace("unhealthy", |cluster, ns| {
                let (node, model, sick, well) = (&node, &model, &sick, &well);
                async move {
                    publish_telemetry(cluster, node, model, Duration::ZERO, sick).await?;
                    // The extender follows NodeTelemetry through a watch: wait until it has
                    // seen the report, or the pod may be placed a moment before.
                    extender_sees(node, 1, true).await?;
                    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &ns);
                    pods.create(
                        &PostParams::default(),
                        &pinned("needs-gpu", Some(node), Some(1), json!({}))?,
                    )
                    .await?;
                    let message = failed_scheduling(cluster, &ns, "needs-gpu", "unhealthy").await?;
                    ensure!(message.contains("XID 79 (e2e)"), "{message}");
                    publish_telemetry(cluster, node, model, Duration::ZERO, well).await?;
                    extender_sees(node, 1, false).await?;
                    // kube-scheduler retries a pod an extender turned down on its next cluster
                    // event (any pod or node change; in a busy cluster, within seconds) or
                    // after 5 minutes; NodeTelemetry is not one of its events, and this test
                    // cluster is otherwise idle, so make one.
                    touch_node(cluster, node).await?;
                    let (at, _) = bound(&pods, "needs-gpu").await?;
                    ensure!(&at == node, "bound to {at}");
                    println!("pending while unhealthy ({message}); bound once healthy");
                    Ok(())
                }
            })
            .await
    }
    .await;
    // Cluster-scoped: remove it whatever happened, so other tests see no telemetry.
    let cleanup = reports.delete(&node, &DeleteParams::default()).await;
    outcome?;
    if let Err(e) = cleanup {
        bail!("deleting NodeTelemetry {node}: {e}");
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn a_fail_closed_extender_filters_nodes_with_missing_or_stale_telemetry() -> Result<()> {
    let test = "a_fail_closed_extender_filters_nodes_with_missing_or_stale_telemetry";
    let cluster = Cluster::from_env(test).await?;
    let nodes = gpu_nodes(&cluster).await?;
    let mut names = nodes.keys().rev();
    let (fresh, silent) = (
        names.next().context("no GPU node")?.clone(),
        names.next().context("one GPU node only")?.clone(),
    );
    let reports = telemetry_api(&cluster);
    // A report for `fresh` written now; `silent` may have none, or a stale one from an
    // earlier test's agent: both must be filtered.
    publish_telemetry(&cluster, &fresh, "e2e", Duration::ZERO, &[]).await?;

    let outcome = async {
        let stale = [
            "--stale-policy",
            "fail-closed",
            "--stale-after-seconds",
            "5",
        ];
        let (mut ext, listen) = second_extender(&cluster, "extender-fail-closed", &stale).await?;
        let request = probe_filter(&[&fresh, &silent], 1);
        let url = format!("http://{listen}/filter");
        let answer = post_json(&url, &request)?;
        let passed = answer["NodeNames"].as_array().cloned().unwrap_or_default();
        ensure!(passed == [json!(fresh)], "passed {passed:?}: {answer}");
        let why = answer["FailedNodes"][&silent]
            .as_str()
            .unwrap_or_default()
            .to_string();
        ensure!(
            why.starts_with("no NodeTelemetry") || why.starts_with("node telemetry is"),
            "{silent}: {why:?}"
        );
        // No heartbeat for `fresh` from now on: within seconds it is stale, and filtered.
        let stale = poll(&format!("{fresh} to turn stale"), WAIT, || {
            let (url, request, fresh) = (url.clone(), request.clone(), fresh.clone());
            async move {
                let answer = post_json(&url, &request)?;
                Ok(answer["FailedNodes"][&fresh].as_str().map(str::to_string))
            }
        })
        .await?;
        ensure!(stale.contains("stale after 5s"), "{stale}");
        ensure!(
            answer["FailedAndUnresolvableNodes"]
                .as_object()
                .is_none_or(|m| m.is_empty()),
            "stale telemetry must be retryable: {answer}"
        );
        println!("{silent}: {why}; {fresh} later: {stale}");
        ext.check_alive()
    }
    .await;
    let cleanup = reports.delete(&fresh, &DeleteParams::default()).await;
    outcome?;
    cleanup.with_context(|| format!("deleting NodeTelemetry {fresh}"))?;
    Ok(())
}

/// `--filter-answer auto` (whatever e2e/up's mode) on a second extender watching this cluster:
/// a plain pod's filter answer is the one node its prioritize ranks first, so kube-scheduler
/// would bind it without scoring; a pod that prefers a node gets every feasible node.
#[tokio::test]
#[ignore = "needs e2e/up"]
async fn an_auto_filter_answer_narrows_to_the_chosen_node_unless_the_pod_prefers_one() -> Result<()>
{
    let test = "an_auto_filter_answer_narrows_to_the_chosen_node_unless_the_pod_prefers_one";
    let cluster = Cluster::from_env(test).await?;
    let nodes = gpu_nodes(&cluster).await?;
    let names: Vec<&str> = nodes.keys().map(String::as_str).collect();
    ensure!(names.len() > 1, "one GPU node only");
    let auto = ["--filter-answer", "auto"];
    let (mut ext, listen) = second_extender(&cluster, "extender-auto", &auto).await?;

    let plain = probe_filter(&names, 1);
    let answer = post_json(&format!("http://{listen}/filter"), &plain)?;
    let passed = answer["NodeNames"].as_array().cloned().unwrap_or_default();
    ensure!(passed.len() == 1, "plain pod: passed {passed:?}: {answer}");
    let chosen = passed[0].as_str().context("node name")?.to_string();
    let ranked = post_json(&format!("http://{listen}/prioritize"), &plain)?;
    let top = ranked
        .as_array()
        .context("prioritize answer is not a list")?
        .iter()
        .filter(|h| h["Score"] == json!(10))
        .filter_map(|h| h["Host"].as_str())
        .collect::<Vec<_>>();
    ensure!(
        top.contains(&chosen.as_str()),
        "chose {chosen}, ranked first: {top:?}"
    );

    let mut preferring = plain.clone();
    preferring["Pod"]["spec"]["affinity"] = json!({ "nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{ "weight": 100, "preference": {
            "matchFields": [{ "key": "metadata.name", "operator": "In", "values": [names[0]] }] } }] } });
    let answer = post_json(&format!("http://{listen}/filter"), &preferring)?;
    let passed = answer["NodeNames"].as_array().map_or(0, Vec::len);
    let failed = ["FailedNodes", "FailedAndUnresolvableNodes"]
        .iter()
        .map(|k| answer[k].as_object().map_or(0, serde_json::Map::len))
        .sum::<usize>();
    ensure!(
        passed > 1 && passed + failed == names.len(),
        "preferring pod: {passed} passed, {failed} failed of {}: {answer}",
        names.len()
    );
    println!(
        "plain pod: {chosen} alone (of {} nodes); preferring pod: {passed} feasible nodes",
        names.len()
    );
    ext.check_alive()
}
