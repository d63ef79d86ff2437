//! The third phase of training: direct policy search over the Q-function's weights with the
//! cross-entropy method. Each generation draws a population of weight vectors around the
//! current mean, replays every one of them on the same arrival sequences (the training
//! seeds: common random numbers, so candidates differ by their decisions, not their luck),
//! and moves the mean and spread to the best few. The objective is the replay's own figure,
//! unallocated GPU % at 100 % arrived, so nothing stands between what is optimised and what
//! is measured.
//!
//! Only weights of features that differ between the candidate nodes of one decision are
//! searched: the pod's class, the bias and the global context are the same for every
//! candidate, so under a linear Q they cannot change which node wins. With `--search-hinge`
//! the objective also charges every training trace not better than FGD ([`objective`]), and
//! with `--search-bound` every searched weight stays within a bound.

pub mod dynamic;
pub mod objective;
mod replays;

use super::Trace;
use crate::policy::learned::PolicyFile;
use crate::policy::learned::features::{self, COUNT, NODE_SHAPE};
use crate::rng::Rng;
pub use dynamic::DynamicSetting;
pub use objective::Objective;
pub use replays::{Evaluation, evaluate_files, evaluate_traces};

/// Weights the search moves: the features of the node after the placement and the model
/// match (not FGD's score, frozen at 1, nor the per-decision constants).
pub const SEARCHED: [usize; 7] = NODE_SHAPE;

/// The weights a search with `opts` moves: [`SEARCHED`], the LP price's with
/// `--search-prices`, the whole-GPU pods' own corrections with `--search-whole` and the
/// multi-GPU pods' with `--search-multi`.
pub fn searched(opts: &SearchOptions) -> Vec<usize> {
    let mut out = SEARCHED.to_vec();
    if opts.prices {
        out.push(features::PRICE);
    }
    if opts.whole {
        out.extend((0..NODE_SHAPE.len()).map(|k| features::WHOLE + k));
    }
    if opts.multi {
        out.extend((0..NODE_SHAPE.len()).map(|k| features::MULTI + k));
    }
    out
}

/// Cross-entropy method settings (`allot train --search-*` flags).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOptions {
    pub generations: usize,
    pub population: usize,
    /// Candidates whose mean sets the next generation's distribution.
    pub elite: usize,
    /// Initial standard deviation of each searched weight (0.01 = one FGD level at feature
    /// value 1).
    pub sigma: f64,
    /// Replay threads (results do not depend on it: each replay is seeded by its seed).
    pub threads: usize,
    /// Also search the weight of `lp_price_cost` (the LP's shadow prices; off by default,
    /// see BENCHMARKS.md §8 for why).
    pub prices: bool,
    /// Also search the whole-GPU pods' own corrections (the `*_whole` features; off by
    /// default, so the shipped command's search is unchanged).
    pub whole: bool,
    /// Also search the multi-GPU pods' own corrections (the `*_multi` features; off by default).
    pub multi: bool,
    /// What a generation ranks its candidates by (the mean, by default).
    pub objective: Objective,
    /// Largest absolute value of a searched weight (0: unbounded): drawn points and the refit
    /// mean are clamped to it, so corrections stay within `bound * 100` FGD levels.
    pub bound: f64,
    /// Start the search at this policy's weights (`--search-from`) instead of the best so far
    /// (FGD's, in a search-only run); the warm start that validation compares with stays FGD.
    pub from: Option<PolicyFile>,
    /// Score candidates (and validate) by the dynamic replay in this setting instead of the
    /// static one (`allot train --dynamic`).
    pub dynamic: Option<DynamicSetting>,
}

impl SearchOptions {
    /// The settings beyond the shipped search's, as provenance hyperparameters: named only when
    /// set, so files and checkpoints of searches without them read as before.
    pub fn extra_hyperparameters(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        let mut put = |name: &str, on: bool, value: f64| {
            if on {
                out.push((name.to_string(), value));
            }
        };
        put("search_prices", self.prices, 1.0);
        put("search_whole", self.whole, 1.0);
        put("search_multi", self.multi, 1.0);
        put(
            "search_hinge",
            self.objective.uses_fgd(),
            self.objective.hinge,
        );
        put(
            "search_margin",
            self.objective.uses_fgd(),
            self.objective.margin,
        );
        put("search_bound", self.bound > 0.0, self.bound);
        out.extend(
            self.dynamic
                .iter()
                .flat_map(DynamicSetting::hyperparameters),
        );
        out
    }
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            generations: 0,
            population: 12,
            elite: 3,
            sigma: 0.02,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            prices: false,
            whole: false,
            multi: false,
            objective: Objective::default(),
            bound: 0.0,
            from: None,
            dynamic: None,
        }
    }
}

/// One generation's outcome.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The generation's best weights (by the objective) and their mean unallocated GPU % on
    /// the training seeds.
    pub best: (Vec<f64>, f64),
    /// The best candidate's objective (its mean when the hinge is off).
    pub objective: f64,
    /// The mean over the whole population (how far the distribution has come).
    pub population_mean: f64,
}

/// [`Search`]'s state, saved after every generation so a run can resume mid-search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchState {
    pub mean: Vec<f64>,
    pub sigma: Vec<f64>,
    pub base: Vec<f64>,
    pub rng: [u64; 4],
}

/// The search's state between generations: a diagonal Gaussian over [`SEARCHED`].
#[derive(Debug)]
pub struct Search {
    /// Indices of the weights moved ([`searched`]).
    indices: Vec<usize>,
    mean: Vec<f64>,
    sigma: Vec<f64>,
    base: Vec<f64>,
    rng: Rng,
    /// FGD's per-trace means on the training seeds, replayed once per run when the objective
    /// needs them (not checkpointed: a resumed run replays them again, to the same numbers).
    fgd: Option<Vec<f64>>,
}

impl Search {
    /// Start at `start` (its searched weights are the mean), spread `opts.sigma`.
    pub fn new(start: &[f64], opts: &SearchOptions, seed: u64) -> Self {
        let indices = searched(opts);
        Search {
            mean: indices.iter().map(|&i| start[i]).collect(),
            sigma: vec![opts.sigma; indices.len()],
            indices,
            base: start.to_vec(),
            rng: Rng::derive(seed, 0x4345_4d00),
            fgd: None,
        }
    }

    /// One generation: draw, replay on `seeds`, refit to the elite.
    pub fn generation(
        &mut self,
        traces: &[Trace],
        seeds: &[u64],
        levels: u32,
        opts: &SearchOptions,
        tick: &mut dyn FnMut(),
    ) -> Generation {
        let objective = opts.objective;
        let dynamic = opts.dynamic.as_ref();
        let costs = opts.device_costs();
        if objective.uses_fgd() && self.fgd.is_none() {
            let fgd = fgd_weights();
            let (n, d) = (opts.threads, dynamic);
            let e = evaluate_traces(traces, seeds, &[fgd], levels, n, d, None, tick);
            self.fgd = e.into_iter().next().map(|e| e.per_trace);
        }
        // The current mean is always a candidate, so a generation never forgets it.
        let mut pop = vec![self.weights(&self.mean.clone())];
        while pop.len() < opts.population.max(2) {
            let point: Vec<f64> = (0..self.indices.len())
                .map(|k| clamp(self.mean[k] + self.sigma[k] * normal(&mut self.rng), opts))
                .collect();
            pop.push(self.weights(&point));
        }
        let (n, d) = (opts.threads, dynamic);
        let evals = evaluate_traces(traces, seeds, &pop, levels, n, d, costs, tick);
        let fgd = self.fgd.as_deref().unwrap_or(&[]);
        let scores: Vec<f64> = evals
            .iter()
            .map(|e| objective.score(e.mean, &e.per_trace, fgd))
            .collect();
        let mut order: Vec<usize> = (0..pop.len()).collect();
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
        let elite: Vec<&Vec<f64>> = order
            .iter()
            .take(opts.elite.clamp(1, pop.len()))
            .map(|&i| &pop[i])
            .collect();
        let n = elite.len() as f64;
        for (k, &i) in self.indices.iter().enumerate() {
            let m = elite.iter().map(|w| w[i]).sum::<f64>() / n;
            let var = elite.iter().map(|w| (w[i] - m).powi(2)).sum::<f64>() / n;
            self.mean[k] = clamp(m, opts);
            // A floor on the spread keeps the search moving until its last generation.
            self.sigma[k] = var.sqrt().max(opts.sigma * 0.1);
        }
        Generation {
            best: (pop[order[0]].clone(), evals[order[0]].mean),
            objective: scores[order[0]],
            population_mean: evals.iter().map(|e| e.mean).sum::<f64>() / evals.len() as f64,
        }
    }

    /// The search's state as plain numbers, for a checkpoint.
    pub fn state(&self) -> SearchState {
        SearchState {
            mean: self.mean.clone(),
            sigma: self.sigma.clone(),
            base: self.base.clone(),
            rng: self.rng.state(),
        }
    }

    /// The search continuing from a saved [`Search::state`]; says what is wrong with a state
    /// this allot cannot continue (lengths for other features, a dead RNG, non-finite values).
    pub fn restore(state: SearchState, opts: &SearchOptions) -> Result<Self, String> {
        let indices = searched(opts);
        let lengths = [
            ("mean", state.mean.len(), indices.len()),
            ("sigma", state.sigma.len(), indices.len()),
            ("base", state.base.len(), COUNT),
        ];
        for (what, len, want) in lengths {
            if len != want {
                return Err(format!("search {what} has {len} values, not {want}"));
            }
        }
        let all = state.mean.iter().chain(&state.sigma).chain(&state.base);
        if all.copied().any(|x| !x.is_finite()) {
            return Err("search state holds a non-finite number".into());
        }
        let rng = Rng::from_state(state.rng).ok_or("search RNG state is all zeros")?;
        Ok(Search {
            indices,
            mean: state.mean,
            sigma: state.sigma,
            base: state.base,
            rng,
            fgd: None,
        })
    }

    fn weights(&self, point: &[f64]) -> Vec<f64> {
        let mut w = self.base.clone();
        for (k, &i) in self.indices.iter().enumerate() {
            w[i] = point[k];
        }
        debug_assert_eq!(w.len(), COUNT);
        w
    }
}

/// FGD's own weights (the warm start): weight 1 on its score, 0 elsewhere.
pub fn fgd_weights() -> Vec<f64> {
    PolicyFile::fgd_start(Default::default()).weights
}

/// `x` within `opts.bound` (unchanged when there is none).
fn clamp(x: f64, opts: &SearchOptions) -> f64 {
    if opts.bound > 0.0 {
        x.clamp(-opts.bound, opts.bound)
    } else {
        x
    }
}

/// A standard normal draw (Box-Muller).
pub(super) fn normal(rng: &mut Rng) -> f64 {
    let unit = |rng: &mut Rng| ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (u, v) = (unit(rng), unit(rng));
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_pod_corrections_are_searched_only_when_asked() {
        let mut opts = SearchOptions::default();
        assert_eq!(searched(&opts), SEARCHED);
        opts.whole = true;
        let names: Vec<&str> = searched(&opts)
            .iter()
            .map(|&i| features::NAMES[i])
            .collect();
        assert_eq!(names.len(), 14);
        assert_eq!(names[7], "gpu_free_after_whole");
        assert_eq!(names[13], "cpu_per_gpu_ratio_whole");
    }

    #[test]
    fn the_multi_gpu_corrections_are_searched_only_when_asked() {
        let mut opts = SearchOptions {
            multi: true,
            ..SearchOptions::default()
        };
        let names: Vec<&str> = searched(&opts)
            .iter()
            .map(|&i| features::NAMES[i])
            .collect();
        assert_eq!(names.len(), 14);
        assert_eq!(names[7], "gpu_free_after_multi");
        opts.whole = true;
        assert_eq!(searched(&opts).len(), 21);
    }

    #[test]
    fn a_bound_clamps_every_drawn_and_refitted_weight() {
        let opts = SearchOptions {
            sigma: 0.5,
            bound: 0.01,
            ..SearchOptions::default()
        };
        let mut rng = Rng::new(3);
        for _ in 0..50 {
            let x = clamp(opts.sigma * normal(&mut rng), &opts);
            assert!(x.abs() <= 0.01, "{x}");
        }
        assert_eq!(clamp(-0.7, &opts), -0.01);
        assert_eq!(
            clamp(0.7, &SearchOptions::default()),
            0.7,
            "no bound by default"
        );
    }

    #[test]
    fn only_settings_in_use_are_named_in_the_provenance() {
        assert!(SearchOptions::default().extra_hyperparameters().is_empty());
        let opts = SearchOptions {
            multi: true,
            objective: Objective {
                hinge: 1.0,
                margin: 0.05,
            },
            bound: 0.03,
            ..SearchOptions::default()
        };
        let names: Vec<String> = opts
            .extra_hyperparameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [
                "search_multi",
                "search_hinge",
                "search_margin",
                "search_bound"
            ]
        );
    }

    #[test]
    fn draws_are_standard_normal_enough() {
        let mut rng = Rng::new(7);
        let xs: Vec<f64> = (0..20_000).map(|_| normal(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
