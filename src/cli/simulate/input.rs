//! Where `allot simulate` reads its trace from: `--pods` (a trace NAME, a pod list file, or a
//! directory recorded by `allot extender --history-dir`), `--nodes` and `--trace-dir`; the
//! warnings of a recorded history (rows skipped, and why) go to stderr; then `--since` and
//! `--until` keep the pods created in their window.

use std::path::{Path, PathBuf};

use super::super::usage::usage;
use super::SimulateArgs;
use crate::sim::bundled::LoadedTrace;
use crate::sim::load_trace;
use crate::sim::trace::history::dir::is_history_dir;
use crate::sim::trace::window::{Kept, Window};

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
    let mut trace = trace;
    let window = Window {
        since: args.since,
        until: args.until,
    };
    keep_window(&mut trace, &window, &format!("--pods {}", args.pods))?;
    Ok(trace)
}

/// Keep the pods of `trace` (`shown`: the flag and value it came from) created inside
/// `window`, saying how many were left out (`None`: no window given). A trace without creation
/// times, or a window without a GPU pod, is a usage error.
pub(crate) fn keep_window(
    trace: &mut LoadedTrace,
    window: &Window,
    shown: &str,
) -> anyhow::Result<Option<Kept>> {
    if window.is_open() {
        return Ok(None);
    }
    let before = trace.pods.pods.len();
    let Some(kept) = trace.keep_window(window)? else {
        usage!(
            "--since/--until: the pods of {shown} have no creation_time (a recorded history or \
             an openb CSV list has it; JSON lists and the multigpu traces do not)"
        );
    };
    let gpu = trace.pods.pods.iter().filter(|p| p.needs_gpu()).count();
    eprintln!(
        "window {}: {} of {before} pods kept, {} left out (creation_time outside)",
        kept.describe(),
        before - kept.left_out,
        kept.left_out
    );
    if gpu == 0 {
        usage!(
            "--since/--until: no GPU pod of {shown} was created in the window {} ({} of {before} \
             pods left out); widen it",
            kept.describe(),
            kept.left_out
        );
    }
    Ok(Some(kept))
}
