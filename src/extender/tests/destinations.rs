//! Destinations held for moved pods' replacements (`state/destinations.rs`): a pod of the
//! moved pod's owner gets the held node as its own, a stranger does not, each held move serves
//! one replacement, and the holds go at the record's deadline or with the record; a record
//! written before destinations were recorded holds none.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use crate::extender::FilterAnswer;
use crate::extender::reserve::reserve_consolidated;
use crate::extender::state::Store;
use crate::extender::verbs::{bind, filter};
use crate::extender::wire::{ExtenderArgs, ExtenderBindingArgs};
use crate::live::consolidation::{MoveRecord, Phase, Record, VERSION};
use crate::model::{GpuDemand, ModelSet, PodDemand};
use crate::snapshot::parse_snapshot;

const NOW: i64 = 1_000_000;

/// Nodes g, h and k, one T4 each.
fn store(answer: FilterAnswer) -> Store {
    let snap = parse_snapshot(
        "inline",
        r#"{"nodes": [
            {"name": "g", "cpu": "16", "memory": "64Gi", "gpus": 1, "model": "T4"},
            {"name": "h", "cpu": "16", "memory": "64Gi", "gpus": 1, "model": "T4"},
            {"name": "k", "cpu": "16", "memory": "64Gi", "gpus": 1, "model": "T4"}]}"#,
    )
    .unwrap();
    let store = Store::new(Some(std::time::Duration::from_secs(300)), Vec::new())
        .with_filter_answer(answer);
    store.replace(snap);
    store
}

/// Pod `m`, owned by ReplicaSet `rs`, moved to `to` with 600 milli-GPU on device 0.
fn moved(m: &str, to: &str) -> MoveRecord {
    let demand = PodDemand {
        cpu_milli: 1000,
        memory_bytes: 1 << 30,
        gpu: GpuDemand::Shared { milli: 600 },
        models: ModelSet::ANY,
    };
    MoveRecord::for_tests(m, ("k", to), "ReplicaSet", &demand, 0)
}

/// The waiting pod `big`, bound already to k, whose record holds until `until` with `moves`.
fn big(until: i64, moves: Vec<MoveRecord>) -> Vec<Arc<Pod>> {
    let record = Record {
        version: VERSION,
        phase: Phase::Holding,
        planned_at: NOW - 10,
        until: Some(until),
        node: Some("k".into()),
        devices: Some("0".into()),
        moves,
        message: String::new(),
        freed: true,
    };
    let pod = json!({
        "metadata": { "name": "big", "namespace": "ns", "uid": "big",
            "labels": { "allot.dev/consolidating": "true" },
            "annotations": { "allot.dev/consolidation": record.to_json() } },
        "spec": { "nodeName": "k", "containers": [{ "name": "c" }] }
    });
    vec![Arc::new(serde_json::from_value(pod).unwrap())]
}

/// A pod `uid` asking `milli` of one GPU, of ReplicaSet `owner` if any.
fn pod(uid: &str, milli: u32, owner: Option<&str>) -> Value {
    let refs = owner.map(|o| {
        json!([{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": o, "uid": o,
                 "controller": true }])
    });
    json!({
        "metadata": { "name": uid, "namespace": "ns", "uid": uid, "ownerReferences": refs,
            "annotations": { "allot.dev/gpu-milli": milli.to_string() } },
        "spec": { "containers": [{ "name": "c", "resources": {
            "requests": { "cpu": "1", "allot.dev/gpu-share": "1" } } }] }
    })
}

/// The nodes /filter passes for `pod` among g, h and k.
fn passed(store: &Store, pod: Value) -> Vec<String> {
    let args: ExtenderArgs =
        serde_json::from_value(json!({ "Pod": pod, "NodeNames": ["g", "h", "k"] })).unwrap();
    let (out, _) = filter(store, &args).unwrap();
    let names = out.node_names.unwrap_or_default();
    names.into_iter().map(str::to_string).collect()
}

fn bind_to(store: &Store, uid: &str, node: &str) -> Vec<usize> {
    let args: ExtenderBindingArgs = serde_json::from_value(json!({
        "PodName": uid, "PodNamespace": "ns", "PodUID": uid, "Node": node
    }))
    .unwrap();
    let bound = bind(store, &args).unwrap();
    bound.at.devices.iter().collect()
}

#[test]
fn each_held_destination_serves_one_replacement_of_the_owner_and_no_stranger() {
    for answer in [FilterAnswer::Feasible, FilterAnswer::Chosen] {
        let store = store(answer);
        let pods = big(NOW + 60, vec![moved("m1", "g"), moved("m2", "h")]);
        reserve_consolidated(&store, &pods, NOW);
        assert_eq!(store.hold_stats().count("destination"), 2, "{answer:?}");
        assert_eq!(
            passed(&store, pod("stranger", 600, None)),
            ["k"],
            "{answer:?}"
        );
        // (One stranger UID: with answer Chosen, its filter holds k until filtered again.)
        assert_eq!(passed(&store, pod("stranger", 600, Some("x"))), ["k"]);
        // The first replacement is steered to the first destination, and binds there.
        assert_eq!(
            passed(&store, pod("r1", 600, Some("rs"))),
            ["g"],
            "{answer:?}"
        );
        reserve_consolidated(&store, &pods, NOW + 1); // a snapshot between filter and bind
        assert_eq!(
            passed(&store, pod("stranger", 600, None)),
            ["k"],
            "{answer:?}"
        );
        assert_eq!(bind_to(&store, "r1", "g"), [0]);
        // The second gets the other one; a third finds none left and goes where it fits.
        assert_eq!(
            passed(&store, pod("r2", 600, Some("rs"))),
            ["h"],
            "{answer:?}"
        );
        assert_eq!(bind_to(&store, "r2", "h"), [0]);
        store.release_hold("stranger");
        assert_eq!(
            passed(&store, pod("r3", 600, Some("rs"))),
            ["k"],
            "{answer:?}"
        );
        let made = store.hold_stats().count("destination");
        reserve_consolidated(&store, &pods, NOW + 2);
        assert_eq!(store.destinations_held(), 0, "both used up");
        assert_eq!(store.hold_stats().count("claimed"), 2);
        assert_eq!(
            store.hold_stats().count("destination"),
            made,
            "none made again"
        );
        // Without a filter's hold, the claimed room was held again for r1 until its bind.
        let again = u64::from(answer == FilterAnswer::Feasible);
        assert_eq!(made, 2 + again, "{answer:?}");
    }
}

#[test]
fn a_replacement_bound_before_its_destination_was_held_uses_one_up() {
    let store = store(FilterAnswer::Feasible);
    // Filtered and bound before the extender read the record (the real clock is past NOW).
    assert_eq!(passed(&store, pod("r1", 600, Some("rs"))), ["g", "h", "k"]);
    assert_eq!(bind_to(&store, "r1", "k"), [0]);
    let pods = big(NOW + 60, vec![moved("m1", "g"), moved("m2", "h")]);
    reserve_consolidated(&store, &pods, NOW);
    assert_eq!(
        store.hold_stats().count("destination"),
        1,
        "one held, for m2"
    );
    assert_eq!(store.destinations_held(), 1);
    assert_eq!(passed(&store, pod("stranger", 600, None)), ["g"]);
    assert_eq!(passed(&store, pod("r2", 600, Some("rs"))), ["h"]);

    // Filtered before the extender read the record, bound after both holds were made: the
    // next snapshot gives one of them back.
    let store = self::store(FilterAnswer::Feasible);
    assert_eq!(passed(&store, pod("r1", 600, Some("rs"))), ["g", "h", "k"]);
    reserve_consolidated(&store, &pods, NOW);
    assert_eq!(bind_to(&store, "r1", "k"), [0]);
    reserve_consolidated(&store, &pods, NOW + 1);
    assert_eq!(store.destinations_held(), 1);
    assert_eq!(store.hold_stats().count("released"), 1);
    assert_eq!(passed(&store, pod("stranger", 600, None)), ["g"]);
}

#[test]
fn a_replacement_of_another_size_claims_nothing() {
    let store = store(FilterAnswer::Feasible);
    reserve_consolidated(&store, &big(NOW + 60, vec![moved("m1", "g")]), NOW);
    assert_eq!(passed(&store, pod("bigger", 900, Some("rs"))), ["h", "k"]);
    assert_eq!(store.hold_stats().count("claimed"), 0);
}

#[test]
fn destinations_are_given_back_at_the_deadline_and_with_the_record() {
    let store = store(FilterAnswer::Feasible);
    let pods = big(NOW + 60, vec![moved("m1", "g"), moved("m2", "h")]);
    reserve_consolidated(&store, &pods, NOW);
    assert_eq!(passed(&store, pod("stranger", 600, None)), ["k"]);
    // A replacement claimed g but never bound: the deadline gives both back all the same.
    assert_eq!(passed(&store, pod("r1", 600, Some("rs"))), ["g"]);
    reserve_consolidated(&store, &pods, NOW + 60);
    assert_eq!(passed(&store, pod("stranger", 600, None)), ["g", "h", "k"]);
    assert_eq!(store.destinations_held(), 0);

    let store = self::store(FilterAnswer::Feasible);
    reserve_consolidated(&store, &pods, NOW);
    reserve_consolidated(&store, &[], NOW + 1); // the record is gone
    assert_eq!(passed(&store, pod("stranger", 600, None)), ["g", "h", "k"]);
    assert_eq!(store.hold_stats().count("released"), 2);
}

#[test]
fn a_record_without_owners_or_planned_rooms_holds_no_destination() {
    let store = store(FilterAnswer::Feasible);
    let mut old = moved("m1", "g");
    old.owner = None;
    old.planned = None;
    let text = Record::parse(&big_record_text(old)).expect("parses");
    assert!(text.moves[0].owner.is_none());
    let pods = big(NOW + 60, text.moves);
    reserve_consolidated(&store, &pods, NOW);
    assert_eq!(passed(&store, pod("r1", 600, Some("rs"))), ["g", "h", "k"]);
    assert_eq!(store.hold_stats().count("destination"), 0);
}

/// A record as written before owners and planned rooms were recorded.
fn big_record_text(m: MoveRecord) -> String {
    let text = json!({ "version": 1, "phase": "Holding", "plannedAt": NOW - 10,
        "until": NOW + 60, "node": "k",
        "moves": [{ "pod": m.pod, "uid": m.uid, "from": m.from, "to": m.to, "evicted": true }] });
    text.to_string()
}
