//! The simulator's offline bound: the most GPU milli any placement of a replay's arrivals
//! could allocate, from the LP relaxation with every pod weighted by its GPU milli. Online
//! policies see pods one at a time and never move them; this sees them all at once, so it
//! is the physical limit line on the simulator's plot. It is the smaller of the fluid LP
//! (CPU, memory and models per node class; a class's free milli pooled) and the device-pattern
//! bound (`devices.rs`: each device's shares add up to one GPU at most).

use std::time::Duration;

use super::classes::{node_classes, pod_classes};
use super::devices::device_bound;
use super::lp::{self, Backend, SolveError};
use super::{BatchPod, Objective};
use crate::model::{Cluster, PodDemand};

/// Upper bounds on allocated GPU milli at several arrival points.
#[derive(Debug, Clone, PartialEq)]
pub struct OfflineBound {
    /// `(arrived % of capacity, upper bound on allocated milli)`.
    pub points: Vec<(usize, f64)>,
    pub capacity_milli: u64,
}

impl OfflineBound {
    /// Lower bound on unallocated GPU % at `x` (if computed).
    pub fn unallocated_pct_at(&self, x: usize) -> Option<f64> {
        let cap = self.capacity_milli.max(1) as f64;
        self.points
            .iter()
            .find(|(p, _)| *p == x)
            .map(|(_, milli)| 100.0 - milli / cap * 100.0)
    }
}

/// Bound the GPU milli allocatable from the arrivals that have come by each of `points`
/// (percent of capacity; arrivals count whether or not they were placed), on the empty
/// `cluster`.
pub fn offline_bound(
    cluster: &Cluster,
    arrivals: &[PodDemand],
    points: &[usize],
    backend: Backend,
    time_limit: Duration,
) -> Result<OfflineBound, SolveError> {
    let capacity = cluster.gpu_capacity_milli();
    let nodes = node_classes(cluster);
    let mut out = Vec::with_capacity(points.len());
    for &x in points {
        let limit = capacity as f64 * x as f64 / 100.0;
        let mut arrived = 0.0;
        let batch: Vec<BatchPod> = arrivals
            .iter()
            .take_while(|p| {
                arrived += p.gpu.total_milli() as f64;
                arrived <= limit + 0.5
            })
            .filter(|p| p.needs_gpu())
            .map(|p| BatchPod {
                demand: *p,
                priority: 0,
                gang: None,
                elastic: false,
            })
            .collect();
        let mut classes = pod_classes(&batch);
        for class in &mut classes {
            class.weight = class.demand.gpu.total_milli() as f64;
        }
        let relaxation = lp::solve(&classes, &nodes, Objective::MaxPlaced, backend, time_limit)?;
        let demands: Vec<PodDemand> = batch.iter().map(|p| p.demand).collect();
        // Both are upper bounds, so the smaller is one too.
        let devices = device_bound(&demands, cluster.gpu_count(), time_limit);
        out.push((x, relaxation.objective.min(devices).min(capacity as f64)));
    }
    Ok(OfflineBound {
        points: out,
        capacity_milli: capacity,
    })
}
