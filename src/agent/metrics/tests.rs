//! The agent's metrics tests: per-GPU series under DCGM's names and labels, its own
//! counters, and `/healthz` failing once sampling stalls.

use super::*;
use crate::crd::GpuTelemetry;

#[test]
fn gpu_series_use_dcgm_names_and_labels() {
    let m = Metrics::new();
    let gpu = GpuTelemetry {
        index: 0,
        uuid: "GPU-a".into(),
        model: "A100".into(),
        memory_total_bytes: 80 * MIB,
        memory_used_bytes: 30 * MIB,
        utilization_gpu_percent: 42,
        power_milliwatts: 250_500,
        health: GpuHealth::Healthy,
        ..GpuTelemetry::default()
    };
    let lost = GpuTelemetry {
        index: 1,
        uuid: "GPU-b".into(),
        health: GpuHealth::Unhealthy,
        ..gpu.clone()
    };
    let status = NodeTelemetryStatus::default().with_gpus(vec![gpu, lost]);
    m.observe("node-1", &status);
    m.wrote(Why::Heartbeat, true, 1_700_000_000);
    let text = m.render();
    let labels = r#"gpu="0",UUID="GPU-a",device="nvidia0",modelName="A100",Hostname="node-1""#;
    assert!(
        text.contains(&format!("DCGM_FI_DEV_GPU_UTIL{{{labels}}} 42")),
        "{text}"
    );
    assert!(
        text.contains(&format!("DCGM_FI_DEV_FB_USED{{{labels}}} 30")),
        "{text}"
    );
    assert!(
        text.contains(&format!("DCGM_FI_DEV_FB_FREE{{{labels}}} 50")),
        "{text}"
    );
    assert!(
        text.contains(&format!("DCGM_FI_DEV_POWER_USAGE{{{labels}}} 250.5")),
        "{text}"
    );
    assert!(
        text.contains(r#"allot_agent_gpu_healthy{gpu="1",UUID="GPU-b""#),
        "{text}"
    );
    assert!(!text.contains(r#"DCGM_FI_DEV_GPU_UTIL{gpu="1""#), "{text}");
    assert!(
        text.contains(r#"allot_build_info{role="agent",version=""#),
        "{text}"
    );
    assert!(
        text.contains(r#"allot_agent_status_writes_total{why="heartbeat",outcome="ok"} 1"#),
        "{text}"
    );
    // A GPU that is gone loses its series at the next sample.
    m.observe("node-1", &NodeTelemetryStatus::default());
    assert!(!m.render().contains("GPU-a"));
}

#[tokio::test]
async fn healthz_fails_when_sampling_stalls() {
    use tower::ServiceExt as _;
    let m = Arc::new(Metrics::new());
    let get = |m: Arc<Metrics>| async move {
        let request = axum::http::Request::get("/healthz")
            .body(axum::body::Body::empty())
            .expect("request");
        router(m).oneshot(request).await.expect("response").status()
    };
    // Before the first sample and without a limit: alive.
    assert_eq!(get(m.clone()).await, StatusCode::OK);
    m.set_stall_limit(Duration::from_secs(30));
    m.ticked();
    assert_eq!(get(m.clone()).await, StatusCode::OK);
    m.ticked_at(unix_ms() - 31_000);
    assert_eq!(get(m.clone()).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(m.stalled_for(unix_ms()).map(|d| d.as_secs()), Some(31));
}
