//! JSON node and pod lists: the entry types (shared with snapshot files), their parsers, and
//! the streaming reader every JSON file goes through. Errors name the entry (`[3].memory`).

use std::io::Read;

use serde::{Deserialize, Serialize};

use super::read::{Bounded, overrun};
use super::{PodList, TraceError, finish_cluster};
use crate::model::demand::{
    Amount, Catalog, DemandParts, FieldNames, Gpus, Models, Number, parse_demand,
};
use crate::model::quantity::{parse_bytes, parse_cpu_milli};
use crate::model::{Cluster, ModelCatalog, Node};

/// JSON node entry: `{"name": "n1", "cpu": "64", "memory": "256Gi", "gpus": 8, "model": "A100"}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    pub name: String,
    pub cpu: String,
    pub memory: String,
    #[serde(default)]
    pub gpus: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// JSON pod entry: `{"name": "p1", "cpu": "4", "memory": "16Gi", "gpuMilli": 500,
/// "gpuModels": ["T4"]}`; `gpus` (whole GPUs) and `gpuMilli` (a share of one GPU) exclude
/// each other. Read by [`crate::model::demand::parse_demand`], with [`JSON_FIELDS`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodEntry {
    pub name: String,
    pub cpu: String,
    pub memory: String,
    #[serde(default)]
    pub gpus: u32,
    #[serde(default)]
    pub gpu_milli: Option<u32>,
    #[serde(default)]
    pub gpu_models: Vec<String>,
}

/// A snapshot file read as a node list: its nodes; its pods are skipped.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotNodes {
    pub nodes: Vec<NodeEntry>,
    #[serde(default)]
    #[allow(dead_code)]
    pods: serde::de::IgnoredAny,
}

/// Whether the JSON in `input` is an object (a snapshot) rather than an array, by its first
/// non-blank byte, without consuming anything.
pub fn starts_with_object(input: &mut impl std::io::BufRead) -> bool {
    input
        .fill_buf()
        .ok()
        .and_then(|b| b.iter().find(|c| !c.is_ascii_whitespace()).copied())
        == Some(b'{')
}

/// Parse a JSON node list (an array of [`NodeEntry`]).
pub fn parse_nodes_json(file: &str, text: &str) -> Result<Cluster, TraceError> {
    let entries: Vec<NodeEntry> = serde_json::from_str(text).map_err(|e| json_error(file, &e))?;
    nodes_from_entries(file, &entries)
}

/// Read JSON from `input` as it streams (at most [`MAX_FILE_BYTES`]).
pub fn from_json_reader<T: serde::de::DeserializeOwned>(
    input: impl Read,
) -> Result<T, serde_json::Error> {
    serde_json::from_reader(Bounded::whole(std::io::BufReader::new(input)))
}

/// Build a cluster from node entries; errors name the entry (`[3].memory`).
pub fn nodes_from_entries(file: &str, entries: &[NodeEntry]) -> Result<Cluster, TraceError> {
    let mut models = ModelCatalog::default();
    let mut nodes = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let at = |column: &str, problem: String| TraceError {
            file: file.to_string(),
            line: None,
            column: Some(format!("nodes[{i}].{column}")),
            problem,
        };
        let cpu = parse_cpu_milli(&e.cpu).map_err(|x| at("cpu", x.to_string()))?;
        let memory = parse_bytes(&e.memory).map_err(|x| at("memory", x.to_string()))?;
        let model = match e.model.as_deref().filter(|m| !m.is_empty()) {
            Some(m) => Some(models.intern(m).map_err(|x| at("model", x.to_string()))?),
            None => None,
        };
        nodes.push(
            Node::new(&e.name, cpu, memory, e.gpus, model)
                .map_err(|x| at("gpus", x.to_string()))?,
        );
    }
    finish_cluster(file, models, nodes)
}

/// What JSON pod entries (pod lists, snapshot files) call a demand's fields.
pub const JSON_FIELDS: FieldNames = FieldNames {
    cpu: "cpu",
    memory: "memory",
    gpus: "gpus",
    gpu_milli: "gpuMilli",
    models: "gpuModels",
};

/// The GPU part of a JSON pod entry: `gpus` whole GPUs (0, the default, is not given) or a
/// `gpuMilli` share of one GPU.
pub fn json_gpus(gpus: u32, gpu_milli: Option<u32>) -> Gpus<'static> {
    Gpus::WholeOrShare {
        whole: (gpus > 0).then_some(Number::Value(u64::from(gpus))),
        share: gpu_milli.map(|m| Number::Value(u64::from(m))),
    }
}

/// Parse a JSON pod list (an array of [`PodEntry`]).
pub fn parse_pods_json(
    file: &str,
    text: &str,
    models: &mut ModelCatalog,
) -> Result<PodList, TraceError> {
    let entries: Vec<PodEntry> = serde_json::from_str(text).map_err(|e| json_error(file, &e))?;
    pods_from_entries(file, &entries, models)
}

pub(super) fn pods_from_entries(
    file: &str,
    entries: &[PodEntry],
    models: &mut ModelCatalog,
) -> Result<PodList, TraceError> {
    let mut list = PodList::default();
    for (i, e) in entries.iter().enumerate() {
        let parts = DemandParts {
            names: JSON_FIELDS,
            cpu: Amount::Quantity(&e.cpu),
            memory: Amount::Quantity(&e.memory),
            gpus: json_gpus(e.gpus, e.gpu_milli),
            models: (!e.gpu_models.is_empty()).then_some(Models::List(&e.gpu_models)),
        };
        let demand = parse_demand(parts, Catalog::Intern(models)).map_err(|e| TraceError {
            file: file.to_string(),
            line: None,
            column: Some(format!("[{i}].{}", e.name)),
            problem: e.problem.to_string(),
        })?;
        list.names.push(e.name.clone());
        list.specs.push(e.gpu_models.join("|"));
        list.pods.push(demand);
    }
    if list.pods.is_empty() {
        return Err(TraceError::file(file, "the pod list has no pods"));
    }
    Ok(list)
}

/// The error of a JSON read: its overrun, or where the JSON went wrong.
pub fn json_error(file: &str, e: &serde_json::Error) -> TraceError {
    if let Some(overrun) = overrun(file, e) {
        return overrun;
    }
    TraceError {
        file: file.to_string(),
        line: Some(e.line() as u64),
        column: None,
        problem: format!("invalid JSON: {e}"),
    }
}
