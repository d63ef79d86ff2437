//! The pricer (issue 14): every `--price-seconds`, while a policy in force reads the LP's
//! shadow prices (the default or shadow policy is `learned` with a non-zero `lp_price_cost`
//! weight), it solves the pricing LP of the current view's cluster over the recent arrivals
//! ([`crate::alloc::price`]) off the decision path and installs the book in the store, which
//! swaps in a new decision context. A solve that fails or runs past its limit keeps the
//! previous prices, is counted, and is logged once until the state changes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::policies::PolicySettings;
use super::state::{SolveOutcome, Store};
use crate::alloc::SolveError;
use crate::policy::{Context, PolicyKind};

/// Time one solve may take: ~10 ms on a 1,213-node cluster, so this only stops a runaway.
pub const SOLVE_LIMIT: Duration = Duration::from_secs(2);

/// What one tick of the pricer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    /// Nothing solved, and why.
    Idle(Idle),
    /// A new book is in force.
    Solved { groups: usize, arrivals: usize },
    /// The solve failed; the previous prices (if any) stay.
    Kept {
        outcome: SolveOutcome,
        error: String,
    },
}

/// Why a tick solved nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// The cluster has not been listed yet.
    NotReady,
    /// Neither the default nor the shadow policy reads prices.
    NotWanted,
    /// No pod has been filtered yet.
    NoArrivals,
}

/// The pricer's memory between ticks: the state last logged, so a lasting state logs once.
#[derive(Debug)]
pub struct Pricer {
    limit: Duration,
    logged: Logged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logged {
    Idle,
    Solving,
    Failing(SolveOutcome),
}

impl Pricer {
    /// A pricer whose solves may take `limit`.
    pub fn new(limit: Duration) -> Self {
        Pricer {
            limit,
            logged: Logged::Idle,
        }
    }

    /// Solve once if prices are wanted, and install the book in `store`. Blocking (the solve
    /// runs here): the task calls it off the async threads.
    pub fn tick(&mut self, store: &Store) -> Tick {
        let tick = self.solve(store);
        self.log(&tick);
        tick
    }

    fn solve(&self, store: &Store) -> Tick {
        if !store.is_ready() {
            return Tick::Idle(Idle::NotReady);
        }
        let view = store.view();
        if !wants_prices(&store.policies(), &view.ctx) {
            return Tick::Idle(Idle::NotWanted);
        }
        let recent = store.recent_arrivals();
        if recent.is_empty() {
            return Tick::Idle(Idle::NoArrivals);
        }
        let started = Instant::now();
        let solved = crate::alloc::price(&view.cluster, &recent, self.limit);
        let took = started.elapsed();
        let stats = store.price_stats();
        match solved {
            Ok(book) => {
                stats.solved(SolveOutcome::Ok, took);
                let groups = book.groups();
                store.install_prices(book, &view.base);
                Tick::Solved {
                    groups,
                    arrivals: recent.len(),
                }
            }
            Err(e) => {
                let outcome = match e {
                    SolveError::Timeout => SolveOutcome::Timeout,
                    SolveError::Solver(_) => SolveOutcome::Error,
                };
                stats.solved(outcome, took);
                Tick::Kept {
                    outcome,
                    error: e.to_string(),
                }
            }
        }
    }

    /// Log `tick` when it changes the pricer's state (idle, solving, failing).
    fn log(&mut self, tick: &Tick) {
        let now = match tick {
            Tick::Idle(_) => Logged::Idle,
            Tick::Solved { .. } => Logged::Solving,
            Tick::Kept { outcome, .. } => Logged::Failing(*outcome),
        };
        if now == self.logged {
            return;
        }
        match tick {
            Tick::Idle(why) => tracing::info!(?why, "shadow prices no longer re-solved"),
            Tick::Solved { groups, arrivals } => tracing::info!(
                groups,
                arrivals,
                "shadow prices solved over the recent arrivals; re-solved every tick from now on"
            ),
            Tick::Kept { outcome, error } => tracing::warn!(
                outcome = outcome.name(),
                error = %error,
                "solving the shadow prices failed; keeping the previous ones"
            ),
        }
        self.logged = now;
    }
}

/// Whether the default or the shadow policy in force is `learned` with weights that read
/// prices (`ctx` carries the weights the settings name).
pub fn wants_prices(settings: &PolicySettings, ctx: &Context) -> bool {
    let learned = PolicyKind::Learned;
    (settings.default == learned || settings.shadow == Some(learned))
        && learned.build_for(ctx).wants_prices()
}

/// Tick every `every` for as long as the extender runs.
pub async fn follow(store: Arc<Store>, every: Duration) {
    let mut pricer = Pricer::new(SOLVE_LIMIT);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = store.clone();
        // The solve is CPU work: off the async threads.
        let ticked = tokio::task::spawn_blocking(move || {
            let mut p = pricer;
            p.tick(&s);
            p
        })
        .await;
        pricer = match ticked {
            Ok(p) => p,
            Err(_) => {
                tracing::error!("solving the shadow prices panicked; keeping the previous ones");
                store
                    .price_stats()
                    .solved(SolveOutcome::Error, Duration::ZERO);
                Pricer::new(SOLVE_LIMIT)
            }
        };
    }
}

#[cfg(test)]
mod tests;
