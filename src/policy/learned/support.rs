//! The workloads a learned policy was trained on, and the rule that keeps it to them: a policy
//! file records the range of four statistics of its training traces' target workloads
//! ([`WorkloadMix`]), and a workload that lies further than the file's tolerance outside any
//! of them is placed by FGD alone, the policy's warm start, instead of by corrections that were
//! never measured on such a mix.
//!
//! Why: the learned corrections are small and their effect on a trace is not smooth in the
//! weights (BENCHMARKS.md §8). Trained without the gpuspec traces, the search's corrections were
//! 0.7-6 points worse than FGD on them, and the shipped corrections, trained with at most 28 %
//! of the GPU demand in multi-GPU pods, are worse than FGD on multigpu40 (39 %). Outside what
//! training saw, the incumbent heuristic is the safe answer.

use serde::{Deserialize, Serialize};

use crate::model::frag::TargetWorkload;
use crate::model::{GpuDemand, PodShape};

/// The statistics, in [`WorkloadMix`] order, as a policy file names them.
pub const STATS: [&str; 4] = [
    "cpu_only_pods",
    "shared_gpu_demand",
    "multi_gpu_demand",
    "model_constrained_pods",
];

/// How far outside its training range `allot train` lets a statistic go by default: five
/// points of a share (set before any measurement of it, not tuned).
pub const DEFAULT_TOLERANCE: f64 = 0.05;

/// Four shares that tell workloads apart, from a target workload's classes (each in 0..=1):
/// - `cpu_only_pods`: pods that ask for no GPU, of all pods;
/// - `shared_gpu_demand`: GPU milli asked by pods sharing a GPU, of all GPU milli asked;
/// - `multi_gpu_demand`: GPU milli asked by pods of 2 or more whole GPUs, of all GPU milli;
/// - `model_constrained_pods`: GPU pods restricted to some GPU models, of all GPU pods.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkloadMix(pub [f64; 4]);

impl WorkloadMix {
    pub fn of(target: &TargetWorkload) -> Self {
        Self::of_classes(target.classes())
    }

    fn of_classes(classes: &[(PodShape, f64)]) -> Self {
        let (mut pods, mut cpu_only, mut gpu_pods, mut constrained) = (0.0, 0.0, 0.0, 0.0);
        let (mut milli, mut shared, mut multi) = (0.0, 0.0, 0.0);
        for (shape, p) in classes {
            pods += p;
            let asked = p * shape.gpu.total_milli() as f64;
            match shape.gpu {
                GpuDemand::None => cpu_only += p,
                GpuDemand::Shared { .. } => shared += asked,
                GpuDemand::Whole { count } if count >= 2 => multi += asked,
                GpuDemand::Whole { .. } => {}
            }
            if shape.needs_gpu() {
                milli += asked;
                gpu_pods += p;
                if !shape.models.is_any() {
                    constrained += p;
                }
            }
        }
        let share = |part: f64, whole: f64| if whole > 0.0 { part / whole } else { 0.0 };
        WorkloadMix([
            share(cpu_only, pods),
            share(shared, milli),
            share(multi, milli),
            share(constrained, gpu_pods),
        ])
    }
}

/// The trained range of each statistic of [`STATS`], and the tolerance around it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Support {
    pub tolerance: f64,
    pub cpu_only_pods: [f64; 2],
    pub shared_gpu_demand: [f64; 2],
    pub multi_gpu_demand: [f64; 2],
    pub model_constrained_pods: [f64; 2],
}

/// A workload outside a policy's support: the first statistic that is, and by how much.
#[derive(Debug, Clone, PartialEq)]
pub struct Outside {
    pub stat: &'static str,
    pub value: f64,
    pub range: [f64; 2],
    pub tolerance: f64,
}

impl std::fmt::Display for Outside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the workload's {} is {:.3}, outside the {:.3}-{:.3} the policy was trained on \
             (tolerance {})",
            self.stat, self.value, self.range[0], self.range[1], self.tolerance
        )
    }
}

impl Support {
    /// The smallest ranges holding every mix in `mixes` (rounded outwards to 1e-4, so the file
    /// reads plainly); `None` without any.
    pub fn spanning(mixes: &[WorkloadMix], tolerance: f64) -> Option<Self> {
        let first = mixes.first()?;
        let mut r = first.0.map(|v| [v, v]);
        for m in mixes {
            for (range, v) in r.iter_mut().zip(m.0) {
                range[0] = range[0].min(v);
                range[1] = range[1].max(v);
            }
        }
        // (less a hair of the scaling's rounding, so 0.28 stays 0.28; `+ 0.0` turns a -0 into 0)
        let round = |v: f64| v.clamp(0.0, 1.0) + 0.0;
        let r = r.map(|[lo, hi]| {
            [
                round((lo * 1e4 + 1e-6).floor() / 1e4),
                round((hi * 1e4 - 1e-6).ceil() / 1e4),
            ]
        });
        Some(Support {
            tolerance,
            cpu_only_pods: r[0],
            shared_gpu_demand: r[1],
            multi_gpu_demand: r[2],
            model_constrained_pods: r[3],
        })
    }

    fn ranges(&self) -> [[f64; 2]; 4] {
        [
            self.cpu_only_pods,
            self.shared_gpu_demand,
            self.multi_gpu_demand,
            self.model_constrained_pods,
        ]
    }

    /// `None` when `mix` lies within every range widened by the tolerance.
    pub fn outside(&self, mix: &WorkloadMix) -> Option<Outside> {
        let t = self.tolerance;
        (0..STATS.len()).find_map(|i| {
            let [lo, hi] = self.ranges()[i];
            let v = mix.0[i];
            (v < lo - t || v > hi + t).then_some(Outside {
                stat: STATS[i],
                value: v,
                range: [lo, hi],
                tolerance: t,
            })
        })
    }

    /// What is wrong with a file's support, if anything.
    pub fn check(&self) -> Result<(), String> {
        if !(self.tolerance.is_finite() && (0.0..=1.0).contains(&self.tolerance)) {
            return Err(format!(
                "support tolerance {} is not in 0..=1",
                self.tolerance
            ));
        }
        for (name, [lo, hi]) in STATS.iter().zip(self.ranges()) {
            if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi && hi <= 1.0) {
                return Err(format!(
                    "support range of {name} [{lo}, {hi}] is not a range within 0..=1"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelSet;

    fn class(cpu: u64, gpu: GpuDemand, models: ModelSet, p: f64) -> (PodShape, f64) {
        let shape = PodShape {
            cpu_milli: cpu,
            gpu,
            models,
        };
        (shape, p)
    }

    #[test]
    fn the_mix_counts_pods_and_gpu_milli_as_documented() {
        let any = ModelSet::ANY;
        let mix = WorkloadMix::of_classes(&[
            class(4000, GpuDemand::None, any, 0.2),
            class(4000, GpuDemand::Shared { milli: 500 }, any, 0.4),
            class(8000, GpuDemand::Whole { count: 1 }, ModelSet::EMPTY, 0.3),
            class(32000, GpuDemand::Whole { count: 4 }, any, 0.1),
        ]);
        // GPU milli: 0.4 * 500 = 200, 0.3 * 1000 = 300, 0.1 * 4000 = 400; 900 in all.
        let want = [0.2, 200.0 / 900.0, 400.0 / 900.0, 0.3 / 0.8];
        for (got, want) in mix.0.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{:?}", mix.0);
        }
        assert_eq!(WorkloadMix::of_classes(&[]).0, [0.0; 4], "no pods: all 0");
    }

    #[test]
    fn a_mix_is_inside_its_own_span_and_outside_past_the_tolerance() {
        let a = WorkloadMix([0.05, 0.3, 0.0, 0.0]);
        let b = WorkloadMix([0.2, 0.85, 0.28, 0.22]);
        let s = Support::spanning(&[a, b], 0.05).unwrap();
        assert!(s.check().is_ok());
        assert_eq!(s.outside(&a), None);
        assert_eq!(s.outside(&b), None);
        assert_eq!(s.outside(&WorkloadMix([0.1, 0.5, 0.32, 0.1])), None);
        let far = s.outside(&WorkloadMix([0.1, 0.5, 0.39, 0.1])).unwrap();
        assert_eq!((far.stat, far.range), ("multi_gpu_demand", [0.0, 0.28]));
        assert!(far.to_string().contains("0.390"), "{far}");
        let below = s.outside(&WorkloadMix([0.0, 0.5, 0.1, 0.1]));
        assert_eq!(
            below, None,
            "0.05 below the lowest share is within the tolerance"
        );
        let below = s.outside(&WorkloadMix([0.0, 0.2, 0.1, 0.1])).unwrap();
        assert_eq!(below.stat, "shared_gpu_demand");
        assert_eq!(Support::spanning(&[], 0.05), None);
        let zero = Support::spanning(&[WorkloadMix([0.0; 4])], 0.05).unwrap();
        let text = serde_json::to_string(&zero).unwrap();
        assert!(!text.contains('-'), "no negative zero: {text}");
    }

    #[test]
    fn a_broken_support_says_what_is_wrong() {
        let mut s = Support::spanning(&[WorkloadMix([0.1, 0.2, 0.3, 0.4])], 0.05).unwrap();
        s.multi_gpu_demand = [0.5, 0.2];
        assert!(s.check().unwrap_err().contains("multi_gpu_demand"));
        s.multi_gpu_demand = [0.2, 0.5];
        s.tolerance = f64::NAN;
        assert!(s.check().unwrap_err().contains("tolerance"));
    }
}
