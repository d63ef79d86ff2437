//! `learned`: a linear Q-function over the features of each (pod, candidate node) pair
//! (`features.rs`), with weights from a policy file (`file.rs`). One shared scoring function
//! applied to every feasible candidate, then the best taken by the common [`Decider`]; FGD's
//! own score is a feature, so a policy starts from FGD and learns corrections. The Q-value is
//! cut to `levels` steps (FGD's 100 by default) so that near-equal placements tie and the
//! fixed tie order decides, as it does for FGD.
//!
//! [`Decider`]: crate::policy::Decider

pub mod costs;
pub mod experts;
pub mod explain;
pub mod features;
pub mod file;
pub mod strand;
pub mod support;

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::{Context, Fgd, Policy};
use crate::alloc::PriceBook;
use crate::model::frag::TargetWorkload;
use crate::model::{Cluster, DeviceSet, GpuDemand, MILLI_PER_GPU, Node, NodeShape, PodDemand};
use crate::rng::Rng;
use costs::DeviceCosts;
use experts::Choice;
use features::{COUNT, CPU_BOUND, DEVICE_COST, Globals, PRICE};
pub use file::{HistorySource, PolicyFile, PolicyFileError, Provenance};
use rustc_hash::FxHashMap;
pub use support::{Outside, Support, WorkloadMix};

/// Indices of the features the scorer treats specially.
const FGD: usize = 0;
const LOAD: usize = 11;
const FRAG: usize = 12;

/// FGD's own level (0-100) from its feature (its score / 100): what FGD ranks nodes by, and
/// what learned starts from.
fn fgd_level(fgd_feature: f64) -> f64 {
    (fgd_feature * 100.0).round()
}

/// Most entries the node-shape memo of the local part of Q holds before it starts again.
const LOCAL_MEMO_CAP: usize = 200_000;

/// Stream of the exploration draws, apart from every other use of a decision's key.
const STREAM_EXPLORE: u64 = 0x4558_504c;

/// The part of Q that depends on the node and the pod only: FGD's score and the weighted
/// node-and-pod features (no globals, no prices).
#[derive(Debug, Clone, Copy, Default)]
struct NodePart {
    fgd: i64,
    local: f64,
}

/// What training sees of each decision: every candidate's node index and features.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub candidates: Vec<(usize, [f64; COUNT])>,
}

/// The learned policy. Cheap to build; one value follows one evolving cluster.
#[derive(Debug)]
pub struct Learned {
    weights: [f64; COUNT],
    levels: f64,
    /// The device cost table of the weights in force, when they carry one and weigh it: then
    /// a share takes the device the table chooses.
    costs: Option<DeviceCosts>,
    /// The target's GPU classes by the CPU they need, when `cpu_bound_change` carries weight.
    reach: Option<strand::CpuReach>,
    /// Set when the target workload lies outside the file's support and every expert's: then
    /// FGD decides alone.
    outside: Option<Outside>,
    /// The traces of the expert whose weights score this workload, when one does.
    expert: Option<String>,
    fgd: Fgd,
    fgd_scores: Vec<i64>,
    /// Per node `(generation + 1, fragmentation)`, for the cluster-fragmentation feature.
    frag: Vec<(u64, f64)>,
    target: TargetWorkload,
    cpu_per_gpu: f64,
    /// The LP's shadow prices of the current decision's context, when any were solved.
    prices: Option<Arc<PriceBook>>,
    /// Cache of what Q reads of the node and the pod alone: slot per pod demand, then per
    /// node `(generation + 1, part)`.
    local_ids: FxHashMap<PodDemand, usize>,
    local: Vec<Vec<(u64, NodePart)>>,
    /// The same by (node shape, demand slot): shared by nodes of one shape, kept by a rebase.
    /// One probe answers both halves, so a node the per-node cache has not seen (every node
    /// after a snapshot rebuild) costs one lookup, not FGD's and this one.
    local_memo: FxHashMap<(NodeShape, usize), NodePart>,
    /// Training only: the chance of a uniformly random choice, and this decision's draw.
    epsilon: f64,
    explore: Option<Rng>,
    recorder: Option<Arc<Mutex<Recording>>>,
}

impl Learned {
    pub fn new(file: &PolicyFile, target: TargetWorkload) -> Self {
        let (chosen, costs, expert, outside) = match file.choose(&WorkloadMix::of(&target)) {
            Choice::Own => (&file.weights, &file.device_costs, None, None),
            Choice::Expert(e) => (&e.weights, &e.device_costs, Some(e.traces.join(",")), None),
            Choice::Fgd(why) => (&file.weights, &None, None, Some(why)),
        };
        let mut weights = [0.0; COUNT];
        for (w, v) in weights.iter_mut().zip(chosen) {
            *w = *v;
        }
        Learned {
            costs: costs.clone().filter(|_| weights[DEVICE_COST] != 0.0),
            reach: (weights[CPU_BOUND] != 0.0).then(|| strand::CpuReach::of(&target)),
            weights,
            levels: f64::from(file.levels),
            outside,
            expert,
            fgd: Fgd::new(target.clone()),
            fgd_scores: Vec::new(),
            frag: Vec::new(),
            cpu_per_gpu: typical_cpu_per_gpu(&target),
            prices: None,
            target,
            local_ids: FxHashMap::default(),
            local: Vec::new(),
            local_memo: FxHashMap::default(),
            epsilon: 0.0,
            explore: None,
            recorder: None,
        }
    }

    /// For training: explore with probability `epsilon` and record every decision.
    pub fn training(mut self, epsilon: f64, recorder: Arc<Mutex<Recording>>) -> Self {
        self.epsilon = epsilon;
        self.recorder = Some(recorder);
        self
    }

    /// Why this policy places as FGD does: the workload lies outside the file's support.
    pub fn outside(&self) -> Option<&Outside> {
        self.outside.as_ref()
    }

    /// The traces of the expert scoring this workload (outside the file's own support).
    pub fn expert(&self) -> Option<&str> {
        self.expert.as_deref()
    }

    /// The Q-value of one feature vector.
    pub fn q(&self, features: &[f64; COUNT]) -> f64 {
        dot(&self.weights, features)
    }

    /// Each feature's contribution `w_i * x_i` to the Q-value (for explanations).
    pub fn contributions(&self, features: &[f64; COUNT]) -> [f64; COUNT] {
        let mut out = [0.0; COUNT];
        for i in 0..COUNT {
            out[i] = self.weights[i] * features[i];
        }
        out
    }

    /// The decision score of a feature vector: `floor(levels * Q)`, with FGD's 0..100 level
    /// taken as the exact integer it is (so the warm start reproduces FGD's ties exactly).
    pub fn level(&self, features: &[f64; COUNT]) -> i64 {
        let fgd = fgd_level(features[FGD]);
        let correction = self.q(features) - self.weights[FGD] * features[FGD];
        self.level_of(fgd, self.weights[FGD], correction)
    }

    fn level_of(&self, fgd: f64, w_fgd: f64, correction: f64) -> i64 {
        (self.levels * w_fgd * fgd / 100.0 + self.levels * correction)
            .floor()
            .clamp(-1e15, 1e15) as i64
    }

    /// The cache slot of `pod`'s demand for [`Learned::local`].
    fn local_id(&mut self, pod: &PodDemand) -> usize {
        let next = self.local_ids.len();
        let id = *self.local_ids.entry(*pod).or_insert(next);
        if id == self.local.len() {
            self.local.push(Vec::new());
        }
        id
    }

    /// FGD's score of `pod` on node `node_index` and the weighted node-and-pod features,
    /// cached per (pod demand, node) until the node changes, and per (node shape, demand)
    /// beyond that; `id` is the demand's [`Learned::local_id`].
    fn node_part(
        &mut self,
        id: usize,
        cluster: &Cluster,
        node_index: usize,
        pod: &PodDemand,
    ) -> NodePart {
        let node = &cluster.nodes()[node_index];
        let slots = &mut self.local[id];
        if slots.len() <= node_index {
            slots.resize(node_index + 1, (0, NodePart::default()));
        }
        let stamp = node.generation + 1;
        if slots[node_index].0 == stamp {
            return slots[node_index].1;
        }
        let key = (node.shape(), id);
        let part = match self.local_memo.get(&key) {
            Some(&part) => part,
            None => {
                let mut fgd = [0];
                self.fgd.score(cluster, pod, &[node_index], &mut fgd);
                let none = Globals {
                    load: 0.0,
                    frag: 0.0,
                    cpu_per_gpu: self.cpu_per_gpu,
                };
                let (costs, reach) = (self.costs.as_ref(), self.reach.as_ref());
                let x = features::of(node, pod, 0, 0.0, &none, costs, reach);
                let part = NodePart {
                    fgd: fgd[0],
                    local: dot(&self.weights, &x),
                };
                if self.local_memo.len() >= LOCAL_MEMO_CAP {
                    self.local_memo.clear();
                }
                self.local_memo.insert(key, part);
                part
            }
        };
        self.local[id][node_index] = (stamp, part);
        part
    }

    /// The features of placing `pod` on each of `candidates` (the decision's globals included).
    pub fn features(
        &mut self,
        cluster: &Cluster,
        pod: &PodDemand,
        candidates: &[usize],
    ) -> Vec<[f64; COUNT]> {
        self.fgd_scores.clear();
        self.fgd_scores.resize(candidates.len(), 0);
        self.fgd
            .score(cluster, pod, candidates, &mut self.fgd_scores);
        let g = self.globals(cluster);
        candidates
            .iter()
            .zip(&self.fgd_scores)
            .map(|(&i, &s)| {
                let cost = self.price_cost(i, pod);
                let (costs, reach) = (self.costs.as_ref(), self.reach.as_ref());
                features::of(&cluster.nodes()[i], pod, s, cost, &g, costs, reach)
            })
            .collect()
    }

    /// The opportunity cost of `pod` on node `node` at the context's prices (0 without any).
    fn price_cost(&self, node: usize, pod: &PodDemand) -> f64 {
        self.prices.as_ref().map_or(0.0, |b| b.cost(node, pod))
    }

    fn globals(&mut self, cluster: &Cluster) -> Globals {
        if self.frag.len() != cluster.len() {
            self.frag = vec![(0, 0.0); cluster.len()];
        }
        let mut frag = 0.0;
        let mut idle = 0u64;
        for (slot, node) in self.frag.iter_mut().zip(cluster.nodes()) {
            if slot.0 != node.generation + 1 {
                *slot = (node.generation + 1, self.target.node_frag(node));
            }
            frag += slot.1;
            idle += u64::from(node.idle_gpu_milli());
        }
        let capacity = cluster.gpu_capacity_milli().max(1) as f64;
        Globals {
            load: cluster.gpu_allocated_milli() as f64 / capacity,
            frag: if idle == 0 { 0.0 } else { frag / idle as f64 },
            cpu_per_gpu: self.cpu_per_gpu,
        }
    }
}

/// The target workload's CPU milli per GPU (0 when it has no GPU pods).
fn typical_cpu_per_gpu(target: &TargetWorkload) -> f64 {
    let (mut cpu, mut gpu) = (0.0, 0.0);
    for (shape, p) in target.classes() {
        if shape.needs_gpu() {
            cpu += p * shape.cpu_milli as f64;
            gpu += p * shape.gpu.total_milli() as f64 / f64::from(MILLI_PER_GPU);
        }
    }
    if gpu > 0.0 { cpu / gpu } else { 0.0 }
}

/// The Q-value of features `x` under weights `w` (a linear Q-function).
pub fn dot(w: &[f64], x: &[f64]) -> f64 {
    w.iter().zip(x).map(|(a, b)| a * b).sum()
}

impl Policy for Learned {
    fn name(&self) -> &'static str {
        "learned"
    }

    fn wants_prices(&self) -> bool {
        self.weights[PRICE] != 0.0
    }

    fn rebase(&mut self) {
        for row in &mut self.local {
            row.clear();
        }
        self.frag.clear();
        self.fgd.rebase();
    }

    fn begin(&mut self, ctx: &Context, draw: u64) {
        self.prices = ctx.prices.clone();
        self.explore = None;
        if self.epsilon > 0.0 {
            let mut rng = Rng::derive(draw, STREAM_EXPLORE);
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            if u < self.epsilon {
                self.explore = Some(rng);
            }
        }
    }

    fn score(&mut self, cluster: &Cluster, pod: &PodDemand, candidates: &[usize], out: &mut [i64]) {
        if self.outside.is_some() && self.recorder.is_none() && self.explore.is_none() {
            // Outside the trained workloads: the warm start, FGD's own scores.
            self.fgd.score(cluster, pod, candidates, out);
            return;
        }
        if self.recorder.is_none() {
            // The global features add the same to every candidate; they are computed only
            // when they carry weight.
            let global = if self.weights[LOAD] != 0.0 || self.weights[FRAG] != 0.0 {
                let g = self.globals(cluster);
                self.weights[LOAD] * g.load + self.weights[FRAG] * g.frag
            } else {
                0.0
            };
            let (w_fgd, w_price) = (self.weights[FGD], self.weights[PRICE]);
            let id = self.local_id(pod);
            for (k, &i) in candidates.iter().enumerate() {
                let part = self.node_part(id, cluster, i, pod);
                let mut local = part.local;
                if w_price != 0.0 {
                    // Prices change with every solve, so they stay out of the node cache.
                    local += w_price * self.price_cost(i, pod).clamp(0.0, 8.0);
                }
                out[k] = self.level_of(part.fgd as f64, w_fgd, local + global);
            }
        } else {
            let feats = self.features(cluster, pod, candidates);
            for (slot, f) in out.iter_mut().zip(&feats) {
                *slot = self.level(f);
            }
            if let Some(rec) = &self.recorder {
                let mut rec = rec.lock().unwrap_or_else(PoisonError::into_inner);
                rec.candidates.clear();
                rec.candidates
                    .extend(candidates.iter().copied().zip(feats.iter().copied()));
            }
        }
        if let Some(rng) = self.explore.as_mut() {
            for slot in out.iter_mut() {
                *slot = (rng.next_u64() >> 1) as i64;
            }
        }
    }

    fn devices(&mut self, node: &Node, pod: &PodDemand) -> Option<DeviceSet> {
        if let (Some(t), GpuDemand::Shared { milli }) = (&self.costs, pod.gpu)
            && self.outside.is_none()
            && let Some((device, _)) = t.best(node.gpu_free(), milli as u16)
        {
            return Some(DeviceSet::single(device));
        }
        self.fgd.devices(node, pod)
    }
}

/// The policy file embedded in the binary, parsed once; FGD's warm start if it were broken
/// (a build problem the embedded-policy test catches).
pub fn embedded_file() -> &'static PolicyFile {
    static FILE: OnceLock<PolicyFile> = OnceLock::new();
    FILE.get_or_init(|| {
        PolicyFile::embedded().unwrap_or_else(|_| PolicyFile::fgd_start(Provenance::default()))
    })
}

/// The embedded policy for `target`.
pub fn embedded(target: &TargetWorkload) -> Learned {
    Learned::new(embedded_file(), target.clone())
}
