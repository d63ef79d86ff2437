//! The extender's listeners: how a router from `server.rs` is served on a socket, with the
//! limits every connection lives under.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

/// What a connection may hold of the process, and for how long.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A request's head must arrive within this.
    pub header_read_timeout: Duration,
    /// A request's body must arrive within this once its head has.
    pub body_read_timeout: Duration,
    /// Largest request body read.
    pub body_limit: usize,
    /// Connections served at once on the verbs port.
    pub max_connections: usize,
    /// Connections served at once on the admin port.
    pub admin_max_connections: usize,
    /// After the shutdown signal, open connections get this long to finish.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            body_limit: super::server::BODY_LIMIT,
            max_connections: 128,
            admin_max_connections: 32,
            drain: Duration::from_secs(10),
        }
    }
}

/// Serve `app` on `listener` until `stop` resolves, as `extender::serve` does today (the
/// limits are not applied yet).
pub async fn serve_router(
    listener: TcpListener,
    app: Router,
    _limits: &Limits,
    _max_connections: usize,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
}
