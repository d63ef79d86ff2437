//! Extender request decoding and handling: the bytes are a request body, decoded as the HTTP
//! layer does (serde_json into the wire types) and handed to /filter, /prioritize, /bind and
//! /preempt over a fresh store built from the golden fixture cluster. A filter request runs
//! under both filter answers: every feasible node, and the chosen node alone (which holds the
//! placement until the bind that follows, then is filtered again as a retry would be).
#![no_main]

use std::sync::OnceLock;

use allot::extender::FilterAnswer;
use allot::extender::preempt::preempt;
use allot::extender::state::Store;
use allot::extender::verbs;
use allot::extender::wire::{ExtenderArgs, ExtenderBindingArgs, ExtenderPreemptionArgs};
use allot::snapshot::{ClusterSnapshot, parse_snapshot};
use libfuzzer_sys::fuzz_target;

/// The cluster the golden extender fixtures are answered against.
const CLUSTER: &str = include_str!("../../tests/fixtures/extender/cluster.json");

fn snapshot() -> &'static ClusterSnapshot {
    static SNAPSHOT: OnceLock<ClusterSnapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        parse_snapshot("cluster.json", CLUSTER).expect("the fixture cluster parses")
    })
}

fuzz_target!(|data: &[u8]| {
    // A fresh store each run, so one input's binds never change the next one's answers. No
    // fallback workload: loading the embedded trace each run would dominate the time.
    let fresh = |answer| {
        let store = Store::new(None, Vec::new()).with_filter_answer(answer);
        store.replace(snapshot().clone());
        store
    };
    if let Ok(args) = serde_json::from_slice::<ExtenderArgs>(data) {
        for answer in [FilterAnswer::Feasible, FilterAnswer::Chosen] {
            let store = fresh(answer);
            if let Ok((result, _)) = verbs::filter(&store, &args) {
                // Bind the pod to the first node that passed, as kube-scheduler would next.
                let node = result.node_names.as_ref().and_then(|n| n.first().map(|n| n.to_string()));
                if let (Some(pod), Some(node)) = (args.pod.as_ref(), node) {
                    let binding = ExtenderBindingArgs {
                        pod_name: pod.metadata.name.clone().unwrap_or_default(),
                        pod_namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
                        node,
                    };
                    let _ = verbs::bind(&store, &binding);
                    let _ = verbs::filter(&store, &args);
                }
            }
            let _ = verbs::prioritize(&store, &args);
        }
    }
    let store = fresh(FilterAnswer::Feasible);
    if let Ok(args) = serde_json::from_slice::<ExtenderBindingArgs>(data) {
        let _ = verbs::bind(&store, &args);
    }
    if let Ok(args) = serde_json::from_slice::<ExtenderPreemptionArgs>(data) {
        let _ = preempt(&store, &args);
    }
});
