//! A checkpoint's JSON layout and its exact conversion to and from [`Checkpoint`]: every
//! `f64` is a string in its shortest round-trip form, every RNG state four integers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Best, Checkpoint, FORMAT, Phase, State, VERSION};
use crate::learn::CurvePoint;
use crate::learn::search::SearchState;
use crate::policy::learned::features::COUNT;
use crate::rng::Rng;

/// The phases a curve row can name (the warm start's validation, then the three phases).
const CURVE_PHASES: [&str; 4] = [
    "warm start (FGD)",
    "supervised",
    "q-learning",
    "policy search",
];

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Stored {
    format: String,
    version: u32,
    phase: String,
    /// Epochs (generations) of `phase` complete.
    done: usize,
    elapsed_secs: f64,
    pub(super) config: Vec<Setting>,
    weights: Vec<String>,
    rng: [u64; 4],
    best: StoredBest,
    search: Option<StoredSearch>,
    curves: Vec<StoredCurve>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Setting {
    pub(super) setting: String,
    pub(super) value: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredBest {
    // `Best::score`: the mean unallocated GPU % on validation, or with `--search-hinge` the
    // objective (mean + hinge); the key keeps its older name so older checkpoints still read.
    validation_unallocated_pct: String,
    weights: Vec<String>,
    kept: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredSearch {
    mean: Vec<String>,
    sigma: Vec<String>,
    base: Vec<String>,
    rng: [u64; 4],
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredCurve {
    phase: String,
    epoch: usize,
    train_reward: String,
    validation_unallocated_pct: String,
}

fn nums(xs: &[f64]) -> Vec<String> {
    xs.iter().map(f64::to_string).collect()
}

fn num(s: &str, what: &str) -> Result<f64, String> {
    s.parse()
        .map_err(|_| format!("{what} {s:?} is not a number"))
}

/// Parse `xs`; `len` and finiteness are checked when the values are weights.
fn weights(xs: &[String], what: &str, len: Option<usize>) -> Result<Vec<f64>, String> {
    if let Some(len) = len.filter(|&l| l != xs.len()) {
        return Err(format!("{what} has {} values, not {len}", xs.len()));
    }
    let out = xs
        .iter()
        .map(|x| num(x, what))
        .collect::<Result<Vec<f64>, String>>()?;
    if len.is_some() && out.iter().any(|x| !x.is_finite()) {
        return Err(format!("{what} holds a non-finite number"));
    }
    Ok(out)
}

impl From<&Checkpoint> for Stored {
    fn from(c: &Checkpoint) -> Self {
        let st = &c.state;
        Stored {
            format: FORMAT.to_string(),
            version: VERSION,
            phase: c.phase.name().to_string(),
            done: c.done,
            elapsed_secs: c.elapsed.as_secs_f64(),
            config: c
                .config
                .iter()
                .map(|(setting, value)| Setting {
                    setting: setting.clone(),
                    value: value.clone(),
                })
                .collect(),
            weights: nums(&st.weights),
            rng: st.rng.state(),
            best: StoredBest {
                validation_unallocated_pct: st.best.score.to_string(),
                weights: nums(&st.best.weights),
                kept: st.best.kept.clone(),
            },
            search: c.search.as_ref().map(|s| StoredSearch {
                mean: nums(&s.mean),
                sigma: nums(&s.sigma),
                base: nums(&s.base),
                rng: s.rng,
            }),
            curves: st
                .curves
                .iter()
                .map(|p| StoredCurve {
                    phase: p.phase.to_string(),
                    epoch: p.epoch,
                    train_reward: p.train_reward.to_string(),
                    validation_unallocated_pct: p.validation_unallocated_pct.to_string(),
                })
                .collect(),
        }
    }
}

impl Stored {
    /// The checkpoint, with `config` (already checked); says what is wrong otherwise.
    pub(super) fn into_checkpoint(
        self,
        config: Vec<(String, String)>,
    ) -> Result<Checkpoint, String> {
        let phase = Phase::parse(&self.phase).ok_or(format!("unknown phase {:?}", self.phase))?;
        let elapsed = Duration::try_from_secs_f64(self.elapsed_secs)
            .map_err(|_| format!("elapsed_secs {} is not a duration", self.elapsed_secs))?;
        let rng = Rng::from_state(self.rng).ok_or("the RNG state is all zeros")?;
        let best = Best {
            score: num(&self.best.validation_unallocated_pct, "best score")?,
            weights: weights(&self.best.weights, "best weights", Some(COUNT))?,
            kept: self.best.kept,
        };
        let curves = self
            .curves
            .iter()
            .map(|c| {
                let phase = CURVE_PHASES
                    .iter()
                    .find(|&&p| p == c.phase)
                    .ok_or(format!("curve row of unknown phase {:?}", c.phase))?;
                Ok(CurvePoint {
                    phase,
                    epoch: c.epoch,
                    train_reward: num(&c.train_reward, "train_reward")?,
                    validation_unallocated_pct: num(
                        &c.validation_unallocated_pct,
                        "validation_unallocated_pct",
                    )?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let search = match self.search {
            Some(s) => Some(SearchState {
                mean: weights(&s.mean, "search mean", None)?,
                sigma: weights(&s.sigma, "search sigma", None)?,
                base: weights(&s.base, "search base", None)?,
                rng: s.rng,
            }),
            None => None,
        };
        Ok(Checkpoint {
            config,
            phase,
            done: self.done,
            elapsed,
            state: State {
                weights: weights(&self.weights, "weights", Some(COUNT))?,
                rng,
                best,
                curves,
            },
            search,
        })
    }
}
