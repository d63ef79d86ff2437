//! `allot controller`: the ScheduleRequest controller. Each request goes through a named
//! pipeline, most of it pure; reconcile.rs runs the steps in this order:
//!
//! ```text
//! observe   observe.rs   the request's pods from the API (read by pods.rs), the cluster from
//!                        live::Caches plus the room promised to unbound pods  -> observed.rs
//! validate  validate.rs  pure: field-named errors, or the replicas
//! decide    decide.rs    pure: keep / move / scale down, the LP for the missing replicas
//!                                                                             -> decision.rs
//! apply     apply.rs     delete, then create the pods built by pods.rs
//! status    status.rs    pure: the status from what was observed and decided;
//!                        context.rs server-side applies it and records the Events
//! ```
//!
//! context.rs holds what the client-facing steps (observe, apply, status) share: the
//! [`context::Context`], the error enum with its bounded reasons, the request's key, the
//! status write and the Events. observed.rs and decision.rs are the plain data handed from
//! step to step, read by the steps on either side, so imports between these files run one
//! way only (decide.rs borrows status.rs's conversions into the status's own types).
//!
//! A kube-runtime `Controller` drives it: on request changes, on changes of the pods it owns,
//! and on any change of the shared caches (nodes, telemetry), throttled, so gangs waiting for
//! room and replicas on failing nodes are looked at again. Only the holder of the
//! `allot-controller` Lease (lease.rs) reconciles; losing the Lease stops the Controller.

pub mod apply;
pub mod consolidate;
pub mod context;
pub mod decide;
pub mod decision;
pub mod give_back;
pub mod lease;
pub mod lend;
pub mod metrics;
pub mod observe;
pub mod observed;
pub mod pods;
pub mod reconcile;
pub mod status;
pub mod validate;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::alloc::PlanOptions;
use crate::crd::ScheduleRequest;
use crate::live::{Caches, StalePolicy};
use crate::names::REQUEST_LABEL;
use context::{Context, FIELD_MANAGER};
use lease::{LEASE_NAME, LeaseConfig};
use metrics::Metrics;
use reconcile::{error_policy, reconcile};

/// Shortest pause between two "reconcile everything" passes caused by cluster changes: a
/// busy cluster changes every few milliseconds, a failover can wait this long.
const CHANGE_THROTTLE: Duration = Duration::from_secs(2);

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub lease: LeaseConfig,
    /// Telemetry older than this is stale (its node's replicas move).
    pub stale_after: Duration,
    pub stale_policy: StalePolicy,
    /// Backend and time limit of every plan (the objective comes from each request).
    pub plan: PlanOptions,
    /// Shared with whoever serves `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The consolidation loop (off unless asked).
    pub consolidation: consolidate::Settings,
}

impl Config {
    /// Defaults with the Lease in `lease_namespace`.
    pub fn new(lease_namespace: &str) -> Self {
        Config {
            lease: LeaseConfig {
                namespace: lease_namespace.into(),
                name: LEASE_NAME.into(),
                identity: lease::default_identity(),
                duration: lease::DEFAULT_DURATION,
                renew_every: lease::DEFAULT_RENEW_EVERY,
            },
            stale_after: Duration::from_secs(60),
            stale_policy: StalePolicy::FailOpen,
            plan: PlanOptions::default(),
            metrics: Arc::new(Metrics::default()),
            consolidation: consolidate::Settings::default(),
        }
    }
}

/// What `allot controller` runs with (the cli layer builds it from the flags): the
/// controller's [`Config`] and the address of its own admin endpoints.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    /// Where /healthz, /readyz and /metrics are served.
    pub admin_listen: SocketAddr,
}

/// Run the controller on `caches` (started by the caller on this runtime): wait for the
/// caches, then compete for the Lease and reconcile while holding it. Never returns unless
/// the caches fail to sync; drop the future to stop. `allot extender --controller` calls
/// this with its own caches.
pub async fn spawn(client: Client, caches: Arc<Caches>, mut config: Config) -> anyhow::Result<()> {
    config.lease.or_namespace_of(&client);
    caches.wait_synced().await?;
    config.metrics.ready.store(true, Ordering::Relaxed);
    tracing::info!(identity = %config.lease.identity, lease = %config.lease.name,
        namespace = %config.lease.namespace, "caches synced; competing for the lease");
    let (leading_tx, mut leading) = watch::channel(false);
    let lease_task = tokio::spawn(lease::run(
        client.clone(),
        config.lease.clone(),
        leading_tx,
        config.metrics.clone(),
    ));
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: Some(config.lease.identity.clone()),
    };
    let metrics = config.metrics.clone();
    let consolidation = (
        config.consolidation.clone(),
        (config.stale_after, config.stale_policy),
    );
    let ctx = Arc::new(Context::new(
        client.clone(),
        caches.clone(),
        config,
        Recorder::new(client.clone(), reporter),
    ));
    let outcome = loop {
        if leading.wait_for(|l| *l).await.is_err() {
            break Err(anyhow::anyhow!("the lease task stopped"));
        }
        metrics.set_leader(true);
        tracing::info!("leading: reconciling ScheduleRequests");
        let mut lost = leading.clone();
        let stop = async move {
            let _ = lost.wait_for(|l| !*l).await;
        };
        let consolidator = tokio::spawn(
            consolidate::Loop::new(
                client.clone(),
                caches.clone(),
                consolidation.0.clone(),
                metrics.clone(),
                ctx.recorder.clone(),
                consolidation.1,
            )
            .run(),
        );
        Controller::new(
            Api::<ScheduleRequest>::all(client.clone()),
            watcher::Config::default(),
        )
        .owns(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default().labels(REQUEST_LABEL),
        )
        .reconcile_all_on(throttled(caches.changes()))
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| std::future::ready(()))
        .await;
        consolidator.abort();
        metrics.set_leader(false);
        tracing::warn!("lost the lease: stopped reconciling");
    };
    lease_task.abort();
    outcome
}

/// One item per burst of cache changes, at most one per [`CHANGE_THROTTLE`].
fn throttled(changes: watch::Receiver<u64>) -> impl futures::Stream<Item = ()> + Send {
    futures::stream::unfold(changes, |mut rx| async move {
        rx.changed().await.ok()?;
        tokio::time::sleep(CHANGE_THROTTLE).await;
        rx.borrow_and_update();
        Some(((), rx))
    })
}

/// `allot controller`: caches, admin endpoints, then [`spawn`] until SIGTERM or ctrl-c.
pub fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    crate::process::init_tracing();
    let Settings {
        config,
        admin_listen: admin,
    } = settings;
    crate::process::failpoint::init()?;
    let runtime = crate::process::runtime()?;
    runtime.block_on(async move {
        let client = crate::process::kube_client().await?;
        let listener = tokio::net::TcpListener::bind(admin)
            .await
            .with_context(|| format!("binding --admin-listen {admin}"))?;
        let metrics = config.metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, metrics::admin_router(metrics)).await {
                tracing::error!(error = %e, "admin server stopped");
            }
        });
        tracing::info!(%admin, "controller starting");
        let caches = Caches::start(client.clone());
        let mut lease = config.lease.clone();
        lease.or_namespace_of(&client);
        tokio::select! {
            r = spawn(client.clone(), caches, config) => r,
            () = crate::process::shutdown_signal() => {
                tracing::info!("shutting down");
                if let Err(e) = lease::release(client, &lease).await {
                    tracing::warn!(error = %e, "could not release the lease; it expires by itself");
                }
                Ok(())
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
