//! `e2e-bench`: how fast the real kube-scheduler binds GPU pods on the e2e control plane
//! (`e2e/up`), with whatever extender configuration that control plane has. `e2e/bench` runs
//! it twice, without and with the allot extender, and prints the ratio.
//!
//! All pods are created first behind a scheduling gate, so that creating them is not what is
//! measured; then the gates are lifted (concurrently) and the clock runs from the first lift
//! to the last bind. Per pod, the latency is from its own lift to its bind as the watch saw it.
//!
//! ```text
//! e2e-bench [--pods 2000] [--gpus 1 | --share-milli M] [--concurrency 16] [--timeout-seconds 600]
//!           [--expect N] [--pending N [--pending-by model|node-selector]]
//! ```
//! `--share-milli M`: each pod asks for M milli-GPU of one GPU (annotation `allot.dev/gpu-milli`,
//! no `nvidia.com/gpu`), so that more pods fit than the nodes have GPUs (`e2e/burst`).
//! `--expect N` (at most `--pods`): the clock stops at the N-th bind, for a burst larger than
//! the cluster holds, where the rest stay pending (`e2e/burst --expect`). `--pending N`: N of
//! the pods, spread evenly through the lift order, ask for a GPU model no node has, so they
//! stay pending from their first try (the extender refuses every node) while the others bind;
//! the clock counts the others (`--expect` defaults to the rest). `--pending-by node-selector`:
//! they select a node label no node has instead, so kube-scheduler's own filter refuses them
//! and the extender never sees them: the cost of pending pods without allot's part.
//! Needs `ALLOT_E2E_KUBECONFIG` (`source $ALLOT_E2E_DIR/env`). Prints one JSON line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config};
use serde_json::json;
use tokio::sync::Semaphore;

const GATE: &str = "allot.dev/bench";

struct Options {
    pods: usize,
    gpus: u32,
    /// Milli-GPU of a share per pod instead of whole GPUs.
    share_milli: Option<u32>,
    concurrency: usize,
    timeout: Duration,
    /// Binds that end the run (`pods` unless --expect).
    expect: Option<usize>,
    /// Pods asking for a model no node has (spread through the others).
    pending: usize,
    /// Whether the pending pods select a node label instead (kube-scheduler refuses them).
    pending_by_selector: bool,
}

fn options() -> Result<Options> {
    let mut o = Options {
        pods: 2000,
        gpus: 1,
        share_milli: None,
        concurrency: 16,
        timeout: Duration::from_secs(600),
        expect: None,
        pending: 0,
        pending_by_selector: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = |what: &str| -> Result<u64> {
            let v = args
                .next()
                .with_context(|| format!("{flag} needs {what}"))?;
            v.parse()
                .with_context(|| format!("{flag} {v:?} is not {what}"))
                .and_then(|n: u64| {
                    if n == 0 {
                        bail!("{flag} must be > 0")
                    } else {
                        Ok(n)
                    }
                })
        };
        match flag.as_str() {
            "--pods" => o.pods = value("a number of pods")? as usize,
            "--gpus" => o.gpus = value("a number of GPUs")? as u32,
            "--share-milli" => {
                let m = value("a milli-GPU share (1-999)")?;
                if m >= 1000 {
                    bail!("--share-milli must be below 1000 (a share of one GPU), got {m}");
                }
                o.share_milli = Some(m as u32);
            }
            "--concurrency" => o.concurrency = value("a number of requests")? as usize,
            "--timeout-seconds" => o.timeout = Duration::from_secs(value("seconds")?),
            "--expect" => o.expect = Some(value("a number of binds")? as usize),
            "--pending" => o.pending = value("a number of pods")? as usize,
            "--pending-by" => {
                o.pending_by_selector = match args.next().as_deref() {
                    Some("model") => false,
                    Some("node-selector") => true,
                    other => bail!("--pending-by must be model or node-selector, got {other:?}"),
                }
            }
            "-h" | "--help" => {
                println!(
                    "e2e-bench [--pods N] [--gpus N | --share-milli M] [--concurrency N] [--timeout-seconds S] [--expect N] [--pending N [--pending-by model|node-selector]]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown flag {other:?} (try --help)"),
        }
    }
    if o.pending >= o.pods {
        bail!(
            "--pending {} leaves none of the --pods {} to bind",
            o.pending,
            o.pods
        );
    }
    let can_bind = o.pods - o.pending;
    if o.expect.is_some_and(|n| n > can_bind) {
        bail!(
            "--expect {} is more than the {can_bind} pods that may bind",
            o.expect.unwrap_or(0)
        );
    }
    Ok(o)
}

async fn client() -> Result<Client> {
    let path = std::env::var("ALLOT_E2E_KUBECONFIG")
        .context("ALLOT_E2E_KUBECONFIG is not set (source $ALLOT_E2E_DIR/env after e2e/up)")?;
    let raw = Kubeconfig::read_from(&path).with_context(|| format!("reading {path}"))?;
    let config = Config::from_custom_kubeconfig(raw, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Whether pod `i` is one of the `--pending` ones: N spread evenly over the pods.
fn pending(i: usize, o: &Options) -> bool {
    i * o.pending / o.pods != (i + 1) * o.pending / o.pods
}

fn gated_pod(i: usize, o: &Options) -> Result<Pod> {
    let (mut annotations, limits) = match o.share_milli {
        Some(m) => (json!({ "allot.dev/gpu-milli": m.to_string() }), json!({})),
        None => (json!({}), json!({ "nvidia.com/gpu": o.gpus.to_string() })),
    };
    let mut selector = json!({});
    if pending(i, o) && o.pending_by_selector {
        selector = json!({ "allot.dev/gpu-model": "NoSuchGpu" });
    } else if pending(i, o) {
        annotations["allot.dev/gpu-models"] = json!("NoSuchGpu");
    }
    Ok(serde_json::from_value(json!({
        "metadata": { "name": format!("bench-{i:05}"), "annotations": annotations },
        "spec": {
            "schedulerName": "allot",
            "nodeSelector": selector,
            "schedulingGates": [{ "name": GATE }],
            "containers": [{ "name": "main", "image": "allot-e2e/pause:never-pulled",
                "resources": { "requests": { "cpu": "100m", "memory": "128Mi" },
                               "limits": limits } }]
        }
    }))?)
}

/// Run `f(i)` for every `i` in `0..n`, at most `limit` at a time; the first error wins.
async fn for_each<F, Fut>(n: usize, limit: usize, f: F) -> Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limit));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = permits.clone().acquire_owned().await?;
        let work = f(i);
        tasks.push(tokio::spawn(async move {
            let out = work.await;
            drop(permit);
            out
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<()> {
    let o = options()?;
    let client = client().await?;
    let ns = format!("bench-{}", std::process::id());
    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": ns } }))?,
        )
        .await
        .with_context(|| format!("creating namespace {ns}"))?;
    let result = run(&client, &ns, &o).await;
    if let Err(e) = namespaces.delete(&ns, &DeleteParams::default()).await {
        eprintln!("e2e-bench: could not delete namespace {ns}: {e}");
    }
    let line = result?;
    println!("{line}");
    Ok(())
}

async fn run(client: &Client, ns: &str, o: &Options) -> Result<serde_json::Value> {
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    // The default ServiceAccount must exist before pods are accepted.
    let sas = Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client.clone(), ns);
    let wait_sa = Instant::now();
    while sas.get_opt("default").await?.is_none() {
        if wait_sa.elapsed() > Duration::from_secs(60) {
            bail!("no default ServiceAccount in {ns} after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let created = Instant::now();
    for_each(o.pods, o.concurrency, |i| {
        let pods = pods.clone();
        let pod = gated_pod(i, o);
        async move {
            pods.create(&PostParams::default(), &pod?)
                .await
                .with_context(|| format!("creating pod {i}"))?;
            Ok(())
        }
    })
    .await?;
    eprintln!(
        "e2e-bench: created {} gated pods in {:.1}s",
        o.pods,
        created.elapsed().as_secs_f64()
    );

    // Watch binds from before the first gate is lifted.
    let bound_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = bound_at.clone();
    let stream = watcher(pods.clone(), watcher::Config::default()).applied_objects();
    let watch = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Ok(p) = event
                && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
            {
                let name = p.metadata.name.unwrap_or_default();
                let mut seen = seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                seen.entry(name).or_insert_with(Instant::now);
            }
        }
    });

    let lifted_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let start = Instant::now();
    let remove_gate: Patch<serde_json::Value> = Patch::Json(serde_json::from_value(
        json!([{ "op": "remove", "path": "/spec/schedulingGates" }]),
    )?);
    for_each(o.pods, o.concurrency, |i| {
        let (pods, lifted, patch) = (pods.clone(), lifted_at.clone(), remove_gate.clone());
        async move {
            let name = format!("bench-{i:05}");
            let at = Instant::now();
            pods.patch(&name, &PatchParams::default(), &patch)
                .await
                .with_context(|| format!("lifting the gate of {name}"))?;
            lifted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(name, at);
            Ok(())
        }
    })
    .await?;
    let lifted_all = start.elapsed();

    let mut last_count = 0;
    let mut last_progress = Instant::now();
    let expect = o.expect.unwrap_or(o.pods - o.pending);
    loop {
        let count = bound_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        if count >= expect {
            break;
        }
        if count != last_count {
            (last_count, last_progress) = (count, Instant::now());
        }
        if start.elapsed() > o.timeout || last_progress.elapsed() > Duration::from_secs(60) {
            eprintln!("e2e-bench: stopped waiting with {count}/{expect} pods bound",);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watch.abort();

    // The first `expect` binds: the ones the clock counts.
    let mut bound: Vec<(String, Instant)> = bound_at
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(name, at)| (name.clone(), *at))
        .collect();
    bound.sort_by_key(|(_, at)| *at);
    bound.truncate(expect);
    let lifted = lifted_at
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let last = bound
        .last()
        .map_or(Duration::ZERO, |(_, t)| t.duration_since(start));
    let mut latencies: Vec<f64> = bound
        .iter()
        .filter_map(|(name, b)| {
            Some(
                b.saturating_duration_since(*lifted.get(name)?)
                    .as_secs_f64()
                    * 1e3,
            )
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let secs = last.as_secs_f64();
    Ok(json!({
        "pods": o.pods,
        "expected": expect,
        "pending": o.pending,
        "pending_by": if o.pending_by_selector { "node-selector" } else { "model" },
        "bound": bound.len(),
        "gpus_per_pod": o.share_milli.map_or(f64::from(o.gpus), |m| f64::from(m) / 1000.0),
        "seconds": (secs * 1000.0).round() / 1000.0,
        "pods_per_second": if secs > 0.0 { (bound.len() as f64 / secs * 10.0).round() / 10.0 } else { 0.0 },
        "gates_lifted_seconds": (lifted_all.as_secs_f64() * 1000.0).round() / 1000.0,
        "latency_ms_p50": percentile(&latencies, 50.0).round(),
        "latency_ms_p99": percentile(&latencies, 99.0).round(),
    }))
}
