//! Command-line interface: the clap definitions of every subcommand and their dispatch.
//! Offline tools (`simulate`) live here; cluster-facing roles are wired as they land.

mod agent;
mod checks;
mod controller;
mod explain;
mod extender;
mod leftover;
#[cfg(feature = "k8s")]
mod plan;
mod plot;
mod report;
mod simulate;
mod snapshot;
mod table;
mod train;
pub mod usage;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use agent::AgentArgs;
pub use controller::ControllerArgs;
pub use extender::ExtenderArgs;
pub use simulate::SimulateArgs;
pub use train::TrainArgs;

/// GPU-aware scheduling for Kubernetes: a scheduler extender, a batch-planning controller,
/// a node agent, and an offline simulator that measures placement policies on real traces.
#[derive(Debug, Parser)]
#[command(
    name = "allot",
    version,
    propagate_version = true,
    after_help = "\
Not built yet: moving running pods to reclaim fragmented GPUs and resizing elastic tasks (the
controller places and fails over, it does not consolidate); recording the cluster's own history."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve kube-scheduler's extender protocol (filter, prioritize, bind, preempt).
    Extender(ExtenderArgs),
    /// Reconcile ScheduleRequest resources: plan each batch, create and follow its pods.
    Controller(ControllerArgs),
    /// Node agent (DaemonSet): report this node's CPU, memory and GPUs as NodeTelemetry.
    Agent(AgentArgs),
    /// Replay a GPU cluster trace under placement policies and measure unallocated GPU and
    /// fragmentation, as the FGD paper (USENIX ATC'23) measured them. Needs no cluster.
    Simulate(SimulateArgs),
    /// Train the learned placement policy from traces (supervised, Q-learning, policy search).
    Train(TrainArgs),
    /// Solve a ScheduleRequest against a cluster snapshot and print the plan.
    Plan(PlanArgs),
    /// Write the CustomResourceDefinitions (ScheduleRequest, NodeTelemetry) as YAML.
    Crdgen(CrdgenArgs),
    /// Write the live cluster (nodes, GPU models, bound pods and their GPUs) as a snapshot
    /// file for `plan --snapshot` and `extender --snapshot`.
    Snapshot(snapshot::SnapshotArgs),
}

/// `--stale-policy`: what to do with a node whose telemetry is stale or missing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum StaleFlag {
    /// Keep placing on it, from allocation state alone.
    #[default]
    FailOpen,
    /// Filter it (retryable) until its agent reports again.
    FailClosed,
}

#[cfg(feature = "k8s")]
impl From<StaleFlag> for crate::live::StalePolicy {
    fn from(flag: StaleFlag) -> Self {
        match flag {
            StaleFlag::FailOpen => crate::live::StalePolicy::FailOpen,
            StaleFlag::FailClosed => crate::live::StalePolicy::FailClosed,
        }
    }
}

/// `--filter-answer`: which nodes the extender's /filter passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FilterAnswerFlag {
    /// Every feasible node: kube-scheduler scores them, asking /prioritize for allot's ranking.
    Feasible,
    /// Only the node allot's policy chooses: kube-scheduler skips its scoring and /prioritize.
    Chosen,
    /// The chosen node, unless the pod has preferred node affinity, preferred pod
    /// (anti-)affinity or a ScheduleAnyway topology spread constraint; then every feasible node.
    /// The default: one round trip per pod, the simulator's own choice, and the higher
    /// throughput in BENCHMARKS.md section 6.
    #[default]
    Auto,
}

#[cfg(feature = "k8s")]
impl From<FilterAnswerFlag> for crate::extender::FilterAnswer {
    fn from(flag: FilterAnswerFlag) -> Self {
        match flag {
            FilterAnswerFlag::Feasible => crate::extender::FilterAnswer::Feasible,
            FilterAnswerFlag::Chosen => crate::extender::FilterAnswer::Chosen,
            FilterAnswerFlag::Auto => crate::extender::FilterAnswer::Auto,
        }
    }
}

#[derive(Debug, Args)]
#[command(after_help = "\
The snapshot is JSON: {\"nodes\": [{\"name\", \"cpu\", \"memory\", \"gpus\", \"model\"}],
\"pods\": [{\"name\", \"node\", \"cpu\", \"memory\", \"gpus\" | \"gpuMilli\", \"devices\"}]} (pods already
running). The output is a table and the YAML status (plan, unplaced, solver, counts).")]
pub struct PlanArgs {
    /// The ScheduleRequest to plan (YAML, as for kubectl apply).
    #[arg(long, short = 'f')]
    pub file: PathBuf,
    /// Cluster snapshot (JSON) to plan against.
    #[arg(long)]
    pub snapshot: PathBuf,
    /// LP backend: clarabel (default, reports shadow prices), microlp, or highs (when built
    /// with the `highs` feature).
    #[arg(long, default_value = "clarabel")]
    pub backend: String,
    /// Wall-clock limit for the LP; past it the greedy plan is returned and says so.
    #[arg(long, default_value_t = 2000)]
    pub time_limit_ms: u64,
    /// Print only the YAML status.
    #[arg(long)]
    pub yaml_only: bool,
}

#[derive(Debug, Args)]
pub struct CrdgenArgs {
    /// Write one file per CRD into this folder instead of printing them to stdout.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// Run a parsed command line; the exit code says whether it worked.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Simulate(args) => simulate::run(&args),
        Command::Crdgen(args) => crdgen(&args),
        Command::Extender(args) => extender::run(&args),
        Command::Controller(args) => controller::run(&args),
        Command::Agent(args) => agent::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Plan(args) => plan_command(&args),
        Command::Snapshot(args) => snapshot::run(&args),
    }
}

#[cfg(feature = "k8s")]
fn plan_command(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    plan::run(args)
}

#[cfg(not(feature = "k8s"))]
fn plan_command(_: &PlanArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "this allot was built without the `k8s` feature (needed to read ScheduleRequests)"
    )
}

#[cfg(feature = "k8s")]
fn crdgen(args: &CrdgenArgs) -> anyhow::Result<ExitCode> {
    match &args.out_dir {
        Some(dir) => {
            for path in crate::crd::write_all(dir)? {
                eprintln!("wrote {}", path.display());
            }
        }
        None => {
            for (_, yaml) in crate::crd::render_all()? {
                println!("---\n{yaml}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "k8s"))]
fn crdgen(_: &CrdgenArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this allot was built without the `k8s` feature; rebuild with default features")
}
