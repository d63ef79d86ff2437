//! A bound on the GPU any placement can allocate that sees devices: the shares on one device
//! add up to at most one GPU, so sizes that do not pair leave slivers no placement can use.
//! The fluid LP (`lp.rs`) pools a node class's free milli across its devices and sees this
//! only through two coarse cuts; here every device holds a *pattern* of shares.
//!
//! # Formulation
//!
//! `D` devices; `n_s` share pods of `m_s` milli for each distinct size s; `n_k` whole pods of
//! k GPUs. A pattern p is a multiset of shares that fits one device (`sum_s a_sp m_s <= 1000`,
//! `a_sp <= n_s`), worth `v_p = sum_s a_sp m_s`:
//!
//! ```text
//! primal  max  sum_p v_p y_p + sum_k 1000 k w_k
//!   devices    sum_p y_p + sum_k k w_k <= D        (dual mu)
//!   shares     sum_p a_sp y_p          <= n_s      (dual pi_s)
//!   whole      w_k                     <= n_k      (dual rho_k)
//! dual    min  D mu + sum_s n_s pi_s + sum_k n_k rho_k
//!   with  mu >= v_p - sum_s a_sp pi_s (every p),  rho_k >= k (1000 - mu),  all >= 0
//! ```
//!
//! Patterns are too many to list, so they are generated (Gilmore-Gomory): the LP over the
//! patterns found so far gives prices `pi`, and a bounded knapsack over one device finds the
//! pattern with the most `v_p - sum a_sp pi_s`. That knapsack's value is also the least `mu`
//! any `pi >= 0` allows, so each round's `pi` yields a dual solution and with it a **valid
//! bound whatever the LP solver's accuracy**; the best one found is returned. Leaving out CPU,
//! memory, GPU models and that a pod's devices must share one node only loosens the bound, so
//! the offline bound takes the smaller of this and the fluid LP.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use good_lp::solvers::{DualValues, SolutionWithDual};
use good_lp::{Expression, ProblemVariables, SolverModel, variable};

use crate::model::{GpuDemand, PodDemand};

/// Milli-GPU in one device.
const GPU: u32 = 1000;
/// Pricing rounds at most; openb's replays settle in a few dozen.
const MAX_ROUNDS: usize = 400;
/// A pattern must beat the devices' price by this much (milli) to be added.
const IMPROVES: f64 = 1e-6;

/// The most GPU milli any placement of `pods` on a cluster of `devices` GPUs can allocate,
/// counting each device's shares as a pattern (module doc). Pricing stops after `limit`, or
/// if the LP solver fails, with the best bound so far: every round's is one, and before the
/// first, the pods' demand or the devices, whichever is less.
pub fn device_bound(pods: &[PodDemand], devices: usize, limit: Duration) -> f64 {
    let started = Instant::now();
    let demand = Demand::of(pods);
    let d = devices as f64;
    let total = demand.total_milli().min(d * f64::from(GPU));
    if demand.shares.is_empty() {
        // No share to pack: whole pods fill devices exactly.
        return total;
    }
    let mut patterns: Vec<Vec<u32>> = demand.pure_patterns();
    let mut seen: HashSet<Vec<u32>> = patterns.iter().cloned().collect();
    let mut best = total;
    for _ in 0..MAX_ROUNDS {
        let Some((mu, pi)) = demand.master(&patterns, devices) else {
            break;
        };
        let (value, pattern) = demand.knapsack(&pi);
        best = best.min(demand.dual_bound(&pi, value.max(0.0), d));
        if value <= mu + IMPROVES || !seen.insert(pattern.clone()) || started.elapsed() > limit {
            break;
        }
        patterns.push(pattern);
    }
    best
}

/// The arrivals' GPU demand by size.
#[derive(Debug, Default)]
struct Demand {
    /// `(m_s, n_s)`, by size.
    shares: Vec<(u32, u32)>,
    /// `(k, n_k)`, by k.
    whole: Vec<(u32, u32)>,
}

impl Demand {
    fn of(pods: &[PodDemand]) -> Demand {
        let mut shares: BTreeMap<u32, u32> = BTreeMap::new();
        let mut whole: BTreeMap<u32, u32> = BTreeMap::new();
        for p in pods {
            match p.gpu {
                GpuDemand::None => {}
                GpuDemand::Shared { milli } => *shares.entry(milli.clamp(1, GPU)).or_default() += 1,
                GpuDemand::Whole { count } => *whole.entry(count.max(1)).or_default() += 1,
            }
        }
        Demand {
            shares: shares.into_iter().collect(),
            whole: whole.into_iter().collect(),
        }
    }

    fn total_milli(&self) -> f64 {
        let shares: f64 = self
            .shares
            .iter()
            .map(|&(m, n)| f64::from(m) * f64::from(n))
            .sum();
        let whole: f64 = self
            .whole
            .iter()
            .map(|&(k, n)| f64::from(k * GPU) * f64::from(n))
            .sum();
        shares + whole
    }

    /// How many of size s one device can hold.
    fn per_device(&self, s: usize) -> u32 {
        let (m, n) = self.shares[s];
        n.min(GPU / m)
    }

    /// One starting pattern per size: as many of it as a device holds.
    fn pure_patterns(&self) -> Vec<Vec<u32>> {
        (0..self.shares.len())
            .map(|s| {
                let mut a = vec![0; self.shares.len()];
                a[s] = self.per_device(s);
                a
            })
            .collect()
    }

    /// The LP over `patterns`: the devices row's dual and the share rows' duals (>= 0).
    fn master(&self, patterns: &[Vec<u32>], devices: usize) -> Option<(f64, Vec<f64>)> {
        let mut vars = ProblemVariables::new();
        let y: Vec<_> = patterns
            .iter()
            .map(|_| vars.add(variable().min(0.0)))
            .collect();
        let w: Vec<_> = self
            .whole
            .iter()
            .map(|&(_, n)| vars.add(variable().min(0.0).max(f64::from(n))))
            .collect();
        let mut objective = Expression::default();
        let mut used = Expression::default();
        for (p, &v) in patterns.iter().zip(&y) {
            objective += self.worth(p) * v;
            used += v;
        }
        for (&(k, _), &v) in self.whole.iter().zip(&w) {
            objective += f64::from(k * GPU) * v;
            used += f64::from(k) * v;
        }
        let mut model = vars.maximise(objective).using(good_lp::clarabel);
        let devices_row = model.add_constraint(used.leq(devices as f64));
        let share_rows: Vec<_> = (0..self.shares.len())
            .map(|s| {
                let mut held = Expression::default();
                for (p, &v) in patterns.iter().zip(&y) {
                    if p[s] > 0 {
                        held += f64::from(p[s]) * v;
                    }
                }
                model.add_constraint(held.leq(f64::from(self.shares[s].1)))
            })
            .collect();
        let mut solution = model.solve().ok()?;
        let duals = solution.compute_dual();
        // The solver's sign convention for a maximisation aside, these are magnitudes; any
        // pi >= 0 gives a valid bound (dual_bound), so an inexact one only loosens it.
        let mu = duals.dual(devices_row).abs();
        let pi = share_rows
            .into_iter()
            .map(|r| duals.dual(r).abs())
            .collect();
        Some((mu, pi))
    }

    fn worth(&self, pattern: &[u32]) -> f64 {
        pattern
            .iter()
            .zip(&self.shares)
            .map(|(&a, &(m, _))| f64::from(a) * f64::from(m))
            .sum()
    }

    /// The pattern with the most `v_p - sum a_sp pi_s` (a bounded knapsack of one device,
    /// copies split in powers of two), and that value.
    fn knapsack(&self, pi: &[f64]) -> (f64, Vec<u32>) {
        let cap = GPU as usize;
        // 0/1 items: (size s, copies, milli, value).
        let mut items: Vec<(usize, u32, usize, f64)> = Vec::new();
        for (s, &(m, _)) in self.shares.iter().enumerate() {
            let gain = f64::from(m) - pi[s];
            if gain <= 0.0 {
                continue;
            }
            let (mut left, mut chunk) = (self.per_device(s), 1);
            while left > 0 {
                let c = chunk.min(left);
                items.push((s, c, (c * m) as usize, f64::from(c) * gain));
                left -= c;
                chunk *= 2;
            }
        }
        let mut best = vec![0.0f64; cap + 1];
        let mut took = vec![vec![false; cap + 1]; items.len()];
        for (i, &(_, _, size, value)) in items.iter().enumerate() {
            for room in (size..=cap).rev() {
                let with = best[room - size] + value;
                if with > best[room] {
                    best[room] = with;
                    took[i][room] = true;
                }
            }
        }
        let mut pattern = vec![0; self.shares.len()];
        let mut room = cap;
        for (i, &(s, copies, size, _)) in items.iter().enumerate().rev() {
            if took[i][room] {
                pattern[s] += copies;
                room -= size;
            }
        }
        (best[cap], pattern)
    }

    /// The dual objective at `pi` with `mu` the least it allows (`fits`, the knapsack's
    /// value) or one GPU, whichever gives less: `rho_k = k (1000 - mu)` while `mu < 1000`.
    fn dual_bound(&self, pi: &[f64], fits: f64, d: f64) -> f64 {
        let shares: f64 = self
            .shares
            .iter()
            .zip(pi)
            .map(|(&(_, n), p)| f64::from(n) * p)
            .sum();
        let at = |mu: f64| {
            let whole: f64 = self
                .whole
                .iter()
                .map(|&(k, n)| f64::from(n) * f64::from(k) * (f64::from(GPU) - mu).max(0.0))
                .sum();
            d * mu + shares + whole
        };
        at(fits).min(at(fits.max(f64::from(GPU))))
    }
}

#[cfg(test)]
#[path = "devices_tests.rs"]
mod tests;
