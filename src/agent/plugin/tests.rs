//! The device plugin's decisions without kubelet: which pod an Allocate is for, which GPUs
//! its container gets, and each refusal's message (kubelet's own side is in the e2e suite).

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::*;
use crate::crd::{GpuHealth, GpuTelemetry};

fn gpu(index: u32, health: GpuHealth) -> GpuTelemetry {
    GpuTelemetry {
        index,
        uuid: format!("GPU-0000000{index}-aaaa-bbbb-cccc-dddddddddddd"),
        model: "NVIDIA A100-SXM4-80GB".into(),
        memory_total_bytes: 80 << 30,
        health,
        reason: (health != GpuHealth::Healthy).then(|| "XID 79: fell off the bus".into()),
        ..Default::default()
    }
}

fn node(n: u32) -> Inventory {
    let gpus: Vec<_> = (0..n).map(|i| gpu(i, GpuHealth::Healthy)).collect();
    Inventory::from_telemetry(&gpus)
}

/// A pod bound to the node: `name`, created at second `created`, with `containers` as
/// (name, resource, count), and annotations.
fn pod(name: &str, created: u32, containers: &[(&str, &str, u32)], notes: &[(&str, &str)]) -> Pod {
    let containers: Vec<_> = containers
        .iter()
        .map(|(c, r, n)| json!({"name": c, "resources": {"limits": {*r: n.to_string()}}}))
        .collect();
    let notes: serde_json::Map<_, _> = notes.iter().map(|(k, v)| ((*k).into(), json!(v))).collect();
    serde_json::from_value(json!({
        "metadata": {
            "name": name, "namespace": "ml", "uid": format!("uid-{name}"),
            "creationTimestamp": format!("2026-12-05T07:00:{created:02}Z"),
            "annotations": notes,
        },
        "spec": {"nodeName": "gpu-1", "containers": containers},
        "status": {"phase": "Pending"},
    }))
    .expect("a pod")
}

const WHOLE: &str = "nvidia.com/gpu";
const SHARE: &str = "allot.dev/gpu-share";

#[test]
fn the_oldest_waiting_pod_with_that_count_is_chosen() {
    let pods = vec![
        pod(
            "late",
            9,
            &[("c", WHOLE, 1)],
            &[("allot.dev/gpu-devices", "1")],
        ),
        pod(
            "two",
            1,
            &[("c", WHOLE, 2)],
            &[("allot.dev/gpu-devices", "2,3")],
        ),
        pod(
            "early",
            5,
            &[("c", WHOLE, 1)],
            &[("allot.dev/gpu-devices", "0")],
        ),
    ];
    let served = Served::new();
    let (p, ask) = choose(&pods, &served, Resource::Whole, 1).expect("a pod");
    assert_eq!(p.metadata.name.as_deref(), Some("early"));
    assert_eq!(ask.count, 1);
    let inventory = node(4);
    let gpus = grant(p, &ask, &inventory, &pods, &served).expect("granted");
    assert_eq!(gpus.iter().map(|g| g.index).collect::<Vec<_>>(), [0]);

    // Once served, the next Allocate of one GPU is the next pod in kubelet's order.
    let mut served = served;
    served.insert(("uid-early".into(), "c".into(), Resource::Whole));
    let (p, _) = choose(&pods, &served, Resource::Whole, 1).expect("a pod");
    assert_eq!(p.metadata.name.as_deref(), Some("late"));
    let (p, _) = choose(&pods, &served, Resource::Whole, 2).expect("a pod");
    assert_eq!(p.metadata.name.as_deref(), Some("two"));
}

#[test]
fn containers_are_dealt_the_pods_devices_in_order() {
    let p = pod(
        "multi",
        0,
        &[("a", WHOLE, 2), ("b", WHOLE, 1)],
        &[("allot.dev/gpu-devices", "1,4,6")],
    );
    let pods = vec![p];
    let inventory = node(8);
    let mut served = Served::new();
    let (p, ask) = choose(&pods, &served, Resource::Whole, 2).expect("a");
    assert_eq!(ask.container, "a");
    let a: Vec<_> = grant(p, &ask, &inventory, &pods, &served)
        .expect("a")
        .iter()
        .map(|g| g.index)
        .collect();
    served.insert(("uid-multi".into(), "a".into(), Resource::Whole));
    let (p, ask) = choose(&pods, &served, Resource::Whole, 1).expect("b");
    assert_eq!(ask.container, "b");
    let b: Vec<_> = grant(p, &ask, &inventory, &pods, &served)
        .expect("b")
        .iter()
        .map(|g| g.index)
        .collect();
    assert_eq!((a, b), (vec![1, 4], vec![6]));
}

#[test]
fn a_share_gets_its_gpu_and_the_memory_hint() {
    let pods = vec![pod(
        "half",
        0,
        &[("c", SHARE, 1)],
        &[
            ("allot.dev/gpu-devices", "1"),
            ("allot.dev/gpu-milli", "500"),
        ],
    )];
    let inventory = node(2);
    let served = Served::new();
    let (p, ask) = choose(&pods, &served, Resource::Share, 1).expect("the pod");
    let gpus = grant(p, &ask, &inventory, &pods, &served).expect("granted");
    let r = container_response(&gpus, share_milli(p), Some("nvidia.com/gpu"));
    assert_eq!(r.envs["NVIDIA_VISIBLE_DEVICES"], inventory.gpus()[1].uuid);
    assert_eq!(r.envs["ALLOT_GPU_MILLI"], "500");
    assert_eq!(r.envs["ALLOT_GPU_MEMORY_MIB"], (40 * 1024).to_string());
    assert_eq!(
        r.cdi_devices[0].name,
        format!("nvidia.com/gpu={}", inventory.gpus()[1].uuid)
    );
}

fn refusal(pods: &[Pod], resource: Resource, count: usize, inventory: &Inventory) -> String {
    let served = Served::new();
    let (p, ask) = match choose(pods, &served, resource, count) {
        Ok(found) => found,
        Err(e) => return e.to_string(),
    };
    match grant(p, &ask, inventory, pods, &served) {
        Ok(gpus) => panic!("granted {gpus:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_pods_are_refused_with_what_is_wrong() {
    let inventory = node(2);
    let held = |name: &str, devices: &str, milli: Option<&str>| {
        let mut notes = vec![
            ("allot.dev/gpu-devices", devices),
            ("allot.dev/gpu-allocated", "GPU-x"),
        ];
        let resource = if let Some(m) = milli {
            notes.push(("allot.dev/gpu-milli", m));
            SHARE
        } else {
            WHOLE
        };
        pod(name, 0, &[("c", resource, 1)], &notes)
    };
    let rows: Vec<(Vec<Pod>, Resource, usize, &str)> = vec![
        (
            vec![pod(
                "x",
                1,
                &[("c", SHARE, 1)],
                &[("allot.dev/gpu-devices", "0")],
            )],
            Resource::Share,
            1,
            "pod ml/x: resource allot.dev/gpu-share needs annotation allot.dev/gpu-milli on the pod (how much of one GPU, 1..999 milli-GPU)",
        ),
        (
            vec![pod("x", 1, &[("c", WHOLE, 1)], &[])],
            Resource::Whole,
            1,
            "pod ml/x: no allot.dev/gpu-devices annotation: it was not bound by allot's extender, so allot cannot tell which GPUs it was given",
        ),
        (
            vec![pod(
                "x",
                1,
                &[("c", WHOLE, 1)],
                &[("allot.dev/gpu-devices", "5")],
            )],
            Resource::Whole,
            1,
            "pod ml/x: GPU 5 named in allot.dev/gpu-devices is not on this node (its GPUs: 0-1)",
        ),
        (
            vec![pod(
                "x",
                1,
                &[("c", WHOLE, 2)],
                &[("allot.dev/gpu-devices", "0")],
            )],
            Resource::Whole,
            2,
            "pod ml/x: allot.dev/gpu-devices names 1 GPUs, too few for container \"c\" (GPUs 0..2 of the pod's)",
        ),
        (
            vec![pod(
                "x",
                1,
                &[("c", WHOLE, 1)],
                &[("allot.dev/gpu-devices", "zero")],
            )],
            Resource::Whole,
            1,
            "pod ml/x: annotation allot.dev/gpu-devices: \"zero\" is not a comma list of GPU device indices 0..15 (e.g. \"0,1\")",
        ),
        (
            vec![
                held("a", "0", Some("600")),
                pod(
                    "x",
                    1,
                    &[("c", SHARE, 1)],
                    &[
                        ("allot.dev/gpu-devices", "0"),
                        ("allot.dev/gpu-milli", "500"),
                    ],
                ),
            ],
            Resource::Share,
            1,
            "pod ml/x: GPU 0 would be over-committed: it asks 500 milli-GPU and ml/a already hold 600",
        ),
        (
            vec![
                held("a", "1", None),
                pod(
                    "x",
                    1,
                    &[("c", WHOLE, 1)],
                    &[("allot.dev/gpu-devices", "1")],
                ),
            ],
            Resource::Whole,
            1,
            "pod ml/x: GPU 1 would be over-committed: it asks 1000 milli-GPU and ml/a already hold 1000",
        ),
        (
            vec![pod(
                "x",
                1,
                &[("c", WHOLE, 2)],
                &[("allot.dev/gpu-devices", "0,1")],
            )],
            Resource::Whole,
            1,
            "no pod on this node is waiting for 1 nvidia.com/gpu (pods bound by allot, not yet given their GPUs); was it bound by another scheduler?",
        ),
    ];
    for (pods, resource, count, want) in rows {
        assert_eq!(refusal(&pods, resource, count, &inventory), want);
    }
}

#[test]
fn an_unhealthy_gpu_is_offered_as_unhealthy_and_not_handed_out() {
    let inventory =
        Inventory::from_telemetry(&[gpu(0, GpuHealth::Healthy), gpu(1, GpuHealth::Unhealthy)]);
    let whole = inventory.devices(Resource::Whole, 4);
    let health: Vec<_> = whole.iter().map(|d| d.health.as_str()).collect();
    assert_eq!(health, ["Healthy", "Unhealthy"]);
    let shares = inventory.devices(Resource::Share, 4);
    assert_eq!(shares.len(), 8);
    assert!(shares[4..].iter().all(|d| d.health == "Unhealthy"));
    assert!(shares.iter().all(|d| d.id.len() <= 63));
    let pods = vec![pod(
        "x",
        1,
        &[("c", WHOLE, 1)],
        &[("allot.dev/gpu-devices", "1")],
    )];
    assert_eq!(
        refusal(&pods, Resource::Whole, 1, &inventory),
        format!(
            "pod ml/x: GPU 1 ({}) is unhealthy: XID 79: fell off the bus",
            inventory.gpus()[1].uuid
        )
    );
}

#[test]
fn finished_and_handed_pods_are_not_candidates_and_free_their_gpus() {
    let mut done = pod(
        "done",
        0,
        &[("c", WHOLE, 1)],
        &[
            ("allot.dev/gpu-devices", "0"),
            ("allot.dev/gpu-allocated", "GPU-x"),
        ],
    );
    done.status.as_mut().expect("status").phase = Some("Succeeded".into());
    let pods = vec![
        done,
        pod(
            "next",
            1,
            &[("c", WHOLE, 1)],
            &[("allot.dev/gpu-devices", "0")],
        ),
    ];
    let served = Served::new();
    let (p, ask) = choose(&pods, &served, Resource::Whole, 1).expect("next");
    assert_eq!(p.metadata.name.as_deref(), Some("next"));
    assert!(
        grant(p, &ask, &node(1), &pods, &served).is_ok(),
        "a finished pod holds nothing"
    );
}

#[test]
fn preferred_allocation_is_allots_choice_when_kubelet_can_take_it() {
    let ids = |v: &[&str]| v.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
    let available = ids(&["a", "b", "c", "d"]);
    assert_eq!(
        prefer(Some(ids(&["c", "d"])), &available, &[], 2),
        ids(&["c", "d"])
    );
    // Not available (kubelet thinks it is taken), or the wrong size: kubelet's own order.
    assert_eq!(
        prefer(Some(ids(&["c", "e"])), &available, &[], 2),
        ids(&["a", "b"])
    );
    assert_eq!(prefer(None, &available, &ids(&["d"]), 2), ids(&["d", "a"]));
}

#[test]
fn cdi_kinds() {
    for ok in ["nvidia.com/gpu", "example.com/class_1"] {
        assert!(valid_cdi_kind(ok), "{ok}");
    }
    for bad in [
        "",
        "gpu",
        "nvidia/gpu",
        "nvidia.com/",
        "/gpu",
        "nvidia.com/g pu",
    ] {
        assert!(!valid_cdi_kind(bad), "{bad}");
    }
}
