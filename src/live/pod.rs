//! Pod interface (design.md §6): a `v1.Pod` from the wire -> a core [`PodDemand`] plus the
//! policy that scores it. Every bad value is an error naming the field and the text, because
//! kube-scheduler shows the filter's `Error` in the pod's FailedScheduling event.

use std::collections::BTreeMap;
use std::str::FromStr;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::model::demand::{
    Amount, Catalog, DemandError, DemandParts, FieldNames, Gpus, Models, Number, Problem,
    parse_demand,
};
use crate::model::{DeviceSet, GpuDemand, ModelCatalog, ModelSet, PodDemand};
use crate::policy::PolicyKind;

pub use crate::names::{
    GPU_DEVICES_ANNOTATION, GPU_MILLI_ANNOTATION, GPU_MODELS_ANNOTATION, GPU_RESOURCE,
    GPU_SHARE_RESOURCE, PLANNED_DEVICES_ANNOTATION, PLANNED_NODE_ANNOTATION, POLICY_ANNOTATION,
};
/// Policy used when the pod names none: `learned`, the best measured so far (FGD plus the
/// embedded policy's corrections; `allot simulate`, BENCHMARKS.md §8).
pub const DEFAULT_POLICY: PolicyKind = PolicyKind::Learned;

/// What a pod's demand fields are called: the resource or the annotation.
const POD_FIELDS: FieldNames = FieldNames {
    cpu: "cpu",
    memory: "memory",
    gpus: GPU_RESOURCE,
    gpu_milli: "annotation allot.dev/gpu-milli",
    models: "annotation allot.dev/gpu-models",
};

/// Why a pod's request cannot be understood. Messages name the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodError {
    /// The GPU request, its share or its models (limits and wording:
    /// [`crate::model::demand`]).
    #[error(transparent)]
    Demand(#[from] DemandError),
    #[error("annotation {POLICY_ANNOTATION}: {0}")]
    UnknownPolicy(String),
    #[error("container {container:?}: resource {resource}: {problem}")]
    BadQuantity {
        container: String,
        resource: &'static str,
        problem: Problem,
    },
    #[error(
        "annotation {annotation}: {text:?} is not a comma list of GPU device indices 0..15 \
         (e.g. \"0,1\")"
    )]
    BadDevices {
        annotation: &'static str,
        text: String,
    },
    #[error(
        "annotation {PLANNED_DEVICES_ANNOTATION}: {count} devices planned but the pod asks for \
         {need}"
    )]
    PlannedDevicesCount { count: usize, need: u32 },
    #[error(
        "container {container:?}: resource {GPU_SHARE_RESOURCE}: {count} asked, but a container \
         takes at most 1 (a share of one GPU; its size is annotation {GPU_MILLI_ANNOTATION})"
    )]
    ShareCount { container: String, count: u64 },
    #[error(
        "resource {GPU_SHARE_RESOURCE} needs annotation {GPU_MILLI_ANNOTATION} on the pod (how \
         much of one GPU, 1..999 milli-GPU)"
    )]
    ShareWithoutMilli,
}

impl PodError {
    /// Bounded label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            PodError::Demand(e) => e.reason(),
            PodError::UnknownPolicy(_) => "UnknownPolicy",
            PodError::BadQuantity { .. } => "InvalidQuantity",
            PodError::BadDevices { .. } | PodError::PlannedDevicesCount { .. } => {
                "InvalidGpuDevices"
            }
            PodError::ShareCount { .. } | PodError::ShareWithoutMilli => "InvalidGpuShare",
        }
    }
}

/// What allot needs to know about one pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodRequest {
    /// `namespace/name`.
    pub key: String,
    pub uid: String,
    pub demand: PodDemand,
    pub policy: PolicyKind,
    /// `spec.priority` (0 when unset), for choosing preemption victims.
    pub priority: i32,
    /// The node a ScheduleRequest's plan chose ([`PLANNED_NODE_ANNOTATION`]).
    pub planned_node: Option<String>,
    /// The devices the plan chose there ([`PLANNED_DEVICES_ANNOTATION`]).
    pub planned_devices: Option<DeviceSet>,
}

/// The `namespace/name` of a pod (`default` when the namespace is empty).
pub fn pod_key(pod: &Pod) -> String {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    format!("{ns}/{name}")
}

/// The namespace and name of a `namespace/name` key ([`pod_key`]'s inverse; `default` when the
/// key has no namespace).
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("default", key))
}

/// Read a pod. Model names are looked up in `models` (the cluster's catalog); a model no node
/// has is valid and simply matches no node.
pub fn parse_pod(pod: &Pod, models: &ModelCatalog) -> Result<PodRequest, PodError> {
    parse_pod_with(pod, models, DEFAULT_POLICY)
}

/// [`parse_pod`], with `default` as the policy of a pod that names none.
pub fn parse_pod_with(
    pod: &Pod,
    models: &ModelCatalog,
    default: PolicyKind,
) -> Result<PodRequest, PodError> {
    let empty = BTreeMap::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    let res = resources(pod)?;
    let parts = DemandParts {
        names: POD_FIELDS,
        cpu: Amount::Value(res.cpu_milli),
        memory: Amount::Value(res.memory_bytes),
        gpus: Gpus::WholeOrShare {
            whole: (res.gpus > 0).then_some(Number::Value(res.gpus)),
            share: annotations
                .get(GPU_MILLI_ANNOTATION)
                .map(|text| Number::Text(text)),
        },
        models: annotations
            .get(GPU_MODELS_ANNOTATION)
            .map(|text| Models::Separated(text, ',')),
    };
    let demand = parse_demand(parts, Catalog::Lookup(models))?;
    if res.shares > 0 && !matches!(demand.gpu, GpuDemand::Shared { .. }) {
        return Err(PodError::ShareWithoutMilli);
    }
    let policy = match annotations.get(POLICY_ANNOTATION) {
        None => default,
        Some(name) => {
            PolicyKind::from_str(name).map_err(|e| PodError::UnknownPolicy(e.to_string()))?
        }
    };
    let planned_node = annotations
        .get(PLANNED_NODE_ANNOTATION)
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    let planned_devices = annotations
        .get(PLANNED_DEVICES_ANNOTATION)
        .map(|text| parse_devices(PLANNED_DEVICES_ANNOTATION, text))
        .transpose()?;
    if let Some(d) = planned_devices
        && d.len() != demand.gpu.num_gpu() as usize
    {
        return Err(PodError::PlannedDevicesCount {
            count: d.len(),
            need: demand.gpu.num_gpu(),
        });
    }
    Ok(PodRequest {
        planned_node,
        planned_devices,
        key: pod_key(pod),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        demand,
        policy,
        priority: pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0),
    })
}

/// A soft scheduling preference of `pod` that kube-scheduler's score plugins weigh and allot's
/// policies do not, named for logs; `None` when the pod has none. Only the pod's own fields
/// count: existing pods' affinity terms, PreferNoSchedule taints and image locality are not
/// looked at (see `--filter-answer`).
pub fn soft_preference(pod: &Pod) -> Option<&'static str> {
    fn any<T>(list: Option<&Vec<T>>) -> bool {
        list.is_some_and(|l| !l.is_empty())
    }
    let spec = pod.spec.as_ref()?;
    if let Some(a) = &spec.affinity {
        let node = a.node_affinity.as_ref();
        if any(node.and_then(|n| {
            n.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })) {
            return Some("preferred node affinity");
        }
        let affinity = a.pod_affinity.as_ref();
        if any(affinity.and_then(|p| {
            p.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })) {
            return Some("preferred pod affinity");
        }
        let anti = a.pod_anti_affinity.as_ref();
        if any(anti.and_then(|p| {
            p.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })) {
            return Some("preferred pod anti-affinity");
        }
    }
    spec.topology_spread_constraints
        .iter()
        .flatten()
        .any(|c| c.when_unsatisfiable == "ScheduleAnyway")
        .then_some("a ScheduleAnyway topology spread constraint")
}

/// What a pod already bound to a node occupies, for accounting: its parsed demand, or when
/// its annotations are invalid (a pod another scheduler placed, say) its containers' cpu,
/// memory and whole GPUs alone. `None` when even its resources cannot be read.
pub fn accounted_demand(pod: &Pod, models: &ModelCatalog) -> Option<PodDemand> {
    if let Ok(req) = parse_pod(pod, models) {
        return Some(req.demand);
    }
    let res = resources(pod).ok()?;
    let gpu = match res.gpus {
        0 => GpuDemand::None,
        n => GpuDemand::Whole {
            count: n.min(crate::model::MAX_GPUS_PER_NODE as u64) as u32,
        },
    };
    Some(PodDemand {
        cpu_milli: res.cpu_milli,
        memory_bytes: res.memory_bytes,
        gpu,
        models: ModelSet::ANY,
    })
}

/// The devices recorded on a bound pod ([`GPU_DEVICES_ANNOTATION`]), if any.
pub fn bound_devices(pod: &Pod) -> Option<Result<DeviceSet, PodError>> {
    let text = pod
        .metadata
        .annotations
        .as_ref()?
        .get(GPU_DEVICES_ANNOTATION)?;
    Some(parse_devices(GPU_DEVICES_ANNOTATION, text))
}

/// A device list as written in annotations: `0,1` (empty for a pod without GPUs).
pub fn parse_devices(annotation: &'static str, text: &str) -> Result<DeviceSet, PodError> {
    let bad = || PodError::BadDevices {
        annotation,
        text: text.to_string(),
    };
    let mut set = DeviceSet::EMPTY;
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let i: usize = part.parse().map_err(|_| bad())?;
        if i >= crate::model::MAX_GPUS_PER_NODE || set.contains(i) {
            return Err(bad());
        }
        set = set.with(i);
    }
    Ok(set)
}

/// The annotation text for a device set: `0,1`.
pub fn format_devices(devices: DeviceSet) -> String {
    let parts: Vec<String> = devices.iter().map(|i| i.to_string()).collect();
    parts.join(",")
}

/// CPU, memory and whole GPUs of a pod.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Resources {
    cpu_milli: u64,
    memory_bytes: u64,
    gpus: u64,
    /// Containers asking for [`GPU_SHARE_RESOURCE`] (each for 1).
    shares: u64,
}

impl Resources {
    fn add(self, o: Resources) -> Resources {
        Resources {
            cpu_milli: self.cpu_milli.saturating_add(o.cpu_milli),
            memory_bytes: self.memory_bytes.saturating_add(o.memory_bytes),
            gpus: self.gpus.saturating_add(o.gpus),
            shares: self.shares.saturating_add(o.shares),
        }
    }
    fn max(self, o: Resources) -> Resources {
        Resources {
            cpu_milli: self.cpu_milli.max(o.cpu_milli),
            memory_bytes: self.memory_bytes.max(o.memory_bytes),
            gpus: self.gpus.max(o.gpus),
            shares: self.shares.max(o.shares),
        }
    }
}

/// The pod's effective request, as kube-scheduler computes it: the sum over containers,
/// at least the largest init container (each resource separately), plus `spec.overhead`.
fn resources(pod: &Pod) -> Result<Resources, PodError> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(Resources::default());
    };
    let mut sum = Resources::default();
    for c in &spec.containers {
        sum = sum.add(container(c)?);
    }
    for c in spec.init_containers.iter().flatten() {
        sum = sum.max(container(c)?);
    }
    if let Some(overhead) = &spec.overhead {
        let over = quantities(
            "overhead",
            overhead.get("cpu"),
            overhead.get("memory"),
            None,
        )?;
        sum = sum.add(over);
    }
    Ok(sum)
}

/// A container's request; a resource with only a limit requests the limit (API defaulting).
fn container(c: &Container) -> Result<Resources, PodError> {
    let r = c.resources.as_ref();
    let get = |name: &str| {
        r.and_then(|r| r.requests.as_ref().and_then(|q| q.get(name)))
            .or_else(|| r.and_then(|r| r.limits.as_ref().and_then(|q| q.get(name))))
    };
    let mut res = quantities(&c.name, get("cpu"), get("memory"), get(GPU_RESOURCE))?;
    if let Some(q) = get(GPU_SHARE_RESOURCE) {
        let count = Number::Text(&q.0)
            .value()
            .map_err(|problem| PodError::BadQuantity {
                container: c.name.clone(),
                resource: GPU_SHARE_RESOURCE,
                problem,
            })?;
        if count > 1 {
            return Err(PodError::ShareCount {
                container: c.name.clone(),
                count,
            });
        }
        res.shares = count;
    }
    Ok(res)
}

fn quantities(
    container: &str,
    cpu: Option<&Quantity>,
    memory: Option<&Quantity>,
    gpu: Option<&Quantity>,
) -> Result<Resources, PodError> {
    let bad = |resource: &'static str| {
        move |problem| PodError::BadQuantity {
            container: container.to_string(),
            resource,
            problem,
        }
    };
    Ok(Resources {
        cpu_milli: cpu
            .map(|q| Amount::Quantity(&q.0).cpu_milli())
            .transpose()
            .map_err(bad("cpu"))?
            .unwrap_or(0),
        memory_bytes: memory
            .map(|q| Amount::Quantity(&q.0).bytes())
            .transpose()
            .map_err(bad("memory"))?
            .unwrap_or(0),
        gpus: gpu
            .map(|q| Number::Text(&q.0).value())
            .transpose()
            .map_err(bad(GPU_RESOURCE))?
            .unwrap_or(0),
        shares: 0,
    })
}

#[cfg(test)]
mod tests;
