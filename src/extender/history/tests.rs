//! The recorder beside the handlers: a full channel never holds a decision up (its records
//! are dropped and counted), a recorder that cannot write (at start-up, or when the disk
//! fills mid-run) stops and says so, and what the thread writes reads back as a pod list.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::start::start;
use super::task::Watched;
use super::{HistorySettings, RecordOutcome, Recorder};
use crate::extender::server::{Extender, router};
use crate::extender::state::Store;
use crate::sim::trace::history::dir::read_history;
use crate::snapshot::parse_snapshot;

fn store() -> Arc<Store> {
    let snap = parse_snapshot(
        "inline",
        r#"{"nodes": [{"name": "g", "cpu": "16", "memory": "64Gi", "gpus": 1, "model": "T4"}]}"#,
    )
    .unwrap();
    let store = Store::new(None, Vec::new());
    store.replace(snap);
    Arc::new(store)
}

fn share_pod(name: &str, milli: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "ml", "uid": format!("uid-{name}"),
                     "creationTimestamp": "2026-12-01T10:00:00Z",
                     "annotations": {"allot.dev/gpu-milli": milli}},
        "spec": {"containers": [{"name": "main", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}
    })
}

async fn post(ext: &Arc<Extender>, verb: &str, body: &Value) -> (StatusCode, Value) {
    let req = Request::post(format!("/{verb}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = router(ext.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn filter_and_bind(ext: &Arc<Extender>, name: &str, milli: &str) -> (Value, Value) {
    let (s, f) = post(
        ext,
        "filter",
        &json!({"Pod": share_pod(name, milli), "NodeNames": ["g"]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    let bind = json!({"PodName": name, "PodNamespace": "ml", "PodUID": format!("uid-{name}"), "Node": "g"});
    let (s, b) = post(ext, "bind", &bind).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    (f, b)
}

#[tokio::test]
async fn a_full_channel_drops_and_counts_while_the_handlers_answer() {
    // Nobody drains the channel: it holds two records, every later one is dropped.
    let (recorder, rx) = Recorder::channel(2);
    recorder.active.store(true, Ordering::Relaxed);
    let ext = Extender::following(store(), None, None, Some(recorder.clone()));
    let (f, b) = filter_and_bind(&ext, "fits", "600").await;
    assert_eq!(f["NodeNames"], json!(["g"]));
    assert_eq!(b["Error"], "");
    let started = Instant::now();
    for i in 0..50 {
        let (f, _) = filter_and_bind(&ext, &format!("late{i}"), "600").await;
        assert_eq!(f["NodeNames"], json!([]), "no room left: {f}");
        assert!(f["FailedNodes"]["g"].is_string(), "{f}");
    }
    // Fifty filters and binds with the channel full: each answers at once (generous bound
    // for a loaded test machine; a blocking send would never return).
    assert!(started.elapsed() < Duration::from_secs(30));
    let held: Vec<_> = rx.try_iter().collect();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(matches!(held[0], super::Event::Bound(_)));
    assert!(matches!(held[1], super::Event::Unschedulable(_)));
    assert_eq!(recorder.stats.counted(RecordOutcome::dropped), 49);
    let (s, _) = post(&ext, "filter", &json!({"Pod": share_pod("x", "100")})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "a bad request is still refused");
    // Inactive (no Lease, or stopped): nothing is sent or counted.
    recorder.active.store(false, Ordering::Relaxed);
    filter_and_bind(&ext, "idle", "600").await;
    assert_eq!(recorder.stats.counted(RecordOutcome::dropped), 49);
}

/// A cluster with departures fed by the test, and a Lease it holds or not.
#[derive(Debug, Clone, Default)]
struct Fake {
    departures: Arc<Mutex<Vec<(Instant, String)>>>,
    leading: Arc<AtomicBool>,
    bound: Arc<Mutex<Vec<Arc<Pod>>>>,
}

impl Watched for Fake {
    fn departures_since(&self, after: Instant) -> Vec<(Instant, String)> {
        let d = self.departures.lock().unwrap();
        d.iter().filter(|(t, _)| *t > after).cloned().collect()
    }
    fn created(&self, _key: &str) -> Option<u64> {
        Some(1_700_000_000)
    }
    fn alive(&self) -> Option<Vec<String>> {
        None
    }
    fn leading(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
    }
    fn bound(&self) -> Vec<Arc<Pod>> {
        self.bound.lock().unwrap().clone()
    }
}

fn settings(dir: &std::path::Path) -> HistorySettings {
    HistorySettings {
        dir: dir.to_path_buf(),
        max_bytes: 1 << 20,
        file_bytes: 1 << 16,
        plain_names: false,
        key_file: None,
        channel: 64,
        max_open: 1000,
        tick: Duration::from_millis(20),
        checkpoint: Duration::from_millis(20),
        lease: None,
    }
}

async fn wait_for(what: &str, done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn the_leader_records_binds_and_departures_that_read_back_as_a_pod_list() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    let store = store();
    let (recorder, stopper) = start(settings(dir.path()), store.clone(), fake.clone()).unwrap();
    let ext = Extender::following(store, None, None, Some(recorder.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!recorder.is_active(), "not the Lease holder: not recording");
    fake.leading.store(true, Ordering::Relaxed);
    wait_for("recording", || recorder.is_active()).await;
    filter_and_bind(&ext, "a", "600").await;
    filter_and_bind(&ext, "b", "600").await; // fits nowhere: waits
    wait_for("the bind taken in", || {
        dir.path().join("open.csv").is_file()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    fake.departures
        .lock()
        .unwrap()
        .push((Instant::now(), "uid-a".to_string()));
    wait_for("the departure written", || {
        recorder.stats.counted(RecordOutcome::written) == 1
    })
    .await;
    assert!(stopper.finish(Duration::from_secs(5)), "the thread ends");
    let got = read_history(dir.path()).unwrap();
    let rows: Vec<&str> = got.text.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{}", got.text);
    assert!(
        rows[0].contains(",Terminated,1700000000,") && rows[0].contains(",g,"),
        "{}",
        rows[0]
    );
    assert!(rows[1].contains(",Pending,"), "{}", rows[1]);
    assert!(
        !got.text.contains("ml/a") && !got.text.contains("uid-a"),
        "names are hashed"
    );
    assert!(dir.path().join("nodes.csv").is_file());
    assert_eq!(recorder.stats.counted(RecordOutcome::failed), 0);
}

/// Held by the tests whose recorder fails: tracing caches per log line whether anyone
/// listens, so one test's failure line, logged with no subscriber, could hide the other's.
static FAILING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn a_directory_that_cannot_be_written_stops_recording_not_the_extender() {
    let _one_at_a_time = FAILING.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let fake = Fake::default();
    fake.leading.store(true, Ordering::Relaxed);
    let mut s = settings(&blocker.join("history"));
    s.plain_names = true;
    let store = store();
    let (recorder, stopper) = start(s, store.clone(), fake).unwrap();
    wait_for("the failure counted", || {
        recorder.stats.counted(RecordOutcome::failed) == 1
    })
    .await;
    assert!(!recorder.is_active());
    assert_eq!(recorder.stats.recording.get(), 0);
    let ext = Extender::following(store, None, None, Some(recorder));
    let (f, _) = filter_and_bind(&ext, "a", "600").await;
    assert_eq!(f["NodeNames"], json!(["g"]));
    assert!(stopper.finish(Duration::from_secs(1)));
}

/// `name` (600 milli-GPU) as the pod watch shows it once bound to g's device 0 at `at`.
fn bound_pod(name: &str, at: k8s_openapi::jiff::Timestamp) -> Arc<Pod> {
    let mut pod = share_pod(name, "600");
    pod["metadata"]["annotations"]["allot.dev/gpu-devices"] = "0".into();
    pod["spec"]["nodeName"] = "g".into();
    pod["status"] = json!({"conditions": [{"type": "PodScheduled", "status": "True",
        "lastTransitionTime": at.to_string()}]});
    Arc::new(serde_json::from_value(pod).unwrap())
}

#[tokio::test]
async fn the_leader_takes_in_binds_made_through_another_replica_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    fake.leading.store(true, Ordering::Relaxed);
    let mut s = settings(dir.path());
    s.plain_names = true;
    let store = store();
    let (recorder, stopper) = start(s, store.clone(), fake.clone()).unwrap();
    wait_for("recording", || recorder.is_active()).await;
    let ext = Extender::following(store, None, None, Some(recorder.clone()));
    let now = k8s_openapi::jiff::Timestamp::now();
    // `own` was bound through this replica, `other` through another one, `old` an hour
    // before this replica began to lead (not its stretch of the history).
    filter_and_bind(&ext, "own", "600").await;
    *fake.bound.lock().unwrap() = vec![
        bound_pod("own", now),
        bound_pod("other", now),
        bound_pod(
            "old",
            now - k8s_openapi::jiff::SignedDuration::from_hours(1),
        ),
    ];
    // Taken in: the checkpoint (every tick here) lists it among the pods in flight.
    let open = dir.path().join("open.csv");
    wait_for("other taken in", || {
        std::fs::read_to_string(&open).is_ok_and(|t| t.contains("ml/other"))
    })
    .await;
    let gone = Instant::now();
    fake.departures.lock().unwrap().extend([
        (gone, "uid-own".to_string()),
        (gone, "uid-other".to_string()),
        (gone, "uid-old".to_string()),
    ]);
    fake.bound.lock().unwrap().clear();
    wait_for("both departures written", || {
        recorder.stats.counted(RecordOutcome::written) == 2
    })
    .await;
    assert!(stopper.finish(Duration::from_secs(5)), "the thread ends");
    let got = read_history(dir.path()).unwrap();
    let rows: Vec<&str> = got.text.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{}", got.text);
    for name in ["ml/own", "ml/other"] {
        let row = rows.iter().find(|r| r.contains(name));
        assert!(
            row.is_some_and(|r| r.contains(",Terminated,") && r.contains(",g,")),
            "{name}: {}",
            got.text
        );
    }
    assert!(!got.text.contains("ml/old"), "{}", got.text);
}

/// What a test's subscriber wrote.
#[derive(Debug, Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_disk_that_fills_mid_run_stops_recording_with_a_log_line_not_the_extender() {
    let log = Capture::default();
    let writer = log.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _one_at_a_time = FAILING.lock().await;
    let _guard = tracing::subscriber::set_default(sub);
    tracing::callsite::rebuild_interest_cache();
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    fake.leading.store(true, Ordering::Relaxed);
    let store = store();
    let (recorder, stopper) = start(settings(dir.path()), store.clone(), fake.clone()).unwrap();
    let ext = Extender::following(store, None, None, Some(recorder.clone()));
    wait_for("recording", || recorder.is_active()).await;
    filter_and_bind(&ext, "a", "600").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    fake.departures
        .lock()
        .unwrap()
        .push((Instant::now(), "uid-a".to_string()));
    wait_for("the first row written", || {
        recorder.stats.counted(RecordOutcome::written) == 1
    })
    .await;
    assert_eq!(recorder.stats.recording.get(), 1);
    // The disk fills: `open.csv`, rewritten (aside, then renamed) at every checkpoint, is
    // next written through a link to /dev/full, where every write fails with ENOSPC.
    // A checkpoint may have its own `.open.csv.tmp` in place this instant: wait until it is
    // renamed away (seen once on a loaded machine).
    let tmp = dir.path().join(".open.csv.tmp");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match std::os::unix::fs::symlink("/dev/full", &tmp) {
            Ok(()) => break,
            Err(e)
                if e.kind() == std::io::ErrorKind::AlreadyExists && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => panic!("linking {} to /dev/full: {e}", tmp.display()),
        }
    }
    wait_for("the failure counted", || {
        recorder.stats.counted(RecordOutcome::failed) >= 1
    })
    .await;
    assert!(!recorder.is_active());
    assert_eq!(recorder.stats.recording.get(), 0);
    let text = || String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    // The line follows the count (same thread, a moment later).
    wait_for("the error logged", || text().contains("recording stopped")).await;
    let text = text();
    let line = text
        .lines()
        .find(|l| l.contains("writing failed; recording stopped"))
        .unwrap_or_else(|| panic!("no error line in {text:?}"));
    assert!(
        line.contains("ERROR") && line.contains("No space left on device"),
        "{line}"
    );
    // The handlers answer as before, and nothing more is sent to the stopped recorder.
    let (f, b) = filter_and_bind(&ext, "b", "300").await;
    assert_eq!(
        (f["NodeNames"].clone(), b["Error"].clone()),
        (json!(["g"]), json!(""))
    );
    let (f, _) = filter_and_bind(&ext, "c", "600").await;
    assert!(f["FailedNodes"]["g"].is_string(), "no room left: {f}");
    assert_eq!(recorder.stats.counted(RecordOutcome::dropped), 0);
    assert!(
        stopper.finish(Duration::from_secs(5)),
        "the thread has ended"
    );
    // What was written before the disk filled still reads back.
    let got = read_history(dir.path()).unwrap();
    assert_eq!(got.rows(), 1, "{}", got.text);
}
