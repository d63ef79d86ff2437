//! What the consolidation and give-back scenarios share: two kwok GPU nodes of a model of
//! their own (a third for the chain scenario), created by the scenario and deleted
//! afterwards, and a controller with consolidation on and short timings.

use anyhow::Result;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

use super::controller_with;
use crate::support::{AllotProcess, Cluster, WAIT, poll};

/// Names for two kwok GPU nodes of a model of their own: `e2e-TAG-a-PID`, `e2e-TAG-b-PID`,
/// model `E2E-TAG-PID`; and `e2e-TAG-c-PID` for a scenario that needs a third.
pub(super) struct TwoNodes {
    pub model: String,
    pub a: String,
    pub b: String,
    pub c: String,
}

/// Run `scenario` in a fresh namespace (`prefix`) with the names of two nodes it may create;
/// the nodes are deleted afterwards, once the namespace is gone (kwok finishes deleting the
/// pods of the nodes it manages first).
pub(super) async fn on_two_nodes<'a, F, Fut>(
    cluster: &'a Cluster,
    tag: &str,
    prefix: &str,
    scenario: F,
) -> Result<()>
where
    F: FnOnce(&'a Cluster, String, TwoNodes) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + 'a,
{
    let pid = std::process::id();
    let names = TwoNodes {
        model: format!("E2E-{}-{pid}", tag.to_uppercase()),
        a: format!("e2e-{tag}-a-{pid}"),
        b: format!("e2e-{tag}-b-{pid}"),
        c: format!("e2e-{tag}-c-{pid}"),
    };
    let nodes = [names.a.clone(), names.b.clone(), names.c.clone()];
    let outcome = cluster
        .in_namespace(prefix, move |cluster, ns| scenario(cluster, ns, names))
        .await;
    // Other scenarios' pods may have landed on the nodes (a pod of no GPU fits them): cordon
    // them and let those go first, or they would be left on a node kwok no longer runs.
    let api = Api::<Node>::all(cluster.client.clone());
    let pods = Api::<Pod>::all(cluster.client.clone());
    let cordon = json!({ "spec": { "unschedulable": true } });
    for n in &nodes {
        let _ = api
            .patch(n, &PatchParams::default(), &Patch::Merge(&cordon))
            .await;
    }
    let on_them = || async {
        let mut left = 0;
        for n in &nodes {
            let selector = format!("spec.nodeName={n}");
            left += pods
                .list(&ListParams::default().fields(&selector))
                .await?
                .items
                .len();
        }
        Ok((left == 0).then_some(()))
    };
    let _ = poll("other scenarios' pods to leave the nodes", WAIT, on_them).await;
    for n in &nodes {
        let _ = api.delete(n, &DeleteParams::default()).await;
    }
    outcome
}

/// A kwok node with `gpus` GPUs of `model`.
pub(super) fn node(name: &str, model: &str, gpus: u32) -> Result<Node> {
    let res = json!({ "cpu": "32", "memory": "128Gi", "pods": "110", "nvidia.com/gpu": gpus.to_string() });
    Ok(serde_json::from_value(json!({
        "metadata": { "name": name,
            "annotations": { "kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0" },
            "labels": { "type": "kwok", "kubernetes.io/hostname": name, "allot.dev/gpu-model": model } },
        "status": { "capacity": res, "allocatable": res }
    }))?)
}

/// A controller with consolidation on and short timings (grace 0, a pass a second, cool-down
/// 4 s), ready; and its admin address.
pub(super) async fn consolidator(
    cluster: &Cluster,
    ns: &str,
    n: &str,
    env: &[(&str, &str)],
) -> Result<(AllotProcess, String)> {
    let extra = [
        "--consolidation",
        "on",
        "--consolidation-grace-seconds",
        "0",
        "--consolidation-interval-seconds",
        "1",
        "--consolidation-cooldown-seconds",
        "4",
        "--consolidation-hold-seconds",
        "60",
        // Other scenarios' waiting pods are not this one's to make room for.
        "--consolidation-namespace",
        ns,
    ];
    let name = format!("controller-consolidation-{n}");
    controller_with(cluster, ns, &name, &extra, env).await
}
