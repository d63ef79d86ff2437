//! What the device plugin offers kubelet: the node's GPUs (from the agent's NVML samples) as
//! the device lists of allot's two resources, whole GPUs by UUID and share slots per GPU.

use allot_kubelet_api::{Device, HEALTHY, UNHEALTHY};

use crate::crd::{GpuHealth, GpuTelemetry};
use crate::names::{GPU_RESOURCE, GPU_SHARE_RESOURCE};

/// The resources allot's device plugin serves, each on its own socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// `nvidia.com/gpu`: whole GPUs, one device ID per GPU (its UUID).
    Whole,
    /// `allot.dev/gpu-share`: share slots, `slots` device IDs per GPU.
    Share,
}

impl Resource {
    pub const ALL: [Resource; 2] = [Resource::Whole, Resource::Share];

    /// The extended resource name kubelet advertises on the Node.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Whole => GPU_RESOURCE,
            Resource::Share => GPU_SHARE_RESOURCE,
        }
    }

    /// The plugin's socket file in kubelet's device-plugins directory.
    pub fn socket(self) -> &'static str {
        match self {
            Resource::Whole => "allot-gpu.sock",
            Resource::Share => "allot-gpu-share.sock",
        }
    }

    /// Bounded label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Resource::Whole => "whole",
            Resource::Share => "share",
        }
    }
}

/// One GPU as the plugin needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    pub index: u32,
    pub uuid: String,
    pub memory_bytes: u64,
    /// `None` when healthy, otherwise why not (shown to the pod that is refused it).
    pub unhealthy: Option<String>,
}

/// The node's GPUs, by index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    gpus: Vec<Gpu>,
}

/// The device ID of share slot `slot` of the GPU `uuid` (at most 63 characters for NVML's
/// 40-character UUIDs, as kubelet requires).
pub fn share_id(uuid: &str, slot: u32) -> String {
    format!("{uuid}::{slot}")
}

impl Inventory {
    /// From the agent's latest sample. A GPU in any state but `Healthy` is offered as
    /// `Unhealthy`, so kubelet stops handing it out.
    pub fn from_telemetry(gpus: &[GpuTelemetry]) -> Self {
        let mut gpus: Vec<Gpu> = gpus
            .iter()
            .map(|g| Gpu {
                index: g.index,
                uuid: g.uuid.clone(),
                memory_bytes: g.memory_total_bytes,
                unhealthy: match g.health {
                    GpuHealth::Healthy => None,
                    GpuHealth::Unhealthy | GpuHealth::Unknown => Some(
                        g.reason
                            .clone()
                            .unwrap_or_else(|| format!("health {:?}", g.health)),
                    ),
                },
            })
            .collect();
        gpus.sort_by_key(|g| g.index);
        Inventory { gpus }
    }

    pub fn gpus(&self) -> &[Gpu] {
        &self.gpus
    }

    pub fn by_index(&self, index: u32) -> Option<&Gpu> {
        self.gpus.iter().find(|g| g.index == index)
    }

    /// What ListAndWatch sends for `resource`.
    pub fn devices(&self, resource: Resource, share_slots: u32) -> Vec<Device> {
        let health = |g: &Gpu| {
            if g.unhealthy.is_none() {
                HEALTHY
            } else {
                UNHEALTHY
            }
        };
        let device = |id: String, g: &Gpu| Device {
            id,
            health: health(g).to_string(),
            topology: None,
        };
        match resource {
            Resource::Whole => self
                .gpus
                .iter()
                .map(|g| device(g.uuid.clone(), g))
                .collect(),
            Resource::Share => self
                .gpus
                .iter()
                .flat_map(|g| (0..share_slots).map(move |k| device(share_id(&g.uuid, k), g)))
                .collect(),
        }
    }

    /// The GPU behind a device ID of `resource`, if this node has it.
    pub fn by_device_id(&self, resource: Resource, id: &str) -> Option<&Gpu> {
        let uuid = match resource {
            Resource::Whole => id,
            Resource::Share => id.rsplit_once("::").map(|(u, _)| u)?,
        };
        self.gpus.iter().find(|g| g.uuid == uuid)
    }

    /// A short list of the node's GPU indices for messages: `0-3`, or `none`.
    pub fn describe(&self) -> String {
        match (self.gpus.first(), self.gpus.last()) {
            (Some(a), Some(b)) if a.index == b.index => a.index.to_string(),
            (Some(a), Some(b)) => format!("{}-{}", a.index, b.index),
            _ => "none".to_string(),
        }
    }
}
