//! Which watch events change what a snapshot reads. A bound pod is updated several times after
//! its bind (kubelet or kwok reporting its status, conditions and IPs) and a node's status is
//! refreshed by its heartbeats, none of which a snapshot reads; waking the rebuild loop for
//! them made it rebuild about ten times a second while pods were being bound, whatever the
//! cluster's size. Nor does a pod allot itself just bound: the extender's overlay already
//! places it where the watch now shows it, until the next rebuild takes it into the base.

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::build::{counts, ready};

/// Whether a reader already places the pod with this UID on this node.
pub type Places = dyn Fn(&str, &str) -> bool + Send + Sync;

/// Placements a reader already accounts for: `(pod UID, node name)`.
pub struct Accounted(pub Box<Places>);

impl std::fmt::Debug for Accounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Accounted")
    }
}

/// Whether `new` changes what a snapshot reads of a bound pod that was `old` (`build.rs`:
/// its spec, with the node and the requests; its annotations, with the devices; its labels;
/// whether it is finished).
pub fn pod_changed(old: &Pod, new: &Pod) -> bool {
    old.spec != new.spec
        || old.metadata.annotations != new.metadata.annotations
        || old.metadata.labels != new.metadata.labels
        || counts(old) != counts(new)
}

/// Whether a pod the store did not have is news to a reader whose `accounted` already
/// places it: not when it is on the node `accounted` has it on.
pub fn pod_added(new: &Pod, accounted: Option<&Accounted>) -> bool {
    let uid = new.metadata.uid.as_deref().unwrap_or_default();
    let node = new.spec.as_ref().and_then(|s| s.node_name.as_deref());
    match (accounted, node) {
        (Some(accounted), Some(node)) if !uid.is_empty() => !(accounted.0)(uid, node),
        _ => true,
    }
}

/// Whether `new` changes what a snapshot reads of a node that was `old`: its labels and
/// annotations (the GPU model), its spec (cordoned), its allocatable and capacity, and whether
/// it is Ready, but not the heartbeat times of its conditions.
pub fn node_changed(old: &Node, new: &Node) -> bool {
    old.metadata.labels != new.metadata.labels
        || old.metadata.annotations != new.metadata.annotations
        || old.spec != new.spec
        || allocatable(old) != allocatable(new)
        || ready(old) != ready(new)
}

fn allocatable(n: &Node) -> Option<(&Option<Quantities>, &Option<Quantities>)> {
    n.status.as_ref().map(|s| (&s.allocatable, &s.capacity))
}

type Quantities = std::collections::BTreeMap<String, Quantity>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(extra: serde_json::Value) -> Pod {
        let mut base = json!({
            "metadata": { "name": "p", "namespace": "ns", "uid": "u1",
                          "annotations": { "allot.dev/gpu-devices": "0" } },
            "spec": { "nodeName": "n1", "containers": [{ "name": "c",
                      "resources": { "requests": { "cpu": "1" } } }] },
            "status": { "phase": "Pending" }
        });
        merge(&mut base, extra);
        serde_json::from_value(base).expect("a pod")
    }

    fn node(extra: serde_json::Value) -> Node {
        let mut base = json!({
            "metadata": { "name": "n1", "labels": { "nvidia.com/gpu.product": "T4" } },
            "status": { "allocatable": { "cpu": "8", "nvidia.com/gpu": "4" },
                        "conditions": [{ "type": "Ready", "status": "True",
                                         "lastHeartbeatTime": "2026-12-06T10:00:00Z" }] }
        });
        merge(&mut base, extra);
        serde_json::from_value(base).expect("a node")
    }

    fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
        match (into, from) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (slot, v) => *slot = v,
        }
    }

    #[test]
    fn a_bound_pod_reporting_its_status_is_no_change() {
        let old = pod(json!({}));
        let running = pod(json!({ "metadata": { "resourceVersion": "9" },
            "status": { "phase": "Running", "podIP": "10.0.0.1",
                        "conditions": [{ "type": "Ready", "status": "True" }] } }));
        assert!(!pod_changed(&old, &running));
    }

    #[test]
    fn what_a_snapshot_reads_of_a_pod_is_a_change() {
        let old = pod(json!({}));
        for new in [
            pod(json!({ "metadata": { "annotations": { "allot.dev/gpu-devices": "1" } } })),
            pod(json!({ "metadata": { "labels": { "app": "x" } } })),
            pod(json!({ "spec": { "nodeName": "n2" } })),
            pod(json!({ "status": { "phase": "Succeeded" } })),
        ] {
            assert!(pod_changed(&old, &new), "{new:?}");
        }
    }

    #[test]
    fn a_pod_new_to_the_store_is_news_unless_the_reader_placed_it_on_that_node() {
        let accounted = Accounted(Box::new(|uid, node| uid == "u1" && node == "n1"));
        assert!(!pod_added(&pod(json!({})), Some(&accounted)));
        assert!(pod_added(
            &pod(json!({ "spec": { "nodeName": "n2" } })),
            Some(&accounted)
        ));
        assert!(pod_added(
            &pod(json!({ "metadata": { "uid": "u2" } })),
            Some(&accounted)
        ));
        assert!(pod_added(&pod(json!({})), None));
    }

    #[test]
    fn a_node_heartbeat_is_no_change_but_readiness_and_capacity_are() {
        let old = node(json!({}));
        let beat = node(
            json!({ "metadata": { "resourceVersion": "7" }, "status": { "conditions": [{
            "type": "Ready", "status": "True", "lastHeartbeatTime": "2026-12-06T10:00:40Z" }] } }),
        );
        assert!(!node_changed(&old, &beat));
        let not_ready =
            node(json!({ "status": { "conditions": [{ "type": "Ready", "status": "False" }] } }));
        assert!(node_changed(&old, &not_ready));
        let fewer = node(json!({ "status": { "allocatable": { "nvidia.com/gpu": "3" } } }));
        assert!(node_changed(&old, &fewer));
        let cordoned = node(json!({ "spec": { "unschedulable": true } }));
        assert!(node_changed(&old, &cordoned));
    }
}
