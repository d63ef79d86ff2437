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
use std::io::Read;
use std::path::Path;

use crate::model::demand::{
    Amount, Catalog, DemandError, DemandParts, FieldNames, Gpus, Models, Number, Problem,
    parse_demand,
};
use crate::model::{Cluster, ModelCatalog, Node, PodDemand};

pub mod history;
mod json;
mod read;
pub mod times;
pub mod window;
use json::pods_from_entries;
pub use json::{
    JSON_FIELDS, NodeEntry, PodEntry, from_json_reader, json_error, json_gpus, nodes_from_entries,
    parse_nodes_json, parse_pods_json,
};
use read::{Bounded, overrun};
pub use read::{MAX_FILE_BYTES, MAX_LINE_BYTES, open, read_text};

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

/// The bounded read's overrun, when that is what stopped the CSV reader.
fn csv_overrun(file: &str, e: &csv::Error) -> Option<TraceError> {
    match e.kind() {
        csv::ErrorKind::Io(io) => overrun(file, io),
        _ => None,
    }
}

/// Read CSV rows from `input` line by line (lines capped at [`MAX_LINE_BYTES`]).
fn read_csv(
    file: &str,
    input: impl Read,
    mut each: impl FnMut(&Row<'_>) -> Result<(), TraceError>,
) -> Result<(), TraceError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(Bounded::lines(std::io::BufReader::new(input)));
    let header: HashMap<String, usize> = reader
        .headers()
        .map_err(|e| {
            csv_overrun(file, &e)
                .unwrap_or_else(|| TraceError::file(file, format!("cannot read the header: {e}")))
        })?
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
                if let Some(overrun) = csv_overrun(file, &e) {
                    return Err(overrun);
                }
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
    nodes_csv(file, text.as_bytes())
}

fn nodes_csv(file: &str, input: impl Read) -> Result<Cluster, TraceError> {
    let mut models = ModelCatalog::default();
    let mut nodes = Vec::new();
    read_csv(file, input, |row| {
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

pub(super) fn finish_cluster(
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
    pods_csv(file, text.as_bytes(), models)
}

fn pods_csv(
    file: &str,
    input: impl Read,
    models: &mut ModelCatalog,
) -> Result<PodList, TraceError> {
    let mut list = PodList::default();
    read_csv(file, input, |row| {
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

fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// Load a node list from a `.csv` or `.json` file, reading it incrementally. A JSON file may
/// also be a snapshot (`allot snapshot`, `{"nodes": [...], "pods": [...]}`): its nodes, empty
/// (a replay starts from an empty cluster, so the snapshot's pods are not placed).
pub fn load_nodes(path: &Path) -> Result<Cluster, TraceError> {
    let input = open(path)?;
    let file = path.display().to_string();
    if is_json(path) {
        let mut input = std::io::BufReader::new(input);
        let entries = if json::starts_with_object(&mut input) {
            let snap: json::SnapshotNodes =
                from_json_reader(input).map_err(|e| json_error(&file, &e))?;
            snap.nodes
        } else {
            from_json_reader(input).map_err(|e| json_error(&file, &e))?
        };
        nodes_from_entries(&file, &entries)
    } else {
        nodes_csv(&file, input)
    }
}

/// Load a pod list from a `.csv` or `.json` file, reading it incrementally.
pub fn load_pods(path: &Path, models: &mut ModelCatalog) -> Result<PodList, TraceError> {
    let input = open(path)?;
    let file = path.display().to_string();
    if is_json(path) {
        let entries: Vec<PodEntry> = from_json_reader(input).map_err(|e| json_error(&file, &e))?;
        pods_from_entries(&file, &entries, models)
    } else {
        pods_csv(&file, input, models)
    }
}

#[cfg(test)]
mod tests;
