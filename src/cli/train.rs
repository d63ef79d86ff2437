//! `allot train`: train the learned policy on trace replays (supervised from FGD's history,
//! then Q-learning), with a progress bar, and write the policy file plus its learning curves
//! (CSV and SVG). With `--history DIR`, fine-tune on a cluster's recorded history instead;
//! with `--dynamic`, search and validate in the dynamic replay's setting ([`dynamic`]).

mod combine;
mod costs;
mod curves;
mod dynamic;
mod history;
mod resume;

use super::usage::{create_output_dir, usage};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;

use crate::sim::trace::window::{Bound, Window, parse_bound};

use super::simulate::{parse_seeds_for, progress_bar};
use crate::learn::checkpoint::{self, Checkpoint};
use crate::learn::{self, Options, Trace};
use crate::policy::learned::PolicyFile;
use crate::policy::learned::file::DEFAULT_LEVELS;
use crate::policy::learned::support;
use crate::sim::load_trace;
use curves::write_curves;
pub use dynamic::TrainDynamicArgs;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Traces to train on (trace NAMEs or files, comma-separated), as for `simulate --pods`.
    #[arg(long, default_value = "default", value_name = "P[,P...]")]
    pub pods: String,
    /// Fine-tune on a history directory recorded by `allot extender --history-dir` instead of
    /// --pods: the supervised phase learns from the cluster's own decisions in it (its pods
    /// replayed in arrival order, each on the node the cluster chose while that node can take
    /// it), then Q-learning and the search replay its pods on its nodes. Starts from the
    /// embedded policy unless --policy-file says otherwise. The policy file's provenance
    /// names the directory, a digest of the files read and how many records they held.
    #[arg(long, value_name = "DIR", conflicts_with = "pods")]
    pub history: Option<PathBuf>,
    /// With --history: train only on the pods created at or after TIME: Unix seconds, or a
    /// duration before the newest record (7d, 36h, 90m, 45s).
    #[arg(long, value_name = "TIME", requires = "history", value_parser = parse_bound)]
    pub since: Option<Bound>,
    /// With --history: train only on the pods created before TIME (same forms as --since).
    #[arg(long, value_name = "TIME", requires = "history", value_parser = parse_bound)]
    pub until: Option<Bound>,
    /// The policy training starts from (and its L2 pull pulls to) [default: the embedded
    /// policy with --history, FGD without]. Of a file with experts, the part that scores the
    /// first trace's workload (FGD's weights where no part's support holds it).
    #[arg(long, value_name = "FILE")]
    pub policy_file: Option<PathBuf>,
    /// Folders searched for openb_pod_list_NAME.csv (the bundled default needs none).
    #[arg(long, value_name = "DIR", env = "ALLOT_TRACE_DIR")]
    pub trace_dir: Vec<PathBuf>,
    /// Training seeds (never 42-51, the evaluation seeds).
    #[arg(long, default_value = "1-4")]
    pub seeds: String,
    /// Validation seeds: the held-out split of the supervised phase, and the replays that
    /// choose the best epoch.
    #[arg(long, default_value = "60-61")]
    pub validation_seeds: String,
    /// Epochs of the supervised phase (0 skips it).
    #[arg(long, default_value_t = 2)]
    pub supervised_epochs: usize,
    /// Epochs of Q-learning (0 skips it).
    #[arg(long, default_value_t = 6)]
    pub epochs: usize,
    /// Discount of future rewards.
    #[arg(long, default_value_t = 0.5)]
    pub gamma: f64,
    /// SGD step size.
    #[arg(long, default_value_t = 0.05)]
    pub learning_rate: f64,
    /// Generations of the cross-entropy policy search, the third phase (0 skips it).
    #[arg(long, default_value_t = 8)]
    pub search_generations: usize,
    /// Weight vectors replayed per search generation.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(2..=1000))]
    pub search_population: u64,
    /// The best vectors of a generation that set the next one's distribution.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub search_elite: u64,
    /// Initial spread of each searched weight (0.01 = one FGD level).
    #[arg(long, default_value_t = 0.02)]
    pub search_sigma: f64,
    /// Also search the weight of lp_price_cost, the LP's shadow-price feature (the shipped
    /// policy leaves it at 0: BENCHMARKS.md section 8).
    #[arg(long)]
    pub search_prices: bool,
    /// Also search the whole-GPU pods' own corrections (the *_whole features: the node-shape
    /// features for whole-GPU pods only).
    #[arg(long)]
    pub search_whole: bool,
    /// Also search the multi-GPU pods' own corrections (the *_multi features: the node-shape
    /// features for pods of 2 or more whole GPUs only).
    #[arg(long)]
    pub search_multi: bool,
    /// Weight of a per-trace hinge in the search objective: each training trace whose mean is
    /// not --search-margin points better than FGD's on the same arrivals adds HINGE times the
    /// shortfall (0: the mean over traces only). The kept weights are chosen by the same
    /// objective on the validation replays.
    #[arg(long, default_value_t = 0.0, value_name = "HINGE")]
    pub search_hinge: f64,
    /// The hinge's margin, in points of unallocated GPU %.
    #[arg(long, default_value_t = learn::search::objective::DEFAULT_MARGIN)]
    pub search_margin: f64,
    /// Largest absolute value of a searched weight (0: unbounded; 0.01 = one FGD level).
    #[arg(long, default_value_t = 0.0)]
    pub search_bound: f64,
    /// Start the search at this policy file's weights (e.g. policies/experts/base.json) rather
    /// than FGD's (of a file with experts, the part that scores the first trace); the kept
    /// weights are still the best on validation, FGD's included.
    #[arg(long, value_name = "FILE")]
    pub search_from: Option<PathBuf>,
    /// How far (a share, 0..1) a workload's mix may lie outside the training traces' before
    /// `learned` places it as FGD does (the file's support; BENCHMARKS.md section 8).
    #[arg(long, default_value_t = support::DEFAULT_TOLERANCE, value_name = "SHARE")]
    pub support_tolerance: f64,
    /// Write no support: the policy's corrections apply to every workload.
    #[arg(long, conflicts_with = "support_tolerance")]
    pub no_support: bool,
    /// Train nothing: write one file from trained ones, the first file's weights for the
    /// workloads of its support and each other's as an expert for the workloads of its own,
    /// asked in order (BENCHMARKS.md section 8).
    #[arg(long, value_name = "FIRST,EXPERT...", value_delimiter = ',')]
    pub combine: Vec<PathBuf>,
    /// With --combine: weigh `cpu_bound_change` (the GPU a placement leaves that its node's
    /// CPU keeps from every GPU class of the workload) by W in every part (BENCHMARKS.md
    /// section 8); without it each part keeps its own weight.
    #[arg(
        long,
        requires = "combine",
        allow_negative_numbers = true,
        value_name = "W"
    )]
    pub cpu_bound_weight: Option<f64>,
    /// Replay threads (the result does not depend on it; default: every core).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,
    /// Seed of the minibatch draws and the search's draws (episodes are seeded by --seeds).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Which weights to write: the best on the validation replays (the warm start wins ties),
    /// or the last epoch's (for ablations).
    #[arg(long, default_value = "best", value_parser = ["best", "last"])]
    pub keep: String,
    /// Where to write the trained policy file.
    #[arg(long, short, default_value = "policy.json")]
    pub output: PathBuf,
    /// Where to write curves.csv and curves.svg (default: beside the policy file).
    #[arg(long, value_name = "DIR")]
    pub curves: Option<PathBuf>,
    /// Checkpoint file, written (atomically) at the start of every phase, after every
    /// supervised epoch and after every search generation [default: OUTPUT.checkpoint.json].
    /// An existing one is overwritten unless --resume.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Continue from the checkpoint of an interrupted run with the same settings: the policy
    /// file and curves are those of an uninterrupted run. A Q-learning phase restarts from its
    /// start; the other phases continue from their last epoch or generation.
    #[arg(long)]
    pub resume: bool,
    /// Keep the checkpoint when training ends (by default it is removed).
    #[arg(long)]
    pub keep_checkpoint: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub dynamic: TrainDynamicArgs,
    #[command(flatten)]
    pub costs: costs::TrainCostsArgs,
}

pub fn run(args: &TrainArgs) -> anyhow::Result<ExitCode> {
    // Before any training: a run must not end in "cannot write" after its work is done.
    prepare_output(&args.output)?;
    if !args.combine.is_empty() {
        return combine::run(&args.combine, &args.output, args.cpu_bound_weight);
    }
    create_output_dir("--curves", &curves_dir(args))?;
    let seeds = parse_seeds_for("--seeds", &args.seeds)?;
    let validation = parse_seeds_for("--validation-seeds", &args.validation_seeds)?;
    if !(0.0..1.0).contains(&args.gamma) {
        usage!("--gamma {} must be in 0..1", args.gamma);
    }
    if !(0.0..=1.0).contains(&args.support_tolerance) {
        usage!(
            "--support-tolerance {} must be in 0..=1",
            args.support_tolerance
        );
    }
    if !(args.learning_rate > 0.0 && args.learning_rate <= 1.0) {
        usage!("--learning-rate {} must be in (0, 1]", args.learning_rate);
    }
    let setting = dynamic::setting(&args.dynamic, args.history.is_some())?;
    let (traces, source) = match &args.history {
        Some(dir) => {
            let window = Window {
                since: args.since,
                until: args.until,
            };
            let (trace, source) = history::load(dir, &window, setting.is_some())?;
            (vec![trace], Some(source))
        }
        None => (pod_traces(args, setting.is_some())?, None),
    };
    let start = combine::start(args.policy_file.as_deref(), source.is_some(), &traces)?;
    if let Some(f) = &start
        && f.levels != DEFAULT_LEVELS
    {
        usage!(
            "--policy-file: the starting policy has {} levels; training writes {DEFAULT_LEVELS}",
            f.levels
        );
    }
    if args.costs.device_costs > 0 {
        let (s, v) = (&seeds, &validation);
        return costs::run(args, &traces, s, v, start, &curves_dir(args));
    }
    let mut search = search_options(args, setting)?;
    search.from = search
        .from
        .map(|f| combine::starting_part(f, &traces, "--search-from"));
    let opts = Options {
        start,
        gamma: args.gamma,
        learning_rate: args.learning_rate,
        supervised_epochs: args.supervised_epochs,
        epochs: args.epochs,
        seed: args.seed,
        keep_last: args.keep == "last",
        search,
        support_tolerance: (!args.no_support).then_some(args.support_tolerance),
        ..Options::default()
    };
    learn::check(&traces, &seeds, &validation, &opts)?;
    let ckpt = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| checkpoint::default_path(&args.output));
    let from = resume::from(args, &ckpt, &traces, &seeds, &validation, &opts)?;
    let bar = progress_bar(args.quiet, 0);
    let mut save = |c: &Checkpoint| checkpoint::save(&ckpt, c);
    let (file, curves) =
        learn::train_resumable(&traces, &seeds, &validation, &opts, from, &mut save, |p| {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
            bar.set_message(p.phase);
        })?;
    bar.finish_and_clear();
    let mut file = file;
    if let Some(source) = source {
        file.provenance.history = Some(source);
        file.hash = file.content_hash();
    }
    file.save(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    let dir = curves_dir(args);
    let dynamic = args.dynamic.dynamic;
    write_curves(&dir, &curves, dynamic)?;
    let what = if dynamic {
        "failed GPU (dynamic)"
    } else {
        "unallocated GPU"
    };
    for c in &curves {
        eprintln!(
            "{:<18} epoch {:>2}: train {:>9.4}  validation {what} {:.2} %",
            c.phase, c.epoch, c.train_reward, c.validation_unallocated_pct
        );
    }
    eprintln!(
        "wrote {} (hash {}) and {}/curves.{{csv,svg}}",
        args.output.display(),
        file.hash,
        dir.display()
    );
    if args.keep_checkpoint {
        eprintln!("kept the checkpoint {}", ckpt.display());
    } else if let Err(e) = std::fs::remove_file(&ckpt)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        bail!(
            "removing the finished run's checkpoint {}: {e}",
            ckpt.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The traces named by --pods, with their pods' times when `times` (for --dynamic; a trace
/// without them gets drawn ones per seed, as in `allot simulate --dynamic`).
fn pod_traces(args: &TrainArgs, times: bool) -> anyhow::Result<Vec<Trace>> {
    let mut dirs = args.trace_dir.clone();
    dirs.push(PathBuf::from("traces/openb"));
    let mut traces = Vec::new();
    for name in args
        .pods
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let t = load_trace(name, None, &dirs)?;
        let lifetimes = if times { t.lifetimes()? } else { None };
        traces.push(Trace {
            lifetimes,
            ..Trace::of(t)
        });
    }
    Ok(traces)
}

fn search_options(
    args: &TrainArgs,
    dynamic: Option<learn::search::DynamicSetting>,
) -> anyhow::Result<learn::SearchOptions> {
    if !(args.search_sigma > 0.0 && args.search_sigma <= 1.0) {
        usage!("--search-sigma {} must be in (0, 1]", args.search_sigma);
    }
    if args.search_elite > args.search_population {
        usage!(
            "--search-elite {} must not exceed --search-population {}",
            args.search_elite,
            args.search_population
        );
    }
    if !(args.search_hinge >= 0.0 && args.search_hinge <= 1000.0) {
        usage!("--search-hinge {} must be in 0..=1000", args.search_hinge);
    }
    if !(args.search_margin >= 0.0 && args.search_margin <= 100.0) {
        usage!("--search-margin {} must be in 0..=100", args.search_margin);
    }
    if !(args.search_bound >= 0.0 && args.search_bound <= 1.0) {
        usage!("--search-bound {} must be in 0..=1", args.search_bound);
    }
    let defaults = learn::SearchOptions::default();
    Ok(learn::SearchOptions {
        generations: args.search_generations,
        population: args.search_population as usize,
        elite: args.search_elite as usize,
        sigma: args.search_sigma,
        threads: args.threads.map_or(defaults.threads, |t| t as usize),
        prices: args.search_prices,
        whole: args.search_whole,
        multi: args.search_multi,
        objective: learn::search::Objective {
            hinge: args.search_hinge,
            margin: args.search_margin,
        },
        bound: args.search_bound,
        from: match &args.search_from {
            Some(path) => Some(PolicyFile::load(path)?),
            None => None,
        },
        dynamic,
    })
}

#[cfg(test)]
mod tests;

/// Where the curves go: --curves, else beside the policy file.
fn curves_dir(args: &TrainArgs) -> PathBuf {
    args.curves.clone().unwrap_or_else(|| {
        args.output
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    })
}

/// Make -o's directory if it is missing; refuse a directory as -o.
fn prepare_output(output: &Path) -> anyhow::Result<()> {
    if output.is_dir() {
        usage!("-o {} is a directory, not a policy file", output.display());
    }
    match output.parent() {
        Some(dir) => create_output_dir("-o's directory", dir),
        None => Ok(()),
    }
}
