//! How a dynamic replay's load is set: the trace's times, with arrivals compressed
//! (`time_scale`), on a seeded subset of the nodes (`nodes_fraction`); and the times a trace
//! without them (the openb multigpu lists) gets.
//!
//! Why both knobs: the openb pods' own times load the full cluster to ~1 % at their peak,
//! and even all of a trace's pods at once ask for ~98 % of its GPUs (the static protocol
//! appends copies to reach 130 %), so compressing time alone can never overload the 1213
//! nodes. A uniform sample of the nodes keeps the cluster's mix of node sizes and models in
//! proportion; compressing the gaps between arrivals (each pod still runs its own duration)
//! then raises the offered load smoothly, and is the knob to sweep.

use super::Job;
use crate::model::{Cluster, PodDemand};
use crate::rng::Rng;
use crate::sim::trace::times::Lifetime;

/// Independent random streams per purpose, so each is fixed by the seed alone.
const STREAM_NODES: u64 = 11;
const STREAM_GAPS: u64 = 12;
const STREAM_DURATIONS: u64 = 13;

/// The load knobs of a dynamic replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Arrivals come this many times as often as in the trace (gaps divided by it); each pod
    /// runs its own duration. 1: the trace's own times.
    pub time_scale: f64,
    /// The share of the nodes kept (a seeded uniform sample); 1: all of them.
    pub nodes_fraction: f64,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            time_scale: 1.0,
            nodes_fraction: 1.0,
        }
    }
}

/// A load knob out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    #[error("--time-scale {0}: must be a finite number of at least 1 (arrivals k times as often)")]
    TimeScale(f64),
    #[error("--nodes-fraction {0}: must be above 0 and at most 1")]
    NodesFraction(f64),
    #[error("the pod list has {pods} pods but {times} lifetimes")]
    Mismatch { pods: usize, times: usize },
    #[error("no trace times to draw durations from")]
    NoDonor,
}

impl Load {
    /// Both knobs in range, or which one is not.
    pub fn validate(self) -> Result<Self, LoadError> {
        if !self.time_scale.is_finite() || self.time_scale < 1.0 {
            return Err(LoadError::TimeScale(self.time_scale));
        }
        if !(self.nodes_fraction > 0.0 && self.nodes_fraction <= 1.0) {
            return Err(LoadError::NodesFraction(self.nodes_fraction));
        }
        Ok(self)
    }
}

/// The jobs of `pods` with `times` (row by row), arrivals counted from the first creation
/// and compressed `time_scale`-fold; durations kept. Sorted by arrival, ties in row order.
pub fn jobs_from_lifetimes(
    pods: &[PodDemand],
    times: &[Lifetime],
    time_scale: f64,
) -> Result<Vec<Job>, LoadError> {
    if pods.len() != times.len() {
        return Err(LoadError::Mismatch {
            pods: pods.len(),
            times: times.len(),
        });
    }
    let origin = times.iter().map(|t| t.created).min().unwrap_or(0);
    let mut jobs: Vec<Job> = pods
        .iter()
        .zip(times)
        .map(|(&pod, t)| Job {
            pod,
            arrive_ms: ((t.created - origin) as f64 * 1000.0 / time_scale).round() as u64,
            run_ms: t.duration().saturating_mul(1000),
        })
        .collect();
    jobs.sort_by_key(|j| j.arrive_ms);
    Ok(jobs)
}

/// Times for `n` pods of a trace without them, drawn with `seed` from `donor` (a trace that
/// has them, the embedded openb default): Poisson arrivals at the donor's mean rate (pods per
/// second over its span) and durations drawn uniformly from the donor's, with replacement.
pub fn synthesize_lifetimes(
    n: usize,
    donor: &[Lifetime],
    seed: u64,
) -> Result<Vec<Lifetime>, LoadError> {
    let first = donor
        .iter()
        .map(|t| t.created)
        .min()
        .ok_or(LoadError::NoDonor)?;
    let last = donor.iter().map(|t| t.created).max().unwrap_or(first);
    let mean_gap = (last - first).max(1) as f64 / donor.len().max(1) as f64;
    let mut gaps = Rng::derive(seed, STREAM_GAPS);
    let mut durations = Rng::derive(seed, STREAM_DURATIONS);
    let mut clock = 0.0_f64;
    Ok((0..n)
        .map(|_| {
            // Uniform in (0, 1]: the top 53 bits, offset so that ln() is finite.
            let u = ((gaps.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
            clock += -u.ln() * mean_gap;
            let created = clock.round() as u64;
            let run = donor[durations.below(donor.len())].duration();
            Lifetime {
                created,
                deleted: created + run,
            }
        })
        .collect())
}

/// `cluster` with a seeded uniform `fraction` of its nodes (at least one), in their order.
pub fn node_subset(cluster: &Cluster, fraction: f64, seed: u64) -> Cluster {
    if fraction >= 1.0 {
        return cluster.clone();
    }
    let n = cluster.len();
    let keep = ((fraction * n as f64).round() as usize).clamp(1, n.max(1));
    let mut picked: Vec<usize> = Rng::derive(seed, STREAM_NODES)
        .permutation(n)
        .into_iter()
        .take(keep)
        .map(|i| i as usize)
        .collect();
    picked.sort_unstable();
    let nodes = picked.iter().map(|&i| cluster.nodes()[i].clone()).collect();
    Cluster::new(cluster.models.clone(), nodes)
}
