//! Shadow prices for online scoring: how the LP allocation enters a single pod's decision.
//!
//! The question the prices answer: if the pods still to come look like the recent arrivals,
//! which resource of which kind of node runs out first? A small fluid LP asks it. Nodes are
//! grouped by hardware (GPU model, GPU count, CPU and memory capacity) and each group offers
//! the sum of its members' free CPU, memory, idle GPU milli and fully free devices. The recent
//! arrivals, grouped by demand, are scaled so that their GPU request equals the cluster's idle
//! GPU ([`FILL`] times it), and the LP places as much GPU as it can (one GPU = 1, plus
//! [`POD_VALUE`] per pod so that CPU-only pods count a little):
//!
//! ```text
//! max  sum_kj w_k x_kj
//! s.t. sum_k r_k x_kj <= R_j      for r in cpu, memory, gpu milli, whole devices; every group j
//!      x_kj <= slots_kj            (devices that hold one pod of k, summed over j's members)
//!      sum_j x_kj <= n_k           (the scaled recent demand of class k)
//! ```
//!
//! The duals of the four capacity rows of group j are its prices: GPUs of placement lost per
//! unit of each resource taken there. [`PriceBook::cost`] prices one pod on one node, the
//! opportunity cost the learned policy's `lp_price_cost` feature reads. The LP has a few dozen
//! groups whatever the cluster's size, so it solves in milliseconds; callers re-solve it every
//! so many arrivals (the simulator) or seconds (the extender), off the decision path.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use good_lp::solvers::{DualValues, SolutionWithDual};
use good_lp::variable;
use good_lp::{Expression, ProblemVariables, SolverModel, constraint::ConstraintReference};

use super::lp::SolveError;
use crate::model::{Cluster, GpuDemand, ModelId, Node, PodDemand};

/// The recent demand is scaled to this multiple of the cluster's idle GPU.
pub const FILL: f64 = 1.0;
/// Objective value of placing one pod, on top of its GPUs.
pub const POD_VALUE: f64 = 0.01;

/// Hardware group key: model, GPU count, CPU capacity, memory capacity.
type GroupKey = (Option<ModelId>, usize, u64, u64);

/// No group: a node whose hardware the book has not priced.
const NO_GROUP: u32 = u32::MAX;

/// Prices per hardware group, and each node's group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceBook {
    /// Per cluster node index: its group ([`NO_GROUP`] for hardware not priced).
    group_of: Vec<u32>,
    /// Per group: its hardware.
    keys: Vec<GroupKey>,
    /// Per group: price per CPU milli, per memory byte, per GPU milli, per whole device.
    prices: Vec<[f64; 4]>,
    /// Wall time of the solve.
    pub millis: u64,
}

impl PriceBook {
    /// The opportunity cost, in GPUs of placement, of putting `pod` on node `node`: what its
    /// CPU, memory, GPU milli and whole devices are worth on that node's hardware. 0 for a node
    /// the book does not know (one added since it was solved).
    pub fn cost(&self, node: usize, pod: &PodDemand) -> f64 {
        let Some(p) = self
            .group_of
            .get(node)
            .and_then(|&g| self.prices.get(g as usize))
        else {
            return 0.0;
        };
        let devices = match pod.gpu {
            GpuDemand::Whole { count } => f64::from(count),
            _ => 0.0,
        };
        p[0] * pod.cpu_milli as f64
            + p[1] * pod.memory_bytes as f64
            + p[2] * pod.gpu.total_milli() as f64
            + p[3] * devices
    }

    /// The same prices indexed by the nodes of `cluster` (another snapshot of the cluster, whose
    /// nodes may have come, gone or moved): a node gets its hardware group's prices, or none.
    pub fn for_cluster(&self, cluster: &Cluster) -> PriceBook {
        let index: HashMap<GroupKey, u32> = self
            .keys
            .iter()
            .enumerate()
            .map(|(g, k)| (*k, g as u32))
            .collect();
        PriceBook {
            group_of: cluster
                .nodes()
                .iter()
                .map(|n| index.get(&key(n)).copied().unwrap_or(NO_GROUP))
                .collect(),
            keys: self.keys.clone(),
            prices: self.prices.clone(),
            millis: self.millis,
        }
    }

    /// Number of hardware groups priced.
    pub fn groups(&self) -> usize {
        self.prices.len()
    }

    /// Group `g`'s prices (CPU milli, memory byte, GPU milli, device).
    pub fn group_prices(&self, g: usize) -> Option<[f64; 4]> {
        self.prices.get(g).copied()
    }
}

/// One hardware group: a representative node's capacity and the members' summed free state.
struct Group {
    model: Option<ModelId>,
    gpus: usize,
    cpu_capacity: u64,
    memory_capacity: u64,
    free: [f64; 4],
    /// Per device free milli of every member (for share slots), and full devices per member.
    device_free: Vec<u16>,
    full_per_member: Vec<u32>,
}

impl Group {
    fn admits(&self, pod: &PodDemand) -> bool {
        let model_ok = pod.models.is_any() || pod.models.allows(self.model);
        model_ok
            && pod.cpu_milli <= self.cpu_capacity
            && pod.memory_bytes <= self.memory_capacity
            && pod.gpu.num_gpu() as usize <= self.gpus
    }

    /// How many pods of `gpu` the members' devices hold at most.
    fn slots(&self, gpu: GpuDemand) -> f64 {
        match gpu {
            GpuDemand::None => f64::INFINITY,
            GpuDemand::Shared { milli } => self
                .device_free
                .iter()
                .map(|&f| f64::from(u32::from(f) / milli.max(1)))
                .sum(),
            GpuDemand::Whole { count } => self
                .full_per_member
                .iter()
                .map(|&f| f64::from(f / count.max(1)))
                .sum(),
        }
    }
}

fn key(node: &Node) -> GroupKey {
    (
        node.model,
        node.gpu_count(),
        node.cpu_capacity,
        node.memory_capacity,
    )
}

fn groups(cluster: &Cluster) -> (Vec<u32>, Vec<GroupKey>, Vec<Group>) {
    let mut index: HashMap<GroupKey, u32> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut keys = Vec::new();
    let mut group_of = Vec::with_capacity(cluster.len());
    for node in cluster.nodes() {
        let g = *index.entry(key(node)).or_insert_with(|| {
            keys.push(key(node));
            groups.push(Group {
                model: node.model,
                gpus: node.gpu_count(),
                cpu_capacity: node.cpu_capacity,
                memory_capacity: node.memory_capacity,
                free: [0.0; 4],
                device_free: Vec::new(),
                full_per_member: Vec::new(),
            });
            (groups.len() - 1) as u32
        });
        add(&mut groups[g as usize], node);
        group_of.push(g);
    }
    (group_of, keys, groups)
}

fn add(group: &mut Group, node: &Node) {
    group.free[0] += node.cpu_free as f64;
    group.free[1] += node.memory_free as f64;
    group.free[2] += f64::from(node.idle_gpu_milli());
    group.free[3] += f64::from(node.full_free_gpus());
    group.device_free.extend_from_slice(node.gpu_free());
    group.full_per_member.push(node.full_free_gpus());
}

/// A pod's request of resource `r` (the order of [`PriceBook`]'s prices).
fn request(pod: &PodDemand, r: usize) -> f64 {
    match r {
        0 => pod.cpu_milli as f64,
        1 => pod.memory_bytes as f64,
        2 => pod.gpu.total_milli() as f64,
        _ => match pod.gpu {
            GpuDemand::Whole { count } => f64::from(count),
            _ => 0.0,
        },
    }
}

/// Solve the pricing LP of `cluster` for the demand mix of `recent` within `limit`. An empty
/// window, or one that asks for no GPU, prices everything at 0.
pub fn price(
    cluster: &Cluster,
    recent: &[PodDemand],
    limit: Duration,
) -> Result<PriceBook, SolveError> {
    let started = Instant::now();
    let (group_of, keys, groups) = groups(cluster);
    let mut book = PriceBook {
        group_of,
        keys,
        prices: vec![[0.0; 4]; groups.len()],
        millis: 0,
    };
    let mut classes: Vec<(PodDemand, f64)> = Vec::new();
    let mut index: HashMap<PodDemand, usize> = HashMap::new();
    for pod in recent {
        let k = *index.entry(*pod).or_insert_with(|| {
            classes.push((*pod, 0.0));
            classes.len() - 1
        });
        classes[k].1 += 1.0;
    }
    let asked: f64 = classes
        .iter()
        .map(|(p, n)| p.gpu.total_milli() as f64 * n)
        .sum();
    let idle: f64 = groups.iter().map(|g| g.free[2]).sum();
    if asked <= 0.0 || idle <= 0.0 {
        return Ok(book);
    }
    let scale = FILL * idle / asked;
    let mut vars = ProblemVariables::new();
    let mut x = Vec::new();
    let mut objective = Expression::default();
    for (k, (pod, n)) in classes.iter().enumerate() {
        for (j, group) in groups.iter().enumerate() {
            // A class the group cannot hold one pod of (in its sum) gets no variable there.
            let short = (0..4).any(|r| request(pod, r) > group.free[r]);
            if !group.admits(pod) || short {
                continue;
            }
            let upper = (n * scale).min(group.slots(pod.gpu));
            if upper <= 0.0 {
                continue;
            }
            let v = vars.add(variable().min(0.0).max(upper));
            objective += (pod.gpu.total_milli() as f64 / 1000.0 + POD_VALUE) * v;
            x.push((k, j, v));
        }
    }
    let mut model = vars.maximise(objective).using(good_lp::clarabel);
    model.settings().time_limit(limit.as_secs_f64().max(1e-3));
    let mut rows: Vec<(usize, usize, ConstraintReference)> = Vec::new();
    for (j, group) in groups.iter().enumerate() {
        for r in 0..4 {
            let mut lhs = Expression::default();
            let mut any = false;
            for (k, _, v) in x.iter().filter(|(_, jj, _)| *jj == j) {
                let need = request(&classes[*k].0, r);
                if need > 0.0 {
                    // Scaled by the group's free amount, so every coefficient is a fraction.
                    lhs += (need / group.free[r].max(1.0)) * *v;
                    any = true;
                }
            }
            if any {
                rows.push((j, r, model.add_constraint(lhs.leq(1.0))));
            }
        }
    }
    for (k, (_, n)) in classes.iter().enumerate() {
        let mut placed = Expression::default();
        for (_, _, v) in x.iter().filter(|(kk, _, _)| *kk == k) {
            placed += *v;
        }
        model.add_constraint(placed.leq(n * scale));
    }
    let mut solution = model
        .solve()
        .map_err(|e| SolveError::Solver(e.to_string()))?;
    let duals = solution.compute_dual();
    for (j, r, row) in rows {
        book.prices[j][r] = duals.dual(row).abs() / groups[j].free[r].max(1.0);
    }
    if started.elapsed() > limit {
        return Err(SolveError::Timeout);
    }
    book.millis = started.elapsed().as_millis() as u64;
    Ok(book)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelCatalog;

    const GIB: u64 = 1 << 30;

    /// Two kinds of 8-GPU node: `thin` has 16 cores, `fat` 128.
    fn cluster(thin: usize, fat: usize) -> Cluster {
        let mut models = ModelCatalog::default();
        let a100 = models.intern("A100").unwrap();
        let mut nodes = Vec::new();
        for i in 0..thin {
            nodes.push(Node::new(format!("thin-{i}"), 16_000, 512 * GIB, 8, Some(a100)).unwrap());
        }
        for i in 0..fat {
            nodes.push(Node::new(format!("fat-{i}"), 128_000, 512 * GIB, 8, Some(a100)).unwrap());
        }
        Cluster::new(models, nodes)
    }

    fn gpu_pod(cpu_milli: u64) -> PodDemand {
        PodDemand {
            cpu_milli,
            memory_bytes: GIB,
            gpu: GpuDemand::Whole { count: 1 },
            models: crate::model::ModelSet::ANY,
        }
    }

    #[test]
    fn cpu_is_priced_where_it_runs_out_first() {
        // Pods of 8 cores per GPU: a thin node's 16 cores hold two of its eight GPUs' pods,
        // so its CPU binds and its GPUs are worth little; a fat node's GPUs bind.
        let c = cluster(4, 4);
        let book = price(&c, &vec![gpu_pod(8_000); 50], Duration::from_secs(2)).unwrap();
        assert_eq!(book.groups(), 2);
        let thin = book.group_prices(0).unwrap();
        let fat = book.group_prices(1).unwrap();
        assert!(thin[0] > 1e-6, "thin CPU is scarce: {thin:?}");
        // The fat nodes' GPUs bind (their worth is shared between the GPU milli and device
        // rows and the bound on device slots: the LP is degenerate there); their CPU does not.
        assert!(fat[0] < 1e-9, "{fat:?}");
        assert!(fat[2] * 1000.0 + fat[3] > 0.5, "{fat:?}");
        let pod = gpu_pod(8_000);
        assert!(book.cost(4, &pod) > 0.5, "{}", book.cost(4, &pod));
        assert!(book.cost(0, &pod) > 0.0);
    }

    #[test]
    fn no_gpu_demand_or_no_idle_gpu_prices_nothing() {
        let c = cluster(2, 2);
        let cpu_only = PodDemand {
            gpu: GpuDemand::None,
            ..gpu_pod(1_000)
        };
        for window in [Vec::new(), vec![cpu_only; 10]] {
            let book = price(&c, &window, Duration::from_secs(2)).unwrap();
            assert_eq!(book.cost(0, &gpu_pod(8_000)), 0.0);
        }
    }

    #[test]
    fn a_book_follows_the_nodes_to_another_snapshot_by_hardware() {
        let c = cluster(4, 4);
        let book = price(&c, &vec![gpu_pod(8_000); 50], Duration::from_secs(2)).unwrap();
        let pod = gpu_pod(8_000);
        // The same hardware in another order, and one node of hardware never priced.
        let mut models = ModelCatalog::default();
        let a100 = models.intern("A100").unwrap();
        let moved = Cluster::new(
            models,
            vec![
                Node::new("fat-new", 128_000, 512 * GIB, 8, Some(a100)).unwrap(),
                Node::new("thin-new", 16_000, 512 * GIB, 8, Some(a100)).unwrap(),
                Node::new("odd", 64_000, 256 * GIB, 4, Some(a100)).unwrap(),
            ],
        );
        let remapped = book.for_cluster(&moved);
        assert_eq!(remapped.cost(0, &pod), book.cost(4, &pod));
        assert_eq!(remapped.cost(1, &pod), book.cost(0, &pod));
        assert_eq!(
            remapped.cost(2, &pod),
            0.0,
            "hardware not priced costs nothing"
        );
        assert_eq!(
            remapped.cost(99, &pod),
            0.0,
            "an index past the cluster too"
        );
    }
}
