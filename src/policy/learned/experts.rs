//! More than one set of weights in a policy file: experts, each trained on its own family of
//! workloads and limited to them by its own [`Support`]. A workload inside the file's own
//! support is scored with the file's weights; outside it, with the first expert whose support
//! holds it; outside every one, by FGD alone. `allot train --combine` writes such a file from
//! separately trained ones, and training that starts from one starts from the part that scores
//! its (first) trace.

use super::costs::DeviceCosts;
use super::file::{Expert, PolicyFile};
use super::support::{Outside, Support, WorkloadMix};

/// The weights a file scores a workload with.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice<'a> {
    /// The file's own weights (the workload is inside its support, or it has none).
    Own,
    /// An expert's.
    Expert(&'a Expert),
    /// None: FGD alone, and why (the file's own support's verdict).
    Fgd(Outside),
}

impl PolicyFile {
    /// Whose weights score a workload of `mix`.
    pub fn choose(&self, mix: &WorkloadMix) -> Choice<'_> {
        let Some(why) = self.support.as_ref().and_then(|s| s.outside(mix)) else {
            return Choice::Own;
        };
        match self
            .experts
            .iter()
            .find(|e| e.support.outside(mix).is_none())
        {
            Some(e) => Choice::Expert(e),
            None => Choice::Fgd(why),
        }
    }

    /// Which weights score a workload of `mix`, in words ("the weights trained on ..." or
    /// "FGD alone"), and why FGD decides alone when it does: what logs and the CLI say.
    pub fn scored_by(&self, mix: &WorkloadMix) -> (String, Option<Outside>) {
        let trained_on = |traces: &[String]| format!("the weights trained on {}", traces.join(","));
        match self.choose(mix) {
            Choice::Own => (trained_on(&self.provenance.traces), None),
            Choice::Expert(e) => (trained_on(&e.traces), None),
            Choice::Fgd(why) => ("FGD alone".to_string(), Some(why)),
        }
    }

    /// The plain file (no experts) whose weights score a workload of `mix`: this file without
    /// its experts, an expert's weights under this file's levels, or FGD's warm start. What a
    /// training run starting from this file starts from for that workload.
    pub fn part_for(&self, mix: &WorkloadMix) -> PolicyFile {
        let plain = |weights: &[f64], support: Option<Support>, costs: &Option<DeviceCosts>| {
            let mut f = PolicyFile::new(weights.to_vec(), self.levels, self.provenance.clone());
            f.features.clone_from(&self.features);
            f.device_costs.clone_from(costs);
            f.with_support(support)
        };
        match self.choose(mix) {
            Choice::Own => plain(&self.weights, self.support.clone(), &self.device_costs),
            Choice::Expert(e) => plain(&e.weights, Some(e.support.clone()), &e.device_costs),
            Choice::Fgd(_) => PolicyFile::fgd_start(self.provenance.clone()),
        }
    }

    /// This file with `others` as its experts, in order (each must carry a support).
    pub fn with_experts(mut self, others: &[PolicyFile]) -> Result<Self, String> {
        if self.support.is_none() {
            return Err(
                "the first file has no support: it would apply everywhere, so no \
                        expert would ever be asked"
                    .into(),
            );
        }
        if !self.experts.is_empty() {
            return Err("the first file has experts of its own: combine its parts instead".into());
        }
        self.experts = others
            .iter()
            .map(|f| {
                let support = f.support.clone().ok_or_else(|| {
                    format!(
                        "policy {} has no support: an expert must name its workloads",
                        f.hash
                    )
                })?;
                if !f.experts.is_empty() {
                    return Err(format!(
                        "policy {} has experts of its own: combine its parts instead",
                        f.hash
                    ));
                }
                if f.levels != self.levels {
                    return Err(format!(
                        "policy {} has {} levels, the first file {}",
                        f.hash, f.levels, self.levels
                    ));
                }
                Ok(Expert {
                    traces: f.provenance.traces.clone(),
                    from: f.hash.clone(),
                    weights: f.weights.clone(),
                    support,
                    device_costs: f.device_costs.clone(),
                })
            })
            .collect::<Result<_, _>>()?;
        self.hash = self.content_hash();
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::learned::Provenance;

    fn trained(w1: f64, mix: [f64; 4], traces: &str) -> PolicyFile {
        let mut w = PolicyFile::fgd_start(Provenance::default()).weights;
        w[1] = w1;
        let provenance = Provenance {
            traces: vec![traces.to_string()],
            ..Provenance::default()
        };
        PolicyFile::new(w, 100, provenance)
            .with_support(Support::spanning(&[WorkloadMix(mix)], 0.05))
    }

    #[test]
    fn a_workload_goes_to_the_file_then_the_first_expert_that_holds_it_then_fgd() {
        let main = trained(0.1, [0.1, 0.3, 0.0, 0.0], "default");
        let share = trained(0.2, [0.1, 1.0, 0.0, 0.0], "gpushare100");
        let multi = trained(0.3, [0.1, 0.2, 0.4, 0.0], "multigpu40");
        let file = main.clone().with_experts(&[share.clone(), multi]).unwrap();
        let text = serde_json::to_string(&file).unwrap();
        let file = PolicyFile::parse("f.json", &text).unwrap();
        let pick = |mix: [f64; 4]| match file.choose(&WorkloadMix(mix)) {
            Choice::Own => "own".to_string(),
            Choice::Expert(e) => e.traces.join(","),
            Choice::Fgd(why) => format!("fgd: {}", why.stat),
        };
        assert_eq!(pick([0.1, 0.3, 0.0, 0.0]), "own");
        assert_eq!(pick([0.1, 0.98, 0.0, 0.0]), "gpushare100");
        assert_eq!(pick([0.1, 0.2, 0.38, 0.0]), "multigpu40");
        assert_eq!(pick([0.1, 0.3, 0.0, 0.3]), "fgd: model_constrained_pods");
        let said = |mix: [f64; 4]| file.scored_by(&WorkloadMix(mix));
        assert_eq!(
            said([0.1, 0.98, 0.0, 0.0]).0,
            "the weights trained on gpushare100"
        );
        assert_eq!(
            said([0.1, 0.3, 0.0, 0.0]).0,
            "the weights trained on default"
        );
        let (words, why) = said([0.1, 0.3, 0.0, 0.3]);
        assert_eq!(
            (words.as_str(), why.map(|o| o.stat)),
            ("FGD alone", Some("model_constrained_pods"))
        );
        assert_eq!(file.experts[0].from, share.hash);
        assert_eq!(file.experts[0].weights[1], 0.2);
        // What training starts from, per workload.
        let part = |mix: [f64; 4]| file.part_for(&WorkloadMix(mix));
        assert_eq!(part([0.1, 0.3, 0.0, 0.0]).weights[1], 0.1);
        assert_eq!(part([0.1, 0.98, 0.0, 0.0]).weights[1], 0.2);
        assert!(part([0.1, 0.98, 0.0, 0.0]).experts.is_empty());
        assert_eq!(
            part([0.1, 0.3, 0.0, 0.3]).weights[1],
            0.0,
            "FGD's warm start"
        );
    }

    #[test]
    fn experts_without_a_support_or_with_bad_weights_are_refused() {
        let main = trained(0.1, [0.1, 0.3, 0.0, 0.0], "default");
        let bare = PolicyFile::fgd_start(Provenance::default());
        let err = main
            .clone()
            .with_experts(std::slice::from_ref(&bare))
            .unwrap_err();
        assert!(err.contains("no support"), "{err}");
        let err = bare.with_experts(std::slice::from_ref(&main)).unwrap_err();
        assert!(err.contains("first file has no support"), "{err}");
        let nested = main
            .clone()
            .with_experts(std::slice::from_ref(&main))
            .unwrap();
        let err = main
            .clone()
            .with_experts(std::slice::from_ref(&nested))
            .unwrap_err();
        assert!(err.contains("experts of its own"), "{err}");
        let err = nested
            .with_experts(std::slice::from_ref(&main))
            .unwrap_err();
        assert!(err.contains("first file has experts"), "{err}");
        let mut file = main
            .clone()
            .with_experts(std::slice::from_ref(&main))
            .unwrap();
        file.experts[0].weights.push(0.5); // one weight more than there are features
        file.hash = file.content_hash();
        let err = PolicyFile::parse("e.json", &serde_json::to_string(&file).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("e.json") && err.contains("expert 0"), "{err}");
        let mut file = main
            .clone()
            .with_experts(std::slice::from_ref(&main))
            .unwrap();
        file.experts[0].support.cpu_only_pods = [0.4, 0.2];
        file.hash = file.content_hash();
        let err = PolicyFile::parse("r.json", &serde_json::to_string(&file).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expert 0: support range of cpu_only_pods"),
            "{err}"
        );
    }
}
