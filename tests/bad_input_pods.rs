//! Issue 16: every bad pod annotation and request the extender reads, with the exact error
//! text the user sees in the pod's FailedScheduling event (`allot::live::pod::parse_pod`).
//! One table, one loop: every row that differs (or panics) is reported at once.
#![cfg(feature = "k8s")]

mod table;

use std::panic::{AssertUnwindSafe, catch_unwind};

use allot::live::pod::parse_pod;
use allot::model::ModelCatalog;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

/// What `want` says of an input parsing fine (on purpose: the row's comment says why).
const ACCEPTED: &str = "accepted";

/// One input, described for the failure report, and the message it must give.
struct Row {
    input: String,
    pod: Pod,
    want: String,
}

/// A pod from JSON, as it comes off the wire.
fn pod(spec: Value, annotations: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "annotations": annotations},
        "spec": spec,
    }))
    .expect("the test pod is a valid v1.Pod")
}

/// One container `main` with these requests.
fn requests(requests: Value) -> Value {
    json!({"containers": [{"name": "main", "resources": {"requests": requests}}]})
}

/// A 1-CPU, 1Gi pod with one annotation (and `gpus` whole GPUs when given).
fn annotated(key: &str, text: &str, gpus: Option<&str>) -> Pod {
    let mut req = json!({"cpu": "1", "memory": "1Gi"});
    if let Some(g) = gpus {
        req["nvidia.com/gpu"] = json!(g);
    }
    pod(requests(req), json!({ key: text }))
}

/// `want` after `prefix`, unless the input is accepted.
fn message(prefix: &str, want: &str) -> String {
    if want == ACCEPTED {
        want.to_string()
    } else {
        format!("{prefix}{want}")
    }
}

/// The allot.dev/gpu-milli annotation on a pod without whole GPUs.
fn milli(text: &str, want: &str) -> Row {
    Row {
        input: format!("allot.dev/gpu-milli={text:?}"),
        pod: annotated("allot.dev/gpu-milli", text, None),
        want: message("annotation allot.dev/gpu-milli: ", want),
    }
}

/// An annotation on a pod asking for one whole GPU.
fn on_gpu_pod(key: &str, text: &str, want: &str) -> Row {
    Row {
        input: format!("nvidia.com/gpu=1, {key}={text:?}"),
        pod: annotated(key, text, Some("1")),
        want: message(&format!("annotation {key}: "), want),
    }
}

/// A container's request of one resource (the others valid).
fn request(resource: &str, text: &str, want: &str) -> Row {
    let mut req = json!({"cpu": "1", "memory": "1Gi"});
    req[resource] = json!(text);
    Row {
        input: format!("{resource}={text:?}"),
        pod: pod(requests(req), json!({})),
        want: message(&format!("container \"main\": resource {resource}: "), want),
    }
}

fn cpu(text: &str, want: &str) -> Row {
    request("cpu", text, want)
}

fn memory(text: &str, want: &str) -> Row {
    request("memory", text, want)
}

fn gpus(text: &str, want: &str) -> Row {
    request("nvidia.com/gpu", text, want)
}

/// A whole pod spec and the whole message.
fn spec(input: &str, spec: Value, annotations: Value, want: &str) -> Row {
    Row {
        input: input.to_string(),
        pod: pod(spec, annotations),
        want: want.to_string(),
    }
}

const RANGE: &str = "is out of range; a share of one GPU is 1..999 milli (whole GPUs are asked for \
                     with nvidia.com/gpu)";
const NOT_COUNT: &str = "is not a whole number >= 0";
const BAD_MODEL: &str = "is not a GPU model name (letters, digits, spaces, '-', '_', '.')";
const BAD_DEVICES: &str = r#"is not a comma list of GPU device indices 0..15 (e.g. "0,1")"#;
const NOT_A_NUMBER: &str = r#"is not a number followed by a unit (e.g. "500m", "64Gi", "2")"#;
const SUFFIXES: &str = "(use n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi or Ei)";
const NEGATIVE: &str = "is negative; resource amounts must be >= 0";
const EXPONENT: &str = "has an exponent outside -100..=100";
const POLICIES: &str = "valid policies: random, dotprod, clustering, packing, bestfit, fgd, \
                        least-allocated, most-allocated, learned";

fn rows() -> Vec<Row> {
    let nines = "9".repeat(40);
    let digits = "1".repeat(10_000);
    let policy = "allot.dev/policy";
    let models = "allot.dev/gpu-models";
    let planned = "allot.dev/planned-devices";
    let long_model = format!("NVIDIA {}", "X".repeat(64));
    vec![
        // GPU share: the allot.dev/gpu-milli annotation (a valid one first, for contrast).
        milli("500", ACCEPTED),
        milli("abc", &format!(r#""abc" {NOT_COUNT}"#)),
        milli("-5", &format!(r#""-5" {NOT_COUNT}"#)),
        milli("0", &format!("0 {RANGE}")),
        milli("1000", &format!("1000 {RANGE}")),
        milli("1000000", &format!("1000000 {RANGE}")),
        // u64::MAX fits a u64 but not the milli arithmetic: too large, not out of range.
        milli(
            "18446744073709551615",
            r#""18446744073709551615" is too large"#,
        ),
        milli(
            "99999999999999999999",
            r#""99999999999999999999" is too large"#,
        ),
        milli("250.5", &format!(r#""250.5" {NOT_COUNT}"#)),
        milli("500m", &format!(r#""500m" {NOT_COUNT}"#)),
        milli("", &format!(r#""" {NOT_COUNT}"#)),
        milli("5\u{0}0", &format!(r#""5\00" {NOT_COUNT}"#)),
        // Surrounding whitespace is trimmed, as in quantities.
        milli("500\n", ACCEPTED),
        // Whole GPUs: the nvidia.com/gpu resource.
        gpus("abc", &format!(r#""abc" {NOT_COUNT}"#)),
        gpus("1.5", &format!(r#""1.5" {NOT_COUNT}"#)),
        gpus("-1", &format!(r#""-1" {NOT_COUNT}"#)),
        spec(
            "nvidia.com/gpu=\"17\"",
            requests(json!({"nvidia.com/gpu": "17"})),
            json!({}),
            "nvidia.com/gpu: 17 GPUs exceed the 16 one node can hold",
        ),
        // A share and whole GPUs together.
        on_gpu_pod(
            "allot.dev/gpu-milli",
            "500",
            "500 conflicts with nvidia.com/gpu: 1; ask for a share of one GPU or for whole \
             GPUs, not both",
        ),
        // GPU models.
        on_gpu_pod(models, "A100!", &format!(r#""A100!" {BAD_MODEL}"#)),
        on_gpu_pod(models, " , ", r#""," names no GPU model"#),
        on_gpu_pod(
            models,
            "A100\nH100",
            &format!(r#""A100\nH100" {BAD_MODEL}"#),
        ),
        // A model no node has is valid: the pod matches no node, and filter says so per node.
        on_gpu_pod(models, "Z999", ACCEPTED),
        // Products in NVML's or GFD's spelling are names too (spaces become '-').
        on_gpu_pod(models, "NVIDIA A100-SXM4-80GB", ACCEPTED),
        on_gpu_pod(
            models,
            "NVIDIA-H100-80GB-HBM3, Tesla V100-SXM2-32GB",
            ACCEPTED,
        ),
        on_gpu_pod(
            models,
            &long_model,
            &format!(
                r#"{long_model:?} is too long for a GPU model name (64 characters as "{}"; at most 63)"#,
                &long_model[7..]
            ),
        ),
        on_gpu_pod(
            models,
            "A100\tH100",
            &format!(r#""A100\tH100" {BAD_MODEL}"#),
        ),
        spec(
            "allot.dev/gpu-models=\"A100\" without a GPU",
            requests(json!({"cpu": "1"})),
            json!({models: "A100"}),
            r#"annotation allot.dev/gpu-models: "A100" is set but no GPU is requested (set nvidia.com/gpu or annotation allot.dev/gpu-milli)"#,
        ),
        // The device plugin's share resource (allot.dev/gpu-share: 1 per container).
        spec(
            "allot.dev/gpu-share: 1 with allot.dev/gpu-milli",
            requests(json!({"cpu": "1", "allot.dev/gpu-share": "1"})),
            json!({"allot.dev/gpu-milli": "500"}),
            ACCEPTED,
        ),
        spec(
            "allot.dev/gpu-share: 1 without allot.dev/gpu-milli",
            requests(json!({"cpu": "1", "allot.dev/gpu-share": "1"})),
            json!({}),
            "resource allot.dev/gpu-share needs annotation allot.dev/gpu-milli on the pod (how much of one GPU, 1..999 milli-GPU)",
        ),
        spec(
            "allot.dev/gpu-share: 2",
            requests(json!({"cpu": "1", "allot.dev/gpu-share": "2"})),
            json!({"allot.dev/gpu-milli": "500"}),
            r#"container "main": resource allot.dev/gpu-share: 2 asked, but a container takes at most 1 (a share of one GPU; its size is annotation allot.dev/gpu-milli)"#,
        ),
        spec(
            "allot.dev/gpu-share: half",
            requests(json!({"cpu": "1", "allot.dev/gpu-share": "half"})),
            json!({"allot.dev/gpu-milli": "500"}),
            r#"container "main": resource allot.dev/gpu-share: "half" is not a whole number >= 0"#,
        ),
        spec(
            "allot.dev/gpu-share with nvidia.com/gpu",
            requests(json!({"cpu": "1", "allot.dev/gpu-share": "1", "nvidia.com/gpu": "1"})),
            json!({}),
            "resource allot.dev/gpu-share needs annotation allot.dev/gpu-milli on the pod (how much of one GPU, 1..999 milli-GPU)",
        ),
        // Policy.
        on_gpu_pod(
            policy,
            "nosuch",
            &format!(r#"unknown policy "nosuch"; {POLICIES}"#),
        ),
        on_gpu_pod(policy, "", &format!(r#"unknown policy ""; {POLICIES}"#)),
        on_gpu_pod(
            policy,
            "fg\u{1b}d",
            &format!(r#"unknown policy "fg\u{{1b}}d"; {POLICIES}"#),
        ),
        // Planned devices (the controller writes them; a hand edit can break them).
        on_gpu_pod(planned, "x", &format!(r#""x" {BAD_DEVICES}"#)),
        on_gpu_pod(planned, "16", &format!(r#""16" {BAD_DEVICES}"#)),
        on_gpu_pod(planned, "0,1", "2 devices planned but the pod asks for 1"),
        // CPU and memory quantities.
        cpu(
            "1e-2147483648",
            &format!(r#"quantity "1e-2147483648" {EXPONENT}"#),
        ),
        cpu("abc", &format!(r#"quantity "abc" {NOT_A_NUMBER}"#)),
        cpu("-1", &format!(r#"quantity "-1" {NEGATIVE}"#)),
        cpu(
            "1Qi",
            &format!(r#"quantity "1Qi" has unknown suffix "Qi" {SUFFIXES}"#),
        ),
        cpu("", "empty quantity"),
        cpu(&nines, &format!(r#"quantity "{nines}" is too large"#)),
        cpu(
            "1\u{7}",
            &format!(r#"quantity "1\u{{7}}" has unknown suffix "\u{{7}}" {SUFFIXES}"#),
        ),
        memory(
            "1e-2147483648",
            &format!(r#"quantity "1e-2147483648" {EXPONENT}"#),
        ),
        memory("abc", &format!(r#"quantity "abc" {NOT_A_NUMBER}"#)),
        memory("-1", &format!(r#"quantity "-1" {NEGATIVE}"#)),
        memory(
            "1Qi",
            &format!(r#"quantity "1Qi" has unknown suffix "Qi" {SUFFIXES}"#),
        ),
        memory(
            "64GB",
            &format!(r#"quantity "64GB" has unknown suffix "GB" {SUFFIXES}"#),
        ),
        memory("", "empty quantity"),
        memory("16Ei", r#"quantity "16Ei" is too large"#),
        // Very long digit strings: refused as too large, without slowing down.
        memory(&digits, &format!(r#"quantity "{digits}" is too large"#)),
        // Where else quantities live: init containers, the pod overhead, limits alone (a
        // limit without a request is the request, as the API server defaults it).
        spec(
            "init container cpu=\"abc\"",
            json!({
                "containers": [{"name": "main"}],
                "initContainers": [{"name": "setup", "resources": {"requests": {"cpu": "abc"}}}],
            }),
            json!({}),
            &format!(r#"container "setup": resource cpu: quantity "abc" {NOT_A_NUMBER}"#),
        ),
        spec(
            "overhead memory=\"-1\"",
            json!({"containers": [{"name": "main"}], "overhead": {"memory": "-1"}}),
            json!({}),
            &format!(r#"container "overhead": resource memory: quantity "-1" {NEGATIVE}"#),
        ),
        spec(
            "limit only, cpu=\"abc\"",
            json!({"containers": [{"name": "main", "resources": {"limits": {"cpu": "abc"}}}]}),
            json!({}),
            &format!(r#"container "main": resource cpu: quantity "abc" {NOT_A_NUMBER}"#),
        ),
        // No containers: the API server refuses such a pod, so the extender never sees one;
        // parsed, it is a pod asking for nothing.
        spec(
            "no containers",
            json!({"containers": []}),
            json!({}),
            ACCEPTED,
        ),
    ]
}

/// Shortened for the failure report (the long-digit rows are 10,000 characters).
fn short(s: &str) -> String {
    if s.chars().count() > 200 {
        let head: String = s.chars().take(200).collect();
        format!("{head}... ({} chars)", s.chars().count())
    } else {
        s.to_string()
    }
}

#[test]
fn bad_pod_inputs_give_the_exact_message() {
    let mut models = ModelCatalog::default();
    for name in ["A100", "H100"] {
        models.intern(name).expect("valid model name");
    }
    let rows = rows();
    let mut failures = Vec::new();
    for row in &rows {
        let got = catch_unwind(AssertUnwindSafe(|| parse_pod(&row.pod, &models)));
        let got = match got {
            Ok(Ok(_)) => ACCEPTED.to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "PANICKED".to_string(),
        };
        if got != row.want {
            failures.push(format!(
                "input:    {}\nexpected: {}\nactual:   {}",
                short(&row.input),
                short(&row.want),
                short(&got)
            ));
        }
    }
    table::assert_rows(&failures, rows.len());
}
