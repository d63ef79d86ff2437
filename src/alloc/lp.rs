//! The LP of the module doc, built with good_lp and solved by the chosen backend.
//! Rows are scaled per node so every coefficient is a fraction of one node's free resource.

use std::time::{Duration, Instant};

use good_lp::solvers::{DualValues, SolutionWithDual, WithTimeLimit};
use good_lp::{
    Constraint, Expression, ProblemVariables, ResolutionError, Solution, SolverModel, Variable,
    constraint::ConstraintReference, variable,
};

use super::classes::{NodeClass, PodClass};
use super::{ClassPrices, Objective};

/// The LP solver. All backends solve the same relaxation; they differ in speed, build cost
/// and whether they report duals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Clarabel (pure Rust interior point): reports duals. The default.
    #[default]
    Clarabel,
    /// microlp (pure Rust simplex): no duals.
    Microlp,
    /// HiGHS (C++, the strongest open-source solver): reports duals. Needs the `highs` feature.
    #[cfg(feature = "highs")]
    Highs,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Clarabel => "clarabel",
            Backend::Microlp => "microlp",
            #[cfg(feature = "highs")]
            Backend::Highs => "highs",
        }
    }

    pub fn all() -> Vec<Backend> {
        vec![
            Backend::Clarabel,
            Backend::Microlp,
            #[cfg(feature = "highs")]
            Backend::Highs,
        ]
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::all()
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Backend::all().iter().map(|b| b.name()).collect();
                format!(
                    "unknown LP backend {s:?}; available in this build: {}",
                    names.join(", ")
                )
            })
    }
}

/// The relaxation's optimum.
#[derive(Debug, Clone)]
pub struct Relaxation {
    /// `(pod class, node class, x_kj)` for every variable with a positive value.
    pub x: Vec<(usize, usize, f64)>,
    pub objective: f64,
    pub prices: Option<Vec<ClassPrices>>,
    pub millis: u64,
}

/// Why the relaxation has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SolveError {
    #[error("the LP solver ran past the time limit")]
    Timeout,
    #[error("the LP solver failed: {0}")]
    Solver(String),
}

/// Objective coefficient of the spread term `u` (max utilisation): below one pod's weight.
pub const SPREAD_COST: f64 = -0.5;

/// A pod class's request of one resource.
type Request = fn(&PodClass) -> f64;

/// Rows whose duals become prices: per node class, (cpu, memory, gpu milli, devices).
#[derive(Default)]
struct PriceRows {
    rows: Vec<[Option<ConstraintReference>; 4]>,
}

/// The model in backend-neutral form.
struct Model {
    vars: ProblemVariables,
    x: Vec<(usize, usize, Variable)>,
    objective: Expression,
    /// Secondary objective terms (variable, coefficient), for reporting the objective value.
    secondary: Vec<(Variable, f64)>,
    rows: Vec<(Option<(usize, usize)>, Constraint)>,
}

fn build(pods: &[PodClass], nodes: &[NodeClass], objective: Objective) -> Model {
    let mut vars = ProblemVariables::new();
    let mut x = Vec::new();
    let mut obj = Expression::default();
    let total_nodes: usize = nodes.iter().map(NodeClass::count).sum();
    for (k, pod) in pods.iter().enumerate() {
        for (j, node) in nodes.iter().enumerate() {
            if !node.admits(&pod.demand) {
                continue;
            }
            let slots = node
                .device_slots(pod.demand.gpu)
                .saturating_mul(node.count() as u64);
            let upper = (pod.count() as u64).min(slots) as f64;
            let v = vars.add(variable().min(0.0).max(upper));
            obj += pod.weight * v;
            x.push((k, j, v));
        }
    }
    let mut rows: Vec<(Option<(usize, usize)>, Constraint)> = Vec::new();
    let mut secondary = Vec::new();
    // Pack: idle classes open z_j <= M_j nodes, each costing less than one pod in total.
    let opened: Vec<Option<Variable>> = nodes
        .iter()
        .map(|n| {
            (objective == Objective::Pack && n.is_idle()).then(|| {
                let z = vars.add(variable().min(0.0).max(n.count() as f64));
                let cost = -1.0 / (total_nodes as f64 + 1.0);
                obj += cost * z;
                secondary.push((z, cost));
                z
            })
        })
        .collect();
    let spread = (objective == Objective::Spread).then(|| {
        let u = vars.add(variable().min(0.0).max(1.0));
        obj += SPREAD_COST * u;
        secondary.push((u, SPREAD_COST));
        u
    });
    for (j, class) in nodes.iter().enumerate() {
        let m = class.count() as f64;
        let open: Expression = match opened[j] {
            Some(z) => z.into(),
            None => Expression::from(m),
        };
        let on_j: Vec<&(usize, usize, Variable)> = x.iter().filter(|(_, jj, _)| *jj == j).collect();
        let devices_over = |t: u16| class.gpu_free.iter().filter(|&&g| g > t).count() as f64;
        let resources: [(usize, f64, Request); 6] = [
            (0, class.node.cpu_free as f64, |p| p.demand.cpu_milli as f64),
            (1, class.node.memory_free as f64, |p| {
                p.demand.memory_bytes as f64
            }),
            (2, class.idle_milli() as f64, |p| {
                p.demand.gpu.total_milli() as f64
            }),
            (3, class.full_free() as f64, |p| match p.demand.gpu {
                crate::model::GpuDemand::Whole { count } => f64::from(count),
                _ => 0.0,
            }),
            // Valid inequalities for packing shares into devices (dual feasible functions):
            // no device holds two pods needing more than half of one GPU, and weighting pods
            // by 1 above 2/3 of a GPU and 1/2 above 1/3, no device holds more than 1.
            (4, devices_over(500), |p| {
                per_device(p, |m| if m > 500 { 1.0 } else { 0.0 })
            }),
            (5, devices_over(333), |p| {
                per_device(p, |m| match m {
                    667.. => 1.0,
                    334..=666 => 0.5,
                    _ => 0.0,
                })
            }),
        ];
        for (r, free, request) in resources {
            let mut lhs = Expression::default();
            let mut any = false;
            for (k, _, v) in &on_j {
                let need = request(&pods[*k]);
                if need > 0.0 {
                    // Scaled by the node's free amount (admits() guarantees free >= need > 0).
                    lhs += (need / free) * *v;
                    any = true;
                }
            }
            if any {
                let tag = (r < 4).then_some((j, r));
                rows.push((tag, (lhs - open.clone()).leq(0.0)));
            }
        }
        if let Some(u) = spread {
            for (cap, used, request) in [
                (
                    class.node.cpu_capacity as f64,
                    class.node.cpu_used_fraction(),
                    (|p: &PodClass| p.demand.cpu_milli as f64) as fn(&PodClass) -> f64,
                ),
                (
                    class.node.gpu_count() as f64 * 1000.0,
                    class.node.gpu_used_fraction(),
                    |p: &PodClass| p.demand.gpu.total_milli() as f64,
                ),
            ] {
                if cap <= 0.0 {
                    continue;
                }
                let mut lhs = Expression::default();
                for (k, _, v) in &on_j {
                    lhs += (request(&pods[*k]) / cap) * *v;
                }
                rows.push((None, (lhs - m * u).leq(-m * used)));
            }
        }
    }
    // Counts and gangs.
    let mut gang_vars: Vec<(u32, Variable)> = Vec::new();
    for (k, pod) in pods.iter().enumerate() {
        let mut placed = Expression::default();
        for (_, _, v) in x.iter().filter(|(kk, _, _)| *kk == k) {
            placed += *v;
        }
        let n = pod.count() as f64;
        match pod.gang {
            None => rows.push((None, placed.leq(n))),
            Some(g) => {
                let y = match gang_vars.iter().find(|(id, _)| *id == g) {
                    Some((_, y)) => *y,
                    None => {
                        let y = vars.add(variable().min(0.0).max(1.0));
                        gang_vars.push((g, y));
                        y
                    }
                };
                rows.push((None, (placed - n * y).eq(0.0)));
            }
        }
    }
    Model {
        vars,
        x,
        objective: obj,
        secondary,
        rows,
    }
}

/// `f(per-device milli)` times the devices a pod of the class takes.
fn per_device(p: &PodClass, f: impl Fn(u32) -> f64) -> f64 {
    f(p.demand.gpu.per_gpu_milli()) * f64::from(p.demand.gpu.num_gpu())
}

/// Solve the relaxation within `limit`.
pub fn solve(
    pods: &[PodClass],
    nodes: &[NodeClass],
    objective: Objective,
    backend: Backend,
    limit: Duration,
) -> Result<Relaxation, SolveError> {
    let started = Instant::now();
    let model = build(pods, nodes, objective);
    let seconds = limit.as_secs_f64().max(1e-3);
    let problem = model.vars.maximise(model.objective);
    let mut refs = PriceRows {
        rows: (0..nodes.len()).map(|_| [None, None, None, None]).collect(),
    };
    macro_rules! add_rows {
        ($m:expr) => {
            for (tag, row) in model.rows {
                let r = $m.add_constraint(row);
                if let Some((j, kind)) = tag {
                    refs.rows[j][kind] = Some(r);
                }
            }
        };
    }
    let (values, prices) = match backend {
        Backend::Clarabel => {
            let mut m = problem.using(good_lp::clarabel);
            m.settings().time_limit(seconds);
            add_rows!(m);
            let mut solution = m.solve().map_err(map_error)?;
            let values = read(&model.x, &model.secondary, &solution);
            let duals = solution.compute_dual();
            (values, Some(prices_from(&refs, nodes, |r| duals.dual(r))))
        }
        Backend::Microlp => {
            let mut m = problem.using(good_lp::microlp).with_time_limit(seconds);
            add_rows!(m);
            let solution = m.solve().map_err(map_error)?;
            (read(&model.x, &model.secondary, &solution), None)
        }
        #[cfg(feature = "highs")]
        Backend::Highs => {
            let mut m = problem.using(good_lp::highs).set_time_limit(seconds);
            add_rows!(m);
            let mut solution = m.solve().map_err(map_error)?;
            let values = read(&model.x, &model.secondary, &solution);
            let duals = solution.compute_dual();
            (values, Some(prices_from(&refs, nodes, |r| duals.dual(r))))
        }
    };
    if started.elapsed() > limit {
        return Err(SolveError::Timeout);
    }
    let (values, secondary) = values;
    let objective_value: f64 = values
        .iter()
        .map(|(k, _, v)| pods[*k].weight * v)
        .sum::<f64>()
        + secondary;
    Ok(Relaxation {
        x: values.into_iter().filter(|(_, _, v)| *v > 1e-9).collect(),
        objective: objective_value,
        prices,
        millis: started.elapsed().as_millis() as u64,
    })
}

/// The x values, and the secondary objective terms' contribution.
fn read(
    x: &[(usize, usize, Variable)],
    secondary: &[(Variable, f64)],
    solution: &impl Solution,
) -> (Vec<(usize, usize, f64)>, f64) {
    let values = x
        .iter()
        .map(|(k, j, v)| (*k, *j, solution.value(*v).max(0.0)))
        .collect();
    let extra = secondary.iter().map(|(v, c)| c * solution.value(*v)).sum();
    (values, extra)
}

fn prices_from(
    refs: &PriceRows,
    nodes: &[NodeClass],
    dual: impl Fn(ConstraintReference) -> f64,
) -> Vec<ClassPrices> {
    nodes
        .iter()
        .zip(&refs.rows)
        .map(|(class, rows)| {
            // Rows are scaled by the node's free amount: undo it to get a price per unit.
            let price = |r: usize, free: f64| {
                rows[r]
                    .as_ref()
                    .map_or(0.0, |c| (dual(c.clone()) / free.max(1.0)).abs())
            };
            ClassPrices {
                nodes: class.members.clone(),
                cpu_per_milli: price(0, class.node.cpu_free as f64),
                memory_per_byte: price(1, class.node.memory_free as f64),
                gpu_per_milli: price(2, class.idle_milli() as f64),
                per_device: price(3, class.full_free() as f64),
            }
        })
        .collect()
}

fn map_error(e: ResolutionError) -> SolveError {
    match e {
        ResolutionError::Other(msg) if msg.contains("Time limit") => SolveError::Timeout,
        other => SolveError::Solver(other.to_string()),
    }
}
