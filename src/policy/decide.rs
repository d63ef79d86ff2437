//! The one decision function: filter -> score -> pick with one tie-break. `allot simulate`
//! calls [`Decider::decide`] for each arrival (or [`Decider::decide_among`] the nodes its model
//! of kube-scheduler's node sampling finds); the extender calls [`Decider::pick`] on the
//! nodes kube-scheduler sent and [`Decider::devices`] at bind. Both read the same per-snapshot
//! [`Context`], so the node and devices the benchmark measures are the ones the cluster gets.

use std::sync::Arc;

use super::Policy;
use super::learned::PolicyFile;
use crate::alloc::PriceBook;
use crate::model::frag::TargetWorkload;
use crate::model::{Cluster, DeviceSet, Misfit, Node, Placement, PodDemand};

/// Seed of the tie-break order when none is given: the first of the FGD paper's evaluation
/// seeds, so a default extender (and the consolidator) breaks ties as `allot simulate
/// --seeds 42` does.
pub const DEFAULT_SEED: u64 = 42;

/// What every decision on one cluster snapshot shares.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Seeds the tie-break order and every random draw a policy makes.
    pub seed: u64,
    /// Tie-break rank per node index: among equal scores the lowest rank wins.
    rank: Vec<u32>,
    /// The typical workload fragmentation is measured against.
    pub target: Arc<TargetWorkload>,
    /// Shadow prices per hardware group from the LP over recent arrivals, when one was
    /// solved ([`crate::alloc::price`]); `learned`'s `lp_price_cost` feature reads them.
    pub prices: Option<Arc<PriceBook>>,
    /// The weights `learned` scores with (`--policy-file`); `None`: the embedded policy.
    pub learned: Option<Arc<PolicyFile>>,
}

impl Context {
    /// The context of `cluster` for `seed`: ties go to a fixed pseudo-random order of the
    /// nodes' names ([`tie_rank`]), so a node keeps its place as others come and go.
    pub fn new(cluster: &Cluster, target: Arc<TargetWorkload>, seed: u64) -> Self {
        Context {
            seed,
            rank: tie_rank(cluster, seed),
            target,
            prices: None,
            learned: None,
        }
    }

    /// A context with an explicit rank (tests, and callers that order ties themselves).
    pub fn with_rank(rank: Vec<u32>) -> Self {
        Context {
            rank,
            ..Context::default()
        }
    }

    /// Score `learned` with `file` instead of the embedded policy.
    pub fn with_learned(mut self, file: Option<Arc<PolicyFile>>) -> Self {
        self.learned = file;
        self
    }

    /// Node `node`'s tie-break rank (nodes beyond the rank come last).
    pub fn rank(&self, node: usize) -> u32 {
        self.rank.get(node).copied().unwrap_or(u32::MAX)
    }
}

/// The tie-break rank of each node of `cluster` for `seed`: nodes sorted by a seeded hash of
/// their name (then by index, for equal names), rank = position.
pub fn tie_rank(cluster: &Cluster, seed: u64) -> Vec<u32> {
    let mut order: Vec<(u64, usize)> = cluster
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, n)| (keyed_hash(seed, &n.name), i))
        .collect();
    order.sort_unstable();
    let mut rank = vec![0u32; order.len()];
    for (r, &(_, i)) in order.iter().enumerate() {
        rank[i] = r as u32;
    }
    rank
}

/// A stable 64-bit hash of `text` under `seed` (FNV-1a, then SplitMix64's finaliser): the
/// same on every platform and release, so a seed names one order everywhere.
pub fn keyed_hash(seed: u64, text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// The simulator's name for arrival `i`, standing in for a pod UID: a policy's random draws
/// for a pod are keyed by its UID, so a parity test gives its pods these UIDs.
pub fn arrival_uid(i: usize) -> String {
    format!("arrival-{i}")
}

/// Why a pod could not be placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unplaced {
    /// No node passes the filter; `example` is the first node's reason, if any node exists.
    NoFeasibleNode { example: Option<Misfit> },
    /// The policy could not choose devices on the winning node (a policy bug, reported).
    NoDevices,
}

/// Runs the decision for one pod at a time, reusing its buffers.
#[derive(Debug, Clone)]
pub struct Decider {
    ctx: Arc<Context>,
    candidates: Vec<usize>,
    scores: Vec<i64>,
}

impl Decider {
    pub fn new(ctx: Arc<Context>) -> Self {
        Decider {
            ctx,
            candidates: Vec::new(),
            scores: Vec::new(),
        }
    }

    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Decide from now on with `prices` (a fresh solve of the pricing LP).
    pub fn set_prices(&mut self, prices: Arc<PriceBook>) {
        Arc::make_mut(&mut self.ctx).prices = Some(prices);
    }

    /// Choose a node and devices for `pod` (UID `uid`) among every node of `cluster` that
    /// fits it. Does not change the cluster.
    pub fn decide(
        &mut self,
        policy: &mut dyn Policy,
        cluster: &Cluster,
        pod: &PodDemand,
        uid: &str,
    ) -> Result<Placement, Unplaced> {
        let mut candidates = std::mem::take(&mut self.candidates);
        candidates.clear();
        candidates.extend(
            cluster
                .nodes()
                .iter()
                .enumerate()
                .filter(|(_, n)| n.fits(pod))
                .map(|(i, _)| i),
        );
        let decision = self.decide_among(policy, cluster, pod, uid, &candidates);
        self.candidates = candidates;
        decision
    }

    /// [`Decider::decide`] among `candidates` (node indices, all feasible for `pod`) instead
    /// of every feasible node: the simulator passes the nodes kube-scheduler's sampling would
    /// have sent the extender (`sim::sampling`).
    pub fn decide_among(
        &mut self,
        policy: &mut dyn Policy,
        cluster: &Cluster,
        pod: &PodDemand,
        uid: &str,
        candidates: &[usize],
    ) -> Result<Placement, Unplaced> {
        let Some(best) = self.pick(policy, cluster, pod, uid, candidates) else {
            let example = cluster.nodes().first().and_then(|n| n.check(pod).err());
            return Err(Unplaced::NoFeasibleNode { example });
        };
        let node = candidates[best];
        let devices = self
            .devices(policy, &cluster.nodes()[node], pod, uid)
            .ok_or(Unplaced::NoDevices)?;
        Ok(Placement { node, devices })
    }

    /// Score `candidates` (node indices, all feasible for `pod`) and return the position of
    /// the winner in `candidates`: the highest score, ties to the lowest rank. `None` when
    /// there is no candidate. The scores stay readable through [`Decider::scores`].
    pub fn pick(
        &mut self,
        policy: &mut dyn Policy,
        cluster: &Cluster,
        pod: &PodDemand,
        uid: &str,
        candidates: &[usize],
    ) -> Option<usize> {
        self.scores.clear();
        self.scores.resize(candidates.len(), 0);
        if candidates.is_empty() {
            return None;
        }
        policy.begin(&self.ctx, keyed_hash(self.ctx.seed, uid));
        policy.score(cluster, pod, candidates, &mut self.scores);
        let ctx = &self.ctx;
        (0..candidates.len()).max_by(|&a, &b| {
            self.scores[a]
                .cmp(&self.scores[b])
                .then_with(|| ctx.rank(candidates[b]).cmp(&ctx.rank(candidates[a])))
        })
    }

    /// The raw scores of the last [`Decider::pick`], parallel to its candidates.
    pub fn scores(&self) -> &[i64] {
        &self.scores
    }

    /// The devices `pod` takes on `node`, as the policy chooses them (only devices that fit).
    pub fn devices(
        &mut self,
        policy: &mut dyn Policy,
        node: &Node,
        pod: &PodDemand,
        uid: &str,
    ) -> Option<DeviceSet> {
        policy.begin(&self.ctx, keyed_hash(self.ctx.seed, uid));
        policy
            .devices(node, pod)
            .filter(|d| node.devices_fit(pod.gpu, *d))
    }
}
