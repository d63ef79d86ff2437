//! The dynamic replay (`allot simulate --dynamic`): pods arrive in time order, run for their
//! trace duration and leave; a pod that fits nowhere waits in a queue, retried in arrival
//! order (FIFO) whenever a departure frees capacity, until it fits or its wait reaches the
//! timeout and it fails. Every placement goes through the same [`Placer`] (and so the same
//! `Decider` and policy) as the static replay and the extender. Pure and deterministic.
//!
//! Within one instant: departures first, then the queue's retry, then timeouts (a pod that a
//! departure at its deadline lets in is placed, not failed), then arrivals in trace order. An
//! arrival that fits is placed at once even while older pods wait (no head-of-line
//! blocking), as kube-scheduler places a new pod while unschedulable ones sit aside.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use super::place::Placer;
use super::replay::ReplayOptions;
use crate::model::{Cluster, Placement, PodDemand};
use crate::policy::{Context, Policy, Unplaced, arrival_uid};

pub mod load;
pub mod run;
pub mod summary;

pub use load::{Load, LoadError, jobs_from_lifetimes, node_subset, synthesize_lifetimes};
pub use run::{DynamicResult, DynamicRun, DynamicSetup, GRID_POINTS, run_dynamic, seed_jobs};
pub use summary::{RunSummary, WaitWindow, grid, wait_grid};

/// One pod of a dynamic replay: its demand, when it arrives and how long it runs once placed
/// (milliseconds on the replay's clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Job {
    pub pod: PodDemand,
    pub arrive_ms: u64,
    pub run_ms: u64,
}

/// How long a pod that fits nowhere may wait before it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxWait {
    /// Fail when it has waited this long (0: fail at once, the static protocol's rule).
    Millis(u64),
    /// Wait until it fits, however long (it may still be waiting when the trace ends).
    Forever,
}

/// The default timeout: one hour, about when a user gives up on a Pending pod (and ten
/// times the openb median pod duration of ~6 minutes).
pub const DEFAULT_MAX_WAIT_MS: u64 = 3_600_000;

/// The cluster's state after every instant at which something happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeSample {
    pub t_ms: u64,
    /// GPU milli in use.
    pub allocated: u64,
    /// Cluster fragmentation against the target workload, milli-GPU.
    pub frag: f64,
    /// Pods in the queue.
    pub waiting: usize,
    /// Pods failed so far (timed out, or refused by the policy).
    pub failed: usize,
}

/// What one dynamic replay produced.
#[derive(Debug, Clone, Default)]
pub struct DynamicOutcome {
    pub samples: Vec<TimeSample>,
    pub placed: usize,
    pub failed: usize,
    pub failed_gpu_milli: u64,
    /// Pods still queued when nothing was left to happen (only with [`MaxWait::Forever`]).
    pub still_waiting: usize,
    /// How long each placed pod waited, in placement order (0 for most).
    pub waits_ms: Vec<u64>,
    /// When each placed pod was placed, in the same order as `waits_ms`.
    pub placed_ms: Vec<u64>,
    /// The last arrival's time: the window over which the summary averages.
    pub horizon_ms: u64,
    /// Fragmentation of the cluster before the first pod.
    pub initial_frag: f64,
}

/// The replay's mutable state apart from the cluster.
struct State {
    /// (departure time, job) of every running pod, soonest first.
    running: BinaryHeap<Reverse<(u64, usize)>>,
    placed_at: Vec<Option<Placement>>,
    /// Waiting jobs in arrival order.
    queue: VecDeque<usize>,
    /// Nodes a departure freed since the queue's last retry, and a membership mask.
    freed: Vec<usize>,
    is_freed: Vec<bool>,
    out: DynamicOutcome,
}

impl State {
    fn start(&mut self, jobs: &[Job], j: usize, at: Placement, now: u64) {
        self.placed_at[j] = Some(at);
        self.running
            .push(Reverse((now.saturating_add(jobs[j].run_ms), j)));
        self.out.placed += 1;
        self.out.waits_ms.push(now - jobs[j].arrive_ms);
        self.out.placed_ms.push(now);
    }

    fn fail(&mut self, pod: &PodDemand) {
        self.out.failed += 1;
        self.out.failed_gpu_milli += pod.gpu.total_milli();
    }
}

/// Replay `jobs` on a copy of `cluster` with `policy`. Job `i` in arrival order (ties in the
/// order given) has the UID [`arrival_uid`]`(i)`.
pub fn replay_dynamic(
    cluster: &Cluster,
    jobs: &[Job],
    policy: &mut dyn Policy,
    ctx: Arc<Context>,
    options: &ReplayOptions,
    max_wait: MaxWait,
) -> DynamicOutcome {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&j| jobs[j].arrive_ms);
    let jobs: Vec<Job> = order.iter().map(|&j| jobs[j]).collect();
    let pods: Vec<PodDemand> = jobs.iter().map(|j| j.pod).collect();
    let mut placer = Placer::new(
        cluster,
        ctx,
        (options.sampling, options.kube_filter),
        policy,
    );
    let mut s = State {
        running: BinaryHeap::new(),
        placed_at: vec![None; jobs.len()],
        queue: VecDeque::new(),
        freed: Vec::new(),
        is_freed: vec![false; cluster.len()],
        out: DynamicOutcome {
            horizon_ms: jobs.last().map_or(0, |j| j.arrive_ms),
            initial_frag: placer.frag(),
            ..DynamicOutcome::default()
        },
    };
    let deadline = |j: usize| match max_wait {
        MaxWait::Millis(ms) => Some(jobs[j].arrive_ms.saturating_add(ms)),
        MaxWait::Forever => None,
    };
    let mut next = 0;
    loop {
        let now = [
            jobs.get(next).map(|j| j.arrive_ms),
            s.running.peek().map(|Reverse((t, _))| *t),
            s.queue.front().and_then(|&j| deadline(j)),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(now) = now else { break };
        depart(&jobs, &mut placer, &mut s, now);
        if !s.freed.is_empty() {
            retry(&jobs, &mut placer, policy, &mut s, now);
        }
        while let Some(&j) = s.queue.front() {
            if deadline(j).is_some_and(|d| d <= now) {
                s.queue.pop_front();
                s.fail(&jobs[j].pod);
            } else {
                break;
            }
        }
        while next < jobs.len() && jobs[next].arrive_ms == now {
            let j = next;
            next += 1;
            placer.price_before(j, &pods);
            match placer.try_place(policy, &jobs[j].pod, &arrival_uid(j)) {
                Ok(at) => s.start(&jobs, j, at, now),
                Err(Unplaced::NoFeasibleNode { .. }) if max_wait != MaxWait::Millis(0) => {
                    s.queue.push_back(j);
                }
                Err(_) => s.fail(&jobs[j].pod),
            }
        }
        s.out.samples.push(TimeSample {
            t_ms: now,
            allocated: placer.cluster.gpu_allocated_milli(),
            frag: placer.frag(),
            waiting: s.queue.len(),
            failed: s.out.failed,
        });
    }
    s.out.still_waiting = s.queue.len();
    s.out
}

/// Take every pod due to leave by `now` off its node, noting the nodes freed.
fn depart(jobs: &[Job], placer: &mut Placer, s: &mut State, now: u64) {
    while let Some(&Reverse((t, j))) = s.running.peek() {
        if t > now {
            break;
        }
        s.running.pop();
        if let Some(at) = s.placed_at[j].take() {
            placer.remove(&jobs[j].pod, at);
            if !s.is_freed[at.node] {
                s.is_freed[at.node] = true;
                s.freed.push(at.node);
            }
        }
    }
}

/// Try the waiting pods again in arrival order. A pod that fit nowhere when last tried can
/// only fit now on a node freed since (placements only take capacity), so the full decision
/// runs only for pods that fit one of the freed nodes: the same outcome, without deciding
/// for every waiting pod at every departure.
fn retry(jobs: &[Job], placer: &mut Placer, policy: &mut dyn Policy, s: &mut State, now: u64) {
    let freed = std::mem::take(&mut s.freed);
    let mut queue = std::mem::take(&mut s.queue);
    queue.retain(|&j| {
        let pod = &jobs[j].pod;
        if !freed.iter().any(|&n| placer.cluster.nodes()[n].fits(pod)) {
            return true;
        }
        match placer.try_place(policy, pod, &arrival_uid(j)) {
            Ok(at) => {
                s.start(jobs, j, at, now);
                false
            }
            Err(Unplaced::NoFeasibleNode { .. }) => true,
            Err(Unplaced::NoDevices) => {
                s.fail(pod);
                false
            }
        }
    });
    s.queue = queue;
    for &n in &freed {
        s.is_freed[n] = false;
    }
    s.freed = freed;
    s.freed.clear();
}

#[cfg(test)]
mod tests;
