//! When the agent writes: what counts as a significant change ([`Thresholds`], [`significant`])
//! and the write schedule ([`Schedule`]): heartbeat with jitter, change-driven writes no more
//! often than a minimum interval, exponential back-off with jitter after API errors. Pure: time comes in
//! as `Instant`s and randomness as a number, so every rule has a unit test.

use std::time::{Duration, Instant};

use crate::crd::{GpuTelemetry, NodeTelemetryStatus};

/// How far a reading must move from the last written one before it is worth a write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// CPU in use, as a fraction of allocatable.
    pub cpu_fraction: f64,
    /// Memory in use, as a fraction of allocatable.
    pub memory_fraction: f64,
    /// GPU or memory-controller utilisation, in percentage points.
    pub gpu_util_points: u32,
    /// GPU memory in use, as a fraction of the device's memory.
    pub gpu_memory_fraction: f64,
    /// Die temperature, in °C.
    pub temperature_celsius: u32,
    /// Board power, as a fraction of the last written value.
    pub power_fraction: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        // Placement decisions move on tens of percent; these keep writes for changes that
        // could change a decision and let the heartbeat carry the rest.
        Self {
            cpu_fraction: 0.10,
            memory_fraction: 0.05,
            gpu_util_points: 10,
            gpu_memory_fraction: 0.05,
            temperature_celsius: 5,
            power_fraction: 0.20,
        }
    }
}

/// What changed enough to write (a bounded set: used as a metric label and in logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// GPUs appeared or went, or a UUID, model, MIG mode or memory size changed.
    GpuSet,
    /// A GPU's health or health reason changed.
    GpuHealth,
    /// Utilisation, memory, temperature or power of a GPU moved past a threshold.
    GpuLoad,
    /// Allocatable CPU or memory changed (the kubelet's view of the node).
    Allocatable,
    /// CPU in use moved past its threshold.
    Cpu,
    /// Memory in use moved past its threshold.
    Memory,
}

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::GpuSet => "gpu_set",
            Change::GpuHealth => "gpu_health",
            Change::GpuLoad => "gpu_load",
            Change::Allocatable => "allocatable",
            Change::Cpu => "cpu",
            Change::Memory => "memory",
        }
    }
}

fn moved(old: u64, new: u64, scale: u64, fraction: f64) -> bool {
    // Precision loss is irrelevant at threshold granularity.
    #[allow(clippy::cast_precision_loss)]
    let limit = scale as f64 * fraction;
    #[allow(clippy::cast_precision_loss)]
    let delta = old.abs_diff(new) as f64;
    delta > limit || (scale == 0 && old != new)
}

fn gpu_change(old: &GpuTelemetry, new: &GpuTelemetry, t: &Thresholds) -> Option<Change> {
    if old.index != new.index
        || old.uuid != new.uuid
        || old.model != new.model
        || old.memory_total_bytes != new.memory_total_bytes
        || old.mig_enabled != new.mig_enabled
    {
        return Some(Change::GpuSet);
    }
    if old.health != new.health || old.reason != new.reason {
        return Some(Change::GpuHealth);
    }
    let load = old
        .utilization_gpu_percent
        .abs_diff(new.utilization_gpu_percent)
        >= t.gpu_util_points.max(1)
        || old
            .utilization_memory_percent
            .abs_diff(new.utilization_memory_percent)
            >= t.gpu_util_points.max(1)
        || moved(
            old.memory_used_bytes,
            new.memory_used_bytes,
            new.memory_total_bytes,
            t.gpu_memory_fraction,
        )
        || old.temperature_celsius.abs_diff(new.temperature_celsius)
            >= t.temperature_celsius.max(1)
        || moved(
            old.power_milliwatts,
            new.power_milliwatts,
            old.power_milliwatts,
            t.power_fraction,
        );
    load.then_some(Change::GpuLoad)
}

/// The most important change between the last written status and a new reading, if any
/// is significant. Heartbeat time and agent version are not compared.
pub fn significant(
    old: &NodeTelemetryStatus,
    new: &NodeTelemetryStatus,
    t: &Thresholds,
) -> Option<Change> {
    if old.gpus.len() != new.gpus.len() {
        return Some(Change::GpuSet);
    }
    let gpus = old
        .gpus
        .iter()
        .zip(&new.gpus)
        .filter_map(|(o, n)| gpu_change(o, n, t))
        .min_by_key(|c| *c as u8);
    if gpus.is_some_and(|c| c != Change::GpuLoad) {
        return gpus;
    }
    if old.cpu.allocatable_milli != new.cpu.allocatable_milli
        || old.memory.allocatable_bytes != new.memory.allocatable_bytes
    {
        return Some(Change::Allocatable);
    }
    if gpus.is_some() {
        return gpus;
    }
    if moved(
        old.cpu.used_milli,
        new.cpu.used_milli,
        new.cpu.allocatable_milli,
        t.cpu_fraction,
    ) {
        return Some(Change::Cpu);
    }
    moved(
        old.memory.used_bytes,
        new.memory.used_bytes,
        new.memory.allocatable_bytes,
        t.memory_fraction,
    )
    .then_some(Change::Memory)
}

/// Why a write happens now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Why {
    /// Nothing written yet by this process.
    First,
    /// The heartbeat is due.
    Heartbeat,
    /// A significant change, past the minimum interval.
    Change(Change),
    /// The previous attempt failed and its back-off has passed.
    Retry,
}

/// The write schedule of one agent.
#[derive(Debug, Clone)]
pub struct Schedule {
    heartbeat: Duration,
    /// Fraction of `heartbeat` by which a heartbeat may come early (never late: readers
    /// judge staleness against the nominal interval).
    jitter: f64,
    min_interval: Duration,
    last_write: Option<Instant>,
    next_heartbeat: Option<Instant>,
    retry_at: Option<Instant>,
    failures: u32,
}

/// First back-off after a failed write.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest back-off: an API server back after an outage hears from every agent within this.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

impl Schedule {
    pub fn new(heartbeat: Duration, jitter: f64, min_interval: Duration) -> Self {
        Self {
            heartbeat,
            jitter: jitter.clamp(0.0, 0.5),
            min_interval,
            last_write: None,
            next_heartbeat: None,
            retry_at: None,
            failures: 0,
        }
    }

    /// Whether to write at `now`, given the change (if any) from the last written status.
    pub fn due(&self, now: Instant, change: Option<Change>) -> Option<Why> {
        if let Some(at) = self.retry_at {
            return (now >= at).then_some(Why::Retry);
        }
        let Some(last) = self.last_write else {
            return Some(Why::First);
        };
        if self.next_heartbeat.is_some_and(|at| now >= at) {
            return Some(Why::Heartbeat);
        }
        change
            .filter(|_| now.duration_since(last) >= self.min_interval)
            .map(Why::Change)
    }

    /// A write succeeded at `now`; `unit` in `[0, 1)` picks this heartbeat's jitter.
    pub fn written(&mut self, now: Instant, unit: f64) {
        self.last_write = Some(now);
        self.retry_at = None;
        self.failures = 0;
        let early = self.heartbeat.mul_f64(self.jitter * unit.clamp(0.0, 1.0));
        self.next_heartbeat = Some(now + self.heartbeat.saturating_sub(early));
    }

    /// A write failed at `now`; returns how long until the next attempt. `unit` in `[0, 1)`
    /// takes up to half off the doubled back-off ("equal jitter"), so that agents cut off by
    /// the same outage do not all retry in the same second when it ends.
    pub fn failed(&mut self, now: Instant, unit: f64) -> Duration {
        let wait = crate::backoff::equal_jitter(BACKOFF_MIN, BACKOFF_MAX, self.failures, unit);
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now + wait);
        wait
    }

    /// When the next heartbeat is due, if one was written.
    pub fn next_heartbeat(&self) -> Option<Instant> {
        self.next_heartbeat
    }
}

#[cfg(test)]
mod tests;
