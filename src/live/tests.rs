//! Tests of building the live snapshot from cluster objects: nodes, bound pods, telemetry and
//! what is left out, with the reason.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node as KubeNode, Pod};
use serde_json::json;

use super::*;
use crate::crd::NodeTelemetry;

const NOW_MS: i64 = 1_790_000_000_000;

fn node(name: &str, gpus: u32, model: Option<&str>, ready: bool) -> Arc<KubeNode> {
    let labels = model.map_or(json!({}), |m| json!({ "allot.dev/gpu-model": m }));
    Arc::new(
        serde_json::from_value(json!({
            "metadata": { "name": name, "labels": labels },
            "status": {
                "allocatable": { "cpu": "32", "memory": "128Gi", "nvidia.com/gpu": gpus.to_string() },
                "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }]
            }
        }))
        .unwrap(),
    )
}

fn pod(name: &str, node: &str, gpus: u32, annotations: serde_json::Value, phase: &str) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": { "name": name, "namespace": "ml", "uid": format!("uid-{name}"),
                          "annotations": annotations,
                          "creationTimestamp": "2026-11-22T10:00:00Z" },
            "spec": { "nodeName": node, "containers": [{ "name": "c", "resources": {
                "requests": { "cpu": "2", "memory": "4Gi", "nvidia.com/gpu": gpus.to_string() } } }] },
            "status": { "phase": phase }
        }))
        .unwrap(),
    )
}

fn report(node: &str, age_s: i64, unhealthy: &[(u32, &str)]) -> Arc<NodeTelemetry> {
    let beat = jiff_rfc3339(NOW_MS - age_s * 1000);
    let gpus: Vec<_> = (0..4)
        .map(|i| {
            let bad = unhealthy.iter().find(|(d, _)| *d == i);
            json!({ "index": i, "uuid": format!("GPU-{i}"), "model": "A100",
                    "memoryTotalBytes": 1u64 << 36, "memoryUsedBytes": 0,
                    "utilizationGpuPercent": 0, "utilizationMemoryPercent": 0,
                    "temperatureCelsius": 40, "powerMilliwatts": 50_000,
                    "health": if bad.is_some() { "Unhealthy" } else { "Healthy" },
                    "reason": bad.map(|(_, r)| *r) })
        })
        .collect();
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "allot.dev/v1alpha1", "kind": "NodeTelemetry",
            "metadata": { "name": node },
            "spec": { "nodeName": node },
            "status": { "heartbeatTime": beat, "agentVersion": "test",
                        "cpu": { "allocatableMilli": 32000, "usedMilli": 0 },
                        "memory": { "allocatableBytes": 1u64 << 37, "usedBytes": 0 },
                        "gpuCount": 4, "healthyGpus": 4 - unhealthy.len(), "gpus": gpus }
        }))
        .unwrap(),
    )
}

fn jiff_rfc3339(unix_ms: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_millisecond(unix_ms)
        .unwrap()
        .to_string()
}

fn fresh(policy: StalePolicy) -> Freshness {
    Freshness {
        stale_after: Duration::from_secs(60),
        policy,
        now_unix_ms: NOW_MS,
    }
}

#[test]
fn bound_pods_are_placed_on_their_recorded_devices_and_finished_pods_free_theirs() {
    let nodes = [
        node("b", 4, Some("A100"), true),
        node("a", 8, Some("V100"), true),
    ];
    let pods = [
        pod(
            "on-2-3",
            "b",
            2,
            json!({ "allot.dev/gpu-devices": "2,3" }),
            "Running",
        ),
        pod("done", "b", 2, json!({}), "Succeeded"),
        pod("elsewhere", "gone", 1, json!({}), "Running"),
        pod(
            "share",
            "a",
            0,
            json!({ "allot.dev/gpu-milli": "300", "allot.dev/gpu-devices": "5" }),
            "Pending",
        ),
    ];
    let live = snapshot(&nodes, &pods, &[], &fresh(StalePolicy::FailOpen));
    let c = &live.snapshot.cluster;
    // Sorted by name: a (V100 x8) then b (A100 x4).
    assert_eq!(&*c.node(0).unwrap().name, "a");
    assert_eq!(c.models.name(c.node(1).unwrap().model.unwrap()), "A100");
    assert_eq!(c.node(1).unwrap().gpu_free(), &[1000, 1000, 0, 0]);
    assert_eq!(c.node(0).unwrap().gpu_free()[5], 700);
    assert_eq!(c.node(0).unwrap().cpu_free, 30_000);
    let keys: Vec<&str> = live.snapshot.pods.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["ml/on-2-3", "ml/share"]);
    assert!(live.problems.is_empty(), "{:?}", live.problems);
}

#[test]
fn a_bad_or_conflicting_device_annotation_is_reported_and_the_default_devices_used() {
    let nodes = [node("n", 4, Some("A100"), true)];
    let pods = [
        pod(
            "a-first",
            "n",
            1,
            json!({ "allot.dev/gpu-devices": "1" }),
            "Running",
        ),
        pod(
            "b-clash",
            "n",
            1,
            json!({ "allot.dev/gpu-devices": "1" }),
            "Running",
        ),
        pod(
            "junk",
            "n",
            1,
            json!({ "allot.dev/gpu-devices": "x" }),
            "Running",
        ),
    ];
    let live = snapshot(&nodes, &pods, &[], &fresh(StalePolicy::FailOpen));
    assert_eq!(
        live.snapshot.cluster.node(0).unwrap().gpu_free(),
        &[0, 0, 0, 1000]
    );
    let text: Vec<String> = live.problems.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(
        text[0].starts_with("pod ml/b-clash: its recorded GPU devices are taken"),
        "{text:?}"
    );
    assert!(text[1].contains("allot.dev/gpu-devices: \"x\""), "{text:?}");
}

#[test]
fn unhealthy_gpus_are_withheld_and_named() {
    let nodes = [node("n", 4, Some("A100"), true)];
    let pods = [pod(
        "p",
        "n",
        1,
        json!({ "allot.dev/gpu-devices": "0" }),
        "Running",
    )];
    let reports = [report("n", 5, &[(2, "XID 79")])];
    let live = snapshot(&nodes, &pods, &reports, &fresh(StalePolicy::FailOpen));
    let c = &live.snapshot.cluster;
    assert_eq!(c.node(0).unwrap().gpu_free(), &[0, 1000, 0, 1000]);
    assert_eq!(c.gpu_allocated_milli(), 2000);
    let state = &live.snapshot.states[0];
    assert_eq!(state.telemetry, Telemetry::Fresh);
    assert_eq!(state.unhealthy_text(), "GPU 2 unhealthy (XID 79)");
    assert_eq!(state.usable(true), Ok(()));
}

#[test]
fn stale_and_missing_telemetry_block_a_node_only_when_failing_closed() {
    let nodes = [
        node("old", 4, Some("A100"), true),
        node("silent", 4, Some("A100"), true),
    ];
    let reports = [report("old", 300, &[])];
    let live = snapshot(&nodes, &[], &reports, &fresh(StalePolicy::FailClosed));
    assert_eq!(
        live.snapshot.states[0].telemetry,
        Telemetry::Stale {
            age: Duration::from_secs(300),
            limit: Duration::from_secs(60)
        }
    );
    assert_eq!(live.snapshot.states[1].telemetry, Telemetry::Missing);
    for state in &live.snapshot.states {
        assert_eq!(state.usable(false), Ok(()));
    }
    assert_eq!(
        live.snapshot.states[0].usable(true).unwrap_err(),
        "node telemetry is out of date (stale after 60s; stale policy fail-closed)"
    );
    assert!(
        live.snapshot.states[1]
            .usable(true)
            .unwrap_err()
            .starts_with("no NodeTelemetry")
    );
}

#[test]
fn not_ready_and_cordoned_nodes_are_unusable_whatever_the_policy() {
    let mut cordoned = (*node("c", 2, Some("T4"), true)).clone();
    cordoned.spec = Some(serde_json::from_value(json!({ "unschedulable": true })).unwrap());
    let nodes = [node("d", 2, Some("T4"), false), Arc::new(cordoned)];
    let live = snapshot(&nodes, &[], &[], &fresh(StalePolicy::FailOpen));
    assert_eq!(
        live.snapshot.states[0].usable(false).unwrap_err(),
        "node is cordoned (spec.unschedulable)"
    );
    assert_eq!(
        live.snapshot.states[1].usable(false).unwrap_err(),
        "node is not Ready"
    );
}

#[test]
fn a_gpu_node_without_a_model_gets_the_unknown_model_and_bad_quantities_are_reported() {
    let mut broken = (*node("x", 2, None, true)).clone();
    if let Some(a) = broken.status.as_mut().and_then(|s| s.allocatable.as_mut()) {
        a.insert(
            "memory".into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("lots".into()),
        );
    }
    let nodes = [node("plain", 2, None, true), Arc::new(broken)];
    let live = snapshot(&nodes, &[], &[], &fresh(StalePolicy::FailOpen));
    let c = &live.snapshot.cluster;
    assert_eq!(
        c.models.name(c.node(0).unwrap().model.unwrap()),
        node_model::UNKNOWN_MODEL
    );
    assert_eq!(c.node(1).unwrap().memory_capacity, 0);
    assert_eq!(live.problems.len(), 1);
    assert!(
        live.problems[0]
            .to_string()
            .starts_with("node x: allocatable memory:")
    );
}

/// A pod object with a resourceVersion, as the reflectors hold them.
fn versioned(pod: &Arc<Pod>, version: &str) -> Arc<Pod> {
    let mut p = (**pod).clone();
    p.metadata.resource_version = Some(version.to_string());
    Arc::new(p)
}

#[test]
fn the_memo_rereads_a_pod_only_when_its_version_or_the_model_catalog_changes() {
    let nodes = [node("a", 4, Some("A100"), true)];
    let on = |devices: &str, version: &str| {
        versioned(
            &pod(
                "p",
                "a",
                1,
                json!({ "allot.dev/gpu-devices": devices }),
                "Running",
            ),
            version,
        )
    };
    let free = |live: &LiveSnapshot| live.snapshot.cluster.node(0).unwrap().gpu_free().to_vec();
    let mut memo = PodMemo::default();
    let f = fresh(StalePolicy::FailOpen);
    let first = snapshot_with(&mut memo, &nodes, &[on("1", "7")], &[], &f);
    assert_eq!(free(&first), [1000, 0, 1000, 1000]);
    // Same version: the object cannot have changed, so the remembered reading stands (the
    // edited annotation here is what proves the memo was used).
    let same = snapshot_with(&mut memo, &nodes, &[on("3", "7")], &[], &f);
    assert_eq!(free(&same), [1000, 0, 1000, 1000]);
    let newer = snapshot_with(&mut memo, &nodes, &[on("3", "8")], &[], &f);
    assert_eq!(free(&newer), [1000, 1000, 1000, 0]);
    // A new GPU model renumbers the catalog: everything is read again.
    let nodes = [
        node("a", 4, Some("A100"), true),
        node("b", 4, Some("A10"), true),
    ];
    let renumbered = snapshot_with(&mut memo, &nodes, &[on("2", "8")], &[], &f);
    assert_eq!(free(&renumbered), [1000, 1000, 0, 1000]);
    // A pod gone from the caches is forgotten.
    snapshot_with(&mut memo, &nodes, &[], &[], &f);
    let again = snapshot_with(&mut memo, &nodes, &[on("0", "8")], &[], &f);
    assert_eq!(free(&again), [0, 1000, 1000, 1000]);
}

#[test]
fn departed_pods_are_remembered_for_a_while() {
    let departed = super::departed::Departed::default();
    let t0 = std::time::Instant::now();
    departed.record("u1", t0);
    departed.record("", t0);
    assert!(departed.contains("u1"));
    assert!(!departed.contains("u2") && !departed.contains(""));
    let later = t0 + super::departed::Departed::KEEP + Duration::from_secs(1);
    departed.record("u2", later);
    assert!(!departed.contains("u1"), "older than KEEP");
    assert!(departed.contains("u2"));
}
