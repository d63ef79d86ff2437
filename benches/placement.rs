//! Time per placement decision as the cluster grows: 1k, 5k and 20k nodes made by repeating
//! the openb GPU node list, half loaded, then 1,000 more openb pods placed one by one.
//! Run: `cargo bench --bench placement` (or `make bench`).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use allot::model::frag::TargetWorkload;
use allot::model::{Cluster, Node, PodDemand};
use allot::policy::{Decider, PolicyKind};
use allot::sim::load_trace;
use allot::sim::replay::{arrivals, context, replay};

const SIZES: [usize; 3] = [1_000, 5_000, 20_000];
/// Pods placed per measured iteration.
const BATCH: usize = 1_000;

fn scaled(base: &Cluster, n: usize) -> Cluster {
    let nodes: Vec<Node> = (0..n)
        .map(|i| {
            let mut node = base.nodes()[i % base.len()].clone();
            node.name = format!("synthetic-{i:05}").into();
            node
        })
        .collect();
    Cluster::new(base.models.clone(), nodes)
}

/// `cluster` loaded with FGD to half its GPU capacity by openb arrivals, and the next
/// `BATCH` arrivals to measure.
fn half_loaded(
    cluster: &Cluster,
    trace_pods: &[PodDemand],
    target: &TargetWorkload,
) -> (Cluster, Vec<PodDemand>) {
    let mut loaded = cluster.clone();
    let mut policy = PolicyKind::Fgd.build(target, 42);
    let mut decider = Decider::new(context(cluster, target, 42));
    let mut pods =
        (42u64..).flat_map(|seed| arrivals(trace_pods, cluster.gpu_capacity_milli(), seed));
    // Pods that fit nowhere (model constraints, large gangs of GPUs) are skipped, as in a replay.
    for pod in pods.by_ref() {
        if loaded.gpu_allocated_milli() >= cluster.gpu_capacity_milli() / 2 {
            break;
        }
        if let Ok(at) = decider.decide(policy.as_mut(), &loaded, &pod, "pod") {
            loaded.place(&pod, at).expect("a decided placement fits");
        }
    }
    (loaded, pods.take(BATCH).collect())
}

fn placement(c: &mut Criterion) {
    let trace = load_trace("default", None, &[]).expect("the embedded trace loads");
    let workload = trace.workload();
    let target = workload.target();
    let mut group = c.benchmark_group("placement");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    for &n in &SIZES {
        let cluster = scaled(&trace.cluster, n);
        let (warm, measured) = half_loaded(&cluster, &trace.pods.pods, &target);
        for kind in [PolicyKind::Fgd, PolicyKind::BestFit] {
            group.bench_function(format!("{kind}/{n}-nodes"), |b| {
                b.iter_batched(
                    || (warm.clone(), kind.build(&target, 42)),
                    |(cluster, mut policy)| {
                        black_box(replay(
                            &cluster,
                            &measured,
                            policy.as_mut(),
                            context(&cluster, &target, 42),
                        ))
                    },
                    BatchSize::PerIteration,
                );
            });
        }
    }
    group.finish();
}

/// One whole replay of the paper's default experiment: FGD, openb default trace, seed 42
/// (8,152 pods tuned to ~10,600 arrivals on 1,213 nodes), as `allot simulate` runs it.
fn replay_default(c: &mut Criterion) {
    let trace = load_trace("default", None, &[]).expect("the embedded trace loads");
    let workload = trace.workload();
    let target = workload.target();
    let capacity = trace.cluster.gpu_capacity_milli();
    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    for kind in [PolicyKind::Fgd, PolicyKind::BestFit] {
        group.bench_function(format!("{kind}/default/seed-42"), |b| {
            b.iter(|| {
                let arr = arrivals(&trace.pods.pods, capacity, 42);
                let mut policy = kind.build(&target, 42);
                black_box(replay(
                    &trace.cluster,
                    &arr,
                    policy.as_mut(),
                    context(&trace.cluster, &target, 42),
                ))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, replay_default, placement);
criterion_main!(benches);
