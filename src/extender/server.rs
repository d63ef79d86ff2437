//! HTTP: the verbs router (`--listen`) and the admin router (`--admin-listen`) over one
//! shared [`Extender`]; decoding, body cap, metrics, bad requests logged through
//! `logging.rs`. Decisions live in `verbs.rs`; sockets, timeouts and shutdown in `listen.rs`.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::binder::Binder;
use super::gauges::ClusterGauges;
use super::history::Recorder;
use super::logging;
use super::metrics::{Metrics, Outcome, Verb};
use super::state::Store;
use super::verbs::{self, VerbError};
use super::wire::{ExtenderArgs, ExtenderBindingArgs, ExtenderBindingResult};
use crate::live::WatchHealth;

/// Largest request body accepted. With `nodeCacheCapable: false` kube-scheduler sends full
/// Node objects: a few KiB each, but tens of KiB when `status.images` is long, so 8 MiB may
/// hold only a few hundred real nodes. Deployments should set `nodeCacheCapable: true`
/// (names only, ~30 bytes a node).
pub const BODY_LIMIT: usize = 8 << 20;

/// What the handlers share.
#[derive(Debug)]
pub struct Extender {
    pub store: Arc<Store>,
    pub metrics: Metrics,
    /// Writes Bindings to the API server; `None` serves a static snapshot (bind only
    /// records the placement).
    pub binder: Option<Binder>,
    /// The watches behind the store, when it follows a cluster: `/readyz` fails while one
    /// of them does (the store may be missing what changed since).
    pub watches: Option<Arc<WatchHealth>>,
    /// The workload history recorder (`--history-dir`), fed by filter and bind.
    pub history: Option<Recorder>,
}

impl Extender {
    pub fn new(store: Arc<Store>) -> Arc<Self> {
        Self::following(store, None, None, None)
    }

    /// An extender over a store that `watches` keep current, binding through `binder`,
    /// recording the workload history through `history`.
    pub fn following(
        store: Arc<Store>,
        binder: Option<Binder>,
        watches: Option<Arc<WatchHealth>>,
        history: Option<Recorder>,
    ) -> Arc<Self> {
        let mut metrics = Metrics::for_store(&store);
        if let Some(h) = &history {
            metrics.register_history(&h.stats);
        }
        Arc::new(Extender {
            store,
            metrics,
            binder,
            watches,
            history,
        })
    }
}

/// `/filter`, `/prioritize`, `/bind`, `/preempt`.
pub fn router(ext: Arc<Extender>) -> Router {
    Router::new()
        .route("/filter", post(filter))
        .route("/prioritize", post(prioritize))
        .route("/bind", post(bind))
        .route("/preempt", post(preempt))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            ext.clone(),
            count_version,
        ))
        .with_state(ext)
}

/// Count each verb request by its HTTP version.
async fn count_version(
    State(ext): State<Arc<Extender>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    ext.metrics.served(req.version());
    next.run(req).await
}

/// `/healthz`, `/readyz`, `/metrics`; `/gpus` and `/gpus.json` with `--gpu-map`.
pub fn admin_router(ext: Arc<Extender>) -> Router {
    let map = ext
        .store
        .keeps_decisions()
        .then(|| super::gpu_map::router(ext.store.clone()));
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(ext);
    match map {
        Some(map) => router.merge(map),
        None => router,
    }
}

async fn readyz(State(ext): State<Arc<Extender>>) -> Response {
    let failing = ext
        .watches
        .as_ref()
        .map(|w| w.failing())
        .unwrap_or_default();
    if !ext.store.is_ready() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster state not loaded yet\n",
        )
            .into_response()
    } else if !failing.is_empty() {
        let kinds: Vec<String> = failing
            .iter()
            .map(|(kind, since)| format!("{kind} ({} s)", since.as_secs()))
            .collect();
        let body = format!(
            "watches failing: {}; decisions use the state from before\n",
            kinds.join(", ")
        );
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    } else {
        (StatusCode::OK, "ready\n").into_response()
    }
}

async fn metrics(State(ext): State<Arc<Extender>>) -> Response {
    let view = ext.store.view();
    let gauges = ClusterGauges::of(&view);
    ext.metrics.set_cluster(&gauges, &ext.store.waiting());
    let body = ext.metrics.render(view.age(), view.cluster.len());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// A client mistake: 400 with a JSON body `{"Error": "..."}` naming what was wrong.
fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({ "Error": message })),
    )
        .into_response()
}

/// Decode, answer, time; `decide` returns the encoded answer (it may borrow from the
/// request) and the policy that decided, if any.
fn serve<A>(
    ext: &Extender,
    verb: Verb,
    body: &[u8],
    decide: impl FnOnce(&Store, &A) -> Result<(Response, Option<&'static str>), VerbError>,
) -> Response
where
    A: DeserializeOwned,
{
    let start = Instant::now();
    let answer = serde_json::from_slice::<A>(body)
        .map_err(|e| format!("invalid {} request: {e}", verb.name()))
        .and_then(|args| decide(&ext.store, &args).map_err(|e| e.to_string()));
    let (outcome, response) = match answer {
        Ok((result, policy)) => {
            if let Some(p) = policy {
                ext.metrics.decided(p);
            }
            (Outcome::Ok, result)
        }
        Err(message) => {
            logging::bad_request(verb.name(), &message);
            (Outcome::BadRequest, bad_request(message))
        }
    };
    ext.metrics.observe(verb, outcome, start.elapsed());
    response
}

fn json(answer: &impl Serialize) -> Response {
    axum::Json(answer).into_response()
}

async fn filter(State(ext): State<Arc<Extender>>, body: Bytes) -> Response {
    serve(&ext, Verb::Filter, &body, |s, a: &ExtenderArgs| {
        verbs::filter(s, a).map(|(r, p)| {
            if let Some(h) = &ext.history {
                h.note_filter(s, a.pod.as_ref(), &r);
            }
            (json(&r), p.map(|k| k.name()))
        })
    })
}

async fn prioritize(State(ext): State<Arc<Extender>>, body: Bytes) -> Response {
    serve(&ext, Verb::Prioritize, &body, |s, a| {
        verbs::prioritize(s, a).map(|(r, p)| (json(&r), p.map(|k| k.name())))
    })
}

async fn bind(State(ext): State<Arc<Extender>>, body: Bytes) -> Response {
    let start = Instant::now();
    let args = match serde_json::from_slice::<ExtenderBindingArgs>(&body) {
        Ok(args) => args,
        Err(e) => {
            let message = format!("invalid {} request: {e}", Verb::Bind.name());
            logging::bad_request(Verb::Bind.name(), &message);
            ext.metrics
                .observe(Verb::Bind, Outcome::BadRequest, start.elapsed());
            return bad_request(message);
        }
    };
    let mut error = String::new();
    // What the history records of the bind, read before the bind frees it.
    let recalled = ext
        .history
        .as_ref()
        .filter(|h| h.is_active())
        .and_then(|_| ext.store.recall(&args.pod_uid));
    match verbs::bind(&ext.store, &args) {
        Err(e) => {
            // kube-scheduler retries the pod; what refused it is worth a line.
            tracing::info!(pod = %format!("{}/{}", args.pod_namespace, args.pod_name), node = %args.node, reason = %e, "bind refused");
            error = e;
        }
        Ok(placed) => {
            if let Some(binder) = &ext.binder {
                let (ns, name) = (&args.pod_namespace, &args.pod_name);
                if let Err(e) = binder
                    .bind(ns, name, &args.pod_uid, &args.node, &placed)
                    .await
                {
                    tracing::warn!(pod = ?placed.key, node = ?args.node, error = %e, "bind failed");
                    ext.store.forget(&placed.uid);
                    error = format!("allot: binding {ns}/{name} to {}: {e}", args.node);
                }
            }
            if error.is_empty()
                && let Some(h) = &ext.history
            {
                h.note_bind(&ext.store, recalled, &placed, &args.node);
            }
        }
    }
    let outcome = if error.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Refused
    };
    ext.metrics.observe(Verb::Bind, outcome, start.elapsed());
    axum::Json(ExtenderBindingResult { error }).into_response()
}

async fn preempt(State(ext): State<Arc<Extender>>, body: Bytes) -> Response {
    serve(&ext, Verb::Preempt, &body, |s, a| {
        super::preempt::preempt(s, a).map(|r| (json(&r), None))
    })
}
