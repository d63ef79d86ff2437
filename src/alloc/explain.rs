//! Why a replica of a batch is not placed, in words a user can act on
//! ("needs 8 x V100M32, largest free block is 4").

use std::collections::BTreeMap;

use super::BatchPod;
use crate::model::quantity::{Bytes, Millicores};
use crate::model::{Cluster, GpuDemand, Node};

/// The reason pod `i` of `pods` is unplaced. `before` is the cluster the batch was planned
/// against, `after` the cluster with the plan applied, `withdrawn` the incomplete gangs.
pub fn explain(
    before: &Cluster,
    after: &Cluster,
    pods: &[BatchPod],
    i: usize,
    withdrawn: &BTreeMap<u32, (usize, usize)>,
) -> String {
    let pod = &pods[i];
    if let Some(&(fit, total)) = pod.gang.and_then(|g| withdrawn.get(&g)) {
        return if fit < total {
            format!(
                "gang: only {fit} of its {total} replicas fit the cluster at once, so none is placed (all-or-nothing)"
            )
        } else {
            format!(
                "gang: its {total} replicas fit the cluster alone but not beside the rest of this batch, so none is placed (all-or-nothing)"
            )
        };
    }
    if let Some(reason) = never_fits(before, pod) {
        return reason;
    }
    if after.nodes().iter().any(|n| n.fits(&pod.demand)) {
        return "left out by the plan's objective (a node still has room; re-plan to place it)"
            .to_string();
    }
    "fits the cluster, but the capacity is taken by other pods of this batch placed first (higher priority or larger)".to_string()
}

fn models_text(before: &Cluster, pod: &BatchPod) -> String {
    if pod.demand.models.is_any() {
        "GPU".to_string()
    } else {
        before.models.show(pod.demand.models).to_string()
    }
}

/// A reason when no node of the cluster as it was can host the pod now.
fn never_fits(before: &Cluster, pod: &BatchPod) -> Option<String> {
    let d = &pod.demand;
    if before.is_empty() {
        return Some("the cluster has no nodes".to_string());
    }
    if before.nodes().iter().any(|n| n.fits(d)) {
        return None;
    }
    let gpu_nodes: Vec<&Node> = before
        .nodes()
        .iter()
        .filter(|n| !d.needs_gpu() || (n.gpu_count() > 0 && n.model_allowed(d.models)))
        .collect();
    let models = models_text(before, pod);
    if gpu_nodes.is_empty() {
        return Some(match d.models.is_any() {
            true => "needs a GPU, but no node has GPUs".to_string(),
            false => format!("needs GPU model {models}, but no node has it"),
        });
    }
    let gpu_ok: Vec<&&Node> = gpu_nodes
        .iter()
        .filter(|n| match d.gpu {
            GpuDemand::None => true,
            GpuDemand::Shared { milli } => n.gpu_free().iter().any(|&g| u32::from(g) >= milli),
            GpuDemand::Whole { count } => n.full_free_gpus() >= count,
        })
        .collect();
    if gpu_ok.is_empty() {
        return Some(match d.gpu {
            GpuDemand::Whole { count } => {
                let largest = gpu_nodes.iter().map(|n| n.gpu_count()).max().unwrap_or(0);
                let free = gpu_nodes
                    .iter()
                    .map(|n| n.full_free_gpus())
                    .max()
                    .unwrap_or(0);
                if (count as usize) > largest {
                    format!(
                        "needs {count} x {models} on one node, but the largest {models} node has {largest}"
                    )
                } else {
                    format!("needs {count} x {models}, largest free block is {free}")
                }
            }
            GpuDemand::Shared { milli } => {
                let best = gpu_nodes
                    .iter()
                    .flat_map(|n| n.gpu_free().iter().copied())
                    .max()
                    .unwrap_or(0);
                format!(
                    "needs {milli} milli of one {models}, the largest free share is {best} milli"
                )
            }
            GpuDemand::None => "does not fit any node".to_string(),
        });
    }
    let cpu = gpu_ok.iter().map(|n| n.cpu_free).max().unwrap_or(0);
    if d.cpu_milli > cpu {
        return Some(format!(
            "needs {} CPU, the most free on a node with room for its GPUs is {}",
            Millicores(d.cpu_milli),
            Millicores(cpu)
        ));
    }
    let memory = gpu_ok
        .iter()
        .filter(|n| n.cpu_free >= d.cpu_milli)
        .map(|n| n.memory_free)
        .max()
        .unwrap_or(0);
    Some(format!(
        "needs {} memory, the most free on a node with room for its CPU and GPUs is {}",
        Bytes(d.memory_bytes),
        Bytes(memory)
    ))
}
