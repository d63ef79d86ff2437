//! The extender under loads and inputs a probe found it mishandled: a burst of more pods
//! filtered than the filter->bind table holds, binds to nodes that do not fit, and victims
//! listed twice in a preemption. Each test names the defect of issue 16 it guards.
#![cfg(feature = "k8s")]

use allot::extender::preempt::preempt;
use allot::extender::state::{SEEN_CAP, Store};
use allot::extender::verbs::bind;
use allot::extender::wire::{ExtenderBindingArgs, ExtenderPreemptionArgs};
use allot::live::pod::PodRequest;
use allot::model::{GpuDemand, ModelSet, PodDemand};
use allot::policy::PolicyKind;
use allot::snapshot::parse_snapshot;

/// More pods than the filter->bind table held before issue 16 (10,000).
const BURST: usize = 10_001;

fn store(nodes: &str) -> Store {
    let snap = parse_snapshot("inline", &format!(r#"{{"nodes": [{nodes}]}}"#))
        .expect("the test snapshot parses");
    let store = Store::new(None, Vec::new());
    store.replace(snap);
    store
}

/// One node with room for every pod of a burst (1m CPU and 1Ki memory each).
fn roomy() -> Store {
    store(r#"{"name": "big", "cpu": "1000", "memory": "1Ti", "gpus": 0}"#)
}

fn pod(uid: &str, gpu: GpuDemand) -> PodRequest {
    PodRequest {
        key: format!("ns/{uid}"),
        uid: uid.to_string(),
        demand: PodDemand {
            cpu_milli: 1,
            memory_bytes: 1024,
            gpu,
            models: ModelSet::ANY,
        },
        policy: PolicyKind::Fgd,
        priority: 0,
        planned_node: None,
        planned_devices: None,
    }
}

fn bind_to(store: &Store, uid: &str, node: &str) -> Result<(), String> {
    let args = ExtenderBindingArgs {
        pod_name: uid.to_string(),
        pod_namespace: "ns".to_string(),
        pod_uid: uid.to_string(),
        node: node.to_string(),
    };
    bind(store, &args).map(|_| ())
}

/// Issue 16, defect 2: a bind frees its pod's entry in the filter->bind table.
#[test]
fn a_bind_frees_its_filter_entry() {
    let s = roomy();
    s.remember(&pod("u0", GpuDemand::None));
    assert_eq!(s.remembered(), 1);
    bind_to(&s, "u0", "big").unwrap();
    assert_eq!(
        s.remembered(),
        0,
        "a bound pod stays in the filter->bind table"
    );
    // Bound, the pod is known as such: a second bind is refused for that reason.
    assert_eq!(
        bind_to(&s, "u0", "big").unwrap_err(),
        "allot: pod ns/u0 is already bound to node \"big\""
    );
}

/// Issue 16, defect 2: after more distinct pods were filtered than the table holds, the pods
/// filtered last still bind (the oldest entries make room), and so do earlier ones bound as
/// they come.
#[test]
fn a_burst_larger_than_the_table_still_binds() {
    let s = roomy();
    // The first hundred are bound as soon as they are filtered, as kube-scheduler does.
    for i in 0..100 {
        let uid = format!("u{i}");
        s.remember(&pod(&uid, GpuDemand::None));
        bind_to(&s, &uid, "big").unwrap();
    }
    // Then a burst of pending pods, filtered long before any of them binds.
    for i in 100..100 + BURST {
        s.remember(&pod(&format!("u{i}"), GpuDemand::None));
    }
    let last = format!("u{}", 100 + BURST - 1);
    bind_to(&s, &last, "big").unwrap();
    bind_to(&s, "u5000", "big").unwrap();
    // A pod filtered again moves to the back: it survives a full table's worth of newer pods.
    s.remember(&pod("u200", GpuDemand::None));
    for i in 0..9_000 {
        s.remember(&pod(&format!("v{i}"), GpuDemand::None));
    }
    assert_eq!(s.remembered(), SEEN_CAP, "the table stays bounded");
    bind_to(&s, "u200", "big").unwrap();
    // The oldest entry that was never bound nor filtered again made room.
    let oldest = bind_to(&s, "u100", "big").unwrap_err();
    assert_eq!(
        oldest,
        "allot: pod ns/u100 (uid \"u100\") was not filtered by this extender, so its GPU demand \
         is unknown; it cannot be bound here"
    );
}

/// Issue 16: a bind to a node that cannot fit the pod explains why in prose (as /filter
/// does), not with Rust Debug values, and says "no longer fits" only when it could have.
#[test]
fn bind_errors_are_prose() {
    let s = store(
        r#"{"name": "g1", "cpu": "16", "memory": "64Gi", "gpus": 1, "model": "T4"},
           {"name": "cpu", "cpu": "16", "memory": "64Gi", "gpus": 0}"#,
    );
    let cases = [
        (
            "eight",
            GpuDemand::Whole { count: 8 },
            "g1",
            "allot: pod ns/eight does not fit node \"g1\": pod needs 8 whole GPUs; the node has 1",
        ),
        (
            "one",
            GpuDemand::Whole { count: 1 },
            "cpu",
            "allot: pod ns/one does not fit node \"cpu\": node has no GPUs",
        ),
    ];
    for (uid, gpu, node, want) in cases {
        s.remember(&pod(uid, gpu));
        assert_eq!(bind_to(&s, uid, node).unwrap_err(), want, "{uid}");
    }
    // The only GPU taken between filter and bind: the pod fitted, and no longer does.
    s.remember(&pod("first", GpuDemand::Whole { count: 1 }));
    s.remember(&pod("second", GpuDemand::Whole { count: 1 }));
    bind_to(&s, "first", "g1").unwrap();
    assert_eq!(
        bind_to(&s, "second", "g1").unwrap_err(),
        "allot: pod ns/second no longer fits node \"g1\": pod needs 1 whole GPUs; 0 of 1 are free"
    );
}

/// A pod that needs one whole GPU, as kube-scheduler sends it to /preempt.
fn gpu_pod() -> serde_json::Value {
    serde_json::json!({
        "metadata": {"name": "train", "namespace": "ml", "uid": "train-uid"},
        "spec": {"containers": [{"name": "main", "resources": {
            "limits": {"nvidia.com/gpu": "1"},
            "requests": {"cpu": "1", "memory": "1Gi"}}}]}
    })
}

/// Issue 16, defect 5: a victim listed twice is one victim; evicting it once must make room
/// for /preempt to name the node.
#[test]
fn preempt_counts_a_victim_listed_twice_once() {
    let snap = parse_snapshot(
        "inline",
        r#"{"nodes": [{"name": "g1", "cpu": "16", "memory": "64Gi", "gpus": 1, "model": "T4"}],
            "pods": [{"name": "half-a", "node": "g1", "cpu": "1", "memory": "1Gi", "gpuMilli": 500},
                     {"name": "half-b", "node": "g1", "cpu": "1", "memory": "1Gi", "gpuMilli": 500}]}"#,
    )
    .unwrap();
    let s = Store::new(None, Vec::new());
    s.replace(snap);
    let ask = |victims: &[&str]| {
        let pods: Vec<_> = victims
            .iter()
            .map(|uid| serde_json::json!({"UID": uid}))
            .collect();
        let args: ExtenderPreemptionArgs = serde_json::from_value(serde_json::json!({
            "Pod": gpu_pod(),
            "NodeNameToMetaVictims": {"g1": {"Pods": pods, "NumPDBViolations": 0}}
        }))
        .unwrap();
        let out = preempt(&s, &args).unwrap();
        out.node_name_to_meta_victims
            .get("g1")
            .map(|v| v.pods.iter().map(|p| p.uid.clone()).collect::<Vec<_>>())
    };
    assert_eq!(ask(&["default/half-a", "default/half-a"]), None);
    assert_eq!(
        ask(&["default/half-a", "default/half-b", "default/half-a"]),
        Some(vec![
            "default/half-a".to_string(),
            "default/half-b".to_string()
        ])
    );
}
