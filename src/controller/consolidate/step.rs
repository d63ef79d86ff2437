//! The loop's steps for one waiting pod: plan (and, unless dry run, check and start the
//! evictions), resume an interrupted consolidation, and give back an expired hold.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::act::{self, Evicted};
use super::plan::{PlannedMove, Proposal, Scope, propose};
use super::{Loop, Mode, movable};
use crate::live::consolidation::{
    MoveRecord, Phase, Record, VERSION, controller_owner, planned, unix_now,
};
use crate::live::pod::{format_devices, parse_pod_with};
use crate::names::CONSOLIDATING_LABEL;
use crate::policy::PolicyKind;

impl Loop {
    /// Plan for `pod` and act on the plan as the mode says.
    pub(super) async fn plan(&mut self, pod: &Pod) -> kube::Result<()> {
        let allowance = self.allowance().min(self.settings.max_moves);
        if allowance == 0 {
            return Ok(()); // the minute's evictions are spent: next pass
        }
        let live = self.caches.snapshot(&self.freshness());
        let snap = live.snapshot;
        let Ok(req) = parse_pod_with(pod, &snap.cluster.models, PolicyKind::Fgd) else {
            return Ok(()); // the extender tells the user what is wrong with it
        };
        let fail_closed = self.stale.1 == crate::live::StalePolicy::FailClosed;
        // A node whose room is held for another waiting pod is neither target nor destination.
        let usable: Vec<bool> = snap
            .states
            .iter()
            .zip(snap.cluster.nodes())
            .map(|(s, n)| s.usable(fail_closed).is_ok() && !self.held.contains(&*n.name))
            .collect();
        let objects = self.caches.pods.state();
        let by_uid: std::collections::HashMap<&str, &Pod> = objects
            .iter()
            .filter_map(|p| Some((p.metadata.uid.as_deref()?, p.as_ref())))
            .collect();
        let requests = &self.caches.requests;
        let find = |ns: &str, name: &str| {
            requests.get(&kube::runtime::reflector::ObjectRef::new(name).within(ns))
        };
        let movable: Vec<bool> = snap
            .pods
            .iter()
            .map(|b| {
                by_uid.get(b.uid.as_str()).is_some_and(|p| {
                    self.settings.covers(&p.namespace().unwrap_or_default())
                        && movable(p, req.priority, find)
                })
            })
            .collect();
        let mut elastic = elastic_replicas(&snap, &usable, &by_uid, req.priority, find);
        elastic.retain(|&i| {
            let ns = snap.pods[i].key.split_once('/').map_or("", |(ns, _)| ns);
            self.settings.covers(ns)
        });
        let scope = Scope {
            usable: &usable,
            movable: &movable,
            elastic: &elastic,
            max_moves: allowance,
        };
        let seed = self.settings.seed;
        let proposal = propose(&snap, scope, &req.demand, req.policy, seed);
        let movable_pods = movable.iter().filter(|m| **m).count();
        tracing::debug!(pod = %req.key, movable = movable_pods, ?proposal, "consolidation plan");
        let node_name = |i: usize| snap.cluster.nodes()[i].name.to_string();
        let mut record = Record {
            version: VERSION,
            phase: Phase::NoRoom,
            planned_at: unix_now(),
            until: None,
            node: None,
            devices: None,
            moves: Vec::new(),
            message: String::new(),
            freed: false,
        };
        let (at, moves) = match proposal {
            Proposal::FitsNow => return Ok(()),
            Proposal::NoRoom => {
                record.message = format!(
                    "no set of at most {allowance} movable pods (label {}=true) makes room",
                    crate::names::MOVABLE_LABEL
                );
                return self.conclude(pod, record, "ConsolidationNoRoom").await;
            }
            Proposal::Move { at, moves } => (at, moves),
        };
        let move_record = |m: &PlannedMove| {
            let b = &snap.pods[m.pod];
            MoveRecord {
                pod: b.key.clone(),
                uid: b.uid.clone(),
                from: node_name(b.at.node),
                to: m.to.map(|to| node_name(to.node)).unwrap_or_default(),
                evicted: false,
                given_back: m.to.is_none(),
                // Its replacement (same owner) may use the room held at `to` for it.
                owner: by_uid.get(b.uid.as_str()).and_then(|p| controller_owner(p)),
                planned: m.to.map(|to| planned(&b.demand, to.devices)),
            }
        };
        record.moves = moves.iter().map(move_record).collect();
        record.node = Some(node_name(at.node));
        record.devices = req.demand.needs_gpu().then(|| format_devices(at.devices));
        let listing = describe(&record);
        if self.settings.mode == Mode::DryRun {
            record.phase = Phase::DryRun;
            record.message = format!("dry run: would move {listing}");
            return self.conclude(pod, record, "ConsolidationDryRun").await;
        }
        for m in &record.moves {
            if let Evicted::Refused(r) = act::evict(&self.client, &m.pod, &m.uid, true).await {
                self.metrics.consolidation_refused(r.reason);
                record.phase = Phase::Refused;
                record.message = format!(
                    "eviction of {} refused ({}): {}",
                    m.pod, r.reason, r.message
                );
                return self.conclude(pod, record, "ConsolidationRefused").await;
            }
        }
        record.phase = Phase::Evicting;
        record.until = Some(record.planned_at + self.settings.hold.as_secs() as i64);
        record.message = format!("moving {listing}");
        self.hold(pod, &record).await?;
        self.held.extend(record.node.clone());
        let rooms = record.moves.iter().filter(|m| !m.given_back);
        self.held.extend(rooms.map(|m| m.to.clone()));
        self.metrics
            .consolidation_started(req.demand.gpu.total_milli());
        tracing::info!(pod = %req.key, plan = %listing, "consolidating");
        act::event(
            &self.recorder,
            pod,
            EventType::Normal,
            "Consolidating",
            record.message.clone(),
        )
        .await;
        // The evictions start at the next pass (`resume`): by then the extender has read the
        // record and holds the room and the destinations, so a replacement created within
        // milliseconds of its pod's eviction cannot take the room first.
        Ok(())
    }

    /// Evict the moves of `record` not evicted yet, then hold the room.
    pub(super) async fn resume(&mut self, pod: &Pod, mut record: Record) -> kube::Result<()> {
        let waiting = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
        for i in 0..record.moves.len() {
            if record.moves[i].evicted {
                continue;
            }
            if self.allowance() == 0 {
                return Ok(()); // resumed on a later pass, from the record
            }
            let m = record.moves[i].clone();
            match act::evict(&self.client, &m.pod, &m.uid, false).await {
                Evicted::Yes => {
                    self.note_evictions(1);
                    self.metrics.consolidation_moved();
                    let (reason, note) = if m.given_back {
                        let note = format!(
                            "elastic replica given back: evicted from {} to make room for {waiting}; its request waits for capacity for it",
                            m.from
                        );
                        ("GivenBack", note)
                    } else {
                        let note = format!(
                            "evicted from {} to make room for {waiting}; it fits {}",
                            m.from, m.to
                        );
                        ("MovedByConsolidation", note)
                    };
                    let regarding = act::pod_ref(&m.pod, &m.uid);
                    act::event_on(&self.recorder, &regarding, EventType::Normal, reason, note)
                        .await;
                    // A crash here leaves the record behind the eviction: the successor finds
                    // the pod gone or terminating and counts it done, never evicting twice.
                    crate::process::failpoint::hit("controller.consolidation-evicted");
                }
                Evicted::Gone => {}
                Evicted::Refused(r) => {
                    self.metrics.consolidation_refused(r.reason);
                    record.phase = Phase::Refused;
                    record.message = format!(
                        "eviction of {} refused ({}): {}; moved before it: {}",
                        m.pod,
                        r.reason,
                        r.message,
                        record.moves.iter().filter(|m| m.evicted).count()
                    );
                    return self.conclude(pod, record, "ConsolidationRefused").await;
                }
            }
            record.moves[i].evicted = true;
            // The last move's mark goes out with the phase below, in one write: a reader never
            // sees every move done and the phase still `Evicting`.
            if record.moves[i + 1..].iter().any(|m| !m.evicted) {
                self.hold(pod, &record).await?;
            }
        }
        record.phase = Phase::Holding;
        self.metrics.consolidation_planned("moved");
        tracing::info!(pod = %waiting, node = record.node.as_deref().unwrap_or("?"), "moves done; room held");
        self.hold(pod, &record).await
    }

    /// Once every moved pod has left, say so on the waiting pod (once): kube-scheduler tries
    /// a pod again on its own update, and otherwise could wait minutes for another event if
    /// its last try came before the extender saw the room free.
    pub(super) async fn nudge_when_freed(&self, pod: &Pod, mut record: Record) -> kube::Result<()> {
        let pods = self.caches.pods.state();
        let left = |uid: &str| !pods.iter().any(|p| p.metadata.uid.as_deref() == Some(uid));
        if !record.moves.iter().all(|m| left(&m.uid)) {
            return Ok(());
        }
        record.freed = true;
        tracing::info!(pod = %pod.name_any(), "the moved pods have left: pod nudged");
        self.hold(pod, &record).await
    }

    /// The hold ran out with the pod still waiting: give its planned node back.
    pub(super) async fn expire(&mut self, pod: &Pod, mut record: Record) -> kube::Result<()> {
        record.phase = Phase::Expired;
        record.message = format!(
            "the room made on {} was held {} s and the pod did not bind there",
            record.node.as_deref().unwrap_or("?"),
            self.settings.hold.as_secs()
        );
        self.conclude(pod, record, "ConsolidationExpired").await
    }

    /// Take the extender's label off the bound pods whose record no longer holds
    /// ([`finished_holds`](super::finished_holds)), so that its hold watch and memory keep
    /// only the records that hold; the record itself stays on the pod. A failure is retried
    /// at the next pass.
    pub(super) async fn release_bound(&self, now: i64) {
        let done = super::finished_holds(&self.caches.consolidating.state(), now);
        let unlabel =
            serde_json::json!({ "metadata": { "labels": { CONSOLIDATING_LABEL: null } } });
        for pod in done {
            let ns = pod.namespace().unwrap_or_default();
            if !self.settings.covers(&ns) {
                continue;
            }
            let api: kube::Api<Pod> = kube::Api::namespaced(self.client.clone(), &ns);
            let patch = kube::api::Patch::Merge(&unlabel);
            match api
                .patch(&pod.name_any(), &Default::default(), &patch)
                .await
            {
                Ok(_) => tracing::debug!(pod = %pod.name_any(), "hold over: label removed"),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    tracing::warn!(pod = %pod.name_any(), error = %e, "could not remove the hold label")
                }
            }
        }
    }

    /// Write `record` with the hold (planned node and devices, the extender's label).
    async fn hold(&self, pod: &Pod, record: &Record) -> kube::Result<()> {
        let node = record.node.as_deref().unwrap_or_default();
        act::write_record(
            &self.client,
            pod,
            record,
            Some((node, record.devices.as_deref())),
        )
        .await
    }

    /// Write a final `record` (no hold), say it in an Event and count it.
    async fn conclude(&self, pod: &Pod, record: Record, reason: &str) -> kube::Result<()> {
        let outcome = match record.phase {
            Phase::NoRoom => "no_room",
            Phase::DryRun => "dry_run",
            Phase::Refused => "refused",
            _ => "expired",
        };
        self.metrics.consolidation_planned(outcome);
        let type_ = if record.phase == Phase::DryRun {
            EventType::Normal
        } else {
            EventType::Warning
        };
        act::write_record(&self.client, pod, &record, None).await?;
        act::event(&self.recorder, pod, type_, reason, record.message).await;
        Ok(())
    }
}

/// "ns/a from n1 (to n2), ns/b from n1 (to n3)", then the node the pod then fits.
fn describe(record: &Record) -> String {
    let moves: Vec<String> = record
        .moves
        .iter()
        .map(|m| match m.given_back {
            true => format!("{} from {} (elastic, given back)", m.pod, m.from),
            false => format!("{} from {} (fits {})", m.pod, m.from, m.to),
        })
        .collect();
    format!(
        "{}; then the pod fits {}",
        moves.join(", "),
        record.node.as_deref().unwrap_or("?")
    )
}

/// The elastic replicas of ScheduleRequests on usable nodes that may be given back for a pod
/// of `priority` (their own pod priority no higher, as for a moved pod), positions in
/// `snap.pods`: lowest pod priority first, then the highest replica.
fn elastic_replicas(
    snap: &crate::snapshot::ClusterSnapshot,
    usable: &[bool],
    by_uid: &std::collections::HashMap<&str, &Pod>,
    priority: i32,
    find: impl Fn(&str, &str) -> Option<std::sync::Arc<crate::crd::ScheduleRequest>> + Copy,
) -> Vec<usize> {
    let mut elastic: Vec<(i32, std::cmp::Reverse<i32>, &str, usize)> = Vec::new();
    for (i, b) in snap.pods.iter().enumerate() {
        let Some(pod) = by_uid.get(b.uid.as_str()) else {
            continue;
        };
        let own = pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
        if !usable.get(b.at.node).copied().unwrap_or(false) || own > priority {
            continue;
        }
        if let Some((_, _, replica)) = crate::controller::lend::elastic_replica(pod, find) {
            elastic.push((own, std::cmp::Reverse(replica), b.key.as_str(), i));
        }
    }
    elastic.sort();
    elastic.into_iter().map(|(.., i)| i).collect()
}
