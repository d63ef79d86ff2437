//! The live side of giving elastic replicas back ([`give_back`](super::give_back)): which
//! running pods of other requests may be given back, the room already given back to a
//! request while its pods terminate, the deletions with their Events, and the nudge of the
//! pods created into that room once it is free.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;

use super::consolidate::act::{event_on, pod_ref};
use super::context::{Context, Error, key, kube, publish};
use super::decision::REASON_GIVEN_BACK;
use super::give_back::{Lendable, order};
use crate::crd::ScheduleRequest;
use crate::live::pod::{pod_key, split_key};
use crate::names::{
    GIVEN_BACK_TO_ANNOTATION, REPLICA_LABEL, REQUEST_LABEL, ROOM_GIVEN_BACK_ANNOTATION, TASK_LABEL,
};
use crate::snapshot::{BoundPod, ClusterSnapshot};

/// The bound pods of ScheduleRequests, by `namespace/name`.
fn request_pods(ctx: &Context) -> HashMap<String, Arc<Pod>> {
    ctx.caches
        .pods
        .state()
        .into_iter()
        .filter(|p| p.labels().contains_key(REQUEST_LABEL))
        .map(|p| (pod_key(&p), p))
        .collect()
}

/// Whether `pod` (not being deleted) is an elastic replica of a ScheduleRequest that
/// `request` finds by (namespace, name): one above its task's minimum. Its request
/// (`namespace/name`), the request's priority and the replica.
pub fn elastic_replica(
    pod: &Pod,
    request: impl Fn(&str, &str) -> Option<Arc<ScheduleRequest>>,
) -> Option<(String, i32, i32)> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let labels = pod.labels();
    let (ns, name) = (
        pod.namespace().unwrap_or_default(),
        labels.get(REQUEST_LABEL)?,
    );
    let sr = request(&ns, name)?;
    let task = labels.get(TASK_LABEL)?;
    let (min, _) = sr
        .spec
        .tasks
        .iter()
        .find(|t| &t.name == task)?
        .bounds()
        .ok()?;
    let replica = labels.get(REPLICA_LABEL)?.parse::<i32>().ok()?;
    (replica >= min).then(|| (format!("{ns}/{name}"), sr.spec.priority, replica))
}

/// The running elastic replicas (above their task's minimum) of requests of lower priority
/// than `priority`, in the order they are given back.
pub fn lendable(snap: &ClusterSnapshot, ctx: &Context, own: &str, priority: i32) -> Vec<Lendable> {
    let pods = request_pods(ctx);
    let store = &ctx.caches.requests;
    let find = |ns: &str, name: &str| store.get(&ObjectRef::new(name).within(ns));
    let mut lendable = Vec::new();
    for bound in &snap.pods {
        let Some(pod) = pods.get(&bound.key) else {
            continue;
        };
        if let Some((request, sr_priority, replica)) = elastic_replica(pod, find)
            && request != own
            && sr_priority < priority
        {
            lendable.push(Lendable {
                pod: bound.key.clone(),
                uid: bound.uid.clone(),
                request,
                priority: sr_priority,
                replica,
                demand: bound.demand,
                at: bound.at,
            });
        }
    }
    order(&mut lendable);
    lendable
}

/// The pods marked given back (to the request `namespace/name` each names), by
/// `namespace/name`: few, and only while they terminate.
fn marked(ctx: &Context) -> HashMap<String, (Arc<Pod>, String)> {
    ctx.caches
        .pods
        .state()
        .into_iter()
        .filter_map(|p| {
            let to = p.annotations().get(GIVEN_BACK_TO_ANNOTATION)?.clone();
            Some((pod_key(&p), (p, to)))
        })
        .collect()
}

/// The bound pods given back and still terminating, each with the request it was given back
/// to (`namespace/name`): their room is that request's already.
pub fn given_back<'a>(snap: &'a ClusterSnapshot, ctx: &Context) -> Vec<(String, &'a BoundPod)> {
    let marked = marked(ctx);
    if marked.is_empty() {
        return Vec::new();
    }
    snap.pods
        .iter()
        .filter_map(|bound| Some((marked.get(&bound.key)?.1.clone(), bound)))
        .collect()
}

/// Give `lent` back: each pod is marked for `sr` and deleted (gracefully), with an Event on
/// it and one on `sr`. A pod gone already is skipped.
pub async fn give(ctx: &Context, sr: &ScheduleRequest, lent: &[Lendable]) -> Result<(), Error> {
    let own = key(sr);
    let api = |pod: &str| {
        let (ns, name) = split_key(pod);
        (
            Api::<Pod>::namespaced(ctx.client.clone(), ns),
            name.to_string(),
        )
    };
    // A pod marked for `sr` earlier whose deletion failed would hold the room forever, counted
    // as given: delete it again.
    for (pod, (p, to)) in marked(ctx) {
        if to == own && p.metadata.deletion_timestamp.is_none() {
            let (api, name) = api(&pod);
            match api.delete(&name, &DeleteParams::default()).await {
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                other => {
                    other.map_err(kube("DeletePod"))?;
                    tracing::debug!(pod = %pod, to = %own, "given-back pod deleted again");
                }
            }
        }
    }
    // Every pod is marked before any is deleted: the caches see changes in order, so a plan
    // that sees one of them gone sees the others marked, and their room as the borrower's.
    let mark =
        serde_json::json!({ "metadata": { "annotations": { GIVEN_BACK_TO_ANNOTATION: own } } });
    let mut marked = Vec::new();
    for l in lent {
        let (api, name) = api(&l.pod);
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&mark))
            .await
        {
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            other => other.map_err(kube("PatchPod"))?,
        };
        marked.push(l);
    }
    let mut given = Vec::new();
    for l in marked {
        let (api, name) = api(&l.pod);
        match api.delete(&name, &DeleteParams::default()).await {
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            other => other.map_err(kube("DeletePod"))?,
        };
        tracing::info!(pod = %l.pod, to = %own, lender = %l.request, "elastic replica given back");
        ctx.metrics.moved(REASON_GIVEN_BACK);
        let note = format!(
            "elastic replica {} of {} (priority {}) given back to {own} (priority {}), which is short of its minimum",
            l.replica, l.request, l.priority, sr.spec.priority
        );
        let regarding = pod_ref(&l.pod, &l.uid);
        event_on(
            &ctx.recorder,
            &regarding,
            EventType::Normal,
            "GivenBack",
            note,
        )
        .await;
        given.push(l.pod.as_str());
    }
    if !given.is_empty() {
        let note = format!(
            "took the room of {} elastic replica(s) of lower-priority requests to place its minimum: {}",
            given.len(),
            given.join(", ")
        );
        publish(ctx, sr, EventType::Normal, "ElasticGivenBack", "Plan", note).await;
    }
    Ok(())
}

/// Updates of a pod created into room given back, once that room is free, 2 s apart (one per
/// reconcile): the first may reach kube-scheduler before the extender saw the room free.
const NUDGES: u32 = 3;

/// Once no pod given back to `sr` is left, update its unbound pods created into that room
/// ([`ROOM_GIVEN_BACK_ANNOTATION`] counts the updates, and goes after the last):
/// kube-scheduler tries a pod again on its own update, where it might otherwise wait for
/// another cluster event if its last try came before the extender saw the room free. Returns
/// whether more updates are due (the caller requeues soon).
pub async fn nudge(ctx: &Context, sr: &ScheduleRequest) -> Result<bool, Error> {
    let name = sr.name_any();
    let ns = sr.namespace().unwrap_or_default();
    let mut more = false;
    for pod in ctx.caches.planned.state() {
        let Some(done) = pod.annotations().get(ROOM_GIVEN_BACK_ANNOTATION) else {
            continue;
        };
        let ours = pod.namespace().as_deref() == Some(ns.as_str())
            && pod.labels().get(REQUEST_LABEL) == Some(&name);
        if !ours {
            continue;
        }
        let done = done.parse::<u32>().unwrap_or(NUDGES) + 1;
        let value = (done < NUDGES).then(|| done.to_string());
        more |= value.is_some();
        let api = Api::<Pod>::namespaced(ctx.client.clone(), &ns);
        let update = serde_json::json!({ "metadata": { "annotations": { ROOM_GIVEN_BACK_ANNOTATION: value } } });
        match api
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&update),
            )
            .await
        {
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            other => {
                other.map_err(kube("PatchPod"))?;
                tracing::debug!(pod = %pod.name_any(), request = %key(sr), done, "room given back is free: pod nudged");
            }
        }
    }
    Ok(more)
}
