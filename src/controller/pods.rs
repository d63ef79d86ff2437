//! Pods of a request, both ways (pure): [`build`] turns a task's template and a planned
//! replica into the Pod the apply step creates; [`observe`] reads a Pod back into what the
//! plan step needs. The labels and annotations are the contract with the extender
//! (`crate::names`): it passes only the planned node in filter and binds the planned devices.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Resource;

use super::observed::{ObservedPod, PodPhase};
use crate::crd::{PlannedReplica, ScheduleRequest, TaskSpec};
use crate::live::pod::parse_devices;
use crate::names::{
    GPU_DEVICES_ANNOTATION, GPU_MILLI_ANNOTATION, GPU_MODELS_ANNOTATION, GPU_RESOURCE,
    PLANNED_DEVICES_ANNOTATION, PLANNED_NODE_ANNOTATION, REPLICA_LABEL, REQUEST_LABEL,
    SCHEDULER_NAME, TASK_LABEL,
};

/// Deterministic pod name of a replica: a restarted controller finds the pods it made, and a
/// second create of the same replica fails with AlreadyExists instead of duplicating it.
pub fn pod_name(request: &str, task: &str, index: i32) -> String {
    format!("{request}-{task}-{index}")
}

/// Why a pod cannot be built (the request lacks what every stored object has).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("the ScheduleRequest has no name, namespace or uid")]
    NoIdentity,
    #[error("spec.tasks[{0:?}].podTemplate.spec: missing")]
    NoTemplate(String),
}

/// Comma list of device indices, as the planned- and bound-devices annotations carry them.
pub fn devices_text(devices: &[u32]) -> String {
    devices
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The Pod for replica `entry` of `task`: the template with allot's scheduler, the request as
/// controller owner, the linking labels, the plan as annotations and the task's resources on
/// the first container (cpu and memory requests; `nvidia.com/gpu` limits for whole GPUs).
pub fn build(
    request: &ScheduleRequest,
    task: &TaskSpec,
    entry: &PlannedReplica,
) -> Result<Pod, BuildError> {
    let meta = &request.metadata;
    let (Some(name), Some(namespace), Some(owner)) = (
        meta.name.as_deref(),
        meta.namespace.as_deref(),
        request.controller_owner_ref(&()),
    ) else {
        return Err(BuildError::NoIdentity);
    };
    let template = task
        .pod_template
        .as_ref()
        .and_then(|t| t.parsed().ok())
        .cloned()
        .unwrap_or_default();
    let mut spec = template
        .spec
        .ok_or_else(|| BuildError::NoTemplate(task.name.clone()))?;
    let mut pod_meta = template.metadata.unwrap_or_default();
    let labels = pod_meta.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(REQUEST_LABEL.into(), name.into());
    labels.insert(TASK_LABEL.into(), task.name.clone());
    labels.insert(REPLICA_LABEL.into(), entry.replica.to_string());
    let notes = pod_meta.annotations.get_or_insert_with(BTreeMap::new);
    notes.insert(PLANNED_NODE_ANNOTATION.into(), entry.node.clone());
    notes.remove(PLANNED_DEVICES_ANNOTATION);
    notes.remove(GPU_MILLI_ANNOTATION);
    notes.remove(GPU_MODELS_ANNOTATION);
    if !entry.gpu_devices.is_empty() {
        notes.insert(
            PLANNED_DEVICES_ANNOTATION.into(),
            devices_text(&entry.gpu_devices),
        );
    }
    let r = &task.resources;
    let whole = r.gpu.filter(|&g| g > 0);
    if let Some(milli) = r.gpu_milli {
        notes.insert(GPU_MILLI_ANNOTATION.into(), milli.to_string());
    }
    if (whole.is_some() || r.gpu_milli.is_some()) && !task.gpu_models.is_empty() {
        notes.insert(GPU_MODELS_ANNOTATION.into(), task.gpu_models.join(","));
    }
    pod_meta.name = Some(pod_name(name, &task.name, entry.replica));
    pod_meta.namespace = Some(namespace.into());
    pod_meta.generate_name = None;
    pod_meta.owner_references = Some(vec![owner]);

    spec.scheduler_name = Some(SCHEDULER_NAME.into());
    spec.node_name = None;
    if let Some(first) = spec.containers.first_mut() {
        let res = first
            .resources
            .get_or_insert_with(ResourceRequirements::default);
        let requests = res.requests.get_or_insert_with(BTreeMap::new);
        requests.insert("cpu".into(), r.cpu.clone());
        requests.insert("memory".into(), r.memory.clone());
        requests.remove(GPU_RESOURCE);
        match whole {
            Some(n) => {
                let q = Quantity(n.to_string());
                requests.insert(GPU_RESOURCE.into(), q.clone());
                res.limits
                    .get_or_insert_with(BTreeMap::new)
                    .insert(GPU_RESOURCE.into(), q);
            }
            None => {
                if let Some(limits) = res.limits.as_mut() {
                    limits.remove(GPU_RESOURCE);
                }
            }
        }
    }
    Ok(Pod {
        metadata: pod_meta,
        spec: Some(spec),
        status: None,
    })
}

/// Read one pod of a request; `None` for a pod without the task and replica labels.
pub fn observe(pod: &Pod) -> Option<ObservedPod> {
    let labels = pod.metadata.labels.as_ref()?;
    let task = labels.get(TASK_LABEL)?.clone();
    let index: i32 = labels.get(REPLICA_LABEL)?.parse().ok()?;
    let empty = BTreeMap::new();
    let notes = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    let status = pod.status.as_ref();
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => PodPhase::Pending,
        Some("Running") => PodPhase::Running,
        Some("Succeeded") => PodPhase::Succeeded,
        Some("Failed") => PodPhase::Failed,
        Some(_) => PodPhase::Unknown,
    };
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    Some(ObservedPod {
        name: pod.metadata.name.clone().unwrap_or_default(),
        task,
        index,
        node: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        planned_node: notes.get(PLANNED_NODE_ANNOTATION).cloned(),
        planned_devices: notes
            .get(PLANNED_DEVICES_ANNOTATION)
            .and_then(|t| parse_devices(PLANNED_DEVICES_ANNOTATION, t).ok())
            .unwrap_or_default(),
        bound_devices: notes
            .get(GPU_DEVICES_ANNOTATION)
            .and_then(|t| parse_devices(GPU_DEVICES_ANNOTATION, t).ok()),
        phase,
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
    })
}
