//! The store's side of the LP's shadow prices (issue 14): the window of recent arrivals the
//! pricer solves over, the latest [`PriceBook`], and how a book enters decision contexts. The
//! pricer (`extender/pricer.rs`) solves off the decision path and calls
//! [`Store::install_prices`]; every context built after carries the book, re-indexed to its
//! base's nodes.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::{ClusterSnapshot, Store, View};
use crate::alloc::PriceBook;
use crate::model::{Cluster, PodDemand};

/// Arrivals the prices are solved over: the simulator's window (it re-solves every this many
/// arrivals over the last this many), so the extender prices the mix the policy was trained on.
pub const WINDOW: usize = crate::sim::replay::PRICE_EVERY;

/// The demand of the last [`WINDOW`] distinct pods filtered, oldest first.
#[derive(Debug, Default)]
pub struct Window {
    pods: VecDeque<(String, PodDemand)>,
    /// The UIDs in `pods`: a pod filtered again (a retry) is not a new arrival.
    uids: HashSet<String>,
}

impl Window {
    /// Note a filtered pod; false when it is already in the window. The oldest pod makes room.
    pub fn arrive(&mut self, uid: &str, demand: PodDemand) -> bool {
        if self.uids.contains(uid) {
            return false;
        }
        while self.pods.len() >= WINDOW {
            let Some((old, _)) = self.pods.pop_front() else {
                break;
            };
            self.uids.remove(&old);
        }
        self.uids.insert(uid.to_string());
        self.pods.push_back((uid.to_string(), demand));
        true
    }

    /// The demands in the window, oldest first.
    pub fn demands(&self) -> Vec<PodDemand> {
        self.pods.iter().map(|(_, d)| *d).collect()
    }
}

/// The store's pricing state: the window, the latest book, the pricer's metrics.
#[derive(Debug, Default)]
pub struct Prices {
    window: Mutex<Window>,
    /// The latest book, indexed by the nodes of the base it was installed on.
    book: Mutex<Option<Arc<PriceBook>>>,
    stats: Arc<PriceStats>,
}

/// How a solve of the pricing LP ended (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SolveOutcome {
    Ok,
    Error,
    Timeout,
}

impl SolveOutcome {
    pub fn name(self) -> &'static str {
        match self {
            SolveOutcome::Ok => "ok",
            SolveOutcome::Error => "error",
            SolveOutcome::Timeout => "timeout",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct SolveLabels {
    /// A [`SolveOutcome::name`].
    pub outcome: &'static str,
}

/// What the extender counts about the pricer, as metric families `/metrics` registers.
#[derive(Debug, Default)]
pub struct PriceStats {
    /// Solves of the pricing LP by outcome.
    pub solves: Family<SolveLabels, Counter>,
    /// Wall time of the last solve, in seconds.
    pub solve_seconds: Gauge<f64, AtomicU64>,
    /// Unix time of the last successful solve (0: none yet).
    pub solved_at: Gauge<f64, AtomicU64>,
}

impl PriceStats {
    /// A solve that took `took` and ended with `outcome`.
    pub fn solved(&self, outcome: SolveOutcome, took: Duration) {
        let labels = SolveLabels {
            outcome: outcome.name(),
        };
        self.solves.get_or_create(&labels).inc();
        self.solve_seconds.set(took.as_secs_f64());
        if outcome == SolveOutcome::Ok {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.solved_at.set(now);
        }
    }
}

impl Prices {
    /// The latest book re-indexed to `cluster`'s nodes, for a context built on it.
    fn for_cluster(&self, cluster: &Cluster) -> Option<Arc<PriceBook>> {
        let book = self.book.lock().unwrap_or_else(PoisonError::into_inner);
        book.as_ref().map(|b| Arc::new(b.for_cluster(cluster)))
    }
}

/// The pricing state as the verbs and the pricer use it.
impl Store {
    /// Note a filtered pod as an arrival (once per UID while it is in the window).
    pub(super) fn arrived(&self, uid: &str, demand: PodDemand) {
        let mut window = self
            .prices
            .window
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        window.arrive(uid, demand);
    }

    /// The demands of the recent arrivals, oldest first (at most [`WINDOW`]).
    pub fn recent_arrivals(&self) -> Vec<PodDemand> {
        let window = self
            .prices
            .window
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        window.demands()
    }

    /// Decide with `book` from now on: the current view gets a new context carrying it (the
    /// book re-indexed when the base changed since `solved_on`, the base it was solved on),
    /// and every context built later carries it too. Readers keep the view they hold.
    pub fn install_prices(&self, book: PriceBook, solved_on: &Arc<ClusterSnapshot>) {
        let overlay = self.overlay.lock().unwrap_or_else(PoisonError::into_inner);
        let view = self.current();
        let book = if Arc::ptr_eq(&view.base, solved_on) {
            Arc::new(book)
        } else {
            Arc::new(book.for_cluster(&view.base.cluster))
        };
        *self
            .prices
            .book
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(book.clone());
        let mut ctx = (*view.ctx).clone();
        ctx.prices = Some(book);
        // Same base, same cluster: the warm policies' caches stay valid (prices are read per
        // decision, never cached).
        let warm = std::mem::take(&mut *view.pool.lock().unwrap_or_else(PoisonError::into_inner));
        self.swap(View {
            base: view.base.clone(),
            overlay: view.overlay.clone(),
            cluster: view.cluster.clone(),
            next_expiry: view.next_expiry,
            ctx: Arc::new(ctx),
            pool: Mutex::new(warm),
        });
        drop(overlay);
    }

    /// The latest book re-indexed to `cluster`, for a new context (`None` before any solve).
    pub(super) fn prices_for(&self, cluster: &Cluster) -> Option<Arc<PriceBook>> {
        self.prices.for_cluster(cluster)
    }

    pub fn price_stats(&self) -> &Arc<PriceStats> {
        &self.prices.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GpuDemand, ModelSet};

    fn demand(gpus: u32) -> PodDemand {
        PodDemand {
            cpu_milli: 1000,
            memory_bytes: 1 << 30,
            gpu: GpuDemand::Whole { count: gpus },
            models: ModelSet::ANY,
        }
    }

    #[test]
    fn the_window_counts_a_pod_once_and_keeps_the_latest_window_arrivals() {
        let mut w = Window::default();
        assert!(w.arrive("a", demand(1)));
        assert!(!w.arrive("a", demand(1)), "a retry is not a new arrival");
        assert_eq!(w.pods.len(), 1);
        for i in 0..WINDOW + 10 {
            w.arrive(&format!("p{i}"), demand(2));
        }
        assert_eq!((w.pods.len(), w.uids.len()), (WINDOW, WINDOW));
        assert!(!w.uids.contains("a") && !w.uids.contains("p9"));
        assert!(w.uids.contains("p10"));
        assert!(w.demands().iter().all(|d| *d == demand(2)));
    }
}
