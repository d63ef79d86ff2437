//! When a telemetry change is significant enough to write: small moves are not, each threshold is
//! on its own.

use std::time::{Duration, Instant};

use super::*;
use crate::crd::{CpuTelemetry, GpuHealth, MemoryTelemetry};

fn gpu(index: u32) -> GpuTelemetry {
    GpuTelemetry {
        index,
        uuid: format!("GPU-{index}"),
        model: "A100".into(),
        memory_total_bytes: 1000,
        memory_used_bytes: 100,
        utilization_gpu_percent: 20,
        utilization_memory_percent: 10,
        temperature_celsius: 40,
        power_milliwatts: 100_000,
        health: GpuHealth::Healthy,
        ..GpuTelemetry::default()
    }
}

fn status(gpus: Vec<GpuTelemetry>) -> NodeTelemetryStatus {
    NodeTelemetryStatus {
        cpu: CpuTelemetry {
            allocatable_milli: 4000,
            used_milli: 1000,
        },
        memory: MemoryTelemetry {
            allocatable_bytes: 1000,
            used_bytes: 500,
        },
        ..NodeTelemetryStatus::default()
    }
    .with_gpus(gpus)
}

fn check(edit: impl FnOnce(&mut NodeTelemetryStatus)) -> Option<Change> {
    let old = status(vec![gpu(0), gpu(1)]);
    let mut new = old.clone();
    edit(&mut new);
    significant(&old, &new, &Thresholds::default())
}

#[test]
fn small_moves_are_not_significant() {
    assert_eq!(check(|_| {}), None);
    assert_eq!(
        check(|s| {
            s.cpu.used_milli += 399; // < 10% of 4000
            s.memory.used_bytes += 50; // = 5%, not above
            s.gpus[0].utilization_gpu_percent += 9;
            s.gpus[0].memory_used_bytes += 50;
            s.gpus[1].temperature_celsius += 4;
            s.gpus[1].power_milliwatts += 20_000;
            s.heartbeat_time = None;
            s.agent_version = "other".into();
        }),
        None
    );
}

#[test]
fn each_threshold_triggers_on_its_own() {
    assert_eq!(check(|s| s.cpu.used_milli += 401), Some(Change::Cpu));
    assert_eq!(check(|s| s.memory.used_bytes -= 51), Some(Change::Memory));
    assert_eq!(
        check(|s| s.gpus[1].utilization_gpu_percent = 30),
        Some(Change::GpuLoad)
    );
    assert_eq!(
        check(|s| s.gpus[1].utilization_memory_percent = 0),
        Some(Change::GpuLoad)
    );
    assert_eq!(
        check(|s| s.gpus[0].memory_used_bytes = 151),
        Some(Change::GpuLoad)
    );
    assert_eq!(
        check(|s| s.gpus[0].temperature_celsius = 45),
        Some(Change::GpuLoad)
    );
    assert_eq!(
        check(|s| s.gpus[0].power_milliwatts = 121_000),
        Some(Change::GpuLoad)
    );
    assert_eq!(
        check(|s| s.cpu.allocatable_milli = 3000),
        Some(Change::Allocatable)
    );
}

#[test]
fn identity_and_health_always_count_and_rank_first() {
    assert_eq!(
        check(|s| {
            s.gpus[1].health = GpuHealth::Unhealthy;
            s.cpu.used_milli = 4000;
        }),
        Some(Change::GpuHealth)
    );
    assert_eq!(
        check(|s| s.gpus[0].reason = Some("x".into())),
        Some(Change::GpuHealth)
    );
    assert_eq!(
        check(|s| s.gpus[0].uuid = "GPU-9".into()),
        Some(Change::GpuSet)
    );
    assert_eq!(
        check(|s| s.gpus[0].mig_enabled = Some(true)),
        Some(Change::GpuSet)
    );
    assert_eq!(
        check(|s| s.gpus.pop().map(|_| ()).unwrap_or(())),
        Some(Change::GpuSet)
    );
    // A GPU set change outranks a load change on another GPU.
    assert_eq!(
        check(|s| {
            s.gpus[0].utilization_gpu_percent = 90;
            s.gpus[1].model = "H100".into();
        }),
        Some(Change::GpuSet)
    );
}

#[test]
fn zero_thresholds_mean_any_change() {
    let t = Thresholds {
        cpu_fraction: 0.0,
        memory_fraction: 0.0,
        gpu_util_points: 0,
        gpu_memory_fraction: 0.0,
        temperature_celsius: 0,
        power_fraction: 0.0,
    };
    let old = status(vec![gpu(0)]);
    let mut new = old.clone();
    new.cpu.used_milli += 1;
    assert_eq!(significant(&old, &new, &t), Some(Change::Cpu));
    let mut new = old.clone();
    new.gpus[0].temperature_celsius += 1;
    assert_eq!(significant(&old, &new, &t), Some(Change::GpuLoad));
}

const HB: Duration = Duration::from_secs(30);
const MIN: Duration = Duration::from_secs(5);

#[test]
fn first_write_then_heartbeat_never_late() {
    let t0 = Instant::now();
    let mut s = Schedule::new(HB, 0.1, MIN);
    assert_eq!(s.due(t0, None), Some(Why::First));
    s.written(t0, 0.999);
    let next = s.next_heartbeat().expect("scheduled");
    // Up to 10% early, never late.
    assert!(
        next <= t0 + HB && next >= t0 + HB - Duration::from_secs(3),
        "{:?}",
        next - t0
    );
    assert_eq!(s.due(next - Duration::from_millis(1), None), None);
    assert_eq!(s.due(next, None), Some(Why::Heartbeat));
    s.written(t0, 0.0);
    assert_eq!(s.next_heartbeat(), Some(t0 + HB));
}

#[test]
fn changes_write_no_more_often_than_the_minimum_interval() {
    let t0 = Instant::now();
    let mut s = Schedule::new(HB, 0.0, MIN);
    s.written(t0, 0.0);
    let c = Some(Change::Cpu);
    assert_eq!(s.due(t0 + Duration::from_secs(4), c), None);
    assert_eq!(s.due(t0 + MIN, c), Some(Why::Change(Change::Cpu)));
    assert_eq!(s.due(t0 + MIN, None), None);
}

#[test]
fn failures_back_off_exponentially_up_to_a_cap() {
    let t0 = Instant::now();
    let mut s = Schedule::new(HB, 0.0, MIN);
    let waits: Vec<u64> = (0..9).map(|_| s.failed(t0, 0.0).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    // During back-off nothing is due, not even a significant change.
    assert_eq!(
        s.due(t0 + Duration::from_secs(59), Some(Change::GpuHealth)),
        None
    );
    assert_eq!(s.due(t0 + Duration::from_secs(60), None), Some(Why::Retry));
    s.written(t0 + Duration::from_secs(60), 0.0);
    assert_eq!(
        s.failed(t0, 0.0).as_secs(),
        1,
        "a success resets the back-off"
    );
}

#[test]
fn jitter_takes_up_to_half_off_each_back_off() {
    let t0 = Instant::now();
    let mut s = Schedule::new(HB, 0.0, MIN);
    let waits: Vec<f64> = [0.5, 0.999, 0.0, 2.0]
        .map(|u| s.failed(t0, u).as_secs_f64())
        .to_vec();
    assert_eq!(waits[0], 0.75, "1 s less a quarter");
    assert!((waits[1] - 1.001).abs() < 1e-9, "2 s less just under half");
    assert_eq!(waits[2], 4.0, "no jitter drawn");
    assert_eq!(
        waits[3], 4.0,
        "an out-of-range draw is clamped to half off 8 s"
    );
    assert_eq!(s.due(t0 + Duration::from_secs(4), None), Some(Why::Retry));
}
