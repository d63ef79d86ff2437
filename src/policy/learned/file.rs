//! The policy file: a versioned JSON document holding the learned Q-function's weights, the
//! feature list they belong to, the decision resolution, and where the weights came from
//! (traces, seeds, hyperparameters, code version), with a content hash.
//!
//! ```json
//! {"format": "allot-policy", "version": 1,
//!  "features": ["fgd_score", ...], "weights": [1.0, 0.0, ...], "levels": 100,
//!  "provenance": {"traces": ["default"], "seeds": "1-4", "phases": ["supervised", "q-learning"],
//!                 "hyperparameters": {"gamma": 0.9}, "code_version": "0.1.0", "created": "..."},
//!  "support": {"tolerance": 0.05, "cpu_only_pods": [0.05, 0.2], ...},
//!  "experts": [{"traces": ["gpushare100"], "from": "cd0c...", "weights": [...],
//!               "support": {...}}],
//!  "hash": "9f3c..."}
//! ```
//! The hash covers everything but itself; a file whose hash does not match its content is
//! refused, as is a file of another format, version or feature list. The optional `support`
//! names the workloads the weights were trained on (`support.rs`) and `experts` other weights
//! for other workloads (`experts.rs`); both were added to version 1 on 2026-12-06, files
//! without them read and hash as before, and an allot older than that refuses a file with them
//! as "not a policy file", naming the field. The optional `device_costs` (of the file or an
//! expert; `costs.rs`) was added to version 1 on 2026-12-07 the same way. Features are only ever
//! appended: a file written before one was added lists a prefix of [`NAMES`], and the features
//! it does not list read weight 0 (its hash stays the one it was written with). Features after
//! the first [`ALWAYS_LISTED`] (from `cpu_bound_change`, 2026-12-07) are listed only when the
//! file or an expert weighs them, so a file that does not reads and hashes as it did before; an
//! allot older than that refuses a file that does, naming its feature list.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::costs::DeviceCosts;
use super::features::{ALWAYS_LISTED, COUNT, NAMES};
use super::support::Support;
use crate::policy::keyed_hash;

/// The `format` field of every policy file.
pub const FORMAT: &str = "allot-policy";
/// The version this code reads and writes.
pub const VERSION: u32 = 1;
/// Decision levels when a file does not say: FGD's own resolution (its scores are 0..100).
pub const DEFAULT_LEVELS: u32 = 100;
/// Largest accepted file: a policy is a few hundred bytes; anything near this is not one.
const MAX_BYTES: u64 = 1 << 20;

/// The default policy, trained by `allot train` with the command in BENCHMARKS.md and
/// embedded in the binary as the default trace is.
pub const EMBEDDED: &str = include_str!("../../../policies/default.json");

/// Where a policy's weights came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Traces trained on.
    pub traces: Vec<String>,
    /// Training seeds (never 42-51, the evaluation seeds).
    pub seeds: String,
    /// Phases run, in order.
    pub phases: Vec<String>,
    /// Which weights were kept: the best on the validation replays (e.g. "q-learning epoch 3",
    /// or "warm start (FGD)" when no epoch beat it).
    #[serde(default)]
    pub kept: String,
    pub hyperparameters: BTreeMap<String, f64>,
    /// allot's version that trained it.
    pub code_version: String,
    /// When training finished (RFC 3339), or a note.
    pub created: String,
    /// The recorded history trained on (`allot train --history`); absent otherwise, so files
    /// trained on traces read and hash as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistorySource>,
}

/// A recorded history a policy was trained on: which directory, exactly what was read from
/// it, and how much of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySource {
    /// The directory as given to `allot train --history`.
    pub dir: String,
    /// Fingerprint of the files read (names and contents, in reading order; 32 hex digits).
    pub digest: String,
    /// The files read, in order (pod files, the in-flight file, then the node list).
    pub files: Vec<String>,
    /// Pod records read and kept.
    pub records: usize,
    /// Records skipped (truncated, clock-skewed, incomplete, duplicate).
    pub skipped: usize,
    /// Records of pods asking for GPUs.
    pub gpu_pods: usize,
    /// Records of pods the cluster bound to a node of the recorded inventory: the decisions
    /// the supervised phase learns from.
    pub decisions: usize,
    /// Nodes in the recorded inventory.
    pub nodes: usize,
    /// With `--since`/`--until`: the creation-time window trained on, `[from, until)` in Unix
    /// seconds, and how many records it left out (absent: every record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

/// A learned policy: linear Q-function weights over [`NAMES`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub format: String,
    pub version: u32,
    pub features: Vec<String>,
    pub weights: Vec<f64>,
    /// The Q-value is mapped to `floor(levels * Q)` before ties are broken, as FGD's score is.
    pub levels: u32,
    pub provenance: Provenance,
    /// The workloads it was trained on: outside them `learned` places as FGD does
    /// ([`Support`]). Absent in files written before it existed, which apply everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support: Option<Support>,
    /// Other weights for workloads outside `support`, each within its own (`experts.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub experts: Vec<Expert>,
    /// The learned per-device cost table of `device_cost_change` (`costs.rs`); absent in
    /// files without one, whose shares take FGD's device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_costs: Option<DeviceCosts>,
    /// Hex of the content hash ([`PolicyFile::content_hash`]).
    pub hash: String,
}

/// One expert: the weights of another trained policy file, and where they apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expert {
    /// The traces it was trained on (its file's provenance).
    pub traces: Vec<String>,
    /// Its file's content hash.
    pub from: String,
    /// Weights over the file's features.
    pub weights: Vec<f64>,
    pub support: Support,
    /// Its file's device cost table, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_costs: Option<DeviceCosts>,
}

/// Why a policy file cannot be used. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    // `problem`, not `source`: the message already says it, so a chain must not repeat it.
    #[error("policy file {file}: {problem}")]
    Read {
        file: String,
        problem: std::io::Error,
    },
    #[error(
        "policy file {file}: {bytes} bytes is too large for a policy file (at most {MAX_BYTES})"
    )]
    TooLarge { file: String, bytes: u64 },
    #[error("policy file {file}: not a policy file: {problem}")]
    Parse { file: String, problem: String },
    #[error("policy file {file}: {problem}")]
    Invalid { file: String, problem: String },
}

impl PolicyFileError {
    /// Bounded label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            PolicyFileError::Read { .. } => "Unreadable",
            PolicyFileError::TooLarge { .. } => "TooLarge",
            PolicyFileError::Parse { .. } => "NotAPolicyFile",
            PolicyFileError::Invalid { .. } => "Invalid",
        }
    }
}

impl PolicyFile {
    /// FGD as a learned policy: weight 1 on FGD's score, 0 elsewhere (the warm start).
    pub fn fgd_start(provenance: Provenance) -> Self {
        let mut weights = vec![0.0; COUNT];
        weights[0] = 1.0;
        Self::new(weights, DEFAULT_LEVELS, provenance)
    }

    /// A sealed file (hash filled in) for `weights` over [`NAMES`].
    pub fn new(weights: Vec<f64>, levels: u32, provenance: Provenance) -> Self {
        let mut file = PolicyFile {
            format: FORMAT.to_string(),
            version: VERSION,
            features: NAMES.iter().map(|n| n.to_string()).collect(),
            weights,
            levels,
            provenance,
            support: None,
            experts: Vec::new(),
            device_costs: None,
            hash: String::new(),
        };
        file.hash = file.content_hash();
        file
    }

    /// The same file limited to `support` (sealed again).
    pub fn with_support(mut self, support: Option<Support>) -> Self {
        self.support = support;
        self.hash = self.content_hash();
        self
    }

    /// The hash of everything but `hash` (its canonical JSON), as 16 hex digits.
    pub fn content_hash(&self) -> String {
        let mut unsealed = self.written();
        unsealed.hash = String::new();
        let text = serde_json::to_string(&unsealed).unwrap_or_default();
        format!("{:016x}", keyed_hash(0, &text))
    }

    /// Parse and check a policy file's text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, PolicyFileError> {
        let parsed: PolicyFile =
            serde_json::from_str(text).map_err(|e| PolicyFileError::Parse {
                file: file.to_string(),
                problem: e.to_string(),
            })?;
        let mut parsed = parsed;
        parsed.check().map_err(|problem| PolicyFileError::Invalid {
            file: file.to_string(),
            problem,
        })?;
        // Features added after the file was written carry no weight.
        for name in &NAMES[parsed.features.len()..] {
            parsed.features.push(name.to_string());
            parsed.weights.push(0.0);
        }
        for e in &mut parsed.experts {
            if e.weights.len() < COUNT {
                e.weights.resize(COUNT, 0.0);
            }
        }
        parsed
            .check_experts()
            .map_err(|problem| PolicyFileError::Invalid {
                file: file.to_string(),
                problem,
            })?;
        Ok(parsed)
    }

    /// Read a policy file from disk (at most 1 MiB).
    pub fn load(path: &Path) -> Result<Self, PolicyFileError> {
        let file = path.display().to_string();
        let read = |problem| PolicyFileError::Read {
            file: file.clone(),
            problem,
        };
        let bytes = std::fs::metadata(path).map_err(read)?.len();
        if bytes > MAX_BYTES {
            return Err(PolicyFileError::TooLarge { file, bytes });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Self::parse(&file, &text)
    }

    /// The policy embedded in the binary.
    pub fn embedded() -> Result<Self, PolicyFileError> {
        Self::parse("(embedded policies/default.json)", EMBEDDED)
    }

    /// Write the file as pretty JSON.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(&self.written()).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }

    /// The file as written and hashed: features after the first [`ALWAYS_LISTED`] are listed
    /// only up to the last that carries weight (here or in an expert), so a file that weighs
    /// none of them reads, writes and hashes as it did before they were added.
    fn written(&self) -> PolicyFile {
        let weighed = |w: &[f64]| w.iter().rposition(|&v| v != 0.0).map_or(0, |i| i + 1);
        let n = self
            .experts
            .iter()
            .map(|e| weighed(&e.weights))
            .fold(weighed(&self.weights), usize::max)
            .max(self.features.len().min(ALWAYS_LISTED));
        let mut out = self.clone();
        out.features.truncate(n);
        out.weights.truncate(n);
        for e in &mut out.experts {
            e.weights.truncate(n);
        }
        out
    }

    fn check(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("format is {:?}, not {FORMAT:?}", self.format));
        }
        if self.version != VERSION {
            return Err(format!(
                "version {} is not supported by this allot (it reads version {VERSION})",
                self.version
            ));
        }
        if self.features.is_empty()
            || self.features.len() > COUNT
            || self.features != NAMES[..self.features.len()]
        {
            return Err(format!(
                "its features ({}) are not this allot's ({}, or the first of them in that order)",
                self.features.join(", "),
                NAMES.join(", ")
            ));
        }
        weights_fit(&self.weights, self.features.len())?;
        if !(1..=1_000_000).contains(&self.levels) {
            return Err(format!("levels {} is outside 1..=1000000", self.levels));
        }
        if let Some(support) = &self.support {
            support.check()?;
        }
        if let Some(costs) = &self.device_costs {
            costs.check()?;
        }
        let expected = self.content_hash();
        if self.hash != expected {
            return Err(format!(
                "hash {} does not match its content ({expected}): the file was changed after \
                 it was written",
                self.hash
            ));
        }
        Ok(())
    }
}

impl PolicyFile {
    /// What is wrong with the file's experts, if anything (after its own features were read).
    fn check_experts(&self) -> Result<(), String> {
        for (k, e) in self.experts.iter().enumerate() {
            weights_fit(&e.weights, self.features.len()).map_err(|p| format!("expert {k}: {p}"))?;
            e.support.check().map_err(|p| format!("expert {k}: {p}"))?;
            if let Some(costs) = &e.device_costs {
                costs.check().map_err(|p| format!("expert {k}: {p}"))?;
            }
        }
        Ok(())
    }
}

/// Whether `weights` are one finite number per feature of `features`.
pub(super) fn weights_fit(weights: &[f64], features: usize) -> Result<(), String> {
    if weights.len() != features {
        return Err(format!("{} weights for {features} features", weights.len()));
    }
    match weights.iter().position(|w| !w.is_finite()) {
        Some(i) => Err(format!("weight of {} is not a finite number", NAMES[i])),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
