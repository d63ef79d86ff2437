//! A [`ClusterSnapshot`] as a snapshot file (`allot snapshot`): every node with its capacity
//! and GPU model, every bound pod with its demand and devices, in the format
//! [`super::file`] reads back into the same cluster. What a file cannot say is left out:
//! node readiness, telemetry and GPU health (a file's nodes are all healthy), and pods'
//! model constraints (they are already placed).

use super::ClusterSnapshot;
use super::file::{BoundPodEntry, SnapshotFile};
use crate::model::GpuDemand;
use crate::sim::trace::NodeEntry;

/// The snapshot as a file: nodes in cluster order, pods in snapshot order.
pub fn to_file(snapshot: &ClusterSnapshot) -> SnapshotFile {
    let cluster = &snapshot.cluster;
    let nodes = cluster
        .nodes()
        .iter()
        .map(|n| NodeEntry {
            name: n.name.to_string(),
            cpu: format!("{}m", n.cpu_capacity),
            memory: n.memory_capacity.to_string(),
            gpus: n.gpu_count(),
            model: n.model.map(|m| cluster.models.name(m).to_string()),
        })
        .collect();
    let pods = snapshot
        .pods
        .iter()
        .filter_map(|p| {
            let node = cluster.node(p.at.node)?;
            let (namespace, name) = match p.key.split_once('/') {
                Some((ns, name)) => (Some(ns.to_string()), name.to_string()),
                None => (None, p.key.clone()),
            };
            let (gpus, gpu_milli) = match p.demand.gpu {
                GpuDemand::None => (0, None),
                GpuDemand::Shared { milli } => (0, Some(milli)),
                GpuDemand::Whole { count } => (count, None),
            };
            let devices: Vec<usize> = p.at.devices.iter().collect();
            Some(BoundPodEntry {
                name,
                namespace,
                node: node.name.to_string(),
                cpu: format!("{}m", p.demand.cpu_milli),
                memory: p.demand.memory_bytes.to_string(),
                gpus,
                gpu_milli,
                devices: (!devices.is_empty()).then_some(devices),
            })
        })
        .collect();
    SnapshotFile { nodes, pods }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::parse_snapshot;

    #[test]
    fn a_snapshot_written_and_read_back_is_the_same_cluster() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/cluster.json"
        ))
        .unwrap();
        let first = parse_snapshot("examples/cluster.json", &text).unwrap();
        let written = serde_json::to_string(&to_file(&first)).unwrap();
        let again = parse_snapshot("written", &written).unwrap();
        assert_eq!(first.cluster.nodes(), again.cluster.nodes(), "{written}");
        assert_eq!(first.pods.len(), again.pods.len());
        for (a, b) in first.pods.iter().zip(&again.pods) {
            assert_eq!((&a.key, a.demand, a.at), (&b.key, b.demand, b.at));
        }
        assert!(written.contains(r#""gpuMilli":500"#), "{written}");
    }
}
