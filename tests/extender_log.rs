//! What bad extender requests write to the log, captured through the subscriber
//! `allot extender` installs: user strings cannot forge a log line, and a flood of bad
//! requests is summarised instead of logged one by one (issue 16, defect 4).
#![cfg(feature = "k8s")]
// Test helpers panic on purpose: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use allot::extender::server::{Extender, router};
use allot::extender::{load_store, state::DEFAULT_SEED};
use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use tower::ServiceExt;
use tracing_subscriber::EnvFilter;

/// Everything the subscriber writes, shared with the test.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Install the production subscriber at `level` on this thread until the guard drops.
fn capture(level: &str) -> (Capture, tracing::subscriber::DefaultGuard) {
    let out = Capture::default();
    let writer = out.clone();
    let sub = allot::process::log_subscriber(EnvFilter::new(level), move || writer.clone(), false);
    (out, tracing::subscriber::set_default(sub))
}

fn extender() -> Arc<Extender> {
    let cluster =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extender/cluster.json");
    Extender::new(Arc::new(load_store(&cluster, DEFAULT_SEED).unwrap()))
}

async fn call(ext: &Arc<Extender>, verb: &str, body: String) -> u16 {
    let req = Request::post(format!("/{verb}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    router(ext.clone())
        .oneshot(req)
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn fixture_request(name: &str) -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/extender/{name}.json"));
    let case: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    case["request"].clone()
}

/// Text that would read as a log line of its own if written raw.
const FORGED: &str = "2026-12-04T20:00:00.000000Z  WARN allot: FORGED admin password reset";

#[tokio::test]
async fn newlines_in_request_strings_do_not_forge_log_lines() {
    let ext = extender();
    let (out, _guard) = capture("debug");
    // The pod is filtered, then bound to a node whose name carries a forged line: the bind
    // is refused and logged with the node's name.
    let filter = fixture_request("filter_node_names");
    assert_eq!(call(&ext, "filter", filter.to_string()).await, 200);
    let mut bind = fixture_request("bind");
    bind["Node"] = json!(format!("gpu-a100-1\n{FORGED}"));
    call(&ext, "bind", bind.to_string()).await;
    // A pod and node names with control characters through /filter.
    let mut filter = fixture_request("filter_node_names");
    filter["Pod"]["metadata"]["name"] = json!(format!("nb\r\n{FORGED}"));
    filter["NodeNames"] = json!([format!("gpu\n{FORGED}"), "gpu-a100-1"]);
    call(&ext, "filter", filter.to_string()).await;
    // Undecodable bodies whose text reaches the error message.
    call(
        &ext,
        "bind",
        format!("{{\"Node\": 7, \"PodName\": \"\n{FORGED}\""),
    )
    .await;
    call(
        &ext,
        "filter",
        format!("{{\"Pod\": \"x\n{FORGED}\u{1b}[2J\"}}"),
    )
    .await;

    let log = out.text();
    assert!(
        log.contains("FORGED"),
        "the requests were not logged at all:\n{log}"
    );
    for line in log.lines() {
        assert!(
            !line.starts_with(FORGED) && !line.starts_with("FORGED"),
            "a request string forged a log line:\n{log}"
        );
    }
    let controls: Vec<char> = log
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(
        controls.is_empty(),
        "control characters {controls:?} in the log:\n{log}"
    );
}

#[tokio::test]
async fn a_flood_of_bad_requests_writes_a_handful_of_lines() {
    let ext = extender();
    let (out, _guard) = capture("info");
    let bodies = [
        ("filter", "{".to_string()),
        ("prioritize", "[]".to_string()),
        ("preempt", "{\"Pod\": 1}".to_string()),
        ("bind", "{\"Node\": []}".to_string()),
    ];
    for i in 0..1000 {
        let (verb, body) = &bodies[i % bodies.len()];
        assert_eq!(call(&ext, verb, body.clone()).await, 400);
    }
    let log = out.text();
    let lines = log.lines().count();
    assert!(
        lines <= 3,
        "1,000 bad requests wrote {lines} lines at INFO and above; the first:\n{}",
        log.lines().take(5).collect::<Vec<_>>().join("\n")
    );
}
