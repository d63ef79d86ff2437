//! Extender decision latency: filter + prioritize for one shared-GPU pod at 500, 5,000 and
//! 20,000 candidate nodes, under FGD (the default) and under `learned` (the pod asks for it),
//! calling the verb functions directly (no HTTP). Clusters are copies of the embedded openb
//! node list, each loaded by an FGD replay to 90 % of its GPU requested (`loaded`), and the
//! worst case for grouping by shape, the same with every node's shape made different
//! (`distinct`); the bench prints each cluster's number of distinct node shapes.
//!
//! Under `learned` the store carries shadow prices from the pricing LP, as the extender's
//! pricer installs them.
//!
//! `warm`: the same view answers every iteration (policy caches hot, as between binds).
//! `after_bind`: a placement is recorded before each timed call, so the view is new and the
//! changed node must be rescored (what a busy scheduler sees between snapshots).
//! `after_rebuild`: the base snapshot is replaced before each timed call, as the extender does
//! after every burst of cluster changes, so every node's score is cold. `bind`: the placement
//! recorded between `warm` and `after_bind` (what a bind and a filter's hold cost the store:
//! the checks against the bound pods and the new view), with the snapshot's bound pods those
//! the loading replay placed. Percentiles are printed at the end from separately timed calls,
//! since criterion reports means.
//!
//! The rows "decoding the filter request" time what the HTTP layer does first, decoding the
//! JSON body (the pod and every node name), which the verb timings leave out.
//!
//! `ALLOT_BENCH_NODES=500,5000` limits the sizes (default 500,5000,20000).

use std::hint::black_box;
use std::time::{Duration, Instant};

use allot::extender::snapshot_store;
use allot::extender::state::{BoundPod, ClusterSnapshot, Store};
use allot::extender::verbs::{filter, prioritize};
use allot::extender::wire::ExtenderArgs;
use allot::live::pod::parse_pod;
use allot::model::Cluster;
use criterion::{Criterion, criterion_group, criterion_main};

mod common;
use common::{args_for, distinct_with_pods, loaded_with_pods, percentiles};

fn decide(store: &Store, args: &ExtenderArgs) {
    let (f, _) = filter(store, args).expect("filter");
    let (p, _) = prioritize(store, args).expect("prioritize");
    black_box((f, p));
}

/// Record one more small pod on the next node, so the following call sees a new view.
fn bind_one(store: &Store, args: &ExtenderArgs, k: &mut usize) -> Duration {
    let view = store.view();
    let Some(pod) = args.pod.as_ref() else {
        return Duration::ZERO;
    };
    let Ok(mut req) = parse_pod(pod, &view.cluster.models) else {
        return Duration::ZERO;
    };
    req.demand.gpu = allot::model::GpuDemand::None;
    req.demand.cpu_milli = 1;
    req.demand.memory_bytes = 1;
    let n = view.cluster.len();
    *k += 1;
    req.uid = format!("filler-{k}");
    let node = view.cluster.nodes()[*k % n].name.clone();
    drop(view);
    let t = Instant::now();
    let _ = store.record(&req, &node);
    t.elapsed()
}

/// A store over `cluster` and its bound `pods`; under `learned`, with prices from the LP over
/// 1,000 trace pods.
fn store_for(cluster: &Cluster, pods: &[BoundPod], policy: &str) -> Store {
    // Feasible: the figures of §4 time filter + prioritize over every feasible node.
    let store = snapshot_store(ClusterSnapshot::new(cluster.clone(), pods.to_vec()))
        .with_filter_answer(allot::extender::FilterAnswer::Feasible);
    if policy == "learned" {
        let trace = allot::sim::load_trace("default", None, &[]).expect("embedded trace");
        let window: Vec<_> = trace.pods.pods.iter().rev().take(1_000).copied().collect();
        let view = store.view();
        let book = allot::alloc::price(&view.cluster, &window, Duration::from_secs(2))
            .expect("pricing LP");
        store.install_prices(book, &view.base);
    }
    store
}

fn sizes() -> Vec<usize> {
    std::env::var("ALLOT_BENCH_NODES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![500, 5_000, 20_000])
}

/// Timed calls per percentile row at `count` nodes.
fn runs_for(count: usize) -> usize {
    match count {
        0..=1_000 => 1_000,
        1_001..=10_000 => 200,
        _ => 50,
    }
}

/// How long decoding `args` from its JSON takes, `runs` times: what the HTTP layer does before
/// the handlers the rest of this bench times (the pod and every node name).
fn decode_times(args: &ExtenderArgs, runs: usize) -> Vec<Duration> {
    let body = serde_json::to_vec(args).expect("bench arguments serialize");
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            let decoded: ExtenderArgs = serde_json::from_slice(&body).expect("bench body decodes");
            black_box(decoded);
            t.elapsed()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut report = Vec::new();
    for count in sizes() {
        for (load, (cluster, pods)) in [
            ("loaded", loaded_with_pods(count)),
            ("distinct", distinct_with_pods(count)),
        ] {
            if load == "loaded" {
                report.push((
                    format!("{count} nodes, decoding the filter request ({count} names)"),
                    Some(decode_times(
                        &args_for(&cluster, 500, None),
                        runs_for(count),
                    )),
                ));
            }
            let shapes = allot::model::distinct_shapes(cluster.nodes());
            report.push((
                format!(
                    "{count} nodes, {load}: {shapes} distinct shapes, {} pods",
                    pods.len()
                ),
                None,
            ));
            for policy in ["fgd", "learned"] {
                let args = args_for(&cluster, 500, Some(policy));
                let store = store_for(&cluster, &pods, policy);
                let label = format!("{count}_{load}_{policy}");
                let mut group = c.benchmark_group(format!("extender_filter_prioritize_{label}"));
                group.sample_size(if count > 1000 { 20 } else { 100 });
                group.bench_function("warm", |b| b.iter(|| decide(&store, &args)));
                group.finish();
                let runs = runs_for(count);
                let (mut warm, mut bound, mut rebuilt) = (Vec::new(), Vec::new(), Vec::new());
                let mut binds = Vec::new();
                let mut k = 0usize;
                for _ in 0..runs {
                    let t = Instant::now();
                    decide(&store, &args);
                    warm.push(t.elapsed());
                    binds.push(bind_one(&store, &args, &mut k));
                    let t = Instant::now();
                    decide(&store, &args);
                    bound.push(t.elapsed());
                    store.replace(ClusterSnapshot::new(cluster.clone(), pods.clone()));
                    let t = Instant::now();
                    decide(&store, &args);
                    rebuilt.push(t.elapsed());
                }
                let name = format!("{count} nodes, {load}, {policy}");
                report.push((format!("{name}, warm"), Some(warm)));
                report.push((format!("{name}, after_bind"), Some(bound)));
                report.push((format!("{name}, after_rebuild"), Some(rebuilt)));
                report.push((format!("{name}, bind"), Some(binds)));
            }
        }
    }
    for (label, samples) in report {
        match samples {
            Some(samples) => percentiles(&label, samples),
            None => println!("{label}"),
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
