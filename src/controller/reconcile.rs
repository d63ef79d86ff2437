//! One reconcile of one ScheduleRequest, the pipeline's client-facing steps around the pure
//! ones: observe (the request's pods from the API, the cluster from the shared caches) ->
//! [`validate`] -> [`decide`] -> apply (delete, create) -> status (server-side apply on the
//! status subresource, an Event per transition and per move). Deletion goes through the
//! `allot.dev/cleanup` finalizer.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{Event as Finalized, finalizer};
use kube::{Client, Resource, ResourceExt};

use super::Config;
use super::apply::{act, cleanup};
use super::decide::{NodeHealth, World, decide};
use super::metrics::{Metrics, PlanOutcome};
use super::observe::{Created, node_health, observe, with_reservations};
use super::pods::BuildError;
use super::status;
use super::validate::validate;
use crate::alloc::PlanError;
use crate::crd::batch::objective;
use crate::crd::{ScheduleRequest, ScheduleRequestStatus};
use crate::live::{Caches, Freshness};

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

/// What reconciles share.
pub struct Context {
    pub client: Client,
    pub caches: Arc<Caches>,
    pub config: Config,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Pods created recently: placed by later plans of other requests until the caches show
    /// them.
    pub(super) created: Mutex<Vec<Created>>,
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

pub(super) fn kube(action: &'static str) -> impl FnOnce(kube::Error) -> Error {
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

pub(super) fn key(sr: &ScheduleRequest) -> String {
    format!("{}/{}", sr.namespace().unwrap_or_default(), sr.name_any())
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
pub(super) async fn publish(
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
    match ctx.recorder.publish(&event, &sr.object_ref(&())).await {
        Ok(()) => {}
        Err(e) if super::apply::namespace_terminating(&e) => {
            tracing::debug!(request = %key(sr), "namespace terminating: event dropped");
        }
        Err(e) => tracing::warn!(request = %key(sr), error = %e, "could not record an event"),
    }
}
