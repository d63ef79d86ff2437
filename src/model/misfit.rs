//! A node's misfit for a pod in prose: in full for one node (bind, the snapshot loader, the
//! planner), and as a summary shared by every node that fails the same way (filter's reasons,
//! which kube-scheduler counts per distinct text in a pod's FailedScheduling event).

use super::{Misfit, ModelCatalog, ModelId, ModelSet, Node};

const MI: u64 = 1 << 20;

/// What a [`Misfit::summary`] text depends on: equal keys, equal texts.
pub type SummaryKey = (Misfit, Option<ModelId>);

impl Misfit {
    /// Why `node` cannot take the pod (whose allowed GPU models are `allowed`), as a reason a
    /// person can act on.
    pub fn describe(self, node: &Node, allowed: ModelSet, models: &ModelCatalog) -> String {
        match self {
            Misfit::Cpu { need, capacity, .. } if need > capacity => {
                format!("pod needs {need}m CPU, more than the node's {capacity}m")
            }
            Misfit::Cpu { need, free, .. } => {
                format!("insufficient CPU: pod needs {need}m, {free}m free")
            }
            Misfit::Memory { need, capacity, .. } if need > capacity => format!(
                "pod needs {}Mi memory, more than the node's {}Mi",
                need.div_ceil(MI),
                capacity / MI
            ),
            Misfit::Memory { need, free, .. } => format!(
                "insufficient memory: pod needs {}Mi, {}Mi free",
                need.div_ceil(MI),
                free / MI
            ),
            Misfit::NoGpus => "node has no GPUs".to_string(),
            Misfit::Model => model_text(node.model, allowed, models),
            Misfit::GpuShare { need, best_free } => {
                format!("no GPU has {need} milli-GPU free (the freest has {best_free})")
            }
            Misfit::WholeGpus { need, total, .. } if need > total => {
                format!("pod needs {need} whole GPUs; the node has {total}")
            }
            Misfit::WholeGpus { need, free, total } => {
                format!("pod needs {need} whole GPUs; {free} of {total} are free")
            }
        }
    }

    /// Filter's reason: what the pod needs and which resource stops it, without the numbers
    /// that differ from node to node, so a 5,000-node cluster gives a handful of distinct
    /// texts rather than thousands. Equal [`Misfit::summary_key`]s give equal texts.
    pub fn summary(self, node: &Node, allowed: ModelSet, models: &ModelCatalog) -> String {
        match self.general() {
            Misfit::Cpu { need, capacity, .. } if need > capacity => {
                format!("pod needs {need}m CPU, more than the node has")
            }
            Misfit::Cpu { need, .. } => format!("insufficient CPU: pod needs {need}m"),
            Misfit::Memory { need, capacity, .. } if need > capacity => format!(
                "pod needs {}Mi memory, more than the node has",
                need.div_ceil(MI)
            ),
            Misfit::Memory { need, .. } => {
                format!("insufficient memory: pod needs {}Mi", need.div_ceil(MI))
            }
            Misfit::NoGpus => "node has no GPUs".to_string(),
            Misfit::Model => model_text(node.model, allowed, models),
            Misfit::GpuShare { need, .. } => format!("no GPU has {need} milli-GPU free"),
            Misfit::WholeGpus { need, total, .. } if need > total => {
                format!("pod needs {need} whole GPUs; the node has {total}")
            }
            Misfit::WholeGpus { need, .. } => {
                format!("pod needs {need} whole GPUs; fewer are free")
            }
        }
    }

    /// The key of this misfit's [`Misfit::summary`] on `node`.
    pub fn summary_key(self, node: &Node) -> SummaryKey {
        let model = matches!(self, Misfit::Model)
            .then_some(node.model)
            .flatten();
        (self.general(), model)
    }

    /// This misfit with the node-to-node numbers dropped (free amounts; capacities unless
    /// they are what rules the node out), keeping [`Misfit::permanent`].
    fn general(self) -> Misfit {
        match self {
            Misfit::Cpu { need, capacity, .. } => Misfit::Cpu {
                need,
                free: 0,
                capacity: if need > capacity { 0 } else { need },
            },
            Misfit::Memory { need, capacity, .. } => Misfit::Memory {
                need,
                free: 0,
                capacity: if need > capacity { 0 } else { need },
            },
            Misfit::GpuShare { need, .. } => Misfit::GpuShare { need, best_free: 0 },
            Misfit::WholeGpus { need, total, .. } => Misfit::WholeGpus {
                need,
                free: 0,
                total: if need > total { total } else { need },
            },
            other => other,
        }
    }
}

fn model_text(model: Option<ModelId>, allowed: ModelSet, models: &ModelCatalog) -> String {
    format!(
        "GPU model {} is not among the pod's allowed models ({})",
        model.map_or("none", |m| models.name(m)),
        if allowed == ModelSet::EMPTY {
            "none of them exists in the cluster".to_string()
        } else {
            models.show(allowed).to_string()
        }
    )
}
