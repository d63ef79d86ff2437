//! The sampling rule against kube-scheduler's numbers, and the rotating scan.

use super::*;
use crate::model::GpuDemand;
use crate::policy::testkit::{cluster, pod, share, whole};

#[test]
fn adaptive_percentage_follows_kube_scheduler() {
    let a = NodeSampling::Adaptive;
    // 50 - 500/125 = 46 %; 50 - 1213/125 = 41 %; 50 - 5000/125 = 10 %.
    assert_eq!(a.percent(500), Some(46));
    assert_eq!(a.nodes_to_find(500), 230);
    assert_eq!(a.percent(1213), Some(41));
    assert_eq!(a.nodes_to_find(1213), 497);
    assert_eq!(a.percent(5000), Some(10));
    assert_eq!(a.nodes_to_find(5000), 500);
    // The floor of 5 % from 5,625 nodes on.
    assert_eq!(a.percent(6000), Some(5));
    assert_eq!(a.percent(100_000), Some(5));
    assert_eq!(a.nodes_to_find(100_000), 5000);
    assert_eq!(NodeSampling::All.percent(500), None);
    assert_eq!(NodeSampling::All.nodes_to_find(500), 500);
}

#[test]
fn small_clusters_and_small_percentages_keep_a_hundred_nodes() {
    // Below 100 nodes every node is filtered, whatever the percentage.
    assert_eq!(NodeSampling::Percent(5).nodes_to_find(99), 99);
    assert_eq!(NodeSampling::Adaptive.nodes_to_find(40), 40);
    // At or above 100 nodes, never fewer than 100.
    assert_eq!(NodeSampling::Percent(5).nodes_to_find(100), 100);
    assert_eq!(NodeSampling::Percent(5).nodes_to_find(1213), 100);
    assert_eq!(NodeSampling::Percent(10).nodes_to_find(1213), 121);
    assert_eq!(NodeSampling::Percent(46).nodes_to_find(1213), 557);
    assert_eq!(NodeSampling::Percent(100).nodes_to_find(1213), 1213);
}

#[test]
fn values_parse_as_kube_scheduler_reads_them() {
    assert_eq!("all".parse(), Ok(NodeSampling::All));
    assert_eq!("Adaptive".parse(), Ok(NodeSampling::Adaptive));
    assert_eq!("0".parse(), Ok(NodeSampling::Adaptive));
    assert_eq!("46".parse(), Ok(NodeSampling::Percent(46)));
    assert_eq!(" 10% ".parse(), Ok(NodeSampling::Percent(10)));
    assert_eq!("100".parse(), Ok(NodeSampling::Percent(100)));
    for bad in ["", "101", "-5", "4.5", "half", "300"] {
        assert!(bad.parse::<NodeSampling>().is_err(), "{bad}");
    }
    assert_eq!(NodeSampling::Percent(46).to_string(), "46%");
}

/// 250 one-GPU nodes; node `i` is full when `full(i)`.
fn nodes_250(full: impl Fn(usize) -> bool) -> crate::model::Cluster {
    let mut c = cluster(&[1; 250]);
    for i in (0..250).filter(|&i| full(i)) {
        let at = crate::model::Placement {
            node: i,
            devices: crate::model::DeviceSet::single(0),
        };
        assert!(c.place(&whole(1), at).is_ok());
    }
    c
}

#[test]
fn the_scan_rotates_by_the_nodes_it_processed() {
    // 250 nodes, 10 % -> 100 to find. Odd nodes are full, so finding 100 even nodes
    // takes 199 nodes: 0, 2, ..., 198.
    let c = nodes_250(|i| i % 2 == 1);
    let mut scan = NodeScan::new(NodeSampling::Percent(10), KubeFilter::Allot);
    let mut out = Vec::new();
    scan.candidates(&c, &whole(1), &mut out);
    assert_eq!(out, (0..200).step_by(2).collect::<Vec<_>>());
    assert_eq!(scan.next_start(), 199);
    // The next scan starts at 199 and wraps: 200..=248 give 25 even nodes, 0..=148 the
    // other 75; 199 + 200 nodes processed = 399 -> 149.
    scan.candidates(&c, &whole(1), &mut out);
    let mut expected: Vec<usize> = (200..250).step_by(2).chain((0..150).step_by(2)).collect();
    expected.sort_unstable();
    assert_eq!(out, expected);
    assert_eq!(scan.next_start(), 149);
}

#[test]
fn fewer_feasible_nodes_than_wanted_gives_them_all_and_keeps_the_start() {
    // Only nodes 10, 20, ..., 240 are free: 24 feasible, 100 wanted.
    let c = nodes_250(|i| i % 10 != 0 || i == 0);
    let mut scan = NodeScan::new(NodeSampling::Percent(10), KubeFilter::Allot);
    let mut out = Vec::new();
    scan.candidates(&c, &whole(1), &mut out);
    assert_eq!(out, (10..250).step_by(10).collect::<Vec<_>>());
    assert_eq!(
        scan.next_start(),
        0,
        "all 250 processed: back where it started"
    );
    // A pod that fits nowhere processes every node and leaves the start alone too.
    let big = pod(1_000_000, GpuDemand::None);
    scan.candidates(&c, &big, &mut out);
    assert!(out.is_empty());
    assert_eq!(scan.next_start(), 0);
}

#[test]
fn all_and_a_hundred_percent_find_every_feasible_node() {
    let c = nodes_250(|i| i % 3 == 0);
    let every: Vec<usize> = (0..250).filter(|i| i % 3 != 0).collect();
    for sampling in [NodeSampling::All, NodeSampling::Percent(100)] {
        let mut scan = NodeScan::new(sampling, KubeFilter::Requests);
        let mut out = Vec::new();
        for _ in 0..3 {
            scan.candidates(&c, &whole(1), &mut out);
            assert_eq!(out, every, "{sampling}");
            assert_eq!(scan.next_start(), 0);
        }
    }
}

#[test]
fn kube_scheduler_counts_nodes_it_cannot_tell_are_full_and_the_extender_drops_them() {
    // Odd nodes: their one GPU holds a 600-milli share. A 500-milli share fits only the
    // even ones, but kube-scheduler sees CPU and memory alone and counts every node.
    let mut c = cluster(&[1; 250]);
    for i in (1..250).step_by(2) {
        let at = crate::model::Placement {
            node: i,
            devices: crate::model::DeviceSet::single(0),
        };
        assert!(c.place(&share(600), at).is_ok());
    }
    let mut requests = NodeScan::new(NodeSampling::Percent(10), KubeFilter::Requests);
    let mut out = Vec::new();
    requests.candidates(&c, &share(500), &mut out);
    assert_eq!(
        out,
        (0..100).step_by(2).collect::<Vec<_>>(),
        "100 counted, 50 fit"
    );
    assert_eq!(requests.next_start(), 100);
    let mut ideal = NodeScan::new(NodeSampling::Percent(10), KubeFilter::Allot);
    ideal.candidates(&c, &share(500), &mut out);
    assert_eq!(out.len(), 100);
    assert_eq!(ideal.next_start(), 199);
    // Whole GPUs are requests it does see: a held GPU is not counted.
    let full = nodes_250(|i| i % 2 == 1);
    requests.candidates(&full, &whole(1), &mut out);
    assert_eq!(out.len(), 100);
    assert!(out.iter().all(|i| i % 2 == 0));
}

#[test]
fn requests_fit_reads_cpu_memory_and_whole_gpus_only() {
    let mut c = cluster(&[2]);
    let at = crate::model::Placement {
        node: 0,
        devices: crate::model::DeviceSet::single(0),
    };
    assert!(c.place(&share(900), at).is_ok());
    let node = &c.nodes()[0];
    assert!(requests_fit(node, &whole(2)), "the share is invisible");
    assert!(!node.fits(&whole(2)));
    assert!(requests_fit(node, &share(200)));
    assert!(!requests_fit(node, &pod(65_000, GpuDemand::None)));
    let at = crate::model::Placement {
        node: 0,
        devices: crate::model::DeviceSet::single(1),
    };
    assert!(c.place(&whole(1), at).is_ok());
    assert!(requests_fit(&c.nodes()[0], &whole(1)));
    assert!(!requests_fit(&c.nodes()[0], &whole(2)));
    assert_eq!("allot".parse(), Ok(KubeFilter::Allot));
    assert!("kube".parse::<KubeFilter>().is_err());
}

#[test]
fn a_small_cluster_is_scanned_whole_whatever_the_setting() {
    let c = cluster(&[1; 30]);
    let mut scan = NodeScan::new(NodeSampling::Percent(5), KubeFilter::Requests);
    let mut out = Vec::new();
    scan.candidates(&c, &whole(1), &mut out);
    assert_eq!(out.len(), 30);
}
