//! Process plumbing shared by the long-running roles (`extender`, `controller`, `agent`):
//! logging to stderr, filtered by `RUST_LOG` (default `info`), and waiting for SIGTERM or
//! ctrl-c.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Log to stderr; colours only on a terminal. Calling it twice is harmless.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = log_subscriber(filter, std::io::stderr, ansi).try_init();
}

/// The subscriber [`init_tracing`] installs, writing to `writer` (tests capture the log with it).
pub fn log_subscriber<W>(
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .finish()
}

/// Resolves on SIGTERM (how Kubernetes stops a pod) or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// The address given to `flag` (e.g. `--listen`), or an error that names the flag.
pub fn listen_address(flag: &str, text: &str) -> anyhow::Result<std::net::SocketAddr> {
    text.parse()
        .map_err(|_| anyhow::anyhow!("{flag} {text:?} is not HOST:PORT (e.g. 127.0.0.1:8888)"))
}

/// A multi-threaded tokio runtime for a long-running role.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
