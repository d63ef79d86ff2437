//! Filter, prioritize and bind as plain functions over the [`Store`]: wire request in, wire
//! answer out (`/preempt` is in `preempt.rs`). The HTTP layer (`server.rs`) only decodes,
//! times and encodes; benches call these directly.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Pod;
use tracing::{debug, debug_span};

use super::FilterAnswer;
use super::state::{BoundPod, Store, View};
use super::waiting::{Reasons, Tally, Waiting};
use super::wire::{
    ExtenderArgs, ExtenderBindingArgs, ExtenderFilterResult, HostPriority, HostPriorityList,
    MAX_EXTENDER_PRIORITY, NodeList,
};
use crate::live::NodeState;
use crate::live::consolidation::controller_owner;
use crate::live::pod::{PodError, PodRequest, parse_pod_with, pod_key, soft_preference};
use crate::names::ROOM_GIVEN_BACK_ANNOTATION;
use crate::policy::PolicyKind;
use crate::policy::learned::explain::explain;

mod candidates;

use candidates::candidates;
pub use candidates::{UNKNOWN_NODE, VerbError};

/// Whether `pod` waits for room that pods leaving free for it: see [`filter`].
fn waits_for_freed_room(store: &Store, pod: &Pod) -> bool {
    let given_back = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ROOM_GIVEN_BACK_ANNOTATION));
    given_back
        || pod
            .metadata
            .uid
            .as_deref()
            .is_some_and(|uid| store.waits_for_room(uid))
}

/// `/filter`: each infeasible node gets a reason, in the map that says whether waiting can
/// help; of the feasible ones, either all pass or only the one the pod's policy chooses (see
/// [`FilterAnswer`]). An invalid pod gets the message in `Error`. The policy is returned when
/// it chose the node.
pub fn filter<'a>(
    store: &Store,
    args: &'a ExtenderArgs,
) -> Result<(ExtenderFilterResult<'a>, Option<PolicyKind>), VerbError> {
    let pod = args.pod.as_ref().ok_or(VerbError::MissingPod)?;
    // A pod waiting for room being freed for it: the consolidator's, whose hold is not placed
    // yet, or one planned into room elastic replicas give back. The pods leaving may have
    // just gone (kube-scheduler retries it on their deletion), so read the cluster afresh,
    // if it changed, rather than refuse it from a view built before they went.
    if waits_for_freed_room(store, pod) {
        store.refresh_now();
    }
    let view = store.view();
    let (names, objects) = candidates(&view, args)?;
    let key = pod_key(pod);
    let _span = debug_span!("filter", pod = %key, nodes = names.len()).entered();
    let settings = store.policies();
    let mut req = match parse_pod_with(pod, &view.cluster.models, settings.default) {
        Ok(req) => req,
        Err(e) => return Ok((invalid_pod(&key, &e), None)),
    };
    // A replacement of a pod moved by consolidation: the room held at its destination is its
    // plan (see `state/destinations.rs`).
    let owner = controller_owner(pod);
    let claimed = owner
        .as_ref()
        .is_some_and(|o| store.claim_destination(&mut req, &o.uid));
    let view = if claimed { store.view() } else { view };
    store.remember(&req);
    if let Some(o) = &owner {
        store.remember_owner(&req.uid, &o.uid);
    }
    // Filtered again (its bind failed, or kube-scheduler retries it): not against its own hold.
    let view = store.view_releasing(&req.uid, view);
    let mut out = ExtenderFilterResult::default();
    let mut reasons = Reasons::default();
    let mut waiting = Tally::default();
    let mut passed = Vec::with_capacity(names.len());
    for (name, index) in names {
        let Some((index, node)) = index.and_then(|i| Some((i, view.cluster.node(i)?))) else {
            let r = reasons.text(UNKNOWN_NODE);
            out.failed_nodes.push((name, r));
            waiting.add(Waiting::Other);
            continue;
        };
        if let Some(planned) = req.planned_node.as_deref().filter(|p| *p != name) {
            let r = reasons.text(&format!(
                "allot planned this pod onto node {planned} (its ScheduleRequest, or room made by consolidation)"
            ));
            out.failed_and_unresolvable_nodes.push((name, r));
            waiting.add(Waiting::Plan);
            continue;
        }
        if let Some(why) = store.room_for_other(name, &req.uid) {
            out.failed_nodes.push((name, reasons.text(&why)));
            waiting.add(Waiting::Plan);
            continue;
        }
        let state = view.state(index);
        if let Some((state, Err(why))) = state.map(|s| (s, s.usable(store.fail_closed()))) {
            let r = reasons.text(&why);
            out.failed_nodes.push((name, r));
            waiting.add(Waiting::of_state(state));
            continue;
        }
        match node.check(&req.demand) {
            Ok(()) => passed.push((name, index)),
            Err(m) => {
                let sick = state
                    .filter(|s| s.has_unhealthy())
                    .map(NodeState::unhealthy_text);
                waiting.add(Waiting::of_misfit(m, sick.is_some()));
                let r = match sick {
                    // Node-specific, so not shared.
                    Some(sick) => reasons.text(&format!(
                        "{}; {sick}",
                        m.summary(node, req.demand.models, &view.cluster.models)
                    )),
                    None => reasons.misfit(m, node, req.demand.models, &view),
                };
                let list = if m.permanent() {
                    &mut out.failed_and_unresolvable_nodes
                } else {
                    &mut out.failed_nodes
                };
                list.push((name, r));
            }
        }
    }
    out.reasons = reasons.texts;
    debug!(passed = passed.len(), "filtered");
    let waits = passed.is_empty() && req.demand.needs_gpu();
    if let Some(why) = waiting.dominant().filter(|_| waits) {
        store.remember_waiting(&req.uid, why);
    }
    if let Some(shadow) = settings
        .shadow_of(req.policy)
        .filter(|_| !passed.is_empty())
    {
        let theirs = PodRequest {
            policy: shadow,
            ..req.clone()
        };
        store.remember_shadow(
            &req.uid,
            passed[choose(store, &view, &theirs, &passed, false)].0,
        );
    }
    let mut decided = None;
    if !passed.is_empty() && answers_chosen(store.filter_answer(), pod) {
        if passed.len() > 1 {
            passed = vec![passed[choose(store, &view, &req, &passed, true)]];
            decided = Some(req.policy);
        }
        // kube-scheduler binds this pod there while it schedules the next ones: hold the
        // placement so that their filters see it taken (see `state/place.rs`). A request
        // without a pod UID (hand-made; kube-scheduler always sends one) holds nothing.
        if !req.uid.is_empty()
            && let Err(e) = store.hold(&req, passed[0].0)
        {
            debug!(error = %e, "placement not held");
        }
    }
    let passed = passed.into_iter().map(|(name, _)| name);
    match objects {
        None => out.node_names = Some(passed.collect()),
        Some(items) => {
            let keep: HashSet<&str> = passed.collect();
            let mut emitted = HashSet::new();
            out.nodes = Some(NodeList {
                metadata: None,
                items: items
                    .iter()
                    .filter(|n| {
                        let name = n.metadata.name.as_deref().unwrap_or("");
                        keep.contains(name) && emitted.insert(name)
                    })
                    .cloned()
                    .collect(),
            });
        }
    }
    Ok((out, decided))
}

/// Whether /filter passes only the chosen node for `pod`.
fn answers_chosen(answer: FilterAnswer, pod: &Pod) -> bool {
    match answer {
        FilterAnswer::Chosen => true,
        FilterAnswer::Feasible => false,
        FilterAnswer::Auto => match soft_preference(pod) {
            None => true,
            Some(what) => {
                debug!(preference = what, "kube-scheduler ranks the feasible nodes");
                false
            }
        },
    }
}

/// Which of the feasible `(name, index)` nodes `req`'s policy places it on: the position
/// [`Decider::pick`](crate::policy::Decider::pick) returns, as the simulator decides.
/// `note`: record the decision for the GPU map page (not a shadow policy's).
fn choose(
    store: &Store,
    view: &View,
    req: &PodRequest,
    feasible: &[(&str, usize)],
    note: bool,
) -> usize {
    let nodes: Vec<usize> = feasible.iter().map(|&(_, i)| i).collect();
    let (best, scores) = decide(view, req, &nodes);
    if note {
        store.note_decision(view, req, &nodes, best, &scores);
    }
    best
}

/// The decision among `nodes` (all feasible): the winner's position and every raw score.
fn decide(view: &View, req: &PodRequest, nodes: &[usize]) -> (usize, Vec<i64>) {
    let mut decider = view.decider();
    let best = view.with_policy(req.policy, |p| {
        decider.pick(p, &view.cluster, &req.demand, &req.uid, nodes)
    });
    if req.policy == PolicyKind::Learned && tracing::enabled!(tracing::Level::DEBUG) {
        let why = explain(&view.ctx, &view.cluster, &req.demand, nodes);
        if let Some(why) = why {
            debug!(explanation = ?why.table(&view.cluster), "learned decision");
        }
    }
    (best.unwrap_or(0), decider.scores().to_vec())
}

fn invalid_pod(key: &str, e: &PodError) -> ExtenderFilterResult<'static> {
    super::logging::bad_request("filter", &format_args!("pod {key:?}: {e}"));
    ExtenderFilterResult {
        error: format!("allot: {e}"),
        ..Default::default()
    }
}

/// `/prioritize`: 10 for the node allot's decision chooses, 0..9 for the other feasible nodes
/// from the pod's policy (min-max scaled and rounded); nodes that do not fit or are unknown
/// score 0. An invalid pod scores 0 everywhere (filter reported it).
pub fn prioritize<'a>(
    store: &Store,
    args: &'a ExtenderArgs,
) -> Result<(HostPriorityList<'a>, Option<PolicyKind>), VerbError> {
    let pod = args.pod.as_ref().ok_or(VerbError::MissingPod)?;
    let view = store.view();
    let (names, _) = candidates(&view, args)?;
    let key = pod_key(pod);
    let _span = debug_span!("prioritize", pod = %key, nodes = names.len()).entered();
    let zero = |names: &[(&'a str, Option<usize>)]| {
        names
            .iter()
            .map(|&(n, _)| HostPriority {
                host: n.into(),
                score: 0,
            })
            .collect::<Vec<_>>()
    };
    let Ok(req) = parse_pod_with(pod, &view.cluster.models, store.policies().default) else {
        return Ok((zero(&names), None));
    };
    let view = store.view_releasing(&req.uid, view); // as in filter
    let indices: Vec<Option<usize>> = names
        .iter()
        .map(|&(_, i)| i.filter(|&i| admissible(&view, store, &req, i)))
        .collect();
    let feasible: Vec<usize> = indices.iter().flatten().copied().collect();
    let scaled = if feasible.is_empty() {
        Vec::new()
    } else {
        let (best, raw) = decide(&view, &req, &feasible);
        store.note_decision(&view, &req, &feasible, best, &raw);
        top_alone(&raw, best)
    };
    let mut next = scaled.into_iter();
    let list = names
        .iter()
        .zip(&indices)
        .map(|(&(name, _), idx)| HostPriority {
            host: name.into(),
            score: idx.and_then(|_| next.next()).unwrap_or(0),
        })
        .collect();
    Ok((list, Some(req.policy)))
}

/// Whether node `i` passes filter for `req`: it fits, it is usable, and it is the planned
/// node if the pod has one.
fn admissible(view: &View, store: &Store, req: &PodRequest, i: usize) -> bool {
    let Some(node) = view.cluster.node(i) else {
        return false;
    };
    req.planned_node.as_deref().is_none_or(|p| p == &*node.name)
        && view
            .state(i)
            .is_none_or(|s| s.usable(store.fail_closed()).is_ok())
        && node.fits(&req.demand)
}

/// Priorities where the decided node (`best`) alone gets the maximum: every score is scaled
/// to 0..=10 together, then the others are mapped into 0..=9, so kube-scheduler's pick is
/// allot's whatever the ties.
pub fn top_alone(raw: &[i64], best: usize) -> Vec<i64> {
    scale(raw)
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            if i == best {
                MAX_EXTENDER_PRIORITY
            } else {
                s * (MAX_EXTENDER_PRIORITY - 1) / MAX_EXTENDER_PRIORITY
            }
        })
        .collect()
}

/// Min-max scale to 0..=10, rounding half up; all-equal scores all get 10.
pub fn scale(raw: &[i64]) -> Vec<i64> {
    let (Some(&min), Some(&max)) = (raw.iter().min(), raw.iter().max()) else {
        return Vec::new();
    };
    let span = i128::from(max) - i128::from(min);
    raw.iter()
        .map(|&s| {
            if span == 0 {
                return MAX_EXTENDER_PRIORITY;
            }
            let num =
                (i128::from(s) - i128::from(min)) * i128::from(MAX_EXTENDER_PRIORITY) * 2 + span;
            (num / (2 * span)) as i64
        })
        .collect()
}

/// Count whether the shadow policy chose the node `req` is bound to; say which it chose
/// instead (debug: one line per pod).
fn compare_shadow(store: &Store, req: &PodRequest, bound: &str, theirs: &str) {
    store.policy_stats().shadowed(theirs == bound);
    if theirs != bound {
        let shadow = store.policies().shadow.map_or("none", PolicyKind::name);
        debug!(policy = req.policy.name(), shadow, shadow_node = ?theirs, "the shadow policy chose another node");
    }
}

/// `/bind`, the part that needs no API server: record the placement (and its devices) in
/// the overlay so the next pod sees them. In live mode the server then writes the device
/// annotation and the Binding ([`super::binder`]) and forgets the record if that fails.
pub fn bind(store: &Store, args: &ExtenderBindingArgs) -> Result<BoundPod, String> {
    let key = format!("{}/{}", args.pod_namespace, args.pod_name);
    let _span = debug_span!("bind", pod = %key, node = %args.node).entered();
    let Some(req) = store.recall(&args.pod_uid) else {
        return Err(format!(
            "allot: pod {key} (uid {:?}) was not filtered by this extender, so its GPU demand \
             is unknown; it cannot be bound here",
            args.pod_uid
        ));
    };
    let shadow = store.recall_shadow(&args.pod_uid);
    match store.record(&req, &args.node) {
        Ok(p) => {
            if let Some(theirs) = shadow {
                compare_shadow(store, &req, &args.node, &theirs);
            }
            // Per pod, as kube-scheduler logs its binds only at higher verbosity; the bind
            // counter is in /metrics.
            debug!(
                devices = ?p.at.devices.iter().collect::<Vec<_>>(),
                policy = req.policy.name(),
                learned_policy_hash = store.learned_hash(),
                "bound"
            );
            Ok(p)
        }
        Err(e) => {
            let refused = format_args!("pod {key:?} on node {:?}: {e}", args.node);
            super::logging::bad_request("bind", &refused);
            Err(format!("allot: {e}"))
        }
    }
}
