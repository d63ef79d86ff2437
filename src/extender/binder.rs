//! Binding through the API server (live mode): one Binding whose annotations carry the chosen
//! devices (`allot.dev/gpu-devices`). The API server copies a Binding's annotations onto the
//! pod in the same write that sets `spec.nodeName`, so no watcher ever sees the pod bound
//! without its devices, and a bind costs one write, as kube-scheduler's own does.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use kube::Client;
use kube::api::{Api, PostParams};
use kube::core::ObjectMeta;

use super::state::BoundPod;
use crate::live::pod::format_devices;
use crate::names::GPU_DEVICES_ANNOTATION;

/// Longest a bind may wait on the API server; kube-scheduler's own extender timeout for
/// bind is of the same order, and a pod left unbound is simply retried.
pub const BIND_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes bindings for pods the extender placed.
#[derive(Clone)]
pub struct Binder {
    client: Client,
}

impl std::fmt::Debug for Binder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Binder")
    }
}

impl Binder {
    pub fn new(client: Client) -> Self {
        Binder { client }
    }

    /// Bind `namespace/name` to `node` with the devices of `placed`; the error says what the
    /// API server answered.
    pub async fn bind(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        node: &str,
        placed: &BoundPod,
    ) -> Result<(), String> {
        let work = async {
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
            let devices = format_devices(placed.at.devices);
            let binding = Binding {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    namespace: Some(namespace.to_string()),
                    uid: (!uid.is_empty()).then(|| uid.to_string()),
                    annotations: Some([(GPU_DEVICES_ANNOTATION.to_string(), devices)].into()),
                    ..ObjectMeta::default()
                },
                target: ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Node".into()),
                    name: Some(node.to_string()),
                    ..ObjectReference::default()
                },
            };
            // The API server answers a Binding with a Status object.
            pods.create_subresource::<Binding, serde_json::Value>(
                "binding",
                name,
                &PostParams::default(),
                &binding,
            )
            .await
            .map_err(|e| format!("creating the Binding: {e}"))?;
            Ok(())
        };
        match tokio::time::timeout(BIND_TIMEOUT, work).await {
            Ok(done) => done,
            Err(_) => Err(format!(
                "the API server did not answer within {}s",
                BIND_TIMEOUT.as_secs()
            )),
        }
    }
}
