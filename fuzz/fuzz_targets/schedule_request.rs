//! ScheduleRequest validation: the bytes as a spec (JSON), validated as the controller does
//! (the request name, templates and quantities, against the example cluster).
#![no_main]

use std::sync::OnceLock;

use allot::controller::validate::validate;
use allot::crd::ScheduleRequestSpec;
use allot::crd::batch::objective;
use allot::snapshot::{ClusterSnapshot, parse_snapshot};
use libfuzzer_sys::fuzz_target;

/// The cluster of `allot plan -f examples/request.yaml --snapshot examples/cluster.json`.
const CLUSTER: &str = include_str!("../../examples/cluster.json");

fn snapshot() -> &'static ClusterSnapshot {
    static SNAPSHOT: OnceLock<ClusterSnapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        parse_snapshot("cluster.json", CLUSTER).expect("the example cluster parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<ScheduleRequestSpec>(data) else {
        return;
    };
    let _ = objective(&spec);
    let _ = spec.total_replicas();
    let _ = validate("fuzz-request", &spec, &snapshot().cluster);
});
