//! A stand-in API server for the agent's tests (the least powerful layer that shows the
//! publishing rules): serves the Node, records the NodeTelemetry applies, and can be told to
//! fail, answer 403 or 404, to play an outage or missing RBAC.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use serde_json::{Value, json};

/// Node UID the stand-in serves.
pub const UID: &str = "uid-1";

#[derive(Debug)]
pub struct MockApi {
    /// HTTP code for `GET /api/v1/nodes/{name}` (200: a Node with 4 CPUs and 8Gi).
    pub node_code: AtomicU16,
    /// HTTP code for the object apply.
    pub object_code: AtomicU16,
    /// HTTP code for the status apply.
    pub status_code: AtomicU16,
    /// Every status apply attempt, answered or not.
    pub status_attempts: AtomicUsize,
    /// Bodies of the object applies answered 200.
    pub objects: Mutex<Vec<Value>>,
    /// Bodies of the status applies answered 200.
    pub statuses: Mutex<Vec<Value>>,
}

impl Default for MockApi {
    fn default() -> Self {
        Self {
            node_code: AtomicU16::new(200),
            object_code: AtomicU16::new(200),
            status_code: AtomicU16::new(200),
            status_attempts: AtomicUsize::new(0),
            objects: Mutex::new(Vec::new()),
            statuses: Mutex::new(Vec::new()),
        }
    }
}

impl MockApi {
    pub fn statuses(&self) -> Vec<Value> {
        self.statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn objects(&self) -> Vec<Value> {
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn failure(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": format!("stand-in says {code}"), "reason": "Test", "code": code,
    });
    (status, axum::Json(body)).into_response()
}

async fn node(State(api): State<Arc<MockApi>>, Path(name): Path<String>) -> Response {
    match api.node_code.load(Ordering::SeqCst) {
        200 => axum::Json(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": { "name": name, "uid": UID },
            "status": { "allocatable": { "cpu": "4", "memory": "8Gi" } },
        }))
        .into_response(),
        code => failure(code),
    }
}

async fn object(State(api): State<Arc<MockApi>>, body: axum::body::Bytes) -> Response {
    match api.object_code.load(Ordering::SeqCst) {
        200 => {
            let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            api.objects
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(value.clone());
            axum::Json(value).into_response()
        }
        code => failure(code),
    }
}

async fn status(
    State(api): State<Arc<MockApi>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    api.status_attempts.fetch_add(1, Ordering::SeqCst);
    match api.status_code.load(Ordering::SeqCst) {
        200 => {
            let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            api.statuses
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(value.clone());
            axum::Json(json!({
                "apiVersion": "allot.dev/v1alpha1", "kind": "NodeTelemetry",
                "metadata": { "name": name },
                "spec": { "nodeName": name },
                "status": value["status"],
            }))
            .into_response()
        }
        code => failure(code),
    }
}

/// Serve `api` on a free local port; a client for it.
pub async fn serve(api: Arc<MockApi>) -> kube::Client {
    let router = Router::new()
        .route("/api/v1/nodes/{name}", get(node))
        .route(
            "/apis/allot.dev/v1alpha1/nodetelemetries/{name}",
            patch(object),
        )
        .route(
            "/apis/allot.dev/v1alpha1/nodetelemetries/{name}/status",
            patch(status),
        )
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a local port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    let url: axum::http::Uri = format!("http://{addr}").parse().expect("a URL");
    kube::Client::try_from(kube::Config::new(url)).expect("a client")
}
