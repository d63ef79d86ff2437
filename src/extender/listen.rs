//! The extender's listeners, bounded by construction: a router from `server.rs` served on a
//! socket where a request's head and body must arrive within timeouts, at most
//! `max_connections` connections are served at once (further ones wait in the kernel's
//! accept queue; each port has its own budget, so a flood on the verbs port cannot starve
//! the probes), bodies over the limit are refused before they are read, and shutdown waits
//! at most `drain` for open connections. With [`Tls`] the verbs port speaks TLS (mutual TLS
//! with a client CA), the handshake held to the same timeout as a request's head, and HTTP/2
//! to a client that offers it: kube-scheduler's extender client does over TLS, and then sends
//! its filters and its concurrent binds on one connection, where over HTTP/1 it keeps two
//! idle and opens (and handshakes) a new one for every bind beyond them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::middleware;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use super::logging::{self, RateLimit};
use super::server::{self, Extender};
use super::tls::{H2, Tls};

mod body;
use body::{BodyRead, read_body};

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
        in_flight: Arc::new(Semaphore::new(max_connections.max(1))),
    };
    let app = app.layer(middleware::from_fn_with_state(body, read_body));
    let http = Protocols::new(limits, max_connections);
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
                        None => open.spawn(conn.serve(stream, false)),
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

/// How connections are served: HTTP/1.1, or HTTP/2 where TLS negotiated it.
#[derive(Clone)]
struct Protocols {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Protocols {
    fn new(limits: &Limits, max_streams: usize) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        // HTTP/2 sends a request's head in one frame, so there is no slow head to time out;
        // a peer that stops answering pings is closed instead. Its requests' bodies are read
        // within the same timeout and the same in-flight bound as HTTP/1's (`body.rs`).
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(u32::try_from(max_streams.max(1)).unwrap_or(u32::MAX))
            .keep_alive_interval(limits.header_read_timeout)
            .keep_alive_timeout(limits.header_read_timeout);
        Protocols { http1, http2 }
    }
}

/// One accepted connection, holding its slot until it ends.
struct Conn {
    http: Protocols,
    app: Router,
    _slot: OwnedSemaphorePermit,
    closing: watch::Receiver<bool>,
}

impl Conn {
    /// The TLS handshake within `timeout`, then [`Conn::serve`] in the protocol it agreed
    /// on. A failed handshake (no client certificate, an unknown CA, plain HTTP) is the
    /// client's doing: DEBUG only.
    async fn handshake(
        self,
        acceptor: tokio_rustls::TlsAcceptor,
        stream: TcpStream,
        timeout: Duration,
    ) {
        match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                let h2 = tls.get_ref().1.alpn_protocol() == Some(H2);
                self.serve(tls, h2).await;
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!("TLS handshake not finished in time"),
        }
    }

    /// Served over HTTP/2 (`h2`) or HTTP/1.1 until it closes or the server stops.
    async fn serve<S>(self, stream: S, h2: bool)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            http,
            app,
            _slot,
            closing,
        } = self;
        let (io, service) = (TokioIo::new(stream), TowerToHyperService::new(app));
        if h2 {
            until_closing(http.http2.serve_connection(io, service), closing).await;
        } else {
            until_closing(http.http1.serve_connection(io, service), closing).await;
        }
    }
}

/// A served connection of either protocol: it ends by itself, or is asked to finish.
trait Served: Future<Output = hyper::Result<()>> {
    /// Finish the requests in flight, take no new ones, then end.
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>);
}

/// What every connection serves: the router as a hyper service.
type Service = TowerToHyperService<Router>;

impl<S> Served for http1::Connection<TokioIo<S>, Service>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        http1::Connection::graceful_shutdown(self);
    }
}

impl<S> Served for http2::Connection<TokioIo<S>, Service, TokioExecutor>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        http2::Connection::graceful_shutdown(self);
    }
}

/// Serve `conn` until it closes or the server stops, then shut it down gracefully
/// (in-flight requests finish, an idle connection closes).
async fn until_closing(conn: impl Served, mut closing: watch::Receiver<bool>) {
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
