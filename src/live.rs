//! Live cluster state: reflectors on the API server (Nodes, Pods, NodeTelemetry,
//! ScheduleRequests) shared by the extender and the controller, and the pure step that turns
//! their objects into the core's one [`ClusterSnapshot`] — the [`Cluster`](crate::model::Cluster)
//! with every bound pod placed on its devices, plus each node's [`NodeState`]: whether it is
//! Ready, cordoned, reported by a fresh agent, and which of its GPUs are unhealthy.
//! [`LiveSnapshot`] only adds the objects that had to be read around.
//!
//! ```text
//! API server --watch--> caches (reflector stores) --change--> build::snapshot --> extender Store
//!                                                                            \--> controller
//! ```
//!
//! `ClusterSnapshot`, `BoundPod`, `NodeState` and `Telemetry` live in [`crate::snapshot`];
//! they are re-exported here for the layers above.

pub mod build;
mod caches;
pub mod consolidation;
mod departed;
pub mod node_model;
pub mod pod;
mod reflect;
pub mod relevance;

pub use crate::snapshot::{BoundPod, ClusterSnapshot, NameIndex, NodeState, Telemetry, node_index};
pub use build::{Freshness, LiveSnapshot, PodMemo, Problem, StalePolicy, snapshot, snapshot_with};
pub use caches::Caches;
pub use reflect::WatchHealth;

#[cfg(test)]
mod tests;
