//! `allot extender`: kube-scheduler's extender protocol over HTTP. A request flows
//! `server` (decode, cap, time) -> `verbs` (filter / prioritize / bind / preempt) ->
//! `pod` (the pod interface) and `state` (snapshot + recent placements) -> the core
//! `model` and `policy`, the same code `allot simulate` measures.

pub mod binder;
pub mod builds;
pub mod gauges;
pub mod gpu_map;
pub mod history;
pub mod listen;
pub mod logging;
pub mod metrics;
pub mod policies;
pub mod preempt;
pub mod pricer;
pub mod reload;
pub mod reserve;
pub mod server;
pub mod state;
pub mod tls;
pub mod verbs;
pub mod view;
pub mod waiting;
pub mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::live::StalePolicy;
use crate::live::{self, Caches};
use crate::model::{ModelSet, PodShape};
use binder::Binder;
use builds::{Builds, Rebuild};
use state::{ClusterSnapshot, Store};

/// Which nodes `/filter` passes for a pod (`--filter-answer`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FilterAnswer {
    /// Every feasible node: kube-scheduler scores them, asking /prioritize for allot's ranking.
    Feasible,
    /// Only the node allot's decision chooses: kube-scheduler skips its scoring and /prioritize.
    Chosen,
    /// The chosen node, unless the pod has soft preferences (preferred node affinity, preferred
    /// pod (anti-)affinity, a ScheduleAnyway spread constraint) that only kube-scheduler weighs.
    /// The default (BENCHMARKS.md section 6).
    #[default]
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

/// A ready store serving `snapshot` (what `--snapshot` does; also for tests and benches),
/// breaking ties with the default seed. Recorded placements never expire: nothing refreshes
/// a static snapshot.
pub fn snapshot_store(snapshot: ClusterSnapshot) -> Store {
    seeded_snapshot_store(snapshot, state::DEFAULT_SEED)
}

fn seeded_snapshot_store(snapshot: ClusterSnapshot, seed: u64) -> Store {
    let store = Store::new(None, fallback_workload()).with_seed(seed);
    store.replace(snapshot);
    store
}

/// Load `--snapshot FILE` into a ready store whose decisions use `seed`.
pub fn load_store(path: &Path, seed: u64) -> anyhow::Result<Store> {
    let snap = crate::snapshot::load_snapshot(path)?;
    Ok(seeded_snapshot_store(snap, seed))
}

/// How often the snapshot is rebuilt even when nothing changed (telemetry ages with time).
const REFRESH_EVERY: Duration = Duration::from_secs(2);
/// Changes arriving within this window are folded into one rebuild: while pods are bound at
/// hundreds a second, the snapshot is rebuilt ten times a second, and the overlay of recent
/// binds covers the gap.
const COALESCE: Duration = Duration::from_millis(100);
/// A rebuild reads every node and pod, so its cost grows with the cluster while the rate of
/// changes does not: the loop waits at least this many times the last build's own time
/// (up to [`LONGEST_PAUSE`]), so that rebuilding takes at most about a tenth of a core.
const BUILD_SHARE: u32 = 10;
const LONGEST_PAUSE: Duration = Duration::from_secs(1);
/// Longest the history recorder may take for its last write at shutdown.
const HISTORY_FINISH: Duration = Duration::from_secs(5);

/// Where the extender's cluster state comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A static snapshot file (`--snapshot`): no API server, binds stay in memory.
    Snapshot(PathBuf),
    /// The cluster of KUBECONFIG or the in-cluster config, watched; binds go to its API server.
    Cluster,
}

/// How the extender runs: `allot extender`'s flags, as the cli maps them.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub source: Source,
    /// Telemetry older than this is stale.
    pub stale_after: Duration,
    pub stale_policy: StalePolicy,
    /// How long a bind's placement is kept on top of the watched state.
    pub overlay_ttl: Duration,
    pub filter_answer: FilterAnswer,
    /// Seeds the tie-break order and policies' random draws, as `allot simulate --seeds`.
    pub seed: u64,
    /// The default and shadow policies and the weights `learned` scores with, read and
    /// checked (from flags or `--policy-dir`).
    pub policies: policies::PolicySettings,
    /// `--policy-dir`: re-read every `policy_reload` while serving.
    pub policy_dir: Option<std::path::PathBuf>,
    pub policy_reload: Duration,
    /// `--price-seconds`: how often the pricer re-solves the shadow prices (`None`: never).
    pub price_every: Option<Duration>,
    /// Read timeouts, body and connection caps, and the shutdown drain of both ports.
    pub limits: listen::Limits,
    /// Serve the GPU map page (`/gpus`) on the admin port, and keep the latest decisions.
    pub gpu_map: bool,
    /// TLS on the verbs port (`--tls-cert-file` and the rest); `None`: plain HTTP.
    pub tls: Option<tls::TlsFiles>,
    /// Record the workload history (`--history-dir`); cluster mode only.
    pub history: Option<history::HistorySettings>,
    /// Threads of the async runtime (`--worker-threads`); `None`: one per core.
    pub worker_threads: Option<usize>,
}

/// A boxed future of a sidecar's step.
pub type SidecarFuture = futures::future::BoxFuture<'static, ()>;

/// Work that runs beside the extender on its API client and caches: the embedded
/// ScheduleRequest controller, which the cli wires in for `--controller`.
pub struct Sidecar {
    /// Served under `/controller/` on the admin address.
    pub admin: axum::Router,
    /// Spawned once the client and the caches exist.
    pub start: Box<dyn FnOnce(kube::Client, Arc<Caches>) -> SidecarFuture + Send>,
    /// Awaited after the servers stop (the controller hands its Lease over).
    pub stop: Box<dyn FnOnce(kube::Client) -> SidecarFuture + Send>,
}

impl std::fmt::Debug for Sidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sidecar").finish_non_exhaustive()
    }
}

/// Run the extender until SIGTERM or ctrl-c: from a snapshot, or watching the cluster, with
/// `sidecar` beside it (cluster mode only).
pub fn run(settings: Settings, sidecar: Option<Sidecar>) -> anyhow::Result<ExitCode> {
    crate::process::init_tracing();
    if sidecar.is_some() && settings.source != Source::Cluster {
        anyhow::bail!(
            "allot extender --controller needs a cluster to act on; it cannot run with --snapshot"
        );
    }
    if settings.history.is_some() && settings.source != Source::Cluster {
        anyhow::bail!(
            "allot extender --history-dir records a cluster's pods as it watches them; it cannot \
             run with --snapshot"
        );
    }
    let tls = settings.tls.clone().map(tls::Tls::load).transpose()?;
    let runtime = crate::process::runtime_with(settings.worker_threads)?;
    runtime.block_on(async move {
        let configure = |store: Store| {
            let store = store
                .with_filter_answer(settings.filter_answer)
                .with_seed(settings.seed)
                .with_policies(settings.policies.clone());
            if settings.gpu_map {
                store.with_decision_log()
            } else {
                store
            }
        };
        let follow_policies_and_prices = |store: &Arc<Store>| {
            if let Some(dir) = &settings.policy_dir {
                let every = settings.policy_reload;
                tokio::spawn(reload::follow(dir.clone(), store.clone(), every));
            }
            if let Some(every) = settings.price_every {
                tokio::spawn(pricer::follow(store.clone(), every));
            }
        };
        let (ext, client) = match &settings.source {
            Source::Snapshot(path) => {
                let store = load_store(path, settings.seed)
                    .with_context(|| format!("loading {}", path.display()))?;
                tracing::info!(snapshot = %path.display(), "serving a static snapshot");
                let store = Arc::new(configure(store));
                follow_policies_and_prices(&store);
                (server::Extender::new(store), None)
            }
            Source::Cluster => {
                let client = crate::process::kube_client().await?;
                let freshness = (settings.stale_after, settings.stale_policy);
                let store = Store::new(Some(settings.overlay_ttl), fallback_workload())
                    .with_fail_closed(settings.stale_policy == StalePolicy::FailClosed);
                let store = Arc::new(configure(store));
                follow_policies_and_prices(&store);
                let caches = Caches::start(client.clone());
                caches.set_accounted(Store::accounted(&store));
                let builds = Arc::new(Builds::default());
                tokio::spawn(follow(
                    caches.clone(),
                    store.clone(),
                    freshness,
                    builds.clone(),
                ));
                tokio::spawn(reserve::follow_records(
                    caches.clone(),
                    store.clone(),
                    builds,
                ));
                let binder = Some(Binder::new(client.clone()));
                let (recorder, stopper) = match settings.history.clone() {
                    Some(h) => {
                        let watched = history::start::LiveWatched {
                            caches: caches.clone(),
                            lease: h.lease.as_ref().map(|gate| (gate.0)(client.clone())),
                        };
                        let (r, s) = history::start::start(h, store.clone(), watched)?;
                        (Some(r), Some(s))
                    }
                    None => (None, None),
                };
                let health = Some(caches.health.clone());
                let ext = server::Extender::following(store, binder, health, recorder);
                (ext, Some((client, caches, stopper)))
            }
        };
        let (admin_extra, stop) = match (sidecar, &client) {
            (Some(sidecar), Some((client, caches, _))) => {
                tokio::spawn((sidecar.start)(client.clone(), caches.clone()));
                (Some(sidecar.admin), Some(sidecar.stop))
            }
            _ => (None, None),
        };
        let served = listen::serve_until(
            ext,
            (settings.listen, tls),
            settings.admin_listen,
            admin_extra,
            &settings.limits,
            crate::process::shutdown_signal(),
        )
        .await;
        if let Some((client, _, recorder)) = client {
            if let Some(stop) = stop {
                stop(client.clone()).await;
            }
            if let Some(recorder) = recorder {
                // The last rows and open.csv, written before the process ends.
                let _ = tokio::task::spawn_blocking(move || recorder.finish(HISTORY_FINISH)).await;
                if let Some(gate) = settings.history.as_ref().and_then(|h| h.lease.as_ref()) {
                    (gate.1)(client).await;
                }
            }
        }
        served
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Keep `store` equal to what the caches show: wait for the first full list of every kind
/// (until then `/readyz` says not ready), then rebuild on every burst of changes and at
/// least every [`REFRESH_EVERY`]. A filter may ask for a rebuild at once
/// ([`Store::refresh_now`]), for a pod waiting for room that is being freed for it: one is
/// made if the caches changed since the last build.
async fn follow(
    caches: Arc<Caches>,
    store: Arc<Store>,
    freshness: (Duration, StalePolicy),
    builds: Arc<Builds>,
) {
    let mut changes = caches.changes();
    tracing::info!("waiting for the first list of nodes, pods, telemetry and requests");
    if let Err(e) = caches.wait_synced().await {
        tracing::error!(error = %e, "the cluster watches stopped; not ready");
        return;
    }
    let weak = Arc::downgrade(&store);
    let (c, lock) = (caches.clone(), builds.clone());
    store.set_refresher(Box::new(move || {
        if let Some(store) = weak.upgrade() {
            rebuild(&c, &store, freshness, &lock, Rebuild::IfChanged);
        }
    }));
    let mut last_problems = Vec::new();
    loop {
        let first = !store.is_ready();
        let (c, s, lock) = (caches.clone(), store.clone(), builds.clone());
        let built =
            tokio::task::spawn_blocking(move || rebuild(&c, &s, freshness, &lock, Rebuild::Always))
                .await;
        let Ok(Some(Built {
            problems,
            nodes,
            pods,
            took,
        })) = built
        else {
            tracing::error!("building the cluster snapshot panicked; keeping the last one");
            tokio::time::sleep(REFRESH_EVERY).await;
            continue;
        };
        if problems != last_problems {
            for p in &problems {
                tracing::warn!(problem = %p, "cluster object read around");
            }
            last_problems = problems;
        }
        if first {
            tracing::info!(nodes, pods, "cluster state loaded; ready");
        }
        let _ = tokio::time::timeout(REFRESH_EVERY, changes.changed()).await;
        tokio::time::sleep(pause_after(took)).await;
        changes.mark_unchanged();
    }
}

/// How long the rebuild loop folds changes together after a build that took `took`.
fn pause_after(took: Duration) -> Duration {
    (took * BUILD_SHARE).clamp(COALESCE, LONGEST_PAUSE)
}

/// What a rebuild read, and how long it took.
struct Built {
    /// The objects read around.
    problems: Vec<live::Problem>,
    nodes: usize,
    pods: usize,
    took: Duration,
}

/// Build the snapshot from the caches, put it in `store`, and hold what the consolidation
/// records name, all under `builds`: a rebuild a filter asked for and the loop's never
/// interleave, so an older build never replaces a newer one. Returns what it read and how
/// long it took (also observed in `allot_extender_snapshot_build_seconds`); `None` when
/// `when` is [`Rebuild::IfChanged`] and the caches have not changed since the last build.
fn rebuild(
    caches: &Caches,
    store: &Store,
    (stale_after, policy): (Duration, StalePolicy),
    builds: &Builds,
    when: Rebuild,
) -> Option<Built> {
    builds.build_if(
        || caches.change_count(),
        when,
        || {
            let started = std::time::Instant::now();
            let live = caches.snapshot(&live::Freshness::now(stale_after, policy));
            let snap = live.snapshot;
            let (nodes, pods) = (snap.cluster.len(), snap.pods.len());
            store.replace_forgetting(snap, |uid| caches.departed.contains(uid));
            let now = crate::live::consolidation::unix_now();
            reserve::reserve_consolidated(store, &caches.consolidating.state(), now);
            let took = started.elapsed();
            store.build_seconds().observe(took.as_secs_f64());
            Built {
                problems: live.problems,
                nodes,
                pods,
                took,
            }
        },
    )
}

#[cfg(test)]
mod tests;
