//! What the client-facing steps share (observe, apply, status): the [`Context`] of every
//! reconcile, the one [`Error`] enum with its bounded [`Error::reason`], and publishing — the
//! status write (server-side apply) and Events on the request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};

use super::Config;
use super::metrics::Metrics;
use super::pods::BuildError;
use super::status;
use crate::alloc::PlanError;
use crate::crd::{ReplicaMove, ScheduleRequest, ScheduleRequestStatus};
use crate::live::Caches;
use crate::model::{DeviceSet, PodDemand};

/// Field manager of the status writes.
pub const FIELD_MANAGER: &str = "allot-controller";

/// How long a pod this controller created counts as a reservation before the caches show it.
pub const CREATED_TTL: Duration = Duration::from_secs(30);

/// A pod this process created: its request (`ns/name`), key, demand and planned spot.
#[derive(Debug, Clone)]
pub struct Created {
    pub request: String,
    pub key: String,
    pub demand: PodDemand,
    pub node: String,
    pub devices: DeviceSet,
    pub at: Instant,
}

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

/// Wraps a failed API call as [`Error::Kube`], `action` being its bounded reason.
pub(super) fn kube(action: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube { action, source }
}

/// `namespace/name` of the request, for logs and reservations.
pub(super) fn key(sr: &ScheduleRequest) -> String {
    format!("{}/{}", sr.namespace().unwrap_or_default(), sr.name_any())
}

/// The API server refuses new objects in a namespace being deleted; not worth a retry storm.
pub(super) fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403 && s.message.contains("being terminated"))
}

/// Server-side apply of the status when it changed, and an Event when the phase or a
/// condition moved.
pub(super) async fn write_status(
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
        "apiVersion": ScheduleRequest::api_version(&()),
        "kind": ScheduleRequest::kind(&()),
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

/// A Warning Event per replica moved off its node, naming where the new plan puts it.
pub(super) async fn publish_moves(ctx: &Context, sr: &ScheduleRequest, moves: &[ReplicaMove]) {
    for m in moves {
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
        Err(e) if namespace_terminating(&e) => {
            tracing::debug!(request = %key(sr), "namespace terminating: event dropped");
        }
        Err(e) => tracing::warn!(request = %key(sr), error = %e, "could not record an event"),
    }
}
