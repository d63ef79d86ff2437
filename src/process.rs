//! Process plumbing shared by the long-running roles (`extender`, `controller`, `agent`):
//! logging to stderr, filtered by `RUST_LOG` (default [`DEFAULT_LOG`]), one event a line whatever its
//! fields hold, and waiting for SIGTERM or ctrl-c.

pub mod failpoint;

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::util::SubscriberInitExt as _;

/// What is logged when `RUST_LOG` is unset.
pub const DEFAULT_LOG: &str = "info";

/// kube's client logs every failed request at ERROR (one line per retry, ~4 a second while
/// the API server is down); the roles report failures themselves, once per outage (watches,
/// the Lease, binds). Off unless `RUST_LOG` names `kube_client` itself.
const QUIET_KUBE_CLIENT: &str = "kube_client::client::builder=off";

/// The log filter for `RUST_LOG` (`None`: unset).
pub fn log_filter(rust_log: Option<&str>) -> EnvFilter {
    let spec = rust_log
        .filter(|s| !s.trim().is_empty())
        .unwrap_or(DEFAULT_LOG);
    let filter = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG));
    if spec.contains("kube_client") {
        return filter;
    }
    match QUIET_KUBE_CLIENT.parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

/// Log to stderr; colours only on a terminal. Calling it twice is harmless.
pub fn init_tracing() {
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
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
        .fmt_fields(EscapedFields)
        .finish()
}

/// Formats an event's and its spans' fields as `name=value`, the message bare, with every
/// control character escaped (`\n`, `\r`, `\t`, `\u{1b}`): a newline or a terminal escape
/// in a pod or node name, however it is logged (`%name` included), cannot start a line of
/// its own or repaint the terminal.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = Escaping {
            out: Escape(writer),
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Escaping<'w> {
    out: Escape<Writer<'w>>,
    first: bool,
    result: fmt::Result,
}

impl Visit for Escaping<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        // Metadata of `log` records, already shown in the line's prefix.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let pad = if std::mem::take(&mut self.first) {
            ""
        } else {
            " "
        };
        self.result = match name {
            "message" => write!(self.out, "{pad}{value:?}"),
            name => {
                let name = name.strip_prefix("r#").unwrap_or(name);
                write!(self.out, "{pad}{name}={value:?}")
            }
        };
    }
}

/// Writes through, escaping control characters (a line's own newline is written by the
/// formatter, not through here).
struct Escape<W>(W);

impl<W: fmt::Write> fmt::Write for Escape<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(char::is_control) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or('\0');
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
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
    runtime_with(None)
}

/// [`runtime`] with `threads` worker threads (`None`: one per core).
pub fn runtime_with(threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n);
    }
    builder
        .enable_all()
        .build()
        .context("starting the async runtime")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_clients_retry_errors_are_off_unless_rust_log_names_kube_client() {
        for spec in [
            None,
            Some(""),
            Some("info"),
            Some("debug,allot=trace"),
            Some("bad["),
        ] {
            let text = super::log_filter(spec).to_string();
            assert!(
                text.contains("kube_client::client::builder=off"),
                "{spec:?}: {text}"
            );
        }
        let text = super::log_filter(Some("info,kube_client=debug")).to_string();
        assert!(!text.contains("=off"), "{text}");
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        let mut out = Escape(String::new());
        write!(out, "a\nb\r\tc\u{1b}[2J é\u{85}\\n").unwrap();
        assert_eq!(out.0, "a\\nb\\r\\tc\\u{1b}[2J é\\u{85}\\n");
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
struct BuildLabels {
    role: &'static str,
    version: &'static str,
}

/// Register `allot_build_info{role, version} 1`, which every role exports, in `registry`.
pub fn register_build_info(
    registry: &mut prometheus_client::registry::Registry,
    role: &'static str,
) {
    use prometheus_client::metrics::{family::Family, gauge::Gauge};
    let info = Family::<BuildLabels, Gauge>::default();
    info.get_or_create(&BuildLabels {
        role,
        version: env!("CARGO_PKG_VERSION"),
    })
    .set(1);
    registry.register(
        "allot_build_info",
        "The role and version of this allot process (value 1)",
        info,
    );
}

/// A client for the cluster this process serves (kubeconfig or in-cluster service account),
/// with a one-line error when there is none or it cannot be read.
pub async fn kube_client() -> anyhow::Result<kube::Client> {
    client_from(kube_config().await?)
}

/// A client that does not retry what the API server turns down as too many requests (429):
/// for calls where 429 is an answer, not congestion, as an eviction a PodDisruptionBudget
/// forbids (kube's default client retries it for minutes).
pub async fn kube_client_without_retry() -> anyhow::Result<kube::Client> {
    let mut config = kube_config().await?;
    config.default_retry = false;
    client_from(config)
}

fn client_from(config: kube::Config) -> anyhow::Result<kube::Client> {
    let url = config.cluster_url.clone();
    kube::Client::try_from(config)
        .map_err(|e| anyhow::anyhow!("a client for the API server at {url}: {}", innermost(&e)))
}

/// The cluster configuration (kubeconfig or in-cluster), or an error that says where it looked.
async fn kube_config() -> anyhow::Result<kube::Config> {
    match kube::Config::infer().await {
        Ok(config) => Ok(config),
        Err(e) => {
            let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
            let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
            let default = home.map(|h| h.join(".kube/config"));
            let kubeconfig = std::env::var_os("KUBECONFIG").is_some_and(|k| !k.is_empty())
                || default.is_some_and(|d| d.exists());
            if !in_cluster && !kubeconfig {
                anyhow::bail!("no kubeconfig found: set KUBECONFIG or run inside a cluster");
            }
            let which = std::env::var("KUBECONFIG")
                .ok()
                .filter(|k| !k.is_empty())
                .map_or_else(String::new, |k| format!(" (KUBECONFIG={k})"));
            anyhow::bail!(
                "reading the cluster configuration{which}: {}",
                innermost(&e)
            );
        }
    }
}

/// The first line of the deepest cause of `e`: kube's errors repeat each layer's text in the
/// one above it, and a YAML error goes on with a drawing of the input.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches(':')
        .to_string()
}
