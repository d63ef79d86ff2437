//! LP planning at three sizes, per backend: 100 pods x 50 nodes, 1,000 x 200, 10,000 x 5,000,
//! openb demand classes (default trace, shuffled with seed 42) over openb node classes
//! (the GPU node list repeated). Run: `cargo bench --bench alloc` (add `--features highs`
//! for HiGHS). Each instance's plan facts (classes, placed, gap) are printed once.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use allot::alloc::{Backend, BatchPod, Objective, PlanOptions, plan};
use allot::model::{Cluster, Node};
use allot::policy::{Context, Decider, PolicyKind};
use allot::sim::load_trace;
use allot::sim::replay::arrivals;

/// (pods, nodes, GPU share of the cluster already in use before the batch).
const SIZES: [(usize, usize, u64); 5] = [
    (100, 50, 0),
    (1_000, 200, 0),
    (10_000, 5_000, 0),
    // Contended: ~7,600 GPUs of demand for 6,212 GPUs, so the plan must choose.
    (10_000, 1_213, 0),
    // Half loaded by FGD first: partly used nodes split into many more node classes.
    (10_000, 5_000, 50),
];

fn instance(pods: usize, nodes: usize, preload_pct: u64) -> (Cluster, Vec<BatchPod>) {
    let trace = load_trace("default", None, &[]).expect("the embedded trace loads");
    let base = &trace.cluster;
    let cluster = Cluster::new(
        base.models.clone(),
        (0..nodes)
            .map(|i| {
                let mut n: Node = base.nodes()[i % base.len()].clone();
                n.name = format!("node-{i:05}").into();
                n
            })
            .collect(),
    );
    let mut cluster = cluster;
    let mut stream =
        (42u64..).flat_map(|seed| arrivals(&trace.pods.pods, base.gpu_capacity_milli(), seed));
    if preload_pct > 0 {
        let target = trace.workload().target();
        let mut fgd = PolicyKind::Fgd.build(&target, 42);
        let mut decider = Decider::new(std::sync::Arc::new(Context::with_rank(
            (0..nodes as u32).collect(),
        )));
        let goal = cluster.gpu_capacity_milli() * preload_pct / 100;
        for pod in stream.by_ref() {
            if cluster.gpu_allocated_milli() >= goal {
                break;
            }
            if let Ok(at) = decider.decide(fgd.as_mut(), &cluster, &pod, "pod") {
                cluster.place(&pod, at).expect("a decided placement fits");
            }
        }
    }
    let batch = stream
        .take(pods)
        .map(|demand| BatchPod {
            demand,
            priority: 0,
            gang: None,
            elastic: false,
        })
        .collect();
    (cluster, batch)
}

fn planning(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for (pods, nodes, preload) in SIZES {
        let (cluster, batch) = instance(pods, nodes, preload);
        let name = if preload > 0 {
            format!("{pods}x{nodes}-loaded{preload}")
        } else {
            format!("{pods}x{nodes}")
        };
        for backend in Backend::all() {
            let options = PlanOptions {
                objective: Objective::MaxPlaced,
                backend,
                time_limit: Duration::from_secs(10),
            };
            let p = plan(&cluster, &batch, &options).expect("valid batch");
            eprintln!(
                "plan {name} {}: {} pod classes x {} node classes, placed {}/{}, value {:.1}, bound {:.1}, gap {:.4}%, method {:?}",
                backend.name(),
                p.pod_classes,
                p.node_classes,
                p.placed(),
                pods,
                p.value,
                p.bound,
                p.gap * 100.0,
                p.method
            );
            group.bench_function(format!("{}/{name}", backend.name()), |b| {
                b.iter(|| black_box(plan(&cluster, &batch, &options)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, planning);
criterion_main!(benches);
