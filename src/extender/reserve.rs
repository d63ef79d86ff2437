//! The room the consolidator makes for waiting pods (`controller/consolidate.rs`), held in the
//! extender: after each snapshot, every unbound pod labelled `allot.dev/consolidating` whose
//! record still holds gets its planned node and devices held in the overlay, so that no other
//! pod's filter sees that room free until the pod binds or the record's deadline passes.
//! While the moved pods have not left yet, the hold cannot be placed; until it can, the whole
//! node is refused to other pods (their replacements among them), so that nothing takes the
//! room in between. The rooms planned for the moved pods at their destinations are held for
//! their replacements too (`state/destinations.rs`), also after the waiting pod binds.
//!
//! A record is acted on as soon as its watch delivers it ([`follow_records`]), besides after
//! each snapshot: the consolidator writes it before its first eviction, and a moved pod's
//! replacement can be created and filtered within milliseconds of that eviction, sooner than
//! the next snapshot is built.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::builds::Builds;
use super::state::Store;
use crate::live::Caches;
use crate::live::consolidation::{Destination, Record, destinations, unix_now};
use crate::live::pod::{parse_pod_with, pod_key};
use crate::names::CONSOLIDATION_ANNOTATION;

/// Hold the room of each of `pods` whose record holds at `now` (Unix seconds); returns how
/// many holds were made now (the others were held already, or do not fit yet because the
/// moved pods have not left).
pub fn reserve_consolidated(store: &Store, pods: &[Arc<Pod>], now: i64) -> usize {
    store.hold_destinations(held_destinations(pods, now), now);
    if pods.is_empty() {
        store.set_rooms(HashMap::new());
        return 0;
    }
    let view = store.view();
    let default = store.policies().default;
    let mut made = 0;
    let mut rooms = HashMap::new();
    for pod in pods {
        let unbound = pod.spec.as_ref().is_none_or(|s| s.node_name.is_none());
        if !unbound {
            continue;
        }
        let Some(record) = record(pod).filter(|r| r.holds_at(now)) else {
            continue;
        };
        let Ok(req) = parse_pod_with(pod, &view.cluster.models, default) else {
            continue;
        };
        let (Some(node), Some(until)) = (req.planned_node.as_deref(), record.until) else {
            continue;
        };
        let ttl = Duration::from_secs(u64::try_from(until - now).unwrap_or(0));
        match store.reserve(&req, node, ttl) {
            Ok(true) => {
                tracing::info!(pod = %req.key, node, "room made by consolidation held for the waiting pod");
                made += 1;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(pod = %pod_key(pod), error = %e, "consolidation room not held yet");
                rooms.insert(node.to_string(), (req.uid.clone(), req.key.clone()));
            }
        }
    }
    store.set_rooms(rooms);
    made
}

/// Hold what each record names whenever the consolidating pods change, once the store is
/// ready. `builds` is shared with the snapshot loop's call, so that two passes never
/// interleave their rooms.
pub async fn follow_records(caches: Arc<Caches>, store: Arc<Store>, builds: Arc<Builds>) {
    let mut changes = caches.record_changes();
    while changes.changed().await.is_ok() {
        if !store.is_ready() {
            continue; // the snapshot loop's first pass holds them
        }
        let _one = builds.lock();
        let made = reserve_consolidated(&store, &caches.consolidating.state(), unix_now());
        if made > 0 {
            tracing::debug!(made, "consolidation rooms held as their record arrived");
        }
    }
}

/// The record on `pod`, unless it is being deleted or has none that reads.
fn record(pod: &Pod) -> Option<Record> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let notes = pod.metadata.annotations.as_ref()?;
    Record::parse(notes.get(CONSOLIDATION_ANNOTATION)?).ok()
}

/// The destinations held for moved pods' replacements by the records on `pods` at `now`,
/// the waiting pod bound or not: its binding does not place the replacements.
pub fn held_destinations(pods: &[Arc<Pod>], now: i64) -> Vec<Destination> {
    let records = pods.iter().filter_map(|p| record(p));
    records.flat_map(|r| destinations(&r, now)).collect()
}
