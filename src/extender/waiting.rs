//! The reasons `/filter` gives the nodes it refuses: each distinct text once per request
//! ([`Reasons`]), and the one word `/metrics` counts pending GPU pods by
//! (`allot_extender_pending_gpu_pods{reason}`, [`Waiting`]).

use super::view::View;
use crate::model::misfit::SummaryKey;
use crate::model::{Misfit, ModelSet, Node};
use crate::snapshot::NodeState;
use rustc_hash::FxHashMap;

/// The reason most of the refused nodes gave a pod that no node could take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Waiting {
    /// Not enough free GPU: no whole devices, no device with room for the share, no GPUs.
    Gpu,
    Cpu,
    Memory,
    /// None of the allowed GPU models.
    Model,
    /// Would fit, but on a GPU the agent reports unhealthy.
    Unhealthy,
    /// Stale or missing telemetry (stale policy fail-closed).
    Telemetry,
    /// Not Ready, or cordoned.
    Node,
    /// A plan (a ScheduleRequest's, or the consolidator's) puts the pod on another node.
    Plan,
    /// A node allot has no record of.
    Other,
}

impl Waiting {
    pub const ALL: [Waiting; 9] = [
        Waiting::Gpu,
        Waiting::Cpu,
        Waiting::Memory,
        Waiting::Model,
        Waiting::Unhealthy,
        Waiting::Telemetry,
        Waiting::Node,
        Waiting::Plan,
        Waiting::Other,
    ];

    /// The metric's label value.
    pub fn name(self) -> &'static str {
        match self {
            Waiting::Gpu => "gpu",
            Waiting::Cpu => "cpu",
            Waiting::Memory => "memory",
            Waiting::Model => "model",
            Waiting::Unhealthy => "unhealthy",
            Waiting::Telemetry => "telemetry",
            Waiting::Node => "node",
            Waiting::Plan => "plan",
            Waiting::Other => "other",
        }
    }

    /// The word for a node whose state (`NodeState::usable`) keeps new work off it.
    pub fn of_state(state: &NodeState) -> Self {
        if state.ready && !state.unschedulable {
            Waiting::Telemetry
        } else {
            Waiting::Node
        }
    }

    /// The word for a misfit; `sick` when the node has unhealthy GPUs withheld.
    pub fn of_misfit(m: Misfit, sick: bool) -> Self {
        match m {
            _ if sick => Waiting::Unhealthy,
            Misfit::Cpu { .. } => Waiting::Cpu,
            Misfit::Memory { .. } => Waiting::Memory,
            Misfit::Model => Waiting::Model,
            Misfit::NoGpus | Misfit::GpuShare { .. } | Misfit::WholeGpus { .. } => Waiting::Gpu,
        }
    }
}

/// Refused nodes counted by reason during one filter.
#[derive(Debug, Default)]
pub struct Tally([u32; Waiting::ALL.len()]);

impl Tally {
    pub fn add(&mut self, why: Waiting) {
        self.0[why as usize] += 1;
    }

    /// The most frequent reason (the first in [`Waiting::ALL`] on a tie); `None` if none.
    pub fn dominant(&self) -> Option<Waiting> {
        let (i, &n) = self
            .0
            .iter()
            .enumerate()
            .max_by_key(|&(i, &n)| (n, std::cmp::Reverse(i)))?;
        (n > 0).then(|| Waiting::ALL[i])
    }
}

/// One request's distinct failure reasons: each text once, misfits by their summary key.
#[derive(Debug, Default)]
pub struct Reasons {
    pub texts: Vec<String>,
    index: FxHashMap<String, usize>,
    misfits: Vec<(SummaryKey, usize)>,
}

impl Reasons {
    /// The index of `text`, added if new.
    pub fn text(&mut self, text: &str) -> usize {
        if let Some(&i) = self.index.get(text) {
            return i;
        }
        self.texts.push(text.to_string());
        self.index.insert(text.to_string(), self.texts.len() - 1);
        self.texts.len() - 1
    }

    /// The index of misfit `m`'s summary on `node`, formatted once per summary key.
    pub fn misfit(&mut self, m: Misfit, node: &Node, allowed: ModelSet, view: &View) -> usize {
        let key = m.summary_key(node);
        if let Some(&(_, i)) = self.misfits.iter().find(|(k, _)| *k == key) {
            return i;
        }
        let i = self.text(&m.summary(node, allowed, &view.cluster.models));
        self.misfits.push((key, i));
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_frequent_reason_wins_and_ties_go_to_the_first() {
        let mut t = Tally::default();
        assert_eq!(t.dominant(), None);
        t.add(Waiting::Cpu);
        t.add(Waiting::Model);
        assert_eq!(t.dominant(), Some(Waiting::Cpu), "tie: cpu comes first");
        t.add(Waiting::Model);
        assert_eq!(t.dominant(), Some(Waiting::Model));
        for (i, w) in Waiting::ALL.iter().enumerate() {
            assert_eq!(*w as usize, i, "ALL is in declaration order");
        }
    }

    #[test]
    fn misfits_map_to_their_resource_and_unhealthy_gpus_win() {
        let cpu = Misfit::Cpu {
            need: 2,
            free: 1,
            capacity: 4,
        };
        assert_eq!(Waiting::of_misfit(cpu, false), Waiting::Cpu);
        assert_eq!(Waiting::of_misfit(cpu, true), Waiting::Unhealthy);
        assert_eq!(Waiting::of_misfit(Misfit::NoGpus, false), Waiting::Gpu);
        assert_eq!(Waiting::of_misfit(Misfit::Model, false), Waiting::Model);
        let mut state = NodeState::healthy();
        assert_eq!(Waiting::of_state(&state), Waiting::Telemetry);
        state.unschedulable = true;
        assert_eq!(Waiting::of_state(&state), Waiting::Node);
    }
}
