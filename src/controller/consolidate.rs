//! Consolidation in the cluster (issue 19, design §7c): a loop in the controller process,
//! run by the Lease holder, that makes room for pods no node can take by moving opted-in pods.
//!
//! Every `interval` it lists the pods waiting for allot's scheduler (unbound, marked
//! Unschedulable for at least `grace`). For each, oldest first, it reads the pod's record
//! (`live/consolidation.rs`) and either plans, resumes an interrupted consolidation, gives
//! back an expired hold, or waits. A plan (`plan.rs`) first looks for the fewest elastic
//! ScheduleRequest replicas (above their task's minimum, of no higher priority) whose room lets
//! the pod fit: those are given back, not moved. Otherwise the simulator's search on the live
//! cluster names the fewest movable pods whose eviction lets the pod fit and, for each, a node
//! it fits afterwards. Then, unless in dry-run mode:
//! 1. every eviction is checked with a dry run (a PodDisruptionBudget that forbids one stops
//!    the consolidation before anything moves: Event and record `Refused`);
//! 2. the record (phase `Evicting`, the moves, a deadline) and the pod's planned node and
//!    devices are written on the waiting pod, with the label the extender's hold watch selects;
//!    from then on the extender holds that room for it (`extender::state::place`);
//! 3. from the next pass on (the extender has read the record by then, and a replacement
//!    created the moment its pod goes finds the rooms held), each pod is evicted through the
//!    Eviction API, its record updated after each one; its owner recreates it, and the
//!    extender holds the room planned at its destination for the replacement (the record
//!    names the owner and the planned demand and devices; `extender::state::destinations`);
//! 4. phase `Holding` until the pod binds or the deadline passes (then `Expired`: the planned
//!    node is taken off the pod, the cool-down starts).
//!
//! Movable pods ([`movable`]): label `allot.dev/movable: "true"`, owned by a controller that
//! recreates them, not being deleted, of no higher priority than the waiting pod, and not a
//! member of a ScheduleRequest gang. Limits: `max_moves` pods per waiting pod, at most
//! `moves_per_minute` evictions a minute over all pods, and one plan per pod per `cooldown`.
//!
//! Not kube-scheduler's preemption: `/preempt` evicts lower-priority pods so that a higher
//! priority one runs, whatever fragmentation it leaves; this loop evicts only pods that opted
//! in, at any priority up to the waiting pod's, and only when each moved pod fits elsewhere,
//! so nothing stops running for long. Preemption nominates a node for the preemptor alone;
//! here the moved pods' replacements have their destinations held too.

pub mod act;
pub mod plan;
mod step;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::events::Recorder;
use kube::{Client, ResourceExt};

use super::metrics::Metrics;
use crate::crd::ScheduleRequest;
use crate::live::consolidation::{Phase, Record, Step, destinations, next_step, unix_now};
use crate::live::{Caches, Freshness, StalePolicy};
use crate::names::{CONSOLIDATION_ANNOTATION, MOVABLE_LABEL, REQUEST_LABEL};

/// Whether and how the loop acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// No loop.
    #[default]
    Off,
    /// Plan and report (Events, records, metrics); evict nothing.
    DryRun,
    On,
}

/// The loop's limits and timings (`allot controller --consolidation*`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    /// Pods with this `spec.schedulerName` are looked after.
    pub scheduler_name: String,
    pub interval: Duration,
    /// How long a pod must have been Unschedulable before anything moves for it.
    pub grace: Duration,
    /// Least time between two plans for the same pod.
    pub cooldown: Duration,
    /// How long the freed room is held for the waiting pod.
    pub hold: Duration,
    /// Most pods moved for one waiting pod.
    pub max_moves: usize,
    /// Most evictions in any minute.
    pub moves_per_minute: usize,
    /// Seeds the tie-break order, as the extender's `--seed`.
    pub seed: u64,
    /// The namespaces consolidation acts in (waiting pods, and pods moved or given back);
    /// every namespace when empty.
    pub namespaces: Vec<String>,
}

impl Settings {
    /// Whether consolidation acts on pods of namespace `ns`.
    pub fn covers(&self, ns: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == ns)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: Mode::Off,
            scheduler_name: crate::names::SCHEDULER_NAME.into(),
            interval: Duration::from_secs(10),
            grace: Duration::from_secs(30),
            cooldown: Duration::from_secs(300),
            hold: Duration::from_secs(120),
            max_moves: 4,
            moves_per_minute: 10,
            seed: crate::policy::DEFAULT_SEED,
            namespaces: Vec::new(),
        }
    }
}

/// What one pass shares: the API, the caches, limits, and the recent evictions.
pub struct Loop {
    pub client: Client,
    pub caches: Arc<Caches>,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Telemetry freshness, as the controller's plans read it.
    pub stale: (Duration, StalePolicy),
    recent: VecDeque<Instant>,
    /// This pass's nodes whose room is held for some waiting pod.
    held: HashSet<String>,
    /// Waiting pods (UIDs) whose record could not be read, already reported.
    malformed: HashSet<String>,
}

impl std::fmt::Debug for Loop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loop")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Loop {
    pub fn new(
        client: Client,
        caches: Arc<Caches>,
        settings: Settings,
        metrics: Arc<Metrics>,
        recorder: Recorder,
        stale: (Duration, StalePolicy),
    ) -> Self {
        Loop {
            client,
            caches,
            settings,
            metrics,
            recorder,
            stale,
            recent: VecDeque::new(),
            held: HashSet::new(),
            malformed: HashSet::new(),
        }
    }

    /// Run passes until dropped (the caller aborts it when the Lease is lost).
    pub async fn run(mut self) {
        if self.settings.mode == Mode::Off {
            return;
        }
        // Evictions need a client that takes a 429 (a PodDisruptionBudget) as the answer.
        match crate::process::kube_client_without_retry().await {
            Ok(client) => self.client = client,
            Err(e) => {
                tracing::error!(error = %e, "no API client for evictions: consolidation off");
                return;
            }
        }
        tracing::info!(mode = ?self.settings.mode, "consolidation loop running");
        loop {
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "consolidation pass failed; next one in an interval");
            }
            tokio::time::sleep(self.settings.interval).await;
        }
    }

    /// Evictions still allowed this minute.
    fn allowance(&mut self) -> usize {
        let now = Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.recent.pop_front();
        }
        self.settings
            .moves_per_minute
            .saturating_sub(self.recent.len())
    }

    fn note_evictions(&mut self, n: usize) {
        let now = Instant::now();
        self.recent.extend(std::iter::repeat_n(now, n));
    }

    fn freshness(&self) -> Freshness {
        Freshness::now(self.stale.0, self.stale.1)
    }

    /// One pass over the waiting pods.
    async fn pass(&mut self) -> kube::Result<()> {
        let fields = format!(
            "spec.nodeName=,spec.schedulerName={},status.phase=Pending",
            self.settings.scheduler_name
        );
        let list = Api::<Pod>::all(self.client.clone())
            .list(&ListParams::default().fields(&fields))
            .await?;
        let now = unix_now();
        let mut waiting: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && !p.labels().contains_key(REQUEST_LABEL)
                    && self.settings.covers(&p.namespace().unwrap_or_default())
            })
            .collect();
        waiting.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
        // Each record read once; nodes whose room is held for a waiting pod are no other
        // plan's to use.
        let waiting: Vec<(Pod, Option<Result<Record, String>>)> = waiting
            .into_iter()
            .map(|p| {
                let record = p
                    .annotations()
                    .get(CONSOLIDATION_ANNOTATION)
                    .map(|t| Record::parse(t).map_err(|e| e.to_string()));
                (p, record)
            })
            .collect();
        // So are the destinations held for the moved pods' replacements.
        self.held = waiting
            .iter()
            .filter_map(|(_, r)| r.as_ref()?.as_ref().ok())
            .filter(|r| r.holds_at(now))
            .flat_map(|r| {
                let rooms = destinations(r, now).into_iter().map(|d| d.node);
                r.node.clone().into_iter().chain(rooms)
            })
            .collect();
        let seen: HashSet<String> = waiting.iter().filter_map(|(p, _)| p.uid()).collect();
        self.malformed.retain(|uid| seen.contains(uid));
        self.release_bound(now).await;
        for (pod, record) in waiting {
            let record = match record {
                None => None,
                Some(Ok(r)) => Some(r),
                Some(Err(e)) => {
                    // Said once per pod, not at every pass.
                    if self.malformed.insert(pod.uid().unwrap_or_default()) {
                        tracing::warn!(pod = %pod.name_any(), error = %e, "record unreadable: left alone");
                    }
                    continue;
                }
            };
            // One pod's failed call (it was deleted meanwhile, say) does not hold up the rest.
            if let Err(e) = self.look_after(&pod, record, now).await {
                tracing::warn!(pod = %pod.name_any(), error = %e, "consolidation step failed");
            }
        }
        Ok(())
    }

    /// The next step for one waiting pod whose record is `record`.
    async fn look_after(
        &mut self,
        pod: &Pod,
        record: Option<Record>,
        now: i64,
    ) -> kube::Result<()> {
        let cooldown = self.settings.cooldown.as_secs() as i64;
        let step = next_step(record.as_ref(), now, cooldown);
        let waited = unschedulable_for(pod, now);
        tracing::debug!(pod = %pod.name_any(), ?step, ?waited, "waiting pod");
        match (step, record) {
            (Step::Wait, Some(r)) if r.phase == Phase::Holding && !r.freed => {
                self.nudge_when_freed(pod, r).await
            }
            (Step::Plan, _) if waited >= Some(self.grace_secs()) => self.plan(pod).await,
            (Step::Resume, Some(r)) => self.resume(pod, r).await,
            (Step::Expire, Some(r)) => self.expire(pod, r).await,
            _ => Ok(()),
        }
    }

    fn grace_secs(&self) -> i64 {
        self.settings.grace.as_secs() as i64
    }
}

/// Seconds `pod` has been marked Unschedulable (its PodScheduled condition), if it is.
pub fn unschedulable_for(pod: &Pod, now: i64) -> Option<i64> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let c = conditions.iter().find(|c| c.type_ == "PodScheduled")?;
    if c.status != "False" || c.reason.as_deref() != Some("Unschedulable") {
        return None;
    }
    let since = c.last_transition_time.as_ref()?.0.as_second();
    Some(now.saturating_sub(since))
}

/// The pods of `pods` (labelled for the extender's hold watch) that are bound and whose record
/// no longer holds at `now`, or has none that reads: nothing is held for them, nor for their
/// moved pods' replacements, any more.
pub fn finished_holds(pods: &[Arc<Pod>], now: i64) -> Vec<Arc<Pod>> {
    pods.iter()
        .filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_some()))
        .filter(|p| {
            let record = p.annotations().get(CONSOLIDATION_ANNOTATION);
            !record.is_some_and(|t| Record::parse(t).is_ok_and(|r| r.holds_at(now)))
        })
        .cloned()
        .collect()
}

/// Whether the consolidator may move `pod` to make room for a pod of `priority`; `requests`
/// finds a ScheduleRequest (namespace, name) to tell whether it is a gang.
pub fn movable(
    pod: &Pod,
    priority: i32,
    request: impl Fn(&str, &str) -> Option<Arc<ScheduleRequest>>,
) -> bool {
    let opted_in = pod.labels().get(MOVABLE_LABEL).map(String::as_str) == Some("true");
    let recreated = pod
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true));
    let own_priority = pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
    let in_gang = pod.labels().get(REQUEST_LABEL).is_some_and(|name| {
        let ns = pod.namespace().unwrap_or_default();
        request(&ns, name).is_none_or(|sr| sr.spec.gang)
    });
    opted_in
        && recreated
        && pod.metadata.deletion_timestamp.is_none()
        && own_priority <= priority
        && !in_gang
}

#[cfg(test)]
mod tests;
