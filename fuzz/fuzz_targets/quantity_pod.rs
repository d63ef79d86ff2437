//! Quantity parsing (cpu, memory, counts) and pod annotation parsing: the bytes as one
//! quantity string, and as a Pod (JSON) given to the extender's pod parser.
#![no_main]

use allot::live::pod::{accounted_demand, bound_devices, parse_devices, parse_pod, soft_preference};
use allot::model::ModelCatalog;
use allot::model::quantity::{parse_bytes, parse_count, parse_cpu_milli};
use k8s_openapi::api::core::v1::Pod;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_cpu_milli(text);
        let _ = parse_bytes(text);
        let _ = parse_count(text);
        let _ = parse_devices("fuzz", text);
    }
    if let Ok(pod) = serde_json::from_slice::<Pod>(data) {
        let mut models = ModelCatalog::default();
        for name in ["A100", "V100M32", "T4"] {
            let _ = models.intern(name);
        }
        let _ = parse_pod(&pod, &models);
        let _ = accounted_demand(&pod, &models);
        let _ = bound_devices(&pod);
        let _ = soft_preference(&pod);
    }
});
