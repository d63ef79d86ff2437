//! Time per placement decision as the cluster grows: 1k, 5k and 20k nodes made by repeating
//! the openb GPU node list, half loaded, then 1,000 more openb pods placed one by one.
//! Run: `cargo bench --bench placement` (or `make bench`).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use allot::model::{Cluster, Node};
use allot::policy::PolicyKind;
use allot::sim::replay::{arrivals, node_rank, replay};
use allot::sim::{Workload, load_trace};

const SIZES: [usize; 3] = [1_000, 5_000, 20_000];
/// Pods placed per measured iteration.
const BATCH: usize = 1_000;

fn scaled(base: &Cluster, n: usize) -> Cluster {
    let nodes: Vec<Node> = (0..n)
        .map(|i| {
            let mut node = base.nodes()[i % base.len()].clone();
            node.name = format!("synthetic-{i:05}");
            node
        })
        .collect();
    Cluster::new(base.models.clone(), nodes)
}

fn placement(c: &mut Criterion) {
    let trace = load_trace("default", None, &[]).expect("the embedded trace loads");
    let workload = Workload {
        cluster: &trace.cluster,
        pods: &trace.pods.pods,
        specs: &trace.pods.specs,
    };
    let target = workload.target();
    let mut group = c.benchmark_group("placement");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    for &n in &SIZES {
        let cluster = scaled(&trace.cluster, n);
        // Load the cluster to about half its GPU capacity with FGD, then measure the next pods.
        let mut pods = Vec::new();
        while pods.len() < 2 * BATCH
            || (pods
                .iter()
                .map(|p: &allot::model::PodDemand| p.gpu.total_milli())
                .sum::<u64>())
                < cluster.gpu_capacity_milli() / 2
        {
            pods.extend(arrivals(
                &trace.pods.pods,
                trace.cluster.gpu_capacity_milli(),
                42 + pods.len() as u64,
            ));
        }
        let split = pods.len() - BATCH;
        let mut warm = cluster.clone();
        let mut fgd = PolicyKind::Fgd.build(&target, 42);
        let mut decider = allot::policy::Decider::new(node_rank(n, 42));
        let mut loaded = 0u64;
        for pod in &pods[..split] {
            if loaded >= warm.gpu_capacity_milli() / 2 {
                break;
            }
            if let Ok(at) = decider.decide(fgd.as_mut(), &warm, pod) {
                if warm.place(pod, at).is_ok() {
                    loaded += pod.gpu.total_milli();
                }
            }
        }
        let measured = &pods[split..];
        for kind in [PolicyKind::Fgd, PolicyKind::BestFit] {
            group.bench_function(format!("{kind}/{n}-nodes"), |b| {
                b.iter_batched(
                    || (warm.clone(), kind.build(&target, 42)),
                    |(cluster, mut policy)| {
                        black_box(replay(
                            &cluster,
                            measured,
                            policy.as_mut(),
                            node_rank(n, 42),
                            &target,
                        ))
                    },
                    BatchSize::PerIteration,
                );
            });
        }
    }
    group.finish();
}

criterion_group!(benches, placement);
criterion_main!(benches);
