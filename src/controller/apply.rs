//! The apply step: delete what the plan step removed (force for failover, graceful for
//! scale-down), then create the planned pods, a bounded number at a time. Creates that find
//! the name taken (the old pod of a moved replica is still going) are retried by a requeue.
//! Also the finalizer's cleanup.

use std::sync::PoisonError;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::context::{Context, Created, Error, key, kube, namespace_terminating, publish};
use super::decision::Decision;
use super::pods;
use crate::crd::ScheduleRequest;
use crate::crd::batch::Replica;
use crate::model::DeviceSet;
use crate::names::{REQUEST_LABEL, ROOM_GIVEN_BACK_ANNOTATION};
use crate::process::failpoint;

/// API calls in flight at once while creating or deleting a request's pods: a 54-pod request
/// took ~3 s one create at a time on the e2e control plane.
const IN_FLIGHT: usize = 16;

/// Deletions first (they free room and names), then creations. Returns how many creates
/// could not happen yet (name taken by a pod still terminating, or the namespace going
/// away): the caller requeues soon.
pub async fn act(
    sr: &ScheduleRequest,
    ctx: &Context,
    ns: &str,
    decision: &Decision,
    replicas: &[Replica],
) -> Result<usize, Error> {
    let api = Api::<Pod>::namespaced(ctx.client.clone(), ns);
    let deletions = futures::stream::iter(decision.remove.clone())
        .map(|removal| {
            let api = api.clone();
            async move {
                let params = if removal.force {
                    DeleteParams::default().grace_period(0)
                } else {
                    DeleteParams::default()
                };
                let result = api.delete(&removal.name, &params).await;
                (removal, result)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    for (removal, result) in deletions {
        match result {
            Ok(_) => tracing::info!(pod = %removal.name, reason = removal.reason, "pod deleted"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(kube("DeletePod")(e)),
        }
        if removal.force {
            ctx.metrics.moved(removal.reason);
        }
    }

    let mut built = Vec::new();
    for entry in &decision.create {
        if let Some(task) = sr.spec.tasks.iter().find(|t| t.name == entry.task) {
            let mut pod = pods::build(sr, task, entry)?;
            if decision.given_back > 0 {
                // Its room may still hold a pod given back: nudged once that one is gone.
                let notes = pod
                    .metadata
                    .annotations
                    .get_or_insert_with(Default::default);
                notes.insert(ROOM_GIVEN_BACK_ANNOTATION.into(), "0".into());
            }
            built.push((entry.clone(), pod));
        }
    }
    let results = futures::stream::iter(built)
        .map(|(entry, pod)| {
            let api = api.clone();
            async move {
                let result = api.create(&PostParams::default(), &pod).await;
                if result.is_ok() {
                    failpoint::hit("controller.pod-created");
                }
                (entry, result)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let mut later = 0;
    let mut made = Vec::new();
    let mut failure = None;
    for (entry, result) in results {
        match result {
            Ok(pod) => {
                let pod_name = pod.name_any();
                let demand = replicas
                    .iter()
                    .find(|r| r.task == entry.task && r.index == entry.replica)
                    .map(|r| r.pod.demand);
                let devices = entry
                    .gpu_devices
                    .iter()
                    .fold(DeviceSet::EMPTY, |s, &d| s.with(d as usize));
                if let Some(demand) = demand {
                    let created = Created {
                        request: key(sr),
                        key: format!("{ns}/{pod_name}"),
                        demand,
                        node: entry.node.clone(),
                        devices,
                        at: Instant::now(),
                    };
                    ctx.created
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(created);
                }
                made.push(format!("{pod_name} -> {}", entry.node));
            }
            Err(kube::Error::Api(s)) if s.code == 409 => later += 1,
            Err(e) if namespace_terminating(&e) => later += 1,
            Err(e) => failure = Some(e),
        }
    }
    if !made.is_empty() {
        made.sort();
        tracing::info!(request = %key(sr), pods = ?made, "pods created");
        let note = format!("created {} pods: {}", made.len(), made.join(", "));
        publish(ctx, sr, EventType::Normal, "PodsCreated", "Create", note).await;
    }
    match failure {
        Some(e) => Err(kube("CreatePod")(e)),
        None => Ok(later),
    }
}

/// Deletion: the request's pods go first (owner references would also collect them, but the
/// finalizer makes `kubectl delete sr` return only once they are gone from the API).
pub async fn cleanup(sr: &ScheduleRequest, ctx: &Context) -> Result<Action, Error> {
    let ns = sr.namespace().ok_or(Error::NoNamespace)?;
    let api = Api::<Pod>::namespaced(ctx.client.clone(), &ns);
    let selector = format!("{REQUEST_LABEL}={}", sr.name_any());
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels(&selector),
    )
    .await
    .map_err(kube("DeletePods"))?;
    publish(
        ctx,
        sr,
        EventType::Normal,
        "Deleted",
        "Cleanup",
        "the request's pods were deleted".into(),
    )
    .await;
    Ok(Action::await_change())
}
