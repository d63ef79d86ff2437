//! One watch feeding one reflector store, started over from a full list after any error, and
//! the health of all the watches, which readiness follows.
//!
//! kube-runtime's watcher, left to retry by itself, resumes a broken watch from its last
//! resource version and says nothing when that succeeds: a consumer cannot tell "recovered"
//! from "still cut off" while nothing changes. Here an error ends the stream; the next one
//! lists afresh, and its `InitDone` (the store swapped for the new list, deletions missed
//! during the outage included) is the moment the watch counts as healthy again.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::departed::Departed;

/// First wait after a failure; doubled per failure in a row up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(250);
/// Longest wait between two tries: the most a recovered API server waits for this watch.
const RETRY_MAX: Duration = Duration::from_secs(4);

/// Which watches are failing, and since when.
#[derive(Debug, Default)]
pub struct WatchHealth {
    failing: Mutex<BTreeMap<&'static str, Instant>>,
}

impl WatchHealth {
    /// The failing watches' kinds with how long each has failed, in name order.
    pub fn failing(&self) -> Vec<(&'static str, Duration)> {
        let failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        failing
            .iter()
            .map(|(k, since)| (*k, since.elapsed()))
            .collect()
    }

    /// Whether every watch is healthy.
    pub fn all_healthy(&self) -> bool {
        self.failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// `kind` failed; true if it was healthy until now.
    fn fail(&self, kind: &'static str) -> bool {
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        let first = !failing.contains_key(kind);
        failing.entry(kind).or_insert_with(Instant::now);
        first
    }

    /// `kind` listed afresh; how long it had failed, if it had.
    fn recover(&self, kind: &'static str) -> Option<Duration> {
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        failing.remove(kind).map(|since| since.elapsed())
    }
}

/// The wait before try number `failures + 1` (see [`crate::backoff`]), so that watches cut
/// off by one outage do not all list again in the same instant.
pub(super) fn retry_after(failures: u32, unit: f64) -> Duration {
    crate::backoff::equal_jitter(RETRY_MIN, RETRY_MAX, failures, unit)
}

/// What a watch needs besides its API: where to announce changes, its name in logs and in
/// [`WatchHealth`], and for bound pods where to note departures.
pub(super) struct Wiring {
    pub changes: watch::Sender<u64>,
    pub health: Arc<WatchHealth>,
    pub what: &'static str,
    pub departed: Option<Arc<Departed>>,
    /// A second channel this watch alone bumps (besides `changes`), for a reader that must
    /// act on this kind at once rather than after the next snapshot.
    pub own: Option<watch::Sender<u64>>,
}

/// Every event is news to the readers (the watches whose objects are read whole).
pub(super) fn always<K>(_old: Option<&K>, _new: &K) -> bool {
    true
}

/// Spawn a watch of `api` into a new store. Each applied event bumps `changes`, unless
/// `news(old, new)` says it changes nothing the readers use (`old`: the object as the store
/// had it, if it had it; see `relevance.rs`); so does each change of health (readiness follows
/// it); deletions are noted in `departed`.
pub(super) fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    wiring: Wiring,
    news: impl Fn(Option<&K>, &K) -> bool + Send + 'static,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (reader, mut writer) = reflector::store();
    let before = reader.clone();
    let Wiring {
        changes,
        health,
        what,
        departed,
        own,
    } = wiring;
    let bump = move || {
        changes.send_modify(|n| *n = n.wrapping_add(1));
        if let Some(own) = &own {
            own.send_modify(|n| *n = n.wrapping_add(1));
        }
    };
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            let stream = watcher(api.clone(), config.clone())
                .modify(|o: &mut K| o.managed_fields_mut().clear());
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => {
                        let changed = match &event {
                            watcher::Event::Apply(new) => {
                                news(before.get(&ObjectRef::from_obj(new)).as_deref(), new)
                            }
                            _ => true,
                        };
                        writer.apply_watcher_event(&event);
                        if let (watcher::Event::Delete(gone), Some(departed)) = (&event, &departed)
                        {
                            departed.record(&gone.uid().unwrap_or_default(), Instant::now());
                        }
                        if matches!(event, watcher::Event::InitDone) {
                            failures = 0;
                            if let Some(down) = health.recover(what) {
                                tracing::info!(
                                    kind = what,
                                    after_ms = down.as_millis() as u64,
                                    "watch recovered: listed afresh"
                                );
                            }
                        }
                        if changed {
                            bump();
                        }
                    }
                    Err(e) => {
                        if health.fail(what) {
                            tracing::warn!(kind = what, error = %e,
                                "watch failing; listing afresh with back-off until it works");
                            bump();
                        }
                        break;
                    }
                }
            }
            tokio::time::sleep(retry_after(failures, crate::backoff::jitter_unit())).await;
            failures = failures.saturating_add(1);
        }
    });
    reader
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_to_the_cap_and_jitter_takes_at_most_half() {
        assert_eq!(retry_after(0, 0.0), RETRY_MIN);
        assert_eq!(retry_after(1, 0.0), RETRY_MIN * 2);
        assert_eq!(retry_after(40, 0.0), RETRY_MAX);
        let most_jitter = retry_after(40, 0.999_999);
        assert!(most_jitter > RETRY_MAX / 2 - Duration::from_millis(1) && most_jitter < RETRY_MAX);
        assert!(retry_after(3, 0.5) < retry_after(3, 0.0));
    }

    #[test]
    fn health_names_failing_kinds_until_they_list_again() {
        let h = WatchHealth::default();
        assert!(h.all_healthy());
        assert!(h.fail("pods"));
        assert!(!h.fail("pods"), "a second error is the same outage");
        assert!(h.fail("nodes"));
        let kinds: Vec<_> = h.failing().into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, ["nodes", "pods"]);
        assert!(h.recover("pods").is_some());
        assert!(h.recover("pods").is_none());
        assert!(!h.all_healthy());
        assert!(h.recover("nodes").is_some());
        assert!(h.all_healthy());
    }
}
