//! The policy file's format: reading back, refusing changed or broken files, older feature
//! lists, supports and experts.

use super::*;
use crate::policy::learned::features::{ALWAYS_LISTED, CPU_BOUND, MULTI, WHOLE};
use crate::policy::learned::support::{Support, WorkloadMix};

#[test]
fn a_written_file_reads_back_and_a_changed_one_is_refused() {
    let file = PolicyFile::fgd_start(Provenance::default());
    let text = serde_json::to_string(&file).unwrap();
    assert_eq!(PolicyFile::parse("p.json", &text).unwrap(), file);
    let tampered = text.replace("\"levels\":100", "\"levels\":50");
    let err = PolicyFile::parse("p.json", &tampered)
        .unwrap_err()
        .to_string();
    assert!(err.contains("p.json") && err.contains("hash"), "{err}");
    let old = text.replace("\"version\":1", "\"version\":7");
    let err = PolicyFile::parse("p.json", &old).unwrap_err().to_string();
    assert!(err.contains("version 7"), "{err}");
    let err = PolicyFile::parse("p.json", "{\"weights\": [1]}").unwrap_err();
    assert_eq!(err.reason(), "NotAPolicyFile");
    assert!(err.to_string().contains("p.json"), "{err}");
}

#[test]
fn features_past_the_always_listed_are_written_only_when_weighed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.json");
    let listed = |f: &PolicyFile| {
        f.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
        let read = PolicyFile::parse("p.json", &text).unwrap();
        assert_eq!(&read, f, "reads back as it was");
        raw["features"].as_array().unwrap().len()
    };
    let mut file = PolicyFile::fgd_start(Provenance::default());
    assert_eq!(listed(&file), ALWAYS_LISTED);
    file.weights[CPU_BOUND] = -3.0;
    file.hash = file.content_hash();
    assert_eq!(listed(&file), CPU_BOUND + 1);
    // An expert's weight counts as well.
    let mut expert = PolicyFile::fgd_start(Provenance::default());
    expert.weights[CPU_BOUND] = -3.0;
    let support = |mix| Support::spanning(&[WorkloadMix(mix)], 0.05);
    let first = PolicyFile::fgd_start(Provenance::default()).with_support(support([0.1; 4]));
    let combined = first
        .with_experts(&[expert.with_support(support([0.5; 4]))])
        .unwrap();
    assert_eq!(listed(&combined), CPU_BOUND + 1);
}

#[test]
fn an_older_file_lists_a_prefix_and_the_later_features_read_zero() {
    let mut old = PolicyFile::fgd_start(Provenance::default());
    old.features.truncate(COUNT - 1);
    old.weights.truncate(COUNT - 1);
    old.weights[1] = 0.25;
    old.hash = old.content_hash();
    let text = serde_json::to_string(&old).unwrap();
    let read = PolicyFile::parse("old.json", &text).unwrap();
    assert_eq!(read.features, NAMES);
    assert_eq!(read.weights.len(), COUNT);
    assert_eq!((read.weights[1], read.weights[COUNT - 1]), (0.25, 0.0));
    assert_eq!(
        read.hash, old.hash,
        "the hash is the one the file was written with"
    );
    let mut swapped = old.clone();
    swapped.features.swap(1, 2);
    swapped.hash = swapped.content_hash();
    let err = PolicyFile::parse("s.json", &serde_json::to_string(&swapped).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("s.json") && err.contains("features"), "{err}");
}

#[test]
fn a_file_from_before_the_whole_pod_features_loads_unchanged() {
    // The 15 features every file had before the `*_whole` interactions were appended.
    let mut old = PolicyFile::fgd_start(Provenance::default());
    old.features.truncate(WHOLE);
    old.weights.truncate(WHOLE);
    old.weights[1] = -0.0085;
    old.hash = old.content_hash();
    assert_eq!(
        old.features.last().map(String::as_str),
        Some("lp_price_cost")
    );
    let text = serde_json::to_string_pretty(&old).unwrap();
    let read = PolicyFile::parse("v1-15.json", &text).unwrap();
    assert_eq!(read.weights[..WHOLE], old.weights[..]);
    assert!(read.weights[WHOLE..].iter().all(|&w| w == 0.0));
    assert_eq!((read.version, &read.hash), (VERSION, &old.hash));
}

#[test]
fn a_file_from_before_the_multi_gpu_features_loads_unchanged() {
    // The 22 features files had before the `*_multi` gate was appended.
    let mut old = PolicyFile::fgd_start(Provenance::default());
    old.features.truncate(MULTI);
    old.weights.truncate(MULTI);
    old.weights[WHOLE] = 0.0138;
    old.hash = old.content_hash();
    assert_eq!(
        old.features.last().map(String::as_str),
        Some("cpu_per_gpu_ratio_whole")
    );
    let read = PolicyFile::parse("v1-22.json", &serde_json::to_string(&old).unwrap()).unwrap();
    assert_eq!(read.weights[..MULTI], old.weights[..]);
    assert_eq!(read.weights.len(), COUNT);
    assert!(read.weights[MULTI..].iter().all(|&w| w == 0.0));
    assert_eq!(read.hash, old.hash);
}

#[test]
fn a_support_is_sealed_with_the_file_and_a_broken_one_refused() {
    use crate::policy::learned::WorkloadMix;
    let plain = PolicyFile::fgd_start(Provenance::default());
    let mix = WorkloadMix([0.1, 0.3, 0.02, 0.0]);
    let file = plain.clone().with_support(Support::spanning(&[mix], 0.05));
    assert_ne!(file.hash, plain.hash, "the support is part of the content");
    let text = serde_json::to_string(&file).unwrap();
    assert!(text.contains("\"multi_gpu_demand\":[0.02,0.02]"), "{text}");
    assert_eq!(PolicyFile::parse("s.json", &text).unwrap(), file);
    assert!(
        !serde_json::to_string(&plain).unwrap().contains("support"),
        "files without one read and hash as before"
    );
    let mut broken = file.clone();
    if let Some(s) = broken.support.as_mut() {
        s.shared_gpu_demand = [0.4, 0.3];
    }
    broken.hash = broken.content_hash();
    let err = PolicyFile::parse("b.json", &serde_json::to_string(&broken).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("b.json") && err.contains("shared_gpu_demand"),
        "{err}"
    );
}

#[test]
fn the_embedded_policy_is_valid() {
    let file = PolicyFile::embedded().unwrap();
    assert_eq!(file.features.len(), COUNT);
}

#[test]
fn a_device_cost_table_reads_back_travels_with_its_expert_and_a_broken_one_is_refused() {
    use crate::policy::learned::costs::{DeviceCosts, LEVELS};
    let table = DeviceCosts {
        values: (0..LEVELS).map(|k| k as f64).collect(),
    };
    let mut file = PolicyFile::fgd_start(Provenance::default());
    file.device_costs = Some(table.clone());
    file.hash = file.content_hash();
    let text = serde_json::to_string(&file).unwrap();
    assert_eq!(PolicyFile::parse("t.json", &text).unwrap(), file);
    // A file without a table hashes as it did before the field existed.
    let plain = PolicyFile::fgd_start(Provenance::default());
    assert!(
        !serde_json::to_string(&plain)
            .unwrap()
            .contains("device_costs")
    );
    let short = text.replace("[0.0,1.0,", "[1.0,");
    let err = PolicyFile::parse("t.json", &short).unwrap_err().to_string();
    assert!(
        err.contains("t.json") && err.contains("100 values, not 101"),
        "{err}"
    );
    // As an expert: the combined file carries the expert's table, and so does its part.
    let support = |mix| Support::spanning(&[WorkloadMix(mix)], 0.05);
    let first =
        PolicyFile::fgd_start(Provenance::default()).with_support(support([0.1, 0.3, 0.0, 0.0]));
    let expert = file.clone().with_support(support([0.1, 1.0, 0.0, 0.0]));
    let combined = first.with_experts(std::slice::from_ref(&expert)).unwrap();
    assert_eq!(combined.experts[0].device_costs.as_ref(), Some(&table));
    let text = serde_json::to_string(&combined).unwrap();
    let read = PolicyFile::parse("c.json", &text).unwrap();
    let part = read.part_for(&WorkloadMix([0.1, 0.98, 0.0, 0.0]));
    assert_eq!(part.device_costs, Some(table));
    assert_eq!(
        read.part_for(&WorkloadMix([0.1, 0.3, 0.0, 0.0]))
            .device_costs,
        None
    );
}
