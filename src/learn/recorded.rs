//! Training on a recorded history (`allot train --history`): the cluster's own decisions as
//! the supervised phase's examples. The recorded pods are replayed in their arrival order on
//! the recorded nodes, each placed on the node the cluster chose while that node can still
//! take it, the starting policy deciding otherwise (a pod the cluster never bound, or one
//! whose node is full because the training replay keeps every pod to the end). The replay is
//! the episode replay every phase uses ([`super::episode::run_following`]); only the choice
//! among the feasible candidates is overridden ([`Follow`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::model::{Cluster, DeviceSet, Node, PodDemand};
use crate::policy::{Context, Policy};

/// A recorded history's decisions: its pods in arrival order and where the cluster put each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decisions {
    pub pods: Vec<PodDemand>,
    /// The node index (in the trace's cluster) of each pod of `pods`; `None` for a pod the
    /// cluster never bound, or bound to a node the inventory does not list.
    pub nodes: Vec<Option<usize>>,
}

impl Decisions {
    /// The decisions of `pods` (rows of a history), arriving at `created` (Unix seconds,
    /// row by row; ties keep row order) on the nodes named by `nodes` (row by row; empty for
    /// none), looked up in `cluster`.
    pub fn of_rows(
        cluster: &Cluster,
        pods: &[PodDemand],
        created: &[u64],
        nodes: &[String],
    ) -> Decisions {
        let index: std::collections::HashMap<&str, usize> = cluster
            .nodes()
            .iter()
            .enumerate()
            .map(|(i, n)| (&*n.name, i))
            .collect();
        let mut order: Vec<usize> = (0..pods.len()).collect();
        order.sort_by_key(|&r| created.get(r).copied().unwrap_or(u64::MAX));
        Decisions {
            pods: order.iter().map(|&r| pods[r]).collect(),
            nodes: order
                .iter()
                .map(|&r| nodes.get(r).and_then(|n| index.get(n.as_str()).copied()))
                .collect(),
        }
    }

    /// How many pods the cluster placed on a node of the inventory.
    pub fn placed(&self) -> usize {
        self.nodes.iter().flatten().count()
    }
}

/// A policy that takes the recorded node of arrival `next` whenever it is a candidate, and
/// otherwise `inner`'s choice. `inner` scores every decision all the same, so what it
/// records (the candidates' features) is the same as in any other replay.
#[derive(Debug)]
pub struct Follow<P> {
    inner: P,
    nodes: Vec<Option<usize>>,
    /// The arrival being decided, advanced by the replay's step hook.
    next: Arc<AtomicUsize>,
}

impl<P: Policy> Follow<P> {
    pub fn new(inner: P, nodes: Vec<Option<usize>>, next: Arc<AtomicUsize>) -> Self {
        Follow { inner, nodes, next }
    }
}

impl<P: Policy> Policy for Follow<P> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn begin(&mut self, ctx: &Context, draw: u64) {
        self.inner.begin(ctx, draw);
    }

    fn wants_prices(&self) -> bool {
        self.inner.wants_prices()
    }

    fn rebase(&mut self) {
        self.inner.rebase();
    }

    fn score(&mut self, cluster: &Cluster, pod: &PodDemand, candidates: &[usize], out: &mut [i64]) {
        self.inner.score(cluster, pod, candidates, out);
        let at = self.next.load(Ordering::Relaxed);
        if let Some(node) = self.nodes.get(at).copied().flatten()
            && let Some(k) = candidates.iter().position(|&c| c == node)
        {
            out[k] = i64::MAX;
        }
    }

    fn devices(&mut self, node: &Node, pod: &PodDemand) -> Option<DeviceSet> {
        self.inner.devices(node, pod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::episode::{run, run_following};
    use crate::policy::PolicyKind;
    use crate::policy::learned::{PolicyFile, Provenance};
    use crate::policy::testkit::{cluster, share, target, whole};
    use crate::sim::replay::{context, replay_with};

    #[test]
    fn decisions_are_in_arrival_order_with_unknown_nodes_left_to_the_policy() {
        let c = cluster(&[8, 4]);
        let names: Vec<String> = c.nodes().iter().map(|n| n.name.to_string()).collect();
        let pods = [whole(1), share(500), whole(2)];
        let rows = [names[1].clone(), String::new(), "gone".to_string()];
        let d = Decisions::of_rows(&c, &pods, &[30, 10, 20], &rows);
        assert_eq!(d.pods, vec![share(500), whole(2), whole(1)]);
        assert_eq!(d.nodes, vec![None, None, Some(1)]);
        assert_eq!(d.placed(), 1);
    }

    #[test]
    fn the_replay_follows_the_recorded_nodes_where_they_fit() {
        let c = cluster(&[8, 8, 4, 2]);
        let pods = vec![whole(1), share(300), whole(2), whole(4), share(700)];
        let t = target(&pods);
        let fgd = PolicyFile::fgd_start(Provenance::default());
        // Where FGD alone puts each pod, and where LeastAllocated (spreading) put them.
        let own = run(&c, &t, &pods, &fgd, 0.0, 1);
        let ctx = context(&c, &t, 1);
        let mut spread = PolicyKind::LeastAllocated.build_for(&ctx);
        let mut recorded: Vec<Option<usize>> = Vec::new();
        replay_with(&c, &pods, spread.as_mut(), ctx, |s| {
            recorded.push(s.placed.map(|p| p.node))
        });
        assert_eq!(recorded.iter().flatten().count(), pods.len());
        let (ep, followed) = run_following(&c, &t, &pods, &fgd, &recorded, 1);
        assert_eq!(
            followed,
            pods.len(),
            "every recorded node could take its pod"
        );
        assert_eq!(ep.transitions.len(), pods.len());
        assert_ne!(
            own.transitions
                .iter()
                .map(|t| t.features)
                .collect::<Vec<_>>(),
            ep.transitions
                .iter()
                .map(|t| t.features)
                .collect::<Vec<_>>(),
            "the recorded decisions are not FGD's"
        );
        // A recorded node that cannot take the pod leaves the choice to the policy.
        let full = vec![Some(3); pods.len()];
        let (ep, followed) = run_following(&c, &t, &pods, &fgd, &full, 1);
        assert!(
            followed < pods.len(),
            "node 3 has 2 GPUs: not every pod fits"
        );
        assert_eq!(
            ep.transitions.len(),
            pods.len(),
            "the others are still placed"
        );
    }
}
