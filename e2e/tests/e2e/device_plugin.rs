//! The agent's device plugin driven by kubelet's own device manager (`e2e/kubelet-dm`, built
//! from the pinned k8s.io/kubernetes), with the real API server: registration, ListAndWatch
//! with a GPU turning unhealthy, Allocate for whole GPUs and a share, two pods admitted back to
//! back, refusals with their events, and kubelet restarting.
//!
//! The node is a Node object with no kubelet (kwok manages only its own nodes), so its pods
//! stay Pending until the device manager admits them, as under a real kubelet. Pods are bound
//! as allot's extender binds them: `allot.dev/gpu-devices` names the chosen GPUs. Not tested
//! here: that the container runtime honours `NVIDIA_VISIBLE_DEVICES` or CDI names (that needs
//! the NVIDIA container runtime and a GPU), and kubelet's node status (kubelet, not the device
//! manager, copies the plugin's counts into the Node's capacity).

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

use allot_e2e::kubelet_dm::KubeletDm;

use crate::support::{
    AllotProcess, Cluster, WAIT, cargo_artifact, fake_gpus, free_port, poll, telemetry_api,
    write_devices,
};

const WHOLE: &str = "nvidia.com/gpu";
const SHARE: &str = "allot.dev/gpu-share";
/// Share slots per GPU the agent advertises in this test.
const SLOTS: u32 = 4;

/// The node's two GPUs; GPU `lost` (if any) has fallen off the bus.
fn devices(lost: Option<u64>) -> Value {
    fake_gpus("dp", "NVIDIA A100-SXM4-80GB", 2, lost)
}

/// A pod bound to `node` as allot's extender binds it: `container` asks `count` of `resource`.
fn pod(node: &str, name: &str, resource: &str, count: u32, notes: &[(&str, &str)]) -> Result<Pod> {
    let notes: serde_json::Map<String, Value> = notes
        .iter()
        .map(|(k, v)| ((*k).to_string(), json!(v)))
        .collect();
    Ok(serde_json::from_value(json!({
        "metadata": { "name": name, "annotations": notes },
        "spec": { "nodeName": node, "containers": [{ "name": "main", "image": "allot-e2e/never-pulled",
            "resources": { "limits": { resource: count.to_string() } } }] }
    }))?)
}

/// `allot agent` for `node` with the fake NVML `lib`, serving the device plugin into kubelet's
/// directory `plugins` with `slots` share slots per GPU, its telemetry written every second.
pub(crate) fn plugin_agent(
    node: &str,
    listen: &str,
    lib: &std::path::Path,
    plugins: &std::path::Path,
    slots: u32,
) -> Vec<String> {
    let (lib, plugins) = (lib.to_string_lossy(), plugins.to_string_lossy());
    [
        "agent",
        "--node-name",
        node,
        "--sample-seconds",
        "1",
        "--min-write-seconds",
        "1",
        "--listen",
        listen,
        "--nvml-lib",
        &lib,
        "--device-plugin",
        "--device-plugin-dir",
        &plugins,
        "--share-slots",
        &slots.to_string(),
    ]
    .map(str::to_string)
    .to_vec()
}

/// What the device manager's admission gave the pod's `main` container.
fn given<'a>(reply: &'a Value, what: &str) -> &'a Value {
    &reply["containers"]["main"][what]
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn kubelets_device_manager_gets_the_gpus_allot_chose() -> Result<()> {
    let cluster = Cluster::from_env("device plugin").await?;
    cluster
        .in_namespace("dp", |cluster, ns| async move {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .subsec_nanos();
            let node = format!("e2e-dp-{}-{nanos:x}", std::process::id());
            let outcome = scenario(cluster, &ns, &node).await;
            let cleanup = cleanup(cluster, &ns, &node).await;
            outcome.and(cleanup)
        })
        .await
}

async fn scenario(cluster: &Cluster, ns: &str, node: &str) -> Result<()> {
    let nodes = Api::<Node>::all(cluster.client.clone());
    let object: Node = serde_json::from_value(json!({
        "metadata": { "name": node, "labels": { "allot.dev/e2e": "true" } },
        "status": { "capacity": { "cpu": "8", "memory": "32Gi", "pods": "110" },
                    "allocatable": { "cpu": "8", "memory": "32Gi", "pods": "110" } }
    }))?;
    nodes
        .create(&PostParams::default(), &object)
        .await
        .context("creating the node")?;

    let dir = tempfile_dir(node)?;
    let config = dir.join("gpus.json");
    write_devices(&config, &devices(None))?;
    let plugins = dir.join("device-plugins");
    std::fs::create_dir_all(&plugins)?;
    let mut kubelet = KubeletDm::start(&plugins).await?;
    let lib = cargo_artifact(&["-p", "allot-fake-nvml"], "libnvidia_ml_fake.so")?;
    let listen = format!("127.0.0.1:{}", free_port()?);
    let args = plugin_agent(node, &listen, &lib, &plugins, SLOTS);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut agent = AllotProcess::start_with_env(
        cluster,
        &format!("agent-{node}"),
        &args,
        &[("ALLOT_FAKE_NVML_CONFIG", &config.to_string_lossy())],
    )?;
    let timeout = WAIT;

    // Registration and ListAndWatch: both resources, every device healthy.
    kubelet
        .wait(WHOLE, 2, timeout)
        .await
        .context("whole GPUs registered")?;
    kubelet
        .wait(SHARE, 2 * i64::from(SLOTS), timeout)
        .await
        .context("shares registered")?;

    // Two pods admitted back to back, in kubelet's order (oldest first): the older asks for
    // GPU 1, the newer for GPU 0; each gets its own, by UUID, and kubelet's record agrees.
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), ns);
    let create = |p: Pod| {
        let pods = pods.clone();
        async move {
            pods.create(&PostParams::default(), &p)
                .await
                .context("creating a pod")
        }
    };
    let first = create(pod(
        node,
        "b-older",
        WHOLE,
        1,
        &[("allot.dev/gpu-devices", "1")],
    )?)
    .await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = create(pod(
        node,
        "a-newer",
        WHOLE,
        1,
        &[("allot.dev/gpu-devices", "0")],
    )?)
    .await?;
    for (p, uuid) in [(&first, "GPU-dp-1"), (&second, "GPU-dp-0")] {
        let reply = kubelet.admit(&serde_json::to_value(p)?).await?;
        ensure!(
            reply["ok"] == true,
            "admitting {:?}: {reply}",
            p.metadata.name
        );
        ensure!(
            given(&reply, "envs")["NVIDIA_VISIBLE_DEVICES"] == uuid,
            "{reply}"
        );
        ensure!(
            given(&reply, "device_ids")[WHOLE] == json!([uuid]),
            "kubelet's own record: {reply}"
        );
    }
    let marked = pods.get("b-older").await?;
    ensure!(
        marked
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("allot.dev/gpu-allocated"))
            .map(String::as_str)
            == Some("GPU-dp-1"),
        "the allocation is recorded on the pod: {:?}",
        marked.metadata.annotations
    );

    // A share on GPU 0 while a-newer holds all of it: refused, with an event on the pod.
    let over = create(pod(
        node,
        "over",
        SHARE,
        1,
        &[
            ("allot.dev/gpu-devices", "0"),
            ("allot.dev/gpu-milli", "500"),
        ],
    )?)
    .await?;
    let reply = kubelet.admit(&serde_json::to_value(&over)?).await?;
    ensure!(
        reply["ok"] == false
            && reply["error"]
                .as_str()
                .unwrap_or("")
                .contains("over-committed"),
        "{reply}"
    );
    event(cluster, ns, "over", "GPU 0 would be over-committed").await?;
    force_delete(&pods, "over").await?;

    // a-newer ends: its GPU is free for a share, which gets the memory hint.
    force_delete(&pods, "a-newer").await?;
    kubelet
        .remove(second.metadata.uid.as_deref().unwrap_or_default())
        .await?;
    let half = create(pod(
        node,
        "half",
        SHARE,
        1,
        &[
            ("allot.dev/gpu-devices", "0"),
            ("allot.dev/gpu-milli", "500"),
        ],
    )?)
    .await?;
    let reply = kubelet.admit(&serde_json::to_value(&half)?).await?;
    ensure!(reply["ok"] == true, "admitting the share: {reply}");
    let envs = given(&reply, "envs");
    ensure!(
        envs["NVIDIA_VISIBLE_DEVICES"] == "GPU-dp-0" && envs["ALLOT_GPU_MEMORY_MIB"] == "8192",
        "{reply}"
    );

    // A share that was not bound by allot (no devices annotation): refused, saying why.
    let stray = create(pod(
        node,
        "stray",
        SHARE,
        1,
        &[("allot.dev/gpu-milli", "300")],
    )?)
    .await?;
    let reply = kubelet.admit(&serde_json::to_value(&stray)?).await?;
    ensure!(reply["ok"] == false, "{reply}");
    event(cluster, ns, "stray", "no allot.dev/gpu-devices annotation").await?;
    force_delete(&pods, "stray").await?;

    // GPU 1 falls off the bus: kubelet sees it Unhealthy and stops offering it and its slots.
    write_devices(&config, &devices(Some(1)))?;
    kubelet
        .wait(WHOLE, 1, timeout)
        .await
        .context("GPU 1 unhealthy")?;
    kubelet
        .wait(SHARE, i64::from(SLOTS), timeout)
        .await
        .context("GPU 1's shares unhealthy")?;

    // kubelet restarts: the plugin registers again and a new pod is admitted.
    kubelet.restart().await?;
    kubelet
        .wait(WHOLE, 1, timeout)
        .await
        .context("registered again after kubelet restarted")?;
    let after = create(pod(
        node,
        "after",
        SHARE,
        1,
        &[
            ("allot.dev/gpu-devices", "0"),
            ("allot.dev/gpu-milli", "400"),
        ],
    )?)
    .await?;
    let reply = kubelet.admit(&serde_json::to_value(&after)?).await?;
    ensure!(
        reply["ok"] == true && given(&reply, "envs")["ALLOT_GPU_MILLI"] == "400",
        "after the restart: {reply}"
    );
    agent.check_alive()?;
    Ok(())
}

/// Waits for a Warning event on pod `name` whose note contains `text`.
async fn event(cluster: &Cluster, ns: &str, name: &str, text: &str) -> Result<()> {
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(cluster.client.clone(), ns);
    poll(
        &format!("an event on {name} saying {text:?}"),
        WAIT,
        || async {
            let list = events.list(&ListParams::default()).await?;
            Ok(list
                .items
                .iter()
                .any(|e| {
                    e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                        && e.reason.as_deref() == Some("GpuAllocateFailed")
                        && e.note.as_deref().is_some_and(|n| n.contains(text))
                })
                .then_some(()))
        },
    )
    .await
}

/// No kubelet confirms deletion on this node: delete at once.
async fn force_delete(pods: &Api<Pod>, name: &str) -> Result<()> {
    pods.delete(
        name,
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .with_context(|| format!("deleting pod {name}"))?;
    Ok(())
}

async fn cleanup(cluster: &Cluster, ns: &str, node: &str) -> Result<()> {
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), ns);
    for p in pods.list(&ListParams::default()).await?.items {
        force_delete(&pods, p.metadata.name.as_deref().unwrap_or_default()).await?;
    }
    let _ = telemetry_api(cluster)
        .delete(node, &DeleteParams::default())
        .await;
    let _ = Api::<Node>::all(cluster.client.clone())
        .delete(node, &DeleteParams::default())
        .await;
    Ok(())
}

fn tempfile_dir(node: &str) -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(node);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
