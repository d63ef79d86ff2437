//! The history format: rows written by the recorder read back through the trace readers,
//! and what a damaged directory gives.

use std::path::Path;

use super::book::{Admit, Book, parse_record};
use super::dir::{read_history, read_open};
use super::*;
use crate::model::{GpuDemand, ModelCatalog};
use crate::sim::load_trace;
use crate::sim::trace::times::Lifetime;

fn pod(uid: &str, gpu: GpuDemand, spec: &str, created: u64, deleted: u64) -> PodRecord {
    PodRecord {
        name: format!("ns/{uid}"),
        uid: uid.to_string(),
        cpu_milli: 4000,
        memory_bytes: 3 << 30,
        gpu,
        gpu_spec: spec.to_string(),
        phase: Phase::Terminated,
        created,
        deleted: Some(deleted),
        scheduled: Some(created + 1),
        node: "node-a".to_string(),
        devices: "0|1".to_string(),
        policy: "fgd".to_string(),
        policy_hash: "abc".to_string(),
    }
}

fn nodes_file(dir: &Path) {
    let node = NodeRecord {
        name: "node-a".into(),
        cpu_milli: 64000,
        memory_bytes: 256 << 30,
        gpus: 8,
        model: "V100M32".into(),
        added: 100,
        removed: None,
    };
    std::fs::write(dir.join(NODES_FILE), node_header() + &node.line()).unwrap();
}

fn write(dir: &Path, name: &str, rows: &[PodRecord], tail: &str) {
    let mut text = pod_header();
    for r in rows {
        text.push_str(&r.line());
    }
    text.push_str(tail);
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn rows_round_trip_through_the_trace_readers() {
    let dir = tempfile::tempdir().unwrap();
    let rows = [
        pod(
            "u1",
            GpuDemand::Whole { count: 2 },
            "V100M16|V100M32",
            1000,
            1600,
        ),
        pod("u2", GpuDemand::Shared { milli: 250 }, "", 1010, 1010),
        pod("u,3", GpuDemand::None, "", 1020, 2000),
    ];
    write(dir.path(), "pods-00000001.csv", &rows[..2], "");
    write(dir.path(), "pods-00000002.csv", &rows[2..], "");
    nodes_file(dir.path());
    let shown = format!("{}/", dir.path().display());
    let trace = load_trace(&shown, None, &[]).unwrap();
    assert_eq!(trace.pods.names, ["ns/u1", "ns/u2", "ns/u,3"]);
    let gpus: Vec<GpuDemand> = trace.pods.pods.iter().map(|p| p.gpu).collect();
    assert_eq!(gpus, rows.iter().map(|r| r.gpu).collect::<Vec<_>>());
    assert!(trace.pods.pods.iter().all(|p| p.cpu_milli == 4000));
    assert!(trace.pods.pods.iter().all(|p| p.memory_bytes == 3 << 30));
    assert_eq!(trace.pods.specs, ["V100M16|V100M32", "", ""]);
    let times = trace.lifetimes().unwrap().unwrap();
    assert_eq!(
        times[0],
        Lifetime {
            created: 1000,
            deleted: 1600
        }
    );
    assert_eq!(trace.cluster.len(), 1);
    assert_eq!(trace.cluster.gpu_count(), 8);
    assert!(trace.notes.is_empty(), "{:?}", trace.notes);
    // Each file alone is an openb-style pod list too.
    let mut models = ModelCatalog::default();
    let one = crate::sim::trace::load_pods(&dir.path().join("pods-00000001.csv"), &mut models);
    assert_eq!(one.unwrap().pods.len(), 2);
    // And a row reads back as the record written.
    let line = rows[2].line();
    let cells: Vec<&str> = line.trim_end().split(',').collect();
    assert!(
        parse_record(&cells).is_none(),
        "the quoted comma splits this naive parse"
    );
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line.as_bytes());
    let record = r.records().next().unwrap().unwrap();
    let back = parse_record(&record.iter().collect::<Vec<_>>()).unwrap();
    assert_eq!(back, rows[2]);
}

#[test]
fn a_truncated_last_line_a_skewed_clock_and_closed_open_rows_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let ok = pod("u1", GpuDemand::Whole { count: 1 }, "", 100, 200);
    let skewed = pod("u2", GpuDemand::Whole { count: 1 }, "", 300, 250);
    let half = pod("u3", GpuDemand::Whole { count: 1 }, "", 300, 400).line();
    write(
        dir.path(),
        "pods-00000001.csv",
        &[ok.clone(), skewed],
        &half[..half.len() / 2],
    );
    let mut running = pod("u1", GpuDemand::Whole { count: 1 }, "", 100, 500);
    running.phase = Phase::Running;
    let other = pod("u4", GpuDemand::Whole { count: 1 }, "", 450, 500);
    write(dir.path(), OPEN_FILE, &[running, other], "");
    let got = read_history(dir.path()).unwrap();
    assert_eq!(got.skipped.truncated, 1);
    assert_eq!(got.skipped.skewed, 1);
    assert_eq!(got.skipped.duplicates, 1);
    assert_eq!(got.skipped.total(), 3);
    assert_eq!(got.skipped.warnings(dir.path()).len(), 3);
    assert_eq!(got.text.lines().count(), 3, "{}", got.text);
    let e = load_trace(&format!("{}/", dir.path().display()), None, &[]).unwrap_err();
    assert!(e.problem.contains("nodes.csv"), "{e}");
    nodes_file(dir.path());
    let trace = load_trace(&format!("{}/", dir.path().display()), None, &[]).unwrap();
    assert_eq!(trace.pods.pods.len(), 2);
    assert_eq!(trace.notes.len(), 3);
}

#[test]
fn a_newer_version_or_a_foreign_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let line = pod("u1", GpuDemand::Whole { count: 1 }, "", 100, 200).line();
    let newer = line.trim_end().trim_end_matches('1').to_string() + "2\n";
    std::fs::write(dir.path().join("pods-00000007.csv"), pod_header() + &newer).unwrap();
    let e = read_history(dir.path()).unwrap_err();
    assert!(e.file.ends_with("pods-00000007.csv"), "{e}");
    assert_eq!(e.line, Some(2));
    assert!(e.problem.contains("newer allot"), "{e}");
    std::fs::write(
        dir.path().join("pods-00000007.csv"),
        "name,cpu_milli\np,1\n",
    )
    .unwrap();
    let e = read_history(dir.path()).unwrap_err();
    assert!(e.problem.contains(VERSION_COLUMN), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = read_history(empty.path()).unwrap_err();
    assert!(e.problem.contains("no recorded pods"), "{e}");
}

#[test]
fn a_bad_demand_is_located_in_its_own_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "pods-00000001.csv",
        &[pod("u1", GpuDemand::Whole { count: 1 }, "", 1, 2)],
        "",
    );
    let mut bad = pod("u2", GpuDemand::Whole { count: 1 }, "", 1, 2).line();
    bad = bad.replacen("4000", "lots", 1);
    std::fs::write(dir.path().join("pods-00000002.csv"), pod_header() + &bad).unwrap();
    nodes_file(dir.path());
    let e = load_trace(&format!("{}/", dir.path().display()), None, &[]).unwrap_err();
    assert!(e.file.ends_with("pods-00000002.csv"), "{e}");
    assert_eq!((e.line, e.column.as_deref()), (Some(2), Some("cpu_milli")));
}

#[test]
fn the_book_opens_binds_closes_and_expires_pods() {
    let mut book = Book::new(2, 60);
    let waiting = pod("w", GpuDemand::Whole { count: 1 }, "", 10, 0);
    assert_eq!(book.unschedulable(waiting.clone(), 10), Admit::Opened);
    assert_eq!(book.unschedulable(waiting.clone(), 40), Admit::Updated);
    let mut bound = pod("b", GpuDemand::Whole { count: 1 }, "", 0, 0);
    bound.deleted = None;
    assert_eq!(book.bound(bound.clone(), 20), Admit::Opened);
    assert_eq!(
        book.bound(pod("c", GpuDemand::None, "", 5, 0), 21),
        Admit::Full
    );
    assert_eq!(book.missing_creation(), ["b"]);
    book.created("b", 15);
    assert!(
        book.departed("w", 50).is_none(),
        "never bound: not departed"
    );
    let open = book.open_rows(55);
    assert_eq!(open.len(), 2);
    assert!(open.iter().all(|r| r.deleted == Some(55)));
    let closed = book.departed("b", 70).unwrap();
    assert_eq!(
        (closed.created, closed.scheduled, closed.deleted),
        (15, Some(20), Some(70))
    );
    assert_eq!(closed.phase, Phase::Terminated);
    assert!(book.expire(100, None).is_empty(), "seen at 40, idle 60");
    let expired = book.expire(101, None);
    assert_eq!(expired.len(), 1);
    assert_eq!(
        (expired[0].phase, expired[0].deleted),
        (Phase::Pending, Some(40))
    );
    assert!(book.is_empty());
}

#[test]
fn a_restarted_book_takes_back_the_open_file_and_closes_the_dead() {
    let dir = tempfile::tempdir().unwrap();
    let mut book = Book::new(10, 60);
    let mut running = pod("r", GpuDemand::Whole { count: 1 }, "", 5, 0);
    running.deleted = None;
    book.bound(running, 8);
    book.bound(pod("gone", GpuDemand::Whole { count: 1 }, "", 6, 0), 9);
    let rows = book.open_rows(30);
    let mut text = pod_header();
    rows.iter().for_each(|r| text.push_str(&r.line()));
    std::fs::write(dir.path().join(OPEN_FILE), text).unwrap();
    let back = read_open(dir.path()).unwrap();
    assert_eq!(back.len(), 2);
    let mut again = Book::new(10, 60);
    assert_eq!(again.restore(back), 0);
    let alive = |uid: &str| uid == "r";
    assert!(
        again.expire(40, Some(&alive)).is_empty(),
        "checkpointed at 30: too recent"
    );
    let closed = again.expire(100, Some(&alive));
    assert_eq!(closed.len(), 1);
    assert_eq!(
        (closed[0].uid.as_str(), closed[0].deleted),
        ("gone", Some(100))
    );
    assert_eq!(again.len(), 1);
}
