//! Unit tests of the extender's pure parts: score scaling and the placement overlay.

use std::time::{Duration, Instant};

use super::pod::PodRequest;
use super::state::{ClusterSnapshot, Store};
use super::verbs::scale;
use crate::model::{GpuDemand, ModelSet, PodDemand};
use crate::policy::PolicyKind;
use crate::snapshot::parse_snapshot;

#[test]
fn scores_scale_to_zero_ten_and_round() {
    assert_eq!(scale(&[]), Vec::<i64>::new());
    assert_eq!(scale(&[7, 7]), [10, 10]);
    assert_eq!(scale(&[0, 5, 10, 100]), [0, 1, 1, 10]);
    assert_eq!(scale(&[-50, 0, 50]), [0, 5, 10]);
    assert_eq!(scale(&[0, 1, 2, 3]), [0, 3, 7, 10]);
    let wide = scale(&[i64::MIN, 0, i64::MAX]);
    assert_eq!(wide, [0, 5, 10]);
}

fn store(ttl: Option<Duration>) -> Store {
    let snap = parse_snapshot(
        "inline",
        r#"{"nodes": [{"name": "g", "cpu": "16", "memory": "64Gi", "gpus": 1, "model": "T4"}]}"#,
    )
    .unwrap();
    let store = Store::new(ttl, Vec::new());
    store.replace(ClusterSnapshot::from_file(snap));
    store
}

fn share(uid: &str, milli: u32) -> PodRequest {
    PodRequest {
        key: format!("ns/{uid}"),
        uid: uid.to_string(),
        demand: PodDemand {
            cpu_milli: 1000,
            memory_bytes: 1 << 30,
            gpu: GpuDemand::Shared { milli },
            models: ModelSet::ANY,
        },
        policy: PolicyKind::Fgd,
        priority: 0,
    }
}

#[test]
fn overlay_entries_expire_and_free_their_share() {
    let s = store(Some(Duration::from_secs(30)));
    s.record(&share("a", 600), "g").unwrap();
    assert_eq!(s.view().cluster.nodes()[0].gpu_free(), &[400]);
    assert!(s.record(&share("b", 600), "g").is_err());
    s.prune(Instant::now() + Duration::from_secs(31));
    assert_eq!(s.view().cluster.nodes()[0].gpu_free(), &[1000]);
    s.record(&share("b", 600), "g").unwrap();
}

#[test]
fn a_new_base_that_shows_the_pod_replaces_its_overlay_entry() {
    let s = store(None);
    let bound = s.record(&share("a", 600), "g").unwrap();
    s.prune(Instant::now() + Duration::from_secs(3600));
    assert_eq!(s.view().overlay.len(), 1, "snapshot mode keeps placements");
    let mut base = (*s.view().base).clone();
    base.cluster.place(&bound.demand, bound.at).unwrap();
    base.pods.push(bound);
    s.replace(base);
    let view = s.view();
    assert!(view.overlay.is_empty());
    assert_eq!(view.cluster.nodes()[0].gpu_free(), &[400], "counted once");
}
