//! Holds of moved pods' destinations (issue 19): while a consolidation record holds, the room
//! the plan placed each moved pod in at its destination is held in the overlay for its
//! replacement, until the record's deadline. Which holds exist comes from the records
//! ([`crate::live::consolidation::destinations`], pure); this file keeps the overlay equal to
//! them after each snapshot ([`Store::hold_destinations`]).
//!
//! A hold stands for no pod until a replacement claims it: the first pod filtered whose
//! controller owner is the moved pod's, with the same GPU demand and no more CPU or memory,
//! and without a planned node of its own ([`Store::claim_destination`]). The claim gives the
//! pod the destination as its planned node and devices, so its filter passes that node alone,
//! and turns the room into an ordinary hold of that pod (its filter's, or made again at the
//! next snapshot): its bind there takes it over. One claim per move, so two moved pods of one
//! ReplicaSet make two holds, one for each of two replacements. A claim is consumed when its
//! pod binds; holds and claims go when the record stops holding or is gone. A pod of the owner
//! that bound since the record was planned without claiming anything (its filter came before
//! the extender read the record) uses up a destination too, so none is held for nobody.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use super::Store;
use crate::live::consolidation::{Destination, unix_now};
use crate::live::pod::PodRequest;

/// The destinations held now and who claimed them.
#[derive(Debug, Default)]
pub(super) struct Destinations {
    held: Vec<Destination>,
    /// Moved pod UID -> the replacement that claimed its destination.
    claims: HashMap<String, Claim>,
    /// Recent binds of pods with a controller owner and no claim, oldest first: a replacement
    /// that bound before its destination was held uses that destination up all the same.
    binds: VecDeque<OwnedBind>,
}

#[derive(Debug, Clone)]
struct OwnedBind {
    owner: String,
    uid: String,
    /// Unix seconds.
    at: i64,
}

/// Most recent owned binds remembered: far more than the moves of the records holding at once
/// (a few per waiting pod, `--consolidation-max-moves`).
const BINDS_KEPT: usize = 256;

#[derive(Debug, Clone)]
struct Claim {
    uid: String,
    key: String,
    /// It bound (anywhere): the destination is used up.
    bound: bool,
}

/// The UID an unclaimed destination's hold goes by in the overlay.
fn unclaimed_uid(moved: &str) -> String {
    format!("consolidation-destination/{moved}")
}

impl Destinations {
    /// A pod of `owner` bound at or after `since` (Unix seconds) that uses up no destination
    /// yet.
    fn bound_since(&self, owner: &str, since: i64) -> Option<String> {
        let used = |uid: &str| self.claims.values().any(|c| c.uid == uid);
        let b = self
            .binds
            .iter()
            .find(|b| b.owner == owner && b.at >= since && !used(&b.uid))?;
        Some(b.uid.clone())
    }
}

impl Store {
    /// Make the overlay hold exactly the destinations `wanted` (from the records that hold at
    /// `now`, Unix seconds): place the missing ones (for their claimer, if any), give back
    /// those no longer wanted. Returns how many holds were made now; a destination that does
    /// not fit yet (it needs room another moved pod has not left yet) is tried again next time.
    pub fn hold_destinations(&self, wanted: Vec<Destination>, now: i64) -> usize {
        let mut overlay = self.overlay.lock().unwrap_or_else(PoisonError::into_inner);
        let mut state = self
            .destinations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if wanted.is_empty() && state.held.is_empty() && state.claims.is_empty() {
            return 0;
        }
        let keys: HashSet<&str> = wanted.iter().map(|d| d.moved.as_str()).collect();
        state.claims.retain(|m, _| keys.contains(m.as_str()));
        if state.claims.values().any(|c| !c.bound) {
            // One pass over the bound pods for all the open claims.
            let view = self.current();
            let open: HashSet<&str> = state
                .claims
                .values()
                .filter(|c| !c.bound)
                .map(|c| c.uid.as_str())
                .collect();
            let bound: HashSet<String> = (view.base.pods.iter().map(|p| p.uid.as_str()))
                .chain(
                    overlay
                        .iter()
                        .filter(|r| !r.held)
                        .map(|r| r.pod.uid.as_str()),
                )
                .filter(|uid| open.contains(uid))
                .map(str::to_string)
                .collect();
            for claim in state.claims.values_mut() {
                claim.bound |= bound.contains(&claim.uid);
            }
        }
        for d in &wanted {
            if !state.claims.contains_key(&d.moved)
                && let Some(uid) = state.bound_since(&d.owner, d.since)
            {
                // Its replacement bound without claiming it (before it was held, or its
                // filter came before the extender read the record).
                let used = Claim {
                    uid,
                    key: String::new(),
                    bound: true,
                };
                state.claims.insert(d.moved.clone(), used);
            }
        }
        // Holds no longer wanted, or used up, go.
        let before = overlay.len();
        let used = |m: &str| state.claims.get(m).is_some_and(|c| c.bound);
        overlay.retain(|r| {
            !r.held
                || r.room
                    .as_deref()
                    .is_none_or(|m| keys.contains(m) && !used(m))
        });
        let gone = before - overlay.len();
        if gone > 0 {
            self.holds.add("released", gone as u64);
            let base = self.current().base.clone();
            self.swap(self.rebuild(base, &overlay));
        }
        let mut made = 0;
        for d in &wanted {
            let claim = state.claims.get(&d.moved);
            if claim.is_some_and(|c| c.bound) {
                continue;
            }
            let uid = claim.map_or_else(|| unclaimed_uid(&d.moved), |c| c.uid.clone());
            let present = overlay
                .iter()
                .any(|r| r.room.as_deref() == Some(&d.moved) || r.pod.uid == uid);
            if present {
                continue;
            }
            let key = claim.map_or_else(|| format!("replacement of {}", d.pod), |c| c.key.clone());
            let req = PodRequest {
                key,
                uid,
                demand: d.demand,
                policy: self.policies().default,
                priority: 0,
                planned_node: Some(d.node.clone()),
                planned_devices: d.devices,
            };
            match self.place(&mut overlay, &req, &d.node, true) {
                Ok(_) => {
                    let ttl = Duration::from_secs(u64::try_from(d.until - now).unwrap_or(0));
                    if let Some(last) = overlay.last_mut() {
                        last.expires = Some(Instant::now() + ttl);
                        last.room = Some(d.moved.clone());
                    }
                    self.holds.add("destination", 1);
                    tracing::info!(pod = %d.pod, node = %d.node, "destination held for a moved pod's replacement");
                    made += 1;
                }
                Err(e) => {
                    tracing::debug!(pod = %d.pod, node = %d.node, error = %e, "destination not held yet");
                }
            }
        }
        state.held = wanted;
        made
    }

    /// If `req` is a replacement of a moved pod (its controller owner's UID is `owner`) and a
    /// destination is held for one, claim it: `req` gets that node and those devices as its
    /// plan, and the held room is given back so that its filter sees it free. Returns whether
    /// it has a claim (made now or earlier).
    pub fn claim_destination(&self, req: &mut PodRequest, owner: &str) -> bool {
        if req.uid.is_empty() || req.planned_node.is_some() {
            return false;
        }
        let for_owner = |state: &Destinations| state.held.iter().any(|d| d.owner == owner);
        // Most pods have an owner and there is rarely a destination: no overlay lock for them.
        if !for_owner(
            &self
                .destinations
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ) {
            return false;
        }
        let mut overlay = self.overlay.lock().unwrap_or_else(PoisonError::into_inner);
        let mut state = self
            .destinations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let state = &mut *state;
        let mine = state
            .claims
            .iter()
            .find(|(_, c)| c.uid == req.uid && !c.bound)
            .map(|(m, _)| m.clone());
        let fits = |d: &Destination| {
            d.demand.gpu == req.demand.gpu
                && req.demand.cpu_milli <= d.demand.cpu_milli
                && req.demand.memory_bytes <= d.demand.memory_bytes
        };
        let free = || {
            state
                .held
                .iter()
                .find(|d| d.owner == owner && !state.claims.contains_key(&d.moved) && fits(d))
                .map(|d| d.moved.clone())
        };
        let Some(moved) = mine.or_else(free) else {
            return false;
        };
        let Some(d) = state.held.iter().find(|d| d.moved == moved) else {
            return false;
        };
        let fresh = !state.claims.contains_key(&moved);
        state.claims.insert(
            moved.clone(),
            Claim {
                uid: req.uid.clone(),
                key: req.key.clone(),
                bound: false,
            },
        );
        req.planned_node = Some(d.node.clone());
        req.planned_devices = d.devices;
        let before = overlay.len();
        overlay.retain(|r| !(r.held && r.room.as_deref() == Some(&moved) && r.pod.uid != req.uid));
        if overlay.len() != before {
            let current = self.current();
            self.swap(self.rebuild(current.base.clone(), &overlay));
        }
        if fresh {
            self.holds.add("claimed", 1);
            tracing::info!(pod = %req.key, replaces = %d.pod, node = %d.node, "claimed the destination held for a moved pod");
        }
        true
    }

    /// The pod with this UID (controller owner `owner`) bound: a destination it claimed is
    /// used up; without a claim, its bind is remembered for a destination held later.
    pub(super) fn destination_bound(&self, uid: &str, owner: Option<&str>) {
        let mut state = self
            .destinations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut claimed = false;
        for claim in state.claims.values_mut().filter(|c| c.uid == uid) {
            claim.bound = true;
            claimed = true;
        }
        if let (false, Some(owner)) = (claimed, owner) {
            if state.binds.len() >= BINDS_KEPT {
                state.binds.pop_front();
            }
            state.binds.push_back(OwnedBind {
                owner: owner.to_string(),
                uid: uid.to_string(),
                at: unix_now(),
            });
        }
    }

    /// How many destinations are held now (claimed or not, not yet used up).
    pub fn destinations_held(&self) -> usize {
        let state = self
            .destinations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let used = |d: &Destination| state.claims.get(&d.moved).is_some_and(|c| c.bound);
        state.held.iter().filter(|d| !used(d)).count()
    }
}
