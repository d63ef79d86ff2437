//! The extender's request path with the workload history recorder on beside off
//! (`--history-dir`, issue 20): `/filter` through the HTTP router (no network) for a pod that
//! fits none of 500 loaded nodes, so every call hands a record to the recorder (its thread
//! drains the channel and writes to a temporary directory); and the record hand-over alone
//! (`Recorder::offer` into a channel with room, and into a full one).
//!
//! `cargo bench --bench extender_history`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use allot::extender::history::start::start;
use allot::extender::history::task::Watched;
use allot::extender::history::{self, Event, HistorySettings, Recorder, Seen};
use allot::extender::server::{Extender, router};
use allot::extender::snapshot_store;
use allot::extender::state::ClusterSnapshot;
use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

mod common;
use common::loaded;

const NODES: usize = 500;

/// No cluster: no departures, always leading.
#[derive(Debug)]
struct Quiet;

impl Watched for Quiet {
    fn departures_since(&self, _: std::time::Instant) -> Vec<(std::time::Instant, String)> {
        Vec::new()
    }
    fn created(&self, _: &str) -> Option<u64> {
        None
    }
    fn alive(&self) -> Option<Vec<String>> {
        None
    }
    fn leading(&self) -> bool {
        true
    }
}

fn settings(dir: &std::path::Path) -> HistorySettings {
    HistorySettings {
        dir: dir.to_path_buf(),
        max_bytes: 64 << 20,
        file_bytes: 8 << 20,
        plain_names: false,
        key_file: None,
        channel: history::DEFAULT_CHANNEL,
        max_open: history::DEFAULT_MAX_OPEN,
        tick: history::DEFAULT_TICK,
        checkpoint: history::DEFAULT_CHECKPOINT,
        lease: None,
    }
}

fn body(cluster: &allot::model::Cluster) -> Vec<u8> {
    let names: Vec<&str> = cluster.nodes().iter().map(|n| &*n.name).collect();
    let pod = serde_json::json!({
        "metadata": {"name": "huge", "namespace": "ml", "uid": "bench-huge",
                     "creationTimestamp": "2026-12-01T10:00:00Z",
                     "annotations": {"allot.dev/gpu-milli": "500"}},
        "spec": {"containers": [{"name": "main",
                 "resources": {"requests": {"cpu": "1000", "memory": "16Gi"}}}]}
    });
    serde_json::to_vec(&serde_json::json!({"Pod": pod, "NodeNames": names})).expect("body")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cluster = loaded(NODES);
    let body = body(&cluster);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group(format!("extender_history_unschedulable_filter_{NODES}"));
    for on in [false, true] {
        let store = Arc::new(snapshot_store(ClusterSnapshot::new(
            cluster.clone(),
            Vec::new(),
        )));
        let (recorder, stopper) = if on {
            let (r, s) = start(settings(dir.path()), store.clone(), Quiet).expect("recorder");
            while !r.is_active() {
                std::thread::sleep(Duration::from_millis(10));
            }
            (Some(r), Some(s))
        } else {
            (None, None)
        };
        let ext = Extender::following(store, None, None, recorder.clone());
        let app = router(ext);
        group.bench_function(if on { "recording_on" } else { "recording_off" }, |b| {
            b.iter(|| {
                let req = Request::post("/filter")
                    .header("content-type", "application/json")
                    .body(Body::from(body.clone()))
                    .expect("request");
                let resp = rt.block_on(app.clone().oneshot(req)).expect("answer");
                assert!(resp.status().is_success());
                black_box(resp);
            })
        });
        if let (Some(r), Some(s)) = (recorder, stopper) {
            let s_ = r.stats.counted(history::RecordOutcome::dropped);
            println!("recording on: {s_} records dropped (channel full) during the run");
            s.finish(Duration::from_secs(5));
        }
    }
    group.finish();
    let seen = Seen {
        uid: "u".into(),
        key: "ml/p".into(),
        created: None,
        demand: allot::model::PodDemand {
            cpu_milli: 4000,
            memory_bytes: 16 << 30,
            gpu: allot::model::GpuDemand::Shared { milli: 500 },
            models: allot::model::ModelSet::ANY,
        },
        spec: String::new(),
        policy: "fgd",
        policy_hash: String::new(),
        node: String::new(),
        devices: String::new(),
        at: 0,
    };
    let mut group = c.benchmark_group("extender_history_offer");
    let (room, rx) = Recorder::channel(1 << 20);
    room.active.store(true, Ordering::Relaxed);
    group.bench_function("with_room", |b| {
        b.iter(|| {
            room.offer(Event::Unschedulable(seen.clone()));
            if rx.try_recv().is_err() {
                panic!("the record is in the channel");
            }
        })
    });
    let (full, _rx) = Recorder::channel(1);
    full.offer(Event::Unschedulable(seen.clone()));
    group.bench_function("channel_full", |b| {
        b.iter(|| full.offer(Event::Unschedulable(seen.clone())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
