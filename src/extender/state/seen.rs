//! The filter->bind table: the pods /filter saw, so that /bind (whose body names only the
//! pod) knows their demand. Bounded: when full, the entry filtered longest ago makes room
//! (a pod filtered again counts as new), and a bind frees its pod's entry, so a burst of
//! more pending pods than the table holds still binds the ones kube-scheduler binds next.

use std::collections::{BTreeMap, HashMap};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use super::Store;
use crate::extender::waiting::Waiting;
use crate::live::pod::PodRequest;
use crate::policy::PolicyKind;

/// Pods remembered between filter and bind. kube-scheduler binds a pod within seconds of
/// filtering it, so this many covers any burst it works through; older ones are evicted.
pub const SEEN_CAP: usize = 10_000;
/// How long a filtered pod is remembered for its bind; kube-scheduler binds within seconds.
pub const SEEN_TTL: Duration = Duration::from_secs(300);

/// Filtered pods by UID, with the order they were (last) filtered in.
#[derive(Debug, Default)]
pub struct Seen {
    by_uid: HashMap<String, Entry>,
    /// Filter order: sequence number -> UID; the first entry is the oldest.
    order: BTreeMap<u64, String>,
    next: u64,
}

#[derive(Debug)]
struct Entry {
    req: PodRequest,
    at: Instant,
    seq: u64,
    /// The node the shadow policy chose at this filter, if one runs.
    shadow: Option<String>,
    /// Why no node could take it at this filter (GPU pods only); `None`: some node could.
    waiting: Option<Waiting>,
    /// The UID of its controller owner, if it has one (see `destinations.rs`).
    owner: Option<String>,
}

impl Seen {
    /// Remember `req` as filtered at `now`, evicting the oldest entries while full.
    pub fn insert(&mut self, req: &PodRequest, now: Instant) {
        self.remove(&req.uid);
        while self.by_uid.len() >= SEEN_CAP {
            let Some((_, uid)) = self.order.pop_first() else {
                break;
            };
            self.by_uid.remove(&uid);
        }
        let seq = self.next;
        self.next += 1;
        self.order.insert(seq, req.uid.clone());
        self.by_uid.insert(
            req.uid.clone(),
            Entry {
                req: req.clone(),
                at: now,
                seq,
                shadow: None,
                waiting: None,
                owner: None,
            },
        );
    }

    /// The pod filtered with this UID, unless it was filtered more than [`SEEN_TTL`] ago.
    pub fn get(&self, uid: &str, now: Instant) -> Option<&PodRequest> {
        self.by_uid
            .get(uid)
            .filter(|e| now.saturating_duration_since(e.at) < SEEN_TTL)
            .map(|e| &e.req)
    }

    /// Note the node the shadow policy chose for the pod with this UID at its last filter.
    pub fn set_shadow(&mut self, uid: &str, node: &str) {
        if let Some(e) = self.by_uid.get_mut(uid) {
            e.shadow = Some(node.to_string());
        }
    }

    /// Note the controller owner (UID) of the pod with this UID.
    pub fn set_owner(&mut self, uid: &str, owner: &str) {
        if let Some(e) = self.by_uid.get_mut(uid) {
            e.owner = Some(owner.to_string());
        }
    }

    /// The controller owner (UID) of the pod with this UID, if noted at its filter.
    pub fn owner(&self, uid: &str) -> Option<&str> {
        self.by_uid.get(uid).and_then(|e| e.owner.as_deref())
    }

    /// Note why no node could take the pod with this UID at its last filter.
    pub fn set_waiting(&mut self, uid: &str, why: Waiting) {
        if let Some(e) = self.by_uid.get_mut(uid) {
            e.waiting = Some(why);
        }
    }

    /// Pods whose last filter, less than [`SEEN_TTL`] before `now`, found no node, by reason.
    pub fn waiting(&self, now: Instant) -> [u64; Waiting::ALL.len()] {
        let mut out = [0; Waiting::ALL.len()];
        for e in self.by_uid.values() {
            if let Some(why) = e
                .waiting
                .filter(|_| now.saturating_duration_since(e.at) < SEEN_TTL)
            {
                out[why as usize] += 1;
            }
        }
        out
    }

    /// The node the shadow policy chose for this pod, if one ran at its last filter.
    pub fn shadow(&self, uid: &str) -> Option<&str> {
        self.by_uid.get(uid).and_then(|e| e.shadow.as_deref())
    }

    /// Forget the pod with this UID (bound, or no longer pending).
    pub fn remove(&mut self, uid: &str) {
        if let Some(old) = self.by_uid.remove(uid) {
            self.order.remove(&old.seq);
        }
    }
}

/// The filter->bind table as the verbs use it.
impl Store {
    /// Remember a filtered pod so that its bind (which names only the pod) knows its demand,
    /// and count it as an arrival for the prices (once per UID; see `prices.rs`).
    pub fn remember(&self, req: &PodRequest) {
        if req.uid.is_empty() {
            return;
        }
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.insert(req, Instant::now());
        drop(seen);
        self.arrived(&req.uid, req.demand);
    }

    /// Note the controller owner (UID) of a filtered pod: its bind may use up a destination
    /// held for a moved pod of that owner (see `destinations.rs`).
    pub fn remember_owner(&self, uid: &str, owner: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.set_owner(uid, owner);
    }

    /// The controller owner noted at the filter of the pod with this UID.
    pub(super) fn owner_of(&self, uid: &str) -> Option<String> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.owner(uid).map(str::to_string)
    }

    /// Note the node the shadow policy chose for a filtered pod, to compare with its bind.
    pub fn remember_shadow(&self, uid: &str, node: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.set_shadow(uid, node);
    }

    /// Note why no node could take a filtered GPU pod (counted until it is bound, filtered
    /// again with a node that fits, or [`SEEN_TTL`] passes).
    pub fn remember_waiting(&self, uid: &str, why: Waiting) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.set_waiting(uid, why);
    }

    /// Pods waiting for a node, by reason (see [`Seen::waiting`]).
    pub fn waiting(&self) -> [u64; Waiting::ALL.len()] {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.waiting(Instant::now())
    }

    /// The node the shadow policy chose for this pod at its last filter.
    pub fn recall_shadow(&self, uid: &str) -> Option<String> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.shadow(uid).map(str::to_string)
    }

    /// The pod filter saw with this UID, if still remembered; or, once bound (a bind frees
    /// the filter's entry), the pod as allot placed it, so that a second bind of it is
    /// refused as already bound rather than as never filtered.
    pub fn recall(&self, uid: &str) -> Option<PodRequest> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(req) = seen.get(uid, Instant::now()) {
            return Some(req.clone());
        }
        drop(seen);
        if uid.is_empty() {
            return None;
        }
        let view = self.current();
        let bound = view.pod_by_uid(uid)?;
        Some(PodRequest {
            key: bound.key.clone(),
            uid: bound.uid.clone(),
            demand: bound.demand,
            // Never used to place: `record` refuses a pod that is already bound.
            policy: PolicyKind::Fgd,
            priority: bound.priority,
            planned_node: None,
            planned_devices: None,
        })
    }

    /// How many filtered pods are remembered for their bind (at most [`SEEN_CAP`]).
    pub fn remembered(&self) -> usize {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.by_uid.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GpuDemand, ModelSet, PodDemand};
    use crate::policy::PolicyKind;

    fn pod(uid: &str) -> PodRequest {
        PodRequest {
            key: format!("ns/{uid}"),
            uid: uid.to_string(),
            demand: PodDemand {
                cpu_milli: 1,
                memory_bytes: 0,
                gpu: GpuDemand::None,
                models: ModelSet::ANY,
            },
            policy: PolicyKind::Fgd,
            priority: 0,
            planned_node: None,
            planned_devices: None,
        }
    }

    #[test]
    fn full_table_evicts_the_oldest_and_stays_bounded() {
        let now = Instant::now();
        let mut seen = Seen::default();
        for i in 0..SEEN_CAP + 5 {
            seen.insert(&pod(&format!("p{i}")), now);
        }
        assert_eq!((seen.by_uid.len(), seen.order.len()), (SEEN_CAP, SEEN_CAP));
        assert!(seen.get("p4", now).is_none());
        assert!(seen.get("p5", now).is_some());
        // Filtering a pod again moves it to the back and does not grow the table.
        seen.insert(&pod("p5"), now);
        seen.insert(&pod("new"), now);
        assert_eq!((seen.by_uid.len(), seen.order.len()), (SEEN_CAP, SEEN_CAP));
        assert!(seen.get("p5", now).is_some());
        assert!(seen.get("p6", now).is_none());
        seen.remove("p5");
        assert!(seen.get("p5", now).is_none());
        assert_eq!(
            (seen.by_uid.len(), seen.order.len()),
            (SEEN_CAP - 1, SEEN_CAP - 1)
        );
    }

    #[test]
    fn waiting_pods_are_counted_until_bound_filtered_again_or_expired() {
        let now = Instant::now();
        let mut seen = Seen::default();
        for uid in ["a", "b", "c"] {
            seen.insert(&pod(uid), now);
        }
        seen.set_waiting("a", Waiting::Gpu);
        seen.set_waiting("b", Waiting::Gpu);
        seen.set_waiting("c", Waiting::Model);
        seen.set_waiting("never-filtered", Waiting::Cpu);
        let count = |s: &Seen, at, w: Waiting| s.waiting(at)[w as usize];
        assert_eq!(count(&seen, now, Waiting::Gpu), 2);
        assert_eq!(count(&seen, now, Waiting::Model), 1);
        assert_eq!(count(&seen, now, Waiting::Cpu), 0);
        seen.remove("a");
        seen.insert(&pod("c"), now);
        assert_eq!(count(&seen, now, Waiting::Gpu), 1, "a was bound");
        assert_eq!(
            count(&seen, now, Waiting::Model),
            0,
            "c fits at its new filter"
        );
        assert_eq!(count(&seen, now + SEEN_TTL, Waiting::Gpu), 0, "b expired");
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let now = Instant::now();
        let mut seen = Seen::default();
        seen.insert(&pod("a"), now);
        assert!(seen.get("a", now + SEEN_TTL / 2).is_some());
        assert!(seen.get("a", now + SEEN_TTL).is_none());
    }
}
