//! Consolidation in the simulator (design §7c): when an arriving pod fits no node, move a few
//! pods already placed to other nodes so that it fits, within a move budget. The replay
//! (`replay.rs`) calls [`Consolidator::make_room`] on such a failure; with no budget it is
//! never called, so budget 0 is the online policy exactly.
//!
//! The search, per failed arrival:
//! 1. plan: for every node that could ever host the pod, the greedy eviction set
//!    ([`plan::eviction_set`]): few of its pods whose removal lets the pod fit, at most the
//!    budget left, each of which fits some other node as the cluster stands (a pass over
//!    the nodes per distinct pod demand, remembered while it holds: `Destinations`).
//!    Nodes are ranked by (pods to move, GPU milli they hold, tie-break rank of the
//!    decision context), and only the best [`VERIFY_LIMIT`] are kept;
//! 2. verify, best first: take the set off the node, place each of its pods again through
//!    the replay's own [`Decider`] and policy among the feasible nodes other than the target
//!    (largest first), then decide the arriving pod through the same decider. The first node
//!    where every step succeeds is committed; any failure restores the cluster exactly.
//!
//! 3. depth 2, only when steps 1-2 found nothing and two moves are left: the same plan and
//!    verify, where a pod with no destination may still be taken if it has a link
//!    ([`chain`]): a node `D` it fits once one of `D`'s own pods `Q` moves on to a third
//!    node (target <- P <- D <- Q -> E). Such a pod counts two moves; only sets using a link
//!    are kept. Links are searched for at most [`chain::CHAIN_DEMANDS`] new demands per
//!    arrival, [`chain::CHAIN_LINKS`] per demand, remembered while they hold
//!    ([`chain::Linked`]). Verifying a link moves `Q` through the decider among the nodes
//!    that fit it other than the target and `D`, then `P` among those other than the target;
//!    each hop is one move against the budgets, and a failed link is undone at once.
//!
//! Cost per failed arrival: the plan is linear in the nodes and the pods on each (no
//! subsets are enumerated), at most `VERIFY_LIMIT` x (set size + 1) decisions are made per
//! depth, plus two per link tried (at most `CHAIN_LINKS` per pod moved), and a link search
//! is one pass over the nodes and their pods for each of at most `CHAIN_DEMANDS` demands.
//! Every change goes through `Cluster::place` / `Cluster::remove`, which refuse overbooking,
//! and every destination passes the filter, which checks the pod's GPU models.

pub mod chain;
mod destinations;
pub mod plan;
mod verify;

use rustc_hash::FxHashMap;

use crate::model::{Cluster, Placement, PodDemand};
use crate::policy::{Decider, Policy};
use destinations::Destinations;
pub use plan::Resident;
use verify::Limits;

/// Most target nodes whose moves are tried per failed arrival: a failing attempt costs a
/// decision per pod moved, and past the first few candidates (ranked cheapest first) a
/// success is rare in a full cluster; this bounds the worst case to 8 x (set + 1) decisions.
pub const VERIFY_LIMIT: usize = 8;

/// How many moves consolidation may make in a whole replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TotalBudget {
    Unlimited,
    /// At most this many moves in the replay.
    Moves(u64),
    /// At every arrival, the moves so far stay within this percentage of the pods placed so
    /// far (so also at 100 % arrived, where it is reported).
    PercentOfPlaced(f64),
}

/// The move budget of a replay; consolidation is off when `per_arrival` is 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MoveBudget {
    /// Most moves one arriving pod may cause (`usize::MAX`: no cap).
    pub per_arrival: usize,
    pub total: TotalBudget,
}

impl MoveBudget {
    pub fn is_off(&self) -> bool {
        self.per_arrival == 0
            || matches!(self.total, TotalBudget::Moves(0))
            || matches!(self.total, TotalBudget::PercentOfPlaced(p) if p <= 0.0)
    }
}

/// One pod moved to make room: it left `from` and was placed at `to`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Move {
    /// The moved pod's arrival index.
    pub id: usize,
    pub pod: PodDemand,
    pub from: Placement,
    pub to: Placement,
}

/// A pod placed after moves: where it went and the moves that made room.
#[derive(Debug, Clone, PartialEq)]
pub struct Rescue {
    pub at: Placement,
    pub moves: Vec<Move>,
}

/// A target node worth verifying: its eviction set and rank key.
#[derive(Debug, Clone)]
struct Candidate {
    key: (usize, u64, u32),
    node: usize,
    /// Arrival indices of the pods to move off `node`.
    ids: Vec<usize>,
}

/// Tracks which pods sit where and makes room for arrivals within a [`MoveBudget`].
#[derive(Debug, Clone)]
pub struct Consolidator {
    budget: MoveBudget,
    residents: Vec<Vec<Resident>>,
    placed: u64,
    moves: u64,
    rescues: u64,
    candidates: Vec<Candidate>,
    set: Vec<usize>,
    scratch: Vec<usize>,
    nodes: Vec<usize>,
    movable: Vec<bool>,
    /// Per resident of the node being planned: 0 not movable, 1 hop, 2 hops (a link).
    hops: Vec<u8>,
    destinations: FxHashMap<PodDemand, Destinations>,
    /// Whether a failed single-hop search is followed by a depth-2 one.
    chains: bool,
    /// Per demand, its links (remembered while they hold, like `destinations`).
    linked: FxHashMap<PodDemand, chain::Linked>,
    /// Demands whose links were searched for afresh in this arrival's search.
    link_searches: usize,
}

impl Consolidator {
    /// A consolidator for a replay starting on `cluster` (its pods, if any, are not movable).
    pub fn new(cluster: &Cluster, budget: MoveBudget) -> Self {
        Consolidator {
            budget,
            residents: vec![Vec::new(); cluster.len()],
            placed: 0,
            moves: 0,
            rescues: 0,
            candidates: Vec::new(),
            set: Vec::new(),
            scratch: Vec::new(),
            nodes: Vec::new(),
            movable: Vec::new(),
            hops: Vec::new(),
            destinations: FxHashMap::default(),
            chains: true,
            linked: FxHashMap::default(),
            link_searches: 0,
        }
    }

    /// The same with depth-2 searches on or off (on by default).
    pub fn with_chains(mut self, chains: bool) -> Self {
        self.chains = chains;
        self
    }

    /// Moves made so far.
    pub fn moves(&self) -> u64 {
        self.moves
    }

    /// The pods on `node` that consolidation may move.
    pub fn residents(&self, node: usize) -> &[Resident] {
        self.residents.get(node).map_or(&[], Vec::as_slice)
    }

    /// Note that arrival `id` was placed at `at` (by the replay or by [`Self::make_room`]).
    pub fn record(&mut self, id: usize, pod: &PodDemand, at: Placement) {
        self.placed += 1;
        if let Some(list) = self.residents.get_mut(at.node) {
            list.push(Resident {
                id,
                pod: *pod,
                devices: at.devices,
            });
        }
    }

    /// Moves the next arrival may make under both budgets.
    pub fn allowance(&self) -> usize {
        if self.budget.is_off() {
            return 0;
        }
        let total_left = match self.budget.total {
            TotalBudget::Unlimited => u64::MAX,
            TotalBudget::Moves(n) => n.saturating_sub(self.moves),
            TotalBudget::PercentOfPlaced(pct) => {
                let allowed = (pct / 100.0 * self.placed as f64).floor() as u64;
                allowed.saturating_sub(self.moves)
            }
        };
        usize::try_from(total_left)
            .unwrap_or(usize::MAX)
            .min(self.budget.per_arrival)
    }

    /// Make room for `pod` (arrival `id`), which fits no node of `cluster`, by moving pods
    /// within the budget, then place it where `decider` chooses. On success the cluster holds
    /// the moves and the pod; the caller still [`Self::record`]s the pod. On failure the
    /// cluster is as it was.
    pub fn make_room(
        &mut self,
        cluster: &mut Cluster,
        decider: &mut Decider,
        policy: &mut dyn Policy,
        pod: &PodDemand,
        id: usize,
    ) -> Option<Rescue> {
        let allowed = self.allowance();
        if allowed == 0 {
            return None;
        }
        let mut rescue = self.search(cluster, decider, policy, (pod, id), allowed, false);
        if rescue.is_none() && self.chains && allowed >= 2 {
            rescue = self.search(cluster, decider, policy, (pod, id), allowed, true);
        }
        if let Some(r) = &rescue {
            self.moves += r.moves.len() as u64;
            self.rescues += 1;
        }
        rescue
    }

    /// Plan, then verify the candidates best first; `chains`: the depth-2 search.
    fn search(
        &mut self,
        cluster: &mut Cluster,
        decider: &mut Decider,
        policy: &mut dyn Policy,
        (pod, id): (&PodDemand, usize),
        allowed: usize,
        chains: bool,
    ) -> Option<Rescue> {
        self.plan(cluster, decider, pod, allowed, chains);
        let candidates = std::mem::take(&mut self.candidates);
        let limits = Limits { allowed, chains };
        let rescue = candidates
            .iter()
            .find_map(|c| self.try_candidate(cluster, decider, policy, pod, id, c, limits));
        self.candidates = candidates;
        rescue
    }

    /// Rank the target nodes; keep the best `VERIFY_LIMIT` in `self.candidates`. With
    /// `chains`, pods with no destination but a link count as two moves, and only sets that
    /// use a link are kept (the others were the single-hop search's).
    fn plan(
        &mut self,
        cluster: &Cluster,
        decider: &Decider,
        pod: &PodDemand,
        allowed: usize,
        chains: bool,
    ) {
        self.candidates.clear();
        self.link_searches = 0;
        for (n, node) in cluster.nodes().iter().enumerate() {
            if self.residents[n].is_empty() || !plan::could_host(node, pod) {
                continue;
            }
            self.movable.clear();
            self.hops.clear();
            for k in 0..self.residents[n].len() {
                let r = self.residents[n][k].pod;
                let hops = if self.destinations_of(cluster, &r).besides(n) {
                    1
                } else if chains && self.linked_besides(cluster, &r, n) {
                    2
                } else {
                    0
                };
                self.hops.push(hops);
                self.movable.push(hops > 0);
            }
            if chains && !self.hops.contains(&2) {
                continue;
            }
            let cap = match self.candidates.last() {
                // A full list only takes sets no larger than its worst.
                Some(worst) if self.candidates.len() == VERIFY_LIMIT => allowed.min(worst.key.0),
                _ => allowed,
            };
            let residents = &self.residents[n];
            let Some(gpu) = plan::eviction_set(
                node,
                residents,
                &self.movable,
                pod,
                cap,
                &mut self.set,
                &mut self.scratch,
            ) else {
                continue;
            };
            let cost: usize = self.set.iter().map(|&i| usize::from(self.hops[i])).sum();
            if cost > allowed || (chains && cost == self.set.len()) {
                continue;
            }
            let key = (cost, gpu, decider.context().rank(n));
            let at = self.candidates.partition_point(|c| c.key <= key);
            if at >= VERIFY_LIMIT {
                continue;
            }
            let ids = self.set.iter().map(|&i| residents[i].id).collect();
            self.candidates.insert(at, Candidate { key, node: n, ids });
            self.candidates.truncate(VERIFY_LIMIT);
        }
    }

    /// Where `pod` could go now (remembered while it holds).
    fn destinations_of(&mut self, cluster: &Cluster, pod: &PodDemand) -> Destinations {
        current_destinations(&mut self.destinations, cluster, pod, self.rescues)
    }

    /// Whether a node other than `n` has a link for `pod` (searched for at most
    /// [`chain::CHAIN_DEMANDS`] demands per arrival; past that, no).
    fn linked_besides(&mut self, cluster: &Cluster, pod: &PodDemand, n: usize) -> bool {
        let rescues = self.rescues;
        let fresh = self
            .linked
            .get(pod)
            .is_some_and(|l| l.current(cluster, rescues));
        if !fresh {
            if self.link_searches >= chain::CHAIN_DEMANDS {
                return false;
            }
            self.link_searches += 1;
            let destinations = &mut self.destinations;
            let movable = |d: usize, q: &Resident| {
                current_destinations(destinations, cluster, &q.pod, rescues).besides(d)
            };
            let linked = chain::Linked::of(cluster, &self.residents, pod, rescues, movable);
            self.linked.insert(*pod, linked);
        }
        self.linked
            .get(pod)
            .is_some_and(|l| l.links.iter().any(|link| link.node != n))
    }
}

/// The entry of `pod` in `cache`, recomputed if it no longer holds.
fn current_destinations(
    cache: &mut FxHashMap<PodDemand, Destinations>,
    cluster: &Cluster,
    pod: &PodDemand,
    rescues: u64,
) -> Destinations {
    let dest = cache
        .entry(*pod)
        .or_insert_with(|| Destinations::of(cluster, pod, rescues));
    if !dest.current(cluster, rescues) {
        *dest = Destinations::of(cluster, pod, rescues);
    }
    *dest
}

fn placement(node: usize, r: &Resident) -> Placement {
    Placement {
        node,
        devices: r.devices,
    }
}

#[cfg(test)]
mod chain_tests;
#[cfg(test)]
mod tests;
