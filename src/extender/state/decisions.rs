//! The latest decisions, for the GPU map page (`--gpu-map`): which node each pod's policy
//! chose, over which runner-up, by how much, and (for `learned`) each feature's part in it.
//! Kept only when the page is on; a bounded ring, newest last.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use serde::Serialize;

use super::{Store, View};
use crate::live::pod::PodRequest;
use crate::policy::PolicyKind;
use crate::policy::learned::explain::explain;

/// Decisions kept.
pub const DECISIONS_KEPT: usize = 50;

/// One decision, as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Unix seconds.
    pub at: u64,
    pub pod: String,
    pub policy: &'static str,
    pub node: String,
    pub score: i64,
    /// The best other node and its score, when there was one.
    pub runner_up: Option<(String, i64)>,
    pub feasible: usize,
    /// `learned`'s feature table for the chosen node and the runner-up.
    pub explanation: Option<String>,
}

/// The ring of decisions; `None` when the page is off.
#[derive(Debug, Default)]
pub struct Decisions(Option<Mutex<VecDeque<Decision>>>);

impl Decisions {
    pub fn on() -> Self {
        Decisions(Some(Mutex::new(VecDeque::with_capacity(DECISIONS_KEPT))))
    }
}

impl Store {
    /// Keep the latest decisions for the GPU map page.
    pub fn with_decision_log(mut self) -> Self {
        self.decisions = Decisions::on();
        self
    }

    /// Whether the latest decisions are kept (the GPU map page is on).
    pub fn keeps_decisions(&self) -> bool {
        self.decisions.0.is_some()
    }

    /// Note the decision for `req` among `nodes` (feasible node indices): `best` is the
    /// winner's position, `scores` every candidate's raw score. Nothing when the log is off.
    pub fn note_decision(
        &self,
        view: &View,
        req: &PodRequest,
        nodes: &[usize],
        best: usize,
        scores: &[i64],
    ) {
        let Some(ring) = &self.decisions.0 else {
            return;
        };
        let name = |i: usize| {
            view.cluster
                .node(i)
                .map_or_else(|| format!("#{i}"), |n| n.name.to_string())
        };
        let (Some(&node), Some(&score)) = (nodes.get(best), scores.get(best)) else {
            return;
        };
        let second = (0..nodes.len().min(scores.len()))
            .filter(|&k| k != best)
            .max_by_key(|&k| scores[k]);
        let runner_up = second.map(|k| (name(nodes[k]), scores[k]));
        // Features of the two nodes shown only: two evaluations, whatever the cluster's size.
        let shown: Vec<usize> = std::iter::once(node)
            .chain(second.map(|k| nodes[k]))
            .collect();
        let explanation = (req.policy == PolicyKind::Learned)
            .then(|| explain(&view.ctx, &view.cluster, &req.demand, &shown))
            .flatten()
            .map(|why| why.table(&view.cluster));
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let decision = Decision {
            at,
            pod: req.key.clone(),
            policy: req.policy.name(),
            node: name(node),
            score,
            runner_up,
            feasible: nodes.len(),
            explanation,
        };
        let mut ring = ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len() == DECISIONS_KEPT {
            ring.pop_front();
        }
        ring.push_back(decision);
    }

    /// The kept decisions, oldest first (empty when the log is off).
    pub fn decisions(&self) -> Vec<Decision> {
        self.decisions.0.as_ref().map_or_else(Vec::new, |ring| {
            let ring = ring.lock().unwrap_or_else(PoisonError::into_inner);
            ring.iter().cloned().collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extender::FilterAnswer;
    use crate::extender::verbs::filter;
    use crate::snapshot::parse_snapshot;

    #[test]
    fn a_learned_decision_is_kept_with_its_runner_up_and_their_features() {
        let snap = parse_snapshot(
            "inline",
            r#"{"nodes": [{"name": "a", "cpu": "16", "memory": "64Gi", "gpus": 2, "model": "T4"},
                          {"name": "b", "cpu": "16", "memory": "64Gi", "gpus": 4, "model": "T4"},
                          {"name": "c", "cpu": "16", "memory": "64Gi", "gpus": 8, "model": "T4"}]}"#,
        )
        .unwrap();
        let store = Store::new(None, Vec::new())
            .with_filter_answer(FilterAnswer::Chosen)
            .with_decision_log();
        store.replace(snap);
        let args = serde_json::from_value(serde_json::json!({
            "Pod": { "metadata": { "name": "p", "namespace": "ns", "uid": "u1",
                                   "annotations": { "allot.dev/policy": "learned" } },
                     "spec": { "containers": [{ "name": "c", "resources": {
                         "limits": { "nvidia.com/gpu": "1" } } }] } },
            "NodeNames": ["a", "b", "c"]
        }))
        .unwrap();
        let (out, _) = filter(&store, &args).unwrap();
        let chosen = out.node_names.unwrap()[0].to_string();
        let kept = store.decisions();
        assert_eq!(kept.len(), 1);
        let d = &kept[0];
        assert_eq!(
            (d.pod.as_str(), d.policy, d.node.as_str(), d.feasible),
            ("ns/p", "learned", chosen.as_str(), 3)
        );
        let (other, _) = d.runner_up.as_ref().expect("a runner-up");
        assert_ne!(other, &chosen);
        let table = d.explanation.as_deref().expect("learned explains");
        assert!(
            table.contains(&format!("chosen {chosen}")) && table.contains(other.as_str()),
            "{table}"
        );
        assert!(!Store::new(None, Vec::new()).keeps_decisions());
    }
}
