//! The recorder of the cluster's GPU workload history (`--history-dir`, issue 20 item 1):
//! the handlers offer what they learn (a pod that fits nowhere, a bind) to a bounded channel
//! with `try_send`, so a decision never waits on it; the recorder's own thread
//! (`history/task.rs`) adds departures from the pod watch and the node inventory, and writes
//! the rows (`history/files.rs`, format in `sim::trace::history`). Records that find the
//! channel full are dropped and counted; a write error stops recording, never the extender.

pub mod adopt;
pub mod files;
pub mod key;
pub mod start;
pub mod task;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Pod;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::state::{BoundPod, Store};
use super::wire::ExtenderFilterResult;
use crate::live::pod::PodRequest;
use crate::model::PodDemand;
use crate::policy::PolicyKind;
use crate::sim::trace::history::model_spec;

/// Records the channel holds before it drops: a few seconds of a busy scheduler's binds and
/// unschedulable retries, a few MiB at most.
pub const DEFAULT_CHANNEL: usize = 4096;
/// Pods the book holds in flight at most: ~0.5 KiB each, so ~25 MiB when full; far past the
/// pods a GPU cluster runs at once.
pub const DEFAULT_MAX_OPEN: usize = 50_000;
/// How often departures are collected and rows written.
pub const DEFAULT_TICK: Duration = Duration::from_secs(5);
/// How often `open.csv` is rewritten (it moves the recording's end forward).
pub const DEFAULT_CHECKPOINT: Duration = Duration::from_secs(60);
/// A pod allot found no node for stays open this long after it was last filtered: longer
/// than kube-scheduler's longest wait before retrying an unschedulable pod (5 min).
pub const PENDING_IDLE: Duration = Duration::from_secs(900);

/// Competes for the recording Lease: given a client, a receiver that is `true` while this
/// process holds it; and gives the Lease up on shutdown, so that another replica records at
/// once rather than when it expires. Made by the command line (which knows the controller's
/// Lease code).
#[derive(Clone)]
pub struct LeaseGate(
    pub Arc<dyn Fn(kube::Client) -> tokio::sync::watch::Receiver<bool> + Send + Sync>,
    pub Arc<dyn Fn(kube::Client) -> futures::future::BoxFuture<'static, ()> + Send + Sync>,
);

impl std::fmt::Debug for LeaseGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaseGate(..)")
    }
}

/// The recorder's settings (`--history-*`).
#[derive(Debug, Clone)]
pub struct HistorySettings {
    pub dir: PathBuf,
    /// Bytes the directory may hold; the oldest pod files go first.
    pub max_bytes: u64,
    /// Bytes at which a pod file is closed and the next one started.
    pub file_bytes: u64,
    /// Write pod names and UIDs as they are instead of keyed hashes.
    pub plain_names: bool,
    /// The hashing key (a mounted Secret); default `DIR/history.key`, made if missing.
    pub key_file: Option<PathBuf>,
    pub channel: usize,
    pub max_open: usize,
    pub tick: Duration,
    pub checkpoint: Duration,
    /// Record only while holding this Lease (several replicas); `None`: always.
    pub lease: Option<LeaseGate>,
}

/// What a handler learnt, as the recorder needs it. Times are Unix seconds.
#[derive(Debug, Clone)]
pub struct Seen {
    pub uid: String,
    /// `namespace/name`, plain: the recorder hashes it.
    pub key: String,
    pub created: Option<u64>,
    pub demand: PodDemand,
    /// Allowed models, named (`|`-separated); empty for any.
    pub spec: String,
    pub policy: &'static str,
    pub policy_hash: String,
    /// The node and devices of a bind.
    pub node: String,
    pub devices: String,
    pub at: u64,
}

/// One message to the recorder.
#[derive(Debug)]
pub enum Event {
    Unschedulable(Seen),
    Bound(Seen),
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelValue,
)]
#[allow(non_camel_case_types)]
pub enum RecordOutcome {
    written,
    dropped,
    failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: RecordOutcome,
}

/// The recorder's metrics, registered with the extender's.
#[derive(Debug, Default)]
pub struct HistoryStats {
    records: Family<OutcomeLabels, Counter>,
    /// 1 while recording (holding the Lease, no write error).
    pub recording: Gauge,
    /// Bytes the history directory holds.
    pub bytes: Gauge,
}

impl HistoryStats {
    pub fn register(&self, r: &mut Registry) {
        for outcome in [
            RecordOutcome::written,
            RecordOutcome::dropped,
            RecordOutcome::failed,
        ] {
            drop(self.records.get_or_create(&OutcomeLabels { outcome }));
        }
        r.register(
            "allot_history_records",
            "Workload history records (--history-dir), by outcome: written; dropped (the \
             recorder's channel or book was full); failed (a write error stopped recording)",
            self.records.clone(),
        );
        r.register(
            "allot_history_recording",
            "1 while this extender records the workload history (it holds the history Lease and \
             no write has failed)",
            self.recording.clone(),
        );
        r.register(
            "allot_history_bytes",
            "Bytes the workload history directory holds",
            self.bytes.clone(),
        );
    }

    pub fn count(&self, outcome: RecordOutcome, n: u64) {
        self.records
            .get_or_create(&OutcomeLabels { outcome })
            .inc_by(n);
    }

    pub fn counted(&self, outcome: RecordOutcome) -> u64 {
        self.records.get_or_create(&OutcomeLabels { outcome }).get()
    }
}

/// The handlers' side of the recorder: cheap to call, never blocking.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: SyncSender<Event>,
    /// Whether records are wanted now (Lease held, no write error): when not, nothing is
    /// built or sent.
    pub active: Arc<AtomicBool>,
    pub stats: Arc<HistoryStats>,
}

impl Recorder {
    /// A recorder whose records go to the returned receiver, at most `capacity` waiting.
    pub fn channel(capacity: usize) -> (Recorder, Receiver<Event>) {
        let (tx, rx) = sync_channel(capacity.max(1));
        let rec = Recorder {
            tx,
            active: Arc::new(AtomicBool::new(false)),
            stats: Arc::default(),
        };
        (rec, rx)
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Hand `event` over without waiting; counted as dropped when the channel is full.
    pub fn offer(&self, event: Event) {
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.count(RecordOutcome::dropped, 1);
            }
        }
    }

    /// After `/filter`: a pod with no node passing (and no error) is recorded as waiting.
    pub fn note_filter(&self, store: &Store, pod: Option<&Pod>, answer: &ExtenderFilterResult) {
        if !self.is_active() || !answer.error.is_empty() || passed_any(answer) {
            return;
        }
        let Some(pod) = pod else { return };
        let uid = pod.metadata.uid.as_deref().unwrap_or("");
        let Some(req) = store.recall(uid) else { return };
        let created = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| u64::try_from(t.0.as_second()).ok());
        self.offer(Event::Unschedulable(seen(store, &req, created)));
    }

    /// After a bind that took: `req` is the pod as filter read it (recalled before the bind).
    pub fn note_bind(&self, store: &Store, req: Option<PodRequest>, placed: &BoundPod, node: &str) {
        let Some(req) = req.filter(|_| self.is_active()) else {
            return;
        };
        let mut s = seen(store, &req, None);
        s.node = node.to_string();
        s.devices = placed
            .at
            .devices
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("|");
        self.offer(Event::Bound(s));
    }
}

fn seen(store: &Store, req: &PodRequest, created: Option<u64>) -> Seen {
    let view = store.view();
    Seen {
        uid: req.uid.clone(),
        key: req.key.clone(),
        created,
        demand: req.demand,
        spec: model_spec(req.demand.models, &view.cluster.models),
        policy: req.policy.name(),
        policy_hash: if req.policy == PolicyKind::Learned {
            store.learned_hash()
        } else {
            String::new()
        },
        node: String::new(),
        devices: String::new(),
        at: unix_now(),
    }
}

/// Whether a filter answer lets any node through.
fn passed_any(answer: &ExtenderFilterResult) -> bool {
    answer.node_names.as_ref().is_some_and(|n| !n.is_empty())
        || answer.nodes.as_ref().is_some_and(|n| !n.items.is_empty())
}

/// Seconds since the Unix epoch (0 for a clock before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
