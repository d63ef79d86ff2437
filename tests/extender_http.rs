//! Router tests for `allot extender` (no network: `tower::ServiceExt::oneshot`): golden wire
//! fixtures in kube-scheduler's exact format, bad input, and back-to-back binds.
#![cfg(feature = "k8s")]
// Test helpers panic on purpose: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use allot::extender::server::{Extender, admin_router, router};
use allot::extender::{load_store, snapshot_store};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extender")
}

/// The fixtures' extender, passing every feasible node (the golden answers list them all).
fn extender() -> Arc<Extender> {
    Extender::new(Arc::new(
        load_store(
            &fixtures().join("cluster.json"),
            allot::extender::state::DEFAULT_SEED,
        )
        .unwrap()
        .with_filter_answer(allot::extender::FilterAnswer::Feasible),
    ))
}

async fn call(ext: &Arc<Extender>, verb: &str, body: impl Into<Body>) -> (StatusCode, Value) {
    let req = Request::post(format!("/{verb}"))
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    let resp = router(ext.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

async fn post(ext: &Arc<Extender>, verb: &str, body: &Value) -> (StatusCode, Value) {
    call(ext, verb, body.to_string()).await
}

/// Each fixture: `before` requests, then `request` whose answer must equal `response`.
/// `ALLOT_BLESS=1` rewrites the expected responses from what the code answers.
async fn golden(name: &str) {
    let path = fixtures().join(format!("{name}.json"));
    let mut case: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let ext = extender();
    for step in case["before"].as_array().cloned().unwrap_or_default() {
        let (status, _) = post(&ext, step["verb"].as_str().unwrap(), &step["request"]).await;
        assert_eq!(status, StatusCode::OK, "{name}: setup step");
    }
    let (status, got) = post(&ext, case["verb"].as_str().unwrap(), &case["request"]).await;
    if std::env::var_os("ALLOT_BLESS").is_some() {
        case["status"] = json!(status.as_u16());
        case["response"] = got;
        std::fs::write(&path, serde_json::to_string_pretty(&case).unwrap() + "\n").unwrap();
        return;
    }
    assert_eq!(status.as_u16(), case["status"], "{name}: status");
    assert_eq!(
        got, case["response"],
        "{name}: response differs from the fixture"
    );
}

#[tokio::test]
async fn golden_filter_node_names() {
    golden("filter_node_names").await;
}

#[tokio::test]
async fn golden_filter_nodes() {
    golden("filter_nodes").await;
}

#[tokio::test]
async fn golden_prioritize() {
    golden("prioritize").await;
}

#[tokio::test]
async fn golden_bind() {
    golden("bind").await;
}

#[tokio::test]
async fn golden_preempt_meta() {
    golden("preempt_meta").await;
}

#[tokio::test]
async fn golden_preempt_victims() {
    golden("preempt_victims").await;
}

fn share_pod(name: &str, milli: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "ml", "uid": format!("uid-{name}"),
                     "annotations": {"allot.dev/gpu-milli": milli}},
        "spec": {"containers": [{"name": "main", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}
    })
}

#[tokio::test]
async fn bad_input_gets_4xx_with_a_message() {
    let ext = extender();
    let (s, v) = call(&ext, "filter", "{\"Pod\": ").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["Error"]
            .as_str()
            .unwrap()
            .contains("invalid filter request"),
        "{v}"
    );

    let (s, v) = post(&ext, "filter", &json!({"NodeNames": ["gpu-a100-1"]})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["Error"], "request has no Pod");
    let (s, _) = post(&ext, "prioritize", &json!({"Pod": null, "NodeNames": []})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = post(&ext, "preempt", &json!({"NodeNameToMetaVictims": {}})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (s, v) = post(
        &ext,
        "filter",
        &json!({"Pod": share_pod("p", "100"), "NodeNames": 5}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = post(&ext, "bind", &json!({"PodName": 3})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = post(&ext, "filter", &json!({"Pod": share_pod("p", "100")})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let huge = format!(
        "{{\"Pod\": null, \"NodeNames\": [\"{}\"]}}",
        "x".repeat(9 << 20)
    );
    let (s, _) = call(&ext, "filter", huge).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn invalid_annotations_come_back_in_error() {
    let ext = extender();
    for (milli, needle) in [
        ("abc", "\"abc\""),
        ("2000", "2000 is out of range"),
        ("0", "0 is out of range"),
    ] {
        let body = json!({"Pod": share_pod("p", milli), "NodeNames": ["gpu-a100-1"]});
        let (s, v) = post(&ext, "filter", &body).await;
        assert_eq!(s, StatusCode::OK);
        let e = v["Error"].as_str().unwrap();
        assert!(
            e.contains("allot.dev/gpu-milli") && e.contains(needle),
            "{e}"
        );
        assert!(v["NodeNames"].is_null(), "{v}");
    }
    let mut both = share_pod("p", "300");
    both["spec"]["containers"][0]["resources"]["limits"] = json!({"nvidia.com/gpu": "1"});
    let (_, v) = post(&ext, "filter", &json!({"Pod": both, "NodeNames": []})).await;
    assert!(
        v["Error"]
            .as_str()
            .unwrap()
            .contains("conflicts with nvidia.com/gpu"),
        "{v}"
    );
    let mut policy = share_pod("p", "300");
    policy["metadata"]["annotations"]["allot.dev/policy"] = json!("magic");
    let (_, v) = post(&ext, "filter", &json!({"Pod": policy, "NodeNames": []})).await;
    let e = v["Error"].as_str().unwrap();
    assert!(
        e.contains("allot.dev/policy") && e.contains("\"magic\""),
        "{e}"
    );
    // prioritize answers zeros for a pod filter rejected
    let (s, v) = post(
        &ext,
        "prioritize",
        &json!({"Pod": share_pod("p", "abc"), "NodeNames": ["gpu-a100-1"]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!([{"Host": "gpu-a100-1", "Score": 0}]));
}

#[tokio::test]
async fn unknown_and_duplicate_names() {
    let ext = extender();
    let names = ["gpu-a100-2", "ghost", "gpu-a100-2", "ghost", "gpu-a100-1"];
    let body = json!({"Pod": share_pod("p", "100"), "NodeNames": names});
    let (s, v) = post(&ext, "filter", &body).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["NodeNames"], json!(["gpu-a100-2", "gpu-a100-1"]));
    assert_eq!(v["FailedNodes"], json!({"ghost": "node unknown to allot"}));
    let (_, v) = post(&ext, "prioritize", &body).await;
    let hosts: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["Host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["gpu-a100-2", "ghost", "gpu-a100-1"]);
    assert_eq!(v[1]["Score"], 0);
}

#[tokio::test]
async fn back_to_back_shares_never_overbook() {
    let ext = extender();
    // gpu-a100-1 has device 2 at 500 free and device 3 at 1000: room for exactly three 450s.
    let mut devices = Vec::new();
    for i in 0..4 {
        let pod = share_pod(&format!("s{i}"), "450");
        let (_, f) = post(
            &ext,
            "filter",
            &json!({"Pod": pod, "NodeNames": ["gpu-a100-1"]}),
        )
        .await;
        let bind = json!({"PodName": format!("s{i}"), "PodNamespace": "ml",
                          "PodUID": format!("uid-s{i}"), "Node": "gpu-a100-1"});
        let (s, b) = post(&ext, "bind", &bind).await;
        assert_eq!(s, StatusCode::OK);
        if i < 3 {
            assert_eq!(f["NodeNames"], json!(["gpu-a100-1"]), "pod {i}: {f}");
            assert_eq!(b["Error"], "", "pod {i}");
        } else {
            assert!(
                f["FailedNodes"]["gpu-a100-1"]
                    .as_str()
                    .unwrap()
                    .contains("no GPU has 450"),
                "{f}"
            );
            assert!(
                b["Error"].as_str().unwrap().contains("no longer fits"),
                "{b}"
            );
        }
        let view = ext.store.view();
        devices.push(view.cluster.nodes()[0].gpu_free().to_vec());
    }
    assert_eq!(devices[2], [0, 0, 50, 100]);
    assert_eq!(devices[3], devices[2]);
    // binding the same pod twice is refused, not double-counted
    let again =
        json!({"PodName": "s0", "PodNamespace": "ml", "PodUID": "uid-s0", "Node": "gpu-a100-2"});
    let (_, b) = post(&ext, "bind", &again).await;
    assert!(
        b["Error"].as_str().unwrap().contains("already bound"),
        "{b}"
    );
    // a pod filter never saw cannot be bound
    let unseen =
        json!({"PodName": "x", "PodNamespace": "ml", "PodUID": "nope", "Node": "gpu-a100-2"});
    let (_, b) = post(&ext, "bind", &unseen).await;
    assert!(
        b["Error"].as_str().unwrap().contains("was not filtered"),
        "{b}"
    );
}

#[tokio::test]
async fn admin_endpoints() {
    let ext = extender();
    let _ = post(
        &ext,
        "prioritize",
        &json!({"Pod": share_pod("p", "100"), "NodeNames": ["gpu-a100-2"]}),
    )
    .await;
    // A bind the extender turns down is answered (200, with Error) but not counted as ok.
    let unseen = json!({"PodName": "x", "PodNamespace": "ml", "PodUID": "u", "Node": "gpu-a100-2"});
    let (_, refused) = post(&ext, "bind", &unseen).await;
    assert!(!refused["Error"].as_str().unwrap_or_default().is_empty());
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    let resp = admin_router(ext.clone())
        .oneshot(get("/readyz"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = admin_router(ext.clone())
        .oneshot(get("/healthz"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = admin_router(ext.clone())
        .oneshot(get("/metrics"))
        .await
        .unwrap();
    let text = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&text);
    for needle in [
        "allot_extender_requests_total{verb=\"prioritize\",outcome=\"ok\"} 1",
        "allot_extender_requests_total{verb=\"bind\",outcome=\"refused\"} 1",
        "allot_extender_request_duration_seconds_bucket{",
        "allot_extender_decisions_total{policy=\"learned\"} 1",
        "allot_extender_snapshot_age_seconds",
        "allot_extender_nodes 4",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
    let empty = Extender::new(Arc::new(allot::extender::state::Store::new(
        None,
        Vec::new(),
    )));
    let resp = admin_router(empty).oneshot(get("/readyz")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    // a store from an in-memory snapshot serves too
    let snap = allot::snapshot::parse_snapshot(
        "inline",
        r#"{"nodes": [{"name": "n", "cpu": "8", "memory": "16Gi", "gpus": 1, "model": "T4"}]}"#,
    )
    .unwrap();
    let store = snapshot_store(snap);
    assert!(store.is_ready());
}
