//! The observe step: the request's pods from the API, node health from the live snapshot,
//! and the cluster to plan on — the snapshot (bound pods) plus the room promised to pods that
//! are planned but not bound yet, which the snapshot cannot show.

use std::collections::HashSet;
use std::sync::PoisonError;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::context::{CREATED_TTL, Context, Error, kube};
use super::lend;
use super::observed::{NodeHealth, NodeProblem, Observed};
use super::pods;
use crate::crd::ScheduleRequest;
use crate::live::StalePolicy;
use crate::live::pod::parse_devices;
use crate::model::{Cluster, Placement, PodDemand};
use crate::names::{PLANNED_DEVICES_ANNOTATION, PLANNED_NODE_ANNOTATION, REQUEST_LABEL};
use crate::snapshot::{ClusterSnapshot, NodeState, Telemetry};

/// A node's state as the plan step sees it. Stale telemetry always fails a node over (the
/// agent cannot vouch for its GPUs); missing telemetry only under fail-closed.
pub fn node_health(state: &NodeState, policy: StalePolicy) -> NodeHealth {
    let problem = if !state.ready {
        Some(NodeProblem::NotReady)
    } else {
        match state.telemetry {
            Telemetry::Stale { .. } => Some(NodeProblem::TelemetryStale),
            Telemetry::Missing if policy == StalePolicy::FailClosed => {
                Some(NodeProblem::TelemetryMissing)
            }
            _ => None,
        }
    };
    NodeHealth {
        problem,
        unschedulable: state.unschedulable,
        unhealthy: state.unhealthy,
    }
}

/// [`node_health`] of every node of the snapshot, parallel to its cluster's nodes.
pub fn health(snap: &ClusterSnapshot, policy: StalePolicy) -> Vec<NodeHealth> {
    snap.states.iter().map(|s| node_health(s, policy)).collect()
}

/// Names of the pods in `ns` that the snapshot already places (the plan step looks up the
/// request's own pods among them).
pub fn accounted(snap: &ClusterSnapshot, ns: &str) -> HashSet<String> {
    snap.pods
        .iter()
        .filter_map(|p| p.key.strip_prefix(&format!("{ns}/")).map(str::to_string))
        .collect()
}

/// The cluster to plan on: the snapshot plus the room promised to other requests' pods that
/// are planned but not bound yet (the snapshot places bound pods only), and to the waiting
/// pods the consolidator made room for. The room of elastic
/// replicas given back and still terminating is their borrower's: free to `own` when `own` is
/// the borrower, and for everyone else its borrower's planned pods, or the leaving pods where
/// those are not created yet. Also returns how many pods were given back to `own`.
pub fn with_reservations(snap: &ClusterSnapshot, ctx: &Context, own: &str) -> (Cluster, usize) {
    let mut cluster = snap.cluster.clone();
    let given = lend::given_back(snap, ctx);
    for (_, p) in &given {
        cluster.remove(&p.demand, p.at);
    }
    let bound: HashSet<&str> = snap.pods.iter().map(|p| p.key.as_str()).collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut reserve = |request: &str, key: String, demand: PodDemand, node: &str, devices| {
        if request == own || bound.contains(key.as_str()) || !seen.insert(key) {
            return;
        }
        if let Some(i) = snap.index.get(node) {
            hold_room(&mut cluster, &demand, Placement { node: i, devices });
        }
    };
    // Requests' unbound pods, and the waiting pods whose room the consolidator holds.
    let unbound = ctx.caches.planned.state();
    for pod in unbound.into_iter().chain(ctx.caches.consolidating.state()) {
        let notes = pod.metadata.annotations.as_ref();
        let Some(node) = notes.and_then(|n| n.get(PLANNED_NODE_ANNOTATION)) else {
            continue;
        };
        let unbound = pod.spec.as_ref().is_none_or(|s| s.node_name.is_none());
        if !unbound || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let request = format!(
            "{}/{}",
            pod.namespace().unwrap_or_default(),
            pod.labels().get(REQUEST_LABEL).map_or("", String::as_str)
        );
        let devices = notes
            .and_then(|n| n.get(PLANNED_DEVICES_ANNOTATION))
            .and_then(|t| parse_devices(PLANNED_DEVICES_ANNOTATION, t).ok())
            .unwrap_or_default();
        let models = &snap.cluster.models;
        if let Some(demand) = crate::live::pod::accounted_demand(&pod, models) {
            let key = crate::live::pod::pod_key(&pod);
            reserve(&request, key, demand, node, devices);
        }
    }
    let mut created = ctx.created.lock().unwrap_or_else(PoisonError::into_inner);
    created.retain(|c| c.at.elapsed() < CREATED_TTL);
    for c in created.iter() {
        reserve(&c.request, c.key.clone(), c.demand, &c.node, c.devices);
    }
    let mut own_given = 0;
    for (to, p) in &given {
        if to == own {
            own_given += 1;
        } else {
            // Where the borrower's pods took the room already, this fails: theirs it is.
            let _ = cluster.place(&p.demand, p.at);
        }
    }
    (cluster, own_given)
}

/// Hold, in `cluster`, the room promised to a pod that is not bound yet at `at`: another
/// request's planned pod, or a waiting pod the consolidator made room for. Where it fits it is
/// placed as the pod's demand. Where it does not, the pods making way for it (elastic
/// replicas given back, moved pods) have not left yet, or someone else took the room (the
/// other request's PlanStale to fix): either way its devices are withheld whole, so that no
/// plan takes a device promised to another pod while it is freed (the extender refuses the
/// node of a consolidation hold to other pods meanwhile, too).
pub fn hold_room(cluster: &mut Cluster, demand: &PodDemand, at: Placement) {
    if cluster.place(demand, at).is_err() {
        for d in at.devices.iter() {
            cluster.withhold_gpu(at.node, d);
        }
    }
}

/// The request's pods, straight from the API (the caches skip finished pods).
pub async fn observe(sr: &ScheduleRequest, ctx: &Context, ns: &str) -> Result<Observed, Error> {
    let api = Api::<Pod>::namespaced(ctx.client.clone(), ns);
    let selector = format!("{REQUEST_LABEL}={}", sr.name_any());
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(kube("ListPods"))?;
    let uid = sr.uid();
    let ours = |p: &&Pod| {
        p.metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| o.iter().any(|o| Some(&o.uid) == uid.as_ref()))
    };
    let mut pods: Vec<_> = list
        .items
        .iter()
        .filter(ours)
        .filter_map(pods::observe)
        .collect();
    pods.sort_by(|a, b| (&a.task, a.index).cmp(&(&b.task, b.index)));
    Ok(Observed { pods })
}
