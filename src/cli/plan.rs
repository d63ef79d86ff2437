//! `allot plan`: solve a ScheduleRequest against a cluster snapshot, print the plan as a
//! table and as the YAML status the controller would write.

use super::usage::usage;
use std::fmt::Write as _;
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
    let request: ScheduleRequest = match serde_yaml::from_str(&text) {
        Ok(r) => r,
        Err(e) => usage!(
            "{} is not a ScheduleRequest (apiVersion allot.dev/v1alpha1): {e}",
            args.file.display()
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
    let mut table = String::from("TASK\tREPLICA\tNODE\tGPU DEVICES\tREASON\n");
    for p in &plan_list {
        let _ = writeln!(
            table,
            "{}\t{}\t{}\t{}\t",
            p.task,
            p.replica,
            p.node,
            devices_text(&p.gpu_devices)
        );
    }
    for u in &unplaced {
        let _ = writeln!(table, "{}\t{}\t-\t-\t{}", u.task, u.replica, u.reason);
    }
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
        print!("{}", align(&table));
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
    print!("{}", serde_yaml::to_string(&status)?);
    Ok(ExitCode::SUCCESS)
}

/// Tab-separated rows as aligned columns.
fn align(table: &str) -> String {
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split('\t').collect()).collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}
