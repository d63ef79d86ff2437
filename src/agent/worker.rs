//! The agent's loop: sample, export, and write when the [`Schedule`] says so. One task, one
//! sample at a time; an API call that fails or hangs (bounded by `publish::CALL_TIMEOUT`)
//! delays only the write, never sampling or /metrics for longer than that. While the API
//! server is away the newest status is kept and written whole once it is back, so an outage
//! loses history between heartbeats (as any heartbeat would) but never the current state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use k8s_openapi::jiff::Timestamp;
use kube::Client;

use super::change::{Schedule, Thresholds, significant};
use super::gpu::GpuSampler;
use super::host::{HostSample, HostSampler};
use super::metrics::Metrics;
use super::plugin::Inventory;
use super::publish::Publisher;
use super::{Settings, telemetry};
use crate::crd::{GpuHealth, NodeTelemetryStatus};
use crate::rng::Rng;

#[derive(Debug)]
pub struct Worker {
    node_name: String,
    sample: std::time::Duration,
    thresholds: Thresholds,
    host: HostSampler,
    gpus: GpuSampler,
    publisher: Publisher,
    schedule: Schedule,
    metrics: Arc<Metrics>,
    rng: Rng,
    last_host: HostSample,
    last_cpu: u64,
    host_error: Option<String>,
    /// The status as last written (heartbeat time aside).
    written: Option<NodeTelemetryStatus>,
    /// The reason of the last failed write, to log a repeated one less loudly.
    last_failure: Option<&'static str>,
    /// Health of each GPU (by index) at the previous sample, to log transitions once.
    health: BTreeMap<u32, GpuHealth>,
    /// The device plugin's view of the GPUs, sent when it changes.
    inventory: Option<tokio::sync::watch::Sender<Inventory>>,
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn unit(rng: &mut Rng) -> f64 {
    // 53 random bits as a fraction in [0, 1).
    #[allow(clippy::cast_precision_loss)]
    let x = (rng.next_u64() >> 11) as f64;
    x / (1u64 << 53) as f64
}

impl Worker {
    pub fn new(
        settings: &Settings,
        client: Client,
        host: HostSampler,
        gpus: GpuSampler,
        metrics: Arc<Metrics>,
    ) -> Self {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id());
        Self {
            node_name: settings.node_name.clone(),
            sample: settings.sample,
            thresholds: settings.thresholds,
            host,
            gpus,
            publisher: Publisher::new(client, &settings.node_name),
            schedule: Schedule::new(settings.heartbeat, settings.jitter, settings.min_write),
            metrics,
            rng: Rng::new(seed),
            last_host: HostSample {
                cpu_used_milli: None,
                memory_used_bytes: 0,
            },
            last_cpu: 0,
            host_error: None,
            written: None,
            last_failure: None,
            health: BTreeMap::new(),
            inventory: None,
        }
    }

    /// Also send every change of the GPUs' identity, memory or health to `inventory` (the
    /// device plugin's ListAndWatch).
    pub fn send_inventory(&mut self, inventory: tokio::sync::watch::Sender<Inventory>) {
        self.inventory = Some(inventory);
    }

    /// Loop until `stop` turns true.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(self.sample);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stopped(&mut stop) => return,
            }
            self.tick(Instant::now()).await;
            self.metrics.ticked();
        }
    }

    fn sample_host(&mut self) -> HostSample {
        match self.host.sample() {
            Ok(s) => {
                self.host_error = None;
                self.last_host = s;
                s
            }
            Err(e) => {
                let message = e.to_string();
                if self.host_error.as_deref() != Some(&message) {
                    tracing::warn!(error = %message, "host CPU/memory unreadable; repeating the last reading");
                    self.host_error = Some(message);
                }
                self.last_host
            }
        }
    }

    /// Log each GPU whose health changed since the previous sample.
    fn log_health(&mut self, status: &NodeTelemetryStatus) {
        for g in &status.gpus {
            let before = self.health.insert(g.index, g.health);
            if before == Some(g.health) {
                continue;
            }
            let reason = g.reason.as_deref().unwrap_or("");
            match g.health {
                GpuHealth::Healthy if before.is_some() => {
                    tracing::info!(gpu = g.index, uuid = %g.uuid, "GPU healthy again");
                }
                GpuHealth::Healthy => {}
                _ => tracing::warn!(gpu = g.index, uuid = %g.uuid, reason, "GPU unhealthy"),
            }
        }
    }

    async fn tick(&mut self, now: Instant) {
        if self.publisher.node_stale(now)
            && let Err(e) = self.publisher.read_node(now).await
            && self.written.is_some()
        {
            // Before the first write the write path reports this error itself.
            tracing::warn!(node = %self.node_name, reason = e.reason(), error = %e, "reading the Node");
        }
        let host = self.sample_host();
        let gpus = self.gpus.sample(now);
        let status = telemetry::status(host, self.last_cpu, self.publisher.allocatable(), gpus);
        self.last_cpu = status.cpu.used_milli;
        self.log_health(&status);
        if let Some(tx) = &self.inventory {
            let now = Inventory::from_telemetry(&status.gpus);
            tx.send_if_modified(|seen| {
                let changed = *seen != now;
                if changed {
                    *seen = now;
                }
                changed
            });
        }
        self.metrics.observe(&self.node_name, &status);

        let change = self
            .written
            .as_ref()
            .and_then(|old| significant(old, &status, &self.thresholds));
        let Some(why) = self.schedule.due(now, change) else {
            return;
        };
        let wall = Timestamp::now();
        match self.publisher.write(&status, now, wall).await {
            Ok(()) => {
                if self.last_failure.take().is_some() || self.written.is_none() {
                    tracing::info!(
                        node = %self.node_name,
                        gpus = status.gpu_count,
                        healthy = status.healthy_gpus,
                        "NodeTelemetry written"
                    );
                }
                let u = unit(&mut self.rng);
                self.schedule.written(now, u);
                self.metrics.wrote(why, true, wall.as_second());
                self.written = Some(status);
            }
            Err(e) => {
                let u = unit(&mut self.rng);
                let wait = self.schedule.failed(now, u);
                self.metrics.wrote(why, false, 0);
                let reason = e.reason();
                if self.last_failure == Some(reason) {
                    tracing::warn!(node = %self.node_name, reason, error = %e, retry_in_seconds = wait.as_secs(), "writing NodeTelemetry");
                } else {
                    tracing::error!(node = %self.node_name, reason, error = %e, retry_in_seconds = wait.as_secs(), "writing NodeTelemetry");
                }
                self.last_failure = Some(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests;
