//! Placement policies: one [`Policy`] trait, one implementation per published heuristic.
//! The simulator and the extender both decide through [`Decider`] (`decide.rs`), so what the
//! benchmark measures is what the cluster runs. Exact definitions: `traces/README-benchmark-notes.md`
//! §6 (from the FGD paper's simulator).

mod bestfit;
mod clustering;
mod decide;
mod dotprod;
mod fgd;
mod kube;
pub mod learned;
mod packing;
mod random;

use std::fmt;
use std::str::FromStr;

use crate::model::frag::TargetWorkload;
use crate::model::{Cluster, DeviceSet, Node, PodDemand};

pub use bestfit::BestFit;
pub use clustering::GpuClustering;
pub use decide::{Context, DEFAULT_SEED, Decider, Unplaced, arrival_uid, keyed_hash, tie_rank};
pub use dotprod::DotProd;
pub use fgd::Fgd;
pub use kube::{Allocated, AllocatedMode};
pub use packing::GpuPacking;
pub use random::RandomFit;

/// Normalisation constant for CPU: the largest node in the paper's cluster (128 cores).
pub const MAX_CPU_MILLI: f64 = 128_000.0;
/// Normalisation constant for GPU: the largest node in the paper's cluster (8 GPUs).
pub const MAX_GPU_MILLI: f64 = 8_000.0;

/// Scores candidate nodes for one pod. Higher is better; ties are broken by the caller.
pub trait Policy: Send {
    /// The policy's stable name, as accepted by [`PolicyKind::from_str`].
    fn name(&self) -> &'static str;

    /// Called before each decision's scoring and again before its device choice: the
    /// snapshot's context, and `draw`, a key fixed by the seed and the pod's UID from which a
    /// policy takes any random numbers (so a pod gets the same draws in the simulator and
    /// the extender, whatever was decided before it).
    fn begin(&mut self, _ctx: &Context, _draw: u64) {}

    /// Whether the policy reads the LP's shadow prices ([`Context::prices`]): the simulator
    /// and the extender solve the pricing LP only for a policy that does.
    fn wants_prices(&self) -> bool {
        false
    }

    /// The cluster's nodes were replaced (a new snapshot, whose node indices and generations
    /// start afresh): drop what is cached per node index, keep what is cached per node shape.
    fn rebase(&mut self) {}

    /// Score `pod` on every node of `candidates` (all feasible); `out[i]` scores
    /// `candidates[i]`. `out` has the same length as `candidates`.
    fn score(&mut self, cluster: &Cluster, pod: &PodDemand, candidates: &[usize], out: &mut [i64]);

    /// The devices `pod` takes on the chosen node. The default is best fit for a share and
    /// the lowest-index free devices for whole GPUs.
    fn devices(&mut self, node: &Node, pod: &PodDemand) -> Option<DeviceSet> {
        node.default_devices(pod.gpu)
    }
}

/// The policies allot ships, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyKind {
    Random,
    DotProd,
    Clustering,
    Packing,
    BestFit,
    Fgd,
    LeastAllocated,
    MostAllocated,
    Learned,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 9] = [
        PolicyKind::Random,
        PolicyKind::DotProd,
        PolicyKind::Clustering,
        PolicyKind::Packing,
        PolicyKind::BestFit,
        PolicyKind::Fgd,
        PolicyKind::LeastAllocated,
        PolicyKind::MostAllocated,
        PolicyKind::Learned,
    ];

    /// The six policies of the FGD paper, in its column order (the first six of `ALL`).
    pub const PAPER: &[PolicyKind] = Self::ALL.split_at(6).0;

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Random => "random",
            PolicyKind::DotProd => "dotprod",
            PolicyKind::Clustering => "clustering",
            PolicyKind::Packing => "packing",
            PolicyKind::BestFit => "bestfit",
            PolicyKind::Fgd => "fgd",
            PolicyKind::LeastAllocated => "least-allocated",
            PolicyKind::MostAllocated => "most-allocated",
            PolicyKind::Learned => "learned",
        }
    }

    /// The label the FGD authors' published results use for this policy, if any.
    pub fn published_label(self) -> Option<&'static str> {
        Some(match self {
            PolicyKind::Random => "01-Random",
            PolicyKind::DotProd => "02-DotProd",
            PolicyKind::Clustering => "03-GpuClustering",
            PolicyKind::Packing => "04-GpuPacking",
            PolicyKind::BestFit => "05-BestFit",
            PolicyKind::Fgd => "06-FGD",
            PolicyKind::LeastAllocated | PolicyKind::MostAllocated | PolicyKind::Learned => {
                return None;
            }
        })
    }

    /// Build the policy for decisions in `ctx`: its target workload, seed and learned weights.
    pub fn build_for(self, ctx: &Context) -> Box<dyn Policy> {
        match (self, &ctx.learned) {
            (PolicyKind::Learned, Some(file)) => {
                Box::new(learned::Learned::new(file, (*ctx.target).clone()))
            }
            _ => self.build(&ctx.target, ctx.seed),
        }
    }

    /// Build the policy. `target` is the typical workload FGD measures fragmentation
    /// against; `seed` drives Random; `learned` uses the embedded policy file.
    pub fn build(self, target: &TargetWorkload, seed: u64) -> Box<dyn Policy> {
        match self {
            PolicyKind::Random => Box::new(RandomFit::new(seed)),
            PolicyKind::DotProd => Box::new(DotProd),
            PolicyKind::Clustering => Box::new(GpuClustering),
            PolicyKind::Packing => Box::new(GpuPacking),
            PolicyKind::BestFit => Box::new(BestFit),
            PolicyKind::Fgd => Box::new(Fgd::new(target.clone())),
            PolicyKind::LeastAllocated => Box::new(Allocated::new(AllocatedMode::Least)),
            PolicyKind::MostAllocated => Box::new(Allocated::new(AllocatedMode::Most)),
            PolicyKind::Learned => Box::new(learned::embedded(target)),
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown policy name; the message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown policy {name:?}; valid policies: {}", valid_names())]
pub struct UnknownPolicy {
    pub name: String,
}

fn valid_names() -> String {
    PolicyKind::ALL.map(PolicyKind::name).join(", ")
}

impl FromStr for PolicyKind {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        PolicyKind::ALL
            .into_iter()
            .find(|k| k.name() == wanted)
            .ok_or_else(|| UnknownPolicy {
                name: s.to_string(),
            })
    }
}

#[cfg(test)]
pub(crate) mod testkit;

#[cfg(test)]
mod tests;
