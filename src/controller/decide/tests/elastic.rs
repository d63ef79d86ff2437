//! Elastic tasks (`minReplicas`/`maxReplicas`): the minimum is placed first (all together
//! under a gang), the replicas above it take what is left and stay outside the gang, and the
//! status reads the request as whole at what it got while the rest waits for capacity.

use super::*;
use crate::controller::status::planned;
use crate::crd::condition::{PLANNED, REASON_PLAN_FOUND};
use k8s_openapi::jiff::Timestamp;

/// A request of `tasks`, each `(name, replica counts)` with the counts as YAML fields
/// (`"replicas: 2"`, `"minReplicas: 0, maxReplicas: 2"`); every replica asks 4 cores, 8 GiB
/// and 4 whole GPUs.
fn request(gang: bool, tasks: &[(&str, &str)]) -> ScheduleRequestSpec {
    let tasks: String = tasks
        .iter()
        .map(|(name, counts)| {
            format!(
                "- {{name: {name}, {counts}, resources: {{cpu: '4', memory: 8Gi, gpu: 4}}, podTemplate: {{spec: {{containers: [{{name: main, image: img}}]}}}}}}\n"
            )
        })
        .collect();
    serde_saphyr::from_str(&format!("gang: {gang}\ntasks:\n{tasks}")).expect("spec")
}

/// One task `train` between `min` and `max` replicas.
fn elastic(gang: bool, min: i32, max: i32) -> ScheduleRequestSpec {
    request(
        gang,
        &[("train", &format!("minReplicas: {min}, maxReplicas: {max}"))],
    )
}

#[test]
fn an_elastic_gang_places_its_minimum_and_what_else_fits() {
    // Three nodes of 4 GPUs: room for 3 of the 5 replicas the task may have.
    let c = cluster(3);
    let d = run(
        &elastic(true, 2, 5),
        vec![],
        &c,
        &[NodeHealth::default(); 3],
        &HashSet::new(),
    );
    assert_eq!((d.replicas, d.min_replicas), (5, 2));
    assert!(!d.gang_blocked, "the minimum fits: {:?}", d.unplaced);
    let mut created: Vec<i32> = d.create.iter().map(|e| e.replica).collect();
    created.sort();
    assert_eq!(
        created,
        [0, 1, 2],
        "the minimum (0, 1) and one elastic replica"
    );
    let left: Vec<i32> = d.unplaced.iter().map(|u| u.replica).collect();
    assert_eq!(left, [3, 4]);
    assert_eq!(d.elastic_unplaced, 2);
    let status = planned(
        &Default::default(),
        Some(1),
        &d,
        &Observed { pods: vec![] },
        &Timestamp::now(),
    );
    let plan = status
        .conditions
        .iter()
        .find(|c| c.type_ == PLANNED)
        .expect("Planned");
    assert_eq!(
        (plan.status.as_str(), plan.reason.as_str()),
        ("True", REASON_PLAN_FOUND)
    );
    assert!(
        plan.message.contains("2 elastic ones wait for capacity"),
        "{}",
        plan.message
    );
    let counts = status.counts.expect("counts");
    assert_eq!(
        (counts.min_replicas, counts.replicas, counts.planned),
        (2, 5, 3)
    );
}

#[test]
fn an_elastic_request_with_nothing_placed_is_pending_not_running() {
    // Minimum 0: nothing is required, but nothing running is not "Running".
    let c = cluster(1);
    let mut full = c.clone();
    let taken = PodDemand {
        cpu_milli: 0,
        memory_bytes: 0,
        gpu: GpuDemand::Whole { count: 4 },
        models: ModelSet::ANY,
    };
    full.place(
        &taken,
        Placement {
            node: 0,
            devices: DeviceSet::EMPTY.with(0).with(1).with(2).with(3),
        },
    )
    .expect("fill the node");
    let d = run(
        &elastic(false, 0, 2),
        vec![],
        &full,
        &[NodeHealth::default()],
        &HashSet::new(),
    );
    assert!(d.create.is_empty() && d.elastic_unplaced == 2);
    let status = planned(
        &Default::default(),
        Some(1),
        &d,
        &Observed { pods: vec![] },
        &Timestamp::now(),
    );
    assert_eq!(status.phase, crate::crd::Phase::Pending);
}

#[test]
fn an_elastic_gang_whose_minimum_does_not_fit_places_nothing() {
    let c = cluster(2);
    let d = run(
        &elastic(true, 3, 4),
        vec![],
        &c,
        &[NodeHealth::default(); 2],
        &HashSet::new(),
    );
    assert!(d.gang_blocked);
    assert!(
        d.create.is_empty(),
        "no elastic replica without its minimum"
    );
    assert_eq!(d.unplaced.len(), 4);
}

#[test]
fn the_minimum_comes_before_elastic_replicas_of_another_task() {
    // Two tasks share two nodes: `a` is elastic 0..2, `b` needs both of its replicas.
    let s = request(
        false,
        &[
            ("a", "minReplicas: 0, maxReplicas: 2"),
            ("b", "replicas: 2"),
        ],
    );
    let c = cluster(2);
    let d = run(&s, vec![], &c, &[NodeHealth::default(); 2], &HashSet::new());
    let mut created: Vec<&str> = d.create.iter().map(|e| e.task.as_str()).collect();
    created.sort();
    assert_eq!(
        created,
        ["b", "b"],
        "elastic replicas take only what is left"
    );
    assert_eq!(d.elastic_unplaced, 2);
}
