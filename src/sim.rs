//! The trace-driven simulator: load a cluster and a pod list, replay the pods under each
//! policy with the FGD paper's protocol, and measure unallocated GPU and fragmentation as
//! the paper did; optionally with pods moved to make room (`consolidate`), or in time order
//! with departures and a wait queue (`dynamic`). Pure and
//! deterministic in its seeds.

pub mod bundled;
pub mod consolidate;
pub mod dynamic;
pub mod experiment;
pub mod leftover;
pub mod metrics;
pub mod parallel;
pub mod place;
pub mod published;
pub mod replay;
pub mod sampling;
pub mod trace;

pub use bundled::{LoadedTrace, load_trace};
pub use experiment::{
    MoveStats, PolicyResult, Progress, SeedRun, Workload, offline_bounds, run_experiment,
    run_experiment_with,
};
pub use leftover::Leftover;
pub use published::Published;
pub use sampling::NodeSampling;
