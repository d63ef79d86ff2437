//! The cluster snapshot file: nodes and the pods already bound to them (with their devices),
//! loaded straight into a [`ClusterSnapshot`]. `allot plan --snapshot` and
//! `allot extender --snapshot` read it; no cluster needed.
//!
//! ```json
//! {"nodes": [{"name": "gpu-1", "cpu": "64", "memory": "256Gi", "gpus": 8, "model": "A100"}],
//!  "pods":  [{"name": "train-0", "node": "gpu-1", "cpu": "8", "memory": "32Gi", "gpus": 2,
//!             "devices": [0, 1]},
//!            {"name": "notebook", "node": "gpu-1", "cpu": "2", "memory": "8Gi",
//!             "gpuMilli": 500, "devices": [2]}]}
//! ```
//! Nodes are [`NodeEntry`] values; a pod's `devices` may be omitted (the default device
//! choice is then used). A pod on an unknown node, or one that overbooks its node, is an
//! error naming the pod. Nothing beyond allocation is known about a file's nodes: each gets
//! [`NodeState::healthy`]; its pods get their key as UID and priority 0.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{BoundPod, ClusterSnapshot, NodeState, node_index};
use crate::model::demand::{Amount, Catalog, DemandParts, parse_demand};
use crate::model::{DeviceSet, MAX_GPUS_PER_NODE, Placement};
use crate::sim::trace::{
    JSON_FIELDS, NodeEntry, TraceError, from_json_reader, json_error, json_gpus,
    nodes_from_entries, open,
};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotFile {
    pub nodes: Vec<NodeEntry>,
    #[serde(default)]
    pub pods: Vec<BoundPodEntry>,
}

/// A pod that already runs on a node.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BoundPodEntry {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub node: String,
    pub cpu: String,
    pub memory: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gpus: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_milli: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<usize>>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Read a snapshot file as it streams (bounded like a trace file): its cluster with every
/// listed pod applied.
pub fn load_snapshot(path: &Path) -> Result<ClusterSnapshot, TraceError> {
    let input = open(path)?;
    let file = path.display().to_string();
    let parsed = from_json_reader(input).map_err(|e| snapshot_json_error(&file, &e))?;
    build(&file, parsed)
}

/// [`load_snapshot`] on text already read; `file` names it in errors.
pub fn parse_snapshot(file: &str, text: &str) -> Result<ClusterSnapshot, TraceError> {
    let parsed = serde_json::from_str(text).map_err(|e| snapshot_json_error(file, &e))?;
    build(file, parsed)
}

/// A read's overrun as the trace loaders report it, or where the JSON went wrong.
fn snapshot_json_error(file: &str, e: &serde_json::Error) -> TraceError {
    let mut err = json_error(file, e);
    if let Some(rest) = err.problem.strip_prefix("invalid JSON: ") {
        err.problem = format!("invalid snapshot JSON: {rest}");
    }
    err
}

fn build(file: &str, parsed: SnapshotFile) -> Result<ClusterSnapshot, TraceError> {
    let mut cluster = nodes_from_entries(file, &parsed.nodes)?;
    let index = node_index(&cluster);
    let mut pods = Vec::with_capacity(parsed.pods.len());
    for (i, p) in parsed.pods.iter().enumerate() {
        let at = |column: &str, problem: String| TraceError {
            file: file.to_string(),
            line: None,
            column: Some(format!("pods[{i}].{column}")),
            problem: format!("pod {:?}: {problem}", p.name),
        };
        let parts = DemandParts {
            names: JSON_FIELDS,
            cpu: Amount::Quantity(&p.cpu),
            memory: Amount::Quantity(&p.memory),
            gpus: json_gpus(p.gpus, p.gpu_milli),
            models: None,
        };
        let demand = parse_demand(parts, Catalog::Intern(&mut cluster.models))
            .map_err(|e| at(e.name, e.problem.to_string()))?;
        let node = index
            .get(p.node.as_str())
            .ok_or_else(|| at("node", format!("node {:?} is not in the snapshot", p.node)))?;
        let devices = match &p.devices {
            Some(list) => {
                let mut set = DeviceSet::EMPTY;
                for &d in list {
                    if d >= MAX_GPUS_PER_NODE || set.contains(d) {
                        return Err(at(
                            "devices",
                            format!("device {d} is out of range or listed twice"),
                        ));
                    }
                    set = set.with(d);
                }
                set
            }
            None => cluster.nodes()[node]
                .default_devices(demand.gpu)
                .ok_or_else(|| at("node", format!("does not fit node {:?}", p.node)))?,
        };
        let placement = Placement { node, devices };
        cluster.place(&demand, placement).map_err(|misfit| {
            let on = &cluster.nodes()[node];
            let why = misfit.describe(on, demand.models, &cluster.models);
            at("node", format!("overbooks node {:?}: {why}", p.node))
        })?;
        let key = format!("{}/{}", p.namespace.as_deref().unwrap_or("default"), p.name);
        pods.push(BoundPod {
            uid: key.clone(),
            key,
            demand,
            at: placement,
            priority: 0,
        });
    }
    let states = vec![NodeState::healthy(); cluster.len()];
    Ok(ClusterSnapshot::indexed(cluster, index, pods, states))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"nodes": [{"name": "g1", "cpu": "64", "memory": "256Gi", "gpus": 4, "model": "A100"}],
        "pods": [{"name": "a", "node": "g1", "cpu": "8", "memory": "32Gi", "gpus": 2, "devices": [0, 1]},
                 {"name": "b", "node": "g1", "cpu": "2", "memory": "8Gi", "gpuMilli": 500}]}"#;

    #[test]
    fn applies_bound_pods() {
        let s = parse_snapshot("snap.json", GOOD).unwrap();
        let n = &s.cluster.nodes()[0];
        assert_eq!(n.gpu_free(), &[0, 0, 500, 1000]);
        assert_eq!(n.cpu_free, 54_000);
        assert_eq!(s.pods[1].key, "default/b");
        assert_eq!(
            (s.pods[1].uid.as_str(), s.pods[1].priority),
            ("default/b", 0)
        );
        assert_eq!(s.index.get("g1"), Some(0));
        assert_eq!(s.states, [NodeState::healthy()]);
    }

    #[test]
    fn finds_bound_pods_by_uid_and_a_changed_copy_indexes_afresh() {
        let s = parse_snapshot("snap.json", GOOD).unwrap();
        assert_eq!(
            s.pod_by_uid("default/b").map(|p| p.key.as_str()),
            Some("default/b")
        );
        assert!(s.pod_by_uid("default/zz").is_none());
        assert!(s.pod_by_uid("").is_none());
        // A clone is changed before it is used (as the extender's tests and rebuilds do).
        let mut copy = s.clone();
        let mut moved = copy.pods[1].clone();
        moved.uid = "u-new".into();
        copy.pods.push(moved);
        copy.pods.swap_remove(1);
        assert_eq!(
            copy.pod_by_uid("u-new").map(|p| p.key.as_str()),
            Some("default/b")
        );
        assert!(copy.pod_by_uid("default/b").is_none());
        assert!(
            s.pod_by_uid("default/b").is_some(),
            "the original is unchanged"
        );
    }

    #[test]
    fn bad_pods_are_named() {
        let unknown = GOOD.replace(r#""node": "g1", "cpu": "2""#, r#""node": "g9", "cpu": "2""#);
        let e = parse_snapshot("snap.json", &unknown)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pods[1].node") && e.contains("\"g9\" is not in the snapshot"),
            "{e}"
        );
        let overbooked = GOOD.replace(r#""devices": [0, 1]"#, r#""devices": [0, 0]"#);
        let e = parse_snapshot("snap.json", &overbooked)
            .unwrap_err()
            .to_string();
        assert!(e.contains("listed twice"), "{e}");
        let both = GOOD.replace(r#""gpuMilli": 500}"#, r#""gpuMilli": 500, "gpus": 2}"#);
        let e = parse_snapshot("snap.json", &both).unwrap_err().to_string();
        assert_eq!(
            e,
            "snap.json: column `pods[1].gpuMilli`: pod \"b\": 500 conflicts with gpus: 2; ask \
             for a share of one GPU or for whole GPUs, not both"
        );
        let twice = GOOD.replace(r#""gpuMilli": 500}"#, r#""gpuMilli": 500, "devices": [0]}"#);
        let e = parse_snapshot("snap.json", &twice).unwrap_err().to_string();
        assert!(e.contains("overbooks node"), "{e}");
        assert!(!e.contains('{'), "prose, not a Rust value: {e}");
    }
}
