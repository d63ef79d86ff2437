//! From the relaxation to concrete nodes and devices: round down, assign within each node
//! class, repair greedily over all nodes, withdraw incomplete gangs, evaluate.

use std::collections::BTreeMap;
use std::time::Instant;

use super::classes::weight;
use super::classes::{NodeClass, node_classes, pod_classes};
use super::explain::explain;
use super::lp::{self, Relaxation, SPREAD_COST, SolveError};
use super::{BatchPod, Method, Objective, Plan, PlanError, PlanOptions, validate};
use crate::model::{Cluster, GpuDemand, Node, Placement};

/// Plan `pods` onto `cluster` (which is not changed).
pub fn plan(
    cluster: &Cluster,
    pods: &[BatchPod],
    options: &PlanOptions,
) -> Result<Plan, PlanError> {
    validate(pods)?;
    if options.time_limit.is_zero() {
        return Err(PlanError::NoTime);
    }
    let started = Instant::now();
    let pod_cls = pod_classes(pods);
    let node_cls = node_classes(cluster);
    let objective = options.objective;
    let greedy = || {
        complete(
            pods,
            cluster,
            cluster.clone(),
            vec![None; pods.len()],
            objective,
            &node_cls,
        )
    };
    let (method, bound, prices, solve_millis, outcome) = if pods.is_empty() {
        (Method::Empty, 0.0, None, 0, greedy())
    } else {
        match lp::solve(
            &pod_cls,
            &node_cls,
            objective,
            options.backend,
            options.time_limit,
        ) {
            Ok(relaxation) => {
                let mut state = cluster.clone();
                let mut placements = vec![None; pods.len()];
                assign_relaxation(
                    &relaxation,
                    &pod_cls,
                    &node_cls,
                    pods,
                    &mut state,
                    &mut placements,
                    objective,
                );
                let guided = complete(pods, cluster, state, placements, objective, &node_cls);
                // Rounding a loose relaxation can lose to plain greedy (shares pack worse
                // into devices than the LP assumes): when something is left unplaced, keep
                // whichever plan is worth more. A plan that places every pod needs no rival.
                let complete_plan = guided.placements.iter().all(Option::is_some);
                let (method, outcome) = match (!complete_plan).then(greedy) {
                    Some(plain) if plain.value > guided.value + 1e-9 => {
                        (Method::GreedyBeatLp, plain)
                    }
                    _ => (Method::Lp, guided),
                };
                (
                    method,
                    relaxation.objective,
                    relaxation.prices,
                    relaxation.millis,
                    outcome,
                )
            }
            Err(err) => {
                let method = match err {
                    SolveError::Timeout => Method::GreedyAfterTimeout,
                    SolveError::Solver(_) => Method::GreedyAfterSolverError,
                };
                let trivial: f64 = pods.iter().map(|p| weight(p.priority)).sum();
                (
                    method,
                    trivial,
                    None,
                    started.elapsed().as_millis() as u64,
                    greedy(),
                )
            }
        }
    };
    let Outcome {
        state,
        placements,
        withdrawn,
        value,
    } = outcome;
    let bound = bound.max(value);
    let reasons = placements
        .iter()
        .enumerate()
        .map(|(i, at)| {
            at.is_none()
                .then(|| explain(cluster, &state, pods, i, &withdrawn))
        })
        .collect();
    Ok(Plan {
        placements,
        reasons,
        value,
        bound,
        gap: if bound.abs() < 1e-12 {
            0.0
        } else {
            ((bound - value) / bound.abs()).max(0.0)
        },
        solve_millis,
        total_millis: started.elapsed().as_millis() as u64,
        backend: options.backend.name(),
        method,
        pod_classes: pod_cls.len(),
        node_classes: node_cls.len(),
        prices,
    })
}

/// A complete plan: placements, the cluster with them applied, withdrawn gangs, value.
struct Outcome {
    state: Cluster,
    placements: Vec<Option<Placement>>,
    withdrawn: BTreeMap<u32, (usize, usize)>,
    value: f64,
}

/// Repair greedily, withdraw incomplete gangs (then repair the others again), evaluate.
fn complete(
    pods: &[BatchPod],
    cluster: &Cluster,
    mut state: Cluster,
    mut placements: Vec<Option<Placement>>,
    objective: Objective,
    node_cls: &[NodeClass],
) -> Outcome {
    repair(pods, &mut state, &mut placements, objective, |_| true);
    let withdrawn = withdraw_incomplete_gangs(pods, cluster, &mut state, &mut placements);
    if !withdrawn.is_empty() {
        repair(pods, &mut state, &mut placements, objective, |p| {
            p.gang.is_none()
        });
    }
    let value = evaluate(pods, &placements, node_cls, &state, objective);
    Outcome {
        state,
        placements,
        withdrawn,
        value,
    }
}

/// Larger pods first: they are the hardest to fit once capacity is fragmented.
fn size_key(pod: &BatchPod) -> (i32, u64, u64, u64) {
    (
        pod.priority,
        pod.demand.gpu.total_milli(),
        pod.demand.cpu_milli,
        pod.demand.memory_bytes,
    )
}

/// How good `node` is for the pod under `objective` (higher is better).
fn preference(node: &Node, pod: &BatchPod, objective: Objective) -> (i64, i64, i64) {
    let gpu_left = i64::from(node.idle_gpu_milli()) - pod.demand.gpu.total_milli() as i64;
    let cpu_left = node.cpu_free as i64 - pod.demand.cpu_milli as i64;
    // Device-level fit: the free milli left on the tightest device that takes a share, or
    // the fully free devices left after taking whole ones (keep large blocks intact).
    let device_left = match pod.demand.gpu {
        GpuDemand::None => 0,
        GpuDemand::Shared { milli } => node
            .gpu_free()
            .iter()
            .map(|&g| i64::from(g) - i64::from(milli))
            .filter(|&left| left >= 0)
            .min()
            .unwrap_or(0),
        GpuDemand::Whole { count } => i64::from(node.full_free_gpus()) - i64::from(count),
    };
    match objective {
        // Best fit: the tightest device, then the least GPU and CPU left on the node.
        Objective::MaxPlaced => (-device_left, -gpu_left, -cpu_left),
        // Pack: prefer nodes already in use, then best fit.
        Objective::Pack => (
            i64::from(!node.is_idle()),
            -device_left,
            -gpu_left * 1_000_000 - cpu_left / 1000,
        ),
        // Spread: most left over.
        Objective::Spread => (gpu_left, cpu_left, device_left),
    }
}

/// Place pod `i` on the best of `candidates`; false when none fits.
fn place_best(
    pods: &[BatchPod],
    i: usize,
    candidates: impl Iterator<Item = usize>,
    state: &mut Cluster,
    placements: &mut [Option<Placement>],
    objective: Objective,
) -> bool {
    let pod = &pods[i];
    let best = candidates
        .filter(|&n| state.nodes()[n].fits(&pod.demand))
        .max_by_key(|&n| {
            (
                preference(&state.nodes()[n], pod, objective),
                std::cmp::Reverse(n),
            )
        });
    let Some(node) = best else { return false };
    let Some(devices) = state.nodes()[node].default_devices(pod.demand.gpu) else {
        return false;
    };
    let at = Placement { node, devices };
    if state.place(&pod.demand, at).is_err() {
        return false;
    }
    placements[i] = Some(at);
    true
}

/// Follow the relaxation: each pod class places round(sum_j x_kj) pods, filling the node
/// classes the LP chose (up to ceil(x_kj) each, in decreasing x_kj) and then any node.
/// Rounding per class rather than per (class, node class) pair loses at most one pod per
/// class to rounding.
fn assign_relaxation(
    relaxation: &Relaxation,
    pod_cls: &[super::PodClass],
    node_cls: &[NodeClass],
    pods: &[BatchPod],
    state: &mut Cluster,
    placements: &mut [Option<Placement>],
    objective: Objective,
) {
    let mut order: Vec<usize> = (0..pod_cls.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(size_key(&pods[pod_cls[k].members[0]])));
    for k in order {
        let mut targets: Vec<(usize, f64)> = relaxation
            .x
            .iter()
            .filter(|(kk, _, _)| *kk == k)
            .map(|(_, j, v)| (*j, *v))
            .collect();
        targets.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total: f64 = targets.iter().map(|t| t.1).sum();
        let want = ((total + 0.5).floor() as usize).min(pod_cls[k].count());
        let mut queue = pod_cls[k].members[..want].iter().copied().peekable();
        let mut spill = Vec::new();
        for (j, value) in targets {
            let room = (value - 1e-6).ceil().max(0.0) as usize;
            for _ in 0..room {
                let Some(i) = queue.next() else { break };
                if !place_best(
                    pods,
                    i,
                    node_cls[j].members.iter().copied(),
                    state,
                    placements,
                    objective,
                ) {
                    spill.push(i);
                    break;
                }
            }
        }
        // Aggregation can over-fill a class; what did not fit goes wherever it fits.
        for i in spill.into_iter().chain(queue) {
            place_best(pods, i, 0..state.len(), state, placements, objective);
        }
    }
}

/// Greedy best fit over all nodes for every unplaced pod that `eligible` accepts, higher
/// priority first and, within a priority, smaller pods first (most pods placed).
fn repair(
    pods: &[BatchPod],
    state: &mut Cluster,
    placements: &mut [Option<Placement>],
    objective: Objective,
    eligible: impl Fn(&BatchPod) -> bool,
) {
    let mut order: Vec<usize> = (0..pods.len())
        .filter(|&i| placements[i].is_none() && eligible(&pods[i]))
        .collect();
    order.sort_by_key(|&i| {
        let (priority, gpu, cpu, memory) = size_key(&pods[i]);
        (std::cmp::Reverse(priority), gpu, cpu, memory)
    });
    let all = 0..state.len();
    for i in order {
        place_best(pods, i, all.clone(), state, placements, objective);
    }
}

/// Remove every placement of a gang that is not completely placed; returns, per withdrawn
/// gang, (how many of its replicas fit the cluster alone, gang size).
fn withdraw_incomplete_gangs(
    pods: &[BatchPod],
    before: &Cluster,
    state: &mut Cluster,
    placements: &mut [Option<Placement>],
) -> BTreeMap<u32, (usize, usize)> {
    let mut gangs: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    for (pod, at) in pods.iter().zip(placements.iter()) {
        if let Some(g) = pod.gang {
            let e = gangs.entry(g).or_default();
            e.1 += 1;
            e.0 += usize::from(at.is_some());
        }
    }
    gangs.retain(|_, (placed, total)| placed < total);
    for (i, pod) in pods.iter().enumerate() {
        if pod.gang.is_some_and(|g| gangs.contains_key(&g))
            && let Some(at) = placements[i].take()
        {
            state.remove(&pod.demand, at);
        }
    }
    for (g, (fit, _)) in gangs.iter_mut() {
        *fit = fit_alone(pods, before, *g);
    }
    gangs
}

/// How many replicas of gang `g` fit `cluster` by greedy best fit, ignoring the rest of the batch.
fn fit_alone(pods: &[BatchPod], cluster: &Cluster, g: u32) -> usize {
    let mut state = cluster.clone();
    let mut placements = vec![None; pods.len()];
    repair(
        pods,
        &mut state,
        &mut placements,
        Objective::MaxPlaced,
        |p| p.gang == Some(g),
    );
    placements.iter().flatten().count()
}

/// The plan's value under the same objective the LP maximised.
fn evaluate(
    pods: &[BatchPod],
    placements: &[Option<Placement>],
    node_cls: &[NodeClass],
    state: &Cluster,
    objective: Objective,
) -> f64 {
    let placed: f64 = pods
        .iter()
        .zip(placements)
        .filter(|(_, at)| at.is_some())
        .map(|(p, _)| weight(p.priority))
        .sum();
    let total_nodes: usize = node_cls.iter().map(NodeClass::count).sum();
    let secondary = match objective {
        Objective::MaxPlaced => 0.0,
        Objective::Pack => {
            let opened = node_cls
                .iter()
                .filter(|c| c.is_idle())
                .flat_map(|c| &c.members)
                .filter(|&&n| !state.nodes()[n].is_idle())
                .count();
            -(opened as f64) / (total_nodes as f64 + 1.0)
        }
        Objective::Spread => {
            let u = node_cls
                .iter()
                .flat_map(|c| {
                    let n = c.count() as f64;
                    let nodes = c.members.iter().map(|&m| &state.nodes()[m]);
                    let cpu: f64 = nodes.clone().map(Node::cpu_used_fraction).sum();
                    let gpu: f64 = nodes.map(Node::gpu_used_fraction).sum();
                    [cpu / n, gpu / n]
                })
                .fold(0.0, f64::max);
            SPREAD_COST * u
        }
    };
    placed + secondary
}
