//! Checkpoints of `allot train`: the training state, saved at the start of every phase, after
//! every supervised epoch and after every search generation, so that `allot train --resume`
//! continues a killed run to the same policy file an uninterrupted run writes.
//!
//! Q-learning's experience-replay buffer (up to 200 000 transitions) is not saved: a run killed
//! in that phase restarts the phase from the state saved at its start. Numbers are written as
//! strings in Rust's shortest exact form, so a resumed run continues from bit-identical weights
//! (a JSON number may be read back one unit in the last place off).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod stored;

use super::search::{Search, SearchState};
use super::setup::hyperparameters;
use super::{CurvePoint, Options, Trace};
use crate::policy::learned::features::NAMES;
use crate::rng::Rng;
use stored::Stored;

/// The `format` field of every checkpoint.
pub const FORMAT: &str = "allot-train-checkpoint";
/// The layout version this allot writes and reads.
pub const VERSION: u32 = 1;
/// A checkpoint holds a few weight vectors and one curve row per epoch: kilobytes. A file
/// far larger is not one, and is refused before it is read into memory.
const MAX_BYTES: u64 = 16 << 20;

pub use super::setup::Phase;

/// The best weights on the validation replays so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Best {
    /// The search objective over the validation replays: their mean unallocated GPU %, plus
    /// the per-trace hinge against FGD with `--search-hinge` (`search::Objective`).
    pub score: f64,
    pub weights: Vec<f64>,
    /// Where they came from (the policy file's `provenance.kept`).
    pub kept: String,
}

/// What every phase carries forward: the current weights, the minibatch RNG, the best so far
/// and the curve rows so far.
#[derive(Debug, Clone)]
pub struct State {
    pub weights: Vec<f64>,
    pub rng: Rng,
    pub best: Best,
    pub curves: Vec<CurvePoint>,
}

/// One checkpoint: `done` epochs (generations) of `phase` are complete, and every earlier
/// phase. A Q-learning checkpoint is always taken at the phase's start (`done` 0).
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The training configuration it belongs to, as (setting, value) pairs.
    pub config: Vec<(String, String)>,
    pub phase: Phase,
    pub done: usize,
    /// Training time before the checkpoint, over every resumed run.
    pub elapsed: Duration,
    pub state: State,
    /// The search's state (in the search phase only).
    pub search: Option<SearchState>,
}

/// Why a checkpoint cannot be resumed from. Messages name the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error(
        "checkpoint {file} does not exist: nothing to resume (run without --resume to start afresh)"
    )]
    Missing { file: String },
    #[error("checkpoint {file}: {problem}")]
    Read { file: String, problem: String },
    #[error("checkpoint {file} is corrupt or not an allot checkpoint: {problem}")]
    Corrupt { file: String, problem: String },
    #[error(
        "checkpoint {file} belongs to another training run: {setting} is {theirs} there and \
         {ours} here (resume with the same settings, or start afresh without --resume)"
    )]
    Mismatch {
        file: String,
        setting: String,
        theirs: String,
        ours: String,
    },
}

impl CheckpointError {
    /// Bounded label for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            CheckpointError::Missing { .. } => "Missing",
            CheckpointError::Read { .. } => "Unreadable",
            CheckpointError::Corrupt { .. } => "Corrupt",
            CheckpointError::Mismatch { .. } => "Mismatch",
        }
    }
}

/// The checkpoint beside a policy file: `<output>.checkpoint.json`.
pub fn default_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_os_string();
    name.push(".checkpoint.json");
    PathBuf::from(name)
}

/// Hyperparameters set by an `allot train` flag of the same name (the rest are fixed).
const FLAGS: [&str; 9] = [
    "gamma",
    "learning_rate",
    "supervised_epochs",
    "epochs",
    "seed",
    "search_generations",
    "search_population",
    "search_elite",
    "search_sigma",
];

/// Everything a run's result depends on, as (setting, value) pairs; settings with a flag are
/// named by it. The thread count is not among them: results do not depend on it.
pub fn config(
    traces: &[Trace],
    seeds: &[u64],
    validation: &[u64],
    opts: &Options,
) -> Vec<(String, String)> {
    let join = |s: &[u64]| s.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let names: Vec<&str> = traces.iter().map(|t| t.name.as_str()).collect();
    let mut out = vec![
        (
            "allot version".to_string(),
            env!("CARGO_PKG_VERSION").into(),
        ),
        ("features".into(), NAMES.join(",")),
        ("--pods".into(), names.join(",")),
    ];
    for t in traces {
        // The trace's content, not only its name: a changed file is another run.
        let mut text = format!("{:?}|{:?}|{:?}", t.cluster, t.pods, t.target);
        if let Some(d) = &t.recorded {
            text += &format!("|{d:?}");
        }
        if let Some(l) = &t.lifetimes {
            text += &format!("|{l:?}");
        }
        let what = format!(
            "{} nodes, {} pods, fingerprint {:016x}",
            t.cluster.nodes().len(),
            t.pods.len(),
            fnv1a(text.as_bytes())
        );
        out.push((format!("trace {}", t.name), what));
    }
    out.push(("--seeds".into(), join(seeds)));
    out.push(("--validation-seeds".into(), join(validation)));
    for (name, value) in hyperparameters(opts) {
        let setting = if FLAGS.contains(&name) {
            format!("--{}", name.replace('_', "-"))
        } else {
            name.to_string()
        };
        out.push((setting, value.to_string()));
    }
    out.push(("--search-prices".into(), opts.search.prices.to_string()));
    out.push(("--search-whole".into(), opts.search.whole.to_string()));
    if let Some(f) = &opts.start {
        out.push(("--policy-file".into(), f.hash.clone()));
    }
    if let Some(f) = &opts.search.from {
        out.push(("--search-from".into(), f.hash.clone()));
    }
    // Named only when set, so checkpoints of searches without them still resume.
    for (name, value) in opts.search.extra_hyperparameters() {
        if !matches!(name.as_str(), "search_prices" | "search_whole") {
            out.push((format!("--{}", name.replace('_', "-")), value.to_string()));
        }
    }
    out.push(("buffer".into(), opts.buffer.to_string()));
    let keep = if opts.keep_last { "last" } else { "best" };
    out.push(("--keep".into(), keep.into()));
    out
}

/// The first setting that differs between a checkpoint's configuration (`theirs`) and this
/// run's (`ours`), as an error naming `file`.
pub fn check_config(
    file: &str,
    theirs: &[(String, String)],
    ours: &[(String, String)],
) -> Result<(), CheckpointError> {
    let missing = "(not set)".to_string();
    let find = |list: &[(String, String)], name: &str| {
        list.iter()
            .find(|(n, _)| n == name)
            .map_or(missing.clone(), |(_, v)| v.clone())
    };
    for (name, _) in ours.iter().chain(theirs) {
        let (t, o) = (find(theirs, name), find(ours, name));
        if t != o {
            return Err(CheckpointError::Mismatch {
                file: file.to_string(),
                setting: name.clone(),
                theirs: t,
                ours: o,
            });
        }
    }
    Ok(())
}

/// Write `c` to `path` atomically: a temporary file beside it, flushed, then renamed over it,
/// so a run killed mid-write leaves the previous checkpoint whole.
pub fn save(path: &Path, c: &Checkpoint) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("writing checkpoint {}: {e}", path.display());
    let text = serde_json::to_string_pretty(&Stored::from(c)).map_err(|e| e.to_string())?;
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp).map_err(fail)?;
    f.write_all(text.as_bytes()).map_err(fail)?;
    f.write_all(b"\n").map_err(fail)?;
    f.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// Read the checkpoint at `path` and check it belongs to `config` (from [`config`]) and fits
/// `opts`' phases.
pub fn load(
    path: &Path,
    config: &[(String, String)],
    opts: &Options,
) -> Result<Checkpoint, CheckpointError> {
    let file = path.display().to_string();
    let read = |e: std::io::Error| CheckpointError::Read {
        file: file.clone(),
        problem: e.to_string(),
    };
    let bytes = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CheckpointError::Missing { file });
        }
        Err(e) => return Err(read(e)),
    };
    let corrupt = |problem: String| CheckpointError::Corrupt {
        file: file.clone(),
        problem,
    };
    if bytes > MAX_BYTES {
        return Err(corrupt(format!("{bytes} bytes (at most {MAX_BYTES})")));
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    if value["format"] != FORMAT {
        return Err(corrupt(format!(
            "format is {}, not {FORMAT:?}",
            value["format"]
        )));
    }
    if value["version"] != VERSION {
        return Err(corrupt(format!(
            "version {} is not the one this allot reads ({VERSION})",
            value["version"]
        )));
    }
    let stored: Stored = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
    let theirs: Vec<(String, String)> = stored
        .config
        .iter()
        .map(|s| (s.setting.clone(), s.value.clone()))
        .collect();
    check_config(&file, &theirs, config)?;
    let c = stored.into_checkpoint(theirs).map_err(corrupt)?;
    let (phase, done) = (c.phase, c.done);
    let bound = match phase {
        Phase::Supervised => opts.supervised_epochs,
        Phase::QLearning => 0,
        Phase::Search => opts.search.generations,
    };
    let runs = match phase {
        Phase::Supervised => opts.supervised_epochs > 0,
        Phase::QLearning => opts.epochs > 0,
        Phase::Search => opts.search.generations > 0,
    };
    if !runs || done > bound {
        return Err(corrupt(format!(
            "{} epoch {done} is past this run's end",
            phase.name()
        )));
    }
    if (phase == Phase::Search) != c.search.is_some() {
        return Err(corrupt(
            "search state present outside the search, or missing in it".into(),
        ));
    }
    if let Some(s) = &c.search {
        Search::restore(s.clone(), &opts.search).map_err(corrupt)?;
    }
    Ok(c)
}

/// FNV-1a: a stable 64-bit fingerprint (the std hasher may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
