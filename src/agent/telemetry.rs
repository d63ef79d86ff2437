//! From readings to the objects the agent applies: the `NodeTelemetry` status (pure), the
//! spec object with its ownerReference to the Node, and the Node's allocatable CPU and
//! memory. Server-side apply bodies are full intents: every write carries the whole status,
//! so a write that lands after an outage leaves nothing half-updated.

use k8s_openapi::Resource as _;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Resource as _;
use serde_json::{Value, json};

use crate::crd::{CpuTelemetry, GpuTelemetry, MemoryTelemetry, NodeTelemetry, NodeTelemetryStatus};
use crate::model::quantity::{parse_bytes, parse_cpu_milli};

use super::host::HostSample;

/// Version written into `status.agentVersion`.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the kubelet says the node offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allocatable {
    pub cpu_milli: u64,
    pub memory_bytes: u64,
}

/// Allocatable CPU and memory from a Node's status; a missing or unreadable quantity is 0
/// (with the reason returned, for a warning).
pub fn allocatable(node: &Node) -> (Allocatable, Vec<String>) {
    let mut problems = Vec::new();
    let map = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
    let mut read =
        |key: &str, parse: fn(&str) -> Result<u64, crate::model::quantity::QuantityError>| match map
            .and_then(|m| m.get(key))
        {
            None => {
                problems.push(format!("status.allocatable has no {key}"));
                0
            }
            Some(q) => parse(&q.0).unwrap_or_else(|e| {
                problems.push(format!("status.allocatable.{key} {:?}: {e}", q.0));
                0
            }),
        };
    let cpu_milli = read("cpu", parse_cpu_milli);
    let memory_bytes = read("memory", parse_bytes);
    (
        Allocatable {
            cpu_milli,
            memory_bytes,
        },
        problems,
    )
}

/// The status for one sample, without a heartbeat time (set when written). CPU in use is
/// `None` on the very first sample; `last_cpu` (the previous reading) stands in.
pub fn status(
    host: HostSample,
    last_cpu: u64,
    alloc: Allocatable,
    gpus: Vec<GpuTelemetry>,
) -> NodeTelemetryStatus {
    NodeTelemetryStatus {
        heartbeat_time: None,
        agent_version: AGENT_VERSION.to_string(),
        cpu: CpuTelemetry {
            allocatable_milli: alloc.cpu_milli,
            used_milli: host.cpu_used_milli.unwrap_or(last_cpu),
        },
        memory: MemoryTelemetry {
            allocatable_bytes: alloc.memory_bytes,
            used_bytes: host.memory_used_bytes,
        },
        ..NodeTelemetryStatus::default()
    }
    .with_gpus(gpus)
}

/// The status apply body, stamped with `now` as the heartbeat.
pub fn status_patch(status: &NodeTelemetryStatus, now: Timestamp) -> serde_json::Result<Value> {
    let mut status = status.clone();
    status.heartbeat_time = Some(Time(now));
    Ok(json!({
        "apiVersion": NodeTelemetry::api_version(&()),
        "kind": NodeTelemetry::kind(&()),
        "status": serde_json::to_value(&status)?,
    }))
}

/// The object apply body: spec and the ownerReference that lets the garbage collector
/// remove the telemetry with its Node.
pub fn object_patch(node_name: &str, node_uid: &str) -> Value {
    json!({
        "apiVersion": NodeTelemetry::api_version(&()),
        "kind": NodeTelemetry::kind(&()),
        "metadata": {
            "name": node_name,
            "ownerReferences": [{
                "apiVersion": Node::API_VERSION,
                "kind": Node::KIND,
                "name": node_name,
                "uid": node_uid,
            }],
        },
        "spec": { "nodeName": node_name },
    })
}

/// Whether an object read back has the ownerReference to this Node.
pub fn owned_by(object: &NodeTelemetry, node_uid: &str) -> bool {
    object
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| r.kind == "Node" && r.uid == node_uid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{GpuHealth, NodeTelemetrySpec};

    fn node(cpu: &str, memory: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": { "name": "n1", "uid": "u1" },
            "status": { "allocatable": { "cpu": cpu, "memory": memory } }
        }))
        .expect("node")
    }

    #[test]
    fn allocatable_reads_kubelet_quantities() {
        let (a, problems) = allocatable(&node("3500m", "16Gi"));
        assert_eq!(a.cpu_milli, 3500);
        assert_eq!(a.memory_bytes, 16 << 30);
        assert!(problems.is_empty());
        let (a, problems) = allocatable(&node("lots", "1Gi"));
        assert_eq!(a.cpu_milli, 0);
        assert!(
            problems[0].contains("allocatable.cpu \"lots\""),
            "{problems:?}"
        );
        let (_, problems) = allocatable(&Node::default());
        assert_eq!(problems.len(), 2);
    }

    #[test]
    fn status_counts_gpus_and_keeps_cpu_on_the_first_sample() {
        let gpu = |index, health| GpuTelemetry {
            index,
            uuid: format!("GPU-{index}"),
            health,
            ..GpuTelemetry::default()
        };
        let host = HostSample {
            cpu_used_milli: None,
            memory_used_bytes: 7,
        };
        let alloc = Allocatable {
            cpu_milli: 4000,
            memory_bytes: 100,
        };
        let s = status(
            host,
            250,
            alloc,
            vec![gpu(1, GpuHealth::Unhealthy), gpu(0, GpuHealth::Healthy)],
        );
        assert_eq!(s.cpu.used_milli, 250);
        assert_eq!(s.cpu.allocatable_milli, 4000);
        assert_eq!(s.memory.used_bytes, 7);
        assert_eq!((s.gpu_count, s.healthy_gpus), (2, 1));
        assert_eq!(s.gpus[0].index, 0);
        assert_eq!(s.agent_version, AGENT_VERSION);
    }

    #[test]
    fn apply_bodies_name_the_kind_and_owner() {
        let o = object_patch("n1", "u1");
        assert_eq!(o["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(o["spec"]["nodeName"], "n1");
        let parsed: NodeTelemetry = serde_json::from_value(o).expect("a NodeTelemetry");
        assert!(owned_by(&parsed, "u1"));
        assert!(!owned_by(&parsed, "u2"));
        assert_eq!(
            parsed.spec,
            NodeTelemetrySpec {
                node_name: "n1".into()
            }
        );

        let now: Timestamp = "2026-11-22T18:00:00Z".parse().expect("time");
        let p = status_patch(&NodeTelemetryStatus::default(), now).expect("serialises");
        assert_eq!(p["kind"], "NodeTelemetry");
        assert_eq!(p["status"]["heartbeatTime"], "2026-11-22T18:00:00Z");
        assert!(
            p.get("spec").is_none(),
            "a status apply must not claim spec fields"
        );
    }
}
