//! What the plan step reads (plain data): the request's pods as the observe step read them
//! ([`Observed`]), each node's health, and the cluster around them ([`World`]). The status
//! step reads the same pods to count them.

use std::collections::HashSet;

use crate::model::{Cluster, DeviceSet};

/// A pod's lifecycle phase, as far as the controller cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// One pod of the request, read from the API.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedPod {
    pub name: String,
    pub task: String,
    pub index: i32,
    /// `spec.nodeName`: set once the pod is bound.
    pub node: Option<String>,
    /// The node and devices of the plan the pod was created with.
    pub planned_node: Option<String>,
    pub planned_devices: DeviceSet,
    /// Devices the extender bound the pod to, when it says.
    pub bound_devices: Option<DeviceSet>,
    pub phase: PodPhase,
    pub ready: bool,
    /// A deletion is in progress.
    pub terminating: bool,
}

/// The request's pods.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub pods: Vec<ObservedPod>,
}

/// Why a node may not keep or take replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeProblem {
    NotReady,
    TelemetryStale,
    /// No NodeTelemetry at all; a problem only when the controller fails closed.
    TelemetryMissing,
}

impl NodeProblem {
    /// Bounded CamelCase reason for moves, events and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            NodeProblem::NotReady => "NodeNotReady",
            NodeProblem::TelemetryStale => "TelemetryStale",
            NodeProblem::TelemetryMissing => "TelemetryMissing",
        }
    }
}

/// Health of one node, parallel to the cluster's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeHealth {
    pub problem: Option<NodeProblem>,
    /// Cordoned: running pods stay, new ones are not planned here.
    pub unschedulable: bool,
    /// GPUs reported unhealthy.
    pub unhealthy: DeviceSet,
}

/// The cluster the plan step reads.
#[derive(Debug, Clone, Copy)]
pub struct World<'a> {
    /// Every bound pod placed (including this request's, as far as the caches know).
    pub cluster: &'a Cluster,
    /// Parallel to `cluster.nodes()`.
    pub health: &'a [NodeHealth],
    /// Names of this request's pods that `cluster` already accounts for.
    pub accounted: &'a HashSet<String>,
}
