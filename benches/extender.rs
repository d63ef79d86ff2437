//! Extender decision latency: filter + prioritize for one shared-GPU pod at 500 and 5,000
//! candidate nodes, under FGD (the default) and under `learned` (the pod asks for it),
//! calling the verb functions directly (no HTTP). Nodes are the embedded
//! openb node list (repeated with new names to reach 5,000), half-filled with trace pods.
//!
//! Under `learned` the store carries shadow prices from the pricing LP, as the extender's
//! pricer installs them.
//!
//! `warm`: the same view answers every iteration (policy caches hot, as between binds).
//! `after_bind`: a placement is recorded before each timed call, so the view is new and the
//! changed node must be rescored (what a busy scheduler sees). Percentiles are printed at
//! the end from separately timed calls, since criterion reports means.

use std::hint::black_box;
use std::time::{Duration, Instant};

use allot::extender::snapshot_store;
use allot::extender::state::{ClusterSnapshot, Store};
use allot::extender::verbs::{filter, prioritize};
use allot::extender::wire::ExtenderArgs;
use allot::live::pod::parse_pod;
use criterion::{Criterion, criterion_group, criterion_main};

mod common;
use common::{args_for, cluster, percentiles};

fn decide(store: &Store, args: &ExtenderArgs) {
    let (f, _) = filter(store, args).expect("filter");
    let (p, _) = prioritize(store, args).expect("prioritize");
    black_box((f, p));
}

/// Record one more small pod on the next node, so the following call sees a new view.
fn bind_one(store: &Store, args: &ExtenderArgs, k: &mut usize) {
    let view = store.view();
    let Some(pod) = args.pod.as_ref() else { return };
    let Ok(mut req) = parse_pod(pod, &view.cluster.models) else {
        return;
    };
    req.demand.gpu = allot::model::GpuDemand::None;
    req.demand.cpu_milli = 1;
    req.demand.memory_bytes = 1;
    let n = view.cluster.len();
    *k += 1;
    req.uid = format!("filler-{k}");
    let _ = store.record(&req, &view.cluster.nodes()[*k % n].name);
}

fn bench(c: &mut Criterion) {
    let mut report = Vec::new();
    for (count, policy) in [500usize, 5_000]
        .into_iter()
        .flat_map(|n| [(n, "fgd"), (n, "learned")])
    {
        let cluster = cluster(count);
        let args = args_for(&cluster, 500, Some(policy));
        let store = snapshot_store(ClusterSnapshot::new(cluster, Vec::new()));
        if policy == "learned" {
            // Prices as the extender's pricer installs them: the LP over 1,000 trace pods.
            let trace = allot::sim::load_trace("default", None, &[]).expect("embedded trace");
            let window: Vec<_> = trace.pods.pods.iter().rev().take(1_000).copied().collect();
            let view = store.view();
            let book = allot::alloc::price(&view.cluster, &window, Duration::from_secs(2))
                .expect("pricing LP");
            store.install_prices(book, &view.base);
        }
        let mut group = c.benchmark_group(format!("extender_filter_prioritize_{count}_{policy}"));
        group.sample_size(if count > 1000 { 30 } else { 100 });
        group.bench_function("warm", |b| b.iter(|| decide(&store, &args)));
        group.bench_function("filter_only", |b| {
            b.iter(|| black_box(filter(&store, &args).expect("filter")))
        });
        group.bench_function("prioritize_only", |b| {
            b.iter(|| black_box(prioritize(&store, &args).expect("prioritize")))
        });
        let mut k = 0usize;
        group.bench_function("after_bind", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    bind_one(&store, &args, &mut k);
                    let t = Instant::now();
                    decide(&store, &args);
                    total += t.elapsed();
                }
                total
            })
        });
        group.finish();
        let runs = if count > 1000 { 300 } else { 2_000 };
        let mut warm = Vec::with_capacity(runs);
        let mut fresh = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            decide(&store, &args);
            warm.push(t.elapsed());
            bind_one(&store, &args, &mut k);
            let t = Instant::now();
            decide(&store, &args);
            fresh.push(t.elapsed());
        }
        report.push((format!("{count} nodes, {policy}, warm"), warm));
        report.push((format!("{count} nodes, {policy}, after_bind"), fresh));
    }
    for (label, samples) in report {
        percentiles(&label, samples);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
