//! Fixtures of the decide tests: a cluster of A100 nodes, a one-task request, running pods
//! placed as the live snapshot would place them, and one call of `decide` over them all.

use super::*;
use crate::controller::validate::validate;
use crate::model::Node;

const GIB: u64 = 1 << 30;

/// `n` nodes `node-0..` with 32 cores, 128 GiB and 4 A100 each.
pub(super) fn cluster(n: usize) -> Cluster {
    let mut models = crate::model::ModelCatalog::default();
    let a100 = models.intern("A100").expect("model");
    let nodes = (0..n)
        .map(|i| Node::new(format!("node-{i}"), 32_000, 128 * GIB, 4, Some(a100)).expect("node"))
        .collect();
    Cluster::new(models, nodes)
}

pub(super) fn spec(gang: bool, replicas: i32, gpus: u32) -> ScheduleRequestSpec {
    serde_saphyr::from_str(&format!(
        "gang: {gang}\ntasks:\n- name: train\n  replicas: {replicas}\n  resources: {{cpu: '4', memory: 8Gi, gpu: {gpus}}}\n  podTemplate: {{spec: {{containers: [{{name: main, image: img}}]}}}}\n"
    ))
    .expect("spec")
}

pub(super) fn running(index: i32, node: &str, devices: &[usize]) -> ObservedPod {
    let set = devices.iter().fold(DeviceSet::EMPTY, |s, &d| s.with(d));
    ObservedPod {
        name: format!("sr-train-{index}"),
        task: "train".into(),
        index,
        node: Some(node.into()),
        planned_node: Some(node.into()),
        planned_devices: set,
        bound_devices: Some(set),
        phase: PodPhase::Running,
        ready: true,
        terminating: false,
    }
}

/// Place the observed bound pods into the cluster, as the live snapshot would.
pub(super) fn with_pods(
    mut c: Cluster,
    demand_gpus: u32,
    pods: &[ObservedPod],
) -> (Cluster, HashSet<String>) {
    let mut accounted = HashSet::new();
    for p in pods {
        let Some(i) = c
            .nodes()
            .iter()
            .position(|n| Some(&*n.name) == p.node.as_deref())
        else {
            continue;
        };
        let demand = PodDemand {
            cpu_milli: 4000,
            memory_bytes: 8 * GIB,
            gpu: GpuDemand::Whole { count: demand_gpus },
            models: ModelSet::ANY,
        };
        c.place(
            &demand,
            Placement {
                node: i,
                devices: p.planned_devices,
            },
        )
        .expect("place");
        accounted.insert(p.name.clone());
    }
    (c, accounted)
}

pub(super) fn run(
    s: &ScheduleRequestSpec,
    pods: Vec<ObservedPod>,
    c: &Cluster,
    health: &[NodeHealth],
    accounted: &HashSet<String>,
) -> Decision {
    let replicas = validate("sr", s, c).expect("valid");
    let world = World {
        cluster: c,
        health,
        accounted,
    };
    decide(
        &replicas,
        s.tasks.len(),
        &Observed { pods },
        &world,
        &PlanOptions::default(),
        "2026-11-22T00:00:00Z",
    )
    .expect("decide")
}

pub(super) fn nodes_of(entries: &[PlannedReplica]) -> Vec<(i32, &str)> {
    entries
        .iter()
        .map(|e| (e.replica, e.node.as_str()))
        .collect()
}
