//! `allot extender`: kube-scheduler's extender protocol over HTTP. A request flows
//! `server` (decode, cap, time) -> `verbs` (filter / prioritize / bind / preempt) ->
//! `pod` (the pod interface) and `state` (snapshot + recent placements) -> the core
//! `model` and `policy`, the same code `allot simulate` measures.

pub mod binder;
mod fxhash;
pub mod metrics;
pub mod server;
pub mod state;
pub mod verbs;
pub mod wire;

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::cli::ExtenderArgs;
use crate::live::StalePolicy;
use crate::live::{self, Caches};
use crate::model::{ModelSet, PodShape};
use binder::Binder;
use state::{ClusterSnapshot, Store};

/// Which nodes `/filter` passes for a pod (`--filter-answer`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FilterAnswer {
    /// Every feasible node: kube-scheduler scores them, asking /prioritize for allot's ranking.
    #[default]
    Feasible,
    /// Only the node allot's decision chooses: kube-scheduler skips its scoring and /prioritize.
    Chosen,
    /// The chosen node, unless the pod has soft preferences (preferred node affinity, preferred
    /// pod (anti-)affinity, a ScheduleAnyway spread constraint) that only kube-scheduler weighs.
    Auto,
}

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

/// How often the snapshot is rebuilt even when nothing changed (telemetry ages with time).
const REFRESH_EVERY: Duration = Duration::from_secs(2);
/// Changes arriving within this window are folded into one rebuild: while pods are bound at
/// hundreds a second, the snapshot is rebuilt ten times a second, and the overlay of recent
/// binds covers the gap.
const COALESCE: Duration = Duration::from_millis(100);

/// Run the extender until SIGTERM or ctrl-c: from `--snapshot`, or watching the cluster.
pub fn run(args: &ExtenderArgs) -> anyhow::Result<ExitCode> {
    crate::process::init_tracing();
    if args.controller && args.snapshot.is_some() {
        anyhow::bail!(
            "allot extender --controller needs a cluster to act on; it cannot run with --snapshot"
        );
    }
    let listen = crate::process::listen_address("--listen", &args.listen)?;
    let admin = crate::process::listen_address("--admin-listen", &args.admin_listen)?;
    let runtime = crate::process::runtime()?;
    runtime.block_on(async move {
        let mut admin_extra = None;
        let mut embedded_lease = None;
        let ext = match &args.snapshot {
            Some(path) => {
                let store = load_store(path)
                    .with_context(|| format!("loading {}", path.display()))?
                    .with_filter_answer(args.filter_answer.into());
                tracing::info!(snapshot = %path.display(), "serving a static snapshot");
                server::Extender::new(Arc::new(store))
            }
            None => {
                let client = kube::Client::try_default().await.context(
                    "connecting to the API server (set KUBECONFIG, or run in a pod with a \
                     service account)",
                )?;
                let freshness: (Duration, StalePolicy) = (
                    Duration::from_secs(args.stale_after_seconds),
                    args.stale_policy.into(),
                );
                let store = Arc::new(
                    Store::new(
                        Some(Duration::from_secs(args.overlay_ttl_seconds)),
                        fallback_workload(),
                    )
                    .with_fail_closed(freshness.1 == StalePolicy::FailClosed)
                    .with_filter_answer(args.filter_answer.into()),
                );
                let caches = Caches::start(client.clone());
                tokio::spawn(follow(caches.clone(), store.clone(), freshness));
                if args.controller {
                    let mut config = crate::controller::Config::new(&args.lease_namespace);
                    config.stale_after = freshness.0;
                    config.stale_policy = freshness.1;
                    admin_extra = Some(crate::controller::metrics::admin_router(
                        config.metrics.clone(),
                    ));
                    embedded_lease = Some((client.clone(), config.lease.clone()));
                    let (client, caches) = (client.clone(), caches.clone());
                    tokio::spawn(async move {
                        if let Err(e) = crate::controller::spawn(client, caches, config).await {
                            tracing::error!(error = %e, "the embedded controller stopped");
                        }
                    });
                }
                server::Extender::with_binder(store, Some(Binder::new(client)))
            }
        };
        let served = serve(ext, listen, admin, admin_extra).await;
        // Hand the controller's Lease over now rather than make a successor wait it out.
        if let Some((client, lease)) = embedded_lease
            && let Err(e) = crate::controller::lease::release(client, &lease).await
        {
            tracing::warn!(error = %e, "could not release the controller's lease; it expires by itself");
        }
        served
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Keep `store` equal to what the caches show: wait for the first full list of every kind
/// (until then `/readyz` says not ready), then rebuild on every burst of changes and at
/// least every [`REFRESH_EVERY`].
async fn follow(
    caches: Arc<Caches>,
    store: Arc<Store>,
    (stale_after, policy): (Duration, StalePolicy),
) {
    let mut changes = caches.changes();
    tracing::info!("waiting for the first list of nodes, pods, telemetry and requests");
    if let Err(e) = caches.wait_synced().await {
        tracing::error!(error = %e, "the cluster watches stopped; not ready");
        return;
    }
    let mut last_problems = Vec::new();
    loop {
        let c = caches.clone();
        let built = tokio::task::spawn_blocking(move || {
            c.snapshot(&live::Freshness::now(stale_after, policy))
        })
        .await;
        let Ok(live) = built else {
            tracing::error!("building the cluster snapshot panicked; keeping the last one");
            tokio::time::sleep(REFRESH_EVERY).await;
            continue;
        };
        if live.problems != last_problems {
            for p in &live.problems {
                tracing::warn!(problem = %p, "cluster object read around");
            }
            last_problems = live.problems.clone();
        }
        let first = !store.is_ready();
        let mut snap = live.snapshot;
        snap.states = live.nodes;
        let (nodes, pods) = (snap.cluster.len(), snap.pods.len());
        store.replace_forgetting(snap, |uid| caches.departed.contains(uid));
        if first {
            tracing::info!(nodes, pods, "cluster state loaded; ready");
        }
        let _ = tokio::time::timeout(REFRESH_EVERY, changes.changed()).await;
        tokio::time::sleep(COALESCE).await;
        changes.mark_unchanged();
    }
}

/// Serve the verbs and the admin endpoints (with the embedded controller's under
/// `/controller/`) until a shutdown signal.
async fn serve(
    ext: Arc<server::Extender>,
    listen: SocketAddr,
    admin: SocketAddr,
    controller_admin: Option<axum::Router>,
) -> anyhow::Result<()> {
    let verbs_listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding --listen {listen}"))?;
    let admin_listener = tokio::net::TcpListener::bind(admin)
        .await
        .with_context(|| format!("binding --admin-listen {admin}"))?;
    tracing::info!(%listen, %admin, "extender serving");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let verbs = axum::serve(verbs_listener, server::router(ext.clone()))
        .with_graceful_shutdown(stopped(stop_rx.clone()));
    let mut admin_app = server::admin_router(ext);
    if let Some(router) = controller_admin {
        admin_app = admin_app.nest("/controller", router);
    }
    let admin = axum::serve(admin_listener, admin_app).with_graceful_shutdown(stopped(stop_rx));
    tokio::spawn(async move {
        crate::process::shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let (a, b) = tokio::join!(verbs.into_future(), admin.into_future());
    a.context("verbs server")?;
    b.context("admin server")?;
    Ok(())
}

#[cfg(test)]
mod tests;
