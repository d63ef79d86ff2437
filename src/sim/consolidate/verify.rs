//! The verify step of a search: take a candidate's eviction set off its node, place each pod
//! again through the replay's decider (directly, or in depth-2 searches through a link: one
//! of another node's pods moves on first), then the arriving pod. Any failure restores the
//! cluster exactly.

use super::chain::Link;
use super::{Candidate, Consolidator, Move, Rescue, Resident, placement};
use crate::model::{Cluster, Placement, PodDemand};
use crate::policy::{Decider, Policy, arrival_uid};

/// What one verification may do: the moves it may make, and whether it may use links.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub allowed: usize,
    pub chains: bool,
}

impl Consolidator {
    /// Move `c`'s pods off its node and place `pod`; undo everything if a step fails.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn try_candidate(
        &mut self,
        cluster: &mut Cluster,
        decider: &mut Decider,
        policy: &mut dyn Policy,
        pod: &PodDemand,
        id: usize,
        c: &Candidate,
        limits: Limits,
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
        for (k, r) in movers.iter().enumerate() {
            let from = placement(target, r);
            if let Some(m) =
                self.move_one(cluster, decider, policy, r.id, &r.pod, from, [target; 2])
            {
                moves.push(m);
                continue;
            }
            let left = movers.len() - k - 1;
            if limits.chains
                && moves.len() + 2 + left <= limits.allowed
                && let Some((q, p)) = self.move_by_link(cluster, decider, policy, r, target, &moves)
            {
                moves.extend([q, p]);
                continue;
            }
            ok = false;
            break;
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
            undo(cluster, target, &movers, &moves);
            return None;
        };
        for m in &moves {
            if let Some(list) = self.residents.get_mut(m.from.node) {
                list.retain(|r| r.id != m.id);
            }
            if let Some(list) = self.residents.get_mut(m.to.node) {
                list.push(Resident {
                    id: m.id,
                    pod: m.pod,
                    devices: m.to.devices,
                });
            }
        }
        Some(Rescue { at, moves })
    }

    /// Place `pod` (arrival `id`, taken off `from`) where the decider chooses among the
    /// nodes that fit it other than `exclude`.
    #[allow(clippy::too_many_arguments)]
    fn move_one(
        &mut self,
        cluster: &mut Cluster,
        decider: &mut Decider,
        policy: &mut dyn Policy,
        id: usize,
        pod: &PodDemand,
        from: Placement,
        exclude: [usize; 2],
    ) -> Option<Move> {
        self.nodes.clear();
        self.nodes.extend(
            cluster
                .nodes()
                .iter()
                .enumerate()
                .filter(|&(n, node)| !exclude.contains(&n) && node.fits(pod))
                .map(|(n, _)| n),
        );
        if self.nodes.is_empty() {
            return None;
        }
        let uid = format!("{}-move-{}", arrival_uid(id), self.moves);
        let to = decider
            .decide_among(policy, cluster, pod, &uid, &self.nodes)
            .ok()
            .filter(|to| cluster.place(pod, *to).is_ok())?;
        Some(Move {
            id,
            pod: *pod,
            from,
            to,
        })
    }

    /// Place `r` (taken off `target`) after one pod of another node moves on to a third:
    /// the first of the demand's remembered links (at most `CHAIN_LINKS`) where both hops
    /// succeed. The cluster is as it was when none does.
    fn move_by_link(
        &mut self,
        cluster: &mut Cluster,
        decider: &mut Decider,
        policy: &mut dyn Policy,
        r: &Resident,
        target: usize,
        moves: &[Move],
    ) -> Option<(Move, Move)> {
        // The links the plan found for this demand, if no rescue has moved a pod since (so
        // each link's pod is still where it was); the moves below check everything else.
        let links: Vec<Link> = match self.linked.get(&r.pod) {
            Some(l) if l.rescues == self.rescues => l.links.clone(),
            _ => return None,
        };
        let usable = |l: &Link, residents: &[Vec<Resident>]| {
            l.node != target
                && !moves.iter().any(|m| m.id == l.resident.id)
                && residents
                    .get(l.node)
                    .is_some_and(|list| list.contains(&l.resident))
        };
        for link in links {
            if !usable(&link, &self.residents) {
                continue;
            }
            let q = link.resident;
            let from = placement(link.node, &q);
            cluster.remove(&q.pod, from);
            let exclude = [target, link.node];
            if let Some(mq) = self.move_one(cluster, decider, policy, q.id, &q.pod, from, exclude) {
                let home = placement(target, r);
                let hop = self.move_one(cluster, decider, policy, r.id, &r.pod, home, [target; 2]);
                if let Some(mp) = hop {
                    return Some((mq, mp));
                }
                cluster.remove(&q.pod, mq.to);
            }
            let restored = cluster.place(&q.pod, from).is_ok();
            debug_assert!(restored, "undoing a move must fit where the pod was");
        }
        None
    }
}

/// Undo `moves` (latest first) and put `movers` back on `target`.
fn undo(cluster: &mut Cluster, target: usize, movers: &[Resident], moves: &[Move]) {
    for m in moves.iter().rev() {
        cluster.remove(&m.pod, m.to);
        if m.from.node != target {
            let restored = cluster.place(&m.pod, m.from).is_ok();
            debug_assert!(restored, "undoing a move must fit where the pod was");
        }
    }
    for r in movers {
        let restored = cluster.place(&r.pod, placement(target, r)).is_ok();
        debug_assert!(restored, "undoing a move must fit where the pod was");
    }
}
