//! The consolidator's calls to the API server: evictions (through the Eviction API, so that
//! PodDisruptionBudgets and grace periods apply), the waiting pod's record and hold, and the
//! Events people read on the waiting pod and on each moved pod.

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use crate::live::consolidation::Record;
use crate::live::pod::split_key;
use crate::names::{
    CONSOLIDATING_LABEL, CONSOLIDATION_ANNOTATION, PLANNED_DEVICES_ANNOTATION,
    PLANNED_NODE_ANNOTATION,
};

/// An eviction the API server turned down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `DisruptionBudget` (HTTP 429: a PodDisruptionBudget allows no disruption now) or `Api`.
    pub reason: &'static str,
    pub message: String,
}

/// What became of one eviction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evicted {
    Yes,
    /// The pod is gone already, terminating, or replaced under the same name: nothing to do.
    Gone,
    Refused(Refusal),
}

/// Evict `namespace/name` if it is still the pod with `uid`; with `dry_run` the API server
/// checks the eviction (budgets included) and changes nothing.
pub async fn evict(client: &Client, key: &str, uid: &str, dry_run: bool) -> Evicted {
    let outcome = tokio::time::timeout(CALL_TIMEOUT, evict_now(client, key, uid, dry_run)).await;
    let outcome = outcome.unwrap_or_else(|_| {
        Evicted::Refused(Refusal {
            reason: "Api",
            message: format!("no answer in {} s", CALL_TIMEOUT.as_secs()),
        })
    });
    match (&outcome, dry_run) {
        (Evicted::Yes, false) => tracing::info!(pod = key, "evicted"),
        _ => tracing::debug!(pod = key, dry_run, ?outcome, "eviction"),
    }
    outcome
}

/// Longest wait for one API call of an eviction: a pass never hangs on one.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

async fn evict_now(client: &Client, key: &str, uid: &str, dry_run: bool) -> Evicted {
    let (ns, name) = split_key(key);
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await {
        // Terminating already (an eviction whose record a crash cut short): done.
        Ok(Some(p)) if p.metadata.deletion_timestamp.is_some() => return Evicted::Gone,
        Ok(Some(p)) if p.metadata.uid.as_deref() == Some(uid) => {}
        Ok(_) => return Evicted::Gone,
        Err(e) => return Evicted::Refused(refusal(&e)),
    }
    match post_eviction(client, ns, name, uid, dry_run).await {
        Ok(()) => Evicted::Yes,
        Err(kube::Error::Api(s)) if s.code == 404 => Evicted::Gone,
        Err(e) => Evicted::Refused(refusal(&e)),
    }
}

/// POST a policy/v1 Eviction for `ns/name`, only if it is still the pod with `uid`. Built here
/// rather than with `Api::evict`, whose body names the options `delete_options`, a field the
/// API server ignores: its dry run would evict for real.
async fn post_eviction(
    client: &Client,
    ns: &str,
    name: &str,
    uid: &str,
    dry_run: bool,
) -> kube::Result<()> {
    let mut options = json!({ "preconditions": { "uid": uid } });
    if dry_run {
        options["dryRun"] = json!(["All"]);
    }
    let body = json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": { "name": name, "namespace": ns },
        "deleteOptions": options,
    });
    let path = format!("/api/v1/namespaces/{ns}/pods/{name}/eviction");
    let request = axum::http::Request::post(path)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).map_err(kube::Error::SerdeError)?)
        .map_err(kube::Error::HttpError)?;
    client.request::<Value>(request).await.map(drop)
}

fn refusal(e: &kube::Error) -> Refusal {
    match e {
        kube::Error::Api(s) if s.code == 429 => Refusal {
            reason: "DisruptionBudget",
            message: s.message.clone(),
        },
        other => Refusal {
            reason: "Api",
            message: other.to_string(),
        },
    }
}

/// Write `record` on the waiting pod; with `hold` also its planned node and devices and the
/// label the extender's hold watch selects, and without it remove those.
pub async fn write_record(
    client: &Client,
    pod: &Pod,
    record: &Record,
    hold: Option<(&str, Option<&str>)>,
) -> kube::Result<()> {
    let (node, devices, label) = match hold {
        Some((node, devices)) => (json!(node), json!(devices), json!("true")),
        None => (Value::Null, Value::Null, Value::Null),
    };
    let patch = json!({ "metadata": {
        "annotations": {
            CONSOLIDATION_ANNOTATION: record.to_json(),
            PLANNED_NODE_ANNOTATION: node,
            PLANNED_DEVICES_ANNOTATION: devices,
        },
        "labels": { CONSOLIDATING_LABEL: label },
    } });
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    api.patch(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(|_| ())
}

/// An Event on `pod` (notes capped at the events API's 1 kB).
pub async fn event(recorder: &Recorder, pod: &Pod, type_: EventType, reason: &str, note: String) {
    event_on(recorder, &pod.object_ref(&()), type_, reason, note).await;
}

/// The reference of pod `key` (`namespace/name`) with `uid`, built from a consolidation
/// record: an evicted pod may have left the caches (and the API server) before its Event is
/// written, so the reference must not depend on finding it.
pub fn pod_ref(key: &str, uid: &str) -> ObjectReference {
    let (ns, name) = split_key(key);
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(ns.into()),
        name: Some(name.into()),
        uid: Some(uid.into()),
        ..ObjectReference::default()
    }
}

/// An Event on the object `regarding` (notes capped at the events API's 1 kB).
pub async fn event_on(
    recorder: &Recorder,
    regarding: &ObjectReference,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Consolidate".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, regarding).await {
        let name = regarding.name.as_deref().unwrap_or_default();
        tracing::warn!(pod = %name, error = %e, "could not record an event");
    }
}
