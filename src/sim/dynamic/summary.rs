//! What a dynamic replay is judged by: time-weighted means over the arrival window (from 0
//! to the last arrival, so the drain after it does not dilute them), failures, and waiting
//! times; and the state on an even time grid for the over-time table, CSV and plot, with the
//! waits of the pods placed in each interval of that grid.

use super::{DynamicOutcome, TimeSample};
use crate::sim::metrics::quantile;

/// One replay's numbers. Percentages of the cluster's GPU capacity unless said otherwise.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RunSummary {
    pub pods: usize,
    pub placed: usize,
    pub failed: usize,
    pub still_waiting: usize,
    /// Failed pods as % of all pods.
    pub failed_pct: f64,
    /// GPU milli of failed pods as % of the GPU milli all pods request.
    pub failed_gpu_pct: f64,
    /// Time-weighted mean GPU allocation ratio over the arrival window.
    pub alloc_pct: f64,
    pub peak_alloc_pct: f64,
    /// GPU allocation ratio at the last arrival (the busiest moment of the openb traces).
    pub end_alloc_pct: f64,
    /// Time-weighted mean fragmentation (amount, % of capacity) over the arrival window.
    pub frag_pct: f64,
    /// Time-weighted mean number of pods waiting, and the most at once.
    pub mean_waiting: f64,
    pub max_waiting: usize,
    /// Pods that waited at all, and the waiting time of placed pods in seconds.
    pub waited: usize,
    pub wait_mean_s: f64,
    pub wait_p50_s: f64,
    pub wait_p99_s: f64,
}

impl RunSummary {
    /// Summarise `out`, a replay of `pods` pods requesting `requested` GPU milli in all, on a
    /// cluster of `capacity` milli.
    pub fn of(out: &DynamicOutcome, pods: usize, requested: u64, capacity: u64) -> Self {
        let cap = capacity.max(1) as f64 / 100.0;
        let mean = |f: &dyn Fn(&TimeSample) -> f64| time_mean(&out.samples, out.horizon_ms, f);
        let mut waits: Vec<f64> = out.waits_ms.iter().map(|&w| w as f64 / 1000.0).collect();
        RunSummary {
            pods,
            placed: out.placed,
            failed: out.failed,
            still_waiting: out.still_waiting,
            failed_pct: 100.0 * out.failed as f64 / pods.max(1) as f64,
            failed_gpu_pct: 100.0 * out.failed_gpu_milli as f64 / requested.max(1) as f64,
            alloc_pct: mean(&|s| s.allocated as f64) / cap,
            peak_alloc_pct: out
                .samples
                .iter()
                .map(|s| s.allocated as f64 / cap)
                .fold(0.0, f64::max),
            end_alloc_pct: out
                .samples
                .iter()
                .take_while(|s| s.t_ms <= out.horizon_ms)
                .last()
                .map_or(0.0, |s| s.allocated as f64 / cap),
            frag_pct: mean(&|s| s.frag) / cap,
            mean_waiting: mean(&|s| s.waiting as f64),
            max_waiting: out.samples.iter().map(|s| s.waiting).max().unwrap_or(0),
            waited: out.waits_ms.iter().filter(|&&w| w > 0).count(),
            wait_mean_s: waits.iter().sum::<f64>() / waits.len().max(1) as f64,
            wait_p50_s: quantile(&mut waits, 0.5).unwrap_or(0.0),
            wait_p99_s: quantile(&mut waits, 0.99).unwrap_or(0.0),
        }
    }
}

/// The time-weighted mean of `value` over `[0, horizon_ms]` of the step function the samples
/// describe (each holds from its time to the next; zero before the first). With a zero
/// horizon: the value at time 0.
pub fn time_mean(
    samples: &[TimeSample],
    horizon_ms: u64,
    value: &dyn Fn(&TimeSample) -> f64,
) -> f64 {
    if horizon_ms == 0 {
        return samples.first().filter(|s| s.t_ms == 0).map_or(0.0, value);
    }
    let mut area = 0.0;
    for (i, s) in samples.iter().enumerate() {
        if s.t_ms >= horizon_ms {
            break;
        }
        let until = samples
            .get(i + 1)
            .map_or(horizon_ms, |n| n.t_ms.min(horizon_ms));
        area += value(s) * (until - s.t_ms) as f64;
    }
    area / horizon_ms as f64
}

/// The state at `points` + 1 evenly spaced times from 0 to the replay's horizon: at each,
/// the last sample at or before it (the empty cluster before the first).
pub fn grid(out: &DynamicOutcome, points: usize) -> Vec<TimeSample> {
    let (samples, horizon_ms) = (&out.samples, out.horizon_ms);
    let empty = TimeSample {
        t_ms: 0,
        allocated: 0,
        frag: out.initial_frag,
        waiting: 0,
        failed: 0,
    };
    let mut at = 0;
    grid_times(horizon_ms, points)
        .into_iter()
        .map(|t| {
            while at < samples.len() && samples[at].t_ms <= t {
                at += 1;
            }
            let s = if at == 0 { empty } else { samples[at - 1] };
            TimeSample { t_ms: t, ..s }
        })
        .collect()
}

/// The waits of the pods placed after waiting (a wait above zero) in one interval of the
/// grid. Interval `k` of the grid of [`grid`] is `(t[k-1], t[k]]`, interval 0 the instant 0
/// alone, so every placement from time 0 to the horizon falls in exactly one; placements
/// after the horizon (the drain once the last pod has arrived) fall in none.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WaitWindow {
    /// Pods placed in the interval after waiting.
    pub waited: usize,
    /// Their mean and longest wait, seconds; `None` when `waited` is 0.
    pub mean_s: Option<f64>,
    pub max_s: Option<f64>,
}

/// [`WaitWindow`] for each of the `points` + 1 grid times of [`grid`].
pub fn wait_grid(out: &DynamicOutcome, points: usize) -> Vec<WaitWindow> {
    let times = grid_times(out.horizon_ms, points);
    let mut sums = vec![(0_usize, 0_u64, 0_u64); times.len()];
    for (&at, &wait) in out.placed_ms.iter().zip(&out.waits_ms) {
        if wait == 0 || at > out.horizon_ms {
            continue;
        }
        // The first grid time at or after the placement.
        let k = times.partition_point(|&t| t < at);
        if let Some(w) = sums.get_mut(k) {
            *w = (w.0 + 1, w.1 + wait, w.2.max(wait));
        }
    }
    sums.into_iter()
        .map(|(n, sum, max)| WaitWindow {
            waited: n,
            mean_s: (n > 0).then(|| sum as f64 / n as f64 / 1000.0),
            max_s: (n > 0).then(|| max as f64 / 1000.0),
        })
        .collect()
}

/// The `points` + 1 evenly spaced times from 0 to `horizon_ms`, milliseconds.
fn grid_times(horizon_ms: u64, points: usize) -> Vec<u64> {
    (0..=points)
        .map(|k| (horizon_ms as f64 * k as f64 / points.max(1) as f64).round() as u64)
        .collect()
}
