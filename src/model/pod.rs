//! What a pod asks for: CPU, memory, and whole GPUs or a share of one GPU. Sources are read
//! into these by [`super::demand::parse_demand`].

use super::gpu::ModelSet;

/// One whole GPU in milli-GPU.
pub const MILLI_PER_GPU: u32 = 1000;

/// The GPU part of a demand. A pod takes whole devices or a share of exactly one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GpuDemand {
    None,
    /// A share of one device, `0 < milli < 1000`.
    Shared {
        milli: u32,
    },
    /// `count >= 1` whole, otherwise unused devices.
    Whole {
        count: u32,
    },
}

impl GpuDemand {
    /// Number of devices touched (the trace's `num_gpu`).
    pub fn num_gpu(self) -> u32 {
        match self {
            GpuDemand::None => 0,
            GpuDemand::Shared { .. } => 1,
            GpuDemand::Whole { count } => count,
        }
    }

    /// Milli-GPU needed on each touched device (the trace's `gpu_milli`).
    pub fn per_gpu_milli(self) -> u32 {
        match self {
            GpuDemand::None => 0,
            GpuDemand::Shared { milli } => milli,
            GpuDemand::Whole { .. } => MILLI_PER_GPU,
        }
    }

    /// Total milli-GPU requested.
    pub fn total_milli(self) -> u64 {
        u64::from(self.num_gpu()) * u64::from(self.per_gpu_milli())
    }
}

/// A pod's resource demand in core units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PodDemand {
    pub cpu_milli: u64,
    pub memory_bytes: u64,
    pub gpu: GpuDemand,
    /// GPU models the pod may run on; `ModelSet::ANY` when unconstrained.
    pub models: ModelSet,
}

impl PodDemand {
    pub fn needs_gpu(&self) -> bool {
        self.gpu != GpuDemand::None
    }

    /// The shape that placement scores depend on (memory only gates feasibility).
    pub fn shape(&self) -> PodShape {
        PodShape {
            cpu_milli: self.cpu_milli,
            gpu: self.gpu,
            models: self.models,
        }
    }
}

/// A demand without memory: the key under which policies cache scores and the FGD target
/// workload groups pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodShape {
    pub cpu_milli: u64,
    pub gpu: GpuDemand,
    pub models: ModelSet,
}

impl PodShape {
    pub fn needs_gpu(&self) -> bool {
        self.gpu != GpuDemand::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_count_every_touched_device() {
        assert_eq!(GpuDemand::None.total_milli(), 0);
        assert_eq!(GpuDemand::Shared { milli: 460 }.total_milli(), 460);
        assert_eq!(GpuDemand::Whole { count: 8 }.total_milli(), 8000);
    }
}
