//! The device plugin's kubelet-facing calls: the first byte splits the input into protobuf
//! bytes (decoded as kubelet's `AllocateRequest` and `PreferredAllocationRequest`) and a JSON
//! list of pods bound to the node; then the plugin's decisions run on them. Invariants: nothing
//! panics; a grant is the pod's annotated devices, all on the node and healthy; a preferred
//! allocation has at most the asked size, no repeats, and every must-include ID there is room
//! for.
#![no_main]

use allot::agent::plugin::{Inventory, Resource, Served, choose, container_response, grant, prefer, share_milli};
use allot::crd::{GpuHealth, GpuTelemetry};
use allot::live::pod::bound_devices;
use allot_kubelet_api::{AllocateRequest, PreferredAllocationRequest};
use k8s_openapi::api::core::v1::Pod;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

fn node() -> Inventory {
    let gpus: Vec<GpuTelemetry> = (0..4)
        .map(|i| GpuTelemetry {
            index: i,
            uuid: format!("GPU-{i}"),
            memory_total_bytes: 16 << 30,
            health: if i == 3 { GpuHealth::Unhealthy } else { GpuHealth::Healthy },
            ..Default::default()
        })
        .collect();
    Inventory::from_telemetry(&gpus)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (proto, json) = rest.split_at(usize::from(split).min(rest.len()));
    let pods: Vec<Pod> = serde_json::from_slice(json).unwrap_or_default();
    let inventory = node();
    let served = Served::new();
    if let Ok(request) = AllocateRequest::decode(proto) {
        for c in request.container_requests.iter().take(8) {
            for resource in [Resource::Whole, Resource::Share] {
                let Ok((pod, ask)) = choose(&pods, &served, resource, c.device_ids.len()) else {
                    continue;
                };
                let Ok(gpus) = grant(pod, &ask, &inventory, &pods, &served) else {
                    continue;
                };
                let annotated: Vec<usize> = match bound_devices(pod) {
                    Some(Ok(set)) => set.iter().collect(),
                    _ => panic!("granted without a valid devices annotation"),
                };
                for g in &gpus {
                    assert!(g.unhealthy.is_none(), "granted an unhealthy GPU");
                    assert!(annotated.contains(&(g.index as usize)), "granted a GPU not annotated");
                }
                let _ = container_response(&gpus, share_milli(pod), Some("nvidia.com/gpu"));
            }
        }
    }
    if let Ok(request) = PreferredAllocationRequest::decode(proto) {
        for c in request.container_requests.iter().take(8) {
            let size = usize::try_from(c.allocation_size).unwrap_or(0).min(1024);
            let ids = prefer(None, &c.available_device_ids, &c.must_include_device_ids, size);
            assert!(ids.len() <= size, "more than asked");
            let mut seen = ids.clone();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), ids.len(), "an ID twice");
        }
    }
});
