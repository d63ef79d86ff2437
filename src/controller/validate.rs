//! The validate step (pure): what the CRD schema cannot check. Quantities and task names come
//! from [`crate::crd::batch::replicas`]; this adds the pod templates, the request name (it
//! becomes a label value) and the checks against the cluster: GPU models no node has, and
//! more GPUs per replica than any allowed node holds. Every problem names its field.

use std::collections::BTreeSet;

use crate::crd::PodTemplate;
use crate::crd::ScheduleRequestSpec;
use crate::crd::batch::{FieldError, Replica, replicas};
use crate::model::{Cluster, GpuDemand, ModelId};

/// Longest label value Kubernetes accepts; the request name is the value of `REQUEST_LABEL`.
const MAX_LABEL_VALUE: usize = 63;
/// Longest object name (DNS subdomain); pod names are `<request>-<task>-<index>`.
const MAX_OBJECT_NAME: usize = 253;

fn error_at(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// Validate `spec` of request `name` against `cluster` and expand it into replicas, whose GPU
/// model sets index `cluster.models`.
pub fn validate(
    name: &str,
    spec: &ScheduleRequestSpec,
    cluster: &Cluster,
) -> Result<Vec<Replica>, Vec<FieldError>> {
    let mut errors = Vec::new();
    if name.len() > MAX_LABEL_VALUE {
        errors.push(error_at(
            "metadata.name",
            format!(
                "{} characters; at most {MAX_LABEL_VALUE}, since pods carry it as a label value",
                name.len()
            ),
        ));
    }
    let node_models: BTreeSet<ModelId> = cluster.nodes().iter().filter_map(|n| n.model).collect();
    for (t, task) in spec.tasks.iter().enumerate() {
        let field = |f: &str| format!("spec.tasks[{t}].{f}");
        let pod_name_len = name.len()
            + task.name.len()
            + 2
            + task.bounds().map_or(1, |b| b.1.max(1)).to_string().len();
        if pod_name_len > MAX_OBJECT_NAME {
            errors.push(error_at(
                field("name"),
                format!(
                    "pod names <request>-<task>-<index> would exceed {MAX_OBJECT_NAME} characters"
                ),
            ));
        }
        template_errors(task.pod_template.as_ref(), &field, &mut errors);
        // gpuModels without a GPU is the demand parser's error (crate::crd::batch::replicas).
        let wants_gpu =
            task.resources.gpu.is_some_and(|g| g > 0) || task.resources.gpu_milli.is_some();
        for (m, model) in task.gpu_models.iter().enumerate() {
            // In any spelling of the product (crate::model::product), as the extender matches.
            let found = cluster.models.lookup(model);
            if wants_gpu && !found.is_some_and(|id| node_models.contains(&id)) {
                let known: BTreeSet<&str> = node_models
                    .iter()
                    .map(|&id| cluster.models.name(id))
                    .collect();
                let known: Vec<&str> = known.into_iter().collect();
                errors.push(error_at(
                    field(&format!("gpuModels[{m}]")),
                    format!(
                        "no node has GPU model {model:?} (the cluster has: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
    }
    let mut models = cluster.models.clone();
    let expanded = replicas(spec, &mut models);
    let expanded = match expanded {
        Ok(r) => r,
        Err(mut e) => {
            e.append(&mut errors);
            e.sort_by(|a, b| a.field.cmp(&b.field));
            return Err(e);
        }
    };
    if errors.is_empty() {
        gpu_count_errors(spec, &expanded, cluster, &mut errors);
    }
    if errors.is_empty() {
        Ok(expanded)
    } else {
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        Err(errors)
    }
}

/// Whole-GPU replicas larger than every node with an allowed model.
fn gpu_count_errors(
    spec: &ScheduleRequestSpec,
    replicas: &[Replica],
    cluster: &Cluster,
    errors: &mut Vec<FieldError>,
) {
    for (t, task) in spec.tasks.iter().enumerate() {
        let Some(r) = replicas.iter().find(|r| r.task == task.name) else {
            continue;
        };
        let GpuDemand::Whole { count } = r.pod.demand.gpu else {
            continue;
        };
        let largest = cluster
            .nodes()
            .iter()
            .filter(|n| n.model_allowed(r.pod.demand.models))
            .map(|n| n.gpu_count())
            .max()
            .unwrap_or(0);
        if count as usize > largest {
            errors.push(error_at(
                format!("spec.tasks[{t}].resources.gpu"),
                format!(
                    "{count} GPUs per replica, but the largest node{} has {largest}",
                    if task.gpu_models.is_empty() {
                        ""
                    } else {
                        " with an allowed model"
                    }
                ),
            ));
        }
    }
}

/// The template must describe runnable containers and leave the node to the plan.
fn template_errors(
    template: Option<&PodTemplate>,
    field: &dyn Fn(&str) -> String,
    errors: &mut Vec<FieldError>,
) {
    let template = match template.map(PodTemplate::parsed) {
        Some(Err(error)) => {
            errors.push(error_at(
                field("podTemplate"),
                format!("not a pod template: {error}"),
            ));
            return;
        }
        Some(Ok(t)) => Some(t),
        None => None,
    };
    let Some(spec) = template.and_then(|t| t.spec.as_ref()) else {
        errors.push(error_at(
            field("podTemplate.spec"),
            "required: the containers each replica runs",
        ));
        return;
    };
    if spec.containers.is_empty() {
        errors.push(error_at(
            field("podTemplate.spec.containers"),
            "at least one container is required",
        ));
    }
    for (c, container) in spec.containers.iter().enumerate() {
        if container.name.is_empty() {
            errors.push(error_at(
                field(&format!("podTemplate.spec.containers[{c}].name")),
                "required",
            ));
        }
        if container.image.as_deref().is_none_or(str::is_empty) {
            errors.push(error_at(
                field(&format!("podTemplate.spec.containers[{c}].image")),
                "required",
            ));
        }
    }
    if spec.node_name.as_deref().is_some_and(|n| !n.is_empty()) {
        errors.push(error_at(
            field("podTemplate.spec.nodeName"),
            "must be empty: the plan chooses the node",
        ));
    }
}
