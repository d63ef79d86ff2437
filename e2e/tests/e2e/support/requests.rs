//! ScheduleRequests from the tests: the API, a task and a request to create, the status and
//! pods to wait for; and `allot controller` started with its Lease in the test's namespace.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use super::{AllotProcess, Cluster, WAIT, free_port, poll};

const REQUEST_LABEL: &str = "allot.dev/schedule-request";

const PLANNED_NODE: &str = "allot.dev/planned-node";

pub(crate) fn requests(cluster: &Cluster, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("allot.dev", "v1alpha1", "ScheduleRequest");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "schedulerequests");
    Api::namespaced_with(cluster.client.clone(), ns, &ar)
}

/// A controller for this test, ready (caches synced), with a short lease.
pub(crate) async fn controller(cluster: &Cluster, ns: &str, name: &str) -> Result<AllotProcess> {
    Ok(controller_at(cluster, ns, name).await?.0)
}

/// The same, with its admin address.
pub(crate) async fn controller_at(
    cluster: &Cluster,
    ns: &str,
    name: &str,
) -> Result<(AllotProcess, String)> {
    controller_with(cluster, ns, name, &[], &[]).await
}

/// A controller with `extra` arguments and `env`, ready; and its admin address.
pub(crate) async fn controller_with(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<(AllotProcess, String)> {
    let port = free_port()?;
    let admin = format!("127.0.0.1:{port}");
    let mut args = vec![
        "controller",
        "--lease-namespace",
        ns,
        "--lease-duration-seconds",
        "3",
        "--admin-listen",
        &admin,
    ];
    args.extend_from_slice(extra);
    let mut p = AllotProcess::start_with_env(cluster, name, &args, env)?;
    p.wait_ready(&format!("http://{admin}/readyz")).await?;
    Ok((p, admin))
}

/// `allot_controller_leader` from a controller's /metrics.
pub(crate) fn leading(admin: &str) -> Result<bool> {
    let out = std::process::Command::new("curl")
        .args(["-sf", &format!("http://{admin}/metrics")])
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    Ok(text.lines().any(|l| l == "allot_controller_leader 1"))
}

pub(crate) fn task(name: &str, replicas: u32, resources: Value) -> Value {
    json!({
        "name": name,
        "replicas": replicas,
        "resources": resources,
        "podTemplate": { "spec": { "containers": [
            { "name": "main", "image": "allot-e2e/pause:never-pulled" }
        ] } }
    })
}

pub(crate) async fn create(cluster: &Cluster, ns: &str, name: &str, spec: Value) -> Result<()> {
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "allot.dev/v1alpha1",
        "kind": "ScheduleRequest",
        "metadata": { "name": name },
        "spec": spec,
    }))?;
    requests(cluster, ns)
        .create(&PostParams::default(), &obj)
        .await
        .with_context(|| format!("creating ScheduleRequest {name}"))?;
    Ok(())
}

/// Wait until the request's status satisfies `ok`; the status.
pub(crate) async fn status_where(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let api = requests(cluster, ns);
    let ok = &ok;
    poll(&format!("ScheduleRequest {name}: {what}"), WAIT, || {
        let api = api.clone();
        async move {
            let sr = api.get(name).await?;
            let status = sr.data.get("status").cloned().unwrap_or(Value::Null);
            Ok(ok(&status).then_some(status))
        }
    })
    .await
}

pub(crate) fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

pub(crate) async fn request_pods(cluster: &Cluster, ns: &str, name: &str) -> Result<Vec<Pod>> {
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("{REQUEST_LABEL}={name}")))
        .await?;
    Ok(list.items)
}

/// Wait until `n` pods of the request are bound (and not terminating); name -> node.
pub(crate) async fn bound_pods(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    n: usize,
) -> Result<BTreeMap<String, (String, Option<String>)>> {
    poll(&format!("{n} bound pods of {name}"), WAIT, || async move {
        let pods = request_pods(cluster, ns, name).await?;
        let bound: BTreeMap<String, (String, Option<String>)> = pods
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| {
                let node = p.spec.as_ref()?.node_name.clone()?;
                let planned = p.metadata.annotations.as_ref()?.get(PLANNED_NODE).cloned();
                Some((p.metadata.name.clone()?, (node, planned)))
            })
            .collect();
        Ok((bound.len() == n).then_some(bound))
    })
    .await
}
