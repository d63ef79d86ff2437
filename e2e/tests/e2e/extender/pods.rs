//! The pods of the extender scenarios and what became of them: a pod pinned to a node with
//! annotations, waiting until it is bound, and the FailedScheduling event users read.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};
use serde_json::json;

use crate::support::{Cluster, WAIT, pod, poll};

/// A pod pinned to `node` (by node affinity on its name), with annotations.
pub(super) fn pinned(
    name: &str,
    node: Option<&str>,
    gpus: Option<u32>,
    annotations: serde_json::Value,
) -> Result<Pod> {
    let mut p = pod(name, "allot", gpus)?;
    let mut v = serde_json::to_value(&p)?;
    v["metadata"]["annotations"] = annotations;
    if let Some(node) = node {
        v["spec"]["affinity"] = json!({ "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{ "matchFields": [{ "key": "metadata.name", "operator": "In", "values": [node] }] }]
        } } });
    }
    p = serde_json::from_value(v)?;
    Ok(p)
}

/// Wait until the pod is bound; its node and annotations.
pub(super) async fn bound(
    pods: &Api<Pod>,
    name: &str,
) -> Result<(String, BTreeMap<String, String>)> {
    poll(&format!("pod {name} to be bound"), WAIT, || async move {
        let p = pods.get(name).await?;
        let node = p.spec.and_then(|s| s.node_name);
        Ok(node.map(|n| (n, p.metadata.annotations.unwrap_or_default())))
    })
    .await
}

/// Wait for a FailedScheduling event of pod `name` whose message contains `needle`.
pub(super) async fn failed_scheduling(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    needle: &str,
) -> Result<String> {
    let events = Api::<Event>::namespaced(cluster.client.clone(), ns);
    let fields = format!("involvedObject.name={name}");
    let found = poll(
        &format!("a FailedScheduling event of {name} naming {needle:?}"),
        WAIT,
        || {
            let (events, fields) = (events.clone(), fields.clone());
            async move {
                let list = events.list(&ListParams::default().fields(&fields)).await?;
                Ok(list
                    .items
                    .into_iter()
                    .filter(|e| e.reason.as_deref() == Some("FailedScheduling"))
                    .filter_map(|e| e.message)
                    .find(|m| m.contains(needle)))
            }
        },
    )
    .await;
    // On a time-out, say what the pod's events did say.
    if found.is_err() {
        let list = events.list(&ListParams::default().fields(&fields)).await?;
        let seen: Vec<String> = list
            .items
            .into_iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.reason.unwrap_or_default(),
                    e.message.unwrap_or_default()
                )
            })
            .collect();
        return found.with_context(|| format!("the events of {name}: {seen:?}"));
    }
    found
}
