//! The extender's state: an immutable [`ClusterSnapshot`] (the core's one snapshot type, from
//! a `--snapshot` file or from the cluster watches, stored as built) plus an overlay of
//! placements made in the last seconds, merged into one [`View`] that every request reads.
//! Writers swap a new `Arc<View>`; readers never wait on a computation, only on the pointer
//! swap.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::FilterAnswer;
pub use super::policies::{PolicySettings, PolicyStats};
pub use super::view::View;
use crate::model::frag::TargetWorkload;
use crate::model::{Cluster, PodShape};
use crate::policy::Context;
pub use crate::snapshot::{BoundPod, ClusterSnapshot, NameIndex, node_index};

mod decisions;
mod destinations;
mod place;
mod prices;
mod seen;
mod settings;
mod target;
pub use decisions::Decision;
pub use place::HoldStats;
pub use prices::{PriceStats, SolveOutcome, WINDOW};
use seen::Seen;
pub use seen::{SEEN_CAP, SEEN_TTL};
pub use target::{TARGET_DRIFT, TARGET_REFRESH};

pub use crate::policy::DEFAULT_SEED;

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

/// One placement in the overlay: bound by allot and not yet in the base, or held for a pod
/// from its filter to its bind (see `place.rs`).
#[derive(Debug, Clone)]
struct Recent {
    pod: Arc<BoundPod>,
    expires: Option<Instant>,
    held: bool,
    /// For a hold of a moved pod's destination, that pod's UID (see `destinations.rs`).
    room: Option<String>,
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
    /// Which part of the learned policy file last scored the workload, as logged.
    support_said: Mutex<String>,
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
    /// What became of the placements held from filter to bind; see `place.rs`.
    holds: HoldStats,
    hold_ttl: Duration,
    /// Nodes where the consolidator is making room for a waiting pod whose hold cannot be
    /// placed yet (the moved pods have not left): node name -> (pod UID, pod key). Other pods'
    /// filters refuse these nodes until then; see `extender/reserve.rs`.
    rooms: RwLock<Arc<HashMap<String, (String, String)>>>,
    /// The destinations held for moved pods' replacements, and which pod claimed each.
    destinations: Mutex<destinations::Destinations>,
    /// Rebuilds the view from the watch caches at once (live mode; see [`Store::refresh_now`]).
    refresher: std::sync::OnceLock<Refresher>,
    /// How long each rebuild of the view from the watch caches took (live mode).
    builds: prometheus_client::metrics::histogram::Histogram,
}

/// A rebuild of the view from its source, on demand.
pub struct Refresher(pub Box<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for Refresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Refresher")
    }
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
            support_said: Mutex::new(String::new()),
            ready: AtomicBool::new(false),
            seen: Mutex::new(Seen::default()),
            fail_closed: false,
            filter_answer: FilterAnswer::default(),
            prices: prices::Prices::default(),
            decisions: decisions::Decisions::default(),
            holds: HoldStats::new(),
            hold_ttl: place::HOLD_TTL,
            rooms: RwLock::default(),
            refresher: std::sync::OnceLock::new(),
            destinations: Mutex::default(),
            // 0.5 ms to 8 s: a build reads every node and pod of the cluster.
            builds: prometheus_client::metrics::histogram::Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.000_5, 2.0, 15),
            ),
        }
    }

    /// The durations of the rebuilds from the watch caches
    /// (`allot_extender_snapshot_build_seconds`).
    pub fn build_seconds(&self) -> &prometheus_client::metrics::histogram::Histogram {
        &self.builds
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
        // Before the lock: binds and holds wait on it, not on this.
        snapshot.index_uids();
        let mut overlay = self.overlay.lock().unwrap_or_else(PoisonError::into_inner);
        overlay.retain(|r| snapshot.pod_by_uid(&r.pod.uid).is_none() && !departed(&r.pod.uid));
        // Node indices follow the names' order: a node added or removed moves the ones after
        // it, so each entry follows its node by name (and goes with it).
        let old = self.current();
        overlay.retain_mut(|r| {
            let name = old.cluster.node(r.pod.at.node).map(|n| &*n.name);
            match name.and_then(|n| snapshot.index.get(n)) {
                Some(i) if i == r.pod.at.node => true,
                Some(i) => {
                    let mut pod = (*r.pod).clone();
                    pod.at.node = i;
                    r.pod = Arc::new(pod);
                    true
                }
                None => false,
            }
        });
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
        let mut expired_holds = 0;
        overlay.retain(|r| {
            let live = r.expires.is_none_or(|t| t > now);
            expired_holds += u64::from(!live && r.held);
            live
        });
        if expired_holds > 0 {
            self.holds.add("expired", expired_holds);
        }
        let current = self.current();
        // A bind that took over a hold may have moved the earliest expiry later.
        if overlay.len() != before || current.next_expiry != next_expiry(&overlay) {
            self.swap(self.rebuild(current.base.clone(), &overlay));
        }
        self.current()
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
            if !Arc::ptr_eq(&current.ctx.target, &target) || fresh {
                self.check_support(&target);
            }
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
