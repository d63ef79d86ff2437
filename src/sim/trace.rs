//! Trace loading: node lists and pod lists as CSV (the Alibaba openb columns, or generic
//! columns with Kubernetes quantities) or JSON. Every bad row is reported with its file,
//! line and column; nothing is silently skipped.
//!
//! Node CSV columns: `sn` or `name`; `cpu_milli` or `cpu` (quantity); `memory_mib` or
//! `memory` (quantity); `gpu` or `gpus` (count); `model` (empty for CPU-only nodes).
//! Pod CSV columns: `name`; `cpu_milli` or `cpu`; `memory_mib` or `memory`; `num_gpu`;
//! `gpu_milli` (per GPU, < 1000 only for a share of one GPU; defaults to 1000 when
//! `num_gpu` > 0 and the column is absent); optional `gpu_spec` (allowed models, `|`-separated;
//! empty or `nan` for any). Other columns (qos, times, ...) are ignored. A pod's columns are
//! read by [`crate::model::demand::parse_demand`], so its limits and messages are the ones of
//! every other source of pods.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::model::demand::{
    Amount, Catalog, DemandError, DemandParts, FieldNames, Gpus, Models, Number, Problem,
    parse_demand,
};
use crate::model::quantity::{parse_bytes, parse_cpu_milli};
use crate::model::{Cluster, ModelCatalog, Node, PodDemand};

const MIB: u64 = 1 << 20;

/// A problem in a trace file, located as precisely as the format allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TraceError {
    pub file: String,
    pub line: Option<u64>,
    pub column: Option<String>,
    pub problem: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(column) = &self.column {
            write!(f, ": column `{column}`")?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl TraceError {
    fn file(file: &str, problem: impl Into<String>) -> Self {
        TraceError {
            file: file.to_string(),
            line: None,
            column: None,
            problem: problem.into(),
        }
    }
}

/// A pod list: demands in submission order (as listed), with their names.
#[derive(Debug, Clone, Default)]
pub struct PodList {
    pub names: Vec<String>,
    pub pods: Vec<PodDemand>,
    /// The `gpu_spec` text of each pod as written, for the fragmentation target's tie-break.
    pub specs: Vec<String>,
}

/// One CSV row with access by column name and errors that point at the cell.
struct Row<'a> {
    file: &'a str,
    line: u64,
    header: &'a HashMap<String, usize>,
    record: &'a csv::StringRecord,
}

impl Row<'_> {
    fn error(&self, column: &str, problem: impl Into<String>) -> TraceError {
        TraceError {
            file: self.file.to_string(),
            line: Some(self.line),
            column: Some(column.to_string()),
            problem: problem.into(),
        }
    }

    fn get(&self, column: &str) -> Option<&str> {
        self.header
            .get(column)
            .and_then(|&i| self.record.get(i))
            .map(str::trim)
    }

    /// The first of `columns` present in the header; an error naming all of them otherwise.
    fn pick(&self, columns: &[&'static str]) -> Result<(&'static str, &str), TraceError> {
        columns
            .iter()
            .find_map(|c| self.get(c).map(|v| (*c, v)))
            .ok_or_else(|| self.error(&columns.join("` or `"), "missing column"))
    }

    fn problem(&self, column: &str, problem: Problem) -> TraceError {
        self.error(column, problem.to_string())
    }

    fn demand_error(&self, e: DemandError) -> TraceError {
        self.problem(e.name, e.problem)
    }

    /// The cpu column: `cpu_milli` (a count) or `cpu` (a quantity).
    fn cpu(&self) -> Result<(&'static str, Amount<'_>), TraceError> {
        Ok(match self.pick(&["cpu_milli", "cpu"])? {
            ("cpu", text) => ("cpu", Amount::Quantity(text)),
            (column, text) => (column, Amount::Units { text, unit: 1 }),
        })
    }

    /// The memory column: `memory_mib` (a count of MiB) or `memory` (a quantity).
    fn memory(&self) -> Result<(&'static str, Amount<'_>), TraceError> {
        Ok(match self.pick(&["memory_mib", "memory"])? {
            ("memory", text) => ("memory", Amount::Quantity(text)),
            (column, text) => (column, Amount::Units { text, unit: MIB }),
        })
    }
}

fn read_csv(
    file: &str,
    text: &str,
    mut each: impl FnMut(&Row<'_>) -> Result<(), TraceError>,
) -> Result<(), TraceError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let header: HashMap<String, usize> = reader
        .headers()
        .map_err(|e| TraceError::file(file, format!("cannot read the header: {e}")))?
        .iter()
        .enumerate()
        .map(|(i, h)| (h.trim().to_ascii_lowercase(), i))
        .collect();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = record.position().map_or(0, |p| p.line());
                each(&Row {
                    file,
                    line,
                    header: &header,
                    record: &record,
                })?;
            }
            Err(e) => {
                let line = e.position().map(|p| p.line());
                return Err(TraceError {
                    file: file.to_string(),
                    line,
                    column: None,
                    problem: format!("malformed CSV: {e}"),
                });
            }
        }
    }
}

/// Parse a node list (CSV) into a cluster.
pub fn parse_nodes_csv(file: &str, text: &str) -> Result<Cluster, TraceError> {
    let mut models = ModelCatalog::default();
    let mut nodes = Vec::new();
    read_csv(file, text, |row| {
        let (_, name) = row.pick(&["sn", "name"])?;
        if name.is_empty() {
            return Err(row.error("name", "empty node name"));
        }
        let (cpu_col, cpu) = row.cpu()?;
        let cpu = cpu.cpu_milli().map_err(|p| row.problem(cpu_col, p))?;
        let (memory_col, memory) = row.memory()?;
        let memory = memory.bytes().map_err(|p| row.problem(memory_col, p))?;
        let (gpu_col, gpus) = row.pick(&["gpu", "gpus"])?;
        let gpus = Number::Text(gpus)
            .value()
            .map_err(|p| row.problem(gpu_col, p))?;
        let gpus = usize::try_from(gpus).unwrap_or(usize::MAX);
        let model = match row.get("model").filter(|m| !m.is_empty() && *m != "nan") {
            Some(m) => Some(
                models
                    .intern(m)
                    .map_err(|e| row.error("model", e.to_string()))?,
            ),
            None => None,
        };
        let node = Node::new(name, cpu, memory, gpus, model)
            .map_err(|e| row.error(gpu_col, e.to_string()))?;
        nodes.push(node);
        Ok(())
    })?;
    finish_cluster(file, models, nodes)
}

fn finish_cluster(
    file: &str,
    models: ModelCatalog,
    nodes: Vec<Node>,
) -> Result<Cluster, TraceError> {
    if nodes.is_empty() {
        return Err(TraceError::file(file, "the node list has no nodes"));
    }
    let mut seen = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if let Some(j) = seen.insert(&*n.name, i) {
            return Err(TraceError::file(
                file,
                format!(
                    "node {:?} is listed twice (entries {} and {})",
                    n.name,
                    j + 1,
                    i + 1
                ),
            ));
        }
    }
    Ok(Cluster::new(models, nodes))
}

/// Parse a pod list (CSV). GPU model names are interned into the cluster's catalog.
pub fn parse_pods_csv(
    file: &str,
    text: &str,
    models: &mut ModelCatalog,
) -> Result<PodList, TraceError> {
    let mut list = PodList::default();
    read_csv(file, text, |row| {
        let (_, name) = row.pick(&["name"])?;
        let (cpu_col, cpu) = row.cpu()?;
        let (memory_col, memory) = row.memory()?;
        let (_, num_gpu) = row.pick(&["num_gpu"])?;
        let spec = row.get("gpu_spec").filter(|s| *s != "nan").unwrap_or("");
        let parts = DemandParts {
            names: FieldNames {
                cpu: cpu_col,
                memory: memory_col,
                gpus: "num_gpu",
                gpu_milli: "gpu_milli",
                models: "gpu_spec",
            },
            cpu,
            memory,
            gpus: Gpus::PerDevice {
                num_gpu: Number::Text(num_gpu),
                milli: row.get("gpu_milli").map(Number::Text),
            },
            models: (!spec.is_empty()).then_some(Models::Separated(spec, '|')),
        };
        let demand =
            parse_demand(parts, Catalog::Intern(models)).map_err(|e| row.demand_error(e))?;
        list.names.push(name.to_string());
        list.specs.push(spec.to_string());
        list.pods.push(demand);
        Ok(())
    })?;
    if list.pods.is_empty() {
        return Err(TraceError::file(file, "the pod list has no pods"));
    }
    Ok(list)
}

/// JSON node entry: `{"name": "n1", "cpu": "64", "memory": "256Gi", "gpus": 8, "model": "A100"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    pub name: String,
    pub cpu: String,
    pub memory: String,
    #[serde(default)]
    pub gpus: usize,
    #[serde(default)]
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

/// Parse a JSON node list (an array of [`NodeEntry`]).
pub fn parse_nodes_json(file: &str, text: &str) -> Result<Cluster, TraceError> {
    let entries: Vec<NodeEntry> = serde_json::from_str(text).map_err(|e| json_error(file, &e))?;
    nodes_from_entries(file, &entries)
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

fn json_error(file: &str, e: &serde_json::Error) -> TraceError {
    TraceError {
        file: file.to_string(),
        line: Some(e.line() as u64),
        column: None,
        problem: format!("invalid JSON: {e}"),
    }
}

fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// Read a whole text file; the error names the file.
pub fn read_text(path: &Path) -> Result<String, TraceError> {
    std::fs::read_to_string(path)
        .map_err(|e| TraceError::file(&path.display().to_string(), format!("cannot read: {e}")))
}

/// Load a node list from a `.csv` or `.json` file.
pub fn load_nodes(path: &Path) -> Result<Cluster, TraceError> {
    let text = read_text(path)?;
    let file = path.display().to_string();
    if is_json(path) {
        parse_nodes_json(&file, &text)
    } else {
        parse_nodes_csv(&file, &text)
    }
}

/// Load a pod list from a `.csv` or `.json` file.
pub fn load_pods(path: &Path, models: &mut ModelCatalog) -> Result<PodList, TraceError> {
    let text = read_text(path)?;
    let file = path.display().to_string();
    if is_json(path) {
        parse_pods_json(&file, &text, models)
    } else {
        parse_pods_csv(&file, &text, models)
    }
}

#[cfg(test)]
mod tests;
