//! The reflectors: one watch per kind, each feeding a reflector store that readers copy
//! `Arc`s out of. Every event bumps a counter on a `watch` channel, so consumers (the
//! extender's snapshot loop, the controller) wake once per burst of changes, not per object.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::watch;

use super::build::{Freshness, LiveSnapshot, PodMemo, snapshot_with};
use super::departed::Departed;
use super::reflect::{WatchHealth, Wiring, always, reflect};
use super::relevance::{Accounted, node_changed, pod_added, pod_changed};
use crate::crd::{NodeTelemetry, ScheduleRequest};

/// Reflector stores for everything allot reads, kept current by background watches.
#[derive(Debug, Clone)]
pub struct Caches {
    pub nodes: Store<Node>,
    /// Pods bound to a node and not finished: what holds resources.
    pub pods: Store<Pod>,
    /// Pods of ScheduleRequests not bound yet: the room their plans promise.
    pub planned: Store<Pod>,
    /// Pods the consolidator made room for (label `allot.dev/consolidating`): the extender
    /// holds that room for them until they bind, and the moved pods' destinations for their
    /// replacements while the record holds (past it, the controller takes the label off).
    pub consolidating: Store<Pod>,
    pub telemetry: Store<NodeTelemetry>,
    pub requests: Store<ScheduleRequest>,
    /// Pods that recently left `pods` (deleted, or finished).
    pub departed: Arc<Departed>,
    /// Which watches are failing: readiness follows it.
    pub health: Arc<WatchHealth>,
    changes: watch::Sender<u64>,
    /// Bumped by the `consolidating` watch alone.
    records: watch::Sender<u64>,
    /// Pods read by earlier snapshots (the extender and the controller share it).
    memo: Arc<Mutex<PodMemo>>,
    /// The bound pods a reader already places (the extender's own binds, in its overlay): a
    /// watch event that shows one where it is placed wakes nobody.
    accounted: Arc<OnceLock<Accounted>>,
}

impl Caches {
    /// Start the watches on the current tokio runtime. Pending pods other than planned
    /// replicas are not watched, nor are finished ones: they hold nothing, and a busy
    /// scheduler updates pending pods several times each. Managed fields are dropped on
    /// arrival to keep the caches small.
    pub fn start(client: Client) -> Arc<Caches> {
        let (changes, _) = watch::channel(0u64);
        let (records, _) = watch::channel(0u64);
        let active = watcher::Config::default()
            .fields("spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed");
        let planned = watcher::Config::default()
            .fields("spec.nodeName=")
            .labels(crate::names::REQUEST_LABEL);
        // Bound ones too: the destinations held for the pods moved for them outlive their bind.
        let consolidating = watcher::Config::default().labels(crate::names::CONSOLIDATING_LABEL);
        let departed = Arc::new(Departed::default());
        let health = Arc::new(WatchHealth::default());
        let accounted: Arc<OnceLock<Accounted>> = Arc::default();
        let placed = accounted.clone();
        let pod_news = move |old: Option<&Pod>, new: &Pod| match old {
            Some(old) => pod_changed(old, new),
            None => pod_added(new, placed.get()),
        };
        let node_news =
            |old: Option<&Node>, new: &Node| old.is_none_or(|old| node_changed(old, new));
        let wiring = |what, departed| Wiring {
            changes: changes.clone(),
            health: health.clone(),
            what,
            departed,
            own: None,
        };
        Arc::new(Caches {
            nodes: reflect(
                Api::all(client.clone()),
                watcher::Config::default(),
                wiring("nodes", None),
                node_news,
            ),
            pods: reflect(
                Api::all(client.clone()),
                active,
                wiring("pods", Some(departed.clone())),
                pod_news,
            ),
            planned: reflect(
                Api::all(client.clone()),
                planned,
                wiring("planned pods", None),
                always,
            ),
            consolidating: reflect(
                Api::all(client.clone()),
                consolidating,
                Wiring {
                    own: Some(records.clone()),
                    ..wiring("consolidating pods", None)
                },
                always,
            ),
            telemetry: reflect(
                Api::all(client.clone()),
                watcher::Config::default(),
                wiring("nodetelemetries", None),
                always,
            ),
            requests: reflect(
                Api::all(client),
                watcher::Config::default(),
                wiring("schedulerequests", None),
                always,
            ),
            health,
            departed,
            changes,
            records,
            memo: Arc::default(),
            accounted,
        })
    }

    /// Wait until every store has had its first full list.
    pub async fn wait_synced(&self) -> anyhow::Result<()> {
        let (a, b, c, d, e, f) = tokio::join!(
            self.nodes.wait_until_ready(),
            self.pods.wait_until_ready(),
            self.planned.wait_until_ready(),
            self.telemetry.wait_until_ready(),
            self.requests.wait_until_ready(),
            self.consolidating.wait_until_ready(),
        );
        a.and(b)
            .and(c)
            .and(d)
            .and(e)
            .and(f)
            .map_err(|_| anyhow::anyhow!("a watch stopped before its first list"))
    }

    /// Tell the bound pods' watch which placements a reader already accounts for (once; later
    /// calls are ignored): a pod newly bound where `accounted` places it is no change.
    pub fn set_accounted(&self, accounted: Accounted) {
        let _ = self.accounted.set(accounted);
    }

    /// A receiver that changes whenever any watched object does (in what a snapshot reads).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// How many watch events have been applied so far: a view built after reading a count
    /// has seen at least the changes up to it.
    pub fn change_count(&self) -> u64 {
        *self.changes.borrow()
    }

    /// A receiver that changes whenever a pod of `consolidating` does: the extender holds
    /// the room a new record names at once, before the moved pods' replacements ask for it.
    pub fn record_changes(&self) -> watch::Receiver<u64> {
        self.records.subscribe()
    }

    /// The cluster as the caches show it now.
    pub fn snapshot(&self, freshness: &Freshness) -> LiveSnapshot {
        let mut memo = self.memo.lock().unwrap_or_else(PoisonError::into_inner);
        snapshot_with(
            &mut memo,
            &self.nodes.state(),
            &self.pods.state(),
            &self.telemetry.state(),
            freshness,
        )
    }
}
