//! Objects -> the core's [`ClusterSnapshot`] (in a [`LiveSnapshot`], with the objects read
//! around), without I/O: nodes are sorted by name (stable indices), their GPU models
//! ([`node_model`]) are interned in sorted order, pods bound to a known node are placed on the
//! devices their `allot.dev/gpu-devices` annotation records (the default choice when it has
//! none or it no longer fits), each node's [`NodeState`] comes from its Node and NodeTelemetry
//! objects, and unhealthy GPUs are withheld so nothing new lands on them.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node as KubeNode, Pod};

use crate::crd::{GpuHealth, NodeTelemetry};
use crate::live::node_model::{NodeModelError, intern_models};
use crate::live::pod::{PodError, accounted_demand, bound_devices, pod_key};
use crate::model::quantity::{parse_bytes, parse_count, parse_cpu_milli};
use crate::model::{
    Cluster, DeviceSet, MAX_GPUS_PER_NODE, ModelCatalog, ModelId, Node, Placement, PodDemand,
};
use crate::names::GPU_RESOURCE;
use crate::snapshot::{BoundPod, ClusterSnapshot, NodeState, Telemetry, node_index};

/// What to do with a node whose telemetry is stale or missing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StalePolicy {
    /// Keep placing on it, from allocation state alone.
    #[default]
    FailOpen,
    /// Filter it (retryable) until its agent reports again.
    FailClosed,
}

/// When telemetry counts as stale, and what that means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    pub stale_after: Duration,
    pub policy: StalePolicy,
    /// "Now" in Unix milliseconds (a parameter so that tests are deterministic).
    pub now_unix_ms: i64,
}

impl Freshness {
    pub fn now(stale_after: Duration, policy: StalePolicy) -> Self {
        let now_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Freshness {
            stale_after,
            policy,
            now_unix_ms,
        }
    }
}

/// The cluster as the API server last showed it (per-node state included), and the objects
/// read around on the way.
#[derive(Debug, Clone)]
pub struct LiveSnapshot {
    pub snapshot: ClusterSnapshot,
    /// Objects that could not be used as they are, for logs (bounded).
    pub problems: Vec<Problem>,
}

/// An object allot had to skip or read around.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub object: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

const MAX_PROBLEMS: usize = 50;

/// What each pod object contributed to the last snapshot, by UID, kept while its
/// `resourceVersion` stays the same. While pods are bound at hundreds a second the snapshot
/// is rebuilt ten times a second, and reading every bound pod's requests and annotations
/// again each time was most of a rebuild.
#[derive(Debug, Default)]
pub struct PodMemo {
    /// The GPU models the entries were read against: demands carry model indices, so a new
    /// catalog empties the memo.
    catalog: Vec<String>,
    entries: HashMap<String, PodEntry>,
}

#[derive(Debug)]
struct PodEntry {
    version: String,
    demand: Option<PodDemand>,
    devices: Option<Result<DeviceSet, PodError>>,
    /// Whether the build under way has seen this pod; entries it has not are dropped.
    seen: bool,
}

impl PodMemo {
    /// The pod's demand and recorded devices, read now or remembered.
    fn read(&mut self, pod: &Pod, models: &ModelCatalog) -> &PodEntry {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let version = pod.metadata.resource_version.as_deref().unwrap_or_default();
        let fresh = || PodEntry {
            version: version.to_string(),
            demand: accounted_demand(pod, models),
            devices: bound_devices(pod),
            seen: true,
        };
        // Objects without a UID or version (tests, hand-made snapshots) are never remembered.
        if uid.is_empty() || version.is_empty() {
            self.entries.insert(String::new(), fresh());
            return &self.entries[""];
        }
        let entry = self.entries.entry(uid.to_string()).or_insert_with(fresh);
        if entry.version != version {
            *entry = fresh();
        }
        entry.seen = true;
        entry
    }

    fn begin(&mut self, catalog: &ModelCatalog) {
        let names = || catalog.ids().map(|id| catalog.name(id));
        if !self.catalog.iter().map(String::as_str).eq(names()) {
            self.catalog = names().map(str::to_string).collect();
            self.entries.clear();
        }
        for e in self.entries.values_mut() {
            e.seen = false;
        }
    }

    fn end(&mut self) {
        self.entries.retain(|uid, e| e.seen && !uid.is_empty());
    }
}

/// Build the snapshot from the reflectors' objects.
pub fn snapshot(
    nodes: &[Arc<KubeNode>],
    pods: &[Arc<Pod>],
    telemetry: &[Arc<NodeTelemetry>],
    freshness: &Freshness,
) -> LiveSnapshot {
    snapshot_with(&mut PodMemo::default(), nodes, pods, telemetry, freshness)
}

/// [`snapshot`], reusing what `memo` remembers of pods that have not changed since the last
/// build with it.
pub fn snapshot_with(
    memo: &mut PodMemo,
    nodes: &[Arc<KubeNode>],
    pods: &[Arc<Pod>],
    telemetry: &[Arc<NodeTelemetry>],
    freshness: &Freshness,
) -> LiveSnapshot {
    let mut problems = Vec::new();
    let mut problem = |object: String, message: String| {
        if problems.len() < MAX_PROBLEMS {
            problems.push(Problem { object, message });
        }
    };
    let reports: BTreeMap<&str, &NodeTelemetry> = telemetry
        .iter()
        .filter_map(|t| Some((t.metadata.name.as_deref()?, t.as_ref())))
        .collect();
    let mut sorted: Vec<&KubeNode> = nodes.iter().map(Arc::as_ref).collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));

    let (models, node_models) = intern_models(&sorted, &reports, &mut problem);
    memo.begin(&models);

    let mut core = Vec::with_capacity(sorted.len());
    let mut states = Vec::with_capacity(sorted.len());
    for (n, model) in sorted.iter().zip(node_models) {
        let name = n.metadata.name.clone().unwrap_or_default();
        match core_node(n, &name, model) {
            Ok((node, issue)) => {
                if let Some(m) = issue {
                    problem(format!("node {name}"), m);
                }
                states.push(node_state(
                    n,
                    reports.get(name.as_str()).copied(),
                    freshness,
                ));
                core.push(node);
            }
            Err(m) => problem(format!("node {name}"), format!("{m}; left out")),
        }
    }
    let mut cluster = Cluster::new(models, core);
    let index = node_index(&cluster);

    // Oldest first, so that when a node is overbooked the newest pod is the one left out.
    let mut bound: Vec<(&Pod, usize)> = pods
        .iter()
        .filter(|p| counts(p))
        .filter_map(|p| {
            let node = p.spec.as_ref()?.node_name.as_deref()?;
            Some((p.as_ref(), index.get(node)?))
        })
        .collect();
    bound.sort_by(|(a, _), (b, _)| {
        (
            a.metadata.creation_timestamp.as_ref().map(|t| t.0),
            &a.metadata.name,
        )
            .cmp(&(
                b.metadata.creation_timestamp.as_ref().map(|t| t.0),
                &b.metadata.name,
            ))
    });
    let mut placed = Vec::with_capacity(bound.len());
    for (pod, node) in bound {
        let key = pod_key(pod);
        let read = memo.read(pod, &cluster.models);
        let Some(demand) = read.demand else {
            problem(
                format!("pod {key}"),
                "resources unreadable; not accounted".into(),
            );
            continue;
        };
        let Some(target) = cluster.node(node) else {
            continue;
        };
        let recorded = match &read.devices {
            Some(Ok(d)) if target.devices_fit(demand.gpu, *d) => Some(*d),
            Some(Ok(_)) => {
                problem(
                    format!("pod {key}"),
                    "its recorded GPU devices are taken or out of range; accounted on the \
                     default devices"
                        .into(),
                );
                None
            }
            Some(Err(e)) => {
                problem(format!("pod {key}"), e.to_string());
                None
            }
            None => None,
        };
        let Some(devices) = recorded.or_else(|| target.default_devices(demand.gpu)) else {
            problem(
                format!("pod {key}"),
                format!("does not fit node {} as allot accounts it", target.name),
            );
            continue;
        };
        let at = Placement { node, devices };
        if let Err(m) = cluster.place(&demand, at) {
            problem(
                format!("pod {key}"),
                format!("does not fit node {}: {m:?}", target_name(&cluster, node)),
            );
            continue;
        }
        placed.push(BoundPod {
            uid: pod.metadata.uid.clone().unwrap_or_else(|| key.clone()),
            key,
            demand,
            at,
            priority: pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0),
        });
    }
    memo.end();
    // Unhealthy GPUs last: pods already on them stay accounted, nothing new fits there.
    for (i, state) in states.iter().enumerate() {
        for d in state.unhealthy.iter() {
            cluster.withhold_gpu(i, d);
        }
    }
    LiveSnapshot {
        snapshot: ClusterSnapshot::indexed(cluster, index, placed, states),
        problems,
    }
}

fn target_name(cluster: &Cluster, node: usize) -> &str {
    cluster.node(node).map_or("?", |n| &*n.name)
}

/// Whether a pod holds resources on its node: bound, not finished.
pub(super) fn counts(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed"))
}

/// The core node for a Node object, and what was wrong with it if anything. `model` is its
/// model's catalog entry (`None`: the catalog is full) or why it has none.
fn core_node(
    n: &KubeNode,
    name: &str,
    model: Result<Option<ModelId>, NodeModelError>,
) -> Result<(Node, Option<String>), String> {
    let alloc = n.status.as_ref().and_then(|s| s.allocatable.as_ref());
    let get = |k: &str| alloc.and_then(|a| a.get(k)).map(|q| q.0.as_str());
    let mut issues = Vec::new();
    let cpu = get("cpu")
        .map_or(Ok(0), parse_cpu_milli)
        .unwrap_or_else(|e| {
            issues.push(format!("allocatable cpu: {e}"));
            0
        });
    let memory = get("memory")
        .map_or(Ok(0), parse_bytes)
        .unwrap_or_else(|e| {
            issues.push(format!("allocatable memory: {e}"));
            0
        });
    let mut gpus = get(GPU_RESOURCE)
        .map_or(Ok(0), parse_count)
        .unwrap_or_else(|e| {
            issues.push(format!("allocatable {GPU_RESOURCE}: {e}"));
            0
        }) as usize;
    if gpus > MAX_GPUS_PER_NODE {
        issues.push(format!(
            "{gpus} GPUs; allot accounts at most {MAX_GPUS_PER_NODE} per node"
        ));
        gpus = MAX_GPUS_PER_NODE;
    }
    let (mut id, unusable) = match model {
        Ok(id) => (id, None),
        Err(e) => (None, Some(e.to_string())),
    };
    if id.is_none() && gpus > 0 {
        let why = unusable
            .as_deref()
            .unwrap_or("GPU model unknown to the catalog");
        issues.push(format!("{why}; accounted without GPUs"));
        (gpus, id) = (0, None);
    } else if let Some(why) = unusable {
        issues.push(why);
    }
    let node = Node::new(name, cpu, memory, gpus, id).map_err(|e| e.to_string())?;
    Ok((node, (!issues.is_empty()).then(|| issues.join("; "))))
}

/// Whether the node's Ready condition is True.
pub(super) fn ready(n: &KubeNode) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn node_state(n: &KubeNode, report: Option<&NodeTelemetry>, f: &Freshness) -> NodeState {
    let ready = ready(n);
    let unschedulable = n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
    let status = report.and_then(|r| r.status.as_ref());
    let telemetry = match status.and_then(|s| s.heartbeat_time.as_ref()) {
        None => Telemetry::Missing,
        Some(t) => {
            let age_ms = (f.now_unix_ms - t.0.as_millisecond()).max(0) as u64;
            let age = Duration::from_millis(age_ms);
            if age > f.stale_after {
                Telemetry::Stale {
                    age,
                    limit: f.stale_after,
                }
            } else {
                Telemetry::Fresh
            }
        }
    };
    let mut unhealthy = DeviceSet::EMPTY;
    let mut reasons = BTreeMap::new();
    for g in status.map(|s| s.gpus.as_slice()).unwrap_or_default() {
        let i = g.index as usize;
        if g.health != GpuHealth::Healthy && i < MAX_GPUS_PER_NODE {
            unhealthy = unhealthy.with(i);
            reasons.insert(i, g.reason.clone().unwrap_or_default());
        }
    }
    NodeState {
        ready,
        unschedulable,
        telemetry,
        unhealthy,
        reasons,
    }
}
