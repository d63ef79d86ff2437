//! The agent's loop: an API outage loses no sample and retries with back-off; a run writes its
//! first sample and stops when told.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;
use crate::agent::testing::{MockApi, serve};

fn meminfo(dir: &std::path::Path, available_kib: u64) {
    let text = format!("MemTotal: 8000000 kB\nMemAvailable: {available_kib} kB\n");
    std::fs::write(dir.join("meminfo"), text).expect("write meminfo");
}

fn used_bytes(v: &serde_json::Value) -> u64 {
    v["status"]["memory"]["usedBytes"].as_u64().unwrap_or(0)
}

/// An API outage: writes fail with back-off (1 s, 2 s, 4 s, ...), sampling goes on, and the
/// state reached during the outage is written whole once the server is back.
///
/// The worker is driven tick by tick on a made-up clock (`Worker::tick` takes the instant,
/// as `run` passes it), one sample every 100 ms: the test waits on no real time, only on the
/// stand-in API server's answers, so the back-off shows as exact attempt times.
#[tokio::test]
async fn an_outage_loses_nothing_and_retries_with_back_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("stat"), "cpu  1 0 1 10 0 0 0 0\ncpu0 1\n").expect("stat");
    meminfo(dir.path(), 6_000_000);
    let api = Arc::new(MockApi::default());
    let settings = Settings {
        node_name: "n1".into(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        sample: Duration::from_millis(100),
        heartbeat: Duration::from_secs(60),
        jitter: 0.0,
        min_write: Duration::from_millis(100),
        thresholds: Thresholds::default(),
    };
    let metrics = Arc::new(Metrics::new());
    let mut worker = Worker::new(
        &settings,
        serve(api.clone()).await,
        HostSampler::new(dir.path()),
        GpuSampler::new(Some(dir.path().join("no-libnvidia-ml.so"))),
        metrics.clone(),
    );
    let attempts = || api.status_attempts.load(Ordering::SeqCst);

    let mut now = Instant::now();
    worker.tick(now).await;
    assert_eq!(attempts(), 1, "the first sample is written");
    let first = &api.statuses()[0];
    assert_eq!(used_bytes(first), 2_000_000 * 1024);
    assert_eq!(first["status"]["cpu"]["allocatableMilli"], 4000);

    // Outage; meanwhile memory use doubles (a significant change). It lasts 3.5 s.
    api.status_code.store(500, Ordering::SeqCst);
    meminfo(dir.path(), 4_000_000);
    let outage = now;
    let back = Duration::from_millis(3500);
    // When (after the outage began) each write was tried; 90 samples, 9 s.
    let mut tried = Vec::new();
    for _ in 0..90 {
        now += settings.sample;
        let before = attempts();
        worker.tick(now).await;
        if attempts() > before {
            tried.push(now - outage);
        }
        if now - outage == back {
            // Every sample of the outage was taken and exported; three writes were tried.
            assert!(
                metrics
                    .render()
                    .contains("allot_agent_node_memory_used_bytes 4096000000")
            );
            assert_eq!(api.statuses().len(), 1, "nothing written during the outage");
            api.status_code.store(200, Ordering::SeqCst);
        }
    }
    let ms = Duration::from_millis;
    // The change is tried at the next sample, then again after 1 s, 2 s and 4 s, each less
    // up to half (jitter; on the 100 ms sample grid): three tries in the outage's 3.5 s
    // (against 35 samples), and the fourth, after it, succeeds. Nothing is written after that
    // (no change, the heartbeat is 60 s away).
    assert_eq!(tried.len(), 4, "write attempts: {tried:?}");
    assert_eq!(tried[0], ms(100));
    for (i, pair) in tried.windows(2).enumerate() {
        let full = ms(1000 << i);
        let gap = pair[1] - pair[0];
        assert!(
            gap >= full / 2 && gap <= full + ms(100),
            "retry {i} after {gap:?}, not within [{:?}, {full:?}]: {tried:?}",
            full / 2
        );
    }
    assert!(tried[2] < back && tried[3] > back, "{tried:?}");
    let statuses = api.statuses();
    assert_eq!(statuses.len(), 2, "one write after the outage");
    let last = statuses.last().expect("a write");
    assert_eq!(
        used_bytes(last),
        4_000_000 * 1024,
        "the outage's state was written"
    );
    for s in &statuses {
        // Every write is a whole status.
        for field in ["heartbeatTime", "agentVersion", "cpu", "memory", "gpuCount"] {
            assert!(!s["status"][field].is_null(), "{field} missing in {s}");
        }
    }
}

/// `run` (what the test above skips, driving `tick` itself): the first sample is written at
/// once, and the loop ends when told to stop. Waits only for the stand-in's answer.
#[tokio::test]
async fn run_writes_the_first_sample_and_stops_when_told() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("stat"), "cpu  1 0 1 10 0 0 0 0\ncpu0 1\n").expect("stat");
    meminfo(dir.path(), 6_000_000);
    let api = Arc::new(MockApi::default());
    let settings = Settings {
        node_name: "n1".into(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        sample: Duration::from_secs(3600),
        heartbeat: Duration::from_secs(3600),
        jitter: 0.0,
        min_write: Duration::from_secs(3600),
        thresholds: Thresholds::default(),
    };
    let metrics = Arc::new(Metrics::new());
    let worker = Worker::new(
        &settings,
        serve(api.clone()).await,
        HostSampler::new(dir.path()),
        GpuSampler::new(Some(dir.path().join("no-libnvidia-ml.so"))),
        metrics,
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker.run(stop_rx));
    tokio::time::timeout(Duration::from_secs(10), async {
        while api.statuses().is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the first write");
    stop_tx.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the worker stops")
        .expect("worker ends");
    assert_eq!(api.statuses().len(), 1);
}
