//! `allot extender`: kube-scheduler's extender protocol over HTTP. A request flows
//! `server` (decode, cap, time) -> `verbs` (filter / prioritize / bind / preempt) ->
//! `pod` (the pod interface) and `state` (snapshot + recent placements) -> the core
//! `model` and `policy`, the same code `allot simulate` measures.

mod fxhash;
pub mod metrics;
pub mod pod;
pub mod server;
pub mod state;
pub mod verbs;
pub mod wire;

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::cli::ExtenderArgs;
use crate::model::{ModelSet, PodShape};
use state::{ClusterSnapshot, Store};

/// The workload FGD targets before any pod runs: the embedded openb trace's pod shapes,
/// with model constraints dropped (their model ids belong to the trace's catalog).
pub fn fallback_workload() -> Vec<PodShape> {
    match crate::sim::load_trace(crate::sim::bundled::EMBEDDED_PODS, None, &[]) {
        Ok(t) => t
            .pods
            .pods
            .iter()
            .map(|p| PodShape {
                models: ModelSet::ANY,
                ..p.shape()
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "embedded trace unreadable; FGD targets the running pods only");
            Vec::new()
        }
    }
}

/// A ready store serving `snapshot` (what `--snapshot` does; also for tests and benches).
/// Recorded placements never expire: nothing refreshes a static snapshot.
pub fn snapshot_store(snapshot: ClusterSnapshot) -> Store {
    let store = Store::new(None, fallback_workload());
    store.replace(snapshot);
    store
}

/// Load `--snapshot FILE` into a ready store.
pub fn load_store(path: &Path) -> anyhow::Result<Store> {
    let snap = crate::snapshot::load_snapshot(path)?;
    Ok(snapshot_store(ClusterSnapshot::from_file(snap)))
}

/// Run the extender until SIGTERM or ctrl-c.
pub fn run(args: &ExtenderArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let Some(path) = &args.snapshot else {
        anyhow::bail!(
            "allot extender: watching an API server is not implemented yet; serve a static \
             cluster with --snapshot FILE"
        );
    };
    if args.controller {
        anyhow::bail!("allot extender --controller: the controller is not implemented yet");
    }
    let listen: SocketAddr = args
        .listen
        .parse()
        .with_context(|| format!("--listen {:?} is not HOST:PORT", args.listen))?;
    let admin: SocketAddr = args
        .admin_listen
        .parse()
        .with_context(|| format!("--admin-listen {:?} is not HOST:PORT", args.admin_listen))?;
    let store = load_store(path).with_context(|| format!("loading {}", path.display()))?;
    let ext = server::Extender::new(Arc::new(store));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let verbs_listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding --listen {listen}"))?;
        let admin_listener = tokio::net::TcpListener::bind(admin)
            .await
            .with_context(|| format!("binding --admin-listen {admin}"))?;
        tracing::info!(%listen, %admin, snapshot = %path.display(), "extender serving");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let verbs = axum::serve(verbs_listener, server::router(ext.clone()))
            .with_graceful_shutdown(stopped(stop_rx.clone()));
        let admin = axum::serve(admin_listener, server::admin_router(ext))
            .with_graceful_shutdown(stopped(stop_rx));
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
        });
        let (a, b) = tokio::join!(verbs.into_future(), admin.into_future());
        a.context("verbs server")?;
        b.context("admin server")?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests;
