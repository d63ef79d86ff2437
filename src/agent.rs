//! `allot agent`: runs on every node (a DaemonSet) and keeps that node's `NodeTelemetry` true.
//! Every `--sample-seconds`: `host` (CPU, memory from /proc) and `gpu` (NVML) readings ->
//! `telemetry` (the status) -> `metrics` (/metrics) -> `change` (is a write due: first,
//! heartbeat, significant change, retry) -> `publish` (server-side apply). The loop lives in
//! `worker`. Exits non-zero only when it cannot work at all (no node name, bad flags, no
//! cluster configuration, port taken); API errors, missing RBAC or a missing Node are logged
//! with what to fix and retried with back-off.

mod change;
mod gpu;
mod host;
mod metrics;
pub mod plugin;
mod publish;
mod telemetry;
#[cfg(test)]
mod testing;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

pub use change::{Change, Schedule, Thresholds, Why, significant};
pub use gpu::GpuSampler;
pub use host::{HostSample, HostSampler, parse_meminfo, parse_stat};
pub use metrics::Metrics;
pub use publish::{FIELD_MANAGER, PublishError};
pub use telemetry::{AGENT_VERSION, Allocatable};

/// Longest sample, heartbeat and minimum-write interval an agent takes: a day. Every sum the
/// agent makes of these intervals (an `Instant` plus a heartbeat, the stall limit of three
/// samples plus four API calls) stays far from overflow below it, and telemetry written less
/// often than daily is stale to every reader anyway.
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// Validated settings of one agent (`allot agent`'s flags map onto them). `sample` is at
/// least a second, `heartbeat` at least `sample`, and all three intervals at most
/// [`MAX_INTERVAL`]; `jitter` is in `[0, 0.5]`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node_name: String,
    pub listen: SocketAddr,
    pub sample: Duration,
    pub heartbeat: Duration,
    pub jitter: f64,
    pub min_write: Duration,
    pub thresholds: Thresholds,
}

/// Where the agent's readings come from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The kernel's process information (the host's /proc, mounted into the container).
    pub proc_dir: PathBuf,
    /// The NVML library to load; `None`: the system's libnvidia-ml.so.1.
    pub nvml_lib: Option<PathBuf>,
}

/// How long `/healthz` waits for a sample to end before it fails: a sample may wait on three
/// API calls (Node, object, status), each bounded by [`publish::CALL_TIMEOUT`].
fn stall_limit(sample: Duration) -> Duration {
    sample
        .saturating_mul(3)
        .saturating_add(publish::CALL_TIMEOUT.saturating_mul(4))
}

/// The interval rules of [`Settings`] (the flags are checked before, naming the flag; this
/// guards other callers from a panic in the loop's time arithmetic or in `tokio::time`).
fn check(settings: &Settings) -> anyhow::Result<()> {
    anyhow::ensure!(
        !settings.sample.is_zero(),
        "the sample interval must not be zero"
    );
    for (what, d) in [
        ("sample", settings.sample),
        ("heartbeat", settings.heartbeat),
        ("minimum write", settings.min_write),
    ] {
        anyhow::ensure!(
            d <= MAX_INTERVAL,
            "the {what} interval ({} s) is longer than a day ({} s)",
            d.as_secs(),
            MAX_INTERVAL.as_secs()
        );
    }
    Ok(())
}

/// Run the agent until SIGTERM or ctrl-c; with `device_plugin`, serve kubelet's device plugin
/// API too.
pub fn run(
    settings: Settings,
    sources: Sources,
    device_plugin: Option<plugin::Options>,
) -> anyhow::Result<ExitCode> {
    crate::process::init_tracing();
    check(&settings)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let client = crate::process::kube_client().await?;
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding --listen {}", settings.listen))?;
        let metrics = Arc::new(Metrics::new());
        metrics.set_stall_limit(stall_limit(settings.sample));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut http_stop = stop_rx.clone();
        let server = axum::serve(listener, metrics::router(metrics.clone()))
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            });
        let server = tokio::spawn(async move { server.await });
        tracing::info!(
            node = %settings.node_name,
            listen = %settings.listen,
            sample_seconds = settings.sample.as_secs(),
            heartbeat_seconds = settings.heartbeat.as_secs(),
            "agent starting"
        );
        let mut worker = worker::Worker::new(
            &settings,
            client.clone(),
            HostSampler::new(&sources.proc_dir),
            GpuSampler::new(sources.nvml_lib),
            metrics.clone(),
        );
        let plugin_task = device_plugin.map(|options| {
            tracing::info!(dir = %options.dir.display(), share_slots = options.share_slots, "device plugin starting");
            let (tx, rx) = tokio::sync::watch::channel(plugin::Inventory::default());
            worker.send_inventory(tx);
            let (node, stop) = (settings.node_name.clone(), stop_rx.clone());
            tokio::spawn(async move {
                plugin::run(options, client, &node, rx, metrics.plugin.clone(), stop).await;
            })
        });
        let stopped = worker.run(stop_rx);
        tokio::pin!(stopped);
        tokio::select! {
            () = &mut stopped => {}
            () = crate::process::shutdown_signal() => {
                tracing::info!("stopping");
                let _ = stop_tx.send(true);
                stopped.await;
            }
        }
        let _ = stop_tx.send(true);
        if let Some(task) = plugin_task {
            let _ = task.await;
        }
        match server.await {
            Ok(Ok(())) => Ok(ExitCode::SUCCESS),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("serving /metrics")),
            Err(e) => Err(anyhow::Error::new(e).context("the /metrics server task")),
        }
    })
}

#[cfg(test)]
mod tests;
