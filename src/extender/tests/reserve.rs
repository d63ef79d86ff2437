//! The room the consolidator makes (`extender/reserve.rs`): while the moved pods are still
//! there the node is refused to other pods; once they left, the waiting pod's planned devices
//! are held for it alone, and its own filter and bind see them free; a record past its
//! deadline holds nothing; a waiting pod whose hold is not placed yet is filtered against a
//! view rebuilt at once, as is a pod planned into room that elastic replicas give back.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::share;
use crate::extender::FilterAnswer;
use crate::extender::reserve::reserve_consolidated;
use crate::extender::state::Store;
use crate::extender::verbs::{bind, filter};
use crate::extender::wire::{ExtenderArgs, ExtenderBindingArgs};
use crate::live::consolidation::{Phase, Record, VERSION};
use crate::snapshot::parse_snapshot;

const NOW: i64 = 1_000_000;

fn store() -> Store {
    let snap = parse_snapshot(
        "inline",
        r#"{"nodes": [
            {"name": "g", "cpu": "16", "memory": "64Gi", "gpus": 1, "model": "T4"},
            {"name": "h", "cpu": "16", "memory": "64Gi", "gpus": 1, "model": "T4"}]}"#,
    )
    .unwrap();
    // Every feasible node passes, so the tests see which nodes the holds leave feasible.
    let store = Store::new(Some(std::time::Duration::from_secs(300)), Vec::new())
        .with_filter_answer(FilterAnswer::Feasible);
    store.replace(snap);
    store
}

/// The waiting pod `big` (600 milli-GPU) with a record holding `g`'s device 0 until `until`.
fn waiting(until: i64) -> serde_json::Value {
    let record = Record {
        version: VERSION,
        phase: Phase::Holding,
        planned_at: NOW - 10,
        until: Some(until),
        node: Some("g".into()),
        devices: Some("0".into()),
        moves: Vec::new(),
        message: String::new(),
        freed: false,
    };
    serde_json::json!({
        "metadata": { "name": "big", "namespace": "ns", "uid": "big",
            "labels": { "allot.dev/consolidating": "true" },
            "annotations": { "allot.dev/gpu-milli": "600",
                "allot.dev/planned-node": "g", "allot.dev/planned-devices": "0",
                "allot.dev/consolidation": record.to_json() } },
        "spec": { "containers": [{ "name": "c", "resources": {
            "requests": { "cpu": "1", "allot.dev/gpu-share": "1" } } }] }
    })
}

fn offer(pod: serde_json::Value) -> ExtenderArgs {
    serde_json::from_value(serde_json::json!({ "Pod": pod, "NodeNames": ["g", "h"] })).unwrap()
}

fn other() -> serde_json::Value {
    let mut p = waiting(NOW + 60);
    p["metadata"] = serde_json::json!({ "name": "other", "namespace": "ns", "uid": "other",
        "annotations": { "allot.dev/gpu-milli": "600" } });
    p
}

/// Passed nodes and the reason given for `g`, if refused.
fn answer(store: &Store, pod: serde_json::Value) -> (Vec<String>, Option<String>) {
    let args = offer(pod);
    let (out, _) = filter(store, &args).unwrap();
    let passed = out.node_names.clone().unwrap_or_default();
    let mut refused = out.failed();
    refused.extend(out.unresolvable());
    let g = refused.get("g").map(|r| r.to_string());
    (passed.into_iter().map(str::to_string).collect(), g)
}

#[test]
fn the_room_made_for_a_waiting_pod_is_kept_for_it_alone() {
    let store = store();
    // The moved pod has not left g yet: the hold cannot be placed, g is refused to others.
    store.record(&share("moved", 600), "g").unwrap();
    let pods: Vec<Arc<Pod>> = vec![Arc::new(serde_json::from_value(waiting(NOW + 60)).unwrap())];
    assert_eq!(reserve_consolidated(&store, &pods, NOW), 0);
    let (passed, why) = answer(&store, other());
    assert_eq!(passed, ["h"]);
    assert!(
        why.as_deref()
            .unwrap_or("")
            .contains("being made for pod ns/big"),
        "{why:?}"
    );

    // It left: the devices are held for big; another pod only gets h, big gets g.
    store.forget("moved");
    assert_eq!(reserve_consolidated(&store, &pods, NOW), 1);
    assert_eq!(reserve_consolidated(&store, &pods, NOW), 0, "held once");
    let (passed, why) = answer(&store, other());
    assert_eq!(passed, ["h"]);
    assert!(
        why.is_some_and(|w| !w.contains("being made")),
        "g is simply full now"
    );
    let (passed, _) = answer(&store, waiting(NOW + 60));
    assert!(passed.contains(&"g".to_string()), "{passed:?}");
    let bind_args: ExtenderBindingArgs = serde_json::from_value(serde_json::json!({
        "PodName": "big", "PodNamespace": "ns", "PodUID": "big", "Node": "g"
    }))
    .unwrap();
    let bound = bind(&store, &bind_args).unwrap();
    assert_eq!(
        (bound.at.node, bound.at.devices.iter().collect::<Vec<_>>()),
        (0, vec![0])
    );
}

#[test]
fn a_record_past_its_deadline_holds_nothing() {
    let store = store();
    let pods: Vec<Arc<Pod>> = vec![Arc::new(serde_json::from_value(waiting(NOW)).unwrap())];
    assert_eq!(reserve_consolidated(&store, &pods, NOW), 0);
    let (passed, _) = answer(&store, other());
    assert_eq!(passed, ["g", "h"]);
}

#[test]
fn a_waiting_pods_filter_reads_the_cluster_afresh_before_refusing_its_room() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let store = Arc::new(store());
    // The moved pod is still on g as the view was last built: big's hold cannot be placed.
    store.record(&share("moved", 600), "g").unwrap();
    let pods: Vec<Arc<Pod>> = vec![Arc::new(serde_json::from_value(waiting(NOW + 60)).unwrap())];
    assert_eq!(reserve_consolidated(&store, &pods, NOW), 0);
    // The caches know better: the moved pod has gone (a rebuild from them forgets it).
    let calls = Arc::new(AtomicUsize::new(0));
    let (weak, n, held) = (Arc::downgrade(&store), calls.clone(), pods.clone());
    store.set_refresher(Box::new(move || {
        n.fetch_add(1, Ordering::SeqCst);
        if let Some(s) = weak.upgrade() {
            s.forget("moved");
            reserve_consolidated(&s, &held, NOW);
        }
    }));
    // Another pod is answered from the view as it is: no rebuild, g still refused to it.
    let (passed, _) = answer(&store, other());
    assert_eq!(
        (passed, calls.load(Ordering::SeqCst)),
        (vec!["h".to_string()], 0)
    );
    // big's own filter rebuilds first, and finds its room free and held.
    let (passed, _) = answer(&store, waiting(NOW + 60));
    assert!(passed.contains(&"g".to_string()), "{passed:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Held now: filtering it again needs no rebuild.
    let _ = answer(&store, waiting(NOW + 60));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_pod_planned_into_room_given_back_is_filtered_against_the_cluster_read_afresh() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let store = Arc::new(store());
    // The elastic replica given back still holds g's GPU as the view was last built; the
    // caches already saw it go (a rebuild from them forgets it).
    store.record(&share("lender", 600), "g").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let (weak, n) = (Arc::downgrade(&store), calls.clone());
    store.set_refresher(Box::new(move || {
        n.fetch_add(1, Ordering::SeqCst);
        if let Some(s) = weak.upgrade() {
            s.forget("lender");
        }
    }));
    let borrower = |nudges: Option<&str>| {
        let mut p = other();
        p["metadata"]["name"] = "borrower".into();
        p["metadata"]["uid"] = "borrower".into();
        if let Some(n) = nudges {
            p["metadata"]["annotations"]["allot.dev/room-given-back"] = n.into();
        }
        p
    };
    // Without the mark (its nudges are over, or it never borrowed) it is answered from the
    // view as it stands: g refused, no rebuild.
    let (passed, _) = answer(&store, borrower(None));
    assert_eq!(
        (passed, calls.load(Ordering::SeqCst)),
        (vec!["h".to_string()], 0)
    );
    // Marked: its filter asks for a fresh view first and finds g free.
    let (passed, _) = answer(&store, borrower(Some("0")));
    assert!(passed.contains(&"g".to_string()), "{passed:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
