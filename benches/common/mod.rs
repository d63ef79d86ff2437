//! Fixtures shared by the extender benches: an openb-shaped cluster, a shared-GPU pod's
//! request, and latency percentiles.

#![allow(dead_code)] // each bench uses its own subset

use std::time::Duration;

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
