//! The chart's Grafana dashboard and alert rules (`charts/allot/monitoring/`) against real
//! scrapes: every metric they query is declared by the `/metrics` of a running allot
//! extender (the one `e2e/up` started), controller and agent (started here), or by
//! kube-scheduler's `/metrics`, or is Prometheus' own `up`. A name nobody exports fails the
//! test. `monitoring/chart.rs`: the chart renders both only when asked.

mod chart;

// Shared with tests/monitoring_names.rs, which uses the parts this test does not.
#[path = "../../../tests/monitoring/promql.rs"]
#[allow(dead_code)]
mod promql;

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};

use crate::support::{
    AllotProcess, Cluster, WAIT, cargo_artifact, curl_ok, fake_gpus, free_port, pod, poll,
    repo_root, skip, telemetry_api, write_devices,
};

/// How long a scrape waits for the series a fresh process is expected to get soon.
const SAMPLES_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// `/metrics` of `url` once it answers with every one of `series` (name and `{`), or, after
/// a while, as it is: a family the process has no samples for yet is left out of `/metrics`.
async fn scrape(process: &mut AllotProcess, url: &str, series: &[&str]) -> Result<String> {
    let start = std::time::Instant::now();
    loop {
        process.check_alive()?;
        if let Ok(text) = curl_ok(&[url])
            && (series.iter().all(|s| text.contains(&format!("\n{s}{{")))
                || start.elapsed() > SAMPLES_WAIT)
        {
            return Ok(text);
        }
        if start.elapsed() > WAIT {
            bail!(
                "no answer from {url} after {WAIT:?}:\n{}",
                process.log_tail(20)
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The extender's exposition: the e2e extender's, or (with `E2E_EXTENDER=0`) one started here.
async fn extender_metrics(cluster: &Cluster) -> Result<String> {
    if cluster.extender_required {
        let admin = std::env::var("ALLOT_E2E_EXTENDER_ADMIN")
            .context("ALLOT_E2E_EXTENDER_ADMIN not set (e2e/up's env sets it)")?;
        return curl_ok(&[&format!("{admin}/metrics")]);
    }
    let (port, admin) = (free_port()?, free_port()?);
    let (listen, admin_listen) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{admin}"));
    let mut p = AllotProcess::start(
        cluster,
        "monitoring-extender",
        &[
            "extender",
            "--listen",
            &listen,
            "--admin-listen",
            &admin_listen,
        ],
    )?;
    p.wait_ready(&format!("http://{admin_listen}/readyz"))
        .await?;
    scrape(&mut p, &format!("http://{admin_listen}/metrics"), &[]).await
}

/// A controller's exposition (its Lease in `ns`), once it has planned a small
/// ScheduleRequest there (reconciles and plans then have samples).
async fn controller_metrics(cluster: &Cluster, ns: &str) -> Result<String> {
    let admin = format!("127.0.0.1:{}", free_port()?);
    let mut p = AllotProcess::start(
        cluster,
        "monitoring-controller",
        &[
            "controller",
            "--lease-namespace",
            ns,
            "--admin-listen",
            &admin,
        ],
    )?;
    p.wait_ready(&format!("http://{admin}/readyz")).await?;
    let request: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "allot.dev/v1alpha1", "kind": "ScheduleRequest",
        "metadata": { "name": "monitoring" },
        "spec": { "tasks": [{ "name": "train", "replicas": 1,
            "resources": { "cpu": "100m", "memory": "64Mi", "gpu": 1 },
            "podTemplate": { "spec": { "containers": [
                { "name": "main", "image": "allot-e2e/pause:never-pulled" }] } } }] }
    }))?;
    let gvk = GroupVersionKind::gvk("allot.dev", "v1alpha1", "ScheduleRequest");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "schedulerequests");
    Api::<DynamicObject>::namespaced_with(cluster.client.clone(), ns, &resource)
        .create(&PostParams::default(), &request)
        .await
        .context("creating a ScheduleRequest")?;
    let series = [
        "allot_controller_reconciles_total",
        "allot_controller_plans_total",
    ];
    scrape(&mut p, &format!("http://{admin}/metrics"), &series).await
}

/// An agent's exposition, on a kwok GPU node with the fake NVML; the NodeTelemetry it wrote
/// is deleted afterwards, whatever happened.
async fn agent_metrics(cluster: &Cluster) -> Result<String> {
    let nodes = Api::<Node>::all(cluster.client.clone())
        .list(&ListParams::default().labels("type=kwok"))
        .await?;
    let node = nodes
        .items
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .max()
        .context("no kwok node")?;
    let dir = repo_root().join("target/e2e-logs");
    std::fs::create_dir_all(&dir)?;
    let devices = dir.join(format!("monitoring-agent-{node}.json"));
    write_devices(&devices, &fake_gpus(&node, "NVIDIA-FAKE", 2, None))?;
    let lib = cargo_artifact(&["-p", "allot-fake-nvml"], "libnvidia_ml_fake.so")?;
    let listen = format!("127.0.0.1:{}", free_port()?);
    let config = devices.to_string_lossy().into_owned();
    let mut p = AllotProcess::start_with_env(
        cluster,
        "monitoring-agent",
        &[
            "agent",
            "--node-name",
            &node,
            "--listen",
            &listen,
            "--nvml-lib",
            &lib.to_string_lossy(),
        ],
        &[("ALLOT_FAKE_NVML_CONFIG", &config)],
    )?;
    // The first sample and the first status write come within a second or two.
    let url = format!("http://{listen}/metrics");
    let series = ["allot_agent_gpu_healthy", "allot_agent_status_writes_total"];
    let text = scrape(&mut p, &url, &series).await;
    p.stop();
    let api = telemetry_api(cluster);
    if let Err(e) = api.delete(&node, &DeleteParams::default()).await
        && !matches!(&e, kube::Error::Api(s) if s.code == 404)
    {
        return Err(e).context(format!("deleting the NodeTelemetry {node} the agent wrote"));
    }
    text
}

/// A one-GPU pod of the allot profile in `ns`, bound.
async fn schedule_one(cluster: &Cluster, ns: &str) -> Result<()> {
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), ns);
    pods.create(&PostParams::default(), &pod("gpu", "allot", Some(1))?)
        .await
        .context("creating a GPU pod")?;
    poll("pod gpu to be bound", WAIT, || async {
        let p = pods.get("gpu").await?;
        Ok(p.spec.and_then(|s| s.node_name).map(|_| ()))
    })
    .await
}

/// kube-scheduler's exposition, read with the admin client certificate (kube-scheduler
/// authorizes `/metrics` through the API server; the admin is in system:masters). `None`
/// with the reason when this control plane does not say where kube-scheduler is.
fn scheduler_metrics(cluster: &Cluster) -> Result<Result<String, String>> {
    let Ok(port) = std::env::var("ALLOT_E2E_SCHEDULER_PORT") else {
        return Ok(Err(
            "ALLOT_E2E_SCHEDULER_PORT is not set (e2e/up's env sets it)".into(),
        ));
    };
    let pki = cluster
        .kubeconfig
        .parent()
        .map(|d| d.join("pki"))
        .context("the kubeconfig has no directory")?;
    let file = |f: &str| pki.join(f).to_string_lossy().into_owned();
    if !pki.join("admin.crt").is_file() {
        return Ok(Err(format!(
            "no admin client certificate in {}",
            pki.display()
        )));
    }
    let url = format!("https://127.0.0.1:{port}/metrics");
    let (ca, cert, key) = (file("ca.crt"), file("admin.crt"), file("admin.key"));
    Ok(Ok(curl_ok(&[
        "--cacert", &ca, "--cert", &cert, "--key", &key, &url,
    ])?))
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn dashboard_and_rules_query_only_metrics_the_scrapes_declare() -> Result<()> {
    let test = "dashboard_and_rules_query_only_metrics_the_scrapes_declare";
    let cluster = Cluster::from_env(test).await?;
    let used = promql::used_names(&repo_root()).map_err(anyhow::Error::msg)?;
    ensure!(used.len() > 20, "too few metric names found: {used:?}");
    // One GPU pod through the allot profile first: until a pod is scheduled, the extender's
    // request, latency and decision families and kube-scheduler's attempts have no samples,
    // and both prometheus-client and Go's client leave such families out of /metrics. The
    // controller's Lease goes in the same namespace; in_namespace returns (), so its text
    // comes out through a cell.
    let controller = std::sync::OnceLock::new();
    cluster
        .in_namespace("monitoring", |cluster, ns| {
            let controller = &controller;
            async move {
                schedule_one(cluster, &ns).await?;
                let _ = controller.set(controller_metrics(cluster, &ns).await?);
                Ok(())
            }
        })
        .await?;
    let mut allot = extender_metrics(&cluster).await?;
    allot.push_str(&controller.into_inner().unwrap_or_default());
    allot.push_str(&agent_metrics(&cluster).await?);
    let declared = promql::exposition_names(&allot);
    for role in ["extender", "controller", "agent"] {
        ensure!(
            allot.contains(&format!("allot_build_info{{role=\"{role}\"")),
            "no allot_build_info of the {role} in the scrapes"
        );
    }

    let scheduler = scheduler_metrics(&cluster)?;
    let scheduler_names = match &scheduler {
        Ok(text) => promql::exposition_names(text),
        Err(why) => {
            skip(
                test,
                &format!("kube-scheduler's /metrics not scraped, its names unchecked: {why}"),
            );
            BTreeSet::new()
        }
    };
    // The families the scrapes show (TYPE lines): a name of one of them must be declared
    // exactly (a counter's `_total`, a histogram's `_bucket`).
    let scraped: BTreeSet<&str> = allot
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_whitespace().next())
        .collect();
    let registered =
        promql::registered_names(&repo_root().join("src")).map_err(anyhow::Error::msg)?;
    let (mut missing, mut unsampled) = (Vec::new(), Vec::new());
    for (name, at) in &used {
        let ok = if name.starts_with("allot_") {
            let known = declared.contains(name);
            // Registered, but no sample in this run (e.g. reconcile errors, the device
            // plugin's allocations): not in any scrape, so not checked here.
            let family = promql::family(name);
            if !known && registered.contains(family) && !scraped.contains(family) {
                unsampled.push(name.as_str());
                continue;
            }
            known
        } else if promql::KUBE_SCHEDULER_NAMES.contains(&name.as_str()) {
            scheduler.is_err() || scheduler_names.contains(name)
        } else {
            // Prometheus writes `up` itself; anything else is exported by nobody here.
            promql::PROMETHEUS_NAMES.contains(&name.as_str())
        };
        if !ok {
            missing.push(format!("{name} (used by {})", at.join(", ")));
        }
    }
    if !unsampled.is_empty() {
        skip(
            test,
            &format!(
                "registered in src/ but without samples in this run, so absent from the \
                 scrapes and not checked here (tests/monitoring_names.rs checks them): {}",
                unsampled.join(", ")
            ),
        );
    }
    ensure!(
        missing.is_empty(),
        "charts/allot/monitoring queries metrics that no scrape of allot's extender, controller \
         and agent or of kube-scheduler declares:\n  {}",
        missing.join("\n  ")
    );
    Ok(())
}
