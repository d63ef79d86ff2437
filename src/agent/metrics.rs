//! `/metrics` and `/healthz` of the agent. Per-GPU gauges use the DCGM exporter's names and
//! labels (`gpu`, `UUID`, `device`, `modelName`, `Hostname`) so existing dashboards work;
//! the agent's own series are `allot_agent_*` with labels from enums only. `/healthz` answers
//! 503 once no sample has ended for longer than the stall limit (a hung NVML or API call), so
//! a liveness probe restarts a stuck agent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::change::Why;
use crate::crd::{GpuHealth, NodeTelemetryStatus};

/// DCGM's label set for one GPU.
type GpuLabels = [(&'static str, String); 5];

type FloatGauge = Gauge<f64, AtomicU64>;

impl EncodeLabelValue for Why {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        encoder.write_str(match self {
            Why::First => "first",
            Why::Heartbeat => "heartbeat",
            Why::Change(c) => c.name(),
            Why::Retry => "retry",
        })
    }
}

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Error,
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        encoder.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WriteLabels {
    why: Why,
    outcome: Outcome,
}

/// Every series the agent exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    gpu_util: Family<GpuLabels, Gauge>,
    mem_copy_util: Family<GpuLabels, Gauge>,
    fb_used: Family<GpuLabels, Gauge>,
    fb_free: Family<GpuLabels, Gauge>,
    temp: Family<GpuLabels, Gauge>,
    power: Family<GpuLabels, FloatGauge>,
    healthy: Family<GpuLabels, Gauge>,
    cpu_used: Gauge,
    memory_used: Gauge,
    writes: Family<WriteLabels, Counter>,
    last_write: Gauge,
    /// Unix milliseconds at the end of the last sample (0: none yet), for `/healthz`.
    last_tick_ms: AtomicU64,
    /// `/healthz` fails when no sample ended for this long (0: never).
    stall_limit_ms: AtomicU64,
    /// The device plugin's series (registered here, counted by the plugin).
    pub plugin: Arc<super::plugin::Counters>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

const MIB: u64 = 1 << 20;

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        crate::process::register_build_info(&mut registry, "agent");
        let gpu_util = Family::<GpuLabels, Gauge>::default();
        let mem_copy_util = Family::<GpuLabels, Gauge>::default();
        let fb_used = Family::<GpuLabels, Gauge>::default();
        let fb_free = Family::<GpuLabels, Gauge>::default();
        let temp = Family::<GpuLabels, Gauge>::default();
        let power = Family::<GpuLabels, FloatGauge>::default();
        let healthy = Family::<GpuLabels, Gauge>::default();
        let cpu_used = Gauge::default();
        let memory_used = Gauge::default();
        let writes = Family::<WriteLabels, Counter>::default();
        let last_write = Gauge::default();
        registry.register(
            "DCGM_FI_DEV_GPU_UTIL",
            "GPU utilization (in %)",
            gpu_util.clone(),
        );
        registry.register(
            "DCGM_FI_DEV_MEM_COPY_UTIL",
            "Memory utilization (in %)",
            mem_copy_util.clone(),
        );
        registry.register(
            "DCGM_FI_DEV_FB_USED",
            "Framebuffer memory used (in MiB)",
            fb_used.clone(),
        );
        registry.register(
            "DCGM_FI_DEV_FB_FREE",
            "Framebuffer memory free (in MiB)",
            fb_free.clone(),
        );
        registry.register(
            "DCGM_FI_DEV_GPU_TEMP",
            "GPU temperature (in C)",
            temp.clone(),
        );
        registry.register(
            "DCGM_FI_DEV_POWER_USAGE",
            "Power draw (in W)",
            power.clone(),
        );
        registry.register(
            "allot_agent_gpu_healthy",
            "1 when the agent reports the GPU Healthy, else 0",
            healthy.clone(),
        );
        registry.register(
            "allot_agent_node_cpu_used_millicores",
            "CPU in use on the node",
            cpu_used.clone(),
        );
        registry.register(
            "allot_agent_node_memory_used_bytes",
            "Memory in use on the node (MemTotal - MemAvailable)",
            memory_used.clone(),
        );
        registry.register(
            "allot_agent_status_writes",
            "NodeTelemetry status writes by reason and outcome",
            writes.clone(),
        );
        registry.register(
            "allot_agent_last_write_timestamp_seconds",
            "Unix time of the last successful status write",
            last_write.clone(),
        );
        let plugin = Arc::new(super::plugin::Counters::default());
        plugin.register(&mut registry);
        Self {
            plugin,
            registry,
            gpu_util,
            mem_copy_util,
            fb_used,
            fb_free,
            temp,
            power,
            healthy,
            cpu_used,
            memory_used,
            writes,
            last_write,
            last_tick_ms: AtomicU64::new(0),
            stall_limit_ms: AtomicU64::new(0),
        }
    }

    /// Make `/healthz` fail once no sample has ended for `limit` (a hung NVML call or loop).
    pub fn set_stall_limit(&self, limit: Duration) {
        let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        self.stall_limit_ms.store(ms, Ordering::Relaxed);
    }

    /// A sample ended now.
    pub fn ticked(&self) {
        self.ticked_at(unix_ms());
    }

    fn ticked_at(&self, unix_ms: u64) {
        self.last_tick_ms.store(unix_ms, Ordering::Relaxed);
    }

    /// How long the loop has been stuck, when that is past the limit.
    fn stalled_for(&self, now_ms: u64) -> Option<Duration> {
        let limit = self.stall_limit_ms.load(Ordering::Relaxed);
        let last = self.last_tick_ms.load(Ordering::Relaxed);
        let since = now_ms.saturating_sub(last);
        (limit > 0 && last > 0 && since > limit).then(|| Duration::from_millis(since))
    }

    /// Replace every gauge with one sample (GPUs that went away lose their series).
    pub fn observe(&self, host: &str, status: &NodeTelemetryStatus) {
        for family in [
            &self.gpu_util,
            &self.mem_copy_util,
            &self.fb_used,
            &self.fb_free,
            &self.temp,
            &self.healthy,
        ] {
            family.clear();
        }
        self.power.clear();
        for g in &status.gpus {
            let labels: GpuLabels = [
                ("gpu", g.index.to_string()),
                ("UUID", g.uuid.clone()),
                ("device", format!("nvidia{}", g.index)),
                ("modelName", g.model.clone()),
                ("Hostname", host.to_string()),
            ];
            self.healthy
                .get_or_create(&labels)
                .set(i64::from(g.health == GpuHealth::Healthy));
            if g.health != GpuHealth::Healthy {
                // Readings of a failing GPU are stale copies: export health only.
                continue;
            }
            self.gpu_util
                .get_or_create(&labels)
                .set(i64::from(g.utilization_gpu_percent));
            self.mem_copy_util
                .get_or_create(&labels)
                .set(i64::from(g.utilization_memory_percent));
            self.fb_used
                .get_or_create(&labels)
                .set(gauge_value(g.memory_used_bytes / MIB));
            self.fb_free.get_or_create(&labels).set(gauge_value(
                g.memory_total_bytes.saturating_sub(g.memory_used_bytes) / MIB,
            ));
            self.temp
                .get_or_create(&labels)
                .set(i64::from(g.temperature_celsius));
            // Milliwatts to watts; f64 holds every u64 that a board could draw exactly enough.
            #[allow(clippy::cast_precision_loss)]
            let watts = g.power_milliwatts as f64 / 1000.0;
            self.power.get_or_create(&labels).set(watts);
        }
        self.cpu_used.set(gauge_value(status.cpu.used_milli));
        self.memory_used.set(gauge_value(status.memory.used_bytes));
    }

    /// Count one write attempt; `unix` is the time of a successful one.
    pub fn wrote(&self, why: Why, ok: bool, unix: i64) {
        let outcome = if ok { Outcome::Ok } else { Outcome::Error };
        self.writes
            .get_or_create(&WriteLabels { why, outcome })
            .inc();
        if ok {
            self.last_write.set(unix);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `/healthz` (the process is up and sampling) and `/metrics`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render))
        .with_state(metrics)
}

async fn healthz(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.stalled_for(unix_ms()) {
        None => (StatusCode::OK, "ok\n").into_response(),
        Some(d) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("sampling loop stalled: no sample for {} s\n", d.as_secs()),
        )
            .into_response(),
    }
}

async fn render(State(metrics): State<Arc<Metrics>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
