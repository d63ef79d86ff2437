//! What a training run is apart from its phases: the checks before it starts, the replays it
//! will make (for the progress bar, resumed runs included), and the policy file it writes,
//! with the provenance that says how it was trained.

use super::{EVALUATION_SEEDS, Options, Trace, TrainError};
use crate::model::PodDemand;
use crate::policy::learned::features::DEVICE_COST;
use crate::policy::learned::{PolicyFile, Provenance, Support, WorkloadMix};

/// Replays per step of training: one validation pass at the start and after every epoch,
/// FGD's history once for the supervised phase, one episode per trace and seed per
/// Q-learning epoch, and a population's replays per search generation.
#[derive(Debug, Clone, Copy)]
pub(super) struct Work {
    validation: usize,
    history: usize,
    supervised_epochs: usize,
    q_epochs: usize,
    q_epoch: usize,
    generations: usize,
    generation: usize,
    /// FGD's training replays of a search with a hinge, in its first generation (a resumed run
    /// replays them again, so its bar may end a little past the total).
    fgd: usize,
}

impl Work {
    pub(super) fn new(traces: &[Trace], seeds: &[u64], validation: &[u64], opts: &Options) -> Self {
        let (t, v) = (traces.len(), traces.len() * validation.len());
        Work {
            validation: v,
            history: traces
                .iter()
                .map(|tr| match tr.recorded {
                    Some(_) => 1 + validation.len(),
                    None => seeds.len() + validation.len(),
                })
                .sum::<usize>()
                * opts.supervised_epochs.min(1),
            supervised_epochs: opts.supervised_epochs,
            q_epochs: opts.epochs,
            q_epoch: t * seeds.len() + v,
            generations: opts.search.generations,
            generation: t * seeds.len() * opts.search.population.max(2) + v,
            fgd: if opts.search.objective.uses_fgd() {
                t * seeds.len()
            } else {
                0
            },
        }
    }

    pub(super) fn total(&self) -> usize {
        self.before(Phase::Search, self.generations)
    }

    /// The replays before a checkpoint taken after `done` epochs of `phase` (FGD's history
    /// only once the supervised phase is over: a resumed run replays it again before).
    pub(super) fn before(&self, phase: Phase, done: usize) -> usize {
        let supervised = self.validation * (1 + self.supervised_epochs) + self.history;
        match phase {
            Phase::Supervised if done < self.supervised_epochs => self.validation * (1 + done),
            Phase::Supervised | Phase::QLearning => supervised,
            Phase::Search => {
                let fgd = if done > 0 { self.fgd } else { 0 };
                supervised + self.q_epochs * self.q_epoch + done * self.generation + fgd
            }
        }
    }
}

/// The hyperparameters recorded in the policy file's provenance, by name.
pub(super) fn hyperparameters(opts: &Options) -> [(&'static str, f64); 15] {
    [
        ("gamma", opts.gamma),
        ("learning_rate", opts.learning_rate),
        ("supervised_epochs", opts.supervised_epochs as f64),
        ("epochs", opts.epochs as f64),
        ("batch", opts.batch as f64),
        ("updates_per_episode", opts.updates_per_episode as f64),
        ("target_every", opts.target_every as f64),
        ("epsilon_start", opts.epsilon_start),
        ("epsilon_end", opts.epsilon_end),
        ("l2", opts.l2),
        ("seed", opts.seed as f64),
        ("search_generations", opts.search.generations as f64),
        ("search_population", opts.search.population as f64),
        ("search_elite", opts.search.elite as f64),
        ("search_sigma", opts.search.sigma),
    ]
}

/// Refuse a run that cannot train (before any replay, and before a checkpoint is read).
pub fn check(
    traces: &[Trace],
    seeds: &[u64],
    validation: &[u64],
    opts: &Options,
) -> Result<(), TrainError> {
    if traces.is_empty() {
        return Err(TrainError::NoTraces);
    }
    if let Some(t) = traces
        .iter()
        .find(|t| !t.pods.iter().any(PodDemand::needs_gpu))
    {
        return Err(TrainError::NoGpuPods(t.name.clone()));
    }
    if opts.epochs == 0 && opts.supervised_epochs == 0 && opts.search.generations == 0 {
        return Err(TrainError::ZeroEpochs);
    }
    if seeds.is_empty() {
        return Err(TrainError::NoSeeds);
    }
    if let Some(&s) = seeds
        .iter()
        .chain(validation)
        .find(|s| EVALUATION_SEEDS.contains(s))
    {
        return Err(TrainError::EvaluationSeed(s));
    }
    if let Some(d) = &opts.search.dynamic {
        d.check(traces)
            .map_err(|e| TrainError::Dynamic(e.to_string()))?;
    }
    Ok(())
}

/// A sealed policy file for weights `w`, recording how it was trained.
pub(super) fn with_weights(
    w: &[f64],
    opts: &Options,
    traces: &[Trace],
    seeds: &[u64],
    validation: &[u64],
) -> PolicyFile {
    let hyper = hyperparameters(opts);
    let join = |s: &[u64]| s.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let provenance = Provenance {
        traces: traces.iter().map(|t| t.name.clone()).collect(),
        seeds: format!("train {}; validate {}", join(seeds), join(validation)),
        // The phases that ran (an ablation or a search-only run names fewer).
        phases: [
            ("supervised", opts.supervised_epochs),
            ("q-learning", opts.epochs),
            ("policy search", opts.search.generations),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(p, _)| p.to_string())
        // Training that started from another policy than FGD names it (by content hash).
        .chain(
            opts.start
                .as_ref()
                .map(|f| format!("started from policy {}", f.hash)),
        )
        // So does a search that started from another policy.
        .chain(
            opts.search
                .from
                .as_ref()
                .map(|f| format!("policy search started from policy {}", f.hash)),
        )
        // And a run scored in the dynamic setting names it.
        .chain(opts.search.dynamic.as_ref().map(|d| d.describe()))
        .collect(),
        kept: String::new(),
        hyperparameters: hyper
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            // Named only when set, so files of searches without it read as before.
            .chain(opts.search.extra_hyperparameters())
            .collect(),
        code_version: env!("CARGO_PKG_VERSION").to_string(),
        // No timestamp: the same command, seeds and thread count write the same file.
        created: String::new(),
        // Named by the caller, who read the history (`allot train --history`).
        history: None,
    };
    let mixes: Vec<WorkloadMix> = traces.iter().map(|t| WorkloadMix::of(&t.target)).collect();
    let support = opts
        .support_tolerance
        .and_then(|tolerance| Support::spanning(&mixes, tolerance));
    let mut file = PolicyFile::new(
        w.to_vec(),
        crate::policy::learned::file::DEFAULT_LEVELS,
        provenance,
    );
    // The table the search ran with, kept where its weight is (a warm start of FGD has none).
    let weighed = w.get(DEVICE_COST).is_some_and(|&x| x != 0.0);
    file.device_costs = opts.search.device_costs().filter(|_| weighed).cloned();
    file.with_support(support)
}

/// The phase a checkpoint was taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Supervised,
    QLearning,
    Search,
}

impl Phase {
    /// The phase's name, as in the curves.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Supervised => "supervised",
            Phase::QLearning => "q-learning",
            Phase::Search => "policy search",
        }
    }

    /// The phase named `name` (as [`Phase::name`] writes it).
    pub(crate) fn parse(name: &str) -> Option<Self> {
        [Phase::Supervised, Phase::QLearning, Phase::Search]
            .into_iter()
            .find(|p| p.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_from_another_policy_and_its_settings_are_recorded() {
        let from = PolicyFile::fgd_start(Provenance::default());
        let mut opts = Options::default();
        opts.search.generations = 3;
        opts.search.multi = true;
        opts.search.objective.hinge = 1.0;
        opts.search.from = Some(from.clone());
        let file = with_weights(&from.weights, &opts, &[], &[1], &[60]);
        let started = format!("policy search started from policy {}", from.hash);
        assert!(file.provenance.phases.contains(&started), "{file:?}");
        let hyper = &file.provenance.hyperparameters;
        assert_eq!(hyper.get("search_hinge"), Some(&1.0));
        assert_eq!(hyper.get("search_margin"), Some(&0.05));
        assert!(!hyper.contains_key("search_bound"), "no bound was set");
        // A checkpoint of this run does not resume one with another start or objective.
        let config = super::super::checkpoint::config(&[], &[1], &[60], &opts);
        assert!(config.contains(&("--search-from".to_string(), from.hash.clone())));
        assert!(config.contains(&("--search-hinge".to_string(), "1".to_string())));
    }

    #[test]
    fn a_search_from_a_policy_with_a_device_cost_table_keeps_the_table_where_it_weighs() {
        use crate::policy::learned::costs::{DeviceCosts, WEIGHT};
        let mut from = PolicyFile::fgd_start(Provenance::default());
        from.weights[DEVICE_COST] = WEIGHT;
        from.device_costs = Some(DeviceCosts {
            values: vec![1.0; 101],
        });
        let mut opts = Options::default();
        opts.search.from = Some(from.clone());
        assert_eq!(opts.search.device_costs(), from.device_costs.as_ref());
        let kept = with_weights(&from.weights, &opts, &[], &[1], &[60]);
        assert_eq!(kept.device_costs, from.device_costs);
        // FGD's warm start kept instead: no weight on the table, so no table.
        let fgd = PolicyFile::fgd_start(Provenance::default()).weights;
        assert_eq!(
            with_weights(&fgd, &opts, &[], &[1], &[60]).device_costs,
            None
        );
    }
}
