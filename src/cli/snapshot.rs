//! `allot snapshot`: the live cluster as a snapshot file, for `allot plan --snapshot`,
//! `allot extender --snapshot` and what-if questions offline. It reads what the extender
//! reads (nodes, bound pods with their devices, GPU models), waits for one full list of each,
//! and writes JSON. Objects allot cannot use are listed on stderr and left out.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
#[command(after_help = "\
The file lists every node (capacity, GPUs, model) and every pod bound to a node with its demand
and the GPUs it holds, in the format --snapshot reads. Readiness, telemetry and GPU health are
not part of it: its nodes count as healthy.")]
pub struct SnapshotArgs {
    /// Write the snapshot into this file instead of stdout.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Give up when the cluster has not been listed in this many seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout_seconds: u64,
}

#[cfg(feature = "k8s")]
pub fn run(args: &SnapshotArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    use std::time::Duration;

    use anyhow::Context as _;

    use crate::live::{Caches, Freshness, StalePolicy};

    let runtime = crate::process::runtime()?;
    let live = runtime.block_on(async {
        let client = crate::process::kube_client().await?;
        let caches = Caches::start(client);
        let limit = Duration::from_secs(args.timeout_seconds);
        tokio::time::timeout(limit, caches.wait_synced())
            .await
            .map_err(|_| {
                anyhow::anyhow!("the cluster was not listed within {limit:?} (--timeout-seconds)")
            })??;
        let freshness = Freshness::now(Duration::from_secs(60), StalePolicy::FailOpen);
        anyhow::Ok(caches.snapshot(&freshness))
    })?;
    for p in &live.problems {
        eprintln!("left out {}: {}", p.object, p.message);
    }
    let file = crate::snapshot::to_file(&live.snapshot);
    let mut text = serde_json::to_string_pretty(&file)?;
    text.push('\n');
    match &args.out {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote {}: {} nodes, {} bound pods",
                path.display(),
                file.nodes.len(),
                file.pods.len()
            );
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "k8s"))]
pub fn run(_: &SnapshotArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this allot was built without the `k8s` feature; rebuild with default features")
}
