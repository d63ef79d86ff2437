//! Pods that recently left the bound-pods watch, so that a bind recorded on top of the
//! watched state is dropped as soon as its pod is gone.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// UIDs of the pods that left the bound-pods watch (deleted, or finished) in the last
/// [`Departed::KEEP`]. A placement the extender records at bind stays on top of the watched
/// state until a snapshot shows the pod; a pod bound and deleted within one coalescing window
/// never shows, and without this its GPUs would stay taken until the record expires.
/// Deletions during a watch outage are not seen (the re-list only shows who is left).
#[derive(Debug, Default)]
pub struct Departed {
    inner: Mutex<DepartedInner>,
}

#[derive(Debug, Default)]
struct DepartedInner {
    order: VecDeque<(Instant, String)>,
    uids: HashMap<String, Instant>,
}

impl Departed {
    /// How long a departure is remembered: far longer than a bind record normally lives
    /// (`--overlay-ttl-seconds`, 30 by default).
    pub const KEEP: Duration = Duration::from_secs(600);

    pub fn record(&self, uid: &str, now: Instant) {
        if uid.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some((at, _)) = inner.order.front()
            && now.saturating_duration_since(*at) > Self::KEEP
        {
            if let Some((at, old)) = inner.order.pop_front()
                && inner.uids.get(&old) == Some(&at)
            {
                inner.uids.remove(&old);
            }
        }
        inner.uids.insert(uid.to_string(), now);
        inner.order.push_back((now, uid.to_string()));
    }

    /// The departures noted after `after` (UID and when), oldest first: what the history
    /// recorder collects on each of its ticks.
    pub fn since(&self, after: Instant) -> Vec<(Instant, String)> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let newer = inner
            .order
            .iter()
            .rev()
            .take_while(|(at, _)| *at > after)
            .count();
        inner
            .order
            .iter()
            .skip(inner.order.len() - newer)
            .cloned()
            .collect()
    }

    /// Whether the pod with this UID left recently.
    pub fn contains(&self, uid: &str) -> bool {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.uids.contains_key(uid)
    }
}
