//! Tests of the device-pattern bound: exact on hand-built cases, never below a real placement.

use std::time::Duration;

use proptest::prelude::*;

use super::device_bound;
use crate::model::{GpuDemand, Placement, PodDemand};
use crate::policy::testkit::{cluster, share, whole};

fn bound(pods: &[PodDemand], devices: usize) -> f64 {
    device_bound(pods, devices, Duration::from_secs(10))
}

fn close(got: f64, want: f64) {
    assert!((got - want).abs() < 0.5, "bound {got}, want {want}");
}

#[test]
fn slivers_that_no_share_fits_are_not_counted() {
    // Three 810s on two devices: two fit, and no pair shares a device.
    close(bound(&[share(810), share(810), share(810)], 2), 1620.0);
    // Three 470s on one device: two fit (940), where pooled milli would say 1000.
    close(bound(&[share(470), share(470), share(470)], 1), 940.0);
}

#[test]
fn sizes_that_pair_fill_devices() {
    close(
        bound(&[share(810), share(190), share(810), share(190)], 2),
        2000.0,
    );
    close(
        bound(
            &[share(650), share(350), share(320), share(330), share(350)],
            2,
        ),
        2000.0,
    );
}

#[test]
fn whole_pods_take_devices_shares_cannot_fill() {
    // Best: the whole GPU on one device and the 810 on the other (the 300 fits beside nothing).
    close(bound(&[whole(1), share(810), share(300)], 2), 1810.0);
    // Whole pods only: as many devices as they fill.
    close(bound(&[whole(1), whole(1), whole(1)], 2), 2000.0);
    close(bound(&[whole(4), whole(8)], 16), 12_000.0);
    // CPU-only pods take no device.
    let cpu = PodDemand {
        gpu: GpuDemand::None,
        ..share(500)
    };
    close(bound(&[cpu, share(500)], 1), 500.0);
}

/// Place `pods` first fit on nodes of the given GPU counts; the GPU milli allocated.
fn first_fit(gpus: &[usize], pods: &[PodDemand]) -> u64 {
    let mut c = cluster(gpus);
    for p in pods {
        let at = (0..c.len()).find_map(|n| {
            let node = c.node(n)?;
            let devices = node.default_devices(p.gpu).filter(|_| node.fits(p))?;
            Some(Placement { node: n, devices })
        });
        if let Some(at) = at {
            c.place(p, at).expect("fits");
        }
    }
    c.gpu_allocated_milli()
}

fn arb_gpu_pod() -> impl Strategy<Value = PodDemand> {
    prop_oneof![
        (1u32..1000).prop_map(share),
        prop_oneof![Just(1u32), Just(2), Just(4)].prop_map(whole),
    ]
}

#[test]
fn stopped_at_once_it_is_still_a_bound() {
    // Many sizes, no time to price: the first round's prices still bound the placement.
    let pods: Vec<PodDemand> = (0..60).map(|i| share(137 + 13 * i)).collect();
    let quick = device_bound(&pods, 12, Duration::ZERO);
    let full = bound(&pods, 12);
    assert!(quick + 1e-6 >= full, "{quick} < {full}");
    assert!(first_fit(&[4, 4, 4], &pods) as f64 <= quick + 1e-6);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Valid: a real placement never allocates more, and the bound never exceeds the
    /// devices or the pods' own demand.
    #[test]
    fn never_below_a_placement(pods in prop::collection::vec(arb_gpu_pod(), 1..40), gpus in prop::collection::vec(1usize..5, 1..4)) {
        let devices: usize = gpus.iter().sum();
        let b = bound(&pods, devices);
        let placed = first_fit(&gpus, &pods) as f64;
        let demand: u64 = pods.iter().map(|p| p.gpu.total_milli()).sum();
        prop_assert!(placed <= b + 1e-6, "placed {placed} > bound {b}");
        prop_assert!(b <= demand as f64 + 1e-6 && b <= devices as f64 * 1000.0 + 1e-6);
    }
}
