//! The NodeTelemetry CRD: status counts, camelCase round trips, and the generated definition's
//! scope and columns.

use super::*;
use kube::CustomResourceExt;

fn gpu(index: u32, health: GpuHealth) -> GpuTelemetry {
    GpuTelemetry {
        index,
        uuid: format!("GPU-{index:08x}"),
        model: "NVIDIA L4".into(),
        memory_total_bytes: 24 << 30,
        memory_used_bytes: 1 << 30,
        utilization_gpu_percent: 40,
        utilization_memory_percent: 10,
        temperature_celsius: 55,
        power_milliwatts: 38_000,
        mig_enabled: None,
        health,
        reason: None,
    }
}

#[test]
fn status_counts_follow_the_gpus() {
    let status = NodeTelemetryStatus::default().with_gpus(vec![
        gpu(1, GpuHealth::Unhealthy),
        gpu(0, GpuHealth::Healthy),
    ]);
    assert_eq!((status.gpu_count, status.healthy_gpus), (2, 1));
    assert_eq!(status.gpus[0].index, 0, "sorted by index");
}

#[test]
fn telemetry_round_trips_with_camel_case_keys() {
    let mut nt = NodeTelemetry::new(
        "gpu-1",
        NodeTelemetrySpec {
            node_name: "gpu-1".into(),
        },
    );
    nt.status = Some(
        NodeTelemetryStatus {
            agent_version: "0.1.0".into(),
            cpu: CpuTelemetry {
                allocatable_milli: 32_000,
                used_milli: 1_500,
            },
            ..Default::default()
        }
        .with_gpus(vec![gpu(0, GpuHealth::Healthy)]),
    );
    let json = serde_json::to_value(&nt).expect("to json");
    assert_eq!(json["spec"]["nodeName"], "gpu-1");
    assert_eq!(json["status"]["gpus"][0]["utilizationGpuPercent"], 40);
    assert_eq!(json["status"]["gpus"][0]["health"], "Healthy");
    assert_eq!(json["status"]["healthyGpus"], 1);
    assert_eq!(
        serde_json::from_value::<NodeTelemetry>(json).expect("back"),
        nt
    );
}

#[test]
fn crd_is_cluster_scoped_with_status_and_columns() {
    let crd = NodeTelemetry::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("nodetelemetries.allot.dev")
    );
    assert_eq!(crd.spec.scope, "Cluster");
    assert_eq!(crd.spec.names.plural, "nodetelemetries");
    let version = &crd.spec.versions[0];
    assert!(
        version
            .subresources
            .as_ref()
            .is_some_and(|s| s.status.is_some())
    );
    let cols = version.additional_printer_columns.clone().expect("columns");
    let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["Node", "GPUs", "Healthy", "Model", "Heartbeat", "Agent"]
    );
    assert!(
        cols.iter()
            .any(|c| c.name == "Heartbeat" && c.type_ == "date")
    );
}

#[test]
fn percentages_are_bounded_in_the_schema() {
    let crd = NodeTelemetry::crd();
    let schema = serde_json::to_value(&crd.spec.versions[0].schema).expect("json");
    let gpu = &schema["openAPIV3Schema"]["properties"]["status"]["properties"]["gpus"]["items"];
    let util = &gpu["properties"]["utilizationGpuPercent"];
    assert_eq!(util["maximum"], 100.0);
    assert_eq!(util["minimum"], 0.0);
    assert_eq!(
        gpu["properties"]["health"]["enum"],
        serde_json::json!(["Healthy", "Unhealthy", "Unknown"])
    );
}
