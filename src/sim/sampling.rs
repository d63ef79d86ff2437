//! kube-scheduler's node sampling, modelled for the simulator. kube-scheduler does not filter
//! every node for every pod: it scans the nodes from a start that rotates from pod to pod and
//! stops once it has found "enough" feasible ones (`percentageOfNodesToScore`), and only those
//! reach the extender. [`NodeScan`] gives a replay the candidates kube-scheduler would have
//! sent, so the quality cost of each setting is measured (`allot simulate --node-sampling`).
//!
//! The rule, as kube-scheduler (`pkg/scheduler/schedule_one.go`, v1.37) applies it:
//! - How many feasible nodes to find in a cluster of N nodes (`numFeasibleNodesToFind`): all N
//!   when N is below 100. Otherwise a percentage of N, which is the profile's
//!   `percentageOfNodesToScore`, else the configuration's, else (unset or 0) an adaptive one:
//!   50 minus one point per 125 nodes (integer division), never below 5. The count is
//!   N x percentage / 100 (integer division), never below 100.
//! - The filter checks nodes in the snapshot's order starting at `nextStartNodeIndex`,
//!   wrapping around, and stops once it holds that many feasible nodes. Afterwards the start
//!   moves on by the number of nodes it processed (the feasible ones kept plus the infeasible
//!   ones seen), modulo N. A pod that fits nowhere processes every node, so the start stays.
//! - The extender's filter and prioritize get only the nodes found.
//!
//! Where the model simplifies: kube-scheduler checks nodes in parallel, so a few infeasible
//! nodes past the last one kept may also count as processed; here the scan is sequential.
//! "Feasible" here is allot's filter (CPU, memory, GPU devices, models). kube-scheduler's own
//! plugins cannot see GPU shares or models, so on a cluster they may count nodes the extender
//! then rejects: the candidates allot gets are at most the ones modelled here, and the cost
//! measured is a lower bound.

use std::fmt;
use std::str::FromStr;

use crate::model::{Cluster, PodDemand};

/// kube-scheduler's `minFeasibleNodesToFind`: clusters smaller than this are filtered whole,
/// and no percentage makes it look for fewer feasible nodes.
pub const MIN_NODES_TO_FIND: usize = 100;
/// kube-scheduler's `minFeasibleNodesPercentageToFind`: the adaptive percentage's floor.
pub const MIN_ADAPTIVE_PERCENT: usize = 5;
/// The adaptive percentage of a (hypothetical) empty cluster...
const ADAPTIVE_BASE_PERCENT: usize = 50;
/// ...which drops one point per this many nodes (so 46 % at 500 nodes, 10 % at 5,000).
const NODES_PER_ADAPTIVE_POINT: usize = 125;

/// Which nodes a pod's decision chooses among.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeSampling {
    /// Every feasible node: the FGD paper's protocol, and allot's own view of the cluster.
    #[default]
    All,
    /// kube-scheduler with `percentageOfNodesToScore` unset or 0 (its default).
    Adaptive,
    /// kube-scheduler with `percentageOfNodesToScore` set to this (1..=100).
    Percent(u8),
}

impl NodeSampling {
    /// The percentage kube-scheduler applies to a cluster of `nodes` nodes; `None` for `All`.
    pub fn percent(self, nodes: usize) -> Option<usize> {
        match self {
            NodeSampling::All => None,
            NodeSampling::Adaptive => Some(
                ADAPTIVE_BASE_PERCENT
                    .saturating_sub(nodes / NODES_PER_ADAPTIVE_POINT)
                    .max(MIN_ADAPTIVE_PERCENT),
            ),
            NodeSampling::Percent(p) => Some(usize::from(p)),
        }
    }

    /// How many feasible nodes kube-scheduler looks for in a cluster of `nodes` nodes before
    /// it stops filtering (`numFeasibleNodesToFind`); `nodes` for `All`.
    pub fn nodes_to_find(self, nodes: usize) -> usize {
        match self.percent(nodes) {
            None => nodes,
            Some(_) if nodes < MIN_NODES_TO_FIND => nodes,
            Some(pct) => (nodes * pct / 100).max(MIN_NODES_TO_FIND),
        }
    }
}

impl fmt::Display for NodeSampling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeSampling::All => f.write_str("all"),
            NodeSampling::Adaptive => f.write_str("adaptive"),
            NodeSampling::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// A `--node-sampling` value that is none of `all`, `adaptive` or a percentage 0..=100.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "node sampling {0:?}: expected `all`, `adaptive` or a percentageOfNodesToScore from 0 to 100 (0 = adaptive)"
)]
pub struct SamplingParseError(pub String);

impl FromStr for NodeSampling {
    type Err = SamplingParseError;

    /// `all`, `adaptive`, or kube-scheduler's percentage (`46` or `46%`; `0` means adaptive,
    /// as it does for kube-scheduler).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let t = text.trim();
        match t.to_ascii_lowercase().as_str() {
            "all" => return Ok(NodeSampling::All),
            "adaptive" => return Ok(NodeSampling::Adaptive),
            _ => {}
        }
        match t.strip_suffix('%').unwrap_or(t).trim().parse::<u8>() {
            Ok(0) => Ok(NodeSampling::Adaptive),
            Ok(p) if p <= 100 => Ok(NodeSampling::Percent(p)),
            _ => Err(SamplingParseError(text.to_string())),
        }
    }
}

/// kube-scheduler's filter scan over one replay: the sampling and the rotating start
/// (`nextStartNodeIndex`), which carries from one arrival to the next.
#[derive(Debug, Clone, Default)]
pub struct NodeScan {
    sampling: NodeSampling,
    next_start: usize,
}

impl NodeScan {
    pub fn new(sampling: NodeSampling) -> Self {
        NodeScan {
            sampling,
            next_start: 0,
        }
    }

    pub fn sampling(&self) -> NodeSampling {
        self.sampling
    }

    /// Where the next scan starts, as a node index.
    pub fn next_start(&self) -> usize {
        self.next_start
    }

    /// Fill `out` with the nodes kube-scheduler's filter would find for `pod`: the first
    /// [`NodeSampling::nodes_to_find`] feasible nodes of `cluster` in node order from the
    /// rotating start (every feasible node when there are fewer), then move the start on by
    /// the nodes scanned. `out` is sorted by node index: the order of a decision's candidates
    /// changes no policy's choice but Random's draws, and sorted, 100 % gives exactly `All`.
    pub fn candidates(&mut self, cluster: &Cluster, pod: &PodDemand, out: &mut Vec<usize>) {
        out.clear();
        let nodes = cluster.nodes();
        let n = nodes.len();
        if n == 0 {
            return;
        }
        let want = self.sampling.nodes_to_find(n);
        let start = self.next_start % n;
        let mut scanned = 0;
        while scanned < n && out.len() < want {
            let i = (start + scanned) % n;
            scanned += 1;
            if nodes[i].fits(pod) {
                out.push(i);
            }
        }
        self.next_start = (start + scanned) % n;
        out.sort_unstable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GpuDemand;
    use crate::policy::testkit::{cluster, pod, whole};

    #[test]
    fn adaptive_percentage_follows_kube_scheduler() {
        let a = NodeSampling::Adaptive;
        // 50 - 500/125 = 46 %; 50 - 1213/125 = 41 %; 50 - 5000/125 = 10 %.
        assert_eq!(a.percent(500), Some(46));
        assert_eq!(a.nodes_to_find(500), 230);
        assert_eq!(a.percent(1213), Some(41));
        assert_eq!(a.nodes_to_find(1213), 497);
        assert_eq!(a.percent(5000), Some(10));
        assert_eq!(a.nodes_to_find(5000), 500);
        // The floor of 5 % from 5,625 nodes on.
        assert_eq!(a.percent(6000), Some(5));
        assert_eq!(a.percent(100_000), Some(5));
        assert_eq!(a.nodes_to_find(100_000), 5000);
        assert_eq!(NodeSampling::All.percent(500), None);
        assert_eq!(NodeSampling::All.nodes_to_find(500), 500);
    }

    #[test]
    fn small_clusters_and_small_percentages_keep_a_hundred_nodes() {
        // Below 100 nodes every node is filtered, whatever the percentage.
        assert_eq!(NodeSampling::Percent(5).nodes_to_find(99), 99);
        assert_eq!(NodeSampling::Adaptive.nodes_to_find(40), 40);
        // At or above 100 nodes, never fewer than 100.
        assert_eq!(NodeSampling::Percent(5).nodes_to_find(100), 100);
        assert_eq!(NodeSampling::Percent(5).nodes_to_find(1213), 100);
        assert_eq!(NodeSampling::Percent(10).nodes_to_find(1213), 121);
        assert_eq!(NodeSampling::Percent(46).nodes_to_find(1213), 557);
        assert_eq!(NodeSampling::Percent(100).nodes_to_find(1213), 1213);
    }

    #[test]
    fn values_parse_as_kube_scheduler_reads_them() {
        assert_eq!("all".parse(), Ok(NodeSampling::All));
        assert_eq!("Adaptive".parse(), Ok(NodeSampling::Adaptive));
        assert_eq!("0".parse(), Ok(NodeSampling::Adaptive));
        assert_eq!("46".parse(), Ok(NodeSampling::Percent(46)));
        assert_eq!(" 10% ".parse(), Ok(NodeSampling::Percent(10)));
        assert_eq!("100".parse(), Ok(NodeSampling::Percent(100)));
        for bad in ["", "101", "-5", "4.5", "half", "300"] {
            assert!(bad.parse::<NodeSampling>().is_err(), "{bad}");
        }
        assert_eq!(NodeSampling::Percent(46).to_string(), "46%");
    }

    /// 250 one-GPU nodes; node `i` is full when `full(i)`.
    fn nodes_250(full: impl Fn(usize) -> bool) -> crate::model::Cluster {
        let mut c = cluster(&[1; 250]);
        for i in (0..250).filter(|&i| full(i)) {
            let at = crate::model::Placement {
                node: i,
                devices: crate::model::DeviceSet::single(0),
            };
            assert!(c.place(&whole(1), at).is_ok());
        }
        c
    }

    #[test]
    fn the_scan_rotates_by_the_nodes_it_processed() {
        // 250 nodes, 10 % -> 100 to find. Odd nodes are full, so finding 100 even nodes
        // takes 199 nodes: 0, 2, ..., 198.
        let c = nodes_250(|i| i % 2 == 1);
        let mut scan = NodeScan::new(NodeSampling::Percent(10));
        let mut out = Vec::new();
        scan.candidates(&c, &whole(1), &mut out);
        assert_eq!(out, (0..200).step_by(2).collect::<Vec<_>>());
        assert_eq!(scan.next_start(), 199);
        // The next scan starts at 199 and wraps: 200..=248 give 25 even nodes, 0..=148 the
        // other 75; 199 + 200 nodes processed = 399 -> 149.
        scan.candidates(&c, &whole(1), &mut out);
        let mut expected: Vec<usize> = (200..250).step_by(2).chain((0..150).step_by(2)).collect();
        expected.sort_unstable();
        assert_eq!(out, expected);
        assert_eq!(scan.next_start(), 149);
    }

    #[test]
    fn fewer_feasible_nodes_than_wanted_gives_them_all_and_keeps_the_start() {
        // Only nodes 10, 20, ..., 240 are free: 24 feasible, 100 wanted.
        let c = nodes_250(|i| i % 10 != 0 || i == 0);
        let mut scan = NodeScan::new(NodeSampling::Percent(10));
        let mut out = Vec::new();
        scan.candidates(&c, &whole(1), &mut out);
        assert_eq!(out, (10..250).step_by(10).collect::<Vec<_>>());
        assert_eq!(
            scan.next_start(),
            0,
            "all 250 processed: back where it started"
        );
        // A pod that fits nowhere processes every node and leaves the start alone too.
        let big = pod(1_000_000, GpuDemand::None);
        scan.candidates(&c, &big, &mut out);
        assert!(out.is_empty());
        assert_eq!(scan.next_start(), 0);
    }

    #[test]
    fn all_and_a_hundred_percent_find_every_feasible_node() {
        let c = nodes_250(|i| i % 3 == 0);
        let every: Vec<usize> = (0..250).filter(|i| i % 3 != 0).collect();
        for sampling in [NodeSampling::All, NodeSampling::Percent(100)] {
            let mut scan = NodeScan::new(sampling);
            let mut out = Vec::new();
            for _ in 0..3 {
                scan.candidates(&c, &whole(1), &mut out);
                assert_eq!(out, every, "{sampling}");
                assert_eq!(scan.next_start(), 0);
            }
        }
    }

    #[test]
    fn a_small_cluster_is_scanned_whole_whatever_the_setting() {
        let c = cluster(&[1; 30]);
        let mut scan = NodeScan::new(NodeSampling::Percent(5));
        let mut out = Vec::new();
        scan.candidates(&c, &whole(1), &mut out);
        assert_eq!(out.len(), 30);
    }
}
