//! Elastic tasks on the real API server: the CRD's rules refuse inconsistent replica counts
//! with their message, an elastic request runs every replica the cluster has room for, its
//! status and `kubectl get sr` show the minimum and the maximum, and lowering the maximum
//! scales it down.

use anyhow::{Result, ensure};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use super::{bound_pods, controller, create, requests, status_where, task};
use crate::support::Cluster;

/// A task of `name` whose counts are `counts` (merged over `replicas`).
fn elastic(name: &str, counts: Value) -> Value {
    let mut t = task(name, 1, json!({ "cpu": "100m", "memory": "64Mi" }));
    let t_obj = t.as_object_mut().expect("a task is an object");
    t_obj.remove("replicas");
    for (k, v) in counts.as_object().into_iter().flatten() {
        t_obj.insert(k.clone(), v.clone());
    }
    t
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn an_elastic_request_shows_its_bounds_and_follows_its_maximum() -> Result<()> {
    let cluster = Cluster::from_env("elastic request").await?;
    cluster
        .in_namespace("sr-elastic", |cluster, ns| async move {
            for (counts, message) in [
                (
                    json!({ "replicas": 2, "minReplicas": 1, "maxReplicas": 2 }),
                    "set replicas, or minReplicas and maxReplicas",
                ),
                (
                    json!({ "minReplicas": 1 }),
                    "sets both minReplicas and maxReplicas",
                ),
                (
                    json!({ "minReplicas": 3, "maxReplicas": 2 }),
                    "minReplicas must not exceed maxReplicas",
                ),
            ] {
                let spec = json!({ "tasks": [elastic("w", counts.clone())] });
                let refused = create(cluster, &ns, "bad", spec).await;
                let why = match refused {
                    Ok(()) => "accepted".to_string(),
                    Err(e) => format!("{e:#}"),
                };
                ensure!(why.contains(message), "{counts}: {why}");
            }
            let mut ctl = controller(cluster, &ns, "controller-elastic").await?;
            let spec = json!({ "gang": true, "tasks": [
                elastic("w", json!({ "minReplicas": 1, "maxReplicas": 3 })),
            ] });
            create(cluster, &ns, "grow", spec).await?;
            bound_pods(cluster, &ns, "grow", 3).await?;
            let status = status_where(cluster, &ns, "grow", "3 running of at least 1", |s| {
                s["counts"]["minReplicas"] == 1
                    && s["counts"]["replicas"] == 3
                    && s["phase"] == "Running"
            })
            .await?;
            let table = cluster.kubectl(&["get", "sr", "grow", "-n", &ns])?;
            let header: Vec<&str> = table
                .lines()
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            ensure!(
                header.starts_with(&["NAME", "PHASE", "MIN", "MAX"]),
                "kubectl get sr:\n{table}"
            );
            println!("{table}\n{}", status["message"]);
            let lower = json!({ "spec": { "tasks": [
                elastic("w", json!({ "minReplicas": 1, "maxReplicas": 2 })),
            ] } });
            requests(cluster, &ns)
                .patch("grow", &PatchParams::default(), &Patch::Merge(&lower))
                .await?;
            bound_pods(cluster, &ns, "grow", 2).await?;
            ctl.check_alive()
        })
        .await
}
