//! `ScheduleRequest`: a batch of GPU tasks the controller plans as a whole (spec in, plan and
//! solver facts out through the status subresource).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most tasks one request may hold. Bounds the apiserver's CEL cost estimate for the
/// quadratic unique-name rule; a batch wider than this is better split into several requests.
pub const MAX_TASKS: usize = 64;

/// Most replicas one request may ask for, over all its tasks: a bound on the plan's size and
/// the pods created. The schema holds each task to it and a CEL rule the total, so the
/// apiserver refuses a larger request before the controller sees it.
pub const MAX_REPLICAS: i64 = 100_000;

/// Most GPU models one task may accept; a longer allow-list is a sign of a typo, not a need.
pub const MAX_GPU_MODELS: usize = 16;

/// A DNS label (RFC 1123): task names end up in pod names.
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// Condition types and reasons written to `status.conditions`. Reasons are CamelCase so they
/// pass the apiserver's condition-reason pattern and can double as event reasons.
pub mod condition {
    /// The spec passed the controller's checks beyond what the CRD schema enforces.
    pub const VALIDATED: &str = "Validated";
    /// The solver produced a plan for the current generation.
    pub const PLANNED: &str = "Planned";
    /// Every planned replica has a pod bound to its node.
    pub const SCHEDULED: &str = "Scheduled";
    /// Every replica's pod is running and ready.
    pub const READY: &str = "Ready";

    /// `Validated=True`.
    pub const REASON_SPEC_VALID: &str = "SpecValid";
    /// `Validated=False`: the message names the offending field.
    pub const REASON_SPEC_INVALID: &str = "SpecInvalid";
    /// `Planned=True`: the solver placed every replica it had to.
    pub const REASON_PLAN_FOUND: &str = "PlanFound";
    /// `Planned=False`: no placement satisfies the request (see `status.unplaced`).
    pub const REASON_INFEASIBLE: &str = "Infeasible";
    /// `Planned=True` with a gap: the solver hit its time limit and returned its best plan.
    pub const REASON_SOLVER_TIMED_OUT: &str = "SolverTimedOut";
    /// `Scheduled=True`.
    pub const REASON_PODS_BOUND: &str = "PodsBound";
    /// `Scheduled=False` or `Ready=False` while pods are still on their way.
    pub const REASON_PODS_PENDING: &str = "PodsPending";
    /// `Ready=True`.
    pub const REASON_PODS_READY: &str = "PodsReady";
    /// `Ready=False`: at least one pod failed.
    pub const REASON_PODS_FAILED: &str = "PodsFailed";
    /// `Scheduled=False`: a planned node went away or its telemetry went stale; re-planning.
    pub const REASON_NODE_LOST: &str = "NodeLost";
}

/// A batch of GPU tasks to place together.
#[allow(
    clippy::duplicated_attributes,
    reason = "clippy reads repeated keys across separate printcolumn(...) entries as duplicates"
)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "allot.dev",
    version = "v1alpha1",
    kind = "ScheduleRequest",
    plural = "schedulerequests",
    shortname = "sr",
    category = "allot",
    namespaced,
    status = "ScheduleRequestStatus",
    derive = "PartialEq",
    doc = "A batch of GPU tasks that allot plans as a whole",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Min",
        type_ = "integer",
        json_path = ".status.counts.minReplicas",
        description = "Replicas that must be placed, over all tasks"
    ),
    printcolumn(
        name = "Max",
        type_ = "integer",
        json_path = ".status.counts.replicas",
        description = "Replicas requested over all tasks (elastic ones at their maximum)"
    ),
    printcolumn(
        name = "Planned",
        type_ = "integer",
        json_path = ".status.counts.planned",
        description = "Replicas with a node in the current plan"
    ),
    printcolumn(
        name = "Running",
        type_ = "integer",
        json_path = ".status.counts.running"
    ),
    printcolumn(
        name = "Gap",
        type_ = "number",
        json_path = ".status.solver.gap",
        description = "Relative optimality gap of the last solve"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.message",
        priority = 1
    )
)]
#[x_kube(validation = Rule::new(
    "self.tasks.all(t, self.tasks.exists_one(u, u.name == t.name))"
).message("task names must be unique within a request").field_path(".tasks"))]
// The literal is MAX_REPLICAS (a test holds them equal).
#[x_kube(validation = Rule::new(
    "self.tasks.map(t, has(t.maxReplicas) ? t.maxReplicas : (has(t.replicas) ? t.replicas : 0)).sum() <= 100000"
)
    .message("at most 100000 replicas in total per request").field_path(".tasks"))]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRequestSpec {
    /// What the solver maximises.
    #[serde(default)]
    pub objective: Objective,
    /// Higher goes first when requests compete for the same GPUs.
    #[serde(default)]
    pub priority: i32,
    /// All replicas of all tasks are placed, or none are.
    #[serde(default)]
    pub gang: bool,
    /// The tasks of this request; names are unique.
    #[schemars(length(min = 1, max = MAX_TASKS))]
    pub tasks: Vec<TaskSpec>,
}

/// What the solver optimises for a request.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Objective {
    /// Place as many replicas as possible (priority-weighted).
    #[default]
    MaxPlaced,
    /// Use as few nodes as possible, leaving whole nodes free.
    Pack,
    /// Spread replicas over nodes to limit the blast radius of one node.
    Spread,
}

/// One task: identical pods with the same resources, `replicas` of them or, for an elastic
/// task, between `minReplicas` and `maxReplicas` as capacity allows.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new(
    "has(self.replicas) != (has(self.minReplicas) || has(self.maxReplicas))"
).message("set replicas, or minReplicas and maxReplicas for an elastic task (not both)"))]
#[x_kube(validation = Rule::new("has(self.minReplicas) == has(self.maxReplicas)")
    .message("an elastic task sets both minReplicas and maxReplicas"))]
#[x_kube(validation = Rule::new(
    "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas"
).message("minReplicas must not exceed maxReplicas"))]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    /// DNS label, unique within the request; pods are named `<request>-<task>-<replica>`.
    #[schemars(length(min = 1, max = 63), pattern(DNS_LABEL_PATTERN))]
    pub name: String,
    /// How many pods of this task to run (the minimum and the maximum at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_REPLICAS))]
    pub replicas: Option<i32>,
    /// An elastic task's minimum: placed before any replica above it (all together or none
    /// when the request is a gang).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_REPLICAS))]
    pub min_replicas: Option<i32>,
    /// An elastic task's maximum: the replicas above the minimum are placed as capacity frees
    /// up, after every replica that is not elastic, and outside the gang.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_REPLICAS))]
    pub max_replicas: Option<i32>,
    /// Resources of one replica.
    pub resources: TaskResources,
    /// GPU models this task accepts (`A100-SXM4-80GB`, or as NVML or GFD spell it); empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_GPU_MODELS), inner(length(min = 1, max = 128)))]
    pub gpu_models: Vec<String>,
    /// Template of the pods (metadata and spec), checked by the apiserver when the pods are
    /// created; allot fills in the scheduler name, node and GPU annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "opaque_pod_template")]
    pub pod_template: Option<PodTemplate>,
}

/// Resources of one replica. A replica asks for whole GPUs (`gpu`) or a share of one
/// (`gpuMilli`), never both.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("!(has(self.gpu) && has(self.gpuMilli))")
    .message("set either gpu (whole GPUs) or gpuMilli (a share of one GPU), not both"))]
#[serde(rename_all = "camelCase")]
pub struct TaskResources {
    /// CPU per replica, as a Kubernetes quantity (`500m`, `2`).
    pub cpu: Quantity,
    /// Memory per replica, as a Kubernetes quantity (`512Mi`, `4Gi`).
    pub memory: Quantity,
    /// Whole GPUs per replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<u32>,
    /// Thousandths of one GPU per replica, for GPU sharing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 999))]
    pub gpu_milli: Option<u32>,
}

/// Where a request stands.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    /// Accepted, not yet planned.
    #[default]
    Pending,
    /// A plan exists; pods are being created or bound.
    Planned,
    /// Every planned pod is running.
    Running,
    /// Every pod finished successfully.
    Succeeded,
    /// No placement satisfies the request; see `unplaced`.
    Infeasible,
    /// A pod failed or the spec is invalid; see `conditions`.
    Failed,
}

impl Phase {
    /// No further transitions are expected without a spec change.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

/// Observed state, written by the controller with server-side apply.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRequestStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Coarse state; `conditions` carry the detail.
    #[serde(default)]
    pub phase: Phase,
    /// Validated, Planned, Scheduled and Ready (see `condition`), merged by type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// One entry per placed replica.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<PlannedReplica>,
    /// Facts about the last solve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solver: Option<SolverStats>,
    /// Replica counts for the printer columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<ReplicaCounts>,
    /// Replicas the plan leaves out, each with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unplaced: Vec<UnplacedReplica>,
    /// Recent failovers, oldest first (bounded): which replica left which node, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moves: Vec<ReplicaMove>,
    /// One human-readable line on the current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where one replica goes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlannedReplica {
    /// Task name.
    pub task: String,
    /// Replica index within the task, from 0.
    #[schemars(range(min = 0))]
    pub replica: i32,
    /// Node name.
    pub node: String,
    /// GPU indices on that node (one entry for a GPU share).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu_devices: Vec<u32>,
}

/// Facts about the last solve.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SolverStats {
    /// Objective value of the returned plan.
    pub objective: f64,
    /// Best proven bound on the objective.
    pub bound: f64,
    /// Relative gap between objective and bound (0 = proven optimal).
    pub gap: f64,
    /// Wall-clock time of the solve.
    pub millis: u64,
    /// Which solver or policy produced the plan.
    pub backend: String,
    /// The solver stopped at its time limit.
    pub timed_out: bool,
}

/// Replica counts over all tasks.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaCounts {
    /// Replicas requested, elastic tasks at their maximum.
    pub replicas: i32,
    /// Replicas that must be placed: elastic tasks at their minimum.
    #[serde(default)]
    pub min_replicas: i32,
    /// Replicas with a node in the plan.
    pub planned: i32,
    /// Replicas whose pod is bound to its node.
    pub bound: i32,
    /// Replicas whose pod is running.
    pub running: i32,
    /// Replicas whose pod failed.
    pub failed: i32,
}

/// A replica the plan leaves out.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UnplacedReplica {
    /// Task name.
    pub task: String,
    /// Replica index within the task, from 0.
    #[schemars(range(min = 0))]
    pub replica: i32,
    /// Why it was not placed (CamelCase, bounded set).
    pub reason: String,
}

/// A replica taken off a node that failed it and re-planned elsewhere.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaMove {
    /// Task name.
    pub task: String,
    /// Replica index within the task, from 0.
    #[schemars(range(min = 0))]
    pub replica: i32,
    /// The node the replica left.
    pub from: String,
    /// The node the new plan chose; absent when nothing fits right now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Why (CamelCase, bounded set: NodeNotReady, NodeDeleted, TelemetryStale, GpuUnhealthy,
    /// PlanStale).
    pub reason: String,
    /// When the controller moved it (RFC 3339).
    pub time: String,
}

mod replicas;
mod template;
pub use template::PodTemplate;
use template::opaque_pod_template;

#[cfg(test)]
mod tests;
