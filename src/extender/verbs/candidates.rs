//! The nodes a filter or prioritize request offers, resolved against allot's view (each
//! name once, unknown names kept apart), and the requests kube-scheduler should never send.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Node as KubeNode;

use crate::extender::state::View;
use crate::extender::wire::ExtenderArgs;

/// Reason given for a node name allot has no record of.
pub const UNKNOWN_NODE: &str = "node unknown to allot";

/// A request kube-scheduler should never send: answered with 400 and this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerbError {
    #[error("request has no Pod")]
    MissingPod,
    #[error("request has neither Nodes nor NodeNames")]
    NoNodes,
}

impl VerbError {
    pub fn reason(&self) -> &'static str {
        match self {
            VerbError::MissingPod => "MissingPod",
            VerbError::NoNodes => "NoNodes",
        }
    }
}

/// The candidate nodes in request order, each name once, resolved to node indices (`None`:
/// unknown to allot), and the full objects when the request sent them.
pub(super) type Candidates<'a> = (Vec<(&'a str, Option<usize>)>, Option<&'a [KubeNode]>);

pub(super) fn candidates<'a>(
    view: &View,
    args: &'a ExtenderArgs,
) -> Result<Candidates<'a>, VerbError> {
    let (names, objects): (Vec<&str>, _) = match (&args.node_names, &args.nodes) {
        (Some(names), _) => (names.iter().map(String::as_str).collect(), None),
        (None, Some(list)) => (
            list.items
                .iter()
                .map(|n| n.metadata.name.as_deref().unwrap_or(""))
                .collect(),
            Some(list.items.as_slice()),
        ),
        (None, None) => return Err(VerbError::NoNodes),
    };
    // Known names are deduplicated by index (no hashing of request text); unknown ones by name.
    let mut seen = vec![false; view.cluster.len()];
    let mut unknown = HashSet::new();
    let resolved = names
        .into_iter()
        .map(|n| (n, view.node_index(n)))
        .filter(|&(n, i)| match i {
            Some(i) => !std::mem::replace(&mut seen[i], true),
            None => unknown.insert(n),
        })
        .collect();
    Ok((resolved, objects))
}
