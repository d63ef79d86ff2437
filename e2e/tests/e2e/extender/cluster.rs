//! The cluster as the extender scenarios see it: whether the allot extender is in the
//! scheduling path, its GPU nodes (count and model), and a node update that makes
//! kube-scheduler retry pending pods.

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::support::{Cluster, GPU, skip};

const MODEL_LABEL: &str = "allot.dev/gpu-model";

/// The cluster, or `None` (after saying why) when it runs without the extender
/// (`E2E_EXTENDER=0`); an error when there is no control plane.
pub(super) async fn cluster_with_extender(test: &str) -> Result<Option<Cluster>> {
    let cluster = Cluster::from_env(test).await?;
    if !cluster.extender_required {
        skip(
            test,
            "E2E_EXTENDER=0: no allot extender in the scheduling path",
        );
        return Ok(None);
    }
    Ok(Some(cluster))
}

/// GPU nodes by name: (GPU count, model).
pub(super) async fn gpu_nodes(cluster: &Cluster) -> Result<BTreeMap<String, (u32, String)>> {
    let nodes = Api::<Node>::all(cluster.client.clone())
        .list(&ListParams::default())
        .await?;
    let mut out = BTreeMap::new();
    for n in nodes.items {
        let name = n.metadata.name.clone().unwrap_or_default();
        let model = n
            .metadata
            .labels
            .unwrap_or_default()
            .get(MODEL_LABEL)
            .cloned();
        let gpus: u32 = n
            .status
            .and_then(|s| s.allocatable)
            .and_then(|a| a.get(GPU).map(|q| q.0.clone()))
            .and_then(|q| q.parse().ok())
            .unwrap_or(0);
        if let (Some(model), true) = (model, gpus > 0) {
            out.insert(name, (gpus, model));
        }
    }
    ensure!(!out.is_empty(), "no GPU nodes with a {MODEL_LABEL} label");
    Ok(out)
}

/// A Node update (a label), the kind of event on which kube-scheduler retries pending pods.
pub(crate) async fn touch_node(cluster: &Cluster, node: &str) -> Result<()> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis()
        .to_string();
    let patch = json!({ "metadata": { "labels": { "allot.dev/e2e-touched": stamp } } });
    Api::<Node>::all(cluster.client.clone())
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("labelling node {node}"))?;
    Ok(())
}
