//! Where `allot simulate` reads its trace from: `--pods` (a trace NAME, a pod list file, or a
//! directory recorded by `allot extender --history-dir`), `--nodes` and `--trace-dir`; the
//! warnings of a recorded history (rows skipped, and why) go to stderr.

use std::path::{Path, PathBuf};

use super::super::usage::usage;
use super::SimulateArgs;
use crate::sim::bundled::LoadedTrace;
use crate::sim::load_trace;
use crate::sim::trace::history::dir::is_history_dir;

/// The trace of `--pods`/`--nodes`/`--trace-dir`, its warnings (rows of a recorded history
/// skipped) printed. A folder given as a path must be a recorded history (a bare NAME is a
/// trace name, even if a folder is so named).
pub(super) fn load(args: &SimulateArgs) -> anyhow::Result<LoadedTrace> {
    let as_path = args.pods.contains('/') || args.pods.contains(std::path::MAIN_SEPARATOR);
    let dir = Path::new(&args.pods);
    if as_path && dir.is_dir() && !is_history_dir(dir) {
        usage!(
            "--pods {}: is a directory but not a recorded history (no pods-*.csv or open.csv); \
             give a pod list file (CSV or JSON), a trace NAME (with --trace-dir for the \
             folder), or an `allot extender --history-dir` directory",
            args.pods
        );
    }
    let mut dirs = args.trace_dir.clone();
    dirs.push(PathBuf::from("traces/openb"));
    let trace = load_trace(&args.pods, args.nodes.as_deref(), &dirs)?;
    for note in &trace.notes {
        eprintln!("{note}");
    }
    Ok(trace)
}
