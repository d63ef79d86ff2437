//! Fixtures shared by the extender benches: openb-shaped clusters (filled round-robin, loaded
//! by a replay, or with every node's shape different), a shared-GPU pod's request, and latency
//! percentiles.

#![allow(dead_code)] // each bench uses its own subset

use std::time::Duration;

use allot::extender::state::BoundPod;
use allot::extender::wire::ExtenderArgs;
use allot::model::{Cluster, Placement};

/// `count` nodes from the openb list with trace pods placed round-robin where they fit.
pub fn cluster(count: usize) -> Cluster {
    let trace = allot::sim::load_trace("default", None, &[]).expect("embedded trace");
    let base = trace.cluster.nodes();
    let nodes = (0..count)
        .map(|i| {
            let mut n = base[i % base.len()].clone();
            n.name = format!("{}-{i}", n.name).into();
            n
        })
        .collect();
    let mut cluster = Cluster::new(trace.cluster.models.clone(), nodes);
    for (i, pod) in trace.pods.pods.iter().take(count).enumerate() {
        let node = (i * 7) % count;
        if let Some(devices) = cluster.nodes()[node].default_devices(pod.gpu)
            && cluster.nodes()[node].fits(pod)
        {
            let _ = cluster.place(pod, Placement { node, devices });
        }
    }
    cluster
}

/// How full [`loaded`] fills each copy of the openb cluster: GPU requested / capacity.
pub const LOADED_ARRIVED: f64 = 0.9;

/// `count` nodes as a cluster in use looks: copies of the openb node list (the copies renamed),
/// each filled by an FGD replay of the default trace (its own seed per copy) up to
/// [`LOADED_ARRIVED`] of its GPU capacity requested, so node shapes are as varied as a replay
/// makes them.
pub fn loaded(count: usize) -> Cluster {
    loaded_with_pods(count).0
}

/// [`loaded`] with the pods its replays placed, as the snapshot's bound pods.
pub fn loaded_with_pods(count: usize) -> (Cluster, Vec<BoundPod>) {
    let trace = allot::sim::load_trace("default", None, &[]).expect("embedded trace");
    let target = trace.workload().target();
    let base = &trace.cluster;
    let capacity = base.gpu_capacity_milli();
    let mut nodes = Vec::with_capacity(count);
    let mut pods = Vec::new();
    for copy in 0.. {
        if nodes.len() >= count {
            break;
        }
        let seed = 1_000 + copy as u64;
        let mut arrivals = allot::sim::replay::arrivals(&trace.pods.pods, capacity, seed);
        let mut requested = 0u64;
        let stop = (LOADED_ARRIVED * capacity as f64) as u64;
        let keep = arrivals
            .iter()
            .take_while(|p| {
                requested += p.gpu.total_milli();
                requested <= stop
            })
            .count();
        arrivals.truncate(keep);
        let ctx = allot::sim::replay::context(base, &target, seed);
        let mut fgd = allot::policy::Fgd::new(target.clone());
        let mut last = None;
        let mut placed = Vec::new();
        allot::sim::replay::replay_with(base, &arrivals, &mut fgd, ctx, |step| {
            if let Some(at) = step.placed {
                placed.push((step.index, *step.pod, at));
            }
            if step.index + 1 == arrivals.len() {
                last = Some(step.cluster.clone());
            }
        });
        let filled = last.unwrap_or_else(|| base.clone());
        let (offset, take) = (nodes.len(), filled.len().min(count - nodes.len()));
        for n in filled.nodes().iter().take(take) {
            let mut n = n.clone();
            n.name = format!("{}-c{copy}", n.name).into();
            nodes.push(n);
        }
        for (i, demand, at) in placed.into_iter().filter(|(_, _, at)| at.node < take) {
            pods.push(BoundPod {
                key: format!("c{copy}/pod-{i}"),
                uid: format!("c{copy}-{i}"),
                demand,
                at: Placement {
                    node: offset + at.node,
                    devices: at.devices,
                },
                priority: 0,
            });
        }
    }
    (Cluster::new(base.models.clone(), nodes), pods)
}

/// The worst case for grouping by shape: [`loaded`] with node `i`'s free CPU lowered by a
/// further `i + 1` milli, so (nearly) every node's shape differs.
pub fn distinct(count: usize) -> Cluster {
    distinct_with_pods(count).0
}

/// [`distinct`] with its bound pods: [`loaded_with_pods`]'s and the CPU-only ones that make
/// the shapes differ.
pub fn distinct_with_pods(count: usize) -> (Cluster, Vec<BoundPod>) {
    let (mut cluster, mut pods) = loaded_with_pods(count);
    for i in 0..count {
        let node = &cluster.nodes()[i];
        let take = (i as u64 + 1).min(node.cpu_free);
        let pod = allot::model::PodDemand {
            cpu_milli: take,
            memory_bytes: 0,
            gpu: allot::model::GpuDemand::None,
            models: allot::model::ModelSet::ANY,
        };
        let at = Placement {
            node: i,
            devices: allot::model::DeviceSet::default(),
        };
        if cluster.place(&pod, at).is_ok() {
            pods.push(BoundPod {
                key: format!("distinct/pod-{i}"),
                uid: format!("distinct-{i}"),
                demand: pod,
                at,
                priority: 0,
            });
        }
    }
    (cluster, pods)
}

/// filter/prioritize arguments for a `milli` shared-GPU pod against every node of `cluster`.
pub fn args(cluster: &Cluster, milli: u32) -> ExtenderArgs {
    args_for(cluster, milli, None)
}

/// [`args`] for a pod that names its policy (`allot.dev/policy`), or the extender's default.
pub fn args_for(cluster: &Cluster, milli: u32, policy: Option<&str>) -> ExtenderArgs {
    let mut annotations = serde_json::json!({"allot.dev/gpu-milli": milli.to_string()});
    if let Some(policy) = policy {
        annotations["allot.dev/policy"] = policy.into();
    }
    let pod = serde_json::json!({
        "metadata": {"name": "bench", "namespace": "ml", "uid": format!("bench-{milli}"),
                     "annotations": annotations},
        "spec": {"containers": [{"name": "main",
                 "resources": {"requests": {"cpu": "4", "memory": "16Gi"}}}]}
    });
    ExtenderArgs {
        pod: Some(serde_json::from_value(pod).expect("pod")),
        nodes: None,
        node_names: Some(cluster.nodes().iter().map(|n| n.name.to_string()).collect()),
    }
}

/// Print n, p50, p99 and max of `samples`.
pub fn percentiles(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{label}: n={} p50={:?} p99={:?} max={:?}",
        samples.len(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
}
