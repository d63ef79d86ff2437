//! Depth-2 moves: a pod with no destination goes to a node `D` once one of `D`'s own
//! residents `Q` moves on to a third node with room (target <- P <- D <- Q -> E). This module
//! finds the links (`D`, `Q`); the consolidator plans with them and verifies each hop
//! through the replay's decider. Pure: it reads the cluster and changes nothing.

use super::plan::{Resident, could_host, fits_once_gone};
use crate::model::{Cluster, Node, PodDemand};

/// Most distinct pod demands whose links the plan searches for afresh per failed arrival
/// (remembered ones are free): each costs a pass over the nodes and their pods.
pub const CHAIN_DEMANDS: usize = 32;

/// Most links remembered, and tried when verifying, per pod demand: each failed try costs
/// up to two decisions and a pass over the nodes.
pub const CHAIN_LINKS: usize = 4;

/// A node `node` on which a pod fits once `resident` (one of its pods) has moved away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub node: usize,
    pub resident: Resident,
}

/// Whether `node` fits `pod` once `q`, one of its pods, is released.
pub fn fits_without(node: &Node, q: &Resident, pod: &PodDemand) -> bool {
    if node.cpu_free.saturating_add(q.pod.cpu_milli) < pod.cpu_milli
        || node.memory_free.saturating_add(q.pod.memory_bytes) < pod.memory_bytes
    {
        return false;
    }
    fits_once_gone(node, [q], pod)
}

/// Fill `out` with at most `limit` links for `pod`, by node index: nodes other than
/// `exclude` that cannot host `pod` now but can once one resident leaves, that resident
/// being the smallest (GPU, CPU, memory, arrival) that suffices among those not in `skip`
/// that `movable(node, resident)` accepts (it has somewhere to go).
#[allow(clippy::too_many_arguments)]
pub fn links(
    cluster: &Cluster,
    residents: &[Vec<Resident>],
    pod: &PodDemand,
    exclude: usize,
    skip: &[usize],
    limit: usize,
    mut movable: impl FnMut(usize, &Resident) -> bool,
    out: &mut Vec<Link>,
) {
    out.clear();
    for (d, node) in cluster.nodes().iter().enumerate() {
        if out.len() >= limit {
            break;
        }
        if d == exclude || !could_host(node, pod) || node.fits(pod) {
            continue;
        }
        let Some(list) = residents.get(d) else {
            continue;
        };
        let mut suffices: Vec<&Resident> = list
            .iter()
            .filter(|q| !skip.contains(&q.id) && fits_without(node, q, pod))
            .collect();
        suffices.sort_by_key(|q| {
            let p = &q.pod;
            (p.gpu.total_milli(), p.cpu_milli, p.memory_bytes, q.id)
        });
        if let Some(q) = suffices.into_iter().find(|q| movable(d, q)) {
            out.push(Link {
                node: d,
                resident: *q,
            });
        }
    }
}

/// The links of one pod demand, remembered between searches while they hold: with the
/// nodes they name unchanged (generation) and no rescue since (only a rescue moves a pod
/// away or frees room; placements only take room, so a demand with no link keeps none).
#[derive(Debug, Clone, PartialEq)]
pub struct Linked {
    pub links: Vec<Link>,
    generations: Vec<u64>,
    pub rescues: u64,
}

impl Linked {
    /// The links of `pod` on `cluster` (at most [`CHAIN_LINKS`]), a link's pod being one
    /// `movable` accepts.
    pub fn of(
        cluster: &Cluster,
        residents: &[Vec<Resident>],
        pod: &PodDemand,
        rescues: u64,
        movable: impl FnMut(usize, &Resident) -> bool,
    ) -> Self {
        let mut links = Vec::new();
        self::links(
            cluster,
            residents,
            pod,
            usize::MAX,
            &[],
            CHAIN_LINKS,
            movable,
            &mut links,
        );
        let generations = links
            .iter()
            .map(|l| cluster.nodes().get(l.node).map_or(0, |n| n.generation))
            .collect();
        Linked {
            links,
            generations,
            rescues,
        }
    }

    pub fn current(&self, cluster: &Cluster, rescues: u64) -> bool {
        self.rescues == rescues
            && self
                .links
                .iter()
                .zip(&self.generations)
                .all(|(l, &g)| cluster.nodes().get(l.node).map(|n| n.generation) == Some(g))
    }
}
