//! One parser for a pod's demand: [`parse_demand`]`(`[`DemandParts`]`, `[`Catalog`]`)`.
//!
//! Whoever reads a demand (trace loader, snapshot file, extender, controller) hands over each
//! field as its source wrote it, with the source's name for it, and gets a [`PodDemand`] or a
//! [`DemandError`] naming the field and the value.
//!
//! The limits are the same for every source: cpu and memory are Kubernetes quantities (or
//! plain counts in a trace's `cpu_milli` / `memory_mib` columns) parsed by
//! [`crate::model::quantity`]; whole GPUs are `1..=`[`MAX_GPUS_PER_NODE`]; a share is
//! `1..=999` milli of exactly one GPU; a share and whole GPUs are not both given; allowed GPU
//! models are product names in any spelling [`crate::model::product`] normalises, and only
//! for a pod that requests a GPU. Sources differ only in how they spell the GPU part
//! ([`Gpus`]) and in their field names ([`FieldNames`]), which the messages use, so the user
//! still sees where the bad value came from.

use super::gpu::{MAX_MODELS, ModelCatalog, ModelError, ModelSet};
use super::node::MAX_GPUS_PER_NODE;
use super::pod::{GpuDemand, MILLI_PER_GPU, PodDemand};
use super::product::{ProductError, normalise};
use super::quantity::{QuantityError, parse_bytes, parse_count, parse_cpu_milli};

/// An amount of cpu or memory as its source wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount<'a> {
    /// A Kubernetes quantity: `"500m"`, `"64Gi"`.
    Quantity(&'a str),
    /// A whole number of `unit` core units: a trace's `cpu_milli` (unit 1) or `memory_mib`
    /// (unit 2^20) column.
    Units { text: &'a str, unit: u64 },
    /// Already in core units (millicores, bytes): a pod's containers, summed.
    Value(u64),
}

impl Amount<'_> {
    /// In millicores.
    pub fn cpu_milli(self) -> Result<u64, Problem> {
        self.resolve(parse_cpu_milli)
    }

    /// In bytes.
    pub fn bytes(self) -> Result<u64, Problem> {
        self.resolve(parse_bytes)
    }

    fn resolve(self, quantity: fn(&str) -> Result<u64, QuantityError>) -> Result<u64, Problem> {
        match self {
            Amount::Quantity(text) => quantity(text).map_err(Problem::Quantity),
            Amount::Units { text, unit } => count(text)?
                .checked_mul(unit)
                .ok_or_else(|| Problem::TooLarge(text.trim().to_string())),
            Amount::Value(v) => Ok(v),
        }
    }
}

/// A count as its source wrote it: text (a CSV cell, an annotation) or a number (JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Number<'a> {
    Text(&'a str),
    Value(u64),
}

impl Number<'_> {
    pub fn value(self) -> Result<u64, Problem> {
        match self {
            Number::Text(text) => count(text),
            Number::Value(v) => Ok(v),
        }
    }
}

/// A whole number written as text (`"8"`; `"1.5"`, `"500m"` and `"-1"` are not).
pub fn count(text: &str) -> Result<u64, Problem> {
    parse_count(text).map_err(|e| match e {
        QuantityError::Overflow(t) => Problem::TooLarge(t.trim().to_string()),
        _ => Problem::NotCount(text.trim().to_string()),
    })
}

/// The GPU part, in one of the two ways sources spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gpus<'a> {
    /// Whole GPUs or a share of one GPU (pods, JSON pod lists, snapshot files,
    /// ScheduleRequests); `None` when the field is not given. Both given is an error, even
    /// `whole` 0.
    WholeOrShare {
        whole: Option<Number<'a>>,
        share: Option<Number<'a>>,
    },
    /// A trace's pair: `num_gpu` devices with `milli` each. `milli` 1000 (or absent) means
    /// whole devices; less is a share, which is on exactly one device.
    PerDevice {
        num_gpu: Number<'a>,
        milli: Option<Number<'a>>,
    },
}

/// Allowed GPU models as the source wrote them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Models<'a> {
    /// Names separated by `sep`: `"A100, H100"` (annotation), `"V100M16|V100M32"` (trace).
    Separated(&'a str, char),
    /// One name per entry (JSON lists, a ScheduleRequest's `gpuModels`).
    List(&'a [String]),
}

impl Models<'_> {
    fn text(self) -> String {
        match self {
            Models::Separated(text, _) => text.trim().to_string(),
            Models::List(names) => names.join(", "),
        }
    }
}

/// Where model names go.
#[derive(Debug)]
pub enum Catalog<'c> {
    /// Interned: the catalog grows (traces, `allot plan`, the controller's copy).
    Intern(&'c mut ModelCatalog),
    /// Looked up in the cluster's catalog: a name no node has is valid and matches no node
    /// (the extender's pods).
    Lookup(&'c ModelCatalog),
}

/// What a source calls each field of a demand. Errors carry the offending field's name, and
/// messages that point at another field use its name too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldNames {
    pub cpu: &'static str,
    pub memory: &'static str,
    pub gpus: &'static str,
    pub gpu_milli: &'static str,
    pub models: &'static str,
}

/// A pod's demand as a source wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemandParts<'a> {
    pub names: FieldNames,
    pub cpu: Amount<'a>,
    pub memory: Amount<'a>,
    pub gpus: Gpus<'a>,
    /// `None` when not given: any model.
    pub models: Option<Models<'a>>,
}

/// The field of a demand an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Cpu,
    Memory,
    Gpus,
    GpuMilli,
    Models,
}

/// Why a demand is not a valid pod request: the field (and the source's name for it) and
/// what is wrong with its value. Displays as `name: problem`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct DemandError {
    pub field: Field,
    pub name: &'static str,
    pub problem: Problem,
}

impl DemandError {
    /// Bounded label for metrics, logs and events.
    pub fn reason(&self) -> &'static str {
        match (&self.problem, self.field) {
            (Problem::TooManyGpus(_), _) => "TooManyGpus",
            (Problem::ShareAndWhole { .. }, _) => "GpuAndGpuMilli",
            (_, Field::Cpu | Field::Memory | Field::Gpus) => "InvalidQuantity",
            (_, Field::GpuMilli) => "InvalidGpuMilli",
            (_, Field::Models) => "InvalidGpuModels",
        }
    }
}

/// What is wrong with a value. Messages name the value, never the field it was in (the
/// [`DemandError`] or the caller's location does that).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error(transparent)]
    Quantity(QuantityError),
    #[error("{0:?} is not a whole number >= 0")]
    NotCount(String),
    #[error("{0:?} is too large")]
    TooLarge(String),
    #[error("{0} GPUs exceed the {MAX_GPUS_PER_NODE} one node can hold")]
    TooManyGpus(u64),
    #[error(
        "{milli} is out of range; a share of one GPU is 1..999 milli (whole GPUs are asked for \
         with {whole})"
    )]
    ShareRange { milli: u64, whole: &'static str },
    #[error(
        "{milli} conflicts with {whole}: {gpus}; ask for a share of one GPU or for whole GPUs, \
         not both"
    )]
    ShareAndWhole {
        milli: u64,
        whole: &'static str,
        gpus: u64,
    },
    #[error(
        "{milli} milli is a share of one GPU, but {whole} is {gpus} (whole GPUs are 1000 milli \
         each)"
    )]
    ShareOnManyGpus {
        milli: u64,
        whole: &'static str,
        gpus: u64,
    },
    #[error("{milli} milli per GPU, but {whole} is 0")]
    ShareWithoutGpu { milli: u64, whole: &'static str },
    #[error(transparent)]
    BadModel(ProductError),
    #[error("{0:?} names no GPU model")]
    NoModel(String),
    #[error("{models:?} is set but no GPU is requested (set {whole} or {share})")]
    ModelsWithoutGpu {
        models: String,
        whole: &'static str,
        share: &'static str,
    },
    #[error("more than {MAX_MODELS} distinct GPU models")]
    TooManyModels,
}

/// Parse a demand; the first bad field (cpu, memory, GPUs, models, in that order) is the error.
pub fn parse_demand(
    parts: DemandParts<'_>,
    catalog: Catalog<'_>,
) -> Result<PodDemand, DemandError> {
    let names = parts.names;
    let cpu_milli = parts
        .cpu
        .cpu_milli()
        .map_err(|p| error(Field::Cpu, names.cpu, p))?;
    let memory_bytes = parts
        .memory
        .bytes()
        .map_err(|p| error(Field::Memory, names.memory, p))?;
    let gpu = gpu_demand(parts.gpus, &names)?;
    let models = match parts.models {
        None => ModelSet::ANY,
        Some(models) => model_set(models, gpu, &names, catalog)
            .map_err(|p| error(Field::Models, names.models, p))?,
    };
    Ok(PodDemand {
        cpu_milli,
        memory_bytes,
        gpu,
        models,
    })
}

fn error(field: Field, name: &'static str, problem: Problem) -> DemandError {
    DemandError {
        field,
        name,
        problem,
    }
}

fn gpu_demand(gpus: Gpus<'_>, names: &FieldNames) -> Result<GpuDemand, DemandError> {
    let whole_error = |p| error(Field::Gpus, names.gpus, p);
    let share_error = |p| error(Field::GpuMilli, names.gpu_milli, p);
    let whole_name = names.gpus;
    match gpus {
        Gpus::WholeOrShare { whole, share } => {
            let whole = whole.map(Number::value).transpose().map_err(whole_error)?;
            let share = share.map(Number::value).transpose().map_err(share_error)?;
            match (whole, share) {
                (Some(gpus), Some(milli)) => Err(share_error(Problem::ShareAndWhole {
                    milli,
                    whole: whole_name,
                    gpus,
                })),
                (None, Some(milli)) => shared(milli, whole_name).map_err(share_error),
                (Some(count), None) => whole_gpus(count).map_err(whole_error),
                (None, None) => Ok(GpuDemand::None),
            }
        }
        Gpus::PerDevice { num_gpu, milli } => {
            let num = num_gpu.value().map_err(whole_error)?;
            let milli = milli.map(Number::value).transpose().map_err(share_error)?;
            match (num, milli) {
                (0, None | Some(0)) => Ok(GpuDemand::None),
                (0, Some(milli)) => Err(share_error(Problem::ShareWithoutGpu {
                    milli,
                    whole: whole_name,
                })),
                (n, None | Some(1000)) => whole_gpus(n).map_err(whole_error),
                (1, Some(milli)) => shared(milli, whole_name).map_err(share_error),
                (gpus, Some(milli)) => {
                    shared(milli, whole_name).map_err(share_error)?;
                    Err(share_error(Problem::ShareOnManyGpus {
                        milli,
                        whole: whole_name,
                        gpus,
                    }))
                }
            }
        }
    }
}

fn shared(milli: u64, whole: &'static str) -> Result<GpuDemand, Problem> {
    match u32::try_from(milli) {
        Ok(m) if (1..MILLI_PER_GPU).contains(&m) => Ok(GpuDemand::Shared { milli: m }),
        _ => Err(Problem::ShareRange { milli, whole }),
    }
}

fn whole_gpus(count: u64) -> Result<GpuDemand, Problem> {
    match count {
        0 => Ok(GpuDemand::None),
        n if n <= MAX_GPUS_PER_NODE as u64 => Ok(GpuDemand::Whole { count: n as u32 }),
        n => Err(Problem::TooManyGpus(n)),
    }
}

fn model_set(
    models: Models<'_>,
    gpu: GpuDemand,
    names: &FieldNames,
    mut catalog: Catalog<'_>,
) -> Result<ModelSet, Problem> {
    if gpu == GpuDemand::None {
        return Err(Problem::ModelsWithoutGpu {
            models: models.text(),
            whole: names.gpus,
            share: names.gpu_milli,
        });
    }
    let mut set = ModelSet::EMPTY;
    let mut named = false;
    let mut add = |name: &str| -> Result<(), Problem> {
        let name = normalise(name).map_err(Problem::BadModel)?;
        named = true;
        match &mut catalog {
            Catalog::Intern(c) => {
                let id = c.intern(&name).map_err(|e| match e {
                    ModelError::BadName(e) => Problem::BadModel(e),
                    ModelError::TooMany => Problem::TooManyModels,
                })?;
                set = set.with(id);
            }
            Catalog::Lookup(c) => {
                if let Some(id) = c.lookup(&name) {
                    set = set.with(id);
                }
            }
        }
        Ok(())
    };
    match models {
        Models::Separated(text, sep) => {
            for name in text.split(sep).filter(|n| !n.trim().is_empty()) {
                add(name)?;
            }
        }
        Models::List(list) => {
            for name in list {
                add(name)?;
            }
        }
    }
    if !named {
        return Err(Problem::NoModel(models.text()));
    }
    Ok(set)
}

#[cfg(test)]
mod tests;
