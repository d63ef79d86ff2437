//! Consolidation in the simulator (design §7c): when an arriving pod fits no node, move a few
//! pods already placed to other nodes so that it fits, within a move budget. The replay
//! (`replay.rs`) calls [`Consolidator::make_room`] on such a failure; with no budget it is
//! never called, so budget 0 is the online policy exactly.
//!
//! The search, per failed arrival:
//! 1. plan: for every node that could ever host the pod, the greedy eviction set
//!    ([`plan::eviction_set`]): few of its pods whose removal lets the pod fit, at most the
//!    budget left, each of which fits some other node as the cluster stands (a pass over
//!    the nodes per distinct pod demand, remembered while it holds: [`Destinations`]).
//!    Nodes are ranked by (pods to move, GPU milli they hold, tie-break rank of the
//!    decision context), and only the best [`VERIFY_LIMIT`] are kept;
//! 2. verify, best first: take the set off the node, place each of its pods again through
//!    the replay's own [`Decider`] and policy among the feasible nodes other than the target
//!    (largest first), then decide the arriving pod through the same decider. The first node
//!    where every step succeeds is committed; any failure restores the cluster exactly.
//!
//! Cost per failed arrival: the plan is linear in the nodes and the pods on each (no
//! subsets are enumerated), and at most `VERIFY_LIMIT` x (set size + 1) decisions are made.
//! Every change goes through `Cluster::place` / `Cluster::remove`, which refuse overbooking,
//! and every destination passes the filter, which checks the pod's GPU models.

pub mod plan;

use rustc_hash::FxHashMap;

use crate::model::{Cluster, Placement, PodDemand};
use crate::policy::{Decider, Policy, arrival_uid};
pub use plan::Resident;

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

/// Where a pod could go now: the first two nodes that fit it (by index), each with the
/// node's generation when seen, and the rescue count when computed.
///
/// Kept between searches while it still holds: placements only take room, so a node that
/// did not fit still does not, and the answer changes only if a node it names has changed
/// since (its generation moved) or a rescue freed room (moves leave room on the target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Destinations {
    first: [Option<(usize, u64)>; 2],
    rescues: u64,
}

impl Destinations {
    fn of(cluster: &Cluster, pod: &PodDemand, rescues: u64) -> Self {
        let mut fits = cluster
            .nodes()
            .iter()
            .enumerate()
            .filter(|(_, n)| n.fits(pod))
            .map(|(i, n)| (i, n.generation));
        Destinations {
            first: [fits.next(), fits.next()],
            rescues,
        }
    }

    fn current(&self, cluster: &Cluster, rescues: u64) -> bool {
        self.rescues == rescues
            && self
                .first
                .iter()
                .flatten()
                .all(|&(n, generation)| cluster.nodes()[n].generation == generation)
    }

    /// Whether some node other than `target` fits.
    fn besides(&self, target: usize) -> bool {
        self.first.iter().flatten().any(|&(n, _)| n != target)
    }
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
    destinations: FxHashMap<PodDemand, Destinations>,
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
            destinations: FxHashMap::default(),
        }
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
        self.plan(cluster, decider, pod, allowed);
        let candidates = std::mem::take(&mut self.candidates);
        let rescue = candidates
            .iter()
            .find_map(|c| self.try_candidate(cluster, decider, policy, pod, id, c));
        self.candidates = candidates;
        if let Some(r) = &rescue {
            self.moves += r.moves.len() as u64;
            self.rescues += 1;
        }
        rescue
    }

    /// Rank the target nodes; keep the best `VERIFY_LIMIT` in `self.candidates`.
    fn plan(&mut self, cluster: &Cluster, decider: &Decider, pod: &PodDemand, allowed: usize) {
        self.candidates.clear();
        let rescues = self.rescues;
        for (n, node) in cluster.nodes().iter().enumerate() {
            let residents = &self.residents[n];
            if residents.is_empty() || !plan::could_host(node, pod) {
                continue;
            }
            self.movable.clear();
            for r in residents {
                let dest = self
                    .destinations
                    .entry(r.pod)
                    .or_insert_with(|| Destinations::of(cluster, &r.pod, rescues));
                if !dest.current(cluster, rescues) {
                    *dest = Destinations::of(cluster, &r.pod, rescues);
                }
                self.movable.push(dest.besides(n));
            }
            let cap = match self.candidates.last() {
                // A full list only takes sets no larger than its worst.
                Some(worst) if self.candidates.len() == VERIFY_LIMIT => allowed.min(worst.key.0),
                _ => allowed,
            };
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
            let key = (self.set.len(), gpu, decider.context().rank(n));
            let at = self.candidates.partition_point(|c| c.key <= key);
            if at >= VERIFY_LIMIT {
                continue;
            }
            let ids = self.set.iter().map(|&i| residents[i].id).collect();
            self.candidates.insert(at, Candidate { key, node: n, ids });
            self.candidates.truncate(VERIFY_LIMIT);
        }
    }

    /// Move `c`'s pods off its node and place `pod`; undo everything if a step fails.
    fn try_candidate(
        &mut self,
        cluster: &mut Cluster,
        decider: &mut Decider,
        policy: &mut dyn Policy,
        pod: &PodDemand,
        id: usize,
        c: &Candidate,
    ) -> Option<Rescue> {
        let target = c.node;
        let mut movers: Vec<Resident> = self.residents[target]
            .iter()
            .filter(|r| c.ids.contains(&r.id))
            .copied()
            .collect();
        movers.sort_by_key(|r| {
            let p = &r.pod;
            (
                std::cmp::Reverse((p.gpu.total_milli(), p.cpu_milli, p.memory_bytes)),
                r.id,
            )
        });
        for r in &movers {
            cluster.remove(&r.pod, placement(target, r));
        }
        let mut moves: Vec<Move> = Vec::with_capacity(movers.len());
        let mut ok = true;
        for r in &movers {
            self.nodes.clear();
            self.nodes.extend(
                cluster
                    .nodes()
                    .iter()
                    .enumerate()
                    .filter(|&(n, node)| n != target && node.fits(&r.pod))
                    .map(|(n, _)| n),
            );
            let uid = format!("{}-move-{}", arrival_uid(r.id), self.moves);
            let to = decider
                .decide_among(policy, cluster, &r.pod, &uid, &self.nodes)
                .ok()
                .filter(|to| cluster.place(&r.pod, *to).is_ok());
            match to {
                Some(to) => moves.push(Move {
                    id: r.id,
                    pod: r.pod,
                    from: placement(target, r),
                    to,
                }),
                None => {
                    ok = false;
                    break;
                }
            }
        }
        let at = if ok {
            decider
                .decide(policy, cluster, pod, &arrival_uid(id))
                .ok()
                .filter(|at| cluster.place(pod, *at).is_ok())
        } else {
            None
        };
        let Some(at) = at else {
            for m in moves.iter().rev() {
                cluster.remove(&m.pod, m.to);
            }
            for r in &movers {
                let restored = cluster.place(&r.pod, placement(target, r)).is_ok();
                debug_assert!(restored, "undoing a move must fit where the pod was");
            }
            return None;
        };
        self.residents[target].retain(|r| !c.ids.contains(&r.id));
        for m in &moves {
            self.residents[m.to.node].push(Resident {
                id: m.id,
                pod: m.pod,
                devices: m.to.devices,
            });
        }
        Some(Rescue { at, moves })
    }
}

fn placement(node: usize, r: &Resident) -> Placement {
    Placement {
        node,
        devices: r.devices,
    }
}

#[cfg(test)]
mod tests;
