//! LP allocation: plan a whole batch of pods onto a cluster at once (a ScheduleRequest, the
//! pending queue, or a trace window for the simulator's offline bound).
//!
//! # Formulation
//!
//! Pods are aggregated into classes k (identical demand, priority and gang; `n_k` pods) and
//! nodes into classes j (identical free CPU, memory, model and device free-milli multiset;
//! `M_j` nodes). A variable `x_kj >= 0` counts the pods of k placed on class j; it exists
//! only where one pod of k fits one node of j (model allowed, enough CPU, memory and a
//! device layout that holds it). With `c_k, m_k` the CPU and memory request, `g_k` the total
//! GPU milli, `d_k` the whole devices, and per node of j the free `C_j, R_j, U_j` (idle
//! milli) and `F_j` (fully free devices):
//!
//! ```text
//! cpu        sum_k c_k x_kj          <= C_j * M_j            (for every j)
//! memory     sum_k m_k x_kj          <= R_j * M_j
//! gpu milli  sum_k g_k x_kj          <= U_j * M_j
//! devices    sum_k d_k x_kj          <= F_j * M_j            (whole-GPU pods need free devices)
//! layout     x_kj <= slots_kj * M_j  (slots: how many k fit one node's devices, e.g. F_j / d_k)
//! count      sum_j x_kj <= n_k       (no gang)
//! gang       sum_j x_kj  = n_k * y_g, 0 <= y_g <= 1   (every class k of gang g)
//! ```
//!
//! The objective always puts placement first, weighting each pod by `w_k = 1 + max(priority, 0)`:
//!
//! * `max-placed`: maximise `sum w_k x_kj`.
//! * `pack`: the same minus `sum_j z_j / (N + 1)`, where `z_j <= M_j` counts the idle nodes of
//!   class j that are opened (capacity rows of idle classes use `z_j` instead of `M_j`), so
//!   fewer nodes are touched; the penalty stays below one pod.
//! * `spread`: the same minus `u / 2`, where `u` bounds every class's post-placement CPU and
//!   GPU utilisation (`used_j + sum_k r_k x_kj / M_j <= u * cap_j`), balancing the load.
//!
//! The relaxation's optimum is an upper bound on any integral plan. The plan rounds `x_kj`
//! down, assigns the pods to concrete nodes and devices of each class (best fit, first fit
//! for `pack`, least loaded for `spread`), places what is left with a greedy best-fit pass
//! over all nodes, and finally withdraws any gang that is not complete. Every placement goes
//! through [`Node::assign`](crate::model::Node::assign), so no plan exceeds a capacity.
//! The gap is `(bound - value) / bound` with both sides evaluated by the same objective.
//! A wall-clock limit always applies; past it the greedy plan is returned and says so.
//! Duals of the capacity rows (shadow prices per node class and resource) are exported for
//! online scoring when the backend provides them.

mod assign;
mod bound;
mod classes;
mod devices;
mod explain;
mod lp;
mod prices;

use std::time::Duration;

pub use bound::{OfflineBound, offline_bound};
pub use classes::{NodeClass, PodClass};
pub use devices::device_bound;
pub use lp::{Backend, SolveError};
pub use prices::{PriceBook, price};

use crate::model::{Placement, PodDemand};

/// Largest request a quantity may carry into the LP: f64 holds integers exactly up to 2^53.
pub const MAX_QUANTITY: u64 = 1 << 53;
/// Default wall-clock limit of one plan.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(2);

/// One pod of a batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchPod {
    pub demand: PodDemand,
    pub priority: i32,
    /// Pods with the same gang id are placed all together or not at all.
    pub gang: Option<u32>,
    /// Placed only with what every other pod of the batch leaves (an elastic task's
    /// replicas above its minimum): all of them together weigh less than one other pod.
    pub elastic: bool,
}

/// What the plan optimises after placing as much (priority-weighted) as possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Objective {
    #[default]
    MaxPlaced,
    Pack,
    Spread,
}

/// Options of one plan.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    pub objective: Objective,
    pub backend: Backend,
    pub time_limit: Duration,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            objective: Objective::MaxPlaced,
            backend: Backend::default(),
            time_limit: DEFAULT_TIME_LIMIT,
        }
    }
}

/// Shadow prices of one node class: the objective gained per extra unit of each resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassPrices {
    /// Cluster node indices of the class.
    pub nodes: Vec<usize>,
    pub cpu_per_milli: f64,
    pub memory_per_byte: f64,
    pub gpu_per_milli: f64,
    pub per_device: f64,
}

/// How the plan was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// LP relaxation, rounding, greedy repair.
    Lp,
    /// The LP was solved, but plain greedy best fit gave a better plan, which is returned.
    GreedyBeatLp,
    /// The LP did not finish within the time limit (or failed); greedy best fit only.
    GreedyAfterTimeout,
    /// The LP solver reported an error; greedy best fit only.
    GreedyAfterSolverError,
    /// Nothing to plan.
    Empty,
}

/// The result of planning a batch.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Per batch pod: where it goes, or None.
    pub placements: Vec<Option<Placement>>,
    /// Per batch pod: why it is not placed (None when placed).
    pub reasons: Vec<Option<String>>,
    /// The plan's value under the objective.
    pub value: f64,
    /// Upper bound on any plan's value (the LP relaxation, or the trivial bound).
    pub bound: f64,
    /// `(bound - value) / bound`, 0 when the bound is 0.
    pub gap: f64,
    pub solve_millis: u64,
    pub total_millis: u64,
    pub backend: &'static str,
    pub method: Method,
    pub pod_classes: usize,
    pub node_classes: usize,
    pub prices: Option<Vec<ClassPrices>>,
}

impl Plan {
    pub fn placed(&self) -> usize {
        self.placements.iter().flatten().count()
    }
}

/// Why a batch cannot be planned at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("pod {index}: {what} request {value} exceeds the largest supported quantity (2^53)")]
    TooLarge {
        index: usize,
        what: &'static str,
        value: u64,
    },
    #[error("the time limit must be positive")]
    NoTime,
}

impl PlanError {
    /// Bounded reason for conditions and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PlanError::TooLarge { .. } => "QuantityTooLarge",
            PlanError::NoTime => "InvalidTimeLimit",
        }
    }
}

/// Reject quantities the solver cannot represent exactly, before it sees them.
pub fn validate(pods: &[BatchPod]) -> Result<(), PlanError> {
    for (index, pod) in pods.iter().enumerate() {
        for (what, value) in [
            ("cpu", pod.demand.cpu_milli),
            ("memory", pod.demand.memory_bytes),
        ] {
            if value > MAX_QUANTITY {
                return Err(PlanError::TooLarge { index, what, value });
            }
        }
    }
    Ok(())
}

pub use assign::plan;

#[cfg(test)]
mod tests;
