//! One reconcile of one ScheduleRequest: the finalizer, then the pipeline, step by step —
//! observe (the request's pods from the API, the cluster from the shared caches) ->
//! [`validate`] -> [`decide`] -> apply ([`act`]: delete, create) -> status (built by
//! [`status`], written and announced by [`context`](super::context)). Deletion goes through
//! the `allot.dev/cleanup` finalizer ([`cleanup`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalized, finalizer};

use super::apply::{act, cleanup};
use super::context::{Context, Error, key, publish_moves, write_status};
use super::decide::decide;
use super::decision::Decision;
use super::give_back::{fewest, short_of_minimum};
use super::lend;
use super::metrics::{Metrics, PlanOutcome};
use super::observe::{accounted, health, observe, with_reservations};
use super::observed::World;
use super::status;
use super::validate::validate;
use crate::crd::ScheduleRequest;
use crate::crd::batch::objective;
use crate::live::Freshness;
use crate::model::Cluster;

/// Finalizer that makes deletion wait for the request's pods to be deleted.
pub const FINALIZER: &str = "allot.dev/cleanup";
/// Requeue while something is in flight (an old pod terminating, a create conflict).
const SOON: Duration = Duration::from_secs(2);
/// Requeue of a request with unplaced replicas; cluster changes also trigger a reconcile.
const RETRY: Duration = Duration::from_secs(15);
/// Periodic re-check of a settled request.
const RESYNC: Duration = Duration::from_secs(300);

/// The Controller's reconciler: finalizer first, then the pipeline.
pub async fn reconcile(sr: Arc<ScheduleRequest>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = async {
        let ns = sr.namespace().ok_or(Error::NoNamespace)?;
        let api = Api::<ScheduleRequest>::namespaced(ctx.client.clone(), &ns);
        finalizer(&api, FINALIZER, sr, |event| async {
            match event {
                Finalized::Apply(sr) => pipeline(&sr, &ctx).await,
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

/// observe -> validate -> decide -> apply -> status, and when to look again.
async fn pipeline(sr: &ScheduleRequest, ctx: &Context) -> Result<Action, Error> {
    let ns = sr.namespace().ok_or(Error::NoNamespace)?;

    // Observe: the request's pods from the API, the cluster from the caches.
    let mut observed = observe(sr, ctx, &ns).await?;
    let policy = ctx.config.stale_policy;
    let snap = ctx
        .caches
        .snapshot(&Freshness::now(ctx.config.stale_after, policy))
        .snapshot;
    let previous = sr.status.clone().unwrap_or_default();
    let generation = sr.metadata.generation;
    let now = Timestamp::now();

    // Validate: an invalid spec gets its status and nothing else.
    let replicas = match validate(&sr.name_any(), &sr.spec, &snap.cluster) {
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

    // Decide, on the cluster plus the room promised to other requests' unbound pods, minus
    // the room lower-priority requests gave back to this one (their pods still terminating).
    let (cluster, terminating) = with_reservations(&snap, ctx, &key(sr));
    let (health, accounted) = (health(&snap, policy), accounted(&snap, &ns));
    let world = World {
        cluster: &cluster,
        health: &health,
        accounted: &accounted,
    };
    let mut options = ctx.config.plan;
    options.objective = objective(&sr.spec);
    let plan_on = |cluster: &Cluster| {
        let world = World { cluster, ..world };
        let now = now.to_string();
        decide(
            &replicas,
            sr.spec.tasks.len(),
            &observed,
            &world,
            &options,
            &now,
        )
    };
    let mut decision = plan_on(&cluster)?;
    // Short of its minimum: the fewest elastic replicas of lower priority give their room.
    let mut lent = Vec::new();
    if short_of_minimum(&decision) {
        let lendable = lend::lendable(&snap, ctx, &key(sr), sr.spec.priority);
        if let Some((k, d)) = fewest(&lendable, &cluster, plan_on)? {
            decision = d;
            lent = lendable[..k].to_vec();
        }
    }
    decision.given_back = terminating + lent.len();
    count_plan(&ctx.metrics, &decision);

    // Apply: deletions, creations, then the elastic replicas given back — after the pods
    // that take their room exist, so that no other plan sees that room free in between. The
    // pods created into room given back are nudged once it is free.
    let conflicts = act(sr, ctx, &ns, &decision, &replicas).await?;
    lend::give(ctx, sr, &lent).await?;
    let nudging = decision.given_back == 0 && lend::nudge(ctx, sr).await?;

    // Status, of the pods that are left; an Event per move.
    let removed: BTreeSet<&str> = decision.remove.iter().map(|r| r.name.as_str()).collect();
    observed.pods.retain(|p| !removed.contains(p.name.as_str()));
    let next = status::planned(&previous, generation, &decision, &observed, &now);
    let unsettled = !next.unplaced.is_empty();
    write_status(sr, ctx, &ns, &previous, next).await?;
    publish_moves(ctx, sr, &decision.moves).await;

    Ok(
        if conflicts > 0
            || decision.waiting > 0
            || decision.given_back > 0
            || nudging
            || !decision.moves.is_empty()
        {
            Action::requeue(SOON)
        } else if unsettled {
            Action::requeue(RETRY)
        } else {
            Action::requeue(RESYNC)
        },
    )
}

/// The plan's outcome and solver time, when the LP ran.
fn count_plan(metrics: &Metrics, decision: &Decision) {
    if let Some(solver) = &decision.solver {
        let outcome = match (decision.create.len(), decision.unplaced.len()) {
            _ if decision.gang_blocked => PlanOutcome::GangBlocked,
            (_, 0) => PlanOutcome::Complete,
            (0, _) => PlanOutcome::Unplaced,
            _ => PlanOutcome::Partial,
        };
        metrics.planned(outcome, solver.millis);
    }
}
