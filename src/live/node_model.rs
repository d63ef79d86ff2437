//! A node's GPU model, decided in this one place for the snapshot the extender and the
//! controller share: the node label `allot.dev/gpu-model` (an administrator's override), else
//! GPU feature discovery's `nvidia.com/gpu.product`, else the model the node's agent reports
//! from NVML in its NodeTelemetry; the first of them present decides, in normal form
//! ([`crate::model::product`]). A node none of them names has the model [`UNKNOWN_MODEL`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use k8s_openapi::api::core::v1::Node as KubeNode;

use crate::crd::NodeTelemetry;
use crate::model::product::{ProductError, normalise};
use crate::model::{ModelCatalog, ModelId};
use crate::names::{GPU_MODEL_LABEL, GPU_PRODUCT_LABEL};

/// GPU model of a node that has no model label and no telemetry.
pub const UNKNOWN_MODEL: &str = "unknown";

/// Where a node's model was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSource {
    /// A node label: [`GPU_MODEL_LABEL`] or [`GPU_PRODUCT_LABEL`].
    Label(&'static str),
    /// The first GPU in the node's NodeTelemetry status.
    Telemetry,
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::Label(key) => write!(f, "label {key}"),
            ModelSource::Telemetry => f.write_str("NodeTelemetry status.gpus[0].model"),
        }
    }
}

/// The source that decides a node's model holds a value that is no GPU model name. Displays
/// as `label nvidia.com/gpu.product: "..." is not a GPU model name (...)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{from}: {error}")]
pub struct NodeModelError {
    pub from: ModelSource,
    pub error: ProductError,
}

/// The labels that name a node's model, the override first.
const LABELS: [&str; 2] = [GPU_MODEL_LABEL, GPU_PRODUCT_LABEL];

/// The node's GPU model in normal form ([`UNKNOWN_MODEL`] when nothing names one). The first
/// source present decides even when its value is unusable: an empty or malformed label is an
/// error to fix, not a reason to trust the next source.
pub fn node_model(
    node: &KubeNode,
    report: Option<&NodeTelemetry>,
) -> Result<String, NodeModelError> {
    let labels = node.metadata.labels.as_ref();
    let labelled = LABELS.iter().find_map(|key| {
        let value = labels?.get(*key)?;
        Some((ModelSource::Label(key), value.as_str()))
    });
    let reported = || {
        let gpu = report?.status.as_ref()?.gpus.first()?;
        Some((ModelSource::Telemetry, gpu.model.as_str()))
    };
    let Some((from, value)) = labelled.or_else(reported) else {
        return Ok(UNKNOWN_MODEL.to_string());
    };
    normalise(value).map_err(|error| NodeModelError { from, error })
}

/// Each node's model ([`node_model`]), interned in sorted order so that indices stay stable
/// from one snapshot to the next: the catalog, and per node its model (`None` only when the
/// catalog is full, which `problem` is told) or why it has none.
pub fn intern_models(
    nodes: &[&KubeNode],
    reports: &BTreeMap<&str, &NodeTelemetry>,
    problem: &mut impl FnMut(String, String),
) -> (ModelCatalog, Vec<Result<Option<ModelId>, NodeModelError>>) {
    let read: Vec<_> = nodes
        .iter()
        .map(|n| {
            let report = n.metadata.name.as_deref().and_then(|m| reports.get(m));
            node_model(n, report.copied())
        })
        .collect();
    let names: BTreeSet<&str> = read.iter().filter_map(|m| m.as_deref().ok()).collect();
    let mut catalog = ModelCatalog::default();
    let mut ids = HashMap::with_capacity(names.len());
    for name in names {
        match catalog.intern(name) {
            Ok(id) => {
                ids.insert(name, id);
            }
            Err(e) => problem(format!("GPU model {name:?}"), e.to_string()),
        }
    }
    let models = read
        .iter()
        .map(|m| match m {
            Ok(name) => Ok(ids.get(name.as_str()).copied()),
            Err(e) => Err(e.clone()),
        })
        .collect();
    (catalog, models)
}

#[cfg(test)]
mod tests;
