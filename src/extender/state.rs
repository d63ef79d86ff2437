//! The extender's state: an immutable [`ClusterSnapshot`] (the core's one snapshot type, from
//! a `--snapshot` file or from the cluster watches, stored as built) plus an overlay of
//! placements made in the last seconds, merged into one [`View`] that every request reads.
//! Writers swap a new `Arc<View>`; readers never wait on a computation, only on the pointer
//! swap.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::FilterAnswer;
pub use super::policies::{PolicySettings, PolicyStats};
pub use super::view::View;
use crate::live::pod::PodRequest;
use crate::model::frag::TargetWorkload;
use crate::model::node::Misfit;
use crate::model::{Cluster, Placement, PodShape};
use crate::policy::Context;
pub use crate::snapshot::{BoundPod, ClusterSnapshot, NodeIndex, node_index};

mod decisions;
mod prices;
mod seen;
mod settings;
mod target;
pub use decisions::Decision;
pub use prices::{PriceStats, SolveOutcome, WINDOW};
use seen::Seen;
pub use seen::{SEEN_CAP, SEEN_TTL};
pub use target::{TARGET_DRIFT, TARGET_REFRESH};

/// Seed of the tie-break order when none is given: the first of the FGD paper's evaluation
/// seeds, so a default extender breaks ties as `allot simulate --seeds 42` does.
pub const DEFAULT_SEED: u64 = 42;

/// Why a placement could not be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("node {0:?} is unknown to allot")]
    UnknownNode(String),
    #[error("pod {pod} no longer fits node {node:?}: {why}")]
    NoLongerFits {
        pod: String,
        node: String,
        why: String,
    },
    /// The node lacks the capacity or the GPU model outright: the pod never fitted it.
    #[error("pod {pod} does not fit node {node:?}: {why}")]
    DoesNotFit {
        pod: String,
        node: String,
        why: String,
    },
    #[error("pod {pod} is already bound to node {node:?}")]
    AlreadyBound { pod: String, node: String },
    #[error("no GPU devices on node {0:?} fit the pod")]
    NoDevices(String),
}

impl RecordError {
    pub fn reason(&self) -> &'static str {
        match self {
            RecordError::UnknownNode(_) => "UnknownNode",
            RecordError::NoLongerFits { .. } => "NoLongerFits",
            RecordError::DoesNotFit { .. } => "DoesNotFit",
            RecordError::AlreadyBound { .. } => "AlreadyBound",
            RecordError::NoDevices(_) => "NoDevices",
        }
    }
}

#[derive(Debug, Clone)]
struct Recent {
    pod: Arc<BoundPod>,
    expires: Option<Instant>,
}

/// Shared state: the current view, the overlay it was built from, readiness.
#[derive(Debug)]
pub struct Store {
    view: RwLock<Arc<View>>,
    /// Also the writers' lock: every change to the view happens while holding it.
    overlay: Mutex<Vec<Recent>>,
    /// How long an overlay entry lives; `None` keeps it until the base shows the pod
    /// (snapshot mode: nothing ever refreshes the base, so entries must stay).
    ttl: Option<Duration>,
    /// The workload FGD targets while no pod runs, unless `workload` fixes it.
    fallback: Vec<PodShape>,
    /// A fixed target workload (a replay's), instead of the running pods'.
    workload: Option<Arc<TargetWorkload>>,
    /// The running pods' target workload, kept across rebuilds; see `target.rs`.
    derived: target::DerivedTarget,
    /// Seeds the tie-break order and policies' random draws (`--seed`).
    seed: u64,
    /// The default and shadow policies and the weights `learned` scores with; swapped whole
    /// when `--policy-dir` changes.
    policies: RwLock<Arc<PolicySettings>>,
    /// Shadow agreement and reload counts, for `/metrics`.
    policy_stats: Arc<PolicyStats>,
    ready: AtomicBool,
    /// The filter->bind table (bounded; a bind frees its pod's entry); see `seen.rs`.
    seen: Mutex<Seen>,
    /// Whether nodes with stale or missing telemetry are filtered (fail-closed).
    fail_closed: bool,
    /// Which nodes /filter passes.
    filter_answer: FilterAnswer,
    /// The recent arrivals and the LP's latest shadow prices; see `prices.rs`.
    prices: prices::Prices,
    decisions: decisions::Decisions, // for the GPU map page; see `decisions.rs`
}

impl Store {
    /// An empty, not-ready store. `fallback` is the workload FGD targets while no pod runs.
    pub fn new(ttl: Option<Duration>, fallback: Vec<PodShape>) -> Self {
        let base = Arc::new(ClusterSnapshot::new(Cluster::default(), Vec::new()));
        let ctx = Arc::new(Context::default());
        let view = build_view(base, Vec::new(), ctx, None);
        Store {
            view: RwLock::new(Arc::new(view)),
            overlay: Mutex::new(Vec::new()),
            ttl,
            fallback,
            workload: None,
            derived: target::DerivedTarget::default(),
            seed: DEFAULT_SEED,
            policies: RwLock::new(Arc::new(PolicySettings::default())),
            policy_stats: Arc::new(stats_in_force(&PolicySettings::default())),
            ready: AtomicBool::new(false),
            seen: Mutex::new(Seen::default()),
            fail_closed: false,
            filter_answer: FilterAnswer::default(),
            prices: prices::Prices::default(),
            decisions: decisions::Decisions::default(),
        }
    }

    /// Filter nodes whose telemetry is stale or missing (default: keep them, fail-open).
    pub fn with_fail_closed(mut self, fail_closed: bool) -> Self {
        self.fail_closed = fail_closed;
        self
    }

    pub fn fail_closed(&self) -> bool {
        self.fail_closed
    }

    /// Measure fragmentation against `target` always (a replay's workload), not against the
    /// running pods, from the current snapshot on.
    pub fn with_target(mut self, target: TargetWorkload) -> Self {
        self.workload = Some(Arc::new(target));
        self.refresh_context();
        self
    }

    /// Seed of the tie-break order and of policies' random draws, from the current snapshot on.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self.refresh_context();
        self
    }

    /// Rebuild the current view with a new decision context (after a setting changed).
    fn refresh_context(&self) {
        let overlay = self.overlay.lock().unwrap_or_else(PoisonError::into_inner);
        let base = self.current().base.clone();
        let view = self.rebuild_with(base, &overlay, true);
        self.swap(view);
    }

    /// Which nodes /filter passes (default: every feasible one).
    pub fn with_filter_answer(mut self, answer: FilterAnswer) -> Self {
        self.filter_answer = answer;
        self
    }

    pub fn filter_answer(&self) -> FilterAnswer {
        self.filter_answer
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Install a new base snapshot; overlay entries it already shows are dropped.
    pub fn replace(&self, snapshot: ClusterSnapshot) {
        self.replace_forgetting(snapshot, |_| false);
    }

    /// [`Store::replace`], also dropping the overlay entries of pods `departed` says are gone
    /// (a pod bound and deleted before any snapshot showed it).
    pub fn replace_forgetting(&self, snapshot: ClusterSnapshot, departed: impl Fn(&str) -> bool) {
        let mut overlay = self.overlay.lock().unwrap_or_else(PoisonError::into_inner);
        let known: std::collections::HashSet<&str> =
            snapshot.pods.iter().map(|p| p.uid.as_str()).collect();
        overlay.retain(|r| !known.contains(r.pod.uid.as_str()) && !departed(&r.pod.uid));
        let view = self.rebuild(Arc::new(snapshot), &overlay);
        self.swap(view);
        self.ready.store(true, Ordering::Release);
    }

    /// The current view, first dropping expired overlay entries.
    pub fn view(&self) -> Arc<View> {
        let view = self.current();
        match view.next_expiry {
            Some(t) if t <= Instant::now() => self.prune(Instant::now()),
            _ => view,
        }
    }

    /// Drop overlay entries expired at `now` and return the new view.
    pub fn prune(&self, now: Instant) -> Arc<View> {
        let mut overlay = self.overlay.lock().unwrap_or_else(PoisonError::into_inner);
        let before = overlay.len();
        overlay.retain(|r| r.expires.is_none_or(|t| t > now));
        if overlay.len() != before {
            let base = self.current().base.clone();
            self.swap(self.rebuild(base, &overlay));
        }
        self.current()
    }

    /// Place `req` on `node` in the overlay, choosing devices with its policy.
    pub fn record(&self, req: &PodRequest, node: &str) -> Result<BoundPod, RecordError> {
        let mut overlay = self.overlay.lock().unwrap_or_else(PoisonError::into_inner);
        let view = self.current();
        let index = view
            .node_index(node)
            .ok_or_else(|| RecordError::UnknownNode(node.to_string()))?;
        let name_of = |i: usize| view.cluster.node(i).map_or("?", |n| &*n.name);
        if let Some(p) = view
            .base
            .pods
            .iter()
            .chain(view.overlay.iter().map(|p| &**p))
            .find(|p| p.uid == req.uid)
        {
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
        overlay.push(Recent {
            pod: shared.clone(),
            expires: self.ttl.map(|ttl| Instant::now() + ttl),
        });
        let mut entries = view.overlay.clone();
        entries.push(shared);
        let next = next_expiry(&overlay);
        // The new cluster differs from the old only in the node just placed, whose generation
        // moved on: idle policies keep their caches for every other node.
        let warm = std::mem::take(&mut *view.pool.lock().unwrap_or_else(PoisonError::into_inner));
        self.swap(View {
            base: view.base.clone(),
            overlay: entries,
            cluster,
            next_expiry: next,
            ctx: view.ctx.clone(),
            pool: Mutex::new(warm),
        });
        // Bound: its bind no longer needs the filter's record (a retry filters it again).
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&req.uid);
        Ok(pod)
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

    fn current(&self) -> Arc<View> {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn swap(&self, view: View) {
        *self.view.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(view);
    }

    fn rebuild(&self, base: Arc<ClusterSnapshot>, overlay: &[Recent]) -> View {
        self.rebuild_with(base, overlay, false)
    }

    /// [`Store::rebuild`]; `fresh` builds a new decision context even for the same base.
    fn rebuild_with(&self, base: Arc<ClusterSnapshot>, overlay: &[Recent], fresh: bool) -> View {
        let entries = overlay.iter().map(|r| r.pod.clone()).collect();
        let current = self.current();
        // The context depends on the base only: views over the same base share it.
        let ctx = if Arc::ptr_eq(&current.base, &base) && !fresh {
            current.ctx.clone()
        } else {
            let target = match &self.workload {
                Some(fixed) => fixed.clone(),
                None => self.derived.for_base(&base, &self.fallback),
            };
            let mut ctx = Context::new(&base.cluster, target, self.seed)
                .with_learned(self.policies().learned.clone());
            // The latest prices, by hardware: nodes come, go and move between snapshots.
            ctx.prices = self.prices_for(&base.cluster);
            Arc::new(ctx)
        };
        // Policies built for the same target and weights keep what they cached per node
        // shape; what they cached per node index is dropped (indices may mean other nodes).
        let same_scoring = !fresh
            && Arc::ptr_eq(&current.ctx.target, &ctx.target)
            && match (&current.ctx.learned, &ctx.learned) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (a, b) => a.is_none() && b.is_none(),
            };
        let view = build_view(base, entries, ctx, next_expiry(overlay));
        if same_scoring {
            let mut warm =
                std::mem::take(&mut *current.pool.lock().unwrap_or_else(PoisonError::into_inner));
            for (_, policy) in &mut warm {
                policy.rebase();
            }
            *view.pool.lock().unwrap_or_else(PoisonError::into_inner) = warm;
        }
        view
    }
}

fn stats_in_force(settings: &PolicySettings) -> PolicyStats {
    let stats = PolicyStats::default();
    stats.in_force(settings);
    stats
}

fn next_expiry(overlay: &[Recent]) -> Option<Instant> {
    overlay.iter().filter_map(|r| r.expires).min()
}

fn build_view(
    base: Arc<ClusterSnapshot>,
    overlay: Vec<Arc<BoundPod>>,
    ctx: Arc<Context>,
    next_expiry: Option<Instant>,
) -> View {
    let mut cluster = base.cluster.clone();
    // An entry that no longer fits (the base moved on) is skipped rather than overbooked.
    let overlay: Vec<Arc<BoundPod>> = overlay
        .into_iter()
        .filter(|p| cluster.place(&p.demand, p.at).is_ok())
        .collect();
    View {
        base,
        overlay,
        cluster,
        next_expiry,
        ctx,
        pool: Mutex::new(Vec::new()),
    }
}
