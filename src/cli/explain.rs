//! `allot simulate --explain I,...`: replay the first seed with `learned` and show, for the
//! arrivals asked for, why it chose its node: the features of the chosen node and the
//! runner-up, and each feature's contribution to the score.

use super::usage::usage;
use std::fmt::Write as _;
use std::sync::Arc;

use crate::model::{Cluster, GpuDemand, PodDemand};
use crate::policy::PolicyKind;
use crate::policy::learned::PolicyFile;
use crate::policy::learned::explain::explain;
use crate::sim::experiment::Workload;
use crate::sim::replay::{arrivals, context, replay_with};

/// Parse `--explain`: arrival indices (0-based), comma-separated.
pub fn parse_indices(text: &str) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<usize>() {
            Ok(i) => out.push(i),
            Err(_) => usage!(
                "--explain {text:?}: {part:?} is not an arrival index (0, 1, 2, ... as a comma list)"
            ),
        }
    }
    if out.is_empty() {
        usage!("--explain {text:?}: no arrival index given");
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The explanations of `learned`'s decisions at `indices` in the replay of `seed`.
pub fn explain_arrivals(
    workload: &Workload<'_>,
    seed: u64,
    learned: Option<Arc<PolicyFile>>,
    indices: &[usize],
) -> anyhow::Result<String> {
    let target = workload.target();
    let arr = arrivals(workload.pods, workload.cluster.gpu_capacity_milli(), seed);
    if let Some(&too_far) = indices.iter().find(|&&i| i >= arr.len()) {
        usage!(
            "--explain {too_far}: seed {seed} has {} arrivals (0..{})",
            arr.len(),
            arr.len().saturating_sub(1)
        );
    }
    let ctx = Arc::new(
        (*context(workload.cluster, &target, seed))
            .clone()
            .with_learned(learned),
    );
    // The cluster just before each explained arrival, and where the replay put it.
    let mut before: Vec<(usize, Cluster, Option<String>)> = Vec::new();
    if indices.first() == Some(&0) {
        before.push((0, workload.cluster.clone(), None));
    }
    let mut policy = PolicyKind::Learned.build_for(&ctx);
    replay_with(
        workload.cluster,
        &arr,
        policy.as_mut(),
        ctx.clone(),
        |step| {
            if indices.binary_search(&(step.index + 1)).is_ok() {
                before.push((step.index + 1, step.cluster.clone(), None));
            }
            if let Some(entry) = before.iter_mut().find(|(i, _, _)| *i == step.index) {
                entry.2 = Some(match step.placed {
                    Some(at) => step.cluster.nodes()[at.node].name.to_string(),
                    None => "nowhere (it failed)".to_string(),
                });
            }
        },
    );
    let mut out = String::new();
    for (i, cluster, placed) in &before {
        let pod = &arr[*i];
        let _ = writeln!(
            out,
            "arrival {i} (seed {seed}): {}; placed on {}",
            describe(pod),
            placed.as_deref().unwrap_or("?")
        );
        let candidates: Vec<usize> = (0..cluster.len())
            .filter(|&n| cluster.nodes()[n].fits(pod))
            .collect();
        match explain(&ctx, cluster, pod, &candidates) {
            Some(e) => out.push_str(&e.table(cluster)),
            None => out.push_str("  no node fits it: nothing to choose\n"),
        }
        out.push('\n');
    }
    Ok(out)
}

fn describe(pod: &PodDemand) -> String {
    let gpu = match pod.gpu {
        GpuDemand::None => "no GPU".to_string(),
        GpuDemand::Shared { milli } => format!("{milli} milli of one GPU"),
        GpuDemand::Whole { count } => format!("{count} whole GPU(s)"),
    };
    format!(
        "a pod of {} CPU milli, {} MiB, {gpu}",
        pod.cpu_milli,
        pod.memory_bytes >> 20
    )
}
