//! Tests of a node's GPU model: which source wins, the product spellings that must meet, and
//! the problem a node with an unusable value gets, through the live snapshot builder.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node as KubeNode, Pod};
use serde_json::json;

use super::*;
use crate::live::pod::parse_pod;
use crate::live::{Freshness, StalePolicy, snapshot};

/// A Ready node with `gpus` GPUs and these labels.
fn node(name: &str, gpus: u32, labels: serde_json::Value) -> Arc<KubeNode> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": { "name": name, "labels": labels },
            "status": {
                "allocatable": { "cpu": "32", "memory": "128Gi", "nvidia.com/gpu": gpus.to_string() },
                "conditions": [{ "type": "Ready", "status": "True" }]
            }
        }))
        .unwrap(),
    )
}

/// The node's agent reporting one GPU named `model` by NVML.
fn report(node: &str, model: &str) -> Arc<NodeTelemetry> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "allot.dev/v1alpha1", "kind": "NodeTelemetry",
            "metadata": { "name": node },
            "spec": { "nodeName": node },
            "status": { "agentVersion": "test",
                        "cpu": { "allocatableMilli": 32000, "usedMilli": 0 },
                        "memory": { "allocatableBytes": 1u64 << 37, "usedBytes": 0 },
                        "gpuCount": 1, "healthyGpus": 1,
                        "gpus": [{ "index": 0, "uuid": "GPU-0", "model": model,
                                   "memoryTotalBytes": 1u64 << 36, "memoryUsedBytes": 0,
                                   "utilizationGpuPercent": 0, "utilizationMemoryPercent": 0,
                                   "temperatureCelsius": 40, "powerMilliwatts": 50_000,
                                   "health": "Healthy" }] }
        }))
        .unwrap(),
    )
}

/// A pending pod asking for one GPU of the listed models.
fn wants(models: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": "p", "namespace": "ml",
                      "annotations": { "allot.dev/gpu-models": models } },
        "spec": { "containers": [{ "name": "c", "resources": {
            "limits": { "cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1" } } }] }
    }))
    .unwrap()
}

fn open() -> Freshness {
    Freshness {
        stale_after: Duration::from_secs(60),
        policy: StalePolicy::FailOpen,
        now_unix_ms: 0,
    }
}

const GFD: &str = "nvidia.com/gpu.product";
const OVERRIDE: &str = "allot.dev/gpu-model";

#[test]
fn the_override_label_then_the_gfd_label_then_the_agent_decide() {
    let nvml = report("n", "NVIDIA H100 80GB HBM3");
    let cases = [
        // (labels, telemetry, model)
        (
            json!({ GFD: "NVIDIA-A100-SXM4-80GB" }),
            None,
            "A100-SXM4-80GB",
        ),
        (
            json!({ GFD: "Tesla-V100-SXM2-32GB" }),
            None,
            "V100-SXM2-32GB",
        ),
        (json!({ GFD: "Tesla-T4" }), None, "T4"),
        (json!({ GFD: "Tesla-T4-SHARED" }), None, "T4"),
        // allot.dev/gpu-model overrides GFD's product, and both override the agent.
        (
            json!({ GFD: "NVIDIA-A100-SXM4-80GB", OVERRIDE: "A100" }),
            Some(&nvml),
            "A100",
        ),
        (
            json!({ GFD: "NVIDIA-H100-80GB-HBM3" }),
            Some(&nvml),
            "H100-80GB-HBM3",
        ),
        (json!({ OVERRIDE: "V100M32" }), Some(&nvml), "V100M32"),
        // NVML's name (spaces) is the last resort, normalised like the labels.
        (json!({}), Some(&nvml), "H100-80GB-HBM3"),
        (json!({ "other": "x" }), None, UNKNOWN_MODEL),
    ];
    for (labels, telemetry, want) in cases {
        let n = node("n", 4, labels.clone());
        let got = node_model(&n, telemetry.map(Arc::as_ref));
        assert_eq!(got.as_deref(), Ok(want), "{labels} {telemetry:?}");
    }
}

#[test]
fn a_node_with_only_the_gfd_label_gets_its_product_and_an_override_wins() {
    let nodes = [
        node("a", 8, json!({ GFD: "NVIDIA-A100-SXM4-80GB" })),
        node(
            "b",
            8,
            json!({ GFD: "NVIDIA-A100-SXM4-80GB", OVERRIDE: "A100-big" }),
        ),
        node("c", 1, json!({})),
    ];
    let reports = [report("c", "NVIDIA A100-SXM4-80GB")];
    let live = snapshot(&nodes, &[], &reports, &open());
    assert!(live.problems.is_empty(), "{:?}", live.problems);
    let c = &live.snapshot.cluster;
    let model = |i: usize| c.models.name(c.node(i).unwrap().model.unwrap());
    assert_eq!(
        (model(0), model(1), model(2)),
        ("A100-SXM4-80GB", "A100-big", "A100-SXM4-80GB")
    );
    assert_eq!(
        c.node(0).unwrap().model,
        c.node(2).unwrap().model,
        "GFD and NVML meet"
    );
    assert_eq!(c.models.len(), 2);
}

#[test]
fn a_pod_may_name_the_product_in_nvml_gfd_or_short_form_in_any_case() {
    let nodes = [
        node("gfd", 4, json!({ GFD: "NVIDIA-A100-SXM4-80GB" })),
        node("h100", 4, json!({ GFD: "NVIDIA-H100-80GB-HBM3" })),
        node("old", 4, json!({ GFD: "Tesla-V100-SXM2-32GB" })),
    ];
    let live = snapshot(&nodes, &[], &[], &open());
    let c = &live.snapshot.cluster;
    let allowed = |models: &str| -> Vec<&str> {
        let demand = parse_pod(&wants(models), &c.models).unwrap().demand;
        c.nodes()
            .iter()
            .filter(|n| n.model_allowed(demand.models))
            .map(|n| &*n.name)
            .collect()
    };
    for spelling in [
        "NVIDIA A100-SXM4-80GB",
        "NVIDIA-A100-SXM4-80GB",
        "A100-SXM4-80GB",
        "a100-sxm4-80gb",
    ] {
        assert_eq!(allowed(spelling), ["gfd"], "{spelling}");
    }
    assert_eq!(
        allowed("NVIDIA H100 80GB HBM3, Tesla V100-SXM2-32GB"),
        ["h100", "old"]
    );
    assert_eq!(allowed("H100-80GB-HBM3"), ["h100"]);
    // A different product, or only its family, is not a match.
    assert!(allowed("A100-SXM4-40GB").is_empty());
    assert!(allowed("A100").is_empty());
}

#[test]
fn an_unusable_model_is_a_problem_naming_the_node_label_and_value() {
    let long = format!("NVIDIA-{}", "X".repeat(64));
    let nodes = [
        node("empty", 4, json!({ GFD: "" })),
        node("long", 4, json!({ GFD: long })),
        // The override decides even when the product label below it is fine.
        node(
            "odd",
            4,
            json!({ GFD: "NVIDIA-A100-SXM4-80GB", OVERRIDE: "A100/80" }),
        ),
        node("cpu", 0, json!({ GFD: "" })),
    ];
    let reports = [report("agent", "NVIDIA A100 (rev 2)")];
    let nodes: Vec<_> = nodes
        .into_iter()
        .chain([node("agent", 1, json!({}))])
        .collect();
    let live = snapshot(&nodes, &[], &reports, &open());
    let text: Vec<String> = live.problems.iter().map(ToString::to_string).collect();
    let bad = "is not a GPU model name (letters, digits, spaces, '-', '_', '.')";
    assert_eq!(
        text,
        [
            format!(
                "node agent: NodeTelemetry status.gpus[0].model: \"NVIDIA A100 (rev 2)\" {bad}; \
                 accounted without GPUs"
            ),
            format!("node cpu: label nvidia.com/gpu.product: \"\" {bad}"),
            format!("node empty: label nvidia.com/gpu.product: \"\" {bad}; accounted without GPUs"),
            format!(
                "node long: label nvidia.com/gpu.product: {long:?} is too long for a GPU model \
                 name (64 characters as \"{}\"; at most 63); accounted without GPUs",
                "X".repeat(64)
            ),
            format!(
                "node odd: label allot.dev/gpu-model: \"A100/80\" {bad}; accounted without GPUs"
            ),
        ]
    );
    // The nodes stay in the snapshot, without GPUs to offer.
    let c = &live.snapshot.cluster;
    assert_eq!(c.len(), 5);
    assert!(
        c.nodes()
            .iter()
            .all(|n| n.gpu_count() == 0 && n.model.is_none())
    );
}
