//! Holds from filter to bind (`state/place.rs`): a chosen placement is taken for the next
//! pods' filters, the pod's bind takes it over, and it is given back when the pod is filtered
//! again, binds elsewhere or never binds; overlay entries follow their node by name when the
//! node list changes.

use std::time::Duration;

use super::{request, share};
use crate::extender::FilterAnswer;
use crate::extender::state::Store;
use crate::extender::verbs::{bind, filter};
use crate::extender::wire::{ExtenderArgs, ExtenderBindingArgs};
use crate::model::GpuDemand;
use crate::snapshot::parse_snapshot;

/// Nodes `names`, one T4 each, answering /filter with `answer`; overlay entries live `ttl`.
fn nodes(names: &[&str], answer: FilterAnswer, ttl: Duration) -> Store {
    let store = Store::new(Some(ttl), Vec::new()).with_filter_answer(answer);
    store.replace(snapshot(names));
    store
}

fn snapshot(names: &[&str]) -> crate::snapshot::ClusterSnapshot {
    let nodes: Vec<String> = names
        .iter()
        .map(|n| {
            format!(r#"{{"name": "{n}", "cpu": "16", "memory": "64Gi", "gpus": 1, "model": "T4"}}"#)
        })
        .collect();
    parse_snapshot("inline", &format!(r#"{{"nodes": [{}]}}"#, nodes.join(","))).unwrap()
}

/// A pod `uid` asking `milli` of one GPU, offered `names`.
fn offer(uid: &str, milli: u32, names: &[&str]) -> ExtenderArgs {
    serde_json::from_value(serde_json::json!({
        "Pod": { "metadata": { "name": uid, "namespace": "ns", "uid": uid,
                               "annotations": { "allot.dev/gpu-milli": milli.to_string() } },
                 "spec": { "containers": [{ "name": "c", "resources": {
                     "requests": { "cpu": "1", "allot.dev/gpu-share": "1" } } }] } },
        "NodeNames": names,
    }))
    .unwrap()
}

/// The nodes /filter passed.
fn passed(store: &Store, args: &ExtenderArgs) -> Vec<String> {
    let (out, _) = filter(store, args).unwrap();
    assert!(out.error.is_empty(), "{}", out.error);
    out.node_names
        .unwrap_or_default()
        .into_iter()
        .map(str::to_string)
        .collect()
}

fn binding(uid: &str, node: &str) -> ExtenderBindingArgs {
    serde_json::from_value(serde_json::json!({
        "PodName": uid, "PodNamespace": "ns", "PodUID": uid, "Node": node
    }))
    .unwrap()
}

#[test]
fn a_chosen_placement_is_taken_from_filter_to_bind() {
    let store = nodes(&["g"], FilterAnswer::Chosen, Duration::from_secs(30));
    assert_eq!(passed(&store, &offer("p1", 600, &["g"])), ["g"]);
    // p1's bind has not come yet; without the hold p2 would be sent to the same GPU.
    assert!(passed(&store, &offer("p2", 600, &["g"])).is_empty());
    let bound = bind(&store, &binding("p1", "g")).unwrap();
    assert_eq!(bound.at.node, 0);
    let stats = store.hold_stats();
    assert_eq!((stats.count("made"), stats.count("bound")), (1, 1));
    assert_eq!(
        store.view().overlay.len(),
        1,
        "the hold became the bind's entry"
    );
    assert!(passed(&store, &offer("p2", 600, &["g"])).is_empty());
    assert!(bind(&store, &binding("p2", "g")).is_err());
}

#[test]
fn a_pod_filtered_again_is_not_blocked_by_its_own_hold() {
    let store = nodes(&["g"], FilterAnswer::Chosen, Duration::from_secs(30));
    assert_eq!(passed(&store, &offer("p1", 600, &["g"])), ["g"]);
    assert_eq!(passed(&store, &offer("p1", 600, &["g"])), ["g"]);
    let stats = store.hold_stats();
    assert_eq!((stats.count("made"), stats.count("released")), (2, 1));
    assert_eq!(store.view().overlay.len(), 1, "one hold, not two");
}

#[test]
fn a_bind_elsewhere_gives_the_held_node_back() {
    let store = nodes(&["a", "b"], FilterAnswer::Chosen, Duration::from_secs(30));
    let chosen = passed(&store, &offer("p1", 600, &["a", "b"]));
    let [chosen] = chosen.as_slice() else {
        panic!("one node chosen: {chosen:?}")
    };
    let other = if chosen == "a" { "b" } else { "a" };
    let bound = bind(&store, &binding("p1", other)).unwrap();
    assert_eq!(store.view().node_index(other), Some(bound.at.node));
    assert_eq!(store.hold_stats().count("released"), 1);
    // The chosen node's GPU is whole again: another 600 milli fits there and only there.
    let big = offer("p2", 600, &["a", "b"]);
    assert_eq!(passed(&store, &big), [chosen.as_str()]);
}

#[test]
fn a_hold_never_bound_expires() {
    let store = nodes(&["g"], FilterAnswer::Chosen, Duration::from_secs(30))
        .with_hold_ttl(Duration::from_millis(20));
    assert_eq!(passed(&store, &offer("p1", 600, &["g"])), ["g"]);
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(passed(&store, &offer("p2", 600, &["g"])), ["g"]);
    assert_eq!(store.hold_stats().count("expired"), 1);
}

#[test]
fn every_feasible_node_answered_holds_nothing() {
    let store = nodes(&["a", "b"], FilterAnswer::Feasible, Duration::from_secs(30));
    assert_eq!(passed(&store, &offer("p1", 600, &["a", "b"])), ["a", "b"]);
    assert!(store.view().overlay.is_empty());
    assert_eq!(store.hold_stats().count("made"), 0);
}

#[test]
fn overlay_entries_follow_their_node_when_the_node_list_changes() {
    let store = nodes(&["g", "h"], FilterAnswer::Feasible, Duration::from_secs(30));
    let placed = store
        .record(&request("w", GpuDemand::Whole { count: 1 }), "h")
        .unwrap();
    assert_eq!(placed.at.node, 1);
    store.record(&share("s", 500), "g").unwrap();
    // "a" sorts first: g and h move up one index; "g" leaves, taking its entry with it.
    store.replace(snapshot(&["a", "h"]));
    let view = store.view();
    let h = view.node_index("h").unwrap();
    assert_eq!(h, 1);
    let on_h: Vec<&str> = view.pods_on(h).map(|p| p.uid.as_str()).collect();
    assert_eq!(on_h, ["w"]);
    assert_eq!(
        view.overlay.len(),
        1,
        "the pod of the departed node is gone"
    );
    assert_eq!(view.cluster.node(h).unwrap().gpu_free(), [0]);
    assert_eq!(view.cluster.node(0).unwrap().gpu_free(), [1000]);
}

#[test]
fn a_request_without_a_pod_uid_holds_nothing() {
    let store = nodes(&["g"], FilterAnswer::Chosen, Duration::from_secs(30));
    assert_eq!(passed(&store, &offer("", 600, &["g"])), ["g"]);
    assert_eq!(store.hold_stats().count("made"), 0);
    assert_eq!(passed(&store, &offer("p2", 600, &["g"])), ["g"]);
}
