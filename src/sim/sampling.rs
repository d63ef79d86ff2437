//! kube-scheduler's node sampling, modelled for the simulator. kube-scheduler does not filter
//! every node for every pod: it scans the nodes from a start that rotates from pod to pod and
//! stops once it has found "enough" feasible ones (`percentageOfNodesToScore`), and only those
//! reach the extender. [`NodeScan`] gives a replay the candidates kube-scheduler would have
//! sent, so the quality cost of each setting is measured (`allot simulate --node-sampling`).
//!
//! The rule, as kube-scheduler's `pkg/scheduler/schedule_one.go` applies it (read in a recent
//! release's source; the e2e control plane pins v1.37):
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
//! The snapshot's order is, for nodes of one zone, the order they joined the scheduler's cache
//! (at start-up, the API server's listing, by name); zones are interleaved. The simulator scans
//! the node list in its order, which for the openb lists is name order.
//!
//! "Feasible" while kube-scheduler counts is what its own filter plugins see ([`KubeFilter`]):
//! by default the pod's requests of CPU, memory and whole GPUs (`nvidia.com/gpu`, which nodes
//! advertise and whole-GPU pods request). A share of a GPU is an annotation and GPU models are
//! a label, so kube-scheduler counts nodes with no room for the share or of the wrong model,
//! and the extender then drops them: the decision chooses among the allot-feasible part of
//! what was found. [`KubeFilter::Allot`] counts with allot's filter instead: every node found
//! is a candidate, the most a setting can give (not always the better placement: a greedy
//! policy does not always do better with more choice).
//! kube-scheduler checks nodes in parallel, so a few infeasible nodes past the last one kept
//! may also count as processed; here the scan is sequential.

use std::fmt;
use std::str::FromStr;

use crate::model::{Cluster, GpuDemand, MAX_GPUS_PER_NODE, Node, PodDemand};

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

/// A sampling setting that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamplingParseError {
    #[error(
        "node sampling {0:?}: expected `all`, `adaptive` or a percentageOfNodesToScore from 0 to 100 (0 = adaptive)"
    )]
    Sampling(String),
    #[error("kube filter {0:?}: expected `requests` or `allot`")]
    Filter(String),
}

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
            _ => Err(SamplingParseError::Sampling(text.to_string())),
        }
    }
}

/// What kube-scheduler's filter counts as a feasible node while it looks for its
/// [`NodeSampling::nodes_to_find`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KubeFilter {
    /// Its own plugins, as on the chart's cluster: CPU, memory and whole GPUs
    /// (`nvidia.com/gpu`: the node's GPU count minus the whole GPUs its pods requested).
    #[default]
    Requests,
    /// allot's filter (shares, device layout, models), as if kube-scheduler knew them all:
    /// every node found is a candidate, the most candidates a setting can give.
    Allot,
}

impl KubeFilter {
    /// Whether kube-scheduler counts `node` as feasible for `pod`, given allot's verdict
    /// `fits` (a node allot accepts always passes kube-scheduler's checks too).
    fn counts(self, node: &Node, pod: &PodDemand, fits: bool) -> bool {
        match self {
            KubeFilter::Allot => fits,
            KubeFilter::Requests => fits || requests_fit(node, pod),
        }
    }
}

impl fmt::Display for KubeFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KubeFilter::Requests => "requests",
            KubeFilter::Allot => "allot",
        })
    }
}

impl FromStr for KubeFilter {
    type Err = SamplingParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "requests" => Ok(KubeFilter::Requests),
            "allot" => Ok(KubeFilter::Allot),
            _ => Err(SamplingParseError::Filter(text.to_string())),
        }
    }
}

/// kube-scheduler's resource check (NodeResourcesFit) of `pod` on `node`: CPU and memory
/// requests, and for whole GPUs the extended resource `nvidia.com/gpu`, whose allocatable is
/// the node's GPU count and whose requests are the whole GPUs of the pods on it. Shares and
/// models are invisible to it.
pub fn requests_fit(node: &Node, pod: &PodDemand) -> bool {
    if pod.cpu_milli > node.cpu_free || pod.memory_bytes > node.memory_free {
        return false;
    }
    match pod.gpu {
        GpuDemand::Whole { count } => {
            let requested: usize = (1..=MAX_GPUS_PER_NODE)
                .map(|k| k * usize::from(node.kinds.count(k)))
                .sum();
            requested + count as usize <= node.gpu_count()
        }
        GpuDemand::Shared { .. } | GpuDemand::None => true,
    }
}

/// kube-scheduler's filter scan over one replay: the sampling and the rotating start
/// (`nextStartNodeIndex`), which carries from one arrival to the next.
#[derive(Debug, Clone, Default)]
pub struct NodeScan {
    sampling: NodeSampling,
    filter: KubeFilter,
    next_start: usize,
}

impl NodeScan {
    pub fn new(sampling: NodeSampling, filter: KubeFilter) -> Self {
        NodeScan {
            sampling,
            filter,
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

    /// Fill `out` with the candidates kube-scheduler would send the extender for `pod`, less
    /// the ones allot's filter rejects: it scans `cluster` in node order from the rotating
    /// start until it has counted [`NodeSampling::nodes_to_find`] feasible nodes (by its
    /// [`KubeFilter`]) or seen every node, then moves the start on by the nodes scanned.
    /// `out` holds the allot-feasible nodes among those counted, sorted by node index: the
    /// order of a decision's candidates changes no policy's choice but Random's draws, and
    /// sorted, 100 % gives exactly `All`.
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
        let mut found = 0;
        while scanned < n && found < want {
            let i = (start + scanned) % n;
            scanned += 1;
            let fits = nodes[i].fits(pod);
            if self.filter.counts(&nodes[i], pod, fits) {
                found += 1;
                if fits {
                    out.push(i);
                }
            }
        }
        self.next_start = (start + scanned) % n;
        out.sort_unstable();
    }
}

#[cfg(test)]
mod tests;
