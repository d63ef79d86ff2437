//! Live cluster state: reflectors on the API server (Nodes, Pods, NodeTelemetry,
//! ScheduleRequests) shared by the extender and the controller, and the pure step that turns
//! their objects into a [`LiveSnapshot`] — the core [`Cluster`](crate::model::Cluster) with
//! every bound pod placed on its devices, plus what the core does not model: whether each
//! node is Ready, cordoned, reported by a fresh agent, and which of its GPUs are unhealthy.
//!
//! ```text
//! API server --watch--> caches (reflector stores) --change--> build::snapshot --> extender Store
//!                                                                            \--> controller
//! ```

pub mod build;
mod caches;
mod fxhash;
pub mod pod;
pub mod snapshot;

pub use build::{
    Freshness, LiveSnapshot, NodeState, PodMemo, StalePolicy, Telemetry, snapshot, snapshot_with,
};
pub use caches::Caches;
pub use snapshot::{BoundPod, ClusterSnapshot, NodeIndex, node_index};

#[cfg(test)]
mod tests;
