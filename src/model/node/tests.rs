//! The node's own tests: which devices shares and whole GPUs take, which misfits are
//! permanent, and assign / release keeping the books.

use super::*;
use crate::model::gpu::ModelCatalog;

fn node(gpus: usize) -> (Node, ModelCatalog) {
    let mut c = ModelCatalog::default();
    let t4 = c.intern("T4").unwrap();
    (Node::new("n", 32_000, 64 << 30, gpus, Some(t4)).unwrap(), c)
}

fn pod(cpu: u64, gpu: GpuDemand) -> PodDemand {
    PodDemand {
        cpu_milli: cpu,
        memory_bytes: 1 << 30,
        gpu,
        models: ModelSet::ANY,
    }
}

#[test]
fn shares_take_the_tightest_device() {
    let (mut n, _) = node(4);
    let half = pod(1000, GpuDemand::Shared { milli: 500 });
    let d0 = n.default_devices(half.gpu).unwrap();
    assert_eq!(d0, DeviceSet::single(0));
    n.assign(&half, d0).unwrap();
    let small = pod(1000, GpuDemand::Shared { milli: 300 });
    assert_eq!(n.default_devices(small.gpu), Some(DeviceSet::single(0)));
    let whole = pod(1000, GpuDemand::Whole { count: 3 });
    assert_eq!(
        n.default_devices(whole.gpu),
        Some(DeviceSet::single(1).with(2).with(3))
    );
    let four = pod(1000, GpuDemand::Whole { count: 4 });
    assert_eq!(
        n.check(&four),
        Err(Misfit::WholeGpus {
            need: 4,
            free: 3,
            total: 4
        })
    );
    assert!(!n.check(&four).unwrap_err().permanent());
}

#[test]
fn model_and_size_misfits_are_permanent() {
    let (n, mut c) = node(2);
    let v100 = c.intern("V100M32").unwrap();
    let mut p = pod(1000, GpuDemand::Whole { count: 1 });
    p.models = ModelSet::only(v100);
    assert_eq!(n.check(&p), Err(Misfit::Model));
    assert!(Misfit::Model.permanent());
    let big = pod(1000, GpuDemand::Whole { count: 8 });
    assert!(n.check(&big).unwrap_err().permanent());
    let cpu = pod(64_000, GpuDemand::None);
    assert!(n.check(&cpu).unwrap_err().permanent());
}

#[test]
fn assign_then_release_restores_the_node() {
    let (mut n, _) = node(2);
    let before = n.clone();
    let p = pod(4000, GpuDemand::Shared { milli: 250 });
    let d = n.default_devices(p.gpu).unwrap();
    n.assign(&p, d).unwrap();
    assert_eq!(n.idle_gpu_milli(), 1750);
    n.release(&p, d);
    assert_eq!(n.gpu_free(), before.gpu_free());
    assert_eq!(n.cpu_free, before.cpu_free);
    assert_eq!(n.kinds, before.kinds);
}

#[test]
fn assign_refuses_overbooking() {
    let (mut n, _) = node(1);
    let p = pod(1000, GpuDemand::Shared { milli: 700 });
    n.assign(&p, DeviceSet::single(0)).unwrap();
    assert!(n.assign(&p, DeviceSet::single(0)).is_err());
    assert_eq!(n.gpu_free(), &[300]);
}
