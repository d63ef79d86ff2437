//! `allot controller` on the real control plane: a ScheduleRequest is planned, its pods are
//! created and bound by kube-scheduler (to their planned nodes when the allot extender is in
//! the scheduling path), the status reads well in `kubectl get sr` / `describe`; invalid
//! specs are refused or reported, never half-applied; a gang that cannot fit creates nothing;
//! scaling keeps running replicas; one Lease holder acts and its successor duplicates nothing.
//! Failover (deleted node, unhealthy GPU, stale telemetry) is in `failover.rs`.
//!
//! Each test starts its own controller with the Lease in its own namespace, so the tests do
//! not wait for each other's leases.

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

pub(crate) use crate::support::requests::{bound_pods, controller_with, create, requests, task};
use crate::support::requests::{
    condition, controller, controller_at, leading, request_pods, status_where,
};
use crate::support::{Cluster, WAIT, poll};

mod chain;
mod consolidation;
mod crash;
mod elastic;
mod failover;
mod give_back;
mod lease_namespace;
mod two_nodes;

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn a_request_of_three_kinds_of_task_is_planned_created_and_bound() -> Result<()> {
    let test = "a_request_of_three_kinds_of_task_is_planned_created_and_bound";
    let cluster = Cluster::from_env(test).await?;
    cluster
        .in_namespace("sr-plan", |cluster, ns| async move {
            let mut ctl = controller(cluster, &ns, "controller-plan").await?;
            let spec = json!({ "tasks": [
                task("train", 2, json!({ "cpu": "1", "memory": "1Gi", "gpu": 1 })),
                task("eval", 2, json!({ "cpu": "500m", "memory": "512Mi", "gpuMilli": 300 })),
                task("load", 1, json!({ "cpu": "250m", "memory": "256Mi" })),
            ] });
            create(cluster, &ns, "batch", spec).await?;
            let status = status_where(cluster, &ns, "batch", "5 replicas planned", |s| {
                s["counts"]["planned"] == 5
            })
            .await?;
            ensure!(
                condition(&status, "Validated").is_some_and(|c| c["status"] == "True"),
                "Validated is not True: {status}"
            );
            ensure!(
                status["solver"]["backend"].is_string(),
                "no solver facts: {status}"
            );
            let plan = status["plan"].as_array().context("plan")?;
            ensure!(plan.len() == 5, "plan: {plan:?}");

            let bound = bound_pods(cluster, &ns, "batch", 5).await?;
            let names: Vec<&str> = bound.keys().map(String::as_str).collect();
            ensure!(
                names
                    == [
                        "batch-eval-0",
                        "batch-eval-1",
                        "batch-load-0",
                        "batch-train-0",
                        "batch-train-1"
                    ],
                "pod names {names:?}"
            );
            for (pod, (node, planned)) in &bound {
                let planned = planned.as_deref().context("no planned-node annotation")?;
                if cluster.extender_required {
                    ensure!(node == planned, "{pod} bound to {node}, planned {planned}");
                }
                println!("{pod}: planned {planned}, bound {node}");
            }
            let status = status_where(cluster, &ns, "batch", "5 bound, Running", |s| {
                s["counts"]["bound"] == 5 && s["phase"] == "Running"
            })
            .await?;
            ensure!(
                condition(&status, "Ready").is_some_and(|c| c["status"] == "True"),
                "Ready is not True: {status}"
            );

            let table = cluster.kubectl(&["get", "sr", "-n", &ns])?;
            ensure!(
                table.contains("PHASE") && table.contains("Running"),
                "kubectl get sr:\n{table}"
            );
            let described = cluster.kubectl(&["describe", "sr", "batch", "-n", &ns])?;
            for needle in ["Validated", "PlanFound", "PodsCreated"] {
                ensure!(
                    described.contains(needle),
                    "describe lacks {needle}:\n{described}"
                );
            }
            println!("{table}");
            ctl.check_alive()
        })
        .await
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn invalid_requests_are_refused_or_reported_and_nothing_is_created() -> Result<()> {
    let test = "invalid_requests_are_refused_or_reported_and_nothing_is_created";
    let cluster = Cluster::from_env(test).await?;
    cluster
        .in_namespace("sr-invalid", |cluster, ns| async move {
            let _ctl = controller(cluster, &ns, "controller-invalid").await?;
            // The schema refuses a negative count outright.
            let negative =
                json!({ "tasks": [task("a", 0, json!({ "cpu": "1", "memory": "1Gi" }))] });
            let mut negative = negative;
            negative["tasks"][0]["replicas"] = json!(-1);
            let refused = create(cluster, &ns, "negative", negative).await;
            ensure!(refused.is_err(), "a negative replica count was accepted");

            // A model no node has passes the schema; the controller names the field.
            let spec = json!({ "tasks": [
                task("ok", 1, json!({ "cpu": "1", "memory": "1Gi" })),
                { "name": "bad", "replicas": 1, "gpuModels": ["NoSuchGPU"],
                  "resources": { "cpu": "1", "memory": "1Gi", "gpu": 1 },
                  "podTemplate": { "spec": { "containers": [{ "name": "main", "image": "x" }] } } },
            ] });
            create(cluster, &ns, "unknown-model", spec).await?;
            let status = status_where(cluster, &ns, "unknown-model", "Validated=False", |s| {
                condition(s, "Validated").is_some_and(|c| c["status"] == "False")
            })
            .await?;
            let message = condition(&status, "Validated")
                .map(|c| c["message"].to_string())
                .unwrap_or_default();
            ensure!(
                message.contains("spec.tasks[1].gpuModels[0]") && message.contains("NoSuchGPU"),
                "message does not name the field: {message}"
            );
            ensure!(status["phase"] == "Failed", "phase {}", status["phase"]);
            let pods = request_pods(cluster, &ns, "unknown-model").await?;
            ensure!(
                pods.is_empty(),
                "{} pods created for an invalid request",
                pods.len()
            );

            // A template the schema lets through but that is no pod template: reported, and
            // the controller (whose watches list every request) keeps working.
            let mut spec =
                json!({ "tasks": [task("t", 1, json!({ "cpu": "1", "memory": "1Gi" }))] });
            spec["tasks"][0]["podTemplate"]["spec"]["containers"] = json!("not-a-list");
            create(cluster, &ns, "malformed", spec).await?;
            let status = status_where(cluster, &ns, "malformed", "Validated=False", |s| {
                condition(s, "Validated").is_some_and(|c| c["status"] == "False")
            })
            .await?;
            let message = status["message"].as_str().unwrap_or_default();
            ensure!(
                message.contains("spec.tasks[0].podTemplate: not a pod template"),
                "message: {message}"
            );
            let ok = json!({ "tasks": [task("t", 1, json!({ "cpu": "100m", "memory": "64Mi" }))] });
            create(cluster, &ns, "fine", ok).await?;
            bound_pods(cluster, &ns, "fine", 1).await?;
            Ok(())
        })
        .await
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn a_gang_that_cannot_fit_stays_pending_and_creates_nothing() -> Result<()> {
    let test = "a_gang_that_cannot_fit_stays_pending_and_creates_nothing";
    let cluster = Cluster::from_env(test).await?;
    cluster
        .in_namespace("sr-gang", |cluster, ns| async move {
            let _ctl = controller(cluster, &ns, "controller-gang").await?;
            // 200 one-GPU replicas: more GPUs than the e2e nodes have, though each fits alone.
            let spec = json!({ "gang": true, "tasks": [
                task("wide", 200, json!({ "cpu": "100m", "memory": "64Mi", "gpu": 1 }))
            ] });
            create(cluster, &ns, "too-wide", spec).await?;
            let status = status_where(cluster, &ns, "too-wide", "Planned=False", |s| {
                condition(s, "Planned").is_some_and(|c| c["status"] == "False")
            })
            .await?;
            ensure!(status["phase"] == "Pending", "phase {}", status["phase"]);
            let message = status["message"].as_str().unwrap_or_default();
            ensure!(message.contains("gang"), "message: {message}");
            ensure!(
                status["unplaced"].as_array().map(Vec::len) == Some(200),
                "unplaced: {}",
                status["unplaced"]
            );
            // Give the controller a few more reconciles to do something wrong.
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            let pods = request_pods(cluster, &ns, "too-wide").await?;
            ensure!(
                pods.is_empty(),
                "{} pods created for a gang that does not fit",
                pods.len()
            );
            Ok(())
        })
        .await
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn one_lease_holder_acts_and_its_successor_duplicates_nothing() -> Result<()> {
    let test = "one_lease_holder_acts_and_its_successor_duplicates_nothing";
    let cluster = Cluster::from_env(test).await?;
    cluster
        .in_namespace("sr-restart", |cluster, ns| async move {
            let (mut first, first_admin) =
                controller_at(cluster, &ns, "controller-restart-1").await?;
            let spec =
                json!({ "tasks": [task("w", 3, json!({ "cpu": "100m", "memory": "64Mi" }))] });
            create(cluster, &ns, "steady", spec).await?;
            let before = bound_pods(cluster, &ns, "steady", 3).await?;
            let uids = |pods: Vec<Pod>| -> Vec<Option<String>> {
                pods.into_iter().map(|p| p.metadata.uid).collect()
            };
            let first_uids = uids(request_pods(cluster, &ns, "steady").await?);
            // A second replica waits for the Lease while the first holds it.
            let (_second, second_admin) =
                controller_at(cluster, &ns, "controller-restart-2").await?;
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            ensure!(leading(&first_admin)?, "the first controller does not lead");
            ensure!(!leading(&second_admin)?, "two controllers lead at once");
            first.stop();
            poll("the second controller to take the Lease", WAIT, || async {
                Ok(leading(&second_admin)?.then_some(()))
            })
            .await?;
            // Let the new leader reconcile the request a few times.
            tokio::time::sleep(std::time::Duration::from_secs(4)).await;
            let pods = request_pods(cluster, &ns, "steady").await?;
            ensure!(pods.len() == 3, "{} pods after the restart", pods.len());
            ensure!(
                uids(pods) == first_uids,
                "pods were recreated after the restart"
            );
            let after = bound_pods(cluster, &ns, "steady", 3).await?;
            ensure!(before == after, "pods moved: {before:?} -> {after:?}");
            Ok(())
        })
        .await
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn scaling_a_task_keeps_its_running_replicas() -> Result<()> {
    let test = "scaling_a_task_keeps_its_running_replicas";
    let cluster = Cluster::from_env(test).await?;
    cluster
        .in_namespace("sr-scale", |cluster, ns| async move {
            let _ctl = controller(cluster, &ns, "controller-scale").await?;
            let spec = json!({ "tasks": [task("w", 2, json!({ "cpu": "100m", "memory": "64Mi", "gpu": 1 }))] });
            create(cluster, &ns, "elastic", spec).await?;
            let two = bound_pods(cluster, &ns, "elastic", 2).await?;
            let uids = |pods: Vec<Pod>| -> BTreeMap<String, String> {
                pods.into_iter()
                    .filter_map(|p| Some((p.metadata.name?, p.metadata.uid?)))
                    .collect()
            };
            let first = uids(request_pods(cluster, &ns, "elastic").await?);
            let api = requests(cluster, &ns);
            let patch = |n: u32| json!({ "spec": { "tasks": [task("w", n, json!({ "cpu": "100m", "memory": "64Mi", "gpu": 1 }))] } });
            api.patch("elastic", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(patch(4)))
                .await?;
            let four = bound_pods(cluster, &ns, "elastic", 4).await?;
            for (name, at) in &two {
                ensure!(four.get(name) == Some(at), "{name} moved on scale-up: {at:?} -> {:?}", four.get(name));
            }
            let now = uids(request_pods(cluster, &ns, "elastic").await?);
            for (name, uid) in &first {
                ensure!(now.get(name) == Some(uid), "{name} was recreated on scale-up");
            }
            api.patch("elastic", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(patch(1)))
                .await?;
            let one = bound_pods(cluster, &ns, "elastic", 1).await?;
            ensure!(one.contains_key("elastic-w-0"), "left: {one:?}");
            let status = status_where(cluster, &ns, "elastic", "1 replica", |s| {
                s["counts"]["replicas"] == 1 && s["counts"]["bound"] == 1
            })
            .await?;
            ensure!(status["plan"].as_array().map(Vec::len) == Some(1), "plan: {}", status["plan"]);
            Ok(())
        })
        .await
}
