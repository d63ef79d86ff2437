//! What a pod asks for: CPU, memory, and whole GPUs or a share of one GPU.

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
    /// Build from the trace's pair (`num_gpu`, per-GPU `gpu_milli`).
    pub fn from_parts(num_gpu: u32, gpu_milli: u32) -> Result<Self, DemandError> {
        match (num_gpu, gpu_milli) {
            (0, 0) => Ok(GpuDemand::None),
            (0, m) => Err(DemandError::MilliWithoutGpu(m)),
            (_, 0) => Err(DemandError::GpuWithoutMilli(num_gpu)),
            (1, m) if m < MILLI_PER_GPU => Ok(GpuDemand::Shared { milli: m }),
            (n, MILLI_PER_GPU) => Ok(GpuDemand::Whole { count: n }),
            (_, m) if m > MILLI_PER_GPU => Err(DemandError::MilliTooLarge(m)),
            (n, m) => Err(DemandError::SharedMultiGpu(n, m)),
        }
    }

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

/// Why a demand is not a valid pod request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DemandError {
    #[error("gpu_milli is {0} but num_gpu is 0")]
    MilliWithoutGpu(u32),
    #[error("num_gpu is {0} but gpu_milli is 0")]
    GpuWithoutMilli(u32),
    #[error("gpu_milli {0} exceeds one whole GPU (1000)")]
    MilliTooLarge(u32),
    #[error("a GPU share ({1} milli) must be on exactly one GPU, not {0}")]
    SharedMultiGpu(u32, u32),
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
    fn trace_pairs_map_to_demands() {
        assert_eq!(GpuDemand::from_parts(0, 0), Ok(GpuDemand::None));
        assert_eq!(
            GpuDemand::from_parts(1, 460),
            Ok(GpuDemand::Shared { milli: 460 })
        );
        assert_eq!(
            GpuDemand::from_parts(8, 1000),
            Ok(GpuDemand::Whole { count: 8 })
        );
        assert_eq!(GpuDemand::from_parts(8, 1000).unwrap().total_milli(), 8000);
        assert!(GpuDemand::from_parts(2, 500).is_err());
        assert!(GpuDemand::from_parts(0, 500).is_err());
        assert!(GpuDemand::from_parts(1, 0).is_err());
        assert!(GpuDemand::from_parts(1, 1500).is_err());
    }
}
