//! One reconcile of one ScheduleRequest, the pipeline's client-facing steps around the pure
//! ones: observe (the request's pods from the API, the cluster from the shared caches) ->
//! [`validate`] -> [`decide`] -> apply (delete, create) -> status (server-side apply on the
//! status subresource, an Event per transition and per move). Deletion goes through the
//! `allot.dev/cleanup` finalizer.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{Event as Finalized, finalizer};
use kube::{Client, Resource, ResourceExt};

use super::Config;
use super::decide::{Decision, NodeHealth, NodeProblem, Observed, World, decide};
use super::metrics::{Metrics, PlanOutcome};
use super::pods::{self, BuildError, parse_devices};
use super::status;
use super::validate::validate;
use crate::alloc::PlanError;
use crate::crd::batch::objective;
use crate::crd::{ScheduleRequest, ScheduleRequestStatus};
use crate::live::{Caches, Freshness, LiveSnapshot, NodeState, StalePolicy, Telemetry};
use crate::model::{Cluster, DeviceSet, Placement, PodDemand};
use crate::names::{PLANNED_DEVICES_ANNOTATION, PLANNED_NODE_ANNOTATION, REQUEST_LABEL};

/// Finalizer that makes deletion wait for the request's pods to be deleted.
pub const FINALIZER: &str = "allot.dev/cleanup";
/// Field manager of the status writes.
pub const FIELD_MANAGER: &str = "allot-controller";
/// Requeue while something is in flight (an old pod terminating, a create conflict).
const SOON: Duration = Duration::from_secs(2);
/// Requeue of a request with unplaced replicas; cluster changes also trigger a reconcile.
const RETRY: Duration = Duration::from_secs(15);
/// Periodic re-check of a settled request.
const RESYNC: Duration = Duration::from_secs(300);
/// How long a pod this controller created counts as a reservation before the caches show it.
const CREATED_TTL: Duration = Duration::from_secs(30);

/// What reconciles share.
pub struct Context {
    pub client: Client,
    pub caches: Arc<Caches>,
    pub config: Config,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Pods created recently: placed by later plans of other requests until the caches show
    /// them.
    created: Mutex<Vec<Created>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

impl Context {
    pub fn new(client: Client, caches: Arc<Caches>, config: Config, recorder: Recorder) -> Self {
        Context {
            client,
            caches,
            metrics: config.metrics.clone(),
            config,
            recorder,
            created: Mutex::new(Vec::new()),
        }
    }
}

/// A pod this process created: its request (`ns/name`), key, demand and planned spot.
#[derive(Debug, Clone)]
struct Created {
    request: String,
    key: String,
    demand: PodDemand,
    node: String,
    devices: DeviceSet,
    at: Instant,
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action}: {source}")]
    Kube {
        action: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("planning: {0}")]
    Plan(#[from] PlanError),
    #[error("building a pod: {0}")]
    Build(#[from] BuildError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("the ScheduleRequest has no namespace")]
    NoNamespace,
}

impl Error {
    /// Bounded CamelCase reason for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { action, .. } => action,
            Error::Plan(e) => e.reason(),
            Error::Build(_) => "PodBuildFailed",
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.reason(),
                _ => "FinalizerFailed",
            },
            Error::NoNamespace => "NoNamespace",
        }
    }
}

fn kube(action: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube { action, source }
}

/// The Controller's reconciler: finalizer first, then the pipeline.
pub async fn reconcile(sr: Arc<ScheduleRequest>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = async {
        let ns = sr.namespace().ok_or(Error::NoNamespace)?;
        let api = Api::<ScheduleRequest>::namespaced(ctx.client.clone(), &ns);
        finalizer(&api, FINALIZER, sr, |event| async {
            match event {
                Finalized::Apply(sr) => apply(&sr, &ctx).await,
                Finalized::Cleanup(sr) => cleanup(&sr, &ctx).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)))
    }
    .await;
    ctx.metrics
        .reconciled(started.elapsed(), result.as_ref().err().map(Error::reason));
    result
}

/// Retry failed reconciles after a pause; the error is logged with its reason.
pub fn error_policy(sr: Arc<ScheduleRequest>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(request = %key(&sr), reason = error.reason(), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

fn key(sr: &ScheduleRequest) -> String {
    format!("{}/{}", sr.namespace().unwrap_or_default(), sr.name_any())
}

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

/// The cluster to plan on: the snapshot plus the room promised to other requests' pods that
/// are planned but not bound yet (the snapshot places bound pods only).
fn with_reservations(live: &LiveSnapshot, ctx: &Context, own: &str) -> Cluster {
    let mut cluster = live.snapshot.cluster.clone();
    let bound: HashSet<&str> = live.snapshot.pods.iter().map(|p| p.key.as_str()).collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut reserve = |request: &str, key: String, demand: PodDemand, node: &str, devices| {
        if request == own || bound.contains(key.as_str()) || !seen.insert(key) {
            return;
        }
        if let Some(&i) = live.snapshot.index.get(node) {
            // A reservation that no longer fits is the other request's PlanStale to fix.
            let _ = cluster.place(&demand, Placement { node: i, devices });
        }
    };
    for pod in ctx.caches.pods.state() {
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
            .and_then(|t| parse_devices(t))
            .unwrap_or_default();
        let models = &live.snapshot.cluster.models;
        if let Some(demand) = crate::extender::pod::accounted_demand(&pod, models) {
            let key = crate::extender::pod::pod_key(&pod);
            reserve(&request, key, demand, node, devices);
        }
    }
    let mut created = ctx.created.lock().unwrap_or_else(PoisonError::into_inner);
    created.retain(|c| c.at.elapsed() < CREATED_TTL);
    for c in created.iter() {
        reserve(&c.request, c.key.clone(), c.demand, &c.node, c.devices);
    }
    cluster
}

/// The request's pods, straight from the API (the caches skip finished pods).
async fn observe(sr: &ScheduleRequest, ctx: &Context, ns: &str) -> Result<Observed, Error> {
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

async fn apply(sr: &ScheduleRequest, ctx: &Context) -> Result<Action, Error> {
    let ns = sr.namespace().ok_or(Error::NoNamespace)?;
    let name = sr.name_any();
    let mut observed = observe(sr, ctx, &ns).await?;
    let live = ctx.caches.snapshot(&Freshness::now(
        ctx.config.stale_after,
        ctx.config.stale_policy,
    ));
    let previous = sr.status.clone().unwrap_or_default();
    let generation = sr.metadata.generation;
    let now = Timestamp::now();

    let replicas = match validate(&name, &sr.spec, &live.snapshot.cluster) {
        Ok(r) => r,
        Err(errors) => {
            let problems: Vec<String> = errors.iter().map(ToString::to_string).collect();
            let total = sr.spec.total_replicas().min(i64::from(i32::MAX)) as i32;
            let next = status::invalid(&previous, generation, total, &problems, &now);
            write_status(sr, ctx, &ns, &previous, next).await?;
            // Checks against the cluster (models, GPU counts) may pass once nodes change.
            return Ok(Action::requeue(RETRY));
        }
    };

    let cluster = with_reservations(&live, ctx, &key(sr));
    let health: Vec<NodeHealth> = live
        .nodes
        .iter()
        .map(|s| node_health(s, ctx.config.stale_policy))
        .collect();
    let accounted: HashSet<String> = live
        .snapshot
        .pods
        .iter()
        .filter_map(|p| p.key.strip_prefix(&format!("{ns}/")).map(str::to_string))
        .collect();
    let world = World {
        cluster: &cluster,
        health: &health,
        accounted: &accounted,
    };
    let mut options = ctx.config.plan;
    options.objective = objective(&sr.spec);
    let decision = decide(
        &replicas,
        sr.spec.tasks.len(),
        &observed,
        &world,
        &options,
        &now.to_string(),
    )?;
    if let Some(solver) = &decision.solver {
        let outcome = match (decision.create.len(), decision.unplaced.len()) {
            _ if decision.gang_blocked => PlanOutcome::GangBlocked,
            (_, 0) => PlanOutcome::Complete,
            (0, _) => PlanOutcome::Unplaced,
            _ => PlanOutcome::Partial,
        };
        ctx.metrics.planned(outcome, solver.millis);
    }

    let conflicts = act(sr, ctx, &ns, &decision, &replicas).await?;
    let removed: BTreeSet<&str> = decision.remove.iter().map(|r| r.name.as_str()).collect();
    observed.pods.retain(|p| !removed.contains(p.name.as_str()));
    let next = status::planned(&previous, generation, &decision, &observed, &now);
    let unsettled = !next.unplaced.is_empty();
    write_status(sr, ctx, &ns, &previous, next).await?;
    for m in &decision.moves {
        let note = format!(
            "{}[{}] left {} ({}); new plan: {}",
            m.task,
            m.replica,
            m.from,
            m.reason,
            m.to.as_deref().unwrap_or("no node fits yet")
        );
        publish(
            ctx,
            sr,
            EventType::Warning,
            "ReplicaMoved",
            "Failover",
            note,
        )
        .await;
    }
    Ok(
        if conflicts > 0 || decision.waiting > 0 || !decision.moves.is_empty() {
            Action::requeue(SOON)
        } else if unsettled {
            Action::requeue(RETRY)
        } else {
            Action::requeue(RESYNC)
        },
    )
}

/// The apply step: deletions first (they free room and names), then creations. Returns how
/// many creates found the name taken (an old pod still terminating): retried soon.
async fn act(
    sr: &ScheduleRequest,
    ctx: &Context,
    ns: &str,
    decision: &Decision,
    replicas: &[crate::crd::batch::Replica],
) -> Result<usize, Error> {
    let api = Api::<Pod>::namespaced(ctx.client.clone(), ns);
    for removal in &decision.remove {
        let params = if removal.force {
            DeleteParams::default().grace_period(0)
        } else {
            DeleteParams::default()
        };
        match api.delete(&removal.name, &params).await {
            Ok(_) => tracing::info!(pod = %removal.name, reason = removal.reason, "pod deleted"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(kube("DeletePod")(e)),
        }
        if removal.force {
            ctx.metrics.moved(removal.reason);
        }
    }
    let mut conflicts = 0;
    let mut made = Vec::new();
    for entry in &decision.create {
        let Some(task) = sr.spec.tasks.iter().find(|t| t.name == entry.task) else {
            continue;
        };
        let pod = pods::build(sr, task, entry)?;
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        match api.create(&PostParams::default(), &pod).await {
            Ok(_) => {
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
            Err(kube::Error::Api(s)) if s.code == 409 => conflicts += 1,
            Err(e) => return Err(kube("CreatePod")(e)),
        }
    }
    if !made.is_empty() {
        tracing::info!(request = %key(sr), pods = ?made, "pods created");
        let note = format!("created {} pods: {}", made.len(), made.join(", "));
        publish(ctx, sr, EventType::Normal, "PodsCreated", "Create", note).await;
    }
    Ok(conflicts)
}

/// Server-side apply of the status when it changed, and an Event when the phase or a
/// condition moved.
async fn write_status(
    sr: &ScheduleRequest,
    ctx: &Context,
    ns: &str,
    previous: &ScheduleRequestStatus,
    next: ScheduleRequestStatus,
) -> Result<(), Error> {
    if sr.status.as_ref() == Some(&next) {
        return Ok(());
    }
    let api = Api::<ScheduleRequest>::namespaced(ctx.client.clone(), ns);
    let patch = serde_json::json!({
        "apiVersion": "allot.dev/v1alpha1",
        "kind": "ScheduleRequest",
        "status": next,
    });
    api.patch_status(
        &sr.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(kube("PatchStatus"))?;
    if status::transition_key(previous) != status::transition_key(&next) {
        let failed = next
            .conditions
            .iter()
            .any(|c| c.status == "False" && c.type_ == "Validated");
        let kind = if failed || next.phase == crate::crd::Phase::Failed {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let reason = format!("{:?}", next.phase);
        let note = next.message.clone().unwrap_or_default();
        publish(ctx, sr, kind, &reason, "Reconcile", note).await;
    }
    Ok(())
}

/// Record an Event on the request; failures are logged, never fail the reconcile.
async fn publish(
    ctx: &Context,
    sr: &ScheduleRequest,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    // The events API caps notes at 1 kB.
    let note: String = note.chars().take(1000).collect();
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &sr.object_ref(&())).await {
        tracing::warn!(request = %key(sr), error = %e, "could not record an event");
    }
}

/// Deletion: the request's pods go first (owner references would also collect them, but the
/// finalizer makes `kubectl delete sr` return only once they are gone from the API).
async fn cleanup(sr: &ScheduleRequest, ctx: &Context) -> Result<Action, Error> {
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
