//! Policy settings while the extender serves: the default policy decides for pods that name
//! none, a shadow policy is compared at bind and counted, and `--policy-dir` changes are
//! applied, or refused with the previous settings kept.

use std::sync::Arc;
use std::time::Duration;

use super::{Follower, Reload};
use crate::extender::FilterAnswer;
use crate::extender::policies::{PolicySettings, read_dir};
use crate::extender::server::Extender;
use crate::extender::state::Store;
use crate::extender::verbs::{bind, filter};
use crate::extender::wire::{ExtenderArgs, ExtenderBindingArgs};
use crate::policy::PolicyKind;
use crate::policy::learned::features::{COUNT, NAMES};
use crate::policy::learned::{PolicyFile, Provenance};
use crate::snapshot::parse_snapshot;

/// Nodes a, b, c with 2 GPUs each; one GPU on b is taken.
fn cluster(answer: FilterAnswer) -> Store {
    let snap = parse_snapshot(
        "inline",
        r#"{"nodes": [{"name": "a", "cpu": "16", "memory": "64Gi", "gpus": 2, "model": "T4"},
                      {"name": "b", "cpu": "16", "memory": "64Gi", "gpus": 2, "model": "T4"},
                      {"name": "c", "cpu": "16", "memory": "64Gi", "gpus": 2, "model": "T4"}],
            "pods": [{"name": "taken", "node": "b", "cpu": "1", "memory": "1Gi", "gpus": 1,
                      "devices": [0]}]}"#,
    )
    .unwrap();
    let store = Store::new(None, Vec::new()).with_filter_answer(answer);
    store.replace(snap);
    store
}

/// Weights that spread (most GPUs left after the placement wins), unlike FGD or best fit.
fn spreading() -> Arc<PolicyFile> {
    let mut weights = vec![0.0; COUNT];
    weights[0] = 1.0;
    weights[NAMES.iter().position(|n| *n == "gpu_free_after").unwrap()] = 50.0;
    Arc::new(PolicyFile::new(weights, 100, Provenance::default()))
}

/// A one-GPU pod with no policy annotation, offered a, b and c.
fn plain_pod(uid: &str) -> ExtenderArgs {
    serde_json::from_value(serde_json::json!({
        "Pod": { "metadata": { "name": uid, "namespace": "ns", "uid": uid },
                 "spec": { "containers": [{ "name": "c", "resources": {
                     "requests": { "cpu": "1", "nvidia.com/gpu": "1" } } }] } },
        "NodeNames": ["a", "b", "c"] }))
    .unwrap()
}

fn chosen(store: &Store, uid: &str) -> (String, Option<PolicyKind>) {
    let args = plain_pod(uid);
    let (out, decided) = filter(store, &args).unwrap();
    let names = out.node_names.unwrap();
    assert_eq!(names.len(), 1, "{names:?}");
    (names[0].to_string(), decided)
}

fn bind_to(store: &Store, uid: &str, node: &str) {
    let args: ExtenderBindingArgs = serde_json::from_value(serde_json::json!({
        "PodName": uid, "PodNamespace": "ns", "PodUID": uid, "Node": node }))
    .unwrap();
    bind(store, &args).unwrap();
}

#[test]
fn the_default_policy_decides_for_pods_that_name_none() {
    let store = cluster(FilterAnswer::Chosen);
    let best_fit = PolicySettings {
        default: PolicyKind::BestFit,
        ..PolicySettings::default()
    };
    store.set_policies(best_fit);
    assert_eq!(
        chosen(&store, "p1"),
        ("b".into(), Some(PolicyKind::BestFit))
    );
    let learned = PolicySettings {
        default: PolicyKind::Learned,
        shadow: None,
        learned: Some(spreading()),
    };
    store.set_policies(learned);
    let (node, decided) = chosen(&store, "p2");
    assert_eq!(decided, Some(PolicyKind::Learned));
    assert_ne!(node, "b", "spreading avoids the half-used node");
}

#[test]
fn a_shadow_policy_is_decided_at_filter_and_counted_at_bind_without_placing() {
    let store = cluster(FilterAnswer::Feasible);
    store.set_policies(PolicySettings {
        default: PolicyKind::BestFit,
        shadow: Some(PolicyKind::Learned),
        learned: Some(spreading()),
    });
    // Feasible answer: every node passes; kube-scheduler picks. The shadow spreads.
    let args = plain_pod("p1");
    let (out, _) = filter(&store, &args).unwrap();
    assert_eq!(out.node_names.unwrap().len(), 3);
    bind_to(&store, "p1", "b");
    let args = plain_pod("p2");
    let (out, _) = filter(&store, &args).unwrap();
    assert_eq!(out.node_names.unwrap().len(), 2, "b is full now");
    let theirs = store
        .recall_shadow("p2")
        .expect("the shadow decided at filter");
    bind_to(&store, "p2", &theirs);
    let text = Extender::new(Arc::new(store))
        .metrics
        .render(Duration::ZERO, 3);
    for series in [
        "allot_extender_shadow_binds_total{agree=\"false\"} 1",
        "allot_extender_shadow_binds_total{agree=\"true\"} 1",
        "allot_extender_policy_info{default=\"bestfit\",shadow=\"learned\",",
    ] {
        assert!(text.contains(series), "{series} missing in\n{text}");
    }
}

#[test]
fn a_policy_dir_change_is_applied_and_a_bad_one_keeps_the_previous_settings() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    let missing = dir.path().join("absent");
    let err = read_dir(&missing).unwrap_err().to_string();
    assert!(
        err.contains("absent") && err.contains("not a directory"),
        "{err}"
    );
    // Every file absent: FGD, no shadow, the embedded weights.
    assert_eq!(read_dir(dir.path()).unwrap(), PolicySettings::default());
    write("default-policy", "fgd\n");
    let store = cluster(FilterAnswer::Chosen).with_policies(read_dir(dir.path()).unwrap());
    let mut follower = Follower::new(dir.path());
    assert_eq!(follower.check(&store), Reload::Unchanged);

    write("default-policy", "bestfit\n");
    write("shadow-policy", "learned");
    spreading().save(&dir.path().join("policy.json")).unwrap();
    assert_eq!(follower.check(&store), Reload::Applied);
    let now = store.policies();
    assert_eq!(now.default, PolicyKind::BestFit);
    assert_eq!(now.shadow, Some(PolicyKind::Learned));
    assert_eq!(now.learned_hash(), spreading().hash);
    assert_eq!(chosen(&store, "p1").0, "b", "best fit is in force");

    // A typo: refused, named, counted once; the previous settings stay.
    write("default-policy", "tetris");
    let Reload::Refused(why) = follower.check(&store) else {
        panic!("a bad name must be refused");
    };
    let file = dir.path().join("default-policy").display().to_string();
    assert!(
        why.contains(&file) && why.contains("tetris"),
        "names file and value: {why}"
    );
    assert_eq!(follower.check(&store), Reload::Unchanged, "refused once");
    assert_eq!(store.policies().default, PolicyKind::BestFit);

    // A broken policy file is refused the same way; switching back to FGD needs no restart.
    write("default-policy", "fgd");
    write("policy.json", "{ not json");
    assert!(matches!(follower.check(&store), Reload::Refused(w) if w.contains("policy.json")));
    std::fs::remove_file(dir.path().join("policy.json")).unwrap();
    write("shadow-policy", "");
    assert_eq!(follower.check(&store), Reload::Applied);
    let fgd = PolicySettings {
        default: PolicyKind::Fgd,
        ..PolicySettings::default()
    };
    assert_eq!(*store.policies(), fgd);
    let text = Extender::new(Arc::new(store))
        .metrics
        .render(Duration::ZERO, 3);
    for series in [
        "allot_extender_policy_reloads_total{outcome=\"ok\"} 2",
        "allot_extender_policy_reloads_total{outcome=\"BadPolicyName\"} 1",
        "allot_extender_policy_reloads_total{outcome=\"NotAPolicyFile\"} 1",
    ] {
        assert!(text.contains(series), "{series} missing in\n{text}");
    }
}
