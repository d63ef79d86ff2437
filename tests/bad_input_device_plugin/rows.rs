//! The rows of the device plugin's bad-input table: pods bound to the node (built from a few
//! parts), the resource and count kubelet asks to allocate, and the exact outcome expected.

use allot::agent::plugin::Resource;
use serde_json::{Value, json};

const WHOLE: &str = "nvidia.com/gpu";
const SHARE: &str = "allot.dev/gpu-share";
const DEVICES: &str = "allot.dev/gpu-devices";
const MILLI: &str = "allot.dev/gpu-milli";
const HANDED: &str = "allot.dev/gpu-allocated";

/// A pod bound to the node, created at second `at`: `containers` as (name, resource, count
/// text), `init` likewise, `notes` its annotations, `phase` its status phase.
fn pod(name: &str, at: u32, containers: &[(&str, &str, &str)], notes: &[(&str, &str)]) -> Value {
    let list = |cs: &[(&str, &str, &str)]| -> Vec<Value> {
        cs.iter()
            .map(|(c, r, n)| json!({"name": c, "resources": {"limits": {*r: n}}}))
            .collect()
    };
    let notes: serde_json::Map<String, Value> = notes
        .iter()
        .map(|(k, v)| ((*k).to_string(), json!(v)))
        .collect();
    json!({
        "metadata": {"name": name, "namespace": "ml", "uid": format!("uid-{name}"),
            "creationTimestamp": format!("2026-12-05T08:00:{at:02}Z"), "annotations": notes},
        "spec": {"containers": list(containers)},
        "status": {"phase": "Pending"},
    })
}

fn with(mut pod: Value, path: &[&str], value: Value) -> Value {
    let mut at = &mut pod;
    for key in &path[..path.len() - 1] {
        at = &mut at[*key];
    }
    at[path[path.len() - 1]] = value;
    pod
}

/// A pod that holds `devices` already (handed out earlier), whole or with a share.
fn holder(name: &str, devices: &str, milli: Option<&str>) -> Value {
    match milli {
        Some(m) => pod(
            name,
            0,
            &[("c", SHARE, "1")],
            &[(DEVICES, devices), (MILLI, m), (HANDED, "x")],
        ),
        None => pod(
            name,
            0,
            &[("c", WHOLE, "1")],
            &[(DEVICES, devices), (HANDED, "x")],
        ),
    }
}

/// One row: what it tries, the pods bound to the node, the Allocate kubelet sends (`count`
/// devices of `resource`) and the outcome expected.
pub struct Row {
    pub what: &'static str,
    pub pods: Vec<Value>,
    pub resource: Resource,
    pub count: usize,
    pub want: String,
}

fn row(what: &'static str, pods: Vec<Value>, resource: Resource, count: usize, want: &str) -> Row {
    Row {
        what,
        pods,
        resource,
        count,
        want: want.to_string(),
    }
}

/// Every row of the table, in the order failures are reported.
pub fn rows() -> Vec<Row> {
    use Resource::{Share, Whole};
    let bad_devices = |text: &str| {
        format!(
            "pod ml/x: annotation allot.dev/gpu-devices: {text:?} is not a comma list of GPU device indices 0..15 (e.g. \"0,1\")"
        )
    };
    let long = "7,".repeat(5000);
    let no_pod = |n: usize, r: &str| {
        format!(
            "no pod on this node is waiting for {n} {r} (pods bound by allot, not yet given their GPUs); was it bound by another scheduler?"
        )
    };
    let whole = |devices: &str| pod("x", 5, &[("c", WHOLE, "1")], &[(DEVICES, devices)]);
    let share = |devices: &str, milli: &str| {
        pod(
            "x",
            5,
            &[("c", SHARE, "1")],
            &[(DEVICES, devices), (MILLI, milli)],
        )
    };
    vec![
        row(
            "a whole GPU, annotated",
            vec![whole("2")],
            Whole,
            1,
            "x/c: GPUs 2",
        ),
        row(
            "a share, annotated",
            vec![share("1", "250")],
            Share,
            1,
            "x/c: GPUs 1",
        ),
        row(
            "share without allot.dev/gpu-milli",
            vec![pod("x", 5, &[("c", SHARE, "1")], &[(DEVICES, "0")])],
            Share,
            1,
            "pod ml/x: resource allot.dev/gpu-share needs annotation allot.dev/gpu-milli on the pod (how much of one GPU, 1..999 milli-GPU)",
        ),
        row(
            "whole GPU asked with a share's annotation",
            vec![pod(
                "x",
                5,
                &[("c", WHOLE, "1")],
                &[(DEVICES, "0"), (MILLI, "500")],
            )],
            Whole,
            1,
            "pod ml/x: annotation allot.dev/gpu-milli: 500 conflicts with nvidia.com/gpu: 1; ask for a share of one GPU or for whole GPUs, not both",
        ),
        row(
            "no devices annotation (not bound by allot)",
            vec![pod("x", 5, &[("c", WHOLE, "1")], &[])],
            Whole,
            1,
            "pod ml/x: no allot.dev/gpu-devices annotation: it was not bound by allot's extender, so allot cannot tell which GPUs it was given",
        ),
        row(
            "a GPU the node does not have",
            vec![whole("9")],
            Whole,
            1,
            "pod ml/x: GPU 9 named in allot.dev/gpu-devices is not on this node (its GPUs: 0-3)",
        ),
        row(
            "devices \"zero\"",
            vec![whole("zero")],
            Whole,
            1,
            &bad_devices("zero"),
        ),
        row(
            "devices \"0,0\"",
            vec![whole("0,0")],
            Whole,
            1,
            &bad_devices("0,0"),
        ),
        row(
            "devices \"-1\"",
            vec![whole("-1")],
            Whole,
            1,
            &bad_devices("-1"),
        ),
        row(
            "devices \"99\"",
            vec![whole("99")],
            Whole,
            1,
            &bad_devices("99"),
        ),
        row(
            "devices 10 kB",
            vec![whole(&long)],
            Whole,
            1,
            &bad_devices(&long),
        ),
        row(
            "a share annotated with two GPUs",
            vec![share("0,1", "500")],
            Share,
            1,
            "pod ml/x: a share of one GPU, but allot.dev/gpu-devices names 2 GPUs",
        ),
        row(
            "a container asking more GPUs than annotated",
            vec![pod("x", 5, &[("c", WHOLE, "2")], &[(DEVICES, "0")])],
            Whole,
            2,
            "pod ml/x: allot.dev/gpu-devices names 1 GPUs, too few for container \"c\" (GPUs 0..2 of the pod's)",
        ),
        row(
            "shares 600 + 500 on one GPU",
            vec![holder("a", "0", Some("600")), share("0", "500")],
            Share,
            1,
            "pod ml/x: GPU 0 would be over-committed: it asks 500 milli-GPU and ml/a already hold 600",
        ),
        row(
            "shares 600 + 400 on one GPU fit",
            vec![holder("a", "0", Some("600")), share("0", "400")],
            Share,
            1,
            "x/c: GPUs 0",
        ),
        row(
            "a share on a whole GPU held",
            vec![holder("a", "1", None), share("1", "100")],
            Share,
            1,
            "pod ml/x: GPU 1 would be over-committed: it asks 100 milli-GPU and ml/a already hold 1000",
        ),
        row(
            "a whole GPU on a share held",
            vec![holder("a", "1", Some("100")), whole("1")],
            Whole,
            1,
            "pod ml/x: GPU 1 would be over-committed: it asks 1000 milli-GPU and ml/a already hold 100",
        ),
        row(
            "two whole GPUs on one",
            vec![holder("a", "2", None), whole("2")],
            Whole,
            1,
            "pod ml/x: GPU 2 would be over-committed: it asks 1000 milli-GPU and ml/a already hold 1000",
        ),
        row(
            "an unhealthy GPU",
            vec![whole("3")],
            Whole,
            1,
            "pod ml/x: GPU 3 (GPU-3) is unhealthy: no longer visible to NVML",
        ),
        row(
            "gpu-milli \"0\"",
            vec![share("0", "0")],
            Share,
            1,
            "pod ml/x: annotation allot.dev/gpu-milli: 0 is out of range; a share of one GPU is 1..999 milli (whole GPUs are asked for with nvidia.com/gpu)",
        ),
        row(
            "gpu-milli \"1000\"",
            vec![share("0", "1000")],
            Share,
            1,
            "pod ml/x: annotation allot.dev/gpu-milli: 1000 is out of range; a share of one GPU is 1..999 milli (whole GPUs are asked for with nvidia.com/gpu)",
        ),
        row(
            "gpu-milli \"half\"",
            vec![share("0", "half")],
            Share,
            1,
            "pod ml/x: annotation allot.dev/gpu-milli: \"half\" is not a whole number >= 0",
        ),
        // Counts kubelet would never send for these pods: not an ask, so no pod is waiting.
        row(
            "nvidia.com/gpu \"1.5\"",
            vec![pod("x", 5, &[("c", WHOLE, "1.5")], &[(DEVICES, "0")])],
            Whole,
            1,
            &no_pod(1, WHOLE),
        ),
        row(
            "nvidia.com/gpu \"-1\"",
            vec![pod("x", 5, &[("c", WHOLE, "-1")], &[(DEVICES, "0")])],
            Whole,
            1,
            &no_pod(1, WHOLE),
        ),
        row(
            "nvidia.com/gpu huge",
            vec![pod(
                "x",
                5,
                &[("c", WHOLE, "99999999999999999999")],
                &[(DEVICES, "0")],
            )],
            Whole,
            1,
            &no_pod(1, WHOLE),
        ),
        row(
            "init container gets the first devices",
            vec![with(
                pod("x", 5, &[("app", WHOLE, "2")], &[(DEVICES, "0,2")]),
                &["spec", "initContainers"],
                json!([{"name": "init", "resources": {"limits": {WHOLE: "1"}}}]),
            )],
            Whole,
            1,
            "x/init: GPUs 0",
        ),
        row(
            "a running pod without the record is not the one admitted",
            vec![with(whole("0"), &["status", "phase"], json!("Running"))],
            Whole,
            1,
            &no_pod(1, WHOLE),
        ),
        row(
            "a running pod without the record holds its GPU",
            vec![
                with(
                    pod("a", 0, &[("c", WHOLE, "1")], &[(DEVICES, "1")]),
                    &["status", "phase"],
                    json!("Running"),
                ),
                whole("1"),
            ],
            Whole,
            1,
            "pod ml/x: GPU 1 would be over-committed: it asks 1000 milli-GPU and ml/a already hold 1000",
        ),
        row(
            "a finished pod holds nothing",
            vec![
                with(
                    holder("a", "1", None),
                    &["status", "phase"],
                    json!("Succeeded"),
                ),
                whole("1"),
            ],
            Whole,
            1,
            "x/c: GPUs 1",
        ),
        row(
            "a pod being deleted is not admitted",
            vec![with(
                whole("0"),
                &["metadata", "deletionTimestamp"],
                json!("2026-12-05T08:01:00Z"),
            )],
            Whole,
            1,
            &no_pod(1, WHOLE),
        ),
        row(
            "the oldest of two waiting pods",
            vec![
                whole("2"),
                pod("older", 1, &[("c", WHOLE, "1")], &[(DEVICES, "1")]),
            ],
            Whole,
            1,
            "older/c: GPUs 1",
        ),
        row("no pods at all", vec![], Share, 1, &no_pod(1, SHARE)),
        row(
            "a pod without a spec",
            vec![json!({"metadata": {"name": "x", "namespace": "ml", "uid": "u"}})],
            Whole,
            1,
            &no_pod(1, WHOLE),
        ),
    ]
}
