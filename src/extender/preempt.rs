//! `/preempt`: which of the victims kube-scheduler proposes allot agrees must go, as allot
//! accounts the node's GPUs (a plain function over the [`Store`], like the other verbs).

use std::collections::HashSet;

use tracing::debug_span;

use super::state::{BoundPod, Store, View};
use super::verbs::VerbError;
use super::wire::{ExtenderPreemptionArgs, ExtenderPreemptionResult, MetaPod, MetaVictims};
use crate::live::pod::{PodRequest, parse_pod, pod_key};

/// `/preempt`: for each candidate node, the lowest-priority subset of the proposed victims
/// whose removal lets the pod fit as allot accounts it; nodes where no subset helps are left
/// out. Victims are matched to allot's pods by UID (or `namespace/name`); one listed twice
/// counts once.
pub fn preempt(
    store: &Store,
    args: &ExtenderPreemptionArgs,
) -> Result<ExtenderPreemptionResult, VerbError> {
    let pod = args.pod.as_ref().ok_or(VerbError::MissingPod)?;
    let view = store.view();
    let key = pod_key(pod);
    let _span = debug_span!("preempt", pod = %key).entered();
    let mut out = ExtenderPreemptionResult::default();
    let req = match parse_pod(pod, &view.cluster.models) {
        Ok(r) => r,
        Err(e) => {
            let key = crate::live::pod::pod_key(pod);
            super::logging::bad_request("preempt", &format_args!("pod {key:?}: {e}"));
            return Ok(out);
        }
    };
    let mut proposals: Vec<(&str, Vec<Proposed>, i64)> = Vec::new();
    if let Some(map) = &args.node_name_to_victims {
        for (node, v) in map {
            let pods = v.pods.iter().map(|p| {
                let uid = p.metadata.uid.clone().unwrap_or_default();
                let prio = p.spec.as_ref().and_then(|s| s.priority);
                (uid, pod_key(p), prio)
            });
            proposals.push((node, pods.collect(), v.num_pdb_violations));
        }
    } else if let Some(map) = &args.node_name_to_meta_victims {
        for (node, v) in map {
            let pods = v.pods.iter().map(|p| (p.uid.clone(), String::new(), None));
            proposals.push((node, pods.collect(), v.num_pdb_violations));
        }
    }
    for (node, proposed, pdb) in proposals {
        if let Some(victims) = victims_on(&view, &req, node, &proposed) {
            let pods = victims.into_iter().map(|uid| MetaPod { uid }).collect();
            out.node_name_to_meta_victims.insert(
                node.to_string(),
                MetaVictims {
                    pods,
                    num_pdb_violations: pdb,
                },
            );
        }
    }
    Ok(out)
}

/// A victim kube-scheduler proposed: UID, `namespace/name` (when sent), priority (when sent).
type Proposed = (String, String, Option<i32>);

/// The UIDs to evict on `node`, or `None` when evicting every proposed victim still
/// leaves the pod without room.
fn victims_on(
    view: &View,
    req: &PodRequest,
    node: &str,
    proposed: &[Proposed],
) -> Option<Vec<String>> {
    let index = view.node_index(node)?;
    let mut copy = view.cluster.node(index)?.clone();
    // A victim listed twice (by UID, or once by UID and once by name) is evicted once and
    // frees its resources once.
    let mut listed = HashSet::new();
    let mut found: Vec<(i32, &BoundPod, &str)> = proposed
        .iter()
        .filter_map(|(uid, key, prio)| {
            let bound = view.pods_on(index).find(|p| {
                (!uid.is_empty() && p.uid == *uid) || (!key.is_empty() && p.key == *key)
            })?;
            listed
                .insert(bound.uid.as_str())
                .then(|| (prio.unwrap_or(bound.priority), bound, uid.as_str()))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.key.cmp(&b.1.key)));
    let mut chosen = Vec::new();
    for (prio, bound, uid) in found {
        if copy.fits(&req.demand) {
            break;
        }
        copy.release(&bound.demand, bound.at.devices);
        chosen.push((prio, bound, uid));
    }
    if !copy.fits(&req.demand) {
        return None;
    }
    // Reprieve, highest priority first: keep any victim whose return still leaves room.
    let mut evict = Vec::new();
    for (_, bound, uid) in chosen.into_iter().rev() {
        let mut trial = copy.clone();
        let kept = trial.assign(&bound.demand, bound.at.devices).is_ok() && trial.fits(&req.demand);
        if kept {
            copy = trial;
        } else {
            evict.push(if uid.is_empty() {
                bound.uid.clone()
            } else {
                uid.to_string()
            });
        }
    }
    evict.reverse();
    Some(evict)
}
