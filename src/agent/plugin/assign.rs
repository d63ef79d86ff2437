//! Which pod kubelet is admitting when it calls `Allocate`, and which of the node's GPUs that
//! pod's container gets: exactly the ones allot's extender wrote at bind
//! (`allot.dev/gpu-devices`), never kubelet's own pick.
//!
//! kubelet's `Allocate` names device IDs, not a pod. kubelet admits the pods bound to its node
//! one at a time, oldest `creationTimestamp` first, and for each pod calls `Allocate` once per
//! container that asks for the resource, init containers first. So the pod being admitted is
//! the oldest pod on this node that is neither running nor handed its GPUs yet and whose next
//! container still waiting for this resource asks for as many devices as kubelet passed. Two
//! pods admitted back to back are told apart by that order and by the record of what was handed
//! out (in memory, and on the pod as `allot.dev/gpu-allocated` so a restarted agent knows too).
//! Ties in `creationTimestamp` (one-second resolution) fall back to namespace/name, which is not
//! kubelet's order: two such pods with the same request on one node may swap GPUs (both are
//! what allot accounted, so nothing is handed out twice; each container may see the other's).

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;

use super::inventory::{Gpu, Inventory, Resource};
use crate::live::pod::{bound_devices, parse_pod, pod_key};
use crate::model::{GpuDemand, ModelCatalog};
use crate::names::{GPU_ALLOCATED_ANNOTATION, GPU_DEVICES_ANNOTATION};

/// A container's ask for one of allot's resources, in kubelet's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub container: String,
    pub init: bool,
    pub resource: Resource,
    pub count: u32,
}

/// What has been handed out: (pod UID, container, resource).
pub type Served = HashSet<(String, String, Resource)>;

/// Why kubelet is refused. Shown to the pod (event) and to kubelet (the admission error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "no pod on this node is waiting for {count} {resource} (pods bound by allot, not yet \
         given their GPUs); was it bound by another scheduler?"
    )]
    NoPod {
        resource: &'static str,
        count: usize,
    },
    #[error("pod {pod}: {message}")]
    BadPod { pod: String, message: String },
    #[error(
        "pod {pod}: GPU {index} named in {GPU_DEVICES_ANNOTATION} is not on this node (its GPUs: {have})"
    )]
    Missing {
        pod: String,
        index: u32,
        have: String,
    },
    #[error("pod {pod}: GPU {index} ({uuid}) is unhealthy: {why}")]
    Unhealthy {
        pod: String,
        index: u32,
        uuid: String,
        why: String,
    },
    #[error(
        "pod {pod}: GPU {index} would be over-committed: it asks {asks} milli-GPU and {holders} \
         already hold {held}"
    )]
    Overcommitted {
        pod: String,
        index: u32,
        asks: u32,
        held: u32,
        holders: String,
    },
}

impl Refusal {
    /// Bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NoPod { .. } => "NoPod",
            Refusal::BadPod { .. } => "BadPod",
            Refusal::Missing { .. } => "DeviceMissing",
            Refusal::Unhealthy { .. } => "DeviceUnhealthy",
            Refusal::Overcommitted { .. } => "Overcommitted",
        }
    }

    /// The pod the refusal is about, when there is one (to put an event on).
    pub fn pod(&self) -> Option<&str> {
        match self {
            Refusal::NoPod { .. } => None,
            Refusal::BadPod { pod, .. }
            | Refusal::Missing { pod, .. }
            | Refusal::Unhealthy { pod, .. }
            | Refusal::Overcommitted { pod, .. } => Some(pod),
        }
    }
}

/// A whole count from a resource quantity (`"2"`); anything else is not an ask.
fn count(q: &Quantity) -> Option<u32> {
    q.0.trim().parse().ok()
}

fn ask_of(c: &Container, init: bool, resource: Resource) -> Option<Ask> {
    let r = c.resources.as_ref()?;
    let q = r
        .limits
        .as_ref()
        .and_then(|l| l.get(resource.name()))
        .or_else(|| r.requests.as_ref()?.get(resource.name()))?;
    let count = count(q).filter(|n| *n > 0)?;
    Some(Ask {
        container: c.name.clone(),
        init,
        resource,
        count,
    })
}

/// Every ask of `pod` for allot's resources, init containers first, as kubelet allocates them.
pub fn asks(pod: &Pod) -> Vec<Ask> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let init = spec.init_containers.iter().flatten().map(|c| (c, true));
    let app = spec.containers.iter().map(|c| (c, false));
    init.chain(app)
        .flat_map(|(c, i)| {
            Resource::ALL
                .into_iter()
                .filter_map(move |r| ask_of(c, i, r))
        })
        .collect()
}

fn finished(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

/// Whether kubelet has admitted `pod` already: it runs, or a container has started. Such a pod
/// is never the one being admitted, whatever its annotations say (pods that ran before the
/// plugin was installed have no `allot.dev/gpu-allocated`).
fn admitted(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    let started = status.container_statuses.iter().flatten().any(|c| {
        c.state
            .as_ref()
            .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
    });
    started
        || matches!(
            status.phase.as_deref(),
            Some("Running" | "Succeeded" | "Failed")
        )
}

/// Whether `pod` holds GPUs on this node: handed out (on record, in `served`, or admitted
/// before) and not finished. A pod being deleted still holds them until its containers are
/// gone.
fn holds(pod: &Pod, served: &Served) -> bool {
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    let handed = pod.annotations().contains_key(GPU_ALLOCATED_ANNOTATION)
        || served.iter().any(|(u, _, _)| u == uid)
        || admitted(pod);
    handed && !finished(pod)
}

/// The pod kubelet is admitting for an `Allocate` of `count` devices of `resource`, and the
/// container it is for.
pub fn choose<'a>(
    pods: &'a [Pod],
    served: &Served,
    resource: Resource,
    count: usize,
) -> Result<(&'a Pod, Ask), Refusal> {
    let mut waiting: Vec<(&Pod, Ask)> = pods
        .iter()
        .filter(|p| !admitted(p) && p.metadata.deletion_timestamp.is_none())
        .filter(|p| !p.annotations().contains_key(GPU_ALLOCATED_ANNOTATION))
        .filter_map(|p| {
            let uid = p.metadata.uid.clone().unwrap_or_default();
            let next = asks(p).into_iter().find(|a| {
                a.resource == resource
                    && !served.contains(&(uid.clone(), a.container.clone(), resource))
            })?;
            (next.count as usize == count).then_some((p, next))
        })
        .collect();
    waiting.sort_by(|(a, _), (b, _)| {
        let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a)
            .cmp(&created(b))
            .then_with(|| pod_key(a).cmp(&pod_key(b)))
    });
    waiting.into_iter().next().ok_or(Refusal::NoPod {
        resource: resource.name(),
        count,
    })
}

/// The GPUs `ask` gets: its slice of the pod's annotated devices (init containers from the
/// first, app containers one after another; every share container the pod's one GPU), checked
/// against the node's GPUs and against what other pods hold.
pub fn grant<'a>(
    pod: &Pod,
    ask: &Ask,
    inventory: &'a Inventory,
    pods: &[Pod],
    served: &Served,
) -> Result<Vec<&'a Gpu>, Refusal> {
    let key = pod_key(pod);
    let bad = |message: String| Refusal::BadPod {
        pod: key.clone(),
        message,
    };
    // The one demand parser also refuses a share resource without a share, and a share with
    // whole GPUs.
    let per_gpu = milli(pod).map_err(bad)?;
    let devices: Vec<u32> = match bound_devices(pod) {
        None => {
            return Err(bad(format!(
                "no {GPU_DEVICES_ANNOTATION} annotation: it was not bound by allot's extender, \
                 so allot cannot tell which GPUs it was given"
            )));
        }
        Some(Err(e)) => return Err(bad(e.to_string())),
        Some(Ok(set)) => set.iter().map(|i| i as u32).collect(),
    };
    let slice: &[u32] = match ask.resource {
        Resource::Share if devices.len() == 1 => &devices,
        Resource::Share => {
            return Err(bad(format!(
                "a share of one GPU, but {GPU_DEVICES_ANNOTATION} names {} GPUs",
                devices.len()
            )));
        }
        Resource::Whole => {
            let before: u32 = if ask.init {
                0
            } else {
                asks(pod)
                    .iter()
                    .filter(|a| !a.init && a.resource == Resource::Whole)
                    .take_while(|a| a.container != ask.container)
                    .map(|a| a.count)
                    .sum()
            };
            let (from, to) = (before as usize, (before + ask.count) as usize);
            devices.get(from..to).ok_or_else(|| {
                bad(format!(
                    "{GPU_DEVICES_ANNOTATION} names {} GPUs, too few for container {:?} \
                     (GPUs {from}..{to} of the pod's)",
                    devices.len(),
                    ask.container
                ))
            })?
        }
    };
    let mut gpus = Vec::with_capacity(slice.len());
    for &index in slice {
        let gpu = inventory.by_index(index).ok_or_else(|| Refusal::Missing {
            pod: key.clone(),
            index,
            have: inventory.describe(),
        })?;
        if let Some(why) = &gpu.unhealthy {
            return Err(Refusal::Unhealthy {
                pod: key.clone(),
                index,
                uuid: gpu.uuid.clone(),
                why: why.clone(),
            });
        }
        gpus.push(gpu);
    }
    check_room(pod, &key, &devices, per_gpu, pods, served)?;
    Ok(gpus)
}

/// Milli-GPU the pod takes on each of its GPUs: 1000 for whole GPUs, its share otherwise.
fn milli(pod: &Pod) -> Result<u32, String> {
    let request = parse_pod(pod, &ModelCatalog::default()).map_err(|e| e.to_string())?;
    Ok(match request.demand.gpu {
        GpuDemand::Shared { milli } => milli,
        GpuDemand::Whole { .. } | GpuDemand::None => 1000,
    })
}

/// Refuses when `devices` cannot take `per_gpu` more on top of what the pods holding GPUs on
/// this node already have (two pods annotated with more of a GPU than it has).
fn check_room(
    pod: &Pod,
    key: &str,
    devices: &[u32],
    per_gpu: u32,
    pods: &[Pod],
    served: &Served,
) -> Result<(), Refusal> {
    let uid = pod.metadata.uid.as_deref();
    let mut held: BTreeMap<u32, (u32, Vec<String>)> = BTreeMap::new();
    for other in pods {
        if other.metadata.uid.as_deref() == uid || !holds(other, served) {
            continue;
        }
        let (Some(Ok(set)), Ok(m)) = (bound_devices(other), milli(other)) else {
            continue;
        };
        for i in set.iter() {
            let entry = held.entry(i as u32).or_default();
            entry.0 += m;
            entry.1.push(pod_key(other));
        }
    }
    for &index in devices {
        if let Some((used, who)) = held.get(&index)
            && used + per_gpu > 1000
        {
            return Err(Refusal::Overcommitted {
                pod: key.to_string(),
                index,
                asks: per_gpu,
                held: *used,
                holders: who.join(", "),
            });
        }
    }
    Ok(())
}

/// The share of one GPU the pod asks for, if it asks for a share.
pub fn share_milli(pod: &Pod) -> Option<u32> {
    milli(pod).ok().filter(|m| *m < 1000)
}

/// GetPreferredAllocation's answer: allot's choice when kubelet can honour it (all available,
/// the right size, including what kubelet must include), otherwise what kubelet must include
/// and then the first available devices.
pub fn prefer(
    chosen: Option<Vec<String>>,
    available: &[String],
    must_include: &[String],
    size: usize,
) -> Vec<String> {
    if let Some(ids) = chosen
        && ids.len() == size
        && ids.iter().all(|id| available.contains(id))
        && must_include.iter().all(|id| ids.contains(id))
    {
        return ids;
    }
    let mut ids: Vec<String> = Vec::with_capacity(size);
    for id in must_include.iter().chain(available) {
        if ids.len() >= size {
            break;
        }
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    ids
}
