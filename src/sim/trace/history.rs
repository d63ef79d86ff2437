//! The recorded-history format (issue 20 item 1): what `allot extender --history-dir` writes
//! and the replays read. A pod row is an openb pod-list row (the openb columns first, in their
//! order, so every pod-list reader reads it) followed by allot's columns and a version column
//! that readers check. Format and encoding only; the directory reader is `history/dir.rs`,
//! the recorder's bookkeeping `history/book.rs`. Described for users in
//! `docs/history-format.md`.

use std::fmt::Write as _;

use crate::model::{GpuDemand, ModelCatalog, ModelSet, PodDemand};

pub mod book;
pub mod dir;

/// The format version this allot writes and the newest it reads.
pub const VERSION: u32 = 1;
/// The column every history row carries its format version in (the last one).
pub const VERSION_COLUMN: &str = "allot_history_version";

/// The pod file's columns: the openb pod list's eleven, then allot's.
pub const POD_COLUMNS: [&str; 17] = [
    "name",
    "cpu_milli",
    "memory_mib",
    "num_gpu",
    "gpu_milli",
    "gpu_spec",
    "qos",
    "pod_phase",
    "creation_time",
    "deletion_time",
    "scheduled_time",
    "node",
    "devices",
    "policy",
    "policy_hash",
    "uid",
    VERSION_COLUMN,
];

/// The node file's columns: the openb node list's five, then when the node was first and
/// last seen.
pub const NODE_COLUMNS: [&str; 8] = [
    "sn",
    "cpu_milli",
    "memory_mib",
    "gpu",
    "model",
    "added_time",
    "removed_time",
    VERSION_COLUMN,
];

/// The pod files' names: `pods-00000001.csv`, numbered in writing order.
pub const POD_FILE_PREFIX: &str = "pods-";
/// The pods in flight (bound and not gone, or waiting) at the last checkpoint.
pub const OPEN_FILE: &str = "open.csv";
/// Every node seen, with the times it came and went.
pub const NODES_FILE: &str = "nodes.csv";

const MIB: u64 = 1 << 20;

/// Where a pod's story stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Bound and still there at the checkpoint (only in `open.csv`).
    Running,
    /// Bound, then gone from the cluster (deleted, or finished).
    Terminated,
    /// Never bound: allot found no node for it. Open while it is retried; closed once no
    /// scheduler has asked about it for a while.
    Pending,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Running => "Running",
            Phase::Terminated => "Terminated",
            Phase::Pending => "Pending",
        }
    }

    pub fn parse(text: &str) -> Option<Phase> {
        [Phase::Running, Phase::Terminated, Phase::Pending]
            .into_iter()
            .find(|p| p.name() == text)
    }
}

/// One pod of the history: times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRecord {
    /// The pod's `namespace/name`, keyed-hashed unless plain names were asked for.
    pub name: String,
    /// The pod UID, hashed like the name.
    pub uid: String,
    pub cpu_milli: u64,
    pub memory_bytes: u64,
    pub gpu: GpuDemand,
    /// Allowed GPU models, `|`-separated; empty for any.
    pub gpu_spec: String,
    pub phase: Phase,
    pub created: u64,
    pub deleted: Option<u64>,
    pub scheduled: Option<u64>,
    pub node: String,
    /// Device indices on `node`, `|`-separated.
    pub devices: String,
    pub policy: String,
    pub policy_hash: String,
}

#[cfg(test)]
impl PodRecord {
    /// A test record: pod `i` of a run of one-GPU pods created `gap` seconds apart, each run
    /// 300 s on `node`'s `devices`, placed by `policy`.
    pub fn one_gpu_for_tests(i: u64, gap: u64, node: &str, devices: &str, policy: &str) -> Self {
        let created = 1_780_000_000 + gap * i;
        PodRecord {
            name: format!("p{i}"),
            uid: format!("u{i}"),
            cpu_milli: 1000,
            memory_bytes: 1 << 30,
            gpu: GpuDemand::Whole { count: 1 },
            gpu_spec: String::new(),
            phase: Phase::Terminated,
            created,
            deleted: Some(created + 300),
            scheduled: Some(created),
            node: node.into(),
            devices: devices.into(),
            policy: policy.into(),
            policy_hash: String::new(),
        }
    }
}

impl PodRecord {
    /// A record of `demand` with its models named from `models`; times and placement unset.
    pub fn of_demand(demand: &PodDemand, models: &ModelCatalog) -> PodRecord {
        PodRecord {
            name: String::new(),
            uid: String::new(),
            cpu_milli: demand.cpu_milli,
            memory_bytes: demand.memory_bytes,
            gpu: demand.gpu,
            gpu_spec: model_spec(demand.models, models),
            phase: Phase::Pending,
            created: 0,
            deleted: None,
            scheduled: None,
            node: String::new(),
            devices: String::new(),
            policy: String::new(),
            policy_hash: String::new(),
        }
    }

    /// The openb `num_gpu` and `gpu_milli` of the demand (a share is one GPU at < 1000).
    pub fn gpu_columns(&self) -> (u32, u32) {
        match self.gpu {
            GpuDemand::None => (0, 0),
            GpuDemand::Shared { milli } => (1, milli),
            GpuDemand::Whole { count } => (count, 1000),
        }
    }

    /// The row, newline-terminated, in [`POD_COLUMNS`] order.
    pub fn line(&self) -> String {
        let (num_gpu, gpu_milli) = self.gpu_columns();
        let opt = |t: Option<u64>| t.map(|t| t.to_string()).unwrap_or_default();
        let cells = [
            field(&self.name),
            self.cpu_milli.to_string(),
            self.memory_bytes.div_ceil(MIB).to_string(),
            num_gpu.to_string(),
            gpu_milli.to_string(),
            field(&self.gpu_spec),
            String::new(),
            self.phase.name().to_string(),
            self.created.to_string(),
            opt(self.deleted),
            opt(self.scheduled),
            field(&self.node),
            field(&self.devices),
            field(&self.policy),
            field(&self.policy_hash),
            field(&self.uid),
            VERSION.to_string(),
        ];
        let mut out = cells.join(",");
        out.push('\n');
        out
    }
}

/// One node of the inventory: capacity as openb writes it, and when it came and went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub name: String,
    pub cpu_milli: u64,
    pub memory_bytes: u64,
    pub gpus: usize,
    pub model: String,
    pub added: u64,
    pub removed: Option<u64>,
}

impl NodeRecord {
    /// A test record: node `name` of 64 cores, 256 GiB and four T4 GPUs, there from the start.
    pub fn four_t4_for_tests(name: &str) -> Self {
        NodeRecord {
            name: name.into(),
            cpu_milli: 64000,
            memory_bytes: 256 << 30,
            gpus: 4,
            model: "T4".into(),
            added: 0,
            removed: None,
        }
    }

    /// The row, newline-terminated, in [`NODE_COLUMNS`] order. Memory rounds down to MiB so
    /// that a replay never offers more than the node had.
    pub fn line(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            field(&self.name),
            self.cpu_milli,
            self.memory_bytes / MIB,
            self.gpus,
            field(&self.model),
            self.added,
            self.removed.map(|t| t.to_string()).unwrap_or_default(),
            VERSION
        );
        out
    }
}

/// The header line of a pod file.
pub fn pod_header() -> String {
    format!("{}\n", POD_COLUMNS.join(","))
}

/// The header line of the node file.
pub fn node_header() -> String {
    format!("{}\n", NODE_COLUMNS.join(","))
}

/// The `node` cell of every row of `text`, a pod list in [`POD_COLUMNS`] order with its
/// header (a [`dir::Recorded`]'s merged rows), row by row: where the cluster put each pod
/// (empty for a pod it never bound). A row the CSV reader cannot split reads as empty.
pub fn nodes_of_rows(text: &str) -> Vec<String> {
    let at = POD_COLUMNS.iter().position(|c| *c == "node").unwrap_or(0);
    csv::ReaderBuilder::new()
        .from_reader(text.as_bytes())
        .records()
        .map(|r| {
            r.ok()
                .and_then(|r| r.get(at).map(str::to_string))
                .unwrap_or_default()
        })
        .collect()
}

/// The allowed models as the `gpu_spec` column writes them; empty for any.
pub fn model_spec(set: ModelSet, models: &ModelCatalog) -> String {
    if set.is_any() {
        return String::new();
    }
    let names: Vec<&str> = models
        .ids()
        .filter(|id| set.contains(*id))
        .map(|id| models.name(id))
        .collect();
    names.join("|")
}

/// A CSV cell: quoted when it holds a comma, quote or line break, quotes doubled.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests;
