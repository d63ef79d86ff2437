//! The trace bundled into the binary, and how trace names resolve to files.
//!
//! Source: Alibaba cluster-trace-gpu-v2023 ("openb"), as used by Weng et al., "Beware of
//! Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent",
//! USENIX ATC'23. See `traces/README.md` for provenance.

use std::path::{Path, PathBuf};

use super::trace::history::dir::{Recorded, read_history};
use super::trace::times::{Lifetime, load_lifetimes, parse_lifetimes_csv};
use super::trace::window::{Kept, Window};
use super::trace::{PodList, TraceError, load_nodes, load_pods, parse_nodes_csv, parse_pods_csv};
use crate::model::Cluster;

/// The paper's GPU-node cluster: 1213 nodes, 6212 GPUs.
const NODES_CSV: &str = include_str!("../../traces/openb/openb_node_list_gpu_node.csv");
/// The paper's default workload: 8152 pods.
const DEFAULT_PODS_CSV: &str = include_str!("../../traces/openb/openb_pod_list_default.csv");

/// The node list file name next to openb pod lists.
pub const OPENB_NODES_FILE: &str = "openb_node_list_gpu_node.csv";
/// Name of the embedded pod list.
pub const EMBEDDED_PODS: &str = "default";

/// Where a trace came from, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Embedded,
    File(PathBuf),
    /// A directory recorded by `allot extender --history-dir`.
    History(PathBuf),
}

impl Origin {
    pub fn describe(&self) -> String {
        match self {
            Origin::Embedded => "embedded".to_string(),
            Origin::File(p) => p.display().to_string(),
            Origin::History(p) => format!("{} (recorded history)", p.display()),
        }
    }
}

/// A resolved trace: the cluster and the pod list, with where each came from.
#[derive(Debug, Clone)]
pub struct LoadedTrace {
    /// Short name for reports (`default`, `gpushare40`, or the file stem).
    pub name: String,
    pub cluster: Cluster,
    pub pods: PodList,
    pub nodes_origin: Origin,
    pub pods_origin: Origin,
    /// The recorded pods' times, read with them (a history's rows are merged from files), or
    /// those of the pods a [`Window`] kept.
    recorded: Option<Vec<Lifetime>>,
    /// Warnings for the user: rows of a recorded history skipped, and why.
    pub notes: Vec<String>,
    /// The recorded history read, for a history directory: its files, digest, skipped rows
    /// and the merged rows (whose `node` column says where the cluster put each pod).
    pub history: Option<Recorded>,
}

impl LoadedTrace {
    /// The pods to replay against the cluster.
    pub fn workload(&self) -> super::Workload<'_> {
        super::Workload {
            cluster: &self.cluster,
            pods: &self.pods.pods,
            specs: &self.pods.specs,
        }
    }

    /// The pods' creation and deletion times, row by row, when the pod list has them (CSV
    /// files with both columns; the embedded default has them).
    pub fn lifetimes(&self) -> Result<Option<Vec<Lifetime>>, TraceError> {
        if let Some(times) = &self.recorded {
            return Ok(Some(times.clone()));
        }
        match &self.pods_origin {
            Origin::File(path) => load_lifetimes(path),
            Origin::Embedded => embedded_lifetimes().map(Some),
            Origin::History(_) => Ok(self.recorded.clone()),
        }
    }
}

impl LoadedTrace {
    /// Keep only the pods created inside `window`, with their times; `None` (nothing changed)
    /// when the pod list has no times. A recorded history's merged rows (`history`) are left
    /// whole: filter them with [`Kept::mask`].
    pub fn keep_window(&mut self, window: &Window) -> Result<Option<Kept>, TraceError> {
        let Some(times) = self.lifetimes()? else {
            return Ok(None);
        };
        let kept = window.apply(&times);
        let pods = &mut self.pods;
        pods.names = keep(std::mem::take(&mut pods.names), &kept.mask);
        pods.pods = keep(std::mem::take(&mut pods.pods), &kept.mask);
        pods.specs = keep(std::mem::take(&mut pods.specs), &kept.mask);
        self.recorded = Some(keep(times, &kept.mask));
        Ok(Some(kept))
    }
}

/// The items of `items` whose place in `mask` is true.
pub fn keep<T>(items: Vec<T>, mask: &[bool]) -> Vec<T> {
    items
        .into_iter()
        .zip(mask)
        .filter_map(|(item, &k)| k.then_some(item))
        .collect()
}

/// The times of the embedded openb default trace: what a trace without times draws from.
pub fn embedded_lifetimes() -> Result<Vec<Lifetime>, TraceError> {
    let file = "<embedded openb_pod_list_default.csv>";
    parse_lifetimes_csv(file, DEFAULT_PODS_CSV)?.ok_or_else(|| TraceError {
        file: file.to_string(),
        line: None,
        column: None,
        problem: "has no creation_time/deletion_time columns".to_string(),
    })
}

/// Resolve `pods` (a trace NAME or a file path) and `nodes` (a file path, or None for the
/// openb node list next to the pods, falling back to the embedded one).
///
/// A NAME is looked up as `openb_pod_list_NAME.csv` in each of `dirs`; `default` falls back
/// to the copy embedded in the binary.
pub fn load_trace(
    pods: &str,
    nodes: Option<&Path>,
    dirs: &[PathBuf],
) -> Result<LoadedTrace, TraceError> {
    if looks_like_path(pods) && Path::new(pods).is_dir() {
        return load_history(Path::new(pods), nodes);
    }
    let pods_path = resolve_pods(pods, dirs)?;
    let (mut cluster, nodes_origin) = match (nodes, &pods_path) {
        (Some(path), _) => (load_nodes(path)?, Origin::File(path.to_path_buf())),
        (None, Some(p)) => match p
            .parent()
            .map(|d| d.join(OPENB_NODES_FILE))
            .filter(|n| n.is_file())
        {
            Some(path) => (load_nodes(&path)?, Origin::File(path)),
            None => (embedded_nodes()?, Origin::Embedded),
        },
        (None, None) => (embedded_nodes()?, Origin::Embedded),
    };
    let (list, pods_origin) = match &pods_path {
        Some(path) => (
            load_pods(path, &mut cluster.models)?,
            Origin::File(path.clone()),
        ),
        None => (
            parse_pods_csv(
                "<embedded openb_pod_list_default.csv>",
                DEFAULT_PODS_CSV,
                &mut cluster.models,
            )?,
            Origin::Embedded,
        ),
    };
    Ok(LoadedTrace {
        name: trace_name(pods),
        cluster,
        pods: list,
        nodes_origin,
        pods_origin,
        recorded: None,
        notes: Vec::new(),
        history: None,
    })
}

/// A recorded history directory: its pods (rotated files, then those in flight) and its
/// `nodes.csv`, unless `nodes` names another node list.
pub fn load_history(dir: &Path, nodes: Option<&Path>) -> Result<LoadedTrace, TraceError> {
    let recorded = read_history(dir)?;
    if recorded.rows() == 0 {
        return Err(TraceError {
            file: dir.display().to_string(),
            line: None,
            column: None,
            problem: format!(
                "the recorded history holds no pod records ({} file(s) read, {} row(s) skipped): \
                 no GPU pods to replay or learn from",
                recorded.files.len(),
                recorded.skipped.total()
            ),
        });
    }
    let nodes_path = match nodes.map(Path::to_path_buf).or(recorded.nodes.clone()) {
        Some(path) => path,
        None => {
            return Err(TraceError {
                file: dir.display().to_string(),
                line: None,
                column: None,
                problem: format!(
                    "the recorded history has no {}; pass --nodes with the cluster's node list",
                    super::trace::history::NODES_FILE
                ),
            });
        }
    };
    let mut cluster = load_nodes(&nodes_path)?;
    let file = format!("{} (recorded history)", dir.display());
    let list = parse_pods_csv(&file, &recorded.text, &mut cluster.models)
        .map_err(|e| recorded.locate(e))?;
    let times = parse_lifetimes_csv(&file, &recorded.text).map_err(|e| recorded.locate(e))?;
    let name = dir.file_name().map_or_else(
        || "history".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(LoadedTrace {
        name,
        cluster,
        pods: list,
        nodes_origin: Origin::File(nodes_path),
        pods_origin: Origin::History(dir.to_path_buf()),
        recorded: times,
        notes: recorded.skipped.warnings(dir),
        history: Some(recorded),
    })
}

/// Whether `pods` names a path rather than a trace NAME.
fn looks_like_path(pods: &str) -> bool {
    pods.contains('/')
        || pods.contains(std::path::MAIN_SEPARATOR)
        || pods.ends_with(".csv")
        || pods.ends_with(".json")
}

fn embedded_nodes() -> Result<Cluster, TraceError> {
    parse_nodes_csv("<embedded openb_node_list_gpu_node.csv>", NODES_CSV)
}

/// `default` for a NAME, the file stem (minus `openb_pod_list_`) for a path.
fn trace_name(pods: &str) -> String {
    let stem = Path::new(pods)
        .file_stem()
        .map_or_else(|| pods.to_string(), |s| s.to_string_lossy().into_owned());
    stem.strip_prefix("openb_pod_list_")
        .unwrap_or(&stem)
        .to_string()
}

/// A path to read, or None for the embedded default.
fn resolve_pods(pods: &str, dirs: &[PathBuf]) -> Result<Option<PathBuf>, TraceError> {
    let as_path = Path::new(pods);
    if looks_like_path(pods) {
        return if as_path.is_file() {
            Ok(Some(as_path.to_path_buf()))
        } else {
            Err(TraceError {
                file: pods.to_string(),
                line: None,
                column: None,
                problem: "no such file".to_string(),
            })
        };
    }
    let file = format!("openb_pod_list_{pods}.csv");
    if let Some(found) = dirs.iter().map(|d| d.join(&file)).find(|p| p.is_file()) {
        return Ok(Some(found));
    }
    if pods == EMBEDDED_PODS {
        return Ok(None);
    }
    let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(TraceError {
        file,
        line: None,
        column: None,
        problem: format!(
            "trace {pods:?} not found (searched: {}); only {EMBEDDED_PODS:?} is embedded; \
             pass --trace-dir with the folder of openb_pod_list_*.csv files, or a file path",
            if searched.is_empty() {
                "no folders".to_string()
            } else {
                searched.join(", ")
            }
        ),
    })
}
