//! `allot plan`: solve a ScheduleRequest against a cluster snapshot, print the plan as a
//! table and as the YAML status the controller would write.

use super::usage::usage;
use std::process::ExitCode;
use std::time::Duration;

use super::PlanArgs;
use crate::alloc::{PlanOptions, plan};
use crate::controller::pods::devices_text;
use crate::controller::status::{plan_entries, solver_stats};
use crate::crd::batch::{objective, replicas};
use crate::crd::{PlannedReplica, ReplicaCounts, ScheduleRequest, SolverStats, UnplacedReplica};
use crate::snapshot::load_snapshot;

/// The part of a ScheduleRequest status that planning decides.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanStatus {
    plan: Vec<PlannedReplica>,
    unplaced: Vec<UnplacedReplica>,
    solver: SolverStats,
    counts: ReplicaCounts,
}

pub fn run(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let text = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(e) => usage!("cannot read {}: {e}", args.file.display()),
    };
    let request: ScheduleRequest = match serde_saphyr::from_str(&text) {
        Ok(r) => r,
        Err(e) => usage!(
            "{} is not a ScheduleRequest (apiVersion allot.dev/v1alpha1): {}",
            args.file.display(),
            one_line(&e.to_string())
        ),
    };
    let snapshot = load_snapshot(&args.snapshot)?;
    let mut cluster = snapshot.cluster;
    let replicas = match replicas(&request.spec, &mut cluster.models) {
        Ok(r) => r,
        Err(errors) => {
            for e in &errors {
                eprintln!("{}: {e}", args.file.display());
            }
            usage!(
                "the request is invalid ({} problems); nothing was planned",
                errors.len()
            );
        }
    };
    let options = PlanOptions {
        objective: objective(&request.spec),
        backend: args.backend.parse().map_err(anyhow::Error::msg)?,
        time_limit: Duration::from_millis(args.time_limit_ms),
    };
    let pods: Vec<_> = replicas.iter().map(|r| r.pod).collect();
    let result = plan(&cluster, &pods, &options)?;
    let (plan_list, unplaced) = plan_entries(&replicas, &result, &cluster);
    let rows: Vec<Vec<String>> = plan_list
        .iter()
        .map(|p| {
            let devices = devices_text(&p.gpu_devices);
            vec![
                p.task.clone(),
                p.replica.to_string(),
                p.node.clone(),
                devices,
                String::new(),
            ]
        })
        .chain(unplaced.iter().map(|u| {
            let dash = || "-".to_string();
            vec![
                u.task.clone(),
                u.replica.to_string(),
                dash(),
                dash(),
                u.reason.clone(),
            ]
        }))
        .collect();
    let header = ["TASK", "REPLICA", "NODE", "GPU DEVICES", "REASON"];
    let status = PlanStatus {
        counts: ReplicaCounts {
            replicas: replicas.len() as i32,
            planned: plan_list.len() as i32,
            ..ReplicaCounts::default()
        },
        plan: plan_list,
        unplaced,
        solver: solver_stats(&result),
    };
    if !args.yaml_only {
        print!("{}", super::table::render(&header, &rows, usize::MAX));
        println!(
            "\nplanned {}/{} replicas; objective {:.3}, bound {:.3}, gap {:.2}%; {} ({:?}) in {} ms; {} pod classes x {} node classes\n",
            result.placed(),
            replicas.len(),
            result.value,
            result.bound,
            result.gap * 100.0,
            result.backend,
            result.method,
            result.total_millis,
            result.pod_classes,
            result.node_classes
        );
    }
    print!("{}", serde_saphyr::to_string(&status)?);
    Ok(ExitCode::SUCCESS)
}

/// The YAML parser's message without its drawing of the input: `line 1 column 6: unclosed
/// bracket '['`.
fn one_line(message: &str) -> &str {
    let first = message.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first)
}
