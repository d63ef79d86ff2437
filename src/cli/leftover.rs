//! `allot simulate --leftover`: where each policy's unallocated GPU lies at the report point,
//! as % of GPU capacity, mean over seeds (see [`crate::sim::Leftover`]).

use std::fmt::Write as _;

use serde::Serialize;

use crate::sim::{Leftover, PolicyResult};

/// How many leftover sizes of partly used devices the report names.
const SIZES: usize = 3;

/// One policy's leftovers, % of GPU capacity, mean over the seeds that reached the point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyLeftover {
    pub policy: String,
    /// Seeds whose replay reached the report point.
    pub seeds: usize,
    pub unallocated_pct: f64,
    /// Free GPU in partly used devices.
    pub partial_pct: f64,
    /// The part of `partial_pct` that a share of the target would fit by size but whose node
    /// has not the CPU for any such share.
    pub partial_cpu_bound_pct: f64,
    /// The sizes (free milli per device) holding most of `partial_pct`, with their share.
    pub largest_partial: Vec<(u16, f64)>,
    /// Idle devices on nodes with CPU left for a GPU pod of the target workload.
    pub idle_pct: f64,
    /// Idle devices on nodes without it.
    pub stranded_pct: f64,
}

/// Each policy's mean leftovers; policies none of whose seeds reached the point are left out.
/// A run holds the sum of the events it measured, so each is averaged first, then the seeds.
pub fn summarise(results: &[PolicyResult], capacity_milli: u64) -> Vec<PolicyLeftover> {
    let to_pct = 100.0 / capacity_milli.max(1) as f64;
    results
        .iter()
        .filter_map(|r| {
            let runs: Vec<&Leftover> = r.runs.iter().filter_map(|s| s.leftover.as_ref()).collect();
            if runs.is_empty() {
                return None;
            }
            // % of capacity, mean over the seeds of each run's mean over its events.
            let mean = |part: &dyn Fn(&Leftover) -> u64| {
                let per_run = |l: &&Leftover| part(l) as f64 / l.samples.max(1) as f64;
                runs.iter().map(per_run).sum::<f64>() / runs.len() as f64 * to_pct
            };
            let mut pooled = Leftover::default();
            runs.iter().for_each(|run| pooled.add(run));
            Some(PolicyLeftover {
                policy: r.policy.name().to_string(),
                seeds: runs.len(),
                unallocated_pct: mean(&Leftover::total),
                partial_pct: mean(&Leftover::partial_total),
                partial_cpu_bound_pct: mean(&|l| l.partial_cpu_bound),
                largest_partial: pooled
                    .largest_partial(SIZES)
                    .into_iter()
                    .map(|(size, _)| (size, mean(&|l| l.partial.get(&size).copied().unwrap_or(0))))
                    .collect(),
                idle_pct: mean(&|l| l.idle),
                stranded_pct: mean(&|l| l.stranded),
            })
        })
        .collect()
}

/// The table printed after the main one.
pub fn table(rows: &[PolicyLeftover], at: usize) -> String {
    let mut out = format!(
        "\nWhere the unallocated GPU lies at {at} % arrived (% of GPU capacity, mean over seeds):\n\
         {:<16} {:>11} {:>14} {:>10}  {:<34} {:>6} {:>9}\n",
        "policy",
        "unallocated",
        "partly used",
        "of it CPU",
        "largest leftovers (free milli: %)",
        "idle",
        "stranded"
    );
    for r in rows {
        let sizes = r
            .largest_partial
            .iter()
            .map(|(size, p)| format!("{size}: {p:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "{:<16} {:>11.2} {:>14.2} {:>10.2}  {:<34} {:>6.2} {:>9.2}",
            r.policy,
            r.unallocated_pct,
            r.partial_pct,
            r.partial_cpu_bound_pct,
            sizes,
            r.idle_pct,
            r.stranded_pct
        );
    }
    out.push_str(
        "(partly used: free milli left in devices that hold shares; of it CPU: in devices a share \
         of the target would fit whose node has not the CPU for one; idle: whole free devices on \
         nodes with the CPU for a GPU pod of the target workload; stranded: on nodes without it)\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyKind;
    use crate::sim::SeedRun;
    use std::collections::BTreeMap;

    fn run(seed: u64, leftover: Option<Leftover>) -> SeedRun {
        SeedRun {
            seed,
            arrivals: 0,
            placed: 0,
            failed: 0,
            failed_gpu_milli: 0,
            curves: crate::sim::metrics::RunCurves::from_samples(&[], 1),
            elapsed: std::time::Duration::ZERO,
            moves: Default::default(),
            leftover,
        }
    }

    #[test]
    fn leftovers_are_averaged_over_each_runs_events_then_the_seeds_that_reached_the_point() {
        let a = Leftover {
            samples: 1,
            partial: BTreeMap::from([(190, 400), (60, 100)]),
            partial_cpu_bound: 100,
            idle: 1_000,
            stranded: 0,
        };
        // Two events summed: on average 200 milli at 190 and 2,000 stranded.
        let b = Leftover {
            samples: 2,
            partial: BTreeMap::from([(190, 400)]),
            partial_cpu_bound: 400,
            idle: 0,
            stranded: 4_000,
        };
        let results = [
            PolicyResult {
                policy: PolicyKind::Fgd,
                runs: vec![run(1, Some(a)), run(2, Some(b)), run(3, None)],
            },
            PolicyResult {
                policy: PolicyKind::BestFit,
                runs: vec![run(1, None)],
            },
        ];
        // Capacity 10 GPUs: 1 milli-GPU per 10,000 is 0.01 %.
        let rows = summarise(&results, 10_000);
        assert_eq!(rows.len(), 1, "bestfit never reached the point");
        let fgd = &rows[0];
        assert_eq!(fgd.seeds, 2);
        assert!((fgd.unallocated_pct - 18.5).abs() < 1e-9);
        assert!((fgd.partial_pct - 3.5).abs() < 1e-9);
        // 100 of one run's 500, 400 of the other's two events' 800.
        assert!((fgd.partial_cpu_bound_pct - 1.5).abs() < 1e-9);
        assert_eq!(fgd.largest_partial[0].0, 190);
        assert!((fgd.largest_partial[0].1 - 3.0).abs() < 1e-9);
        assert!((fgd.idle_pct - 5.0).abs() < 1e-9);
        assert!((fgd.stranded_pct - 10.0).abs() < 1e-9);
        let text = table(&rows, 100);
        assert!(text.contains("190: 3.00, 60: 0.50"), "{text}");
    }
}
