//! What every extender request reads: one base [`ClusterSnapshot`] with the overlay of recent
//! binds placed on it, the decision context, and a pool of warm policies. Built by the
//! [`Store`](super::state::Store), never changed after.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::model::Cluster;
use crate::policy::{Context, Decider, Policy, PolicyKind};
use crate::snapshot::{BoundPod, ClusterSnapshot, NodeState};

/// Policies kept warm per view; more concurrent requests than this build a fresh one.
const POOL_CAP: usize = 16;

/// What requests read: the snapshot with the overlay applied.
pub struct View {
    pub base: Arc<ClusterSnapshot>,
    /// Placements allot made that the base does not show yet.
    /// Shared, so that a bind's new view copies pointers, not pods.
    pub overlay: Vec<Arc<BoundPod>>,
    /// `base.cluster` with the overlay placed.
    pub cluster: Cluster,
    pub(super) next_expiry: Option<Instant>,
    /// The decision context of `base` (tie-break rank, target workload, seed), shared with
    /// every view built on the same base.
    pub ctx: Arc<Context>,
    pub(super) pool: Mutex<Vec<(PolicyKind, Box<dyn Policy>)>>,
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View")
            .field("nodes", &self.cluster.len())
            .field("base_pods", &self.base.pods.len())
            .field("overlay", &self.overlay.len())
            .finish_non_exhaustive()
    }
}

impl View {
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.base.index.get(name)
    }

    /// Every pod allot accounts: the base's, then the overlay's.
    pub fn pods(&self) -> impl Iterator<Item = &BoundPod> {
        self.base
            .pods
            .iter()
            .chain(self.overlay.iter().map(|p| &**p))
    }

    /// The pod allot accounts with this UID: the base's (through its UID index), else the
    /// overlay's.
    pub fn pod_by_uid(&self, uid: &str) -> Option<&BoundPod> {
        self.base
            .pod_by_uid(uid)
            .or_else(|| self.overlay.iter().map(|p| &**p).find(|p| p.uid == uid))
    }

    /// Every pod allot accounts on node `index`: base first, then the overlay.
    pub fn pods_on(&self, index: usize) -> impl Iterator<Item = &BoundPod> {
        self.pods().filter(move |p| p.at.node == index)
    }

    /// Run `f` with a policy of `kind`, reusing one whose caches match this view.
    pub fn with_policy<R>(&self, kind: PolicyKind, f: impl FnOnce(&mut dyn Policy) -> R) -> R {
        let taken = {
            let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
            pool.iter()
                .position(|(k, _)| *k == kind)
                .map(|i| pool.swap_remove(i).1)
        };
        let mut policy = taken.unwrap_or_else(|| kind.build_for(&self.ctx));
        let out = f(policy.as_mut());
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < POOL_CAP {
            pool.push((kind, policy));
        }
        out
    }

    /// A decider on this view's context.
    pub fn decider(&self) -> Decider {
        Decider::new(self.ctx.clone())
    }

    /// What is known about node `index` beyond allocation, if anything.
    pub fn state(&self, index: usize) -> Option<&NodeState> {
        self.base.states.get(index)
    }

    /// How old the base snapshot is.
    pub fn age(&self) -> Duration {
        self.base.taken_at.elapsed()
    }
}
