//! What a training run takes and gives back: its [`Options`], the [`Trace`]s it learns from,
//! the [`CurvePoint`]s of its curves, [`Progress`] reports, and why it cannot start
//! ([`TrainError`]).

use super::recorded;
use super::search::SearchOptions;
use crate::model::frag::TargetWorkload;
use crate::model::{Cluster, PodDemand};
use crate::policy::learned::PolicyFile;
use crate::sim::trace::times::Lifetime;

/// Hyperparameters of a training run (`allot train` flags).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub gamma: f64,
    pub learning_rate: f64,
    pub supervised_epochs: usize,
    pub epochs: usize,
    pub batch: usize,
    pub updates_per_episode: usize,
    /// Episodes between refreshes of the target copy.
    pub target_every: usize,
    pub epsilon_start: f64,
    pub epsilon_end: f64,
    pub buffer: usize,
    /// Pull of every weight towards the warm start (L2), against drift.
    pub l2: f64,
    /// Keep the last epoch's weights instead of the best on validation (for ablations).
    pub keep_last: bool,
    pub seed: u64,
    /// Phase 3, the cross-entropy search over the weights (0 generations skips it).
    pub search: SearchOptions,
    /// The weights training starts from (and the L2 pull pulls to), whose replays are the
    /// supervised phase's history of a trace without recorded decisions; `None`: FGD's.
    pub start: Option<PolicyFile>,
    /// The tolerance of the written file's support (the training traces' workload mixes,
    /// `policy::learned::support`); `None` writes no support (the policy applies everywhere).
    pub support_tolerance: Option<f64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            gamma: 0.5,
            learning_rate: 0.05,
            supervised_epochs: 2,
            epochs: 6,
            batch: 64,
            updates_per_episode: 400,
            target_every: 2,
            epsilon_start: 0.10,
            epsilon_end: 0.01,
            buffer: 200_000,
            l2: 1e-4,
            keep_last: false,
            seed: 1,
            search: SearchOptions::default(),
            start: None,
            support_tolerance: Some(crate::policy::learned::support::DEFAULT_TOLERANCE),
        }
    }
}

/// One trace to train on: its cluster, pods (in name order) and fragmentation target.
#[derive(Debug, Clone)]
pub struct Trace {
    pub name: String,
    pub cluster: Cluster,
    pub pods: Vec<PodDemand>,
    pub target: TargetWorkload,
    /// For a recorded history, the cluster's own decisions: the supervised phase learns from
    /// them instead of the starting policy's replays on the training seeds.
    pub recorded: Option<recorded::Decisions>,
    /// The pods' creation and deletion times, row by row, for `allot train --dynamic`
    /// (`None`: the trace has none, or the run is static).
    pub lifetimes: Option<Vec<Lifetime>>,
}

impl Trace {
    /// A loaded trace to learn from: its pods on its cluster, targeting its own workload, with
    /// no recorded decisions and no pod times (set `lifetimes` for a dynamic run).
    pub fn of(t: crate::sim::LoadedTrace) -> Self {
        Trace {
            name: t.name.clone(),
            target: t.workload().target(),
            cluster: t.cluster,
            pods: t.pods.pods,
            recorded: None,
            lifetimes: None,
        }
    }
}

/// A point of the training curves.
#[derive(Debug, Clone, PartialEq)]
pub struct CurvePoint {
    pub phase: &'static str,
    pub epoch: usize,
    /// Mean reward per training episode (supervised: validation MSE's negative).
    pub train_reward: f64,
    /// Mean unallocated GPU % at 100 % arrived over the validation replays.
    pub validation_unallocated_pct: f64,
}

/// Why training cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrainError {
    #[error("no trace to train on")]
    NoTraces,
    #[error("trace {0} has no GPU pods: there is nothing to learn from it")]
    NoGpuPods(String),
    #[error("zero epochs in every phase: training would write an untrained policy")]
    ZeroEpochs,
    #[error("no training seeds")]
    NoSeeds,
    #[error("seed {0} is an evaluation seed (42-51); train and validate on other seeds")]
    EvaluationSeed(u64),
    /// The dynamic setting (`--dynamic`) cannot replay: a load out of range, or times missing.
    #[error("{0}")]
    Dynamic(String),
    /// A checkpoint could not be written, or does not belong to this run.
    #[error("{0}")]
    Checkpoint(String),
}

/// Progress after each episode.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub phase: &'static str,
}

/// The evaluation seeds the FGD paper reports; never trained or tuned on.
pub const EVALUATION_SEEDS: std::ops::RangeInclusive<u64> = 42..=51;
