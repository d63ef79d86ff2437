//! Reading pods: annotations, resources, devices and the errors a user sees.
use super::*;

fn pod(json: serde_json::Value) -> Pod {
    serde_json::from_value(json).unwrap()
}

fn gpu_pod(annotations: serde_json::Value, gpus: Option<&str>) -> Pod {
    let mut limits = serde_json::json!({"cpu": "2"});
    if let Some(g) = gpus {
        limits["nvidia.com/gpu"] = g.into();
    }
    pod(serde_json::json!({
        "metadata": {"name": "p", "namespace": "ml", "uid": "u1", "annotations": annotations},
        "spec": {
            "priority": 5,
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": limits}},
                {"name": "b", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}
            ],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "4", "memory": "1Mi"}}}]
        }
    }))
}

#[test]
fn sums_containers_and_applies_init_max() {
    let mut models = ModelCatalog::default();
    let a100 = models.intern("A100").unwrap();
    let p = gpu_pod(
        serde_json::json!({"allot.dev/gpu-models": "A100, H100"}),
        Some("2"),
    );
    let r = parse_pod(&p, &models).unwrap();
    assert_eq!(r.key, "ml/p");
    assert_eq!(r.demand.cpu_milli, 4000);
    assert_eq!(r.demand.memory_bytes, 2 << 30);
    assert_eq!(r.demand.gpu, GpuDemand::Whole { count: 2 });
    assert_eq!(r.demand.models, ModelSet::only(a100));
    assert_eq!(r.policy, PolicyKind::Learned, "the default policy");
    assert_eq!(r.priority, 5);
}

#[test]
fn bad_fields_are_named_as_the_pod_writes_them() {
    // The demand's limits and wording are tested once, in model::demand; here, that a
    // pod's errors name its annotation, resource or container.
    assert_eq!(
        POD_FIELDS.gpu_milli,
        format!("annotation {GPU_MILLI_ANNOTATION}")
    );
    assert_eq!(
        POD_FIELDS.models,
        format!("annotation {GPU_MODELS_ANNOTATION}")
    );
    let models = ModelCatalog::default();
    for (annotations, gpus, reason, text) in [
        (
            serde_json::json!({"allot.dev/gpu-milli": "2000"}),
            None,
            "InvalidGpuMilli",
            "annotation allot.dev/gpu-milli: 2000 is out of range; a share of one GPU is \
             1..999 milli (whole GPUs are asked for with nvidia.com/gpu)",
        ),
        (
            serde_json::json!({"allot.dev/gpu-milli": "500"}),
            Some("1"),
            "GpuAndGpuMilli",
            "annotation allot.dev/gpu-milli: 500 conflicts with nvidia.com/gpu: 1; ask for a \
             share of one GPU or for whole GPUs, not both",
        ),
        (
            serde_json::json!({}),
            Some("17"),
            "TooManyGpus",
            "nvidia.com/gpu: 17 GPUs exceed the 16 one node can hold",
        ),
        (
            serde_json::json!({"allot.dev/gpu-models": "a!b"}),
            Some("1"),
            "InvalidGpuModels",
            "annotation allot.dev/gpu-models: \"a!b\" is not a GPU model name (letters, \
             digits, spaces, '-', '_', '.')",
        ),
        (
            serde_json::json!({"allot.dev/gpu-models": "A100"}),
            None,
            "InvalidGpuModels",
            "annotation allot.dev/gpu-models: \"A100\" is set but no GPU is requested (set \
             nvidia.com/gpu or annotation allot.dev/gpu-milli)",
        ),
        (
            serde_json::json!({}),
            Some("1.5"),
            "InvalidQuantity",
            "container \"a\": resource nvidia.com/gpu: \"1.5\" is not a whole number >= 0",
        ),
    ] {
        let e = parse_pod(&gpu_pod(annotations, gpus), &models).unwrap_err();
        assert_eq!((e.reason(), e.to_string().as_str()), (reason, text));
    }
    let e = parse_pod(
        &gpu_pod(serde_json::json!({"allot.dev/policy": "smart"}), None),
        &models,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("allot.dev/policy") && e.contains("\"smart\""),
        "{e}"
    );
    let ok = parse_pod(
        &gpu_pod(
            serde_json::json!({"allot.dev/gpu-milli": "250", "allot.dev/policy": "BestFit"}),
            None,
        ),
        &models,
    )
    .unwrap();
    assert_eq!(ok.demand.gpu, GpuDemand::Shared { milli: 250 });
    assert_eq!(ok.policy, PolicyKind::BestFit);
}
