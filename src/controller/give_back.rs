//! Elastic replicas given back (pure; issue 19 item 3): a request that cannot place its
//! minimum takes the room of other requests' elastic replicas (those above their task's
//! minimum), of strictly lower priority only, before anything else moves — lowest priority
//! first, then the highest replica first, as a scale-down would pick — and only as many as it
//! needs: the fewest, in that order, with which its minimum is planned.
//!
//! Equal priorities never take from each other, so two requests cannot take turns taking the
//! same room. The lender's elastic replica waits for capacity as any other does; it cannot
//! grow back into the room, which the borrower's planned pods reserve from the moment they
//! are created (the controller plans every request on the room promised to the others).

use crate::controller::decision::Decision;
use crate::model::{Cluster, Placement, PodDemand};

/// At most this many elastic replicas are weighed for one request: each try is one plan, and
/// the search halves its range at each (about 7 plans at most).
pub const MAX_LENDABLE: usize = 64;

/// A running elastic replica of another request that could be given back.
#[derive(Debug, Clone, PartialEq)]
pub struct Lendable {
    /// The pod, `namespace/name`, and its UID.
    pub pod: String,
    pub uid: String,
    /// Its request, `namespace/name`.
    pub request: String,
    pub priority: i32,
    pub replica: i32,
    pub demand: PodDemand,
    /// Where it runs, in the planning cluster.
    pub at: Placement,
}

/// Lowest priority first, then the highest replica, then by name (a stable order).
pub fn order(lendable: &mut Vec<Lendable>) {
    lendable.sort_by(|a, b| {
        (a.priority, std::cmp::Reverse(a.replica), &a.request, &a.pod).cmp(&(
            b.priority,
            std::cmp::Reverse(b.replica),
            &b.request,
            &b.pod,
        ))
    });
    lendable.truncate(MAX_LENDABLE);
}

/// Whether a decision leaves part of the request's minimum unplaced, in a way more room could
/// fix (a replica that fits no node even when empty never will).
pub fn short_of_minimum(d: &Decision) -> bool {
    !d.permanently_infeasible && (d.gang_blocked || d.unplaced.len() > d.elastic_unplaced)
}

/// `cluster` without the first `k` of `lendable`.
fn without(cluster: &Cluster, lendable: &[Lendable], k: usize) -> Cluster {
    let mut c = cluster.clone();
    for l in &lendable[..k] {
        c.remove(&l.demand, l.at);
    }
    c
}

/// The fewest of `lendable` (a prefix, in [`order`]) whose room lets `decide` place the
/// request's minimum, with that decision; `None` when even all of them are not enough.
/// Binary search: more room never makes the minimum harder to place.
pub fn fewest<E>(
    lendable: &[Lendable],
    cluster: &Cluster,
    mut decide: impl FnMut(&Cluster) -> Result<Decision, E>,
) -> Result<Option<(usize, Decision)>, E> {
    if lendable.is_empty() {
        return Ok(None);
    }
    let all = decide(&without(cluster, lendable, lendable.len()))?;
    if short_of_minimum(&all) {
        return Ok(None);
    }
    // `best` always belongs to `hi`: both start at the whole list and change together.
    let (mut lo, mut hi) = (1, lendable.len());
    let mut best = all;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let d = decide(&without(cluster, lendable, mid))?;
        if short_of_minimum(&d) {
            lo = mid + 1;
        } else {
            hi = mid;
            best = d;
        }
    }
    Ok(Some((hi, best)))
}

#[cfg(test)]
mod tests;
