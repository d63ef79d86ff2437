//! Unit tests of the extender's pure parts: score scaling, the placement overlay, node
//! states (telemetry, readiness, GPU health) and ScheduleRequest plans in filter and bind.

use std::time::{Duration, Instant};

use super::FilterAnswer;
use super::state::Store;
use super::verbs::{bind, filter, prioritize, scale, top_alone};
use super::wire::ExtenderArgs;
use crate::live::pod::{PodRequest, format_devices, parse_devices};
use crate::model::{DeviceSet, GpuDemand, ModelSet, PodDemand};
use crate::policy::PolicyKind;
use crate::snapshot::{NodeState, Telemetry, parse_snapshot};

mod answers;
use answers::{offer, three_nodes};
mod destinations;
mod holds;
mod reserve;

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
    store.replace(snap);
    store
}

fn share(uid: &str, milli: u32) -> PodRequest {
    request(uid, GpuDemand::Shared { milli })
}

fn request(uid: &str, gpu: GpuDemand) -> PodRequest {
    PodRequest {
        key: format!("ns/{uid}"),
        uid: uid.to_string(),
        demand: PodDemand {
            cpu_milli: 1000,
            memory_bytes: 1 << 30,
            gpu,
            models: ModelSet::ANY,
        },
        policy: PolicyKind::Fgd,
        priority: 0,
        planned_node: None,
        planned_devices: None,
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

#[test]
fn a_pod_deleted_before_any_snapshot_showed_it_frees_its_share() {
    let s = store(Some(Duration::from_secs(30)));
    s.record(&share("a", 600), "g").unwrap();
    let base = (*s.view().base).clone();
    s.replace_forgetting(base.clone(), |uid| uid == "other");
    assert_eq!(
        s.view().cluster.nodes()[0].gpu_free(),
        &[400],
        "still in flight"
    );
    s.replace_forgetting(base, |uid| uid == "a");
    assert!(s.view().overlay.is_empty());
    assert_eq!(s.view().cluster.nodes()[0].gpu_free(), &[1000]);
}

#[test]
fn the_watch_is_told_which_binds_the_view_already_shows() {
    let s = std::sync::Arc::new(store(None));
    let asks = Store::accounted(&s);
    s.record(&share("a", 600), "g").unwrap();
    assert!((asks.0)("a", "g"), "bound here by this extender");
    assert!(!(asks.0)("a", "elsewhere"), "another node is news");
    assert!(!(asks.0)("b", "g"), "another pod is news");
    let mut base = (*s.view().base).clone();
    let bound = s.view().overlay[0].as_ref().clone();
    base.cluster.place(&bound.demand, bound.at).unwrap();
    base.pods.push(bound);
    s.replace(base);
    assert!(
        !(asks.0)("a", "g"),
        "once in the base, the overlay no longer has it"
    );
    drop(s);
    assert!(!(asks.0)("a", "g"), "a dropped store places nothing");
}

/// Two T4 nodes `a` and `b` (2 GPUs each) with `b` in the given state.
fn two_nodes(b: NodeState, fail_closed: bool) -> Store {
    let snap = parse_snapshot(
        "inline",
        r#"{"nodes": [{"name": "a", "cpu": "16", "memory": "64Gi", "gpus": 2, "model": "T4"},
                      {"name": "b", "cpu": "16", "memory": "64Gi", "gpus": 2, "model": "T4"}]}"#,
    )
    .unwrap();
    let mut base = snap;
    for d in b.unhealthy.iter() {
        base.cluster.withhold_gpu(1, d);
    }
    base.states = vec![NodeState::healthy(), b];
    // Every feasible node passes, so that the answers show which nodes are feasible.
    let store = Store::new(None, Vec::new())
        .with_fail_closed(fail_closed)
        .with_filter_answer(FilterAnswer::Feasible);
    store.replace(base);
    store
}

fn filter_pod(annotations: serde_json::Value, gpus: u32) -> ExtenderArgs {
    serde_json::from_value(serde_json::json!({
        "Pod": { "metadata": { "name": "p", "namespace": "ns", "uid": "u1", "annotations": annotations },
                 "spec": { "containers": [{ "name": "c", "resources": {
                     "requests": { "cpu": "1", "nvidia.com/gpu": gpus.to_string() } } }] } },
        "NodeNames": ["a", "b"]
    }))
    .unwrap()
}

fn reasons(store: &Store, args: &ExtenderArgs) -> (Vec<String>, String, String) {
    let (out, _) = filter(store, args).unwrap();
    (
        out.node_names
            .iter()
            .flatten()
            .map(|n| n.to_string())
            .collect(),
        out.failed()
            .get("b")
            .map(|r| r.to_string())
            .unwrap_or_default(),
        out.unresolvable()
            .get("b")
            .map(|r| r.to_string())
            .unwrap_or_default(),
    )
}

#[test]
fn stale_telemetry_filters_a_node_as_retryable_only_when_failing_closed() {
    let stale = NodeState {
        telemetry: Telemetry::Stale {
            age: Duration::from_secs(90),
            limit: Duration::from_secs(60),
        },
        ..NodeState::healthy()
    };
    let args = filter_pod(serde_json::json!({}), 1);
    let (passed, _, _) = reasons(&two_nodes(stale.clone(), false), &args);
    assert_eq!(passed, ["a", "b"]);
    let (passed, retry, never) = reasons(&two_nodes(stale, true), &args);
    assert_eq!(passed, ["a"]);
    assert!(
        retry.starts_with("node telemetry is out of date (stale after 60s"),
        "{retry}"
    );
    assert!(never.is_empty());
}

#[test]
fn a_not_ready_node_is_retryable_and_unhealthy_gpus_are_named() {
    let down = NodeState {
        ready: false,
        ..NodeState::healthy()
    };
    let (passed, retry, _) = reasons(
        &two_nodes(down, false),
        &filter_pod(serde_json::json!({}), 1),
    );
    assert_eq!(
        (passed.as_slice(), retry.as_str()),
        (&["a".to_string()][..], "node is not Ready")
    );

    let sick = NodeState {
        unhealthy: DeviceSet::single(1),
        reasons: [(1, "XID 79".to_string())].into(),
        ..NodeState::healthy()
    };
    let store = two_nodes(sick, false);
    let (passed, retry, _) = reasons(&store, &filter_pod(serde_json::json!({}), 2));
    assert_eq!(passed, ["a"]);
    assert!(retry.ends_with("; GPU 1 unhealthy (XID 79)"), "{retry}");
    // One healthy GPU left on b: a one-GPU pod still fits there.
    let (passed, _, _) = reasons(&store, &filter_pod(serde_json::json!({}), 1));
    assert_eq!(passed, ["a", "b"]);
}

#[test]
fn a_planned_pod_passes_only_its_planned_node_and_binds_to_its_planned_devices() {
    let store = two_nodes(NodeState::healthy(), false);
    let planned = serde_json::json!({
        "allot.dev/planned-node": "a", "allot.dev/planned-devices": "1"
    });
    let args = filter_pod(planned, 1);
    let (out, _) = filter(&store, &args).unwrap();
    assert_eq!(out.node_names.as_deref(), Some(&["a"][..]));
    assert_eq!(
        out.unresolvable()["b"],
        "allot planned this pod onto node a (its ScheduleRequest, or room made by consolidation)"
    );
    let bound = bind(
        &store,
        &serde_json::from_value(serde_json::json!({
            "PodName": "p", "PodNamespace": "ns", "PodUID": "u1", "Node": "a"
        }))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        bound.at.devices,
        DeviceSet::single(1),
        "the plan's device, not the default 0"
    );
    store.forget("u1");
    assert!(
        store.view().overlay.is_empty(),
        "a refused Binding leaves no trace"
    );
}

#[test]
fn planned_devices_that_do_not_match_the_demand_are_an_error_for_the_user() {
    let store = two_nodes(NodeState::healthy(), false);
    let args = filter_pod(serde_json::json!({ "allot.dev/planned-devices": "0,1" }), 1);
    let (out, _) = filter(&store, &args).unwrap();
    assert_eq!(
        out.error,
        "allot: annotation allot.dev/planned-devices: 2 devices planned but the pod asks for 1"
    );
    for bad in ["0,x", "16", "0,0", "-1"] {
        assert!(parse_devices("a", bad).is_err(), "{bad:?} accepted");
    }
    assert_eq!(
        parse_devices("a", " 3, 1 "),
        Ok(DeviceSet::single(1).with(3))
    );
    assert_eq!(format_devices(DeviceSet::single(1).with(3)), "1,3");
    let args = filter_pod(serde_json::json!({ "allot.dev/planned-devices": "0,0" }), 2);
    let (out, _) = filter(&store, &args).unwrap();
    assert!(
        out.error
            .contains("is not a comma list of GPU device indices"),
        "{}",
        out.error
    );
}

#[test]
fn the_decided_node_alone_gets_the_top_priority() {
    // Tied raw scores: the decided node (the tie-break's winner) gets 10, the rest 9.
    assert_eq!(top_alone(&[5, 5, 5], 1), vec![9, 10, 9]);
    // Otherwise the others keep their order below it.
    assert_eq!(top_alone(&[0, 50, 100], 2), vec![0, 4, 10]);
    assert_eq!(top_alone(&[100], 0), vec![10]);
}

#[test]
fn a_policy_file_decides_for_learned_and_its_hash_is_in_the_metrics() {
    use crate::policy::learned::features::{COUNT, NAMES};
    use crate::policy::learned::{PolicyFile, Provenance};
    // Prefer the node with the most GPUs left after the placement: spreads, unlike FGD.
    let mut weights = vec![0.0; COUNT];
    weights[0] = 1.0;
    weights[NAMES.iter().position(|n| *n == "gpu_free_after").unwrap()] = 50.0;
    let file = std::sync::Arc::new(PolicyFile::new(weights, 100, Provenance::default()));
    let store = three_nodes(FilterAnswer::Chosen).with_learned(file.clone());
    assert_eq!(store.learned_hash(), file.hash);
    let args = offer(PolicyKind::Learned, 1, serde_json::json!({}));
    let (out, decided) = filter(&store, &args).unwrap();
    assert_eq!(decided, Some(PolicyKind::Learned));
    let passed = out.node_names.unwrap();
    assert_eq!(passed.len(), 1);
    assert_ne!(
        passed[0], "b",
        "b has a GPU taken; spreading picks an empty node"
    );
    let ext = super::server::Extender::new(std::sync::Arc::new(store));
    let text = ext.metrics.render(Duration::ZERO, 3);
    let series = format!(
        "allot_extender_policy_info{{default=\"learned\",shadow=\"\",learned_hash=\"{}\"}} 1",
        file.hash
    );
    assert!(text.contains(&series), "{text}");
}

#[test]
fn outside_its_support_learned_places_as_fgd_and_the_metrics_say_why() {
    use crate::policy::learned::features::{COUNT, NAMES};
    use crate::policy::learned::{PolicyFile, Provenance, Support, WorkloadMix};
    let mut weights = vec![0.0; COUNT];
    weights[0] = 1.0;
    weights[NAMES.iter().position(|n| *n == "gpu_free_after").unwrap()] = -50.0; // packs
    // Trained on half CPU-only pods; this store runs none.
    let support = Support::spanning(&[WorkloadMix([0.5, 0.3, 0.0, 0.0])], 0.05);
    let plain = PolicyFile::new(weights, 100, Provenance::default());
    let file = plain.clone().with_support(support);
    let chosen = |store: &Store, kind| {
        let args = offer(kind, 1, serde_json::json!({}));
        let (out, _) = filter(store, &args).unwrap();
        out.node_names
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    let anywhere = three_nodes(FilterAnswer::Chosen).with_learned(std::sync::Arc::new(plain));
    let fgd = chosen(&anywhere, PolicyKind::Fgd);
    assert_ne!(
        chosen(&anywhere, PolicyKind::Learned),
        fgd,
        "the weights matter here"
    );
    let store = three_nodes(FilterAnswer::Chosen).with_learned(std::sync::Arc::new(file));
    assert_eq!(chosen(&store, PolicyKind::Learned), fgd);
    let ext = super::server::Extender::new(std::sync::Arc::new(store));
    let text = ext.metrics.render(Duration::ZERO, 3);
    let series = "allot_extender_learned_outside_support{statistic=\"cpu_only_pods\"} 1";
    assert!(text.contains(series), "{text}");
}

#[test]
fn the_rebuild_loop_folds_changes_over_ten_builds_between_100_ms_and_a_second() {
    use super::pause_after;
    assert_eq!(pause_after(Duration::ZERO), Duration::from_millis(100));
    assert_eq!(
        pause_after(Duration::from_millis(4)),
        Duration::from_millis(100)
    );
    assert_eq!(
        pause_after(Duration::from_millis(30)),
        Duration::from_millis(300)
    );
    assert_eq!(pause_after(Duration::from_secs(3)), Duration::from_secs(1));
}
