//! The policy search's other setting (`allot train --dynamic`): a candidate scored by the
//! dynamic replay of `allot simulate --dynamic` (`sim::dynamic`: time order, departures, a FIFO
//! wait queue) instead of the static replay, on the same node subset and jobs per seed
//! (`sim::dynamic::seed_jobs`), with the same `Placer`, decider and learned policy.
//!
//! The objective is the **failed GPU %**: the GPU request of the pods that timed out in the
//! queue (or that no node could ever hold), as % of all the GPU the trace requests. It mirrors
//! the static protocol's unallocated GPU % at 100 % arrived: both count the GPU demand a
//! policy's packing left unserved when the cluster is full, lower is better, and it is the
//! figure BENCHMARKS.md §11 reports for every trace. The allocation at the last arrival, the
//! other busy-end figure there, moves with it (a pod that fails is a pod not running) but is
//! a single instant of a step function, so it is noisier per replay.

use std::sync::Arc;

use super::super::Trace;
use crate::policy::PolicyKind;
use crate::policy::learned::PolicyFile;
use crate::sim::dynamic::{
    DynamicSetup, Load, LoadError, MaxWait, RunSummary, replay_dynamic, seed_jobs,
};
use crate::sim::experiment::Workload;
use crate::sim::replay::{ReplayOptions, context};
use crate::sim::trace::times::Lifetime;

/// The failed GPU % a replay that cannot be made scores: the worst there is. [`check`] refuses
/// such a run before training starts, so no candidate meets it.
const UNREPLAYABLE: f64 = 100.0;

/// The dynamic setting a search scores candidates in.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicSetting {
    /// Time compression and node subset, as `allot simulate --time-scale/--nodes-fraction`.
    pub load: Load,
    pub max_wait: MaxWait,
    /// Times drawn from for a trace without its own (the embedded openb default's), as
    /// `allot simulate --dynamic` does.
    pub donor: Arc<Vec<Lifetime>>,
}

impl DynamicSetting {
    /// Provenance and checkpoint hyperparameters naming the setting: a policy file says
    /// where it was searched, and a checkpoint of one setting never resumes in another.
    pub fn hyperparameters(&self) -> Vec<(String, f64)> {
        let wait_s = match self.max_wait {
            MaxWait::Millis(ms) => ms as f64 / 1000.0,
            // -1: no timeout (`--max-wait none`).
            MaxWait::Forever => -1.0,
        };
        vec![
            ("dynamic_time_scale".into(), self.load.time_scale),
            ("dynamic_nodes_fraction".into(), self.load.nodes_fraction),
            ("dynamic_max_wait_s".into(), wait_s),
            // 1: the objective is failed GPU % (the only one so far).
            ("dynamic_objective_failed_gpu_pct".into(), 1.0),
        ]
    }

    /// The setting in words, for the provenance's phases.
    pub fn describe(&self) -> String {
        let wait = match self.max_wait {
            MaxWait::Millis(ms) => format!("{} s", ms / 1000),
            MaxWait::Forever => "none".into(),
        };
        format!(
            "policy search and validation scored by dynamic replay: failed GPU %, time scale \
             {}, nodes fraction {}, max wait {wait}",
            self.load.time_scale, self.load.nodes_fraction
        )
    }

    /// The load in range, and every trace replayable (times for every pod, or a donor).
    pub fn check(&self, traces: &[Trace]) -> Result<(), LoadError> {
        self.load.validate()?;
        for t in traces {
            if let Some(times) = &t.lifetimes
                && times.len() != t.pods.len()
            {
                return Err(LoadError::Mismatch {
                    pods: t.pods.len(),
                    times: times.len(),
                });
            }
            if t.lifetimes.is_none() && self.donor.is_empty() {
                return Err(LoadError::NoDonor);
            }
        }
        Ok(())
    }
}

/// Failed GPU % of `file`'s policy in one dynamic replay of `trace` with `seed`: the same
/// subset, jobs, tie order and decisions as `allot simulate --dynamic --policy learned
/// --policy-file` with that seed.
pub fn score(trace: &Trace, file: &PolicyFile, seed: u64, setting: &DynamicSetting) -> f64 {
    let setup = DynamicSetup {
        workload: Workload {
            cluster: &trace.cluster,
            pods: &trace.pods,
            specs: &[],
        },
        lifetimes: trace.lifetimes.as_deref(),
        donor: &setting.donor,
        load: setting.load,
        max_wait: setting.max_wait,
        options: ReplayOptions::default(),
    };
    let Ok((cluster, jobs)) = seed_jobs(&setup, seed) else {
        return UNREPLAYABLE;
    };
    let ctx = context(&cluster, &trace.target, seed);
    let ctx = Arc::new((*ctx).clone().with_learned(Some(Arc::new(file.clone()))));
    let mut policy = PolicyKind::Learned.build_for(&ctx);
    let out = replay_dynamic(
        &cluster,
        &jobs,
        policy.as_mut(),
        ctx,
        &setup.options,
        setup.max_wait,
    );
    let requested: u64 = trace.pods.iter().map(|p| p.gpu.total_milli()).sum();
    let capacity = cluster.gpu_capacity_milli();
    RunSummary::of(&out, jobs.len(), requested, capacity).failed_gpu_pct
}
