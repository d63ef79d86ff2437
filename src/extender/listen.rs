//! The extender's listeners, bounded by construction: a router from `server.rs` served on a
//! socket where a request's head and body must arrive within timeouts, at most
//! `max_connections` connections are served at once (further ones wait in the kernel's
//! accept queue; each port has its own budget, so a flood on the verbs port cannot starve
//! the probes), bodies over the limit are refused before they are read, and shutdown waits
//! at most `drain` for open connections. With [`Tls`] the verbs port speaks TLS (mutual TLS
//! with a client CA), the handshake held to the same timeout as a request's head.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use super::logging::{self, RateLimit};
use super::server::{self, Extender};
use super::tls::Tls;

/// What a connection may hold of the process, and for how long. Each field is a setting of
/// `allot extender` with the default below.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A request's head must arrive within this; it also closes a keep-alive connection idle
    /// this long.
    pub header_read_timeout: Duration,
    /// A request's body must arrive within this once its head has.
    pub body_read_timeout: Duration,
    /// Largest request body read; a larger Content-Length is refused before reading.
    pub body_limit: usize,
    /// Connections served at once on the verbs port.
    pub max_connections: usize,
    /// Connections served at once on the admin port.
    pub admin_max_connections: usize,
    /// After the shutdown signal, open connections get this long to finish, then are closed.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // kube-scheduler sends a request's head in one write; 10 s is generous on any
            // network and closes idle keep-alive connections long before Go's 90 s.
            header_read_timeout: Duration::from_secs(10),
            // kube-scheduler's extender httpTimeout defaults to 30 s: a body slower than
            // that has been given up on by its sender.
            body_read_timeout: Duration::from_secs(30),
            body_limit: server::BODY_LIMIT,
            // kube-scheduler keeps a few connections (its binds run in parallel); 128 is far
            // below a 1,024 file limit and bounds buffered bodies at 128 x 8 MiB.
            max_connections: 128,
            // Probes and a Prometheus scraper or two.
            admin_max_connections: 32,
            // Well inside Kubernetes' default 30 s termination grace period, which the
            // controller's Lease hand-over also needs a moment of.
            drain: Duration::from_secs(10),
        }
    }
}

/// Pause after a failed accept (out of file descriptors, say) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serve the verbs on `listen` and the admin endpoints on `admin` (with the embedded
/// controller's under `/controller/`) until SIGTERM or ctrl-c, within [`Limits::default`].
pub async fn serve(
    ext: Arc<Extender>,
    listen: SocketAddr,
    admin: SocketAddr,
    controller_admin: Option<Router>,
) -> anyhow::Result<()> {
    let stop = crate::process::shutdown_signal();
    serve_until(
        ext,
        (listen, None),
        admin,
        controller_admin,
        &Limits::default(),
        stop,
    )
    .await
}

/// [`serve`] within `limits` until `stop` resolves, the verbs over `tls` when given.
pub async fn serve_until(
    ext: Arc<Extender>,
    (listen, tls): (SocketAddr, Option<Arc<Tls>>),
    admin: SocketAddr,
    controller_admin: Option<Router>,
    limits: &Limits,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let verbs_listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding --listen {listen}"))?;
    let admin_listener = TcpListener::bind(admin)
        .await
        .with_context(|| format!("binding --admin-listen {admin}"))?;
    let scheme = match &tls {
        None => "http",
        Some(t) if t.mutual() => "https, client certificates required",
        Some(_) => "https",
    };
    tracing::info!(%listen, %admin, verbs = scheme, "extender serving");
    if let Some(tls) = &tls {
        tokio::spawn(tls.clone().follow());
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut admin_app = server::admin_router(ext.clone());
    if let Some(router) = controller_admin {
        admin_app = admin_app.nest("/controller", router);
    }
    let (verbs_cap, admin_cap) = (limits.max_connections, limits.admin_max_connections);
    let verbs = serve_router(
        (verbs_listener, tls),
        server::router(ext),
        limits,
        verbs_cap,
        stopped(stop_rx.clone()),
    );
    let admin = serve_router(
        (admin_listener, None),
        admin_app,
        limits,
        admin_cap,
        stopped(stop_rx),
    );
    tokio::spawn(async move {
        stop.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let (a, b) = tokio::join!(verbs, admin);
    a.context("verbs server")?;
    b.context("admin server")?;
    Ok(())
}

/// Serve `app` on `listener` (over `tls` when given), at most `max_connections` at once,
/// until `stop` resolves; then stop accepting, let open connections finish for
/// `limits.drain`, and close the rest.
pub async fn serve_router(
    (listener, tls): (TcpListener, Option<Arc<Tls>>),
    app: Router,
    limits: &Limits,
    max_connections: usize,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let body = BodyRead {
        timeout: limits.body_read_timeout,
        limit: limits.body_limit,
    };
    let app = app.layer(middleware::from_fn_with_state(body, read_body));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let (closing_tx, closing) = watch::channel(false);
    let mut open = JoinSet::new();
    let accept_errors = RateLimit::new(logging::SUMMARY_EVERY);
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            biased;
            () = &mut stop => break,
            Some(_) = open.join_next(), if !open.is_empty() => {}
            accepted = accept(&listener, &slots) => match accepted {
                Ok((stream, slot)) => {
                    let _ = stream.set_nodelay(true);
                    let conn = Conn { http: http.clone(), app: app.clone(), _slot: slot, closing: closing.clone() };
                    match &tls {
                        None => open.spawn(conn.serve(stream)),
                        Some(tls) => open.spawn(conn.handshake(tls.acceptor(), stream, limits.header_read_timeout)),
                    };
                }
                Err(e) => {
                    if let Some(s) = accept_errors.note(std::time::Instant::now()) {
                        tracing::warn!(error = %e, count = s.count, "accepting connections failed");
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let drain = async { while open.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.drain, drain).await.is_err() {
        tracing::warn!(
            open = open.len(),
            drain_seconds = limits.drain.as_secs_f64(),
            "connections still open after the drain; closing them"
        );
        open.shutdown().await;
    }
    Ok(())
}

/// A free slot, then a connection to fill it.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> std::io::Result<(TcpStream, OwnedSemaphorePermit)> {
    let slot = slots
        .clone()
        .acquire_owned()
        .await
        .map_err(std::io::Error::other)?;
    let (stream, _) = listener.accept().await?;
    Ok((stream, slot))
}

/// One accepted connection, holding its slot until it ends.
struct Conn {
    http: http1::Builder,
    app: Router,
    _slot: OwnedSemaphorePermit,
    closing: watch::Receiver<bool>,
}

impl Conn {
    /// The TLS handshake within `timeout`, then [`Conn::serve`]. A failed handshake (no
    /// client certificate, an unknown CA, plain HTTP) is the client's doing: DEBUG only.
    async fn handshake(
        self,
        acceptor: tokio_rustls::TlsAcceptor,
        stream: TcpStream,
        timeout: Duration,
    ) {
        match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => self.serve(tls).await,
            Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!("TLS handshake not finished in time"),
        }
    }

    /// Served until it closes or the server stops, then shut down gracefully (in-flight
    /// requests finish, idle keep-alive closes).
    async fn serve<S>(self, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            http,
            app,
            _slot,
            closing,
        } = self;
        connection(http, stream, app, closing).await;
    }
}

async fn connection<S>(
    http: http1::Builder,
    stream: S,
    app: Router,
    mut closing: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    let stopping = async move {
        let _ = closing.wait_for(|c| *c).await;
    };
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = stopping => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        // Timeouts and resets: the client's doing, one per connection; DEBUG only.
        tracing::debug!(error = %e, "connection ended");
    }
}

/// How a request's body is read before a handler sees it.
#[derive(Debug, Clone, Copy)]
struct BodyRead {
    timeout: Duration,
    limit: usize,
}

/// Read the whole body within the timeout and the limit, or answer 408 / 413 and close.
async fn read_body(State(rules): State<BodyRead>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
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
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, over);
    }
    match tokio::time::timeout(rules.timeout, axum::body::to_bytes(body, rules.limit)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body over the limit of {} bytes, or cut off",
                rules.limit
            ),
        ),
        Err(_) => refuse(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "request body not received within {} s",
                rules.timeout.as_secs_f64()
            ),
        ),
    }
}

/// `{"Error": message}` with `status`, closing the connection (its body was not read).
fn refuse(status: StatusCode, message: String) -> Response {
    logging::bad_request("http", &message);
    let mut response =
        (status, axum::Json(serde_json::json!({ "Error": message }))).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
