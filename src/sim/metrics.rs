//! The paper's metrics, discretised over arrived workload: unallocated GPU %, fragmentation
//! amount (% of capacity) and fragmentation ratio (% of idle GPU), at x = 0..=130 % arrived.

use super::replay::Sample;

/// Last discretisation point: arrivals are tuned to 130% of capacity.
pub const MAX_X: usize = 130;

/// One value per arrived percentage `0..=MAX_X`; None where no event fell close enough.
pub type Curve = Vec<Option<f64>>;

/// The three curves of one replay.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCurves {
    pub unallocated_pct: Curve,
    pub frag_pct: Curve,
    pub frag_ratio_pct: Curve,
}

impl RunCurves {
    pub fn from_samples(samples: &[Sample], capacity_milli: u64) -> Self {
        let cap = capacity_milli.max(1) as f64;
        let x_of = |s: &Sample| (s.arrived as f64 / cap * 100.0).round() as usize;
        let curve = |value: &dyn Fn(&Sample) -> f64| discretise(samples, &x_of, value);
        RunCurves {
            unallocated_pct: curve(&|s| 100.0 - s.allocated as f64 / cap * 100.0),
            frag_pct: curve(&|s| s.frag / cap * 100.0),
            frag_ratio_pct: curve(&|s| {
                let idle = cap - s.allocated as f64;
                if idle > 0.0 {
                    s.frag / idle * 100.0
                } else {
                    0.0
                }
            }),
        }
    }
}

/// Mean of the events whose rounded x equals each point; where there are none, the mean of
/// the events within x +/- 1.
fn discretise(
    samples: &[Sample],
    x_of: &dyn Fn(&Sample) -> usize,
    value: &dyn Fn(&Sample) -> f64,
) -> Curve {
    let mut sum = vec![0.0; MAX_X + 1];
    let mut count = vec![0u32; MAX_X + 1];
    for s in samples {
        let x = x_of(s);
        if x <= MAX_X {
            sum[x] += value(s);
            count[x] += 1;
        }
    }
    let sums = |x: Option<usize>| {
        x.filter(|&x| x <= MAX_X)
            .map_or((0.0, 0), |x| (sum[x], count[x]))
    };
    (0..=MAX_X)
        .map(|x| {
            at_or_near(
                sums(x.checked_sub(1)),
                sums(Some(x)),
                sums(Some(x + 1)),
                |&(_, n)| n > 0,
                |near, (s, n)| {
                    near.0 += s;
                    near.1 += n;
                },
            )
            .map(|(s, n)| s / f64::from(n))
        })
        .collect()
}

/// The protocol's rule for one report point, given what the events at each of `x - 1`, `x`
/// and `x + 1` sum to: the events at `x` if `any` says there are some, else those either side
/// together (`add` merges them), else none.
pub fn at_or_near<T>(
    below: T,
    at: T,
    above: T,
    any: impl Fn(&T) -> bool,
    add: impl Fn(&mut T, T),
) -> Option<T> {
    if any(&at) {
        return Some(at);
    }
    let mut near = below;
    add(&mut near, above);
    any(&near).then_some(near)
}

/// Mean and sample standard deviation.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MeanSd {
    pub mean: f64,
    pub sd: f64,
}

impl MeanSd {
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let sd = if values.len() > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        Some(MeanSd { mean, sd })
    }
}

/// Median and interquartile band of several curves, point by point (the paper's Fig. 9a).
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub p25: Curve,
    pub median: Curve,
    pub p75: Curve,
}

impl Band {
    pub fn of(curves: &[&Curve]) -> Self {
        let at = |q: f64| -> Curve {
            (0..=MAX_X)
                .map(|x| {
                    let mut v: Vec<f64> = curves
                        .iter()
                        .filter_map(|c| c.get(x).copied().flatten())
                        .collect();
                    quantile(&mut v, q)
                })
                .collect()
        };
        Band {
            p25: at(0.25),
            median: at(0.5),
            p75: at(0.75),
        }
    }
}

/// Linear-interpolation quantile (numpy's default); None for no values.
pub fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let pos = q * (values.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    Some(values[lo] + (values[hi] - values[lo]) * (pos - lo as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(arrived: u64, allocated: u64) -> Sample {
        Sample {
            arrived,
            allocated,
            frag: 0.0,
        }
    }

    #[test]
    fn discretises_by_rounded_arrival_and_fills_gaps_from_neighbours() {
        // capacity 1000: x = arrived / 10
        let samples = [s(0, 0), s(4, 4), s(10, 10), s(30, 20)];
        let c = RunCurves::from_samples(&samples, 1000);
        assert_eq!(c.unallocated_pct[0], Some(100.0 - 0.2));
        assert_eq!(c.unallocated_pct[1], Some(99.0));
        assert_eq!(c.unallocated_pct[2], Some(98.5)); // mean of x = 1 and x = 3
        assert_eq!(c.unallocated_pct[3], Some(98.0));
        assert_eq!(c.unallocated_pct[5], None);
    }

    #[test]
    fn mean_sd_and_quantiles() {
        let m = MeanSd::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(m.mean, 2.5);
        assert!((m.sd - 1.290_994_448_735_805_6).abs() < 1e-12);
        assert_eq!(quantile(&mut [4.0, 1.0, 3.0, 2.0], 0.5), Some(2.5));
        assert_eq!(quantile(&mut [], 0.5), None);
    }
}
