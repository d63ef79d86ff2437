//! `allot simulate`: load a trace, replay it under the chosen policies and seeds, and print
//! the comparison (table or JSON), optionally writing CSV, JSON and SVG plots.

use super::usage::usage;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::{checks, leftover, plot, report};
use crate::alloc::OfflineBound;
use crate::policy::PolicyKind;
use crate::policy::learned::{WorkloadMix, embedded_file};
use crate::sim::metrics::MAX_X;
use crate::sim::replay::ReplayOptions;
use crate::sim::sampling::KubeFilter;
use crate::sim::trace::window::{Bound, parse_bound};
use crate::sim::{NodeSampling, Published, offline_bounds, run_experiment_with};

/// The bound is drawn from here on; below ~90% arrived every pod fits and it is the ideal line.
const BOUND_PLOT_FROM: usize = 80;

/// The FGD authors' published curves, bundled for the comparison columns and plot overlay.
const PUBLISHED_CSV: &str = include_str!("../../traces/fgd_published/analysis_allo_discrete.csv");

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  allot simulate                                    # embedded openb default trace, all policies, seeds 42-51
  allot simulate --policy fgd,bestfit --seeds 42-44
  allot simulate --trace-dir ../shared/traces/openb --pods gpushare40 --json
  allot simulate --pods my-pods.csv --nodes my-nodes.json --out results/
  allot simulate --policy fgd,learned --leftover     # where the unallocated GPU lies at 100 % arrived
  allot simulate --policy fgd --node-sampling adaptive   # only the nodes kube-scheduler's default sampling sends
  allot simulate --policy fgd,learned --move-budget-per-pod unlimited --move-budget 0,1%,2%   # consolidation
  allot simulate --dynamic --time-scale 400 --nodes-fraction 0.25   # in time order, with departures and a queue
  allot simulate --pods ./history/ --since 7d --policy all   # the cluster's last week under every policy

NAME resolves to openb_pod_list_NAME.csv in each --trace-dir (then ./traces/openb);
`default` is also embedded in the binary. Files may be CSV (openb columns, or name,cpu,memory,
num_gpu,gpu_milli,gpu_spec with Kubernetes quantities) or JSON; see the README.")]
pub struct SimulateArgs {
    /// Pod list: a trace NAME (e.g. default, gpushare40, multigpu40) or a CSV/JSON file.
    #[arg(long, default_value = "default", value_name = "NAME_OR_PATH")]
    pub pods: String,
    /// Node list (CSV/JSON), or a snapshot file from `allot snapshot` (its nodes; the replay
    /// starts empty). Default: the openb GPU node list next to the pod list, else the
    /// embedded one (1213 nodes, 6212 GPUs).
    #[arg(long, value_name = "PATH")]
    pub nodes: Option<PathBuf>,
    /// Folders to look up trace NAMEs in (repeatable).
    #[arg(long, value_name = "DIR", env = "ALLOT_TRACE_DIR")]
    pub trace_dir: Vec<PathBuf>,
    /// Policies to compare, comma-separated: random, dotprod, clustering, packing, bestfit,
    /// fgd, least-allocated, most-allocated; or `paper` (the six of the FGD paper) or `all`.
    #[arg(long, default_value = "all", value_name = "P[,P...]")]
    pub policy: String,
    /// Seeds, as a range and/or list: 42-51, 1,5,9.
    #[arg(long, default_value = "42-51", value_name = "SEEDS")]
    pub seeds: String,
    /// Arrived workload (% of GPU capacity) at which the table reports; 0..=130.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(0..=130))]
    pub at: u16,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write summary.json, runs.csv, curves.csv and unallocated.svg into this folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Published per-seed results to compare with (analysis_allo_discrete.csv). Default: the
    /// bundled copy of the FGD authors' results.
    #[arg(long, value_name = "PATH")]
    pub published: Option<PathBuf>,
    /// Also solve the offline LP bound for each seed's arrivals (the most GPU any placement
    /// could allocate knowing every pod in advance, with each device's shares adding up to one
    /// GPU at most): a "gap to bound" column and a limit line.
    #[arg(long)]
    pub bound: bool,
    /// Exit with status 1 when a policy with published results lands outside their spread
    /// (mean +/- max(2 sd, 0.5)); for reproduction checks in CI.
    #[arg(long)]
    pub check_published: bool,
    /// Exit with status 1 when `learned`'s mean unallocated GPU % at 100 % arrived is more
    /// than checks::LEARNED_MARGIN (0.1) points above FGD's (both must be among the policies): a regression
    /// guard for the policy in use, run by CI on the traces it reproduces.
    #[arg(long)]
    pub check_learned: bool,
    /// Which nodes each pod's decision chooses among: `all` feasible nodes (the paper's
    /// protocol), or the ones kube-scheduler's filter finds before it stops (its
    /// percentageOfNodesToScore: `adaptive`, its default, or a percentage 1-100), scanning
    /// from a start node that rotates from pod to pod.
    #[arg(long, default_value = "all", value_name = "all|adaptive|PCT")]
    pub node_sampling: NodeSampling,
    /// With --node-sampling: what kube-scheduler counts as a feasible node while it samples.
    /// `requests`: its own checks of CPU, memory and whole GPUs (nvidia.com/gpu), as on a
    /// cluster, so nodes without room for a share or of the wrong GPU model count and the
    /// extender then drops them; `allot`: allot's filter, so every node found is a candidate.
    #[arg(long, default_value = "requests", value_name = "requests|allot")]
    pub kube_filter: KubeFilter,
    /// Policy file (from `allot train`) that `learned` scores with; without it, the policy
    /// embedded in the binary.
    #[arg(long, value_name = "PATH")]
    pub policy_file: Option<PathBuf>,
    /// Consolidation (design §7c): the most pods one arriving pod that fits no node may have
    /// moved to other nodes to make room for it, or `unlimited`. 0, the default, moves
    /// nothing: the online policy alone.
    #[arg(long, default_value = "0", value_name = "K|unlimited", value_parser = consolidation::parse_per_pod)]
    pub move_budget_per_pod: usize,
    /// The moves a whole replay may make, one or more comma-separated, each a full run of
    /// every policy and seed: `P%` (at every arrival, moves so far <= P % of the pods placed
    /// so far), `N` (at most N moves), `unlimited`, or `0` (the online policy). Default
    /// `unlimited` when --move-budget-per-pod is above 0. With a list, runs.csv, curves.csv,
    /// summary.json and unallocated.svg are those of the first budget; consolidation.csv and
    /// consolidation.svg compare them all.
    #[arg(long, value_name = "B[,B...]")]
    pub move_budget: Option<String>,
    /// Replay only the pods created at or after TIME: Unix seconds (on the trace's own clock;
    /// seconds from its origin for openb lists), or a duration before the newest pod's
    /// creation: 7d, 36h, 90m, 45s. Needs creation_time (a recorded history has it).
    #[arg(long, value_name = "TIME", value_parser = parse_bound)]
    pub since: Option<Bound>,
    /// Replay only the pods created before TIME (same forms as --since).
    #[arg(long, value_name = "TIME", value_parser = parse_bound)]
    pub until: Option<Bound>,
    /// Worker threads, at least 1 (default: one per core).
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Explain the learned policy's decisions for these arrivals (0-based indices of the
    /// first seed's replay): the chosen node's and the runner-up's features and each one's
    /// contribution to the score. Printed after the table.
    #[arg(long, value_name = "I[,I...]")]
    pub explain: Option<String>,
    /// Also say where each policy's unallocated GPU lies at the report point (--at): in
    /// partly used devices (the leftover sizes holding most of it, and the part whose node has
    /// not the CPU for any share that would fit it), in idle devices, and
    /// in idle devices stranded on nodes without the CPU for a GPU pod of the target workload.
    /// With a --move-budget list, of the first budget's runs.
    #[arg(long)]
    pub leftover: bool,
    #[command(flatten)]
    pub dynamic: dynamic::DynamicArgs,
}

pub fn run(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.out {
        super::usage::create_output_dir("--out", dir)?;
    }
    if args.dynamic.dynamic || args.dynamic != dynamic::DynamicArgs::default() {
        return dynamic::run(args);
    }
    let policies = parse_policies(&args.policy)?;
    let seeds = parse_seeds(&args.seeds)?;
    let sweep = consolidation::Sweep::from_flags(
        args.move_budget_per_pod,
        args.move_budget.as_deref(),
        args.node_sampling,
    )?;
    let budgets = sweep.as_ref().map_or(1, |s| s.budgets.len());
    let explain = args
        .explain
        .as_deref()
        .map(super::explain::parse_indices)
        .transpose()?;
    let trace = input::load(args)?;
    if trace.cluster.gpu_capacity_milli() == 0 {
        usage!(
            "the cluster in {} has no GPUs; the simulator measures GPU allocation and needs at least one GPU node",
            trace.nodes_origin.describe()
        );
    }
    let published = match &args.published {
        Some(path) => Published::load(path)?,
        None => Published::parse("<bundled analysis_allo_discrete.csv>", PUBLISHED_CSV)?,
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let workload = trace.workload();
    let bar = progress_bar(
        args.quiet || args.json,
        policies.len() * seeds.len() * budgets,
    );
    eprintln!(
        "trace {}: {} pods ({}), {} nodes / {} GPUs ({}); {} policies x {} seeds on {} threads",
        trace.name,
        trace.pods.pods.len(),
        trace.pods_origin.describe(),
        trace.cluster.len(),
        trace.cluster.gpu_count(),
        trace.nodes_origin.describe(),
        policies.len(),
        seeds.len(),
        threads,
    );
    let started = Instant::now();
    let learned = match &args.policy_file {
        Some(path) => Some(std::sync::Arc::new(
            crate::policy::learned::PolicyFile::load(path)?,
        )),
        None => None,
    };
    if policies.contains(&PolicyKind::Learned) {
        let file = learned.as_deref().unwrap_or_else(|| embedded_file());
        let weights = match file.scored_by(&WorkloadMix::of(&workload.target())) {
            (_, Some(why)) => format!("placed as FGD: {why}"),
            (words, None) => words,
        };
        if file.support.is_some() {
            eprintln!("learned on trace {}: {weights}", trace.name);
        }
    }
    let options = ReplayOptions {
        sampling: args.node_sampling,
        kube_filter: args.kube_filter,
        learned: learned.clone(),
        consolidation: sweep.as_ref().and_then(|s| s.option(0)),
    };
    let mut swept = Vec::with_capacity(budgets);
    for i in 0..budgets {
        let options = ReplayOptions {
            consolidation: sweep.as_ref().and_then(|s| s.option(i)),
            ..options.clone()
        };
        swept.push(run_experiment_with(
            &workload,
            &policies,
            &seeds,
            threads,
            options,
            args.leftover.then_some(usize::from(args.at)),
            &|p| {
                bar.set_message(format!("{} seed {}", p.policy, p.seed));
                bar.inc(1);
            },
        ));
    }
    bar.finish_and_clear();
    let results = swept[0].clone();
    let at = usize::from(args.at);
    let bounds = if args.bound {
        let mut points: Vec<usize> = (BOUND_PLOT_FROM..=MAX_X).step_by(5).collect();
        if !points.contains(&at) {
            points.push(at);
        }
        eprintln!(
            "solving the offline LP bound at {} points x {} seeds",
            points.len(),
            seeds.len()
        );
        Some(offline_bounds(&workload, &seeds, &points, threads)?)
    } else {
        None
    };
    let mut summary = report::Summary::new(
        &trace,
        &seeds,
        &results,
        &published,
        at,
        bounds.as_deref(),
        options,
    );
    if args.leftover {
        summary.leftover = Some(leftover::summarise(
            &results,
            trace.cluster.gpu_capacity_milli(),
        ));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", report::table(&summary));
        if let Some(rows) = &summary.leftover {
            print!("{}", leftover::table(rows, at));
        }
        if let Some(sweep) = &sweep {
            print!("{}", consolidation::table(sweep, &swept));
        }
        eprintln!(
            "{} replays in {:.1} s",
            policies.len() * seeds.len() * budgets,
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(dir) = &args.out {
        write_outputs(
            dir,
            &summary,
            &trace.name,
            &results,
            &published,
            bounds.as_deref(),
        )?;
        if let Some(sweep) = &sweep {
            consolidation::write(dir, &trace.name, sweep, &swept)?;
        }
    }
    if let (Some(indices), Some(&seed)) = (&explain, seeds.first()) {
        let text = super::explain::explain_arrivals(&workload, seed, learned, indices)?;
        print!("\n{text}");
    }
    if args.check_learned && !checks::learned_holds(&summary) {
        return Ok(ExitCode::FAILURE);
    }
    if args.check_published && !checks::published_holds(&summary) {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn write_outputs(
    dir: &Path,
    summary: &report::Summary,
    trace: &str,
    results: &[crate::sim::PolicyResult],
    published: &Published,
    bounds: Option<&[(u64, OfflineBound)]>,
) -> anyhow::Result<()> {
    write_files(
        dir,
        [
            ("summary.json", serde_json::to_string_pretty(summary)?),
            ("runs.csv", report::runs_csv(trace, results)),
            ("curves.csv", report::curves_csv(trace, results)),
            (
                "unallocated.svg",
                plot::unallocated_svg(trace, results, published, bounds)?,
            ),
        ],
    )
}

/// Write each `(name, text)` into `dir` (created if missing), saying so on stderr.
pub(super) fn write_files<const N: usize>(
    dir: &Path,
    files: [(&str, String); N],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

pub(super) fn progress_bar(hidden: bool, total: usize) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} replays {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

mod consolidation;
mod dynamic;
mod input;
pub(crate) use input::keep_window;
mod parse;

pub(super) use dynamic::parse_max_wait;
use parse::parse_threads;
pub use parse::{parse_policies, parse_seeds, parse_seeds_for};

#[cfg(test)]
mod tests;
