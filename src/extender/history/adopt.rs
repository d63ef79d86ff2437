//! Binds made through another replica: kube-scheduler may call any extender replica, and
//! only the holder of the history Lease records, so the holder also takes in, from the pod
//! watch, the pods allot bound (they carry the devices annotation its bind writes) since it
//! began to lead that its own handlers never saw.

use k8s_openapi::api::core::v1::Pod;

use super::Seen;
use crate::extender::state::Store;
use crate::live::pod::parse_pod_with;
use crate::names::GPU_DEVICES_ANNOTATION;

/// How far back each look reaches past the previous one: the pod watch shows a bind later
/// than the bind itself, by far less than this.
pub const OVERLAP_SECS: u64 = 30;

/// When `pod` was bound (Unix seconds): its `PodScheduled` condition, which the API server
/// sets on binding; `None` if it has none.
pub fn bound_at(pod: &Pod) -> Option<u64> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let scheduled = conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "True")?;
    let t = scheduled.last_transition_time.as_ref()?;
    u64::try_from(t.0.as_second()).ok()
}

/// `pod` as a bind record, if allot bound it (it has a node and allot's devices
/// annotation) at `after` or later and it reads as a pod allot accounts. The bind time is
/// its `PodScheduled` condition's, or, without one, its creation time.
pub fn adopted(store: &Store, pod: &Pod, after: u64) -> Option<Seen> {
    let devices = pod
        .metadata
        .annotations
        .as_ref()?
        .get(GPU_DEVICES_ANNOTATION)?;
    let node = pod.spec.as_ref()?.node_name.as_deref()?;
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| u64::try_from(t.0.as_second()).ok());
    let at = bound_at(pod).or(created)?;
    if at < after {
        return None;
    }
    let req = parse_pod_with(pod, &store.view().cluster.models, store.policies().default).ok()?;
    let mut seen = super::seen(store, &req, created);
    seen.node = node.to_string();
    seen.devices = devices
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect::<Vec<_>>()
        .join("|");
    seen.at = at;
    Some(seen)
}
