//! A learned cost per free level of one GPU device: `value(f)` is what a device with `f` free
//! milli is worth to the packing of shares to come (lower is better), at 10-milli levels from
//! 0 to 1,000 (idle). A share's placement on a device with `f` free changes it by
//! `value(f - s) - value(f)`; the feature `device_cost_change` is the least such change over a
//! node's devices that fit the share, and with the table in force the share takes that device.
//!
//! FGD's own per-device measure, `f` times the share of the workload's GPU pods that cannot use
//! `f`, is one such table; this one is trained (`learn::pool`) in a model of the cluster as one
//! pool of devices, where the packing of shares is all that decides.

use serde::{Deserialize, Serialize};

/// Milli between two levels of the table.
pub const STEP_MILLI: u16 = 10;
/// Levels in a table: 0, 10, ..., 1,000 milli free.
pub const LEVELS: usize = 101;
/// The weight a table is applied with: one FGD level per milli of cost change, so the table
/// ranks the nodes and FGD's score (with the other corrections) breaks its near ties.
pub const WEIGHT: f64 = -10.0;

/// The table, as a policy file (or an expert in one) carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceCosts {
    /// `values[k]`: the cost of a device with `k * 10` milli free.
    pub values: Vec<f64>,
}

impl DeviceCosts {
    /// What is wrong with the table, if anything.
    pub fn check(&self) -> Result<(), String> {
        if self.values.len() != LEVELS {
            return Err(format!(
                "device_costs has {} values, not {LEVELS} (one per 10 milli free, 0 to 1000)",
                self.values.len()
            ));
        }
        match self.values.iter().position(|v| !v.is_finite()) {
            Some(k) => Err(format!(
                "device_costs value for {} milli free is not a finite number",
                k * usize::from(STEP_MILLI)
            )),
            None => Ok(()),
        }
    }

    /// The cost of a device with `free` milli free (levels between steps round down).
    pub fn at(&self, free: u16) -> f64 {
        self.values[usize::from(free / STEP_MILLI).min(LEVELS - 1)]
    }

    /// The change of placing `milli` on a device with `free` milli free.
    pub fn change(&self, free: u16, milli: u16) -> f64 {
        self.at(free - milli) - self.at(free)
    }

    /// The device of `free` (each device's free milli) a share of `milli` takes: the least
    /// change, then the fullest, then the first; with that change in GPUs.
    pub fn best(&self, free: &[u16], milli: u16) -> Option<(usize, f64)> {
        self.best_of(free.iter().copied().enumerate(), milli)
            .map(|(i, c)| (i, c / 1000.0))
    }

    /// The rule behind [`best`](Self::best), over any `candidates` (a key and its free milli):
    /// of those that fit `milli`, the least change, then the fewest free milli, then the first;
    /// its key and change in milli. The pooled model (`learn::pool`) places by this rule too.
    pub fn best_of<K>(
        &self,
        candidates: impl IntoIterator<Item = (K, u16)>,
        milli: u16,
    ) -> Option<(K, f64)> {
        let mut best: Option<(K, u16, f64)> = None;
        for (key, f) in candidates {
            if f < milli {
                continue;
            }
            let c = self.change(f, milli);
            let better = match &best {
                None => true,
                Some((_, bf, bc)) => c < *bc || (c == *bc && f < *bf),
            };
            if better {
                best = Some((key, f, c));
            }
        }
        best.map(|(key, _, c)| (key, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(f: impl Fn(usize) -> f64) -> DeviceCosts {
        DeviceCosts {
            values: (0..LEVELS).map(f).collect(),
        }
    }

    #[test]
    fn a_share_takes_the_device_of_least_change_then_the_fullest() {
        // Leftovers of 200-290 milli cost 500; anything else its own free milli.
        let t = table(|k| {
            if (20..30).contains(&k) {
                500.0
            } else {
                k as f64 * 10.0
            }
        });
        // 500 free -> 250 left: 500 - 500 = 0; 700 free -> 450: 450 - 700 = -250; idle ->
        // 750: 750 - 1000 = -250, tied with 700 and less full.
        let (i, c) = t.best(&[500, 700, 1000, 100], 250).unwrap();
        assert_eq!((i, c), (1, -0.25));
        assert_eq!(t.best(&[100, 200], 250), None, "nothing fits");
        assert_eq!(t.at(1000), 1000.0);
        assert_eq!(t.at(1005), 1000.0, "past the last level reads the last");
        assert_eq!(t.at(259), 500.0, "between levels reads the lower");
    }

    #[test]
    fn a_table_of_the_wrong_length_or_with_a_non_number_is_refused() {
        let short = DeviceCosts {
            values: vec![0.0; 100],
        };
        assert!(short.check().unwrap_err().contains("100 values, not 101"));
        let mut nan = table(|_| 0.0);
        nan.values[3] = f64::NAN;
        assert!(nan.check().unwrap_err().contains("30 milli free"));
        assert!(table(|_| 1.0).check().is_ok());
    }
}
