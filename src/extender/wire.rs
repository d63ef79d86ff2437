//! Wire types of kube-scheduler's extender protocol (k8s.io/kube-scheduler/extender/v1):
//! what arrives on `/filter`, `/prioritize`, `/bind`, `/preempt` and what goes back.
//!
//! The Go structs carry no JSON tags, so keys are the Go field names (PascalCase). Go decodes
//! keys case-insensitively; the aliases accept the camelCase spelling some clients send.
//! Absent and `null` are the same for every optional field, as Go's nil pointers and maps are.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde::{Deserialize, Serialize};

/// Highest score an extender may give (kube-scheduler's `MaxExtenderPriority`).
pub const MAX_EXTENDER_PRIORITY: i64 = 10;

/// A `v1.NodeList` as kube-scheduler sends it (no `apiVersion`/`kind`: Go omits empty ones).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub items: Vec<Node>,
}

/// Body of `/filter` and `/prioritize`. `Nodes` when `nodeCacheCapable: false`, `NodeNames`
/// when true.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtenderArgs {
    #[serde(rename = "Pod", alias = "pod", default)]
    pub pod: Option<Pod>,
    #[serde(rename = "Nodes", alias = "nodes", default)]
    pub nodes: Option<NodeList>,
    #[serde(
        rename = "NodeNames",
        alias = "nodeNames",
        alias = "nodenames",
        default
    )]
    pub node_names: Option<Vec<String>>,
}

/// Answer to `/filter`. Failures retryable later go to `FailedNodes`; those no waiting can
/// fix (wrong GPU model, more GPUs than the node has) to `FailedAndUnresolvableNodes`, which
/// makes kube-scheduler skip preemption on them.
///
/// Built for a 5,000-node answer without a string per node: names are borrowed from the
/// request, and each failure points into `reasons`, one text shared by every node that fails
/// the same way. Serialized as kube-scheduler's `ExtenderFilterResult` (the two failure
/// lists as name -> reason maps).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExtenderFilterResult<'a> {
    pub nodes: Option<NodeList>,
    pub node_names: Option<Vec<&'a str>>,
    /// `(node name, index into reasons)`.
    pub failed_nodes: Vec<(&'a str, usize)>,
    pub failed_and_unresolvable_nodes: Vec<(&'a str, usize)>,
    pub reasons: Vec<String>,
    pub error: String,
}

impl<'a> ExtenderFilterResult<'a> {
    /// `FailedNodes` as the map kube-scheduler reads.
    pub fn failed(&self) -> BTreeMap<&'a str, &str> {
        self.map(&self.failed_nodes)
    }

    /// `FailedAndUnresolvableNodes` as the map kube-scheduler reads.
    pub fn unresolvable(&self) -> BTreeMap<&'a str, &str> {
        self.map(&self.failed_and_unresolvable_nodes)
    }

    fn map(&self, list: &[(&'a str, usize)]) -> BTreeMap<&'a str, &str> {
        list.iter()
            .map(|&(n, r)| (n, self.reasons[r].as_str()))
            .collect()
    }
}

/// One failure list as a JSON object.
struct Failures<'r, 'a>(&'r [(&'a str, usize)], &'r [String]);

impl Serialize for Failures<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|&(n, r)| (n, &self.1[r])))
    }
}

impl Serialize for ExtenderFilterResult<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = s.serialize_struct("ExtenderFilterResult", 5)?;
        out.serialize_field("Nodes", &self.nodes)?;
        out.serialize_field("NodeNames", &self.node_names)?;
        out.serialize_field("FailedNodes", &Failures(&self.failed_nodes, &self.reasons))?;
        out.serialize_field(
            "FailedAndUnresolvableNodes",
            &Failures(&self.failed_and_unresolvable_nodes, &self.reasons),
        )?;
        out.serialize_field("Error", &self.error)?;
        out.end()
    }
}

impl PartialEq for NodeList {
    fn eq(&self, other: &Self) -> bool {
        self.items == other.items
    }
}

/// One entry of the `/prioritize` answer (a `HostPriorityList` is a JSON array of these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPriority<'a> {
    /// Borrowed from the request's node names.
    #[serde(rename = "Host", borrow)]
    pub host: Cow<'a, str>,
    #[serde(rename = "Score")]
    pub score: i64,
}

pub type HostPriorityList<'a> = Vec<HostPriority<'a>>;

/// Body of `/bind`: kube-scheduler delegates the binding of one pod to the extender.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtenderBindingArgs {
    #[serde(rename = "PodName", alias = "podName")]
    pub pod_name: String,
    #[serde(rename = "PodNamespace", alias = "podNamespace")]
    pub pod_namespace: String,
    #[serde(rename = "PodUID", alias = "podUID", alias = "podUid")]
    pub pod_uid: String,
    #[serde(rename = "Node", alias = "node")]
    pub node: String,
}

/// Answer to `/bind`; an empty `Error` means bound.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtenderBindingResult {
    #[serde(rename = "Error", default)]
    pub error: String,
}

/// Victims kube-scheduler proposes on one node (`nodeCacheCapable: false`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Victims {
    #[serde(rename = "Pods", default, deserialize_with = "null_as_default")]
    pub pods: Vec<Pod>,
    #[serde(rename = "NumPDBViolations", default)]
    pub num_pdb_violations: i64,
}

/// A pod named only by UID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaPod {
    #[serde(rename = "UID")]
    pub uid: String,
}

/// Victims by UID (`nodeCacheCapable: true`, and always in the answer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaVictims {
    #[serde(rename = "Pods", default, deserialize_with = "null_as_default")]
    pub pods: Vec<MetaPod>,
    #[serde(rename = "NumPDBViolations", default)]
    pub num_pdb_violations: i64,
}

/// Body of `/preempt`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtenderPreemptionArgs {
    #[serde(rename = "Pod", alias = "pod", default)]
    pub pod: Option<Pod>,
    #[serde(rename = "NodeNameToVictims", default)]
    pub node_name_to_victims: Option<BTreeMap<String, Victims>>,
    #[serde(rename = "NodeNameToMetaVictims", default)]
    pub node_name_to_meta_victims: Option<BTreeMap<String, MetaVictims>>,
}

/// Answer to `/preempt`: the nodes where preemption helps and whom to evict there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtenderPreemptionResult {
    #[serde(rename = "NodeNameToMetaVictims", default)]
    pub node_name_to_meta_victims: BTreeMap<String, MetaVictims>,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_go_field_names() {
        let r = ExtenderFilterResult {
            node_names: Some(vec!["a"]),
            failed_nodes: vec![("b", 0), ("c", 0)],
            reasons: vec!["full".into()],
            ..Default::default()
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"Nodes":null,"NodeNames":["a"],"FailedNodes":{"b":"full","c":"full"},"FailedAndUnresolvableNodes":{},"Error":""}"#
        );
        let args: ExtenderArgs =
            serde_json::from_str(r#"{"Pod":null,"Nodes":null,"NodeNames":["x"]}"#).unwrap();
        assert_eq!(args.node_names, Some(vec!["x".to_string()]));
        let p: HostPriority = serde_json::from_str(r#"{"Host":"h","Score":7}"#).unwrap();
        assert_eq!(p.score, 7);
    }
}
