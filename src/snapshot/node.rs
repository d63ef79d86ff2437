//! What a [`ClusterSnapshot`](super::ClusterSnapshot) knows about each node beyond its free
//! resources: readiness, cordon, how fresh its agent's telemetry is, and which GPUs the agent
//! reports unhealthy. `live::build` reads them from Node and NodeTelemetry objects.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::model::DeviceSet;

/// How recent a node's telemetry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Telemetry {
    Fresh,
    Stale {
        age: Duration,
        limit: Duration,
    },
    /// No NodeTelemetry object, or one that never had a heartbeat.
    Missing,
}

/// What allot knows about a node beyond its free resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    /// The Ready condition is True.
    pub ready: bool,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    pub telemetry: Telemetry,
    /// Devices the agent reports as not Healthy (withheld in the snapshot's cluster).
    pub unhealthy: DeviceSet,
    /// The agent's reason per unhealthy device.
    pub reasons: BTreeMap<usize, String>,
}

impl NodeState {
    /// A node nothing is known against (snapshot files, tests).
    pub fn healthy() -> Self {
        NodeState {
            ready: true,
            unschedulable: false,
            telemetry: Telemetry::Fresh,
            unhealthy: DeviceSet::EMPTY,
            reasons: BTreeMap::new(),
        }
    }

    /// Whether new work may go to this node; the reason (for a person) when not. Stale or
    /// missing telemetry blocks it only when `fail_closed` (the fail-closed stale policy).
    pub fn usable(&self, fail_closed: bool) -> Result<(), String> {
        if !self.ready {
            return Err("node is not Ready".into());
        }
        if self.unschedulable {
            return Err("node is cordoned (spec.unschedulable)".into());
        }
        match self.telemetry {
            // Without the age, so that every stale node gives the same reason.
            Telemetry::Stale { limit, .. } if fail_closed => Err(format!(
                "node telemetry is out of date (stale after {}s; stale policy fail-closed)",
                limit.as_secs()
            )),
            Telemetry::Missing if fail_closed => Err(
                "no NodeTelemetry for this node (is the allot agent running there?); stale \
                 policy fail-closed"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    /// Whether any device is unhealthy.
    pub fn has_unhealthy(&self) -> bool {
        !self.unhealthy.is_empty()
    }

    /// "GPU 3 unhealthy (XID 79)", for filter reasons; empty when all are healthy.
    pub fn unhealthy_text(&self) -> String {
        let parts: Vec<String> = self
            .unhealthy
            .iter()
            .map(|i| match self.reasons.get(&i) {
                Some(r) if !r.is_empty() => format!("GPU {i} unhealthy ({r})"),
                _ => format!("GPU {i} unhealthy"),
            })
            .collect();
        parts.join(", ")
    }
}
