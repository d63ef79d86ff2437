//! `allot train --device-costs GENERATIONS`: learn a device cost table in the pooled model
//! (`learn::pool`) on --pods x --seeds, add it to the starting policy (--policy-file's part for
//! the first trace, or FGD's warm start) at the table's fixed weight. Every generation's table
//! is replayed by the simulator on --validation-seeds, and the best there is kept, the starting
//! policy included (the pooled model leaves out the nodes, so its best table need not be the
//! simulator's). No other phase runs. With `--device-costs-in simulator` the search scores its
//! tables by the simulator's replays of --pods x --seeds instead, from the starting policy's
//! own table.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::super::simulate::progress_bar;
use super::super::usage::usage;
use super::TrainArgs;
use super::curves::write_curves;
use crate::learn::CurvePoint;
use crate::learn::Trace;
use crate::learn::pool::{self, PoolOptions};
use crate::learn::pool::{PoolGeneration, search_simulated};
use crate::learn::search::evaluate_files;
use crate::policy::learned::PolicyFile;
use crate::policy::learned::costs::{DeviceCosts, WEIGHT};

#[derive(Debug, Args)]
pub struct TrainCostsArgs {
    /// Learn a device cost table instead of the other phases: this many generations of the
    /// cross-entropy search in the pooled model (the cluster as one pool of GPUs, where a
    /// replay takes milliseconds), on --pods x --seeds, starting from FGD's per-device
    /// fragmentation. The table joins the starting policy (--policy-file, else FGD) at a fixed
    /// weight, and is kept only if the simulator's replays of --validation-seeds say it is
    /// better (BENCHMARKS.md section 8).
    #[arg(long, value_name = "GENERATIONS", default_value_t = 0,
          conflicts_with_all = ["supervised_epochs", "epochs", "search_generations", "history",
                                "combine", "resume", "dynamic"])]
    pub device_costs: usize,
    /// Tables replayed per generation of --device-costs.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(2..=1000))]
    pub device_costs_population: u64,
    /// The best tables of a generation that set the next one's mean and spread.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub device_costs_elite: u64,
    /// Where --device-costs scores its tables: `pool` (the pooled model, from FGD's
    /// fragmentation) or `simulator` (the simulator's replays of --pods x --seeds, from the
    /// starting policy's own table; a few hundred times slower, with the nodes' limits in).
    #[arg(long, value_enum, default_value_t = CostsIn::Pool)]
    pub device_costs_in: CostsIn,
    /// The initial spread of each value of the table, milli (the pool's default: 60).
    #[arg(long, default_value_t = 60.0, value_parser = positive)]
    pub device_costs_sigma: f64,
}

/// Where `--device-costs` scores its tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CostsIn {
    Pool,
    Simulator,
}

fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{text:?} is not a positive number of milli")),
    }
}

/// Run the --device-costs mode of `train` on `traces`: `start` is the starting policy (None:
/// FGD's warm start), the curves go to the directory `curves_dir`.
pub fn run(
    train: &TrainArgs,
    traces: &[Trace],
    seeds: &[u64],
    validation: &[u64],
    start: Option<PolicyFile>,
    curves_dir: &Path,
) -> anyhow::Result<ExitCode> {
    let (args, seed, output) = (&train.costs, train.seed, train.output.as_path());
    // The same refusals as training's: no trace without GPU pods, no evaluation seed.
    crate::learn::check(traces, seeds, validation, &crate::learn::Options::default())?;
    if validation.is_empty() {
        usage!("--device-costs needs --validation-seeds to decide whether to keep the table");
    }
    if args.device_costs_elite > args.device_costs_population {
        usage!(
            "--device-costs-elite {} must not exceed --device-costs-population {}",
            args.device_costs_elite,
            args.device_costs_population
        );
    }
    let defaults = PoolOptions::default();
    let opts = PoolOptions {
        generations: args.device_costs,
        population: args.device_costs_population as usize,
        elite: args.device_costs_elite as usize,
        threads: train.threads.map_or(defaults.threads, |t| t as usize),
        sigma: args.device_costs_sigma,
        // A spread set below the floor keeps to itself.
        min_sigma: defaults.min_sigma.min(args.device_costs_sigma),
        seed,
    };
    let start = start.unwrap_or_else(|| PolicyFile::fgd_start(Default::default()));
    let with = |table: &DeviceCosts| pool::with_table(&start, table);
    let validation_of = |f: &PolicyFile| validate(traces, validation, f, opts.threads);
    let base = validation_of(&start);
    let mut curves = vec![CurvePoint {
        phase: "warm start",
        epoch: 0,
        train_reward: f64::NAN,
        validation_unallocated_pct: base,
    }];
    // The best on the simulator's validation replays, the start included (it wins ties).
    let mut best: (f64, usize, Option<DeviceCosts>) = (base, 0, None);
    let bar = progress_bar(train.quiet, opts.generations);
    bar.set_message("generations of the device cost table (scored, then validated)");
    let mut step = |g: PoolGeneration, table: &DeviceCosts| {
        let v = validation_of(&with(table));
        if v < best.0 {
            best = (v, g.generation, Some(table.clone()));
        }
        // The pooled model's unallocated GPU, negated: higher is better, as rewards are.
        curves.push(CurvePoint {
            phase: "device costs",
            epoch: g.generation,
            train_reward: -g.mean,
            validation_unallocated_pct: v,
        });
        bar.set_position(g.generation as u64);
    };
    let model = match args.device_costs_in {
        CostsIn::Pool => {
            pool::search(traces, seeds, &opts, &mut step);
            "pooled model"
        }
        CostsIn::Simulator => {
            search_simulated(traces, seeds, &start, &opts, &mut step);
            "simulator"
        }
    };
    bar.finish_and_clear();
    for c in &curves {
        eprintln!(
            "{:<12} generation {:>3}: {model} {:>7.3} %, validation {:.3} % (the simulator, seeds {})",
            c.phase,
            c.epoch,
            -c.train_reward,
            c.validation_unallocated_pct,
            join(validation)
        );
    }
    let mut file = match &best.2 {
        Some(table) => with(table),
        None => {
            eprintln!("no table beat the starting policy on validation: writing the start");
            start.clone()
        }
    };
    let p = &mut file.provenance;
    if best.2.is_some() {
        p.kept = format!("device costs generation {}", best.1);
        p.phases
            .push(format!("device costs started from policy {}", start.hash));
        p.phases.push(format!(
            "device costs: {model}, {} generations on {} x seeds {}",
            opts.generations,
            traces
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
            join(seeds)
        ));
        for (k, v) in [
            ("device_costs_generations", opts.generations as f64),
            ("device_costs_population", opts.population as f64),
            ("device_costs_elite", opts.elite as f64),
            ("device_costs_sigma", opts.sigma),
            ("device_costs_min_sigma", opts.min_sigma),
            ("device_costs_weight", WEIGHT),
            ("device_costs_seed", seed as f64),
        ] {
            p.hyperparameters.insert(k.to_string(), v);
        }
    }
    file.hash = file.content_hash();
    file.save(output)
        .with_context(|| format!("writing {}", output.display()))?;
    write_curves(curves_dir, &curves, false)?;
    eprintln!(
        "wrote {} (hash {}) and {}/curves.{{csv,svg}}",
        output.display(),
        file.hash,
        curves_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn join(seeds: &[u64]) -> String {
    seeds
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The mean unallocated GPU % at 100 % arrived of `file` over `traces` x `seeds`, replayed by
/// the simulator as the policy search replays its candidates.
fn validate(traces: &[Trace], seeds: &[u64], file: &PolicyFile, threads: usize) -> f64 {
    let files = std::slice::from_ref(file);
    evaluate_files(traces, seeds, files, threads, None, &mut || {})[0].mean
}
