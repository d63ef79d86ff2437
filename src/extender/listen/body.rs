//! How a request's body is read before a handler sees it: whole, within a time and a size,
//! and with at most as many bodies held at once as the port serves connections (an HTTP/2
//! connection carries many requests; this keeps the bound on buffered bodies the HTTP/1
//! connection cap gave).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::extender::logging;

/// How a request's body is read before a handler sees it.
#[derive(Debug, Clone)]
pub(super) struct BodyRead {
    pub timeout: Duration,
    pub limit: usize,
    /// One permit per request being read or handled.
    pub in_flight: Arc<Semaphore>,
}

/// Read the whole body within the timeout and the limit, or answer 408 / 413 (see
/// [`refuse`]). The request first waits for a permit, held until the handler has answered,
/// so a verb waiting on the API server (a bind) counts too.
pub(super) async fn read_body(State(rules): State<BodyRead>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let version = parts.version;
    let no = move |status, message| refuse(status, message, version);
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > rules.limit as u64) {
        let over = format!(
            "request body of {n} bytes is over the limit of {}",
            rules.limit
        );
        return no(StatusCode::PAYLOAD_TOO_LARGE, over);
    }
    let Ok(_permit) = rules.in_flight.clone().acquire_owned().await else {
        return no(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down".to_string(),
        );
    };
    match tokio::time::timeout(rules.timeout, axum::body::to_bytes(body, rules.limit)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => no(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body over the limit of {} bytes, or cut off",
                rules.limit
            ),
        ),
        Err(_) => no(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "request body not received within {} s",
                rules.timeout.as_secs_f64()
            ),
        ),
    }
}

/// `{"Error": message}` with `status`. Over HTTP/1 it closes the connection, the rest of whose
/// body was not read; over HTTP/2 (which has no such header) only the request's stream ends.
fn refuse(status: StatusCode, message: String, version: Version) -> Response {
    logging::bad_request("http", &message);
    let mut response =
        (status, axum::Json(serde_json::json!({ "Error": message }))).into_response();
    if version < Version::HTTP_2 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
