//! FGD, Fragmentation Gradient Descent (Weng et al., ATC'23): place the pod where it grows the
//! cluster's fragmentation least (or shrinks it most), measured against the typical workload.
//!
//! Scores depend only on a node's free CPU and GPU vector and the pod's shape, so they are
//! cached twice: per (pod shape, node index) until the node's generation changes, and per
//! (pod shape, node shape), which nodes of one shape share and which outlives a snapshot
//! rebuild ([`Policy::rebase`]). One `Fgd` value scores against one target workload; call
//! [`Fgd::forget`] before scoring an unrelated cluster.

use rustc_hash::FxHashMap;

use super::Policy;
use crate::model::frag::TargetWorkload;
use crate::model::{
    Cluster, DeviceSet, GpuDemand, MAX_GPUS_PER_NODE, MILLI_PER_GPU, Node, NodeShape, PodDemand,
    PodShape,
};

#[derive(Debug, Clone)]
pub struct Fgd {
    target: TargetWorkload,
    shapes: FxHashMap<PodShape, usize>,
    /// `scores[shape][node] = (generation + 1, score)`; 0 marks an empty slot.
    scores: Vec<Vec<(u64, i64)>>,
    /// `frag[node] = (generation + 1, F)`.
    frag: Vec<(u64, f64)>,
    /// Scores by (node shape, pod shape slot), for nodes the per-index cache has not seen.
    memo: FxHashMap<(NodeShape, usize), i64>,
}

/// Most entries [`Fgd`]'s shape memo holds before it starts again (about 10 MB).
const MEMO_CAP: usize = 200_000;

/// The best hypothetical placement on one node.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    score: i64,
    device: Option<usize>,
}

impl Fgd {
    pub fn new(target: TargetWorkload) -> Self {
        Fgd {
            target,
            shapes: FxHashMap::default(),
            scores: Vec::new(),
            frag: Vec::new(),
            memo: FxHashMap::default(),
        }
    }

    /// Drop every cached score (use when switching to a different cluster).
    pub fn forget(&mut self) {
        self.shapes.clear();
        self.scores.clear();
        self.frag.clear();
        self.memo.clear();
    }

    /// The score of `pod` (shape slot `id`) on `node`, from the shape memo or evaluated.
    fn score_by_shape(&mut self, index: usize, node: &Node, id: usize, pod: &PodShape) -> i64 {
        let key = (node.shape(), id);
        if let Some(&score) = self.memo.get(&key) {
            return score;
        }
        let before = self.frag_before(index, node);
        let score = self.evaluate(node, before, pod).score;
        if self.memo.len() >= MEMO_CAP {
            self.memo.clear();
        }
        self.memo.insert(key, score);
        score
    }

    fn frag_before(&mut self, index: usize, node: &Node) -> f64 {
        let stamp = node.generation + 1;
        match self.frag.get(index) {
            Some(&(s, f)) if s == stamp => f,
            _ => {
                let f = self.target.node_frag(node);
                if let Some(slot) = self.frag.get_mut(index) {
                    *slot = (stamp, f);
                }
                f
            }
        }
    }

    /// Fragmentation decrease (milli) of every way to place `pod` on `node`; the best one.
    fn evaluate(&self, node: &Node, before: f64, pod: &PodShape) -> Outcome {
        let cpu_after = node.cpu_free.saturating_sub(pod.cpu_milli);
        let mut free = [0u16; MAX_GPUS_PER_NODE];
        let n = node.gpu_count();
        free[..n].copy_from_slice(node.gpu_free());
        let outcome = |after: f64, device| Outcome {
            score: (100.0 * logistic((before - after) / 1000.0)).floor() as i64,
            device,
        };
        match pod.gpu {
            GpuDemand::None => outcome(self.target.node_frag_of(node, cpu_after, &free[..n]), None),
            GpuDemand::Whole { count } => {
                let full = MILLI_PER_GPU as u16;
                let mut left = count;
                for g in free[..n].iter_mut().filter(|g| **g == full) {
                    if left == 0 {
                        break;
                    }
                    *g = 0;
                    left -= 1;
                }
                outcome(self.target.node_frag_of(node, cpu_after, &free[..n]), None)
            }
            GpuDemand::Shared { milli } => {
                let milli = milli as u16;
                let mut best: Option<(f64, usize)> = None;
                for i in 0..n {
                    let g = free[i];
                    // Devices with equal free milli give equal outcomes; the lowest index wins.
                    if g < milli || free[..i].contains(&g) {
                        continue;
                    }
                    free[i] = g - milli;
                    let after = self.target.node_frag_of(node, cpu_after, &free[..n]);
                    free[i] = g;
                    if best.is_none_or(|(a, _)| after < a) {
                        best = Some((after, i));
                    }
                }
                match best {
                    Some((after, i)) => outcome(after, Some(i)),
                    None => Outcome {
                        score: 0,
                        device: None,
                    },
                }
            }
        }
    }

    fn shape_slot(&mut self, shape: PodShape, nodes: usize) -> usize {
        let next = self.shapes.len();
        let id = *self.shapes.entry(shape).or_insert(next);
        if id == self.scores.len() {
            self.scores.push(Vec::new());
        }
        if self.scores[id].len() != nodes {
            self.scores[id] = vec![(0, 0); nodes];
        }
        if self.frag.len() != nodes {
            self.frag = vec![(0, 0.0); nodes];
        }
        id
    }
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl Policy for Fgd {
    fn name(&self) -> &'static str {
        "fgd"
    }

    fn rebase(&mut self) {
        // Shape slots stay (the memo is keyed by them); their per-index rows refill.
        for row in &mut self.scores {
            row.clear();
        }
        self.frag.clear();
    }

    fn score(&mut self, cluster: &Cluster, pod: &PodDemand, candidates: &[usize], out: &mut [i64]) {
        let shape = pod.shape();
        let id = self.shape_slot(shape, cluster.len());
        for (slot, &i) in out.iter_mut().zip(candidates) {
            let node = &cluster.nodes()[i];
            let stamp = node.generation + 1;
            let (s, cached) = self.scores[id][i];
            *slot = if s == stamp {
                cached
            } else {
                let score = self.score_by_shape(i, node, id, &shape);
                self.scores[id][i] = (stamp, score);
                score
            };
        }
    }

    fn devices(&mut self, node: &Node, pod: &PodDemand) -> Option<DeviceSet> {
        match pod.gpu {
            GpuDemand::Shared { .. } => {
                let before = self.target.node_frag(node);
                self.evaluate(node, before, &pod.shape())
                    .device
                    .map(DeviceSet::single)
            }
            _ => node.default_devices(pod.gpu),
        }
    }
}
