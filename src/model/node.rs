//! A node: allocatable CPU and memory, a GPU model, and the free milli of each device.

use super::gpu::{ModelId, ModelSet};
use super::pod::{GpuDemand, MILLI_PER_GPU, PodDemand};

/// Most GPUs one node may carry (one bit each in [`DeviceSet`]); real servers have up to 16.
pub const MAX_GPUS_PER_NODE: usize = 16;

/// A set of device indices on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DeviceSet(u16);

impl DeviceSet {
    pub const EMPTY: DeviceSet = DeviceSet(0);

    pub fn single(index: usize) -> Self {
        DeviceSet(1 << index)
    }
    pub fn with(self, index: usize) -> Self {
        DeviceSet(self.0 | (1 << index))
    }
    pub fn contains(self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..MAX_GPUS_PER_NODE).filter(move |&i| self.contains(i))
    }
}

/// Counts of the GPU pods a node hosts, by kind: index 0 = shared, k = k whole GPUs.
/// GpuClustering scores on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GpuPodKinds([u16; MAX_GPUS_PER_NODE + 1]);

impl GpuPodKinds {
    pub fn kind_of(gpu: GpuDemand) -> Option<usize> {
        match gpu {
            GpuDemand::None => None,
            GpuDemand::Shared { .. } => Some(0),
            GpuDemand::Whole { count } => Some((count as usize).min(MAX_GPUS_PER_NODE)),
        }
    }
    pub fn count(&self, kind: usize) -> u16 {
        self.0[kind]
    }
    /// Whether the node hosts any GPU pod at all.
    pub fn any(&self) -> bool {
        self.0.iter().any(|&c| c > 0)
    }
    /// Whether the node hosts a GPU pod of a kind other than `kind`.
    pub fn any_other(&self, kind: usize) -> bool {
        self.0.iter().enumerate().any(|(k, &c)| k != kind && c > 0)
    }
    fn add(&mut self, gpu: GpuDemand) {
        if let Some(k) = Self::kind_of(gpu) {
            self.0[k] = self.0[k].saturating_add(1);
        }
    }
    fn remove(&mut self, gpu: GpuDemand) {
        if let Some(k) = Self::kind_of(gpu) {
            self.0[k] = self.0[k].saturating_sub(1);
        }
    }
}

/// Why a pod does not fit a node. `permanent()` separates "never on this node" from "not now".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Misfit {
    Cpu { need: u64, free: u64, capacity: u64 },
    Memory { need: u64, free: u64, capacity: u64 },
    NoGpus,
    Model,
    GpuShare { need: u32, best_free: u32 },
    WholeGpus { need: u32, free: u32, total: u32 },
}

impl Misfit {
    /// True when waiting cannot help: the node lacks the capacity or the model outright.
    pub fn permanent(&self) -> bool {
        match *self {
            Misfit::Cpu { need, capacity, .. } | Misfit::Memory { need, capacity, .. } => {
                need > capacity
            }
            Misfit::NoGpus | Misfit::Model => true,
            Misfit::WholeGpus { need, total, .. } => need > total,
            Misfit::GpuShare { .. } => false,
        }
    }
}

/// One node's capacity and current free resources.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: std::sync::Arc<str>,
    pub cpu_capacity: u64,
    pub memory_capacity: u64,
    pub model: Option<ModelId>,
    gpu_count: u8,
    pub cpu_free: u64,
    pub memory_free: u64,
    gpu_free: [u16; MAX_GPUS_PER_NODE],
    pub kinds: GpuPodKinds,
    /// Bumped on every change, so callers can cache per-node results.
    pub generation: u64,
}

/// Why a node description is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    #[error("node has {0} GPUs; at most {MAX_GPUS_PER_NODE} per node are supported")]
    TooManyGpus(usize),
    #[error("node has GPUs but no GPU model")]
    GpusWithoutModel,
}

impl Node {
    pub fn new(
        name: impl Into<String>,
        cpu_milli: u64,
        memory_bytes: u64,
        gpus: usize,
        model: Option<ModelId>,
    ) -> Result<Self, NodeError> {
        if gpus > MAX_GPUS_PER_NODE {
            return Err(NodeError::TooManyGpus(gpus));
        }
        if gpus > 0 && model.is_none() {
            return Err(NodeError::GpusWithoutModel);
        }
        let mut gpu_free = [0u16; MAX_GPUS_PER_NODE];
        gpu_free[..gpus].fill(MILLI_PER_GPU as u16);
        Ok(Node {
            name: name.into().into(),
            cpu_capacity: cpu_milli,
            memory_capacity: memory_bytes,
            model: if gpus > 0 { model } else { None },
            gpu_count: gpus as u8,
            cpu_free: cpu_milli,
            memory_free: memory_bytes,
            gpu_free,
            kinds: GpuPodKinds::default(),
            generation: 0,
        })
    }

    pub fn gpu_count(&self) -> usize {
        usize::from(self.gpu_count)
    }

    /// Free milli of each device, by index.
    pub fn gpu_free(&self) -> &[u16] {
        &self.gpu_free[..self.gpu_count()]
    }

    /// Idle GPU milli on the node (the paper's U).
    pub fn idle_gpu_milli(&self) -> u32 {
        self.gpu_free().iter().map(|&g| u32::from(g)).sum()
    }

    pub fn full_free_gpus(&self) -> u32 {
        self.gpu_free()
            .iter()
            .filter(|&&g| u32::from(g) == MILLI_PER_GPU)
            .count() as u32
    }

    /// Whether the node hosts nothing: all CPU and every device free.
    pub fn is_idle(&self) -> bool {
        self.cpu_free == self.cpu_capacity
            && self.idle_gpu_milli() == self.gpu_count() as u32 * MILLI_PER_GPU
    }

    /// Share of the CPU in use, 0..=1 (1 for a node without CPU).
    pub fn cpu_used_fraction(&self) -> f64 {
        if self.cpu_capacity == 0 {
            return 1.0;
        }
        1.0 - self.cpu_free as f64 / self.cpu_capacity as f64
    }

    /// Share of the GPU milli in use, 0..=1 (0 for a node without GPUs).
    pub fn gpu_used_fraction(&self) -> f64 {
        if self.gpu_count == 0 {
            return 0.0;
        }
        1.0 - f64::from(self.idle_gpu_milli())
            / (self.gpu_count() as f64 * f64::from(MILLI_PER_GPU))
    }

    pub fn model_allowed(&self, models: ModelSet) -> bool {
        models.allows(self.model)
    }

    /// Whether `pod` fits now; the reason when it does not.
    pub fn check(&self, pod: &PodDemand) -> Result<(), Misfit> {
        if pod.cpu_milli > self.cpu_free {
            return Err(Misfit::Cpu {
                need: pod.cpu_milli,
                free: self.cpu_free,
                capacity: self.cpu_capacity,
            });
        }
        if pod.memory_bytes > self.memory_free {
            return Err(Misfit::Memory {
                need: pod.memory_bytes,
                free: self.memory_free,
                capacity: self.memory_capacity,
            });
        }
        match pod.gpu {
            GpuDemand::None => Ok(()),
            _ if self.gpu_count == 0 => Err(Misfit::NoGpus),
            _ if !self.model_allowed(pod.models) => Err(Misfit::Model),
            GpuDemand::Shared { milli } => {
                let best_free = self.gpu_free().iter().copied().max().unwrap_or(0);
                if u32::from(best_free) >= milli {
                    Ok(())
                } else {
                    Err(Misfit::GpuShare {
                        need: milli,
                        best_free: u32::from(best_free),
                    })
                }
            }
            GpuDemand::Whole { count } => {
                let free = self.full_free_gpus();
                if free >= count {
                    Ok(())
                } else {
                    Err(Misfit::WholeGpus {
                        need: count,
                        free,
                        total: u32::from(self.gpu_count),
                    })
                }
            }
        }
    }

    pub fn fits(&self, pod: &PodDemand) -> bool {
        self.check(pod).is_ok()
    }

    /// The default device choice: the best-fit device for a share (least free milli that
    /// still fits, lowest index on ties); the lowest-index free devices for whole GPUs.
    pub fn default_devices(&self, gpu: GpuDemand) -> Option<DeviceSet> {
        match gpu {
            GpuDemand::None => Some(DeviceSet::EMPTY),
            GpuDemand::Shared { milli } => self
                .gpu_free()
                .iter()
                .enumerate()
                .filter(|&(_, &g)| u32::from(g) >= milli)
                .min_by_key(|&(i, &g)| (g, i))
                .map(|(i, _)| DeviceSet::single(i)),
            GpuDemand::Whole { count } => {
                let mut set = DeviceSet::EMPTY;
                for (i, &g) in self.gpu_free().iter().enumerate() {
                    if set.len() == count as usize {
                        break;
                    }
                    if u32::from(g) == MILLI_PER_GPU {
                        set = set.with(i);
                    }
                }
                (set.len() == count as usize).then_some(set)
            }
        }
    }

    /// Whether `devices` is a valid choice for `gpu` on this node right now.
    pub fn devices_fit(&self, gpu: GpuDemand, devices: DeviceSet) -> bool {
        let per = gpu.per_gpu_milli();
        devices.len() == gpu.num_gpu() as usize
            && devices
                .iter()
                .all(|i| i < self.gpu_count() && u32::from(self.gpu_free[i]) >= per)
    }

    /// Take `pod`'s resources on `devices`. The caller has checked `fits` and `devices_fit`;
    /// a violation is reported instead of corrupting the node.
    pub fn assign(&mut self, pod: &PodDemand, devices: DeviceSet) -> Result<(), Misfit> {
        self.check(pod)?;
        if !self.devices_fit(pod.gpu, devices) {
            return Err(Misfit::GpuShare {
                need: pod.gpu.per_gpu_milli(),
                best_free: 0,
            });
        }
        self.cpu_free -= pod.cpu_milli;
        self.memory_free -= pod.memory_bytes;
        let per = pod.gpu.per_gpu_milli() as u16;
        for i in devices.iter() {
            self.gpu_free[i] -= per;
        }
        self.kinds.add(pod.gpu);
        self.generation += 1;
        Ok(())
    }

    /// Take device `index` out of service (an unhealthy GPU): nothing more fits on it. Pods
    /// already on it stay accounted; snapshots are rebuilt from scratch, which restores it
    /// once it is healthy again.
    pub fn withhold_gpu(&mut self, index: usize) {
        if index < self.gpu_count() {
            self.gpu_free[index] = 0;
            self.generation += 1;
        }
    }

    /// Give back what `assign` took. Saturates at capacity so a double release cannot
    /// invent resources.
    pub fn release(&mut self, pod: &PodDemand, devices: DeviceSet) {
        self.cpu_free = (self.cpu_free + pod.cpu_milli).min(self.cpu_capacity);
        self.memory_free = (self.memory_free + pod.memory_bytes).min(self.memory_capacity);
        let per = pod.gpu.per_gpu_milli() as u16;
        let count = self.gpu_count();
        for i in devices.iter().filter(|&i| i < count) {
            self.gpu_free[i] = (self.gpu_free[i] + per).min(MILLI_PER_GPU as u16);
        }
        self.kinds.remove(pod.gpu);
        self.generation += 1;
    }
}

#[cfg(test)]
mod tests;
