//! The controller's pure steps on their own: validation messages name the field, pods are
//! built with deterministic names and the extender's annotations, and read back.
#![cfg(feature = "k8s")]

use allot::controller::pods::{build, observe, pod_name};
use allot::controller::validate::validate;
use allot::crd::{PlannedReplica, ScheduleRequest, ScheduleRequestSpec};
use allot::model::DeviceSet;
use allot::model::{Cluster, ModelCatalog, Node};
use allot::names;

fn cluster() -> Cluster {
    let mut models = ModelCatalog::default();
    let a100 = models.intern("A100").expect("model");
    let t4 = models.intern("T4").expect("model");
    Cluster::new(
        models,
        vec![
            Node::new("a100-0", 64_000, 256 << 30, 8, Some(a100)).expect("node"),
            Node::new("t4-0", 16_000, 64 << 30, 2, Some(t4)).expect("node"),
        ],
    )
}

fn spec(tasks: &str) -> ScheduleRequestSpec {
    serde_saphyr::from_str(&format!("tasks:\n{tasks}")).expect("spec")
}

const TEMPLATE: &str = "  podTemplate: {metadata: {labels: {app: x}}, spec: {containers: [{name: main, image: img}]}}\n";

fn fields(s: &ScheduleRequestSpec) -> Vec<(String, String)> {
    validate("sr", s, &cluster())
        .expect_err("invalid")
        .into_iter()
        .map(|e| (e.field, e.message))
        .collect()
}

#[test]
fn unknown_models_and_oversized_replicas_name_their_field() {
    let s = spec(&format!(
        "- name: a\n  replicas: 1\n  resources: {{cpu: '1', memory: 1Gi, gpu: 1}}\n  gpuModels: [H100]\n{TEMPLATE}- name: b\n  replicas: 1\n  resources: {{cpu: '1', memory: 1Gi, gpu: 4}}\n  gpuModels: [T4]\n{TEMPLATE}"
    ));
    let errors = fields(&s);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "spec.tasks[0].gpuModels[0]");
    assert!(
        errors[0].1.contains("\"H100\"") && errors[0].1.contains("A100, T4"),
        "{}",
        errors[0].1
    );

    let s = spec(&format!(
        "- name: b\n  replicas: 1\n  resources: {{cpu: '1', memory: 1Gi, gpu: 4}}\n  gpuModels: [T4]\n{TEMPLATE}"
    ));
    let errors = fields(&s);
    assert_eq!(errors[0].0, "spec.tasks[0].resources.gpu");
    assert!(
        errors[0]
            .1
            .contains("largest node with an allowed model has 2"),
        "{}",
        errors[0].1
    );
}

#[test]
fn templates_quantities_and_names_are_checked_together() {
    let s = spec(
        "- name: a\n  replicas: 0\n  resources: {cpu: '-1', memory: 1Gi}\n- name: b\n  replicas: 1\n  resources: {cpu: '1', memory: 1Gi}\n  gpuModels: [A100]\n  podTemplate: {spec: {nodeName: n1, containers: [{name: c}]}}\n",
    );
    let got: Vec<String> = fields(&s).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        got,
        [
            "spec.tasks[0].podTemplate.spec",
            "spec.tasks[0].resources.cpu",
            "spec.tasks[1].gpuModels",
            "spec.tasks[1].podTemplate.spec.containers[0].image",
            "spec.tasks[1].podTemplate.spec.nodeName",
        ]
    );
    let long = "x".repeat(64);
    let ok = spec(&format!(
        "- name: a\n  replicas: 1\n  resources: {{cpu: '1', memory: 1Gi}}\n{TEMPLATE}"
    ));
    let e = validate(&long, &ok, &cluster()).expect_err("name too long");
    assert_eq!(e[0].field, "metadata.name");
    assert_eq!(validate("sr", &ok, &cluster()).expect("valid").len(), 1);
}

fn request() -> ScheduleRequest {
    let mut r: ScheduleRequest = serde_saphyr::from_str(&format!(
        "apiVersion: allot.dev/v1alpha1\nkind: ScheduleRequest\nmetadata: {{name: llm, namespace: ml, uid: u-1}}\nspec:\n  tasks:\n  - name: train\n    replicas: 2\n    resources: {{cpu: '8', memory: 32Gi, gpu: 2}}\n    gpuModels: [A100]\n  {TEMPLATE}  - name: eval\n    replicas: 1\n    resources: {{cpu: 500m, memory: 1Gi, gpuMilli: 250}}\n  {TEMPLATE}"
    ))
    .expect("request");
    r.metadata.uid = Some("u-1".into());
    r
}

#[test]
fn pods_carry_the_plan_owner_labels_and_resources() {
    let r = request();
    let entry = PlannedReplica {
        task: "train".into(),
        replica: 1,
        node: "a100-0".into(),
        gpu_devices: vec![2, 3],
    };
    let pod = build(&r, &r.spec.tasks[0], &entry).expect("pod");
    assert_eq!(pod.metadata.name.as_deref(), Some("llm-train-1"));
    assert_eq!(pod_name("llm", "train", 1), "llm-train-1");
    assert_eq!(pod.metadata.namespace.as_deref(), Some("ml"));
    let owner = &pod.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("ScheduleRequest", "llm", Some(true))
    );
    let labels = pod.metadata.labels.as_ref().expect("labels");
    assert_eq!(labels[names::REQUEST_LABEL], "llm");
    assert_eq!(labels[names::TASK_LABEL], "train");
    assert_eq!(labels[names::REPLICA_LABEL], "1");
    assert_eq!(labels["app"], "x", "template labels are kept");
    let notes = pod.metadata.annotations.as_ref().expect("annotations");
    assert_eq!(notes[names::PLANNED_NODE_ANNOTATION], "a100-0");
    assert_eq!(notes[names::PLANNED_DEVICES_ANNOTATION], "2,3");
    assert_eq!(notes[names::GPU_MODELS_ANNOTATION], "A100");
    assert!(!notes.contains_key(names::GPU_MILLI_ANNOTATION));
    let spec = pod.spec.as_ref().expect("spec");
    assert_eq!(spec.scheduler_name.as_deref(), Some(names::SCHEDULER_NAME));
    let res = spec.containers[0].resources.as_ref().expect("resources");
    assert_eq!(
        res.limits.as_ref().expect("limits")[names::GPU_RESOURCE].0,
        "2"
    );
    assert_eq!(res.requests.as_ref().expect("requests")["cpu"].0, "8");

    let back = observe(&pod).expect("ours");
    assert_eq!((back.task.as_str(), back.index), ("train", 1));
    assert_eq!(back.planned_node.as_deref(), Some("a100-0"));
    assert_eq!(back.planned_devices, DeviceSet::single(2).with(3));
    assert!(back.node.is_none() && !back.terminating);
}

#[test]
fn shared_gpu_pods_use_the_milli_annotation_and_no_gpu_resource() {
    let r = request();
    let entry = PlannedReplica {
        task: "eval".into(),
        replica: 0,
        node: "t4-0".into(),
        gpu_devices: vec![1],
    };
    let pod = build(&r, &r.spec.tasks[1], &entry).expect("pod");
    let notes = pod.metadata.annotations.as_ref().expect("annotations");
    assert_eq!(notes[names::GPU_MILLI_ANNOTATION], "250");
    assert_eq!(notes[names::PLANNED_DEVICES_ANNOTATION], "1");
    let res = pod.spec.as_ref().expect("spec").containers[0]
        .resources
        .clone()
        .expect("res");
    assert!(
        res.limits
            .is_none_or(|l| !l.contains_key(names::GPU_RESOURCE))
    );
}

#[test]
fn a_malformed_pod_template_is_reported_at_its_field() {
    let s = spec(
        "- name: a\n  replicas: 1\n  resources: {cpu: '1', memory: 1Gi}\n  podTemplate: {spec: {containers: [{name: 3, image: [x]}]}}\n",
    );
    let errors = fields(&s);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "spec.tasks[0].podTemplate");
    assert!(
        errors[0].1.starts_with("not a pod template: "),
        "{}",
        errors[0].1
    );
}

#[test]
fn the_example_request_is_valid_for_the_controller_and_every_replica_gets_a_pod() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("examples/request.yaml")).expect("example");
    let mut request: ScheduleRequest = serde_saphyr::from_str(&text).expect("a ScheduleRequest");
    request.metadata.uid = Some("u-example".into());
    let snapshot =
        allot::snapshot::load_snapshot(&root.join("examples/cluster.json")).expect("snapshot");
    validate("llm-finetune", &request.spec, &snapshot.cluster).expect("valid");
    for task in &request.spec.tasks {
        let planned = PlannedReplica {
            task: task.name.clone(),
            replica: 0,
            node: "v100-a".into(),
            gpu_devices: Vec::new(),
        };
        let pod = build(&request, task, &planned);
        assert!(pod.is_ok(), "task {}: {:?}", task.name, pod.err());
    }
}
