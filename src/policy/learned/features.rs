//! The features of one (pod, candidate node) pair that the learned Q-function reads. Every
//! feature is a plain number near 0..1 (the LP's price and the CPU-bound change are in GPUs,
//! up to 8 either way), computed from the node before and after the hypothetical placement, the
//! pod, FGD's own score, the LP's shadow prices and two global context values; the order of
//! [`NAMES`] is the order of a policy file's weights. New features are only ever appended, so an
//! older file's list is a prefix.
//! Then the node-shape features twice more: for whole-GPU pods only (0 for any other pod), and
//! for multi-GPU pods only (2 or more whole GPUs), so that those classes can get corrections of
//! their own. Then a share's change of the policy's learned device cost table (`costs.rs`).
//! Last, for a GPU pod, the GPU the placement leaves bound by its node's CPU (`strand.rs`).

use super::costs::DeviceCosts;
use super::strand::CpuReach;
use crate::model::{GpuDemand, MAX_GPUS_PER_NODE, MILLI_PER_GPU, Node, PodDemand};
use crate::policy::{MAX_CPU_MILLI, MAX_GPU_MILLI};

/// Number of features.
pub const COUNT: usize = 31;

/// Feature names, in weight order (a policy file lists them and must match).
pub const NAMES: [&str; COUNT] = [
    // FGD's score for this placement, 0..1 (its 0..100 level / 100): the incumbent heuristic,
    // so that learning starts from FGD (weight 1, all others 0, reproduces FGD exactly).
    "fgd_score",
    // Idle GPU milli left on the node after the placement, over 8,000 (the largest node).
    "gpu_free_after",
    // Free CPU left after the placement, over 128 cores (the largest node).
    "cpu_free_after",
    // Free memory left after the placement, as a fraction of the node's memory.
    "memory_free_after",
    // Whole devices still fully free after the placement, over 8.
    "full_devices_after",
    // Devices partly used after the placement (0 < free < 1000 milli), over 8.
    "partial_devices_after",
    // The pod's demand class: a share of one GPU.
    "pod_shared",
    // The pod's demand class: whole GPUs, count over 8.
    "pod_whole",
    // The pod's demand class: CPU only.
    "pod_cpu_only",
    // The pod constrains GPU models and this node's model is one of them (a scarce placement).
    "model_constrained_match",
    // CPU per free GPU left on the node against the workload's typical CPU per GPU, as a
    // log2 ratio clipped to -4..4 and scaled to -1..1 (0: the node keeps the typical ratio).
    "cpu_per_gpu_ratio",
    // Cluster GPU load so far: allocated milli over capacity (global context).
    "cluster_load",
    // Cluster fragmentation so far: fragmented milli over idle milli (global context).
    "cluster_frag",
    // Constant 1 (the bias).
    "bias",
    // The LP allocation's opportunity cost of this placement, in GPUs (0..8): the pod's CPU,
    // memory, GPU milli and whole devices at the shadow prices of the node's hardware group,
    // from the pricing LP over the recent arrivals (`alloc::prices`; 0 before the first solve).
    "lp_price_cost",
    // The node-shape features again, for whole-GPU pods only (0 for shared and CPU-only pods):
    // a whole pod's own correction on top of the shared one (the class interactions).
    "gpu_free_after_whole",
    "cpu_free_after_whole",
    "memory_free_after_whole",
    "full_devices_after_whole",
    "partial_devices_after_whole",
    "model_constrained_match_whole",
    "cpu_per_gpu_ratio_whole",
    // The node-shape features once more, for multi-GPU pods only (2, 4 or 8 whole GPUs; 0 for
    // every other pod, 1-GPU whole pods included): the gate that the `*_whole` ones lack, since
    // 1-GPU pods outnumber multi-GPU pods 5 to 50 times in every openb trace. Each is a
    // multi-GPU pod's own correction on top of the shared and the whole-pod ones:
    // idle GPU milli left / 8,000.
    "gpu_free_after_multi",
    // Free CPU left / 128 cores.
    "cpu_free_after_multi",
    // Free memory left / the node's memory.
    "memory_free_after_multi",
    // Fully free devices left / 8: how many more multi-GPU pods the node can still take.
    "full_devices_after_multi",
    // Partly used devices left / 8.
    "partial_devices_after_multi",
    // The pod constrains GPU models and this node's model is one of them.
    "model_constrained_match_multi",
    // CPU per free GPU left against the workload's typical ratio (log2, -1..1).
    "cpu_per_gpu_ratio_multi",
    // For a share, the least change of the policy's device cost table (`costs.rs`, in GPUs:
    // the learned worth of the devices' free levels to the shares to come) over the node's
    // devices that fit it; 0 for other pods and for a policy without a table.
    "device_cost_change",
    // For a GPU pod, the GPU (in GPUs) that the placement leaves in devices some GPU class of
    // the target fits by size but none by the node's CPU, less what was so before; 0 for
    // CPU-only pods (`strand.rs`).
    "cpu_bound_change",
];

/// Index of `lp_price_cost`.
pub const PRICE: usize = 14;

/// Index of `device_cost_change`.
pub const DEVICE_COST: usize = 29;

/// Index of `cpu_bound_change`.
pub const CPU_BOUND: usize = 30;

/// Features every policy file lists, weighed or not: those that existed when a later one
/// could first be left out of a file that gives it no weight (`file.rs`).
pub const ALWAYS_LISTED: usize = 30;

/// The node-shape features: those of the node after the placement and the model match, which
/// differ between the candidates of one decision.
pub const NODE_SHAPE: [usize; 7] = [1, 2, 3, 4, 5, 9, 10];

/// Index of the first whole-pod interaction; `WHOLE + k` repeats `NODE_SHAPE[k]`.
pub const WHOLE: usize = 15;

/// Index of the first multi-GPU-pod interaction; `MULTI + k` repeats `NODE_SHAPE[k]`.
pub const MULTI: usize = 22;

/// Fewest whole GPUs of a pod that the `*_multi` features see.
pub const MULTI_MIN_GPUS: u32 = 2;

/// What the features need beyond the node and the pod: the same for every candidate of one
/// decision.
#[derive(Debug, Clone, Copy)]
pub struct Globals {
    /// Allocated over capacity GPU milli.
    pub load: f64,
    /// Fragmented over idle GPU milli.
    pub frag: f64,
    /// The workload's typical CPU milli per GPU (from the target workload).
    pub cpu_per_gpu: f64,
}

/// The features of placing `pod` on `node`, whose FGD score is `fgd` (0..100) and whose
/// opportunity cost at the LP's prices is `price_cost` GPUs, under the device cost table
/// `costs` when the policy has one; `cpu_bound_change` only when `reach` is given (the
/// target's classes, when the feature carries weight).
pub fn of(
    node: &Node,
    pod: &PodDemand,
    fgd: i64,
    price_cost: f64,
    g: &Globals,
    costs: Option<&DeviceCosts>,
    reach: Option<&CpuReach>,
) -> [f64; COUNT] {
    let n = node.gpu_count();
    let mut free = [0u16; MAX_GPUS_PER_NODE];
    free[..n].copy_from_slice(node.gpu_free());
    let best_device = match (pod.gpu, costs) {
        (GpuDemand::Shared { milli }, Some(t)) => t.best(&free[..n], milli as u16),
        _ => None,
    };
    let cpu_bound = match reach {
        Some(r) if pod.gpu != GpuDemand::None => r.change(node, pod, best_device.map(|b| b.0)),
        _ => 0.0,
    };
    take(&mut free[..n], pod.gpu);
    let full = MILLI_PER_GPU as u16;
    let idle: u32 = free[..n].iter().map(|&f| u32::from(f)).sum();
    let full_free = free[..n].iter().filter(|&&f| f == full).count();
    let partial = free[..n].iter().filter(|&&f| f > 0 && f < full).count();
    let cpu_after = node.cpu_free.saturating_sub(pod.cpu_milli) as f64;
    let mem_after = node.memory_free.saturating_sub(pod.memory_bytes) as f64;
    let gpus_after = f64::from(idle) / f64::from(MILLI_PER_GPU);
    let ratio = if g.cpu_per_gpu > 0.0 && gpus_after > 0.0 {
        ((cpu_after / gpus_after) / g.cpu_per_gpu)
            .max(1e-9)
            .log2()
            .clamp(-4.0, 4.0)
            / 4.0
    } else {
        0.0
    };
    let multi = matches!(pod.gpu, GpuDemand::Whole { count } if count >= MULTI_MIN_GPUS);
    let (shared, whole, cpu_only) = match pod.gpu {
        GpuDemand::None => (0.0, 0.0, 1.0),
        GpuDemand::Shared { .. } => (1.0, 0.0, 0.0),
        GpuDemand::Whole { count } => (0.0, f64::from(count) / 8.0, 0.0),
    };
    let constrained = !pod.models.is_any() && pod.models.allows(node.model);
    let mut out = [0.0; COUNT];
    out[..WHOLE].copy_from_slice(&[
        fgd as f64 / 100.0,
        f64::from(idle) / MAX_GPU_MILLI,
        cpu_after / MAX_CPU_MILLI,
        if node.memory_capacity == 0 {
            0.0
        } else {
            mem_after / node.memory_capacity as f64
        },
        full_free as f64 / 8.0,
        partial as f64 / 8.0,
        shared,
        whole,
        cpu_only,
        if constrained { 1.0 } else { 0.0 },
        ratio,
        g.load,
        g.frag,
        1.0,
        price_cost.clamp(0.0, 8.0),
    ]);
    if whole > 0.0 {
        for (k, &i) in NODE_SHAPE.iter().enumerate() {
            out[WHOLE + k] = out[i];
        }
    }
    if multi {
        for (k, &i) in NODE_SHAPE.iter().enumerate() {
            out[MULTI + k] = out[i];
        }
    }
    out[DEVICE_COST] = best_device.map_or(0.0, |b| b.1);
    out[CPU_BOUND] = cpu_bound;
    out
}

/// Take `gpu` out of the free vector as the default device choice does: a share from the
/// fullest device that fits (best fit), whole GPUs from fully free devices.
fn take(free: &mut [u16], gpu: GpuDemand) {
    match gpu {
        GpuDemand::None => {}
        GpuDemand::Shared { milli } => {
            let milli = milli as u16;
            if let Some(slot) = free.iter_mut().filter(|f| **f >= milli).min_by_key(|f| **f) {
                *slot -= milli;
            }
        }
        GpuDemand::Whole { count } => {
            let full = MILLI_PER_GPU as u16;
            for slot in free.iter_mut().filter(|f| **f == full).take(count as usize) {
                *slot = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelSet;

    fn node(gpus: usize) -> Node {
        let mut models = crate::model::ModelCatalog::default();
        let a100 = models.intern("A100").unwrap();
        Node::new("n", 64_000, 256 << 30, gpus, Some(a100)).unwrap()
    }

    fn pod(gpu: GpuDemand) -> PodDemand {
        PodDemand {
            cpu_milli: 8_000,
            memory_bytes: 32 << 30,
            gpu,
            models: ModelSet::ANY,
        }
    }

    #[test]
    fn after_state_counts_devices_as_the_placement_leaves_them() {
        let g = Globals {
            load: 0.5,
            frag: 0.1,
            cpu_per_gpu: 8_000.0,
        };
        let f = of(
            &node(8),
            &pod(GpuDemand::Shared { milli: 500 }),
            73,
            0.5,
            &g,
            None,
            None,
        );
        assert_eq!(f[0], 0.73);
        assert_eq!(f[1], 7_500.0 / MAX_GPU_MILLI);
        assert_eq!(f[4], 7.0 / 8.0, "seven devices stay whole");
        assert_eq!(f[5], 1.0 / 8.0, "one is now partly used");
        assert_eq!(f[6], 1.0);
        assert_eq!(f[13], 1.0);
        assert_eq!(f[PRICE], 0.5);
        let w = of(
            &node(8),
            &pod(GpuDemand::Whole { count: 2 }),
            0,
            20.0,
            &g,
            None,
            None,
        );
        assert_eq!(w[4], 6.0 / 8.0);
        assert_eq!(w[7], 2.0 / 8.0);
        assert_eq!(w[PRICE], 8.0, "the price is clipped at 8 GPUs");
        // 56 cores for 6 GPUs against a typical 8 cores per GPU: a little more CPU than typical.
        assert!(w[10] > 0.0 && w[10] < 0.25, "{}", w[10]);
        for (k, &i) in NODE_SHAPE.iter().enumerate() {
            assert_eq!(
                w[WHOLE + k],
                w[i],
                "{} repeats {}",
                NAMES[WHOLE + k],
                NAMES[i]
            );
            assert_eq!(
                f[WHOLE + k],
                0.0,
                "{} is 0 for a shared pod",
                NAMES[WHOLE + k]
            );
        }
    }

    #[test]
    fn names_and_values_line_up() {
        let g = Globals {
            load: 0.0,
            frag: 0.0,
            cpu_per_gpu: 0.0,
        };
        let f = of(&node(0), &pod(GpuDemand::None), 100, 0.0, &g, None, None);
        assert_eq!(f.len(), NAMES.len());
        for (k, &i) in NODE_SHAPE.iter().enumerate() {
            assert_eq!(NAMES[WHOLE + k], format!("{}_whole", NAMES[i]));
        }
        for (k, &i) in NODE_SHAPE.iter().enumerate() {
            assert_eq!(NAMES[MULTI + k], format!("{}_multi", NAMES[i]));
        }
        assert_eq!(f[8], 1.0);
        assert_eq!(
            f[10], 0.0,
            "no GPU left: the ratio is not defined and reads 0"
        );
    }

    #[test]
    fn the_multi_gpu_gate_opens_for_two_or_more_whole_gpus_only() {
        let g = Globals {
            load: 0.2,
            frag: 0.1,
            cpu_per_gpu: 8_000.0,
        };
        let demands = [
            (GpuDemand::None, false, false),
            (GpuDemand::Shared { milli: 300 }, false, false),
            (GpuDemand::Whole { count: 1 }, true, false),
            (GpuDemand::Whole { count: 2 }, true, true),
            (GpuDemand::Whole { count: 4 }, true, true),
            (GpuDemand::Whole { count: 8 }, true, true),
        ];
        for (gpu, whole, multi) in demands {
            let f = of(&node(8), &pod(gpu), 40, 0.0, &g, None, None);
            for (k, &i) in NODE_SHAPE.iter().enumerate() {
                let want_whole = if whole { f[i] } else { 0.0 };
                let want_multi = if multi { f[i] } else { 0.0 };
                assert_eq!(f[WHOLE + k], want_whole, "{gpu:?} {}", NAMES[WHOLE + k]);
                assert_eq!(f[MULTI + k], want_multi, "{gpu:?} {}", NAMES[MULTI + k]);
            }
        }
        // Not vacuous: a 4-GPU pod on an 8-GPU node leaves 4 full devices, and the gate copies it.
        let f = of(
            &node(8),
            &pod(GpuDemand::Whole { count: 4 }),
            40,
            0.0,
            &g,
            None,
            None,
        );
        assert_eq!(f[MULTI + 3], 4.0 / 8.0);
    }

    #[test]
    fn a_share_reads_the_least_change_of_the_device_cost_table_and_other_pods_nothing() {
        let g = Globals {
            load: 0.2,
            frag: 0.1,
            cpu_per_gpu: 8_000.0,
        };
        // A cost of 1 per free milli, with idle devices at 0: a share on an idle device costs
        // its leftover, so with every device idle a 300 share reads 700 milli, 0.7 GPUs.
        let mut values: Vec<f64> = (0..101).map(|k| k as f64 * 10.0).collect();
        values[100] = 0.0;
        let t = DeviceCosts { values };
        let share = pod(GpuDemand::Shared { milli: 300 });
        assert_eq!(
            of(&node(8), &share, 40, 0.0, &g, Some(&t), None)[DEVICE_COST],
            0.7
        );
        assert_eq!(
            of(&node(8), &share, 40, 0.0, &g, None, None)[DEVICE_COST],
            0.0
        );
        let whole = pod(GpuDemand::Whole { count: 1 });
        assert_eq!(
            of(&node(8), &whole, 40, 0.0, &g, Some(&t), None)[DEVICE_COST],
            0.0
        );
    }
}
