//! The eviction set of one node for one arriving pod: few resident pods whose removal lets
//! the pod fit there, found greedily resource by resource (GPU room first, then CPU and
//! memory). Pure: it reads the node and its residents and changes neither.

use crate::model::{DeviceSet, GpuDemand, MILLI_PER_GPU, Node, PodDemand};

/// A pod placed on a node, as the consolidator tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resident {
    /// The arrival index of the pod (its UID is `arrival_uid(id)`).
    pub id: usize,
    pub pod: PodDemand,
    pub devices: DeviceSet,
}

/// Whether `node`, emptied, could host `pod` at all (capacity, GPU count and model).
pub fn could_host(node: &Node, pod: &PodDemand) -> bool {
    if pod.cpu_milli > node.cpu_capacity || pod.memory_bytes > node.memory_capacity {
        return false;
    }
    !pod.needs_gpu()
        || (node.gpu_count() >= pod.gpu.num_gpu() as usize && node.model_allowed(pod.models))
}

/// Fill `set` with the positions in `residents` (the pods on `node`) of at most `cap` pods
/// whose removal lets `pod` fit on `node`, taking only pods with `movable[i]` (a pod that
/// fits some other node now), and return the GPU milli they hold. `None` when `node` cannot
/// host `pod` or no set within `cap` was found. `scratch` is working space.
///
/// The greedy choice: for a share, each device is tried: one occupant when one suffices (the
/// smallest that does), else occupants largest share first until the share fits; then CPU
/// and memory are topped up with the pods that cover most of what is missing. The cheapest
/// device wins (fewest pods, then least GPU). For whole GPUs, devices are cleared one at a
/// time, each time the device with the fewest pods not yet chosen. Not always the fewest
/// pods possible, but exact for the common cases (one device to clear, or one resource
/// short) and linear in the node's pods.
pub fn eviction_set(
    node: &Node,
    residents: &[Resident],
    movable: &[bool],
    pod: &PodDemand,
    cap: usize,
    set: &mut Vec<usize>,
    scratch: &mut Vec<usize>,
) -> Option<u64> {
    set.clear();
    if cap == 0 || !could_host(node, pod) {
        return None;
    }
    match pod.gpu {
        GpuDemand::None => complete(node, residents, movable, pod, cap, set),
        GpuDemand::Whole { count } => {
            clear_devices(node, residents, movable, count, set)?;
            complete(node, residents, movable, pod, cap, set)
        }
        GpuDemand::Shared { milli } => {
            let mut best: Option<(usize, u64)> = None;
            for device in 0..node.gpu_count() {
                scratch.clear();
                if room_on_device(node, residents, movable, device, milli, scratch).is_none() {
                    continue;
                }
                let Some(gpu) = complete(node, residents, movable, pod, cap, scratch) else {
                    continue;
                };
                if best.is_none_or(|b| (scratch.len(), gpu) < b) {
                    best = Some((scratch.len(), gpu));
                    set.clone_from(scratch);
                }
            }
            best.map(|(_, gpu)| gpu)
        }
    }
}

/// Make `milli` free on `device` with movable occupants: the smallest one that suffices
/// alone, else the largest first. `None` when the movable ones cannot free enough.
fn room_on_device(
    node: &Node,
    residents: &[Resident],
    movable: &[bool],
    device: usize,
    milli: u32,
    set: &mut Vec<usize>,
) -> Option<()> {
    let mut free = u32::from(node.gpu_free()[device]);
    if free >= milli {
        return Some(());
    }
    let per = |i: usize| residents[i].pod.gpu.per_gpu_milli();
    let key = |&i: &usize| (residents[i].pod.gpu.total_milli(), residents[i].id);
    let occupants =
        || (0..residents.len()).filter(|&i| movable[i] && residents[i].devices.contains(device));
    if let Some(one) = occupants()
        .filter(|&i| free + per(i) >= milli)
        .min_by_key(key)
    {
        set.push(one);
        return Some(());
    }
    let mut largest: Vec<usize> = occupants().collect();
    largest.sort_by_key(|&i| (std::cmp::Reverse(per(i)), key(&i)));
    for i in largest {
        free += per(i);
        set.push(i);
        if free >= milli {
            return Some(());
        }
    }
    None
}

/// Clear devices, the cheapest first, until `count` are wholly free once `set` is moved;
/// only devices whose occupants are all movable. `None` when too few such devices.
fn clear_devices(
    node: &Node,
    residents: &[Resident],
    movable: &[bool],
    count: u32,
    set: &mut Vec<usize>,
) -> Option<()> {
    let gpus = node.gpu_count();
    let clearable = |d: usize| {
        residents
            .iter()
            .zip(movable)
            .all(|(r, &m)| m || !r.devices.contains(d))
    };
    let occupied = |d: usize, set: &[usize]| {
        (0..residents.len())
            .filter(|i| residents[*i].devices.contains(d) && !set.contains(i))
            .count()
    };
    loop {
        let cleared = (0..gpus)
            .filter(|&d| u32::from(node.gpu_free()[d]) == MILLI_PER_GPU || occupied(d, set) == 0)
            .count();
        if cleared >= count as usize {
            return Some(());
        }
        // The device whose clearing adds the fewest pods, then the least GPU milli.
        let next = (0..gpus)
            .filter(|&d| occupied(d, set) > 0 && clearable(d))
            .min_by_key(|&d| {
                let extra = (0..residents.len())
                    .filter(|i| residents[*i].devices.contains(d) && !set.contains(i));
                let milli: u64 = extra
                    .clone()
                    .map(|i| residents[i].pod.gpu.total_milli())
                    .sum();
                (extra.count(), milli, d)
            });
        let d = next?;
        for (i, r) in residents.iter().enumerate() {
            if r.devices.contains(d) && !set.contains(&i) {
                set.push(i);
            }
        }
    }
}

/// Add pods until CPU and memory suffice too (each time the pod covering most of what is
/// still missing, then the one holding least GPU), and check on a copy of the node that
/// `pod` then fits. Returns the GPU milli of the set, or `None` past `cap`.
fn complete(
    node: &Node,
    residents: &[Resident],
    movable: &[bool],
    pod: &PodDemand,
    cap: usize,
    set: &mut Vec<usize>,
) -> Option<u64> {
    let freed = |set: &[usize], f: fn(&PodDemand) -> u64| -> u64 {
        set.iter().map(|&i| f(&residents[i].pod)).sum()
    };
    loop {
        let cpu_short = pod
            .cpu_milli
            .saturating_sub(node.cpu_free + freed(set, |p| p.cpu_milli));
        let mem_short = pod
            .memory_bytes
            .saturating_sub(node.memory_free + freed(set, |p| p.memory_bytes));
        if cpu_short == 0 && mem_short == 0 {
            break;
        }
        if set.len() >= cap {
            return None;
        }
        let cover = |p: &PodDemand| {
            let part = |have: u64, short: u64| {
                if short == 0 {
                    0.0
                } else {
                    (have as f64 / short as f64).min(1.0)
                }
            };
            part(p.cpu_milli, cpu_short) + part(p.memory_bytes, mem_short)
        };
        let next = (0..residents.len())
            .filter(|&i| movable[i] && !set.contains(&i))
            .max_by(|&a, &b| {
                let (pa, pb) = (&residents[a].pod, &residents[b].pod);
                cover(pa)
                    .total_cmp(&cover(pb))
                    .then(pb.gpu.total_milli().cmp(&pa.gpu.total_milli()))
                    .then(residents[b].id.cmp(&residents[a].id))
            })?;
        set.push(next);
    }
    if set.len() > cap || set.is_empty() {
        return None;
    }
    fits_once_gone(node, set.iter().map(|&i| &residents[i]), pod)
        .then(|| freed(set, |p| p.gpu.total_milli()))
}

/// Whether `node` fits `pod` once the residents `gone` (pods on it) have left.
pub fn fits_once_gone<'a>(
    node: &Node,
    gone: impl IntoIterator<Item = &'a Resident>,
    pod: &PodDemand,
) -> bool {
    let mut emptied = node.clone();
    for r in gone {
        emptied.release(&r.pod, r.devices);
    }
    emptied.fits(pod)
}
