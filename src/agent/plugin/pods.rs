//! The device plugin's API calls: the pods bound to this node, the record that a pod was given
//! its GPUs (`allot.dev/gpu-allocated`), and a Warning event on a pod that is refused.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource as _};

use crate::names::GPU_ALLOCATED_ANNOTATION;

/// Bound on each call: kubelet waits on Allocate, and its admission should not hang on an API
/// server that does not answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the device plugin reads and writes.
#[derive(Clone)]
pub struct PodApi {
    client: Client,
    pods: Api<Pod>,
    node: String,
    recorder: Recorder,
}

impl std::fmt::Debug for PodApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodApi")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl PodApi {
    pub fn new(client: Client, node: &str) -> Self {
        let reporter = Reporter {
            controller: "allot-agent".into(),
            instance: Some(node.to_string()),
        };
        PodApi {
            client: client.clone(),
            pods: Api::all(client.clone()),
            node: node.to_string(),
            recorder: Recorder::new(client, reporter),
        }
    }

    /// Every pod bound to this node.
    pub async fn on_node(&self) -> Result<Vec<Pod>, String> {
        let params = ListParams::default().fields(&format!("spec.nodeName={}", self.node));
        match tokio::time::timeout(CALL_TIMEOUT, self.pods.list(&params)).await {
            Ok(Ok(list)) => Ok(list.items),
            Ok(Err(e)) => Err(format!("listing the pods on node {}: {e}", self.node)),
            Err(_) => Err(format!(
                "listing the pods on node {}: no answer in {} s",
                self.node,
                CALL_TIMEOUT.as_secs()
            )),
        }
    }

    /// Records on the pod which GPUs were handed out (by UUID), so that no agent, restarted or
    /// not, hands them out again.
    pub async fn mark(&self, pod: &Pod, uuids: &str) -> Result<(), String> {
        let (Some(ns), Some(name)) = (
            pod.metadata.namespace.as_deref(),
            pod.metadata.name.as_deref(),
        ) else {
            return Err("the pod has no namespace or name".into());
        };
        let patch = serde_json::json!({
            "metadata": { "annotations": { GPU_ALLOCATED_ANNOTATION: uuids } }
        });
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
        let call = api.patch(name, &params, &patch);
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer in {} s", CALL_TIMEOUT.as_secs())),
        }
    }

    /// A Warning event on `pod` (best effort: logged when it cannot be written).
    pub async fn warn(&self, pod: &Pod, reason: &str, note: &str) {
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note.chars().take(1024).collect()),
            action: "Allocate".into(),
            secondary: None,
        };
        let reference = pod.object_ref(&());
        let call = self.recorder.publish(&event, &reference);
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not record an event on the pod"),
            Err(_) => tracing::warn!("could not record an event on the pod: no answer"),
        }
    }
}
