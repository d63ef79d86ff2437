//! `allot train --history DIR`: a recorded history directory as the one trace to train on,
//! with the cluster's own decisions for the supervised phase, and the provenance that names
//! it. Read by the same reader as `allot simulate --pods DIR/` (`sim::bundled::load_history`).

use std::path::Path;

use crate::cli::simulate::keep_window;
use crate::cli::usage::usage;
use crate::learn::Trace;
use crate::learn::recorded::Decisions;
use crate::policy::learned::HistorySource;
use crate::sim::bundled::{keep, load_history};
use crate::sim::trace::history::nodes_of_rows;
use crate::sim::trace::window::Window;

/// The history in `dir` as a training trace, and what the policy file's provenance says of it;
/// with `times` (for --dynamic) the trace keeps every pod's recorded arrival and departure, so
/// the dynamic replay replays the cluster's own departures.
/// `window` (`--since`/`--until`) keeps the pods created inside it; the count left out is
/// printed and named in the provenance.
/// Bad input (no such directory, nothing recorded, no GPU pods, a newer format version, a
/// malformed row) is an error naming the directory or file; what a killed recorder leaves
/// behind is skipped, and the counts are printed.
pub fn load(dir: &Path, window: &Window, times: bool) -> anyhow::Result<(Trace, HistorySource)> {
    if !dir.is_dir() {
        usage!(
            "--history {}: not a directory (pass the directory `allot extender --history-dir` \
             records into)",
            dir.display()
        );
    }
    let mut t = load_history(dir, None)?;
    for note in &t.notes {
        eprintln!("{note}");
    }
    let shown = format!("--history {}", dir.display());
    let mut rows = t.history.as_ref().map(|r| nodes_of_rows(&r.text));
    let kept = keep_window(&mut t, window, &shown)?;
    if let (Some(kept), Some(rows)) = (&kept, rows.as_mut()) {
        *rows = keep(std::mem::take(rows), &kept.mask);
    }
    let (Some(recorded), Some(rows)) = (&t.history, rows) else {
        usage!("--history {}: not a recorded history", dir.display());
    };
    let lifetimes = t.lifetimes()?.unwrap_or_default();
    let created: Vec<u64> = lifetimes.iter().map(|l| l.created).collect();
    let pods = &t.pods.pods;
    let gpu_pods = pods.iter().filter(|p| p.needs_gpu()).count();
    if gpu_pods == 0 {
        usage!(
            "--history {}: no GPU pods among its {} record(s) ({} skipped): there is nothing \
             to learn from",
            dir.display(),
            recorded.rows(),
            recorded.skipped.total()
        );
    }
    let decisions = Decisions::of_rows(&t.cluster, pods, &created, &rows);
    let mut files: Vec<String> = recorded.files.iter().map(|f| name(f)).collect();
    files.extend(recorded.nodes.as_deref().map(name));
    let source = HistorySource {
        dir: dir.display().to_string(),
        digest: recorded.digest.clone(),
        files,
        records: recorded.rows(),
        skipped: recorded.skipped.total(),
        gpu_pods,
        decisions: decisions.placed(),
        nodes: t.cluster.len(),
        window: kept.map(|k| format!("{}: {} record(s) left out", k.describe(), k.left_out)),
    };
    eprintln!(
        "history {}: {} record(s) from {} file(s) (digest {}), {} GPU pod(s), {} decision(s) \
         on {} node(s); {} skipped",
        source.dir,
        source.records,
        source.files.len(),
        source.digest,
        source.gpu_pods,
        source.decisions,
        source.nodes,
        source.skipped
    );
    let target = t.workload().target();
    let trace = Trace {
        name: t.name.clone(),
        pods: pods.to_vec(),
        cluster: t.cluster,
        target,
        recorded: Some(decisions),
        lifetimes: times.then_some(lifetimes),
    };
    Ok((trace, source))
}

fn name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
