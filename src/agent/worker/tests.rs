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

async fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An API outage: writes fail with back-off (a bounded number of attempts), sampling goes
/// on, and the state reached during the outage is written whole once the server is back.
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
    let worker = Worker::new(
        &settings,
        serve(api.clone()).await,
        HostSampler::new(dir.path()),
        GpuSampler::new(Some(dir.path().join("no-libnvidia-ml.so"))),
        metrics.clone(),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker.run(stop_rx));

    wait_for("the first write", Duration::from_secs(5), || {
        !api.statuses().is_empty()
    })
    .await;
    let first = &api.statuses()[0];
    assert_eq!(used_bytes(first), 2_000_000 * 1024);
    assert_eq!(first["status"]["cpu"]["allocatableMilli"], 4000);

    // Outage; meanwhile memory use doubles (a significant change).
    api.status_code.store(500, Ordering::SeqCst);
    meminfo(dir.path(), 4_000_000);
    let outage = Instant::now();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let attempts = api.status_attempts.load(Ordering::SeqCst) - 1;
    // Back-off 1 s, 2 s, ...: three tries in 3.5 s at most, against 35 samples.
    assert!(
        (1..=3).contains(&attempts),
        "{attempts} attempts during the outage"
    );
    assert!(
        metrics
            .render()
            .contains("allot_agent_node_memory_used_bytes 4096000000")
    );

    api.status_code.store(200, Ordering::SeqCst);
    wait_for(
        "the write after the outage",
        Duration::from_secs(10),
        || api.statuses().len() >= 2,
    )
    .await;
    assert!(
        outage.elapsed() < Duration::from_secs(9),
        "back-off too long"
    );
    let statuses = api.statuses();
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
    stop_tx.send(true).expect("stop");
    task.await.expect("worker ends");
}
