//! Why `learned` chose a node: for the chosen candidate and the runner-up, every feature's
//! value and its contribution `w_i * x_i` to Q, and the level that decided (ties between
//! equal levels go to the context's fixed node order, as in every decision). Outside the
//! policy's trained workloads FGD decides alone, or an expert's weights do, and the
//! explanation says so below its rows.

use std::fmt::Write as _;

use super::features::{COUNT, NAMES};
use super::{Learned, embedded_file, fgd_level};
use crate::model::{Cluster, PodDemand};
use crate::policy::Context;

/// One candidate's side of an explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Explained {
    /// Node index in the cluster.
    pub node: usize,
    /// `floor(levels * Q)`: the score the decision compares.
    pub level: i64,
    pub features: [f64; COUNT],
    pub contributions: [f64; COUNT],
}

/// The chosen node and the runner-up (absent with one candidate).
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub chosen: Explained,
    pub runner_up: Option<Explained>,
    /// Why FGD decided alone (the workload lies outside the policy's support), if it did.
    pub outside: Option<String>,
    /// The traces of the expert whose weights decided, if one did.
    pub expert: Option<String>,
}

/// Explain `learned`'s decision for `pod` among `candidates` (feasible node indices) under
/// `ctx` (its weights, target workload and tie order). `None` without candidates.
pub fn explain(
    ctx: &Context,
    cluster: &Cluster,
    pod: &PodDemand,
    candidates: &[usize],
) -> Option<Explanation> {
    let file = ctx.learned.as_deref().unwrap_or_else(|| embedded_file());
    let mut scorer = Learned::new(file, (*ctx.target).clone());
    let features = scorer.features(cluster, pod, candidates);
    let outside = scorer.outside().map(ToString::to_string);
    let mut ranked: Vec<Explained> = candidates
        .iter()
        .zip(features)
        .map(|(&node, f)| {
            let (level, contributions) = if outside.is_some() {
                // FGD's own level, and its score the only contribution.
                let mut only_fgd = [0.0; COUNT];
                only_fgd[0] = f[0];
                (fgd_level(f[0]) as i64, only_fgd)
            } else {
                (scorer.level(&f), scorer.contributions(&f))
            };
            Explained {
                node,
                level,
                contributions,
                features: f,
            }
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.level
            .cmp(&a.level)
            .then_with(|| ctx.rank(a.node).cmp(&ctx.rank(b.node)))
    });
    let mut ranked = ranked.into_iter();
    Some(Explanation {
        chosen: ranked.next()?,
        runner_up: ranked.next(),
        outside,
        expert: scorer.expert().map(str::to_string),
    })
}

impl Explanation {
    /// A plain-text table: one row per feature, value and contribution for each node; rows
    /// whose weight is zero for both are left out (they cannot have decided).
    pub fn table(&self, cluster: &Cluster) -> String {
        let name = |e: &Explained| {
            cluster
                .node(e.node)
                .map_or_else(|| format!("#{}", e.node), |n| n.name.to_string())
        };
        let mut out = String::new();
        let head = |e: &Explained| format!("{} (level {})", name(e), e.level);
        let runner = self.runner_up.as_ref();
        let _ = writeln!(
            out,
            "{:<24} {:>30} {:>30}",
            "feature",
            format!("chosen {}", head(&self.chosen)),
            runner.map_or_else(
                || "no runner-up".to_string(),
                |r| format!("runner-up {}", head(r))
            )
        );
        let _ = writeln!(
            out,
            "{:<24} {:>14} {:>15} {:>14} {:>15}",
            "", "value", "contribution", "value", "contribution"
        );
        let c = &self.chosen;
        for (i, name) in NAMES.iter().enumerate() {
            let zero =
                c.contributions[i] == 0.0 && runner.is_none_or(|r| r.contributions[i] == 0.0);
            if zero {
                continue;
            }
            let _ = write!(
                out,
                "{:<24} {:>14.4} {:>15.5}",
                name, c.features[i], c.contributions[i]
            );
            if let Some(r) = runner {
                let _ = write!(out, " {:>14.4} {:>15.5}", r.features[i], r.contributions[i]);
            }
            out.push('\n');
        }
        // Below the rows, so they keep their place after the two header lines.
        if let Some(why) = &self.outside {
            let _ = writeln!(out, "placed as FGD: {why}");
        }
        if let Some(traces) = &self.expert {
            let _ = writeln!(
                out,
                "scored with the expert trained on {traces} (outside the policy's own support)"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::frag::TargetWorkload;
    use crate::model::{GpuDemand, ModelSet};
    use crate::policy::learned::{PolicyFile, Provenance};
    use crate::snapshot::parse_snapshot;
    use std::sync::Arc;

    #[test]
    fn the_explanation_names_the_chosen_node_and_sums_to_its_q() {
        let snap = parse_snapshot(
            "inline",
            r#"{"nodes": [{"name": "a", "cpu": "16", "memory": "64Gi", "gpus": 2, "model": "T4"},
                          {"name": "b", "cpu": "16", "memory": "64Gi", "gpus": 2, "model": "T4"}],
                "pods": [{"name": "x", "node": "b", "cpu": "1", "memory": "1Gi", "gpus": 1,
                          "devices": [0]}]}"#,
        )
        .unwrap();
        let pod = PodDemand {
            cpu_milli: 1000,
            memory_bytes: 1 << 30,
            gpu: GpuDemand::Whole { count: 1 },
            models: ModelSet::ANY,
        };
        let target = Arc::new(TargetWorkload::from_pods(&[pod.shape()], |_| String::new()));
        let fgd_only = PolicyFile::fgd_start(Provenance::default());
        let ctx = Context::new(&snap.cluster, target, 42).with_learned(Some(Arc::new(fgd_only)));
        let e = explain(&ctx, &snap.cluster, &pod, &[0, 1]).unwrap();
        let runner = e.runner_up.as_ref().unwrap();
        assert!(e.chosen.level >= runner.level);
        assert_ne!(e.chosen.node, runner.node);
        let q: f64 = e.chosen.contributions.iter().sum();
        let fgd = e.chosen.features[0];
        assert!((q - fgd).abs() < 1e-9, "FGD's weights: Q = fgd_score");
        let table = e.table(&snap.cluster);
        assert!(
            table.contains("fgd_score") && table.contains("runner-up"),
            "{table}"
        );
        assert!(explain(&ctx, &snap.cluster, &pod, &[]).is_none());
        assert!(e.outside.is_none() && !table.contains("placed as FGD"));

        // A policy trained on other workloads explains FGD's decision, and says why.
        let mut w = PolicyFile::fgd_start(Provenance::default()).weights;
        w[1] = 0.3;
        let mut far = crate::policy::learned::WorkloadMix::of(&ctx.target);
        far.0[0] += 0.5;
        let support = crate::policy::learned::Support::spanning(&[far], 0.05);
        let elsewhere = PolicyFile::new(w, 100, Provenance::default()).with_support(support);
        let ctx = ctx.with_learned(Some(Arc::new(elsewhere)));
        let e = explain(&ctx, &snap.cluster, &pod, &[0, 1]).unwrap();
        let why = e.outside.as_deref().unwrap_or_default();
        assert!(why.contains("cpu_only_pods"), "{why}");
        assert_eq!(
            e.chosen.level,
            super::fgd_level(e.chosen.features[0]) as i64
        );
        assert_eq!(e.chosen.contributions[1], 0.0, "no correction applied");
        assert!(e.table(&snap.cluster).contains("\nplaced as FGD: "));
    }
}
