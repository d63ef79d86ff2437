//! `NodeTelemetry`: one per node, written by the node agent (status via server-side apply) and
//! read by the store that feeds the extender and the planner.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Identifies the node this object describes. The object's name is the node name as well;
/// the field exists so the printer column and field selectors need no metadata lookup.
#[allow(
    clippy::duplicated_attributes,
    reason = "clippy reads repeated keys across separate printcolumn(...) entries as duplicates"
)]
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "allot.dev",
    version = "v1alpha1",
    kind = "NodeTelemetry",
    plural = "nodetelemetries",
    shortname = "nt",
    category = "allot",
    status = "NodeTelemetryStatus",
    derive = "PartialEq",
    doc = "GPU, CPU and memory telemetry of one node, written by the allot node agent",
    selectable = ".spec.nodeName",
    printcolumn(name = "Node", type_ = "string", json_path = ".spec.nodeName"),
    printcolumn(
        name = "GPUs",
        type_ = "integer",
        json_path = ".status.gpuCount",
        description = "GPUs the agent sees"
    ),
    printcolumn(
        name = "Healthy",
        type_ = "integer",
        json_path = ".status.healthyGpus",
        description = "GPUs reported Healthy"
    ),
    printcolumn(name = "Model", type_ = "string", json_path = ".status.gpus[0].model"),
    printcolumn(
        name = "Heartbeat",
        type_ = "date",
        json_path = ".status.heartbeatTime"
    ),
    printcolumn(name = "Agent", type_ = "string", json_path = ".status.agentVersion")
)]
#[serde(rename_all = "camelCase")]
pub struct NodeTelemetrySpec {
    /// Name of the node; equal to `metadata.name`.
    #[schemars(length(min = 1, max = 253))]
    pub node_name: String,
}

/// What the agent last observed on the node.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeTelemetryStatus {
    /// When the agent last wrote this status; stale telemetry triggers failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_time: Option<Time>,
    /// Version of the agent that wrote this status.
    #[serde(default)]
    pub agent_version: String,
    /// CPU in millicores.
    #[serde(default)]
    pub cpu: CpuTelemetry,
    /// Memory in bytes.
    #[serde(default)]
    pub memory: MemoryTelemetry,
    /// `gpus.len()`, kept as a field for the printer column.
    #[serde(default)]
    pub gpu_count: u32,
    /// GPUs whose health is `Healthy`, kept as a field for the printer column.
    #[serde(default)]
    pub healthy_gpus: u32,
    /// One entry per GPU, ordered by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuTelemetry>,
}

/// CPU of the node, in millicores.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CpuTelemetry {
    /// Allocatable CPU as the kubelet reports it.
    pub allocatable_milli: u64,
    /// CPU in use.
    pub used_milli: u64,
}

/// Memory of the node, in bytes.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemoryTelemetry {
    /// Allocatable memory as the kubelet reports it.
    pub allocatable_bytes: u64,
    /// Memory in use.
    pub used_bytes: u64,
}

/// One GPU as the agent sees it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GpuTelemetry {
    /// Device index (what `gpuDevices` in a plan refers to).
    pub index: u32,
    /// Stable device UUID.
    pub uuid: String,
    /// Product name, matched against `tasks[].gpuModels`.
    pub model: String,
    /// Device memory.
    pub memory_total_bytes: u64,
    /// Device memory in use.
    pub memory_used_bytes: u64,
    /// Percent of time a kernel ran over the last sample period.
    #[schemars(range(max = 100))]
    pub utilization_gpu_percent: u32,
    /// Percent of time device memory was read or written over the last sample period.
    #[schemars(range(max = 100))]
    pub utilization_memory_percent: u32,
    /// Die temperature.
    pub temperature_celsius: u32,
    /// Board power draw.
    pub power_milliwatts: u64,
    /// MIG mode, when the device supports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mig_enabled: Option<bool>,
    /// Whether allot may place work on this GPU.
    #[serde(default)]
    pub health: GpuHealth,
    /// Why the GPU is not Healthy (e.g. an XID error), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Health of one GPU.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GpuHealth {
    /// Usable.
    Healthy,
    /// Not usable; `reason` says why.
    Unhealthy,
    /// The agent could not tell (treated as not usable).
    #[default]
    Unknown,
}

impl NodeTelemetryStatus {
    /// Builds a status from per-GPU readings, keeping the printer-column counters consistent.
    pub fn with_gpus(mut self, mut gpus: Vec<GpuTelemetry>) -> Self {
        gpus.sort_by_key(|g| g.index);
        self.gpu_count = u32::try_from(gpus.len()).unwrap_or(u32::MAX);
        self.healthy_gpus = u32::try_from(
            gpus.iter()
                .filter(|g| g.health == GpuHealth::Healthy)
                .count(),
        )
        .unwrap_or(u32::MAX);
        self.gpus = gpus;
        self
    }
}

#[cfg(test)]
mod tests;
