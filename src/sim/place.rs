//! The placement step both replays share (static `super::replay`, dynamic `super::dynamic`):
//! decide through the one [`Decider`] (over every node, or the ones kube-scheduler's sampling
//! finds), commit the choice to the cluster, and keep the cluster's fragmentation current node
//! by node as pods come and go.

use std::sync::Arc;

use super::sampling::{KubeFilter, NodeSampling, NodeScan};
use crate::model::frag::TargetWorkload;
use crate::model::{Cluster, Placement, PodDemand};
use crate::policy::{Context, Decider, Policy, Unplaced};

/// Wall-clock limit of one pricing solve (it takes ~10 ms on openb). Past it the previous
/// prices stay, so a replay is deterministic unless a solve is 200 times slower than usual.
const PRICE_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A policy that reads the LP's shadow prices gets them re-solved every this many arrivals,
/// over the arrivals since the last solve (`alloc::price`).
pub const PRICE_EVERY: usize = 1_000;

/// The state after one scheduling event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Cumulative GPU milli requested by every pod submitted so far, failed ones included.
    pub arrived: u64,
    /// GPU milli in use.
    pub allocated: u64,
    /// Cluster fragmentation against the target workload, milli-GPU.
    pub frag: f64,
}

/// A replay's cluster and decision state.
#[derive(Debug)]
pub struct Placer {
    /// The cluster as the replay has changed it.
    pub cluster: Cluster,
    /// The decision function, with the replay's context (and prices, once solved).
    pub decider: Decider,
    target: Arc<TargetWorkload>,
    sampling: NodeSampling,
    scan: NodeScan,
    sampled: Vec<usize>,
    node_frag: Vec<f64>,
    frag: f64,
    pricing: bool,
}

impl Placer {
    /// Start from a copy of `cluster`, choosing among the nodes `sampling` finds (as
    /// `kube_filter` counts them); `policy` says whether prices are to be solved.
    pub fn new(
        cluster: &Cluster,
        ctx: Arc<Context>,
        (sampling, kube_filter): (NodeSampling, KubeFilter),
        policy: &dyn Policy,
    ) -> Self {
        let target = ctx.target.clone();
        let node_frag: Vec<f64> = cluster
            .nodes()
            .iter()
            .map(|n| target.node_frag(n))
            .collect();
        let frag = node_frag.iter().sum();
        Placer {
            cluster: cluster.clone(),
            decider: Decider::new(ctx),
            target,
            sampling,
            scan: NodeScan::new(sampling, kube_filter),
            sampled: Vec::new(),
            node_frag,
            frag,
            pricing: policy.wants_prices(),
        }
    }

    /// Cluster fragmentation against the target workload, milli-GPU.
    pub fn frag(&self) -> f64 {
        self.frag
    }

    /// The state now, for `arrived` milli requested so far.
    pub fn sample(&self, arrived: u64) -> Sample {
        Sample {
            arrived,
            allocated: self.cluster.gpu_allocated_milli(),
            frag: self.frag,
        }
    }

    /// Before deciding arrival `i` of `arrivals`: for a policy that reads shadow prices,
    /// re-solve them every [`PRICE_EVERY`] arrivals over the arrivals since the last solve.
    /// Deterministic: solved between two arrivals, read by the next.
    pub fn price_before(&mut self, i: usize, arrivals: &[PodDemand]) {
        if self.pricing && i > 0 && i.is_multiple_of(PRICE_EVERY) && i <= arrivals.len() {
            let recent = &arrivals[i - PRICE_EVERY..i];
            if let Ok(book) = crate::alloc::price(&self.cluster, recent, PRICE_LIMIT) {
                self.decider.set_prices(Arc::new(book));
            }
        }
    }

    /// Decide where `pod` (UID `uid`) goes and commit it. A choice the cluster refuses (a
    /// policy bug) is reported as [`Unplaced::NoDevices`] and changes nothing.
    pub fn try_place(
        &mut self,
        policy: &mut dyn Policy,
        pod: &PodDemand,
        uid: &str,
    ) -> Result<Placement, Unplaced> {
        let decision = match self.sampling {
            NodeSampling::All => self.decider.decide(policy, &self.cluster, pod, uid),
            _ => {
                self.scan.candidates(&self.cluster, pod, &mut self.sampled);
                self.decider
                    .decide_among(policy, &self.cluster, pod, uid, &self.sampled)
            }
        }?;
        self.cluster
            .place(pod, decision)
            .map_err(|_| Unplaced::NoDevices)?;
        self.refresh(decision.node);
        Ok(decision)
    }

    /// Take a placed pod off its node (it left).
    pub fn remove(&mut self, pod: &PodDemand, at: Placement) {
        self.cluster.remove(pod, at);
        self.refresh(at.node);
    }

    /// Recompute node `node`'s fragmentation after its pods changed.
    pub fn refresh(&mut self, node: usize) {
        let f = self.target.node_frag(&self.cluster.nodes()[node]);
        self.frag += f - self.node_frag[node];
        self.node_frag[node] = f;
    }
}
