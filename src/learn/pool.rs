//! Training a device cost table (`policy::learned::costs`, `allot train --device-costs`) in a
//! model of the cluster as one pool of GPUs: no nodes, no CPU, memory or GPU-model limits; a
//! pod of k whole GPUs takes any k idle ones, CPU-only pods use nothing, and a share goes to
//! the device the table chooses (the least cost change, then the fullest), an idle one
//! included. What is left is the packing of shares into devices, which is most of what the
//! replays leave unallocated (BENCHMARKS.md section 8), and a replay costs microseconds per pod,
//! so the cross-entropy method can search all 101 values of the table where the simulator's
//! replays could afford a handful of weights.
//!
//! The arrivals are the simulator's own ([`arrivals`]: the protocol's shuffle and tuning, by
//! seed), and a replay's figure is the simulator's: the mean unallocated GPU % over the events
//! whose arrived GPU rounds to 100 % of capacity. The search starts from FGD's per-device
//! fragmentation against the first trace's workload (a device's free milli times the share of
//! its GPU pods that cannot use them) and is seeded: one seed and thread count, one table.
//! [`search_simulated`] runs the same search with the simulator's replays as the score.

use super::Trace;
use super::search::{evaluate_files, normal};
use crate::model::{GpuDemand, MILLI_PER_GPU, PodDemand};
use crate::policy::learned::PolicyFile;
use crate::policy::learned::costs::{DeviceCosts, LEVELS, STEP_MILLI, WEIGHT};
use crate::policy::learned::features::DEVICE_COST;
use crate::rng::Rng;
use crate::sim::parallel::run_indexed;
use crate::sim::replay::arrivals;

/// Cross-entropy settings of the table's search.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolOptions {
    pub generations: usize,
    pub population: usize,
    /// Candidates whose mean and spread set the next generation's.
    pub elite: usize,
    /// Initial spread of each value, milli.
    pub sigma: f64,
    /// No value's spread falls below this, milli.
    pub min_sigma: f64,
    pub threads: usize,
    pub seed: u64,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            generations: 20,
            population: 16,
            elite: 4,
            sigma: 60.0,
            min_sigma: 5.0,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            seed: 1,
        }
    }
}

/// One generation of the search, for the progress bar and the curves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolGeneration {
    pub generation: usize,
    /// The generation's best candidate on the training arrivals.
    pub best: f64,
    /// The new mean table on the training arrivals.
    pub mean: f64,
}

/// Stream of the search's draws.
const STREAM_POOL: u64 = 0x504f_4f4c;
const FULL: u16 = MILLI_PER_GPU as u16;

/// FGD's per-device fragmentation against `pods`' GPU pods, as a table: `f` free milli times
/// the share of them (by count) that cannot use `f` on one device; an idle device costs 0.
pub fn fgd_table(pods: &[PodDemand]) -> DeviceCosts {
    let gpu_pods = pods.iter().filter(|p| p.needs_gpu()).count().max(1) as f64;
    let mut shares: Vec<u32> = pods
        .iter()
        .filter_map(|p| match p.gpu {
            GpuDemand::Shared { milli } => Some(milli),
            _ => None,
        })
        .collect();
    shares.sort_unstable();
    let values = (0..LEVELS)
        .map(|k| {
            let f = k as u32 * u32::from(STEP_MILLI);
            if f >= u32::from(FULL) {
                return 0.0;
            }
            let fits = shares.partition_point(|&s| s <= f) as f64;
            f64::from(f) * (1.0 - fits / gpu_pods)
        })
        .collect();
    DeviceCosts { values }
}

/// The mean unallocated GPU % over the events of `arrivals` at 100 % arrived (or, if none
/// rounds to it, within a point of it), with `gpus` pooled devices and shares placed by `costs`.
pub fn replay(arrivals: &[PodDemand], gpus: u64, costs: &DeviceCosts) -> f64 {
    let capacity = gpus * u64::from(FULL);
    let mut idle = gpus;
    // Partly used devices by free milli (1..999).
    let mut count = vec![0u32; usize::from(FULL)];
    let (mut arrived, mut allocated) = (0u64, 0u64);
    let mut at = [(0.0, 0u32); 3]; // events at 99, 100, 101 %
    for pod in arrivals {
        arrived += pod.gpu.total_milli();
        match pod.gpu {
            GpuDemand::None => {}
            GpuDemand::Whole { count: k } => {
                if idle >= u64::from(k) {
                    idle -= u64::from(k);
                    allocated += pod.gpu.total_milli();
                }
            }
            GpuDemand::Shared { milli } => {
                let m = milli as u16;
                // One candidate per free level held by some device, as the simulator's nodes
                // offer one per device: the same rule picks among them.
                let levels = (m..FULL).filter(|&f| count[usize::from(f)] > 0);
                let candidates = levels.chain((idle > 0).then_some(FULL)).map(|f| (f, f));
                if let Some((f, _)) = costs.best_of(candidates, m) {
                    if f == FULL {
                        idle -= 1;
                    } else {
                        count[usize::from(f)] -= 1;
                    }
                    if f > m {
                        count[usize::from(f - m)] += 1;
                    }
                    allocated += u64::from(m);
                }
            }
        }
        let x = (arrived as f64 * 100.0 / capacity as f64).round();
        if x > 101.0 {
            break;
        }
        if x >= 99.0 {
            let slot = &mut at[(x - 99.0) as usize];
            slot.0 += 100.0 - allocated as f64 * 100.0 / capacity as f64;
            slot.1 += 1;
        }
    }
    let (sum, n) = if at[1].1 > 0 {
        at[1]
    } else {
        at.iter().fold((0.0, 0), |a, s| (a.0 + s.0, a.1 + s.1))
    };
    if n == 0 { f64::NAN } else { sum / f64::from(n) }
}

/// The mean over `jobs` (arrivals and pooled GPUs) of [`replay`] under `costs`.
fn score(jobs: &[(Vec<PodDemand>, u64)], costs: &DeviceCosts) -> f64 {
    jobs.iter().map(|(a, g)| replay(a, *g, costs)).sum::<f64>() / jobs.len().max(1) as f64
}

/// Search a table on `traces` x `seeds`, handing `progress` each generation and its mean
/// table (the table the generation moved to: its elite's mean, which averages their luck on
/// the training arrivals); returns the last mean table and the generations.
pub fn search(
    traces: &[Trace],
    seeds: &[u64],
    opts: &PoolOptions,
    progress: impl FnMut(PoolGeneration, &DeviceCosts),
) -> (DeviceCosts, Vec<PoolGeneration>) {
    let jobs: Vec<(Vec<PodDemand>, u64)> = traces
        .iter()
        .flat_map(|t| {
            let capacity = t.cluster.gpu_capacity_milli();
            seeds.iter().map(move |&s| {
                let gpus = capacity / u64::from(FULL);
                (arrivals(&t.pods, capacity, s), gpus)
            })
        })
        .collect();
    let start = traces.first().map_or_else(
        || DeviceCosts {
            values: vec![0.0; LEVELS],
        },
        |t| fgd_table(&t.pods),
    );
    let score_all = |tables: &[DeviceCosts]| {
        run_indexed(
            tables.len(),
            opts.threads,
            |i| score(&jobs, &tables[i]),
            |_, _| {},
        )
    };
    cross_entropy(start, opts, score_all, progress)
}

/// Search the table of `start` (FGD's fragmentation if it has none) in the simulator itself:
/// every candidate is `start` with that table in force, replayed on `traces` x `seeds`. The
/// pool leaves out the nodes' CPU and memory, which decide where a share may go; here they
/// are in, at a replay's cost (a few hundred ms, where the pool's takes milliseconds).
pub fn search_simulated(
    traces: &[Trace],
    seeds: &[u64],
    start: &PolicyFile,
    opts: &PoolOptions,
    progress: impl FnMut(PoolGeneration, &DeviceCosts),
) -> (DeviceCosts, Vec<PoolGeneration>) {
    let table = start
        .device_costs
        .clone()
        .or_else(|| traces.first().map(|t| fgd_table(&t.pods)));
    let table = table.unwrap_or_else(|| DeviceCosts {
        values: vec![0.0; LEVELS],
    });
    let score_all = |tables: &[DeviceCosts]| {
        let files: Vec<PolicyFile> = tables.iter().map(|t| with_table(start, t)).collect();
        evaluate_files(traces, seeds, &files, opts.threads, None, &mut || {})
            .into_iter()
            .map(|e| e.mean)
            .collect()
    };
    cross_entropy(table, opts, score_all, progress)
}

/// `file` with `table` in force at the table's weight.
pub fn with_table(file: &PolicyFile, table: &DeviceCosts) -> PolicyFile {
    let mut f = file.clone();
    f.weights[DEVICE_COST] = WEIGHT;
    f.device_costs = Some(table.clone());
    f
}

/// The cross-entropy method from `start`: each generation draws `opts.population` tables
/// around the mean, scores them all at once with `score_all` (lower is better), and moves the
/// mean and spread to its elite's.
fn cross_entropy(
    start: DeviceCosts,
    opts: &PoolOptions,
    mut score_all: impl FnMut(&[DeviceCosts]) -> Vec<f64>,
    mut progress: impl FnMut(PoolGeneration, &DeviceCosts),
) -> (DeviceCosts, Vec<PoolGeneration>) {
    let mut mean = start;
    let mut sigma = vec![opts.sigma; LEVELS];
    let mut rng = Rng::derive(opts.seed, STREAM_POOL);
    let mut curve = Vec::new();
    for generation in 1..=opts.generations {
        let population: Vec<DeviceCosts> = (0..opts.population)
            .map(|_| DeviceCosts {
                values: (0..LEVELS)
                    .map(|k| mean.values[k] + sigma[k] * normal(&mut rng))
                    .collect(),
            })
            .collect();
        let scores = score_all(&population);
        let mut order: Vec<usize> = (0..population.len()).collect();
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        let elite: Vec<&DeviceCosts> = order
            .iter()
            .take(opts.elite.max(1))
            .map(|&i| &population[i])
            .collect();
        let n = elite.len() as f64;
        for (k, (mean, sigma)) in mean.values.iter_mut().zip(&mut sigma).enumerate() {
            let m = elite.iter().map(|t| t.values[k]).sum::<f64>() / n;
            let var = elite.iter().map(|t| (t.values[k] - m).powi(2)).sum::<f64>() / n;
            *mean = m;
            *sigma = var.sqrt().max(opts.min_sigma);
        }
        let g = PoolGeneration {
            generation,
            best: scores[order[0]],
            mean: score_all(std::slice::from_ref(&mean))[0],
        };
        progress(g, &mean);
        curve.push(g);
    }
    (mean, curve)
}

#[cfg(test)]
mod tests;
