//! Starting and stopping the recorder: its key, its thread, and what it watches of a live
//! cluster (the pod watch's departures and objects, the history Lease).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::watch;

use super::key::{KeyError, Names};
use super::task::{Task, Watched};
use super::{HistorySettings, Recorder};
use crate::extender::state::Store;
use crate::live::Caches;

/// The cluster as the recorder sees it: the extender's caches, and the Lease if any.
#[derive(Debug)]
pub struct LiveWatched {
    pub caches: Arc<Caches>,
    pub lease: Option<watch::Receiver<bool>>,
}

impl Watched for LiveWatched {
    fn departures_since(&self, after: Instant) -> Vec<(Instant, String)> {
        self.caches.departed.since(after)
    }

    fn created(&self, key: &str) -> Option<u64> {
        let (ns, name) = key.split_once('/')?;
        let pod = self
            .caches
            .pods
            .get(&ObjectRef::<Pod>::new(name).within(ns))?;
        let t = pod.metadata.creation_timestamp.as_ref()?;
        u64::try_from(t.0.as_second()).ok()
    }

    fn alive(&self) -> Option<Vec<String>> {
        let pods = self.caches.pods.state();
        Some(pods.iter().filter_map(|p| p.metadata.uid.clone()).collect())
    }

    fn leading(&self) -> bool {
        self.lease.as_ref().is_none_or(|rx| *rx.borrow())
    }

    fn bound(&self) -> Vec<Arc<Pod>> {
        self.caches.pods.state()
    }
}

/// Ends the recorder's thread.
#[derive(Debug)]
pub struct Stopper {
    stop: Arc<AtomicBool>,
    done: Receiver<()>,
}

impl Stopper {
    /// Ask the thread to write what it holds and stop; wait for it at most `wait`.
    pub fn finish(self, wait: Duration) -> bool {
        self.stop.store(true, Ordering::Relaxed);
        self.done.recv_timeout(wait).is_ok()
    }
}

/// Start recording per `settings`: the key is read (or made) first, so a bad key file is an
/// error at start-up naming the file.
pub fn start<W: Watched>(
    settings: HistorySettings,
    store: Arc<Store>,
    watched: W,
) -> Result<(Recorder, Stopper), KeyError> {
    let names = if settings.plain_names {
        Names::Plain
    } else {
        Names::keyed(settings.key_file.as_deref(), &settings.dir)?
    };
    let (recorder, rx) = Recorder::channel(settings.channel);
    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, done) = sync_channel(1);
    let task = Task {
        settings,
        names,
        store,
        watched,
        rx,
        active: recorder.active.clone(),
        stats: recorder.stats.clone(),
        stop: stop.clone(),
    };
    // The thread logs where its starter logs (the process's subscriber; a test's own).
    let log = tracing::dispatcher::get_default(Clone::clone);
    std::thread::Builder::new()
        .name("allot-history".into())
        .spawn(move || {
            tracing::dispatcher::with_default(&log, || task.run());
            let _ = done_tx.send(());
        })
        .map_err(KeyError::Thread)?;
    Ok((recorder, Stopper { stop, done }))
}
