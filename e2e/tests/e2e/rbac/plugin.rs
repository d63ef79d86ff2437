//! The device plugin's part of the RBAC scenario: on a Node object of its own (no kwok runs
//! its pods, so they wait for admission as under a real kubelet), kubelet's device manager
//! (`e2e/kubelet-dm`) admits, through an agent running under the chart's agent account, one
//! pod that allot bound (the plugin lists the node's pods and records the GPU it handed out on
//! the pod) and refuses one that allot did not bind, twice (a Warning event, created and then
//! patched as its series grows). So every rule `agent.devicePlugin.enabled` adds is used.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

use allot_e2e::kubelet_dm::KubeletDm;

use super::NS;
use crate::device_plugin::plugin_agent;
use crate::support::{
    AllotProcess, Cluster, WAIT, fake_gpus, free_port, telemetry_api, write_devices,
};

/// The plugin's node has this many GPUs.
const GPUS: u64 = 2;

/// Share slots per GPU the agent advertises in this scenario.
const SLOTS: u32 = 2;
const WHOLE: &str = "nvidia.com/gpu";
const SHARE: &str = "allot.dev/gpu-share";

/// A pod of [`NS`] bound to `node` whose one container asks one `resource`, with `notes` as
/// annotations (allot's extender writes `allot.dev/gpu-devices` at bind).
fn bound(node: &str, name: &str, resource: &str, notes: Value) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": { "name": name, "annotations": notes },
        "spec": { "nodeName": node, "containers": [{ "name": "main", "image": "allot-e2e/never-pulled",
            "resources": { "limits": { resource: "1" } } }] }
    }))?)
}

/// Runs the scenario with the agent's `kubeconfig` and the fake NVML `lib`, files in `dir`;
/// returns the agent's log (for the credential check). The node and its telemetry are
/// deleted afterwards; the pods go with the namespace.
pub(super) async fn scenario(
    cluster: &Cluster,
    dir: &Path,
    kubeconfig: &Path,
    lib: &Path,
) -> Result<PathBuf> {
    let node = format!("e2e-rbac-dp-{}", std::process::id());
    let object: Node = serde_json::from_value(json!({
        "metadata": { "name": node, "labels": { "allot.dev/e2e": "true" } },
        "status": { "capacity": { "cpu": "8", "memory": "32Gi", "pods": "110" },
                    "allocatable": { "cpu": "8", "memory": "32Gi", "pods": "110" } }
    }))?;
    let nodes = Api::<Node>::all(cluster.client.clone());
    nodes.create(&PostParams::default(), &object).await?;
    let outcome = async {
        let devices = dir.join("plugin-gpus.json");
        write_devices(
            &devices,
            &fake_gpus(&node, "NVIDIA A100-SXM4-80GB", GPUS, None),
        )?;
        let plugins = dir.join("device-plugins");
        std::fs::create_dir_all(&plugins)?;
        let mut kubelet = KubeletDm::start(&plugins).await?;
        let listen = format!("127.0.0.1:{}", free_port()?);
        let args = plugin_agent(&node, &listen, lib, &plugins, SLOTS);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut agent = AllotProcess::start_with_env(
            cluster,
            "agent-rbac-plugin",
            &args,
            &[
                ("KUBECONFIG", &kubeconfig.to_string_lossy()),
                ("ALLOT_FAKE_NVML_CONFIG", &devices.to_string_lossy()),
            ],
        )?;
        admissions(cluster, &mut kubelet, &node).await?;
        agent.check_alive()?;
        Ok(agent.log.clone())
    }
    .await;
    let _ = telemetry_api(cluster)
        .delete(&node, &DeleteParams::default())
        .await;
    let _ = nodes.delete(&node, &DeleteParams::default()).await;
    outcome
}

/// Waits for the plugin to register its whole GPUs and their share slots, then has the
/// device manager admit one bound pod and refuse a stray one twice.
async fn admissions(cluster: &Cluster, kubelet: &mut KubeletDm, node: &str) -> Result<()> {
    let whole = i64::try_from(GPUS)?;
    kubelet
        .wait(WHOLE, whole, WAIT)
        .await
        .context("the plugin's whole GPUs registered")?;
    kubelet
        .wait(SHARE, whole * i64::from(SLOTS), WAIT)
        .await
        .context("the plugin's share slots registered")?;
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), NS);
    let notes = json!({ "allot.dev/gpu-devices": "0" });
    let placed = pods
        .create(
            &PostParams::default(),
            &bound(node, "dp-whole", WHOLE, notes)?,
        )
        .await?;
    let reply = kubelet.admit(&serde_json::to_value(&placed)?).await?;
    ensure!(reply["ok"] == true, "admitting dp-whole: {reply}");
    let stray = pods
        .create(
            &PostParams::default(),
            &bound(
                node,
                "dp-stray",
                SHARE,
                json!({ "allot.dev/gpu-milli": "300" }),
            )?,
        )
        .await?;
    for attempt in 1..=2 {
        let reply = kubelet.admit(&serde_json::to_value(&stray)?).await?;
        ensure!(
            reply["ok"] == false,
            "dp-stray (no devices annotation) admitted at attempt {attempt}: {reply}"
        );
        // kubelet retries an admission later; two refusals make the event a series.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // No kubelet confirms their deletion: delete them at once.
    for name in ["dp-whole", "dp-stray"] {
        pods.delete(name, &DeleteParams::default().grace_period(0))
            .await?;
    }
    Ok(())
}
