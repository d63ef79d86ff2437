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
mod publish;
mod telemetry;
#[cfg(test)]
mod testing;
mod worker;

use std::net::SocketAddr;
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

use crate::cli::AgentArgs;

/// Validated settings of one agent.
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

/// Check the flags; the error names the flag and what is wrong with it.
pub fn settings(args: &AgentArgs) -> Result<Settings, String> {
    let node_name = args
        .node_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .ok_or(
            "no node name: pass --node-name or set NODE_NAME (the downward API's spec.nodeName)",
        )?;
    let listen =
        crate::process::listen_address("--listen", &args.listen).map_err(|e| e.to_string())?;
    if args.sample_seconds == 0 {
        return Err("--sample-seconds must be at least 1".into());
    }
    if args.heartbeat_seconds < args.sample_seconds {
        return Err(format!(
            "--heartbeat-seconds ({}) must be at least --sample-seconds ({})",
            args.heartbeat_seconds, args.sample_seconds
        ));
    }
    if !(0.0..=0.5).contains(&args.heartbeat_jitter) {
        return Err(format!(
            "--heartbeat-jitter {} must be between 0 and 0.5",
            args.heartbeat_jitter
        ));
    }
    for (flag, v) in [
        ("--change-cpu-fraction", args.change_cpu_fraction),
        ("--change-memory-fraction", args.change_memory_fraction),
        (
            "--change-gpu-memory-fraction",
            args.change_gpu_memory_fraction,
        ),
        ("--change-power-fraction", args.change_power_fraction),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(format!("{flag} {v} must be a fraction between 0 and 1"));
        }
    }
    Ok(Settings {
        node_name,
        listen,
        sample: Duration::from_secs(args.sample_seconds),
        heartbeat: Duration::from_secs(args.heartbeat_seconds),
        jitter: args.heartbeat_jitter,
        min_write: Duration::from_secs(args.min_write_seconds),
        thresholds: Thresholds {
            cpu_fraction: args.change_cpu_fraction,
            memory_fraction: args.change_memory_fraction,
            gpu_util_points: args.change_gpu_util_points,
            gpu_memory_fraction: args.change_gpu_memory_fraction,
            temperature_celsius: args.change_temperature_celsius,
            power_fraction: args.change_power_fraction,
        },
    })
}

/// Run the agent until SIGTERM or ctrl-c.
pub fn run(args: &AgentArgs) -> anyhow::Result<ExitCode> {
    crate::process::init_tracing();
    let settings = match settings(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("allot agent: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let client = kube::Client::try_default().await.context(
            "no cluster configuration: set KUBECONFIG or run in a pod with a service account",
        )?;
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding --listen {}", settings.listen))?;
        let metrics = Arc::new(Metrics::new());
        // A sample may wait on three API calls (Node, object, status), each bounded.
        metrics.set_stall_limit(settings.sample * 3 + publish::CALL_TIMEOUT * 4);
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
        let worker = worker::Worker::new(
            &settings,
            client,
            HostSampler::new(&args.proc_dir),
            GpuSampler::new(args.nvml_lib.clone()),
            metrics,
        );
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
        match server.await {
            Ok(Ok(())) => Ok(ExitCode::SUCCESS),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("serving /metrics")),
            Err(e) => Err(anyhow::Error::new(e).context("the /metrics server task")),
        }
    })
}

#[cfg(test)]
mod tests;
