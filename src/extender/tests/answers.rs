//! What /filter answers under each `--filter-answer`: the chosen node is the one prioritize
//! ranks first, and `auto` leaves pods with soft preferences to kube-scheduler's scoring.

use super::*;

/// Nodes a, b and c, two T4 each, with one GPU of b taken.
pub(super) fn three_nodes(answer: FilterAnswer) -> Store {
    let snap = parse_snapshot(
        "inline",
        r#"{"nodes": [{"name": "a", "cpu": "16", "memory": "64Gi", "gpus": 2, "model": "T4"},
                      {"name": "b", "cpu": "16", "memory": "64Gi", "gpus": 2, "model": "T4"},
                      {"name": "c", "cpu": "16", "memory": "64Gi", "gpus": 2, "model": "T4"}]}"#,
    )
    .unwrap();
    let store = Store::new(None, Vec::new()).with_filter_answer(answer);
    store.replace(snap);
    let taken = GpuDemand::Whole { count: 1 };
    store.record(&request("taken", taken), "b").unwrap();
    store
}

/// A pod asking for `gpus` whole GPUs under `policy`, with `spec` merged into its spec,
/// offered nodes a, b and c.
pub(super) fn offer(policy: PolicyKind, gpus: u32, spec: serde_json::Value) -> ExtenderArgs {
    let mut pod = serde_json::json!({
        "metadata": { "name": "p", "namespace": "ns", "uid": "u1",
                      "annotations": { "allot.dev/policy": policy.name() } },
        "spec": { "containers": [{ "name": "c", "resources": {
            "requests": { "cpu": "1", "nvidia.com/gpu": gpus.to_string() } } }] }
    });
    for (k, v) in spec.as_object().into_iter().flatten() {
        pod["spec"][k] = v.clone();
    }
    serde_json::from_value(serde_json::json!({ "Pod": pod, "NodeNames": ["a", "b", "c"] })).unwrap()
}

#[test]
fn the_chosen_answer_is_the_node_prioritize_ranks_first() {
    let store = three_nodes(FilterAnswer::Chosen);
    // Random draws anew on every call, so its two answers need not agree.
    for policy in PolicyKind::ALL
        .into_iter()
        .filter(|&p| p != PolicyKind::Random)
    {
        let args = offer(policy, 1, serde_json::json!({}));
        let (out, decided) = filter(&store, &args).unwrap();
        let passed = out.node_names.unwrap();
        assert_eq!(passed.len(), 1, "{policy:?}: {passed:?}");
        assert_eq!(decided, Some(policy));
        let (ranked, _) = prioritize(&store, &args).unwrap();
        let score = |n: &str| ranked.iter().find(|h| h.host == n).map(|h| h.score);
        assert_eq!(score(passed[0]), Some(10), "{policy:?}: {ranked:?}");
        let (again, _) = filter(&store, &args).unwrap();
        assert_eq!(
            again.node_names.unwrap(),
            passed,
            "{policy:?}: ties break the same way"
        );
    }
    let args = offer(PolicyKind::BestFit, 1, serde_json::json!({}));
    let (out, _) = filter(&store, &args).unwrap();
    assert_eq!(
        out.node_names.unwrap(),
        ["b"],
        "best fit takes the half-used node"
    );
    // Infeasible nodes keep their reasons; the choice is among the feasible ones.
    let args = offer(PolicyKind::BestFit, 2, serde_json::json!({}));
    let (out, _) = filter(&store, &args).unwrap();
    let passed = out.node_names.clone().unwrap();
    assert!(passed == ["a"] || passed == ["c"], "{passed:?}");
    assert_eq!(out.failed()["b"], "pod needs 2 whole GPUs; fewer are free");
}

#[test]
fn auto_leaves_pods_with_soft_preferences_to_kube_scheduler_scoring() {
    let preferred = serde_json::json!({ "affinity": { "nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{ "weight": 1, "preference": {
            "matchExpressions": [{ "key": "zone", "operator": "In", "values": ["x"] }] } }] } } });
    let spread = |when: &str| {
        serde_json::json!({ "topologySpreadConstraints": [{ "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": when }] })
    };
    let anti = serde_json::json!({ "affinity": { "podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{ "weight": 1, "podAffinityTerm": {
            "topologyKey": "kubernetes.io/hostname" } }] } } });
    let required = serde_json::json!({ "affinity": { "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [{
            "matchExpressions": [{ "key": "zone", "operator": "In", "values": ["x"] }] }] } } } });
    let cases = [
        (serde_json::json!({}), 1, FilterAnswer::Auto),
        (required, 1, FilterAnswer::Auto),
        (spread("DoNotSchedule"), 1, FilterAnswer::Auto),
        (spread("ScheduleAnyway"), 3, FilterAnswer::Auto),
        (preferred.clone(), 3, FilterAnswer::Auto),
        (anti, 3, FilterAnswer::Auto),
        (preferred, 1, FilterAnswer::Chosen),
        (serde_json::json!({}), 3, FilterAnswer::Feasible),
    ];
    for (spec, want, answer) in cases {
        let store = three_nodes(answer);
        let args = offer(PolicyKind::Fgd, 1, spec.clone());
        let (out, decided) = filter(&store, &args).unwrap();
        let passed = out.node_names.unwrap();
        assert_eq!(passed.len(), want, "{answer:?} {spec}: {passed:?}");
        assert_eq!(decided.is_some(), want == 1, "{answer:?} {spec}");
    }
}
