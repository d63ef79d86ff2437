//! The ScheduleRequest CRD: spec round trips, and the generated schema's fields and validation
//! rules.

use super::*;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray,
};
use kube::CustomResourceExt;

fn sample_spec() -> ScheduleRequestSpec {
    ScheduleRequestSpec {
        objective: Objective::Pack,
        priority: 5,
        gang: true,
        tasks: vec![
            TaskSpec {
                name: "trainer".into(),
                replicas: Some(2),
                min_replicas: None,
                max_replicas: None,
                resources: TaskResources {
                    cpu: Quantity("4".into()),
                    memory: Quantity("16Gi".into()),
                    gpu: Some(2),
                    gpu_milli: None,
                },
                gpu_models: vec!["NVIDIA A100-SXM4-80GB".into()],
                pod_template: None,
            },
            TaskSpec {
                name: "eval".into(),
                replicas: Some(1),
                min_replicas: None,
                max_replicas: None,
                resources: TaskResources {
                    cpu: Quantity("500m".into()),
                    memory: Quantity("2Gi".into()),
                    gpu: None,
                    gpu_milli: Some(250),
                },
                gpu_models: vec![],
                pod_template: None,
            },
        ],
    }
}

fn crd() -> CustomResourceDefinition {
    ScheduleRequest::crd()
}

fn schema() -> JSONSchemaProps {
    crd().spec.versions[0]
        .schema
        .clone()
        .and_then(|s| s.open_api_v3_schema)
        .expect("schema")
}

fn prop(schema: &JSONSchemaProps, path: &[&str]) -> JSONSchemaProps {
    let mut cur = schema.clone();
    for key in path {
        cur = if *key == "[]" {
            match cur.items {
                Some(JSONSchemaPropsOrArray::Schema(s)) => *s,
                other => panic!("no item schema at {key}: {other:?}"),
            }
        } else {
            cur.properties
                .as_ref()
                .and_then(|p| p.get(*key))
                .cloned()
                .unwrap_or_else(|| panic!("no property {key} in {path:?}"))
        };
    }
    cur
}

fn rules(schema: &JSONSchemaProps) -> Vec<String> {
    schema
        .x_kubernetes_validations
        .iter()
        .flatten()
        .map(|r| r.rule.clone())
        .collect()
}

#[test]
fn spec_round_trips_through_json_and_yaml() {
    let sr = ScheduleRequest::new("batch-1", sample_spec());
    let json = serde_json::to_string(&sr).expect("to json");
    assert!(json.contains(r#""gpuMilli":250"#), "{json}");
    assert!(json.contains(r#""gpuModels":["NVIDIA A100-SXM4-80GB"]"#));
    assert!(!json.contains("podTemplate"), "None is skipped: {json}");
    assert_eq!(
        serde_json::from_str::<ScheduleRequest>(&json).expect("from json"),
        sr
    );

    let yaml = serde_saphyr::to_string(&sr).expect("to yaml");
    assert_eq!(
        serde_saphyr::from_str::<ScheduleRequest>(&yaml).expect("from yaml"),
        sr
    );
}

#[test]
fn user_written_yaml_gets_defaults() {
    let yaml = r#"
apiVersion: allot.dev/v1alpha1
kind: ScheduleRequest
metadata: {name: small, namespace: ml}
spec:
  tasks:
    - name: worker
      replicas: 3
      resources: {cpu: 1, memory: 1Gi, gpu: 1}
      podTemplate:
        spec:
          containers: [{name: main, image: busybox}]
"#;
    let sr: ScheduleRequest = serde_saphyr::from_str(yaml).expect("parse");
    assert_eq!(sr.spec.objective, Objective::MaxPlaced);
    assert_eq!(sr.spec.priority, 0);
    assert!(!sr.spec.gang);
    assert_eq!(sr.spec.tasks[0].resources.cpu, Quantity("1".into()));
    assert_eq!(sr.spec.total_replicas(), 3);
    let template = sr.spec.tasks[0].pod_template.as_ref().expect("template");
    let template = template.parsed().expect("a valid template");
    let containers = &template.spec.as_ref().expect("pod spec").containers;
    assert_eq!(containers[0].image.as_deref(), Some("busybox"));
}

#[test]
fn status_round_trips() {
    let status = ScheduleRequestStatus {
        observed_generation: Some(3),
        phase: Phase::Planned,
        plan: vec![PlannedReplica {
            task: "trainer".into(),
            replica: 0,
            node: "gpu-1".into(),
            gpu_devices: vec![0, 1],
        }],
        solver: Some(SolverStats {
            objective: 3.0,
            bound: 3.0,
            gap: 0.0,
            millis: 12,
            backend: "highs".into(),
            timed_out: false,
        }),
        unplaced: vec![UnplacedReplica {
            task: "eval".into(),
            replica: 0,
            reason: "NoGpuShare".into(),
        }],
        ..Default::default()
    };
    let json = serde_json::to_value(&status).expect("to json");
    assert_eq!(json["plan"][0]["gpuDevices"], serde_json::json!([0, 1]));
    assert_eq!(json["solver"]["timedOut"], serde_json::json!(false));
    assert_eq!(
        serde_json::from_value::<ScheduleRequestStatus>(json).expect("back"),
        status
    );
}

#[test]
fn crd_names_scope_and_subresources() {
    let crd = crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("schedulerequests.allot.dev")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.plural, "schedulerequests");
    assert_eq!(crd.spec.names.kind, "ScheduleRequest");
    assert_eq!(crd.spec.names.short_names, Some(vec!["sr".to_string()]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.served && version.storage);
    let sub = version.subresources.as_ref().expect("subresources");
    assert!(sub.status.is_some(), "status subresource");
}

#[test]
fn printer_columns_make_get_useful() {
    let crd = crd();
    let cols = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .expect("columns");
    let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Phase", "Min", "Max", "Planned", "Running", "Gap", "Age", "Message"
        ]
    );
    assert_eq!(by_name_of(&cols, "Min"), ".status.counts.minReplicas");
    assert_eq!(by_name_of(&cols, "Max"), ".status.counts.replicas");
    let by_name = |n: &str| cols.iter().find(|c| c.name == n).expect("column");
    assert_eq!(by_name("Planned").json_path, ".status.counts.planned");
    assert_eq!(by_name("Age").type_, "date");
    assert_eq!(by_name("Gap").type_, "number");
    assert_eq!(by_name("Message").priority, Some(1));
}

fn by_name_of(
    cols: &[k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceColumnDefinition],
    name: &str,
) -> String {
    cols.iter()
        .find(|c| c.name == name)
        .map(|c| c.json_path.clone())
        .unwrap_or_default()
}

#[test]
fn cel_rules_are_in_the_schema() {
    let schema = schema();
    let spec = prop(&schema, &["spec"]);
    assert!(
        rules(&spec)
            .iter()
            .any(|r| r.contains("exists_one(u, u.name == t.name)")),
        "unique task names: {:?}",
        rules(&spec)
    );
    let total = format!(
        "self.tasks.map(t, has(t.maxReplicas) ? t.maxReplicas : (has(t.replicas) ? t.replicas : 0)).sum() <= {}",
        crate::crd::batch::MAX_REPLICAS
    );
    assert!(
        rules(&spec).contains(&total),
        "total replicas: {:?}",
        rules(&spec)
    );
    // Elastic tasks: replicas, or both bounds in order.
    let task = prop(&schema, &["spec", "tasks", "[]"]);
    assert_eq!(rules(&task).len(), 3, "{:?}", rules(&task));
    assert!(
        rules(&task)
            .iter()
            .any(|r| r.contains("self.minReplicas <= self.maxReplicas"))
    );
    let resources = prop(&schema, &["spec", "tasks", "[]", "resources"]);
    assert_eq!(
        rules(&resources),
        ["!(has(self.gpu) && has(self.gpuMilli))"]
    );
}

#[test]
fn validation_bounds_are_in_the_schema() {
    let schema = schema();
    let tasks = prop(&schema, &["spec", "tasks"]);
    assert_eq!(tasks.min_items, Some(1));
    assert_eq!(tasks.max_items, Some(MAX_TASKS as i64));
    let name = prop(&schema, &["spec", "tasks", "[]", "name"]);
    assert_eq!(name.pattern.as_deref(), Some(DNS_LABEL_PATTERN));
    assert_eq!(name.max_length, Some(63));
    let milli = prop(&schema, &["spec", "tasks", "[]", "resources", "gpuMilli"]);
    assert_eq!((milli.minimum, milli.maximum), (Some(1.0), Some(999.0)));
    let replicas = prop(&schema, &["spec", "tasks", "[]", "replicas"]);
    assert_eq!(replicas.minimum, Some(0.0));
    // Issue 16: the apiserver refuses a replica count the controller would refuse.
    assert_eq!(
        replicas.maximum,
        Some(crate::crd::batch::MAX_REPLICAS as f64)
    );
    for bound in ["minReplicas", "maxReplicas"] {
        let b = prop(&schema, &["spec", "tasks", "[]", bound]);
        assert_eq!(
            (b.minimum, b.maximum),
            (Some(0.0), Some(crate::crd::batch::MAX_REPLICAS as f64))
        );
    }
    let objective = prop(&schema, &["spec", "objective"]);
    assert_eq!(
        objective.default.map(|d| d.0),
        Some(serde_json::json!("MaxPlaced"))
    );
}

#[test]
fn pod_template_is_opaque_and_conditions_merge_by_type() {
    let schema = schema();
    let template = prop(&schema, &["spec", "tasks", "[]", "podTemplate"]);
    assert_eq!(template.x_kubernetes_preserve_unknown_fields, Some(true));
    assert!(
        template.properties.is_none(),
        "pod schema must not be embedded"
    );
    let conditions = prop(&schema, &["status", "conditions"]);
    assert_eq!(conditions.x_kubernetes_list_type.as_deref(), Some("map"));
    assert_eq!(
        conditions.x_kubernetes_list_map_keys,
        Some(vec!["type".to_string()])
    );
}

#[test]
fn condition_reasons_match_the_apiserver_pattern() {
    use condition::*;
    let ok = |s: &str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric())
    };
    for r in [
        VALIDATED,
        PLANNED,
        SCHEDULED,
        READY,
        REASON_SPEC_VALID,
        REASON_SPEC_INVALID,
        REASON_PLAN_FOUND,
        REASON_INFEASIBLE,
        REASON_SOLVER_TIMED_OUT,
        REASON_PODS_BOUND,
        REASON_PODS_PENDING,
        REASON_PODS_READY,
        REASON_PODS_FAILED,
        REASON_NODE_LOST,
    ] {
        assert!(ok(r), "{r}");
    }
    assert!(Phase::Failed.is_terminal() && !Phase::Running.is_terminal());
}

#[test]
fn a_malformed_pod_template_is_kept_raw_instead_of_failing_the_object() {
    let yaml = r#"
apiVersion: allot.dev/v1alpha1
kind: ScheduleRequest
metadata: {name: broken, namespace: ml}
spec:
  tasks:
    - name: worker
      replicas: 1
      resources: {cpu: 1, memory: 1Gi}
      podTemplate: {spec: {containers: not-a-list}}
"#;
    let sr: ScheduleRequest = serde_saphyr::from_str(yaml).expect("the object still parses");
    let template = sr.spec.tasks[0].pod_template.as_ref().expect("template");
    let error = template.parsed().expect_err("malformed");
    assert!(error.contains("invalid type"), "{error}");
    let back = serde_json::to_value(&sr.spec).expect("serialize");
    assert_eq!(
        back["tasks"][0]["podTemplate"]["spec"]["containers"], "not-a-list",
        "written back as it was"
    );
}
