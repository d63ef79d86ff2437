//! Where a pod could go now, remembered between searches (the consolidator's plan asks it
//! for every resident of every node it considers).

use crate::model::{Cluster, PodDemand};

/// Where a pod could go now: the first two nodes that fit it (by index), each with the
/// node's generation when seen, and the rescue count when computed.
///
/// Kept between searches while it still holds: placements only take room, so a node that
/// did not fit still does not, and the answer changes only if a node it names has changed
/// since (its generation moved) or a rescue freed room (moves leave room on the target).
/// Computed only on the cluster as it stands between arrivals, never mid-attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Destinations {
    first: [Option<(usize, u64)>; 2],
    rescues: u64,
}

impl Destinations {
    pub(super) fn of(cluster: &Cluster, pod: &PodDemand, rescues: u64) -> Self {
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

    pub(super) fn current(&self, cluster: &Cluster, rescues: u64) -> bool {
        self.rescues == rescues
            && self.first.iter().flatten().all(|&(n, generation)| {
                cluster.nodes().get(n).map(|node| node.generation) == Some(generation)
            })
    }

    /// Whether some node other than `target` fits.
    pub(super) fn besides(&self, target: usize) -> bool {
        self.first.iter().flatten().any(|&(n, _)| n != target)
    }
}
