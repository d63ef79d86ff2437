//! Issue 17: bad input at the device plugin's kubelet-facing calls. Each row is the pods bound
//! to a node, the node's GPUs and an `Allocate` of some devices of one resource; the outcome
//! is the exact message kubelet and the pod's event show, or the GPUs granted. One table, one
//! loop: every row that differs (or panics) is reported at once.
#![cfg(feature = "k8s")]

#[path = "bad_input_device_plugin/rows.rs"]
mod rows;
mod table;

use std::panic::{AssertUnwindSafe, catch_unwind};

use allot::agent::plugin::{Inventory, Resource, Served, choose, grant};
use allot::crd::{GpuHealth, GpuTelemetry};
use k8s_openapi::api::core::v1::Pod;
use rows::rows;

/// Four healthy GPUs, but GPU 3 fell off the bus.
fn node() -> Inventory {
    let gpus: Vec<GpuTelemetry> = (0..4)
        .map(|i| GpuTelemetry {
            index: i,
            uuid: format!("GPU-{i}"),
            memory_total_bytes: 16 << 30,
            health: if i == 3 {
                GpuHealth::Unhealthy
            } else {
                GpuHealth::Healthy
            },
            reason: (i == 3).then(|| "no longer visible to NVML".into()),
            ..Default::default()
        })
        .collect();
    Inventory::from_telemetry(&gpus)
}

/// What an Allocate of `count` devices of `resource` gives: the granted GPUs' indices with the
/// pod and container, or the refusal's message.
fn outcome(pods: &[Pod], resource: Resource, count: usize) -> String {
    let served = Served::new();
    let inventory = node();
    match choose(pods, &served, resource, count) {
        Err(e) => e.to_string(),
        Ok((p, ask)) => match grant(p, &ask, &inventory, pods, &served) {
            Err(e) => e.to_string(),
            Ok(gpus) => {
                let ids: Vec<String> = gpus.iter().map(|g| g.index.to_string()).collect();
                let name = p.metadata.name.as_deref().unwrap_or("");
                format!("{name}/{}: GPUs {}", ask.container, ids.join(","))
            }
        },
    }
}

#[test]
fn bad_kubelet_inputs_give_the_exact_outcome() {
    let rows = rows();
    let mut failures = Vec::new();
    for row in &rows {
        let pods: Result<Vec<Pod>, _> = row
            .pods
            .iter()
            .cloned()
            .map(serde_json::from_value)
            .collect();
        let got = match pods {
            Err(e) => format!("not a pod: {e}"),
            Ok(pods) => catch_unwind(AssertUnwindSafe(|| outcome(&pods, row.resource, row.count)))
                .unwrap_or_else(|_| "PANICKED".to_string()),
        };
        if got != row.want {
            let cut = |s: &str| s.chars().take(300).collect::<String>();
            failures.push(format!(
                "row:      {}\nexpected: {}\nactual:   {}",
                row.what,
                cut(&row.want),
                cut(&got)
            ));
        }
    }
    table::assert_rows(&failures, rows.len());
}
