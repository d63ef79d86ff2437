//! From a ScheduleRequest spec to the LP's batch: validate every task (pure) and expand it
//! into one [`BatchPod`] per replica. Errors name the field (`spec.tasks[1].resources.cpu`).

use std::collections::HashSet;

pub use super::schedule_request::{MAX_REPLICAS, MAX_TASKS};
use super::schedule_request::{Objective as SpecObjective, ScheduleRequestSpec};
/// The pod template wrapper and the failover status entry; exported here because `crd.rs`
/// re-exports a fixed list.
use crate::alloc::{BatchPod, Objective};
use crate::model::ModelCatalog;
use crate::model::demand::{
    Amount, Catalog, DemandParts, FieldNames, Gpus, Models, Number, parse_demand,
};

/// What a task's demand fields are called, relative to `spec.tasks[i]`.
const TASK_FIELDS: FieldNames = FieldNames {
    cpu: "resources.cpu",
    memory: "resources.memory",
    gpus: "resources.gpu",
    gpu_milli: "resources.gpuMilli",
    models: "gpuModels",
};

/// A field of the spec that cannot be planned, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// One replica of one task.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    pub task: String,
    pub index: i32,
    pub pod: BatchPod,
}

/// The gang id every replica of a `gang: true` request shares.
const REQUEST_GANG: u32 = 0;

pub fn objective(spec: &ScheduleRequestSpec) -> Objective {
    match spec.objective {
        SpecObjective::MaxPlaced => Objective::MaxPlaced,
        SpecObjective::Pack => Objective::Pack,
        SpecObjective::Spread => Objective::Spread,
    }
}

/// The request's size, checked before anything is expanded: at most [`MAX_TASKS`] tasks and
/// [`MAX_REPLICAS`] replicas over all of them (summed with checked arithmetic; negative
/// counts are the per-task check's error).
fn size_error(spec: &ScheduleRequestSpec) -> Option<FieldError> {
    let error = |message: String| FieldError {
        field: "spec.tasks".into(),
        message,
    };
    if spec.tasks.is_empty() {
        return Some(error("at least one task is required".into()));
    }
    if spec.tasks.len() > MAX_TASKS {
        return Some(error(format!(
            "{} tasks; at most {MAX_TASKS} per request",
            spec.tasks.len()
        )));
    }
    let total = spec.tasks.iter().try_fold(0i64, |sum, t| {
        sum.checked_add(i64::from(t.bounds().map_or(0, |(_, max)| max)))
    });
    match total {
        Some(total) if total <= MAX_REPLICAS => None,
        Some(total) => Some(error(format!(
            "{total} replicas in total; at most {MAX_REPLICAS} per request"
        ))),
        None => Some(error(format!(
            "more than {MAX_REPLICAS} replicas in total; at most {MAX_REPLICAS} per request"
        ))),
    }
}

/// Validate `spec` and expand its tasks into replicas; every problem is reported, not just
/// the first. GPU model names are interned into `models` (a model no node has is valid; its
/// replicas are reported unplaceable by the plan). The request's size is checked first, and
/// nothing is expanded unless it is within bounds.
pub fn replicas(
    spec: &ScheduleRequestSpec,
    models: &mut ModelCatalog,
) -> Result<Vec<Replica>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    let mut names = HashSet::new();
    let size = size_error(spec);
    let expand = size.is_none();
    for (t, task) in spec.tasks.iter().enumerate() {
        let field = |f: &str| format!("spec.tasks[{t}].{f}");
        let mut fail = |f: &str, message: String| {
            errors.push(FieldError {
                field: field(f),
                message,
            })
        };
        if !names.insert(task.name.as_str()) {
            fail("name", format!("task name {:?} is used twice", task.name));
        }
        let (min, max) = match task.bounds() {
            Ok(bounds) => bounds,
            Err(message) => {
                let what = if task.replicas.is_some() {
                    "replicas"
                } else {
                    "minReplicas"
                };
                fail(what, message);
                continue;
            }
        };
        let r = &task.resources;
        let parts = DemandParts {
            names: TASK_FIELDS,
            cpu: Amount::Quantity(&r.cpu.0),
            memory: Amount::Quantity(&r.memory.0),
            gpus: Gpus::WholeOrShare {
                whole: r.gpu.map(|g| Number::Value(u64::from(g))),
                share: r.gpu_milli.map(|m| Number::Value(u64::from(m))),
            },
            models: (!task.gpu_models.is_empty()).then_some(Models::List(&task.gpu_models)),
        };
        let demand = match parse_demand(parts, Catalog::Intern(models)) {
            Ok(d) => d,
            Err(e) => {
                fail(e.name, e.problem.to_string());
                continue;
            }
        };
        if demand.cpu_milli == 0 && demand.memory_bytes == 0 && !demand.needs_gpu() {
            fail(
                "resources",
                "a replica must request some cpu, memory or GPU".into(),
            );
            continue;
        }
        if !expand || !errors.is_empty() {
            continue;
        }
        // Replicas from the minimum on are elastic: outside the gang, placed last.
        for index in 0..max {
            let elastic = index >= min;
            out.push(Replica {
                task: task.name.clone(),
                index,
                pod: BatchPod {
                    demand,
                    priority: spec.priority,
                    gang: (spec.gang && !elastic).then_some(REQUEST_GANG),
                    elastic,
                },
            });
        }
    }
    errors.extend(size);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ScheduleRequestSpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn tasks_expand_into_replicas() {
        let s = spec(
            "gang: true\npriority: 5\ntasks:\n- name: train\n  replicas: 2\n  resources: {cpu: '8', memory: 32Gi, gpu: 4}\n  gpuModels: [A100]\n- name: eval\n  replicas: 1\n  resources: {cpu: 500m, memory: 2Gi, gpuMilli: 250}\n",
        );
        let mut models = ModelCatalog::default();
        let r = replicas(&s, &mut models).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!((r[1].task.as_str(), r[1].index), ("train", 1));
        assert_eq!(r[0].pod.gang, Some(REQUEST_GANG));
        assert_eq!(r[2].pod.demand.cpu_milli, 500);
        assert!(!r[0].pod.demand.models.is_any());
    }

    #[test]
    fn every_bad_field_is_named() {
        let s = spec(
            "tasks:\n- name: a\n  replicas: -1\n  resources: {cpu: '1', memory: 1Gi}\n- name: b\n  replicas: 1\n  resources: {cpu: lots, memory: 1Gi}\n- name: c\n  replicas: 1\n  resources: {cpu: '1', memory: 1Gi, gpu: 2, gpuMilli: 500}\n- name: c\n  replicas: 1\n  resources: {cpu: '0', memory: '0'}\n",
        );
        let errors = replicas(&s, &mut ModelCatalog::default()).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.tasks[0].replicas",
                "spec.tasks[1].resources.cpu",
                "spec.tasks[2].resources.gpuMilli",
                "spec.tasks[3].name",
                "spec.tasks[3].resources"
            ]
        );
        assert!(errors[1].message.contains("lots"));
    }

    #[test]
    fn elastic_tasks_expand_to_their_maximum_with_the_rest_outside_the_gang() {
        let s = spec(
            "gang: true\ntasks:\n- name: w\n  minReplicas: 1\n  maxReplicas: 3\n  resources: {cpu: '1', memory: 1Gi, gpu: 1}\n",
        );
        let r = replicas(&s, &mut ModelCatalog::default()).unwrap();
        let shape: Vec<(i32, bool, Option<u32>)> = r
            .iter()
            .map(|r| (r.index, r.pod.elastic, r.pod.gang))
            .collect();
        assert_eq!(
            shape,
            [
                (0, false, Some(REQUEST_GANG)),
                (1, true, None),
                (2, true, None)
            ]
        );
        assert_eq!((s.min_replicas(), s.total_replicas()), (1, 3));
    }

    #[test]
    fn inconsistent_replica_counts_are_named() {
        let cases = [
            (
                "replicas: 2\n  minReplicas: 1\n  maxReplicas: 2",
                "spec.tasks[0].replicas: set replicas, or minReplicas and maxReplicas, not both",
            ),
            (
                "minReplicas: 1",
                "spec.tasks[0].minReplicas: an elastic task sets both minReplicas and maxReplicas",
            ),
            (
                "minReplicas: 3\n  maxReplicas: 2",
                "spec.tasks[0].minReplicas: minReplicas 3 exceeds maxReplicas 2",
            ),
            (
                "resources: {}",
                "spec.tasks[0].minReplicas: set replicas, or minReplicas and maxReplicas",
            ),
        ];
        for (counts, want) in cases {
            let yaml =
                format!("tasks:\n- name: a\n  {counts}\n  resources: {{cpu: '1', memory: 1Gi}}\n");
            let yaml = yaml.replace("  resources: {}\n", "");
            let errors = replicas(&spec(&yaml), &mut ModelCatalog::default()).unwrap_err();
            let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
            assert_eq!(got, [want], "{counts}");
        }
    }

    fn task(name: &str, replicas: i64) -> String {
        format!("- name: {name}\n  replicas: {replicas}\n  resources: {{cpu: '1', memory: 1Gi}}\n")
    }

    /// Issue 16, defect 1: counts are checked before any replica is expanded, so a huge
    /// request is refused at once instead of allocating (or aborting on) billions of them.
    #[test]
    fn huge_or_wide_requests_are_refused_before_expanding() {
        let cases = [
            (
                format!("tasks:\n{}", task("a", 100_001)),
                "spec.tasks: 100001 replicas in total; at most 100000 per request",
            ),
            (
                format!("tasks:\n{}{}", task("a", 2147483647), task("b", 2147483647)),
                "spec.tasks: 4294967294 replicas in total; at most 100000 per request",
            ),
            (
                format!(
                    "tasks:\n{}",
                    (0..65)
                        .map(|i| task(&format!("t{i}"), 1))
                        .collect::<String>()
                ),
                "spec.tasks: 65 tasks; at most 64 per request",
            ),
        ];
        for (yaml, want) in cases {
            let errors = replicas(&spec(&yaml), &mut ModelCatalog::default()).unwrap_err();
            let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
            assert_eq!(got, [want]);
        }
        let at_cap = format!("tasks:\n{}{}", task("a", 60_000), task("b", 40_000));
        let r = replicas(&spec(&at_cap), &mut ModelCatalog::default()).unwrap();
        assert_eq!(r.len(), 100_000);
    }
}
