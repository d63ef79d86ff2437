//! The two gradient phases' arithmetic: a history of decisions as supervised examples (the
//! starting policy's replays, or a recorded cluster's own decisions), the Q-learning target,
//! and one SGD step on squared error with FGD's weight frozen.

use super::buffer::Transition;
use super::episode::run_following;
use super::{FGD, Options, Trace, episode};
use crate::policy::learned::features::COUNT;
use crate::policy::learned::{PolicyFile, dot};
use crate::sim::replay::arrivals;

/// Supervised examples: (features of each decision, discounted return from it).
pub type Examples = Vec<([f64; COUNT], f64)>;

/// The supervised phase's history as (fit, held out): per trace, the recorded decisions of a
/// history ([`Trace::recorded`], replayed once with the first training seed's tie order) or
/// else `start`'s replays on the training seeds, to fit; `start`'s replays on the validation
/// seeds, held out.
pub fn history(
    traces: &[Trace],
    seeds: &[u64],
    validation: &[u64],
    start: &PolicyFile,
    gamma: f64,
    tick: &mut dyn FnMut(&'static str),
) -> (Examples, Examples) {
    let mut split = (Vec::new(), Vec::new());
    for t in traces {
        if let Some(d) = &t.recorded {
            let seed = seeds.first().copied().unwrap_or(0);
            let (ep, _) = run_following(&t.cluster, &t.target, &d.pods, start, &d.nodes, seed);
            split.0.extend(returns(&ep, gamma));
            tick("supervised");
        }
        let own = if t.recorded.is_some() { &[][..] } else { seeds };
        for (&s, held) in own
            .iter()
            .map(|s| (s, false))
            .chain(validation.iter().map(|s| (s, true)))
        {
            let arr = arrivals(&t.pods, t.cluster.gpu_capacity_milli(), s);
            let ep = episode::run(&t.cluster, &t.target, &arr, start, 0.0, s);
            if held { &mut split.1 } else { &mut split.0 }.extend(returns(&ep, gamma));
            tick("supervised");
        }
    }
    split
}

/// Each decision of `ep` with its discounted return in hindsight.
fn returns(ep: &episode::Episode, gamma: f64) -> Examples {
    let mut ret = 0.0;
    let mut out: Examples = ep
        .transitions
        .iter()
        .rev()
        .map(|tr| {
            ret = tr.reward + gamma * ret;
            (tr.features, ret)
        })
        .collect();
    out.reverse();
    out
}

pub fn td_target(t: &Transition, target_w: &[f64], gamma: f64) -> f64 {
    let next = t
        .next
        .iter()
        .map(|f| dot(target_w, f))
        .fold(f64::NEG_INFINITY, f64::max);
    t.reward + if next.is_finite() { gamma * next } else { 0.0 }
}

/// One SGD step on squared error, the FGD weight frozen, with an L2 pull to the warm start.
pub fn step(w: &mut [f64], start: &[f64], batch: &[(&[f64; COUNT], f64)], opts: &Options) {
    if batch.is_empty() {
        return;
    }
    let mut grad = [0.0; COUNT];
    for (f, y) in batch {
        let err = dot(w, *f) - y;
        for i in 0..COUNT {
            grad[i] += err * f[i];
        }
    }
    let n = batch.len() as f64;
    for i in 0..COUNT {
        if i == FGD {
            continue;
        }
        let g = grad[i] / n + opts.l2 * (w[i] - start[i]);
        w[i] -= opts.learning_rate * g.clamp(-10.0, 10.0);
    }
}

pub fn mse(w: &[f64], examples: &Examples) -> f64 {
    let sum: f64 = examples.iter().map(|(f, y)| (dot(w, f) - y).powi(2)).sum();
    sum / examples.len().max(1) as f64
}
