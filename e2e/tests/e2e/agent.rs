//! `allot agent` against the real API server: one agent process per kwok node, each with its
//! own fake NVML device file (`fake-nvml/`, built here with cargo), publishes `NodeTelemetry`;
//! a fake GPU that fails turns Unhealthy in its node's telemetry, and Healthy again once it is
//! back; an agent that stops leaves its heartbeat behind while the others' keep advancing.
//!
//! The agents write telemetry of shared kwok nodes, so the test deletes the `NodeTelemetry`
//! objects it made when it ends, whatever happened, leaving later tests a clean slate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use serde_json::{Value, json};

use crate::support::{
    AllotProcess, Cluster, WAIT, cargo_artifact, fake_gpus as devices, free_port, poll, repo_root,
    telemetry_api, write_devices,
};

/// Agents to start (one per kwok GPU node, up to this many).
const AGENTS: usize = 3;
/// Heartbeat of the agents under test: short, so staleness shows within seconds.
const HEARTBEAT_SECONDS: u64 = 3;

/// The fake NVML library (built once per test process).
fn fake_nvml() -> Result<PathBuf> {
    cargo_artifact(&["-p", "allot-fake-nvml"], "libnvidia_ml_fake.so")
}

/// A kwok GPU node the test drives.
struct Subject {
    node: String,
    uid: String,
    model: String,
    gpus: u64,
    devices: PathBuf,
    agent: AllotProcess,
    metrics_port: u16,
}

async fn gpu_nodes(cluster: &Cluster) -> Result<Vec<Node>> {
    let mut nodes = Api::<Node>::all(cluster.client.clone())
        .list(&ListParams::default().labels("type=kwok"))
        .await?
        .items;
    nodes.retain(|n| gpu_count(n) > 0);
    nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    nodes.truncate(AGENTS);
    ensure!(!nodes.is_empty(), "no kwok node with nvidia.com/gpu");
    Ok(nodes)
}

fn gpu_count(node: &Node) -> u64 {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get("nvidia.com/gpu"))
        .and_then(|q| q.0.parse().ok())
        .unwrap_or(0)
}

fn start(cluster: &Cluster, dir: &Path, node: &Node) -> Result<Subject> {
    let name = node
        .metadata
        .name
        .clone()
        .context("a node without a name")?;
    let model = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("allot.dev/gpu-model").cloned())
        .unwrap_or_else(|| "NVIDIA-FAKE".into());
    let gpus = gpu_count(node);
    let devices_path = dir.join(format!("{name}.json"));
    write_devices(&devices_path, &devices(&name, &model, gpus, None))?;
    let metrics_port = free_port()?;
    let listen = format!("127.0.0.1:{metrics_port}");
    let lib = fake_nvml()?;
    let heartbeat = HEARTBEAT_SECONDS.to_string();
    let config = devices_path.to_string_lossy().into_owned();
    let agent = AllotProcess::start_with_env(
        cluster,
        &format!("agent-{name}"),
        &[
            "agent",
            "--node-name",
            &name,
            "--sample-seconds",
            "1",
            "--heartbeat-seconds",
            &heartbeat,
            "--min-write-seconds",
            "1",
            "--listen",
            &listen,
            "--nvml-lib",
            &lib.to_string_lossy(),
        ],
        &[("ALLOT_FAKE_NVML_CONFIG", &config)],
    )?;
    Ok(Subject {
        node: name,
        uid: node.metadata.uid.clone().unwrap_or_default(),
        model,
        gpus,
        devices: devices_path,
        agent,
        metrics_port,
    })
}

/// The telemetry object of `node`, once `check` accepts it.
async fn telemetry_where(
    api: &Api<DynamicObject>,
    subject: &mut Subject,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let node = subject.node.clone();
    let start = std::time::Instant::now();
    loop {
        subject.agent.check_alive()?;
        if let Some(obj) = api.get_opt(&node).await? {
            let value = serde_json::to_value(&obj)?;
            if check(&value) {
                return Ok(value);
            }
            if start.elapsed() > WAIT {
                bail!(
                    "NodeTelemetry {node}: timed out waiting for {what}; last seen: {}\nagent log:\n{}",
                    value["status"],
                    subject.agent.log_tail(20)
                );
            }
        } else if start.elapsed() > WAIT {
            bail!(
                "NodeTelemetry {node} never appeared; agent log:\n{}",
                subject.agent.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn heartbeat(value: &Value) -> String {
    value["status"]["heartbeatTime"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn scenario(
    cluster: &Cluster,
    api: &Api<DynamicObject>,
    subjects: &mut [Subject],
) -> Result<()> {
    // Every agent publishes its node's GPUs, all healthy, owned by the Node.
    for s in subjects.iter_mut() {
        let gpus = s.gpus;
        let v = telemetry_where(api, s, "all GPUs healthy", |v| {
            v["status"]["gpuCount"] == json!(gpus) && v["status"]["healthyGpus"] == json!(gpus)
        })
        .await?;
        ensure!(
            v["spec"]["nodeName"] == json!(s.node),
            "spec.nodeName: {}",
            v["spec"]
        );
        let owner = &v["metadata"]["ownerReferences"][0];
        ensure!(
            owner["kind"] == "Node" && owner["uid"] == json!(s.uid),
            "ownerReferences: {}",
            v["metadata"]["ownerReferences"]
        );
        let managers: Vec<&str> = v["metadata"]["managedFields"]
            .as_array()
            .map(|m| m.iter().filter_map(|f| f["manager"].as_str()).collect())
            .unwrap_or_default();
        ensure!(managers.contains(&"allot-agent"), "managers: {managers:?}");
        ensure!(
            v["status"]["gpus"][0]["model"] == json!(s.model),
            "{}",
            v["status"]["gpus"][0]
        );
        ensure!(
            !heartbeat(&v).is_empty(),
            "no heartbeatTime: {}",
            v["status"]
        );
    }

    // kubectl shows them, with the printer columns.
    let table = cluster.kubectl(&["get", "nodetelemetry"])?;
    for s in subjects.iter() {
        ensure!(
            table.contains(&s.node),
            "kubectl get nodetelemetry lacks {}:\n{table}",
            s.node
        );
    }
    ensure!(
        table.contains("HEALTHY") && table.contains("HEARTBEAT"),
        "{table}"
    );

    // /metrics speaks DCGM.
    let url = format!("http://127.0.0.1:{}/metrics", subjects[0].metrics_port);
    let out = Command::new("curl").args(["-sf", &url]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("Hostname=\"{}\"", subjects[0].node);
    ensure!(
        text.contains("DCGM_FI_DEV_GPU_UTIL{") && text.contains(&want),
        "{url} lacks DCGM series for {}:\n{text}",
        subjects[0].node
    );

    // A GPU falls off the bus: its node's telemetry turns it Unhealthy.
    let s = &mut subjects[0];
    let failing = s.gpus - 1;
    write_devices(
        &s.devices,
        &devices(&s.node, &s.model, s.gpus, Some(failing)),
    )?;
    let healthy = s.gpus - 1;
    let v = telemetry_where(api, s, "one GPU unhealthy", |v| {
        v["status"]["healthyGpus"] == json!(healthy)
    })
    .await?;
    let gpu = &v["status"]["gpus"][usize::try_from(failing)?];
    ensure!(gpu["health"] == "Unhealthy", "{gpu}");
    ensure!(
        gpu["reason"].as_str().is_some_and(|r| r.contains("NVML")),
        "reason: {gpu}"
    );
    ensure!(
        gpu["uuid"] == json!(format!("GPU-{}-{failing}", s.node)),
        "{gpu}"
    );

    // The GPU comes back (a reset): healthy again, without restarting the agent.
    write_devices(&s.devices, &devices(&s.node, &s.model, s.gpus, None))?;
    let all = s.gpus;
    telemetry_where(api, s, "the GPU healthy again", |v| {
        v["status"]["healthyGpus"] == json!(all)
    })
    .await?;

    // Stop the last agent: its heartbeat stops while a running agent's advances.
    let (stopped, running) = (subjects.len() - 1, 0);
    ensure!(stopped != running, "need two agents to compare heartbeats");
    subjects[stopped].agent.stop();
    let last = heartbeat(&serde_json::to_value(
        api.get(&subjects[stopped].node).await?,
    )?);
    let before = heartbeat(&serde_json::to_value(
        api.get(&subjects[running].node).await?,
    )?);
    tokio::time::sleep(Duration::from_secs(2 * HEARTBEAT_SECONDS + 1)).await;
    let after_stopped = heartbeat(&serde_json::to_value(
        api.get(&subjects[stopped].node).await?,
    )?);
    ensure!(
        after_stopped == last,
        "a stopped agent's heartbeat moved: {last} -> {after_stopped}"
    );
    let s = &mut subjects[running];
    telemetry_where(api, s, "the heartbeat to advance", |v| {
        heartbeat(v) > before
    })
    .await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn agents_publish_telemetry_report_failing_gpus_and_go_stale_when_stopped() -> Result<()> {
    let test = "agents_publish_telemetry_report_failing_gpus_and_go_stale_when_stopped";
    let cluster = Cluster::from_env(test).await?;
    let api = telemetry_api(&cluster);
    let nodes = gpu_nodes(&cluster).await?;
    ensure!(
        nodes.len() >= 2,
        "need two kwok GPU nodes, found {}",
        nodes.len()
    );
    let dir = repo_root()
        .join("target")
        .join(format!("e2e-agent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut subjects = Vec::new();
    let mut outcome = Ok(());
    for node in &nodes {
        match start(&cluster, &dir, node) {
            Ok(s) => subjects.push(s),
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    if outcome.is_ok() {
        outcome = scenario(&cluster, &api, &mut subjects).await;
    }
    // Clean up whatever happened: stop the agents, then remove their telemetry.
    let names: Vec<String> = subjects.iter().map(|s| s.node.clone()).collect();
    drop(subjects);
    for name in names {
        if let Err(e) = api.delete(&name, &DeleteParams::default()).await
            && outcome.is_ok()
        {
            outcome = Err(anyhow::Error::new(e).context(format!("deleting NodeTelemetry {name}")));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// Quick rejection paths of the binary, needing no node: bad flags exit 2 with the flag named.
#[tokio::test]
#[ignore = "needs e2e/up"]
async fn agent_without_a_node_name_exits_with_a_clear_error() -> Result<()> {
    let test = "agent_without_a_node_name_exits_with_a_clear_error";
    let cluster = Cluster::from_env(test).await?;
    let bin = crate::support::allot_binary()?;
    let out = Command::new(bin)
        .args(["agent", "--listen", "127.0.0.1:0"])
        .env_remove("NODE_NAME")
        .env("KUBECONFIG", &cluster.kubeconfig)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.code() == Some(2),
        "exit {:?}: {stderr}",
        out.status
    );
    ensure!(stderr.contains("--node-name or set NODE_NAME"), "{stderr}");
    Ok(())
}

/// A node name that does not exist is an error the log names, but not a reason to exit: the
/// node may register later, so the agent keeps sampling and retrying.
#[tokio::test]
#[ignore = "needs e2e/up"]
async fn agent_for_a_missing_node_says_so_and_keeps_running() -> Result<()> {
    let test = "agent_for_a_missing_node_says_so_and_keeps_running";
    let cluster = Cluster::from_env(test).await?;
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let mut agent = AllotProcess::start(
        &cluster,
        "agent-missing-node",
        &[
            "agent",
            "--node-name",
            "no-such-node-e2e",
            "--sample-seconds",
            "1",
            "--listen",
            &listen,
        ],
    )?;
    agent
        .wait_ready(&format!("http://127.0.0.1:{port}/healthz"))
        .await?;
    poll("the agent to report the missing node", WAIT, || {
        let tail = agent.log_tail(50);
        async move {
            Ok(tail
                .contains("\"no-such-node-e2e\" does not exist")
                .then_some(()))
        }
    })
    .await?;
    agent.check_alive()?;
    ensure!(
        telemetry_api(&cluster)
            .get_opt("no-such-node-e2e")
            .await?
            .is_none(),
        "telemetry written for a node that does not exist"
    );
    Ok(())
}
