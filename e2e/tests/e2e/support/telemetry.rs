//! GPUs as the tests fake them: NodeTelemetry written as an agent would write it, and the
//! device file the fake NVML (`fake-nvml/`) reads.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use kube::api::Api;
use serde_json::{Value, json};

use super::Cluster;

/// The NodeTelemetry API, untyped (the tests write what an agent would, and read what one wrote).
pub fn telemetry_api(cluster: &Cluster) -> Api<kube::api::DynamicObject> {
    let gvk = kube::api::GroupVersionKind::gvk("allot.dev", "v1alpha1", "NodeTelemetry");
    let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, "nodetelemetries");
    Api::all_with(cluster.client.clone(), &resource)
}

/// Write `node`'s NodeTelemetry as an agent would (server-side apply of the object and its
/// status): heartbeat `age` ago, one GPU of `model` per entry of `gpus`, each Healthy (`None`)
/// or Unhealthy with the given reason.
pub async fn publish_telemetry(
    cluster: &Cluster,
    node: &str,
    model: &str,
    age: Duration,
    gpus: &[Option<&str>],
) -> Result<()> {
    let beat = k8s_openapi::jiff::Timestamp::now()
        - k8s_openapi::jiff::SignedDuration::try_from(age).context("heartbeat age")?;
    let list: Vec<serde_json::Value> = gpus
        .iter()
        .enumerate()
        .map(|(i, reason)| {
            serde_json::json!({ "index": i, "uuid": format!("GPU-e2e-{node}-{i}"), "model": model,
                "memoryTotalBytes": 0, "memoryUsedBytes": 0, "utilizationGpuPercent": 0,
                "utilizationMemoryPercent": 0, "temperatureCelsius": 40, "powerMilliwatts": 0,
                "health": if reason.is_some() { "Unhealthy" } else { "Healthy" }, "reason": reason })
        })
        .collect();
    let healthy = gpus.iter().filter(|r| r.is_none()).count();
    let report = serde_json::json!({ "apiVersion": "allot.dev/v1alpha1", "kind": "NodeTelemetry",
        "metadata": { "name": node }, "spec": { "nodeName": node },
        "status": { "heartbeatTime": beat.to_string(), "agentVersion": "e2e",
            "cpu": { "allocatableMilli": 0, "usedMilli": 0 },
            "memory": { "allocatableBytes": 0, "usedBytes": 0 },
            "gpuCount": gpus.len(), "healthyGpus": healthy, "gpus": list } });
    let api = telemetry_api(cluster);
    let ssa = kube::api::PatchParams::apply("allot-e2e").force();
    api.patch(node, &ssa, &kube::api::Patch::Apply(&report))
        .await
        .with_context(|| format!("applying NodeTelemetry {node}"))?;
    api.patch_status(node, &ssa, &kube::api::Patch::Apply(&report))
        .await
        .with_context(|| format!("applying NodeTelemetry {node} status"))?;
    Ok(())
}

/// The fake NVML's device file (`fake-nvml/`) for `count` GPUs of `model` with 16 GiB each,
/// UUIDs `GPU-<node>-<i>`; GPU `failing` (if any) is lost.
pub fn fake_gpus(node: &str, model: &str, count: u64, failing: Option<u64>) -> Value {
    let gpus: Vec<Value> = (0..count)
        .map(|i| {
            let mut g = json!({
                "uuid": format!("GPU-{node}-{i}"),
                "name": model,
                "memoryTotalBytes": 16u64 << 30,
                "memoryUsedBytes": 1u64 << 30,
                "utilizationGpu": 20,
                "temperatureCelsius": 40,
                "powerMilliwatts": 70_000,
                "eccUncorrected": 0,
            });
            if failing == Some(i) {
                g["fail"] = json!("lost");
            }
            g
        })
        .collect();
    json!({ "driverVersion": "550.0-e2e", "gpus": gpus })
}

/// Writes a device file for the fake NVML, atomically.
pub fn write_devices(path: &Path, devices: &Value) -> Result<()> {
    // Write then rename, so an agent never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(devices)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}
