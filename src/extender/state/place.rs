//! Placements in the overlay: a bind's (`record`), and a hold from filter to bind.
//!
//! When /filter answers with the one node allot's policy chose (`--filter-answer chosen` or
//! `auto`), kube-scheduler binds that pod there without asking again, but the bind runs beside
//! the next pods' scheduling cycles. Without a hold, the next pod's filter would see the node
//! as it was and could choose the same last free share: one of the two binds is then refused
//! and its pod retried. So the chosen placement (node and devices) is held in the overlay from
//! the filter on: later filters see it taken, the pod's bind to that node turns the hold into
//! the bind's entry without choosing again, and a bind elsewhere, a new filter of the same pod
//! or [`HOLD_TTL`] gives it back. A held placement counts as allocated in the GPU gauges.
//!
//! A filter that no bind follows (kube-scheduler's cycle failed after the extender, the pod was
//! deleted, a hand-made request) leaves its hold until then: pods turned down meanwhile for
//! lack of that room wait for kube-scheduler's next retry, as after any other refusal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Recent, RecordError, Store, View, next_expiry};
use crate::live::pod::PodRequest;
use crate::live::relevance::Accounted;
use crate::model::Placement;
use crate::model::node::Misfit;
use crate::snapshot::BoundPod;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// How long a hold waits for its bind: kube-scheduler binds within a second or two of the
/// filter even in a burst of thousands of pods (BENCHMARKS.md §6b); a later bind places anew.
pub const HOLD_TTL: Duration = Duration::from_secs(10);

/// Outcome label of `allot_extender_holds_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HoldLabels {
    pub outcome: &'static str,
}

/// What became of holds, as the metric family `/metrics` registers.
#[derive(Debug, Default, Clone)]
pub struct HoldStats {
    /// Outcomes: made (at filter); reserved (for a pod the consolidator made room for);
    /// destination (a moved pod's room at its destination, for its replacement); claimed (a
    /// replacement's filter took such a room over, to hold it as its own); bound
    /// (the pod's bind to that node took it over); released (the pod was filtered again, or
    /// bound to another node); expired (unbound).
    pub outcomes: Family<HoldLabels, Counter>,
}

impl HoldStats {
    /// Every outcome from the start, at 0 (a series that appears with its first count makes
    /// `rate()` miss that count).
    pub(super) fn new() -> Self {
        let stats = HoldStats::default();
        for outcome in [
            "made",
            "reserved",
            "destination",
            "claimed",
            "bound",
            "released",
            "expired",
        ] {
            drop(stats.outcomes.get_or_create(&HoldLabels { outcome }));
        }
        stats
    }

    pub(super) fn add(&self, outcome: &'static str, n: u64) {
        self.outcomes
            .get_or_create(&HoldLabels { outcome })
            .inc_by(n);
    }

    /// The count of one outcome (tests, logs).
    pub fn count(&self, outcome: &'static str) -> u64 {
        self.outcomes.get_or_create(&HoldLabels { outcome }).get()
    }
}

impl Store {
    /// Place `req` on `node` for its bind: its hold there if it has one, else devices chosen
    /// now with its policy.
    pub fn record(&self, req: &PodRequest, node: &str) -> Result<BoundPod, RecordError> {
        let mut overlay = self.overlay.lock().unwrap_or_else(PoisonError::into_inner);
        let owner = self.owner_of(&req.uid);
        if let Some(i) = overlay.iter().position(|r| r.held && r.pod.uid == req.uid) {
            let view = self.current();
            // The hold stands for this bind if it is for this node and the view still has it
            // placed (a new base it no longer fitted on leaves it out).
            let placed = view.overlay.iter().any(|p| Arc::ptr_eq(p, &overlay[i].pod));
            if placed && view.node_index(node) == Some(overlay[i].pod.at.node) {
                let entry = &mut overlay[i];
                entry.held = false;
                entry.expires = self.ttl.map(|ttl| Instant::now() + ttl);
                self.holds.add("bound", 1);
                let pod = (*entry.pod).clone();
                self.bound(&req.uid);
                self.destination_bound(&req.uid, owner.as_deref());
                return Ok(pod);
            }
            overlay.remove(i);
            self.holds.add("released", 1);
            self.swap(self.rebuild(view.base.clone(), &overlay));
        }
        let pod = self.place(&mut overlay, req, node, false)?;
        self.destination_bound(&req.uid, owner.as_deref());
        Ok(pod)
    }

    /// Hold `node` (and the devices `req`'s policy chooses there) for `req` until its bind.
    pub fn hold(&self, req: &PodRequest, node: &str) -> Result<BoundPod, RecordError> {
        let mut overlay = self.overlay.lock().unwrap_or_else(PoisonError::into_inner);
        let pod = self.place(&mut overlay, req, node, true)?;
        self.holds.add("made", 1);
        Ok(pod)
    }

    /// Hold `node` (and `req`'s planned devices there, when they fit) for `req` for `ttl`: the
    /// room the consolidator made for a waiting pod (`extender/reserve.rs`). Nothing when the
    /// pod has an overlay entry already (held or bound); returns whether a hold was made. It
    /// then behaves as a filter's hold: the pod's bind there takes it over, and its own filter
    /// gives it back until the next snapshot makes it again.
    pub fn reserve(
        &self,
        req: &PodRequest,
        node: &str,
        ttl: Duration,
    ) -> Result<bool, RecordError> {
        let mut overlay = self.overlay.lock().unwrap_or_else(PoisonError::into_inner);
        if overlay.iter().any(|r| r.pod.uid == req.uid) {
            return Ok(false);
        }
        self.place(&mut overlay, req, node, true)?;
        // A later expiry than the one the view was built with only makes the next prune
        // rebuild it (see `Store::prune`).
        if let Some(last) = overlay.last_mut() {
            last.expires = Some(Instant::now() + ttl);
        }
        self.holds.add("reserved", 1);
        Ok(true)
    }

    /// Replace the nodes where room is being made (node name -> waiting pod's UID and key).
    pub fn set_rooms(&self, rooms: HashMap<String, (String, String)>) {
        let mut current = self.rooms.write().unwrap_or_else(PoisonError::into_inner);
        if current.is_empty() && rooms.is_empty() {
            return;
        }
        *current = Arc::new(rooms);
    }

    /// Whether the pod with UID `uid` is one the consolidator makes room for whose hold cannot
    /// be placed yet.
    pub fn waits_for_room(&self, uid: &str) -> bool {
        let rooms = self.rooms.read().unwrap_or_else(PoisonError::into_inner);
        rooms.values().any(|(owner, _)| owner == uid)
    }

    /// Set how [`Store::refresh_now`] rebuilds the view (once; later calls are ignored).
    pub fn set_refresher(&self, refresher: Box<dyn Fn() + Send + Sync>) {
        let _ = self.refresher.set(super::Refresher(refresher));
    }

    /// Rebuild the view from its source now, if a refresher is set (live mode; it builds only
    /// if the source changed since the last build): for a pod waiting for room being freed
    /// for it, which kube-scheduler tries again on the very deletion that frees the room,
    /// before the snapshot loop's next rebuild would show it.
    pub fn refresh_now(&self) {
        if let Some(refresh) = self.refresher.get() {
            (refresh.0)();
        }
    }

    /// Why node `node` is refused to the pod with UID `uid`: the consolidator is making room
    /// there for another pod. `None` for every node when no room is being made.
    pub fn room_for_other(&self, node: &str, uid: &str) -> Option<String> {
        let rooms = self.rooms.read().unwrap_or_else(PoisonError::into_inner);
        if rooms.is_empty() {
            return None;
        }
        let (owner, key) = rooms.get(node)?;
        (owner != uid)
            .then(|| format!("room on this node is being made for pod {key} (consolidation)"))
    }

    /// Give back the hold of the pod with this UID, if any (it is being filtered again, so
    /// its own hold must not count against it). Returns whether there was one.
    pub fn release_hold(&self, uid: &str) -> bool {
        let mut overlay = self.overlay.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(i) = overlay.iter().position(|r| r.held && r.pod.uid == uid) else {
            return false;
        };
        overlay.remove(i);
        self.holds.add("released", 1);
        let base = self.current().base.clone();
        self.swap(self.rebuild(base, &overlay));
        true
    }

    /// `view`, or the view after giving back the hold of the pod with this UID if it had one.
    pub fn view_releasing(&self, uid: &str, view: Arc<View>) -> Arc<View> {
        if self.release_hold(uid) {
            self.view()
        } else {
            view
        }
    }

    /// Holds last this long from now on (default [`HOLD_TTL`]).
    pub fn with_hold_ttl(mut self, ttl: Duration) -> Self {
        self.hold_ttl = ttl;
        self
    }

    pub fn hold_stats(&self) -> &HoldStats {
        &self.holds
    }

    /// Whether the current view places the pod with this UID on `node` (through its overlay:
    /// a bind or a hold of this extender's): the watch showing the pod bound there is no news
    /// to the snapshot (see `live::relevance`), and the next rebuild takes it into the base.
    pub fn accounts(&self, uid: &str, node: &str) -> bool {
        let view = self.current();
        view.node_index(node)
            .is_some_and(|at| view.overlay.iter().any(|p| p.at.node == at && p.uid == uid))
    }

    /// What the bound pods' watch asks of `store` (see `live::relevance`): whether its view
    /// places a pod there already. Holds the store weakly.
    pub fn accounted(store: &Arc<Store>) -> Accounted {
        let placed = Arc::downgrade(store);
        Accounted(Box::new(move |uid, node| {
            placed.upgrade().is_some_and(|s| s.accounts(uid, node))
        }))
    }

    /// Undo a [`Store::record`] whose Binding the API server refused.
    pub fn forget(&self, uid: &str) {
        let mut overlay = self.overlay.lock().unwrap_or_else(PoisonError::into_inner);
        let before = overlay.len();
        overlay.retain(|r| r.pod.uid != uid);
        if overlay.len() != before {
            let base = self.current().base.clone();
            self.swap(self.rebuild(base, &overlay));
        }
    }

    /// Its bind no longer needs the filter's record of the pod (a retry filters it again).
    fn bound(&self, uid: &str) {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(uid);
    }

    /// Place `req` on `node` in `overlay` (the locked overlay), choosing devices with its
    /// policy, as a bind's entry or as a hold.
    pub(super) fn place(
        &self,
        overlay: &mut Vec<Recent>,
        req: &PodRequest,
        node: &str,
        held: bool,
    ) -> Result<BoundPod, RecordError> {
        let view = self.current();
        let index = view
            .node_index(node)
            .ok_or_else(|| RecordError::UnknownNode(node.to_string()))?;
        let name_of = |i: usize| view.cluster.node(i).map_or("?", |n| &*n.name);
        if let Some(p) = view.pod_by_uid(&req.uid) {
            return Err(RecordError::AlreadyBound {
                pod: req.key.clone(),
                node: name_of(p.at.node).to_string(),
            });
        }
        let target = view
            .cluster
            .node(index)
            .ok_or_else(|| RecordError::UnknownNode(node.to_string()))?;
        let misfit = |m: Misfit| {
            let (pod, node) = (req.key.clone(), node.to_string());
            let why = m.describe(target, req.demand.models, &view.cluster.models);
            if m.permanent() {
                RecordError::DoesNotFit { pod, node, why }
            } else {
                RecordError::NoLongerFits { pod, node, why }
            }
        };
        target.check(&req.demand).map_err(misfit)?;
        let planned = req.planned_devices.filter(|&d| {
            req.planned_node.as_deref() == Some(node) && target.devices_fit(req.demand.gpu, d)
        });
        let mut decider = view.decider();
        let devices = planned
            .or_else(|| {
                view.with_policy(req.policy, |p| {
                    decider.devices(p, target, &req.demand, &req.uid)
                })
            })
            .or_else(|| target.default_devices(req.demand.gpu))
            .ok_or_else(|| RecordError::NoDevices(node.to_string()))?;
        let pod = BoundPod {
            key: req.key.clone(),
            uid: req.uid.clone(),
            demand: req.demand,
            at: Placement {
                node: index,
                devices,
            },
            priority: req.priority,
        };
        let mut cluster = view.cluster.clone();
        cluster.place(&pod.demand, pod.at).map_err(misfit)?;
        let shared = Arc::new(pod.clone());
        let ttl = if held { Some(self.hold_ttl) } else { self.ttl };
        overlay.push(Recent {
            pod: shared.clone(),
            expires: ttl.map(|ttl| Instant::now() + ttl),
            held,
            room: None,
        });
        let mut entries = view.overlay.clone();
        entries.push(shared);
        // The new cluster differs from the old only in the node just placed, whose generation
        // moved on: idle policies keep their caches for every other node.
        let warm = std::mem::take(&mut *view.pool.lock().unwrap_or_else(PoisonError::into_inner));
        self.swap(View {
            base: view.base.clone(),
            overlay: entries,
            cluster,
            next_expiry: next_expiry(overlay),
            ctx: view.ctx.clone(),
            pool: Mutex::new(warm),
        });
        if !held {
            self.bound(&req.uid);
        }
        Ok(pod)
    }
}
