//! Every label and annotation allot reads or writes on Kubernetes objects, in one place: the
//! extender, the controller and the agent agree on these names and nothing else.

/// Extended resource for whole GPUs (NVIDIA device plugin).
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// Extended resource for a share of one GPU, served by allot's device plugin on its nodes: a
/// container asks for 1 and the pod says how much in [`GPU_MILLI_ANNOTATION`]. Each GPU is
/// advertised as a number of share slots (`allot agent --share-slots`), so kubelet counts
/// sharing containers while allot accounts the milli-GPU.
pub const GPU_SHARE_RESOURCE: &str = "allot.dev/gpu-share";
/// Pod annotation written by the node agent once kubelet has been handed the pod's GPUs
/// (`Allocate`), so an agent that restarts never hands a pod's devices out again.
pub const GPU_ALLOCATED_ANNOTATION: &str = "allot.dev/gpu-allocated";
/// Pod annotation: a share of one GPU in milli-GPU, 1..=999.
pub const GPU_MILLI_ANNOTATION: &str = "allot.dev/gpu-milli";
/// Pod annotation: allowed GPU models, a comma list (`A100,H100`).
pub const GPU_MODELS_ANNOTATION: &str = "allot.dev/gpu-models";
/// Pod annotation: the policy that scores this pod (a policy name, e.g. `fgd`).
pub const POLICY_ANNOTATION: &str = "allot.dev/policy";
/// Pod annotation written at bind time: the GPU device indices the pod was given, a comma
/// list (`0,1`). Read back when the pod is accounted on its node, so allocation is exact.
pub const GPU_DEVICES_ANNOTATION: &str = "allot.dev/gpu-devices";
/// Node label set by an administrator: the node's GPU model, overriding [`GPU_PRODUCT_LABEL`]
/// and the agent's report (what `allot.dev/gpu-models` is matched against).
pub const GPU_MODEL_LABEL: &str = "allot.dev/gpu-model";
/// Node label set by NVIDIA's GPU feature discovery: the GPU product, NVML's name with spaces
/// as '-' (`NVIDIA-A100-SXM4-80GB`). The node's model unless [`GPU_MODEL_LABEL`] is set.
pub const GPU_PRODUCT_LABEL: &str = "nvidia.com/gpu.product";

/// Pod label: the ScheduleRequest (same namespace) that created the pod.
pub const REQUEST_LABEL: &str = "allot.dev/schedule-request";
/// Pod label: the task of the ScheduleRequest the pod is a replica of.
pub const TASK_LABEL: &str = "allot.dev/task";
/// Pod label: the replica index within its task.
pub const REPLICA_LABEL: &str = "allot.dev/replica";
/// Pod annotation set by the controller: the node the request's plan chose. The extender
/// passes only this node in filter, so the pod follows the plan.
pub const PLANNED_NODE_ANNOTATION: &str = "allot.dev/planned-node";
/// Pod annotation set by the controller: the GPU devices the plan chose on the planned node
/// (comma list); the extender binds with them when they are still free.
pub const PLANNED_DEVICES_ANNOTATION: &str = "allot.dev/planned-devices";

/// The scheduler name pods use to be scheduled by the allot profile.
pub const SCHEDULER_NAME: &str = "allot";

/// Pod label set by the pod's owner: `"true"` lets the consolidator (`allot controller
/// --consolidation`) evict the pod to make room for a waiting one. Only pods that a controller
/// recreates (an owner reference with `controller: true`) and that are not a ScheduleRequest
/// gang's member are ever moved.
pub const MOVABLE_LABEL: &str = "allot.dev/movable";
/// Pod annotation written by the consolidator on a waiting pod: what it planned or did for it
/// (JSON, `controller/consolidate/record.rs`). The record of a consolidation lives in the API
/// server, so a controller restarted in the middle of one resumes it instead of starting over.
pub const CONSOLIDATION_ANNOTATION: &str = "allot.dev/consolidation";
/// Pod label on a waiting pod while the room the consolidator freed is held for it; the
/// extender watches pods with this label and keeps their planned node and devices for them
/// until the record's deadline.
pub const CONSOLIDATING_LABEL: &str = "allot.dev/consolidating";
/// Pod annotation on an elastic replica of a ScheduleRequest that the controller gave back to
/// a request of higher priority (`namespace/name`) short of its minimum: while it terminates,
/// that request plans on its room.
pub const GIVEN_BACK_TO_ANNOTATION: &str = "allot.dev/given-back-to";
/// Pod annotation on the pods a request created into room given back to it: how many times
/// the controller updated it since that room is free (each update makes kube-scheduler try
/// the pod again at once); removed after the last.
pub const ROOM_GIVEN_BACK_ANNOTATION: &str = "allot.dev/room-given-back";
