//! Parity between `allot simulate` and `allot extender`: the first arrivals of the default
//! trace, replayed through the extender's HTTP handlers in snapshot mode (filter, then bind,
//! as kube-scheduler calls them, with `--filter-answer auto`), land on the same node and the
//! same devices as in the simulator, for every policy.
#![cfg(feature = "k8s")]
// Test helpers panic on purpose: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use allot::extender::FilterAnswer;
use allot::extender::server::{Extender, router};
use allot::extender::state::{ClusterSnapshot, Store};
use allot::model::{Cluster, GpuDemand, ModelCatalog, Placement, PodDemand};
use allot::policy::{PolicyKind, arrival_uid};
use allot::sim::load_trace;
use allot::sim::replay::{arrivals, context, replay_with};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Arrivals replayed per policy (the issue's 2,000: enough to fill a third of the cluster).
const ARRIVALS: usize = 2000;
/// A training-side seed: the parity holds for any seed, so none of 42-51 is needed.
const SEED: u64 = 7;

/// The pod kube-scheduler would send for arrival `i`: its demand as resource requests and
/// allot's annotations, its UID the simulator's name for it.
fn pod_json(i: usize, pod: &PodDemand, policy: PolicyKind, models: &ModelCatalog) -> Value {
    let uid = arrival_uid(i);
    let mut annotations = json!({ "allot.dev/policy": policy.name() });
    let mut requests = json!({
        "cpu": format!("{}m", pod.cpu_milli),
        "memory": pod.memory_bytes.to_string(),
    });
    match pod.gpu {
        GpuDemand::None => {}
        GpuDemand::Shared { milli } => {
            annotations["allot.dev/gpu-milli"] = json!(milli.to_string());
        }
        GpuDemand::Whole { count } => requests["nvidia.com/gpu"] = json!(count.to_string()),
    }
    if !pod.models.is_any() {
        let names: Vec<&str> = models
            .ids()
            .filter(|&id| pod.models.contains(id))
            .map(|id| models.name(id))
            .collect();
        annotations["allot.dev/gpu-models"] = json!(names.join(","));
    }
    json!({
        "metadata": {"name": uid, "namespace": "parity", "uid": uid, "annotations": annotations},
        "spec": {"schedulerName": "allot", "containers": [
            {"name": "main", "image": "pause", "resources": {"requests": requests}}
        ]}
    })
}

async fn post(ext: &Arc<Extender>, verb: &str, body: String) -> Value {
    let req = Request::post(format!("/{verb}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let resp = router(ext.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "/{verb}");
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Where the extender puts each arrival: filter over every node, then bind to the one node
/// filter passed (or nothing, when it passed none).
async fn through_extender(
    cluster: &Cluster,
    target: &allot::model::frag::TargetWorkload,
    pods: &[PodDemand],
    policy: PolicyKind,
) -> Vec<Option<Placement>> {
    let store = Store::new(None, Vec::new())
        .with_target(target.clone())
        .with_seed(SEED)
        .with_filter_answer(FilterAnswer::Auto);
    store.replace(ClusterSnapshot::new(cluster.clone(), Vec::new()));
    let store = Arc::new(store);
    let ext = Extender::new(store.clone());
    // Every node, serialised once: kube-scheduler sends the names its own filters passed.
    let names: Vec<&str> = cluster.nodes().iter().map(|n| &*n.name).collect();
    let names = serde_json::to_string(&names).unwrap();
    let mut out = Vec::with_capacity(pods.len());
    for (i, pod) in pods.iter().enumerate() {
        let body = pod_json(i, pod, policy, &cluster.models);
        let filtered = post(
            &ext,
            "filter",
            format!(r#"{{"Pod":{body},"NodeNames":{names}}}"#),
        )
        .await;
        assert_eq!(filtered["Error"].as_str().unwrap_or(""), "", "arrival {i}");
        let passed = filtered["NodeNames"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(passed.len() <= 1, "auto mode passed {} nodes", passed.len());
        let Some(node) = passed.first().and_then(Value::as_str) else {
            out.push(None);
            continue;
        };
        let uid = arrival_uid(i);
        let bind = json!({"PodName": uid, "PodNamespace": "parity", "PodUID": uid, "Node": node});
        let bound = post(&ext, "bind", bind.to_string()).await;
        assert_eq!(bound["Error"].as_str().unwrap_or(""), "", "arrival {i}");
        let view = store.view();
        let index = view.node_index(node).unwrap();
        let at = view.pods_on(index).find(|p| p.uid == uid).unwrap().at;
        out.push(Some(at));
    }
    out
}

/// One policy: the simulator's placements, then the extender's, compared arrival by arrival.
async fn check(policy: PolicyKind) {
    let trace = load_trace("default", None, &[]).unwrap();
    let target = trace.workload().target();
    let mut pods = arrivals(&trace.pods.pods, trace.cluster.gpu_capacity_milli(), SEED);
    pods.truncate(ARRIVALS);
    let mut simulated = Vec::with_capacity(pods.len());
    let mut p = policy.build(&target, SEED);
    let ctx = context(&trace.cluster, &target, SEED);
    replay_with(&trace.cluster, &pods, p.as_mut(), ctx, |step| {
        simulated.push(step.placed);
    });
    let served = through_extender(&trace.cluster, &target, &pods, policy).await;
    let placed = simulated.iter().flatten().count();
    assert!(placed > ARRIVALS / 2, "{policy}: only {placed} placed");
    for (i, (sim, ext)) in simulated.iter().zip(&served).enumerate() {
        assert_eq!(
            sim, ext,
            "{policy}: arrival {i} ({:?}): simulator and extender disagree",
            pods[i]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_extender_places_every_arrival_where_the_simulator_does() {
    let runs: Vec<_> = PolicyKind::ALL
        .into_iter()
        .map(|policy| tokio::spawn(check(policy)))
        .collect();
    for run in runs {
        run.await.unwrap();
    }
}
