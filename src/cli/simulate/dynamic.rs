//! `allot simulate --dynamic`: the replay with departures and a wait queue (`sim::dynamic`),
//! its flags, and its outputs: a summary table and over-time tables on stdout (or JSON), and
//! `dynamic_runs.csv`, `dynamic_timeline.csv` and `dynamic.svg` in `--out`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;

use super::super::table;
use super::super::usage::usage;
use super::{SimulateArgs, parse_policies, parse_seeds, progress_bar};
use crate::policy::learned::PolicyFile;
use crate::sim::dynamic::run::DynamicSetup;
use crate::sim::dynamic::{DEFAULT_MAX_WAIT_MS, DynamicResult, Load, MaxWait, run_dynamic};
use crate::sim::metrics::MeanSd;
use crate::sim::replay::ReplayOptions;
use crate::sim::{NodeSampling, bundled::embedded_lifetimes};

mod timeline;

/// The dynamic replay's own flags.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct DynamicArgs {
    /// Replay in time order with departures: pods arrive at their creation_time, run until
    /// their deletion_time (measured from when they start), and wait in a FIFO queue when
    /// nothing fits (see --max-wait). Traces without times get Poisson arrivals at the
    /// openb default trace's rate and durations drawn from it, per seed.
    #[arg(long)]
    pub dynamic: bool,
    /// With --dynamic: arrivals K times as often as in the trace (the gaps between arrivals
    /// divided by K; each pod still runs its own duration). The load knob to sweep.
    #[arg(long, default_value_t = 1.0, value_name = "K")]
    pub time_scale: f64,
    /// With --dynamic: keep this share of the nodes, a uniform sample drawn per seed (0-1].
    /// The openb pods never ask for more than ~98 % of the full cluster even all at once.
    #[arg(long, default_value_t = 1.0, value_name = "F")]
    pub nodes_fraction: f64,
    /// With --dynamic: how long a pod that fits nowhere waits before it fails: seconds, or
    /// with a unit (90s, 30m, 1h); 0 fails it at once (the static rule); `none` waits forever.
    #[arg(long, default_value = "1h", value_name = "DURATION|none", value_parser = parse_max_wait)]
    pub max_wait: MaxWait,
}

/// `--max-wait`: `3600`, `90s`, `30m`, `1h` or `none`.
pub fn parse_max_wait(text: &str) -> Result<MaxWait, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("none") {
        return Ok(MaxWait::Forever);
    }
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, "s"),
    };
    let scale: u64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(format!(
                "{text:?}: give seconds, or a number with s, m or h, or `none`"
            ));
        }
    };
    let n: u64 = digits.parse().map_err(|_| {
        format!("{text:?}: not a whole, non-negative number of seconds, minutes or hours")
    })?;
    n.checked_mul(scale)
        .map(MaxWait::Millis)
        .ok_or_else(|| format!("{text:?}: too long"))
}

impl Default for DynamicArgs {
    fn default() -> Self {
        DynamicArgs {
            dynamic: false,
            time_scale: 1.0,
            nodes_fraction: 1.0,
            max_wait: MaxWait::Millis(DEFAULT_MAX_WAIT_MS),
        }
    }
}

/// Refuse the static protocol's flags that mean nothing here, and dynamic flags without it.
fn check_flags(args: &SimulateArgs) -> anyhow::Result<()> {
    let d = &args.dynamic;
    if !d.dynamic {
        let defaults = DynamicArgs::default();
        if d.time_scale != defaults.time_scale
            || d.nodes_fraction != defaults.nodes_fraction
            || d.max_wait != defaults.max_wait
        {
            usage!("--time-scale, --nodes-fraction and --max-wait apply only with --dynamic");
        }
        return Ok(());
    }
    let static_only = [
        ("--at", args.at != 100),
        ("--bound", args.bound),
        ("--check-published", args.check_published),
        ("--check-learned", args.check_learned),
        ("--published", args.published.is_some()),
        ("--node-sampling", args.node_sampling != NodeSampling::All),
        ("--move-budget-per-pod", args.move_budget_per_pod != 0),
        ("--move-budget", args.move_budget.is_some()),
        ("--explain", args.explain.is_some()),
        ("--leftover", args.leftover),
    ];
    if let Some((flag, _)) = static_only.iter().find(|(_, set)| *set) {
        usage!("{flag} belongs to the static protocol and is not supported with --dynamic");
    }
    let load = Load {
        time_scale: d.time_scale,
        nodes_fraction: d.nodes_fraction,
    };
    if let Err(e) = load.validate() {
        usage!("{e}");
    }
    Ok(())
}

/// Run `allot simulate --dynamic`.
pub fn run(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    check_flags(args)?;
    let policies = parse_policies(&args.policy)?;
    let seeds = parse_seeds(&args.seeds)?;
    let trace = super::input::load(args)?;
    if trace.cluster.gpu_capacity_milli() == 0 {
        usage!(
            "the cluster in {} has no GPUs",
            trace.nodes_origin.describe()
        );
    }
    let lifetimes = trace.lifetimes()?;
    let donor = embedded_lifetimes()?;
    let learned = match &args.policy_file {
        Some(path) => Some(std::sync::Arc::new(PolicyFile::load(path)?)),
        None => None,
    };
    let d = &args.dynamic;
    let setup = DynamicSetup {
        workload: trace.workload(),
        lifetimes: lifetimes.as_deref(),
        donor: &donor,
        load: Load {
            time_scale: d.time_scale,
            nodes_fraction: d.nodes_fraction,
        },
        max_wait: d.max_wait,
        options: ReplayOptions {
            learned,
            ..ReplayOptions::default()
        },
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    eprintln!(
        "trace {}: {} pods ({}, times: {}), {} of {} nodes per seed; time scale {}, max wait {}; \
         {} policies x {} seeds on {} threads",
        trace.name,
        trace.pods.pods.len(),
        trace.pods_origin.describe(),
        if lifetimes.is_some() {
            "the trace's"
        } else {
            "drawn from the openb default's"
        },
        ((d.nodes_fraction * trace.cluster.len() as f64).round() as usize)
            .clamp(1, trace.cluster.len()),
        trace.cluster.len(),
        d.time_scale,
        show_wait(d.max_wait),
        policies.len(),
        seeds.len(),
        threads,
    );
    let bar = progress_bar(args.quiet || args.json, policies.len() * seeds.len());
    let started = Instant::now();
    let results = run_dynamic(&setup, &policies, &seeds, threads, &|p| {
        bar.set_message(format!("{} seed {}", p.policy, p.seed));
        bar.inc(1);
    })
    .map_err(|e| crate::cli::usage::UsageError(e.to_string()))?;
    bar.finish_and_clear();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json(&trace.name, args, &results))?
        );
    } else {
        print!("{}", summary_table(&results));
        print!("{}", timeline::tables(&results));
        eprintln!(
            "{} dynamic replays in {:.1} s",
            policies.len() * seeds.len(),
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(dir) = &args.out {
        write_outputs(dir, &trace.name, args, &results)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn show_wait(w: MaxWait) -> String {
    match w {
        MaxWait::Millis(ms) => format!("{} s", ms / 1000),
        MaxWait::Forever => "none".to_string(),
    }
}

/// Mean and sd over seeds of one summary field.
fn stat(r: &DynamicResult, f: impl Fn(&crate::sim::dynamic::RunSummary) -> f64) -> Option<MeanSd> {
    MeanSd::of(&r.runs.iter().map(|run| f(&run.summary)).collect::<Vec<_>>())
}

fn show(m: Option<MeanSd>, digits: usize) -> String {
    m.map_or_else(
        || "-".into(),
        |m| format!("{:.digits$} ± {:.digits$}", m.mean, m.sd),
    )
}

/// One row per policy: mean ± sd over seeds.
pub fn summary_table(results: &[DynamicResult]) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.policy.name().to_string(),
                show(stat(r, |s| s.alloc_pct), 2),
                show(stat(r, |s| s.end_alloc_pct), 2),
                show(stat(r, |s| s.failed_pct), 2),
                show(stat(r, |s| s.failed_gpu_pct), 2),
                show(stat(r, |s| s.wait_mean_s), 0),
                show(stat(r, |s| s.wait_p50_s), 0),
                show(stat(r, |s| s.wait_p99_s), 0),
                show(stat(r, |s| s.mean_waiting), 1),
                show(stat(r, |s| s.frag_pct), 2),
            ]
        })
        .collect();
    let header = [
        "policy",
        "GPU alloc %",
        "at last arrival",
        "failed pods %",
        "failed GPU %",
        "wait mean s",
        "wait p50 s",
        "wait p99 s",
        "waiting (mean)",
        "frag %",
    ];
    format!(
        "Dynamic replay, mean ± sd over seeds; time means over the arrival window, waits of placed pods:\n{}",
        table::render(&header, &rows, 1)
    )
}

fn json(trace: &str, args: &SimulateArgs, results: &[DynamicResult]) -> serde_json::Value {
    let d = &args.dynamic;
    serde_json::json!({
        "trace": trace,
        "time_scale": d.time_scale,
        "nodes_fraction": d.nodes_fraction,
        "max_wait_s": match d.max_wait { MaxWait::Millis(ms) => Some(ms / 1000), MaxWait::Forever => None },
        "policies": results.iter().map(|r| serde_json::json!({
            "policy": r.policy.name(),
            "runs": r.runs.iter().map(|run| serde_json::json!({
                "seed": run.seed,
                "gpu_capacity_milli": run.capacity,
                "summary": run.summary,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn runs_csv(trace: &str, args: &SimulateArgs, results: &[DynamicResult]) -> String {
    let d = &args.dynamic;
    let mut out = String::from(
        "trace,time_scale,nodes_fraction,max_wait_s,policy,seed,gpu_capacity_milli,pods,placed,failed,\
         still_waiting,failed_pct,failed_gpu_pct,alloc_pct,peak_alloc_pct,end_alloc_pct,frag_pct,mean_waiting,\
         max_waiting,waited,wait_mean_s,wait_p50_s,wait_p99_s,elapsed_s\n",
    );
    for r in results {
        for run in &r.runs {
            let s = &run.summary;
            out.push_str(&format!(
                "{trace},{},{},{},{},{},{},{},{},{},{},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.3},{},{},{:.1},{:.1},{:.1},{:.3}\n",
                d.time_scale,
                d.nodes_fraction,
                match d.max_wait { MaxWait::Millis(ms) => (ms / 1000).to_string(), MaxWait::Forever => "none".into() },
                r.policy.name(),
                run.seed,
                run.capacity,
                s.pods,
                s.placed,
                s.failed,
                s.still_waiting,
                s.failed_pct,
                s.failed_gpu_pct,
                s.alloc_pct,
                s.peak_alloc_pct,
                s.end_alloc_pct,
                s.frag_pct,
                s.mean_waiting,
                s.max_waiting,
                s.waited,
                s.wait_mean_s,
                s.wait_p50_s,
                s.wait_p99_s,
                run.elapsed.as_secs_f64(),
            ));
        }
    }
    out
}

fn write_outputs(
    dir: &Path,
    trace: &str,
    args: &SimulateArgs,
    results: &[DynamicResult],
) -> anyhow::Result<()> {
    super::write_files(
        dir,
        [
            ("dynamic_runs.csv", runs_csv(trace, args, results)),
            ("dynamic_timeline.csv", timeline::csv(trace, results)),
            ("dynamic.svg", timeline::svg(trace, results)?),
        ],
    )
}
