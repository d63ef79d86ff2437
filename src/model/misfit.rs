//! A node's misfit for a pod in prose, as kube-scheduler shows filter's reasons in a pod's
//! FailedScheduling event and as bind, the snapshot loader and the planner report it.

use super::{Misfit, ModelCatalog, ModelSet, Node};

impl Misfit {
    /// Why `node` cannot take the pod (whose allowed GPU models are `allowed`), as a reason a
    /// person can act on.
    pub fn describe(self, node: &Node, allowed: ModelSet, models: &ModelCatalog) -> String {
        const MI: u64 = 1 << 20;
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
            Misfit::Model => format!(
                "GPU model {} is not among the pod's allowed models ({})",
                node.model.map_or("none", |m| models.name(m)),
                if allowed == ModelSet::EMPTY {
                    "none of them exists in the cluster".to_string()
                } else {
                    models.show(allowed).to_string()
                }
            ),
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
}
