//! Trace and snapshot files a careless user or an attacker could hand `allot simulate`,
//! `allot plan` or `allot extender`: each is refused with an error naming the file, without
//! first reading it whole (issue 16, defect 7). The huge files are sparse: they take no disk.

use std::fs::File;
use std::path::{Path, PathBuf};

use allot::model::ModelCatalog;
use allot::sim::trace::{load_nodes, load_pods};
use allot::snapshot::load_snapshot;

/// Larger than any trace or snapshot file allot reads.
const HUGE: u64 = 2 << 30;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("allot-bad-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A sparse file of `len` zero bytes.
fn sparse(name: &str, len: u64) -> PathBuf {
    let path = scratch(name);
    File::create(&path).unwrap().set_len(len).unwrap();
    path
}

fn pods_error(path: &Path) -> String {
    load_pods(path, &mut ModelCatalog::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn huge_files_are_refused_before_reading() {
    for name in ["pods.csv", "pods.json"] {
        let path = sparse(name, HUGE);
        assert_eq!(
            pods_error(&path),
            format!(
                "{}: the file is 2147483648 bytes; trace and snapshot files may have at most \
                 1073741824 (1 GiB)",
                path.display()
            )
        );
        std::fs::remove_file(&path).unwrap();
    }
    let path = sparse("nodes.csv", HUGE);
    let err = load_nodes(&path).unwrap_err().to_string();
    assert!(
        err.ends_with("may have at most 1073741824 (1 GiB)"),
        "{err}"
    );
    std::fs::remove_file(&path).unwrap();
    let path = sparse("snapshot.json", HUGE);
    let err = load_snapshot(&path).unwrap_err().to_string();
    assert!(
        err.ends_with("may have at most 1073741824 (1 GiB)"),
        "{err}"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_csv_line_longer_than_the_cap_is_refused() {
    // Zero bytes and no newline, as a sparse or binary file reads.
    let path = sparse("zeros.csv", 1 << 20);
    assert_eq!(
        pods_error(&path),
        format!(
            "{}:1: line is longer than 65536 bytes (is this a CSV file?)",
            path.display()
        )
    );
    let long_row = format!(
        "name,cpu,memory,num_gpu\np0,1,1Gi,0\np1,1,1Gi,0,{}\n",
        "x".repeat(70_000)
    );
    let path = scratch("long-row.csv");
    std::fs::write(&path, long_row).unwrap();
    assert_eq!(
        pods_error(&path),
        format!(
            "{}:3: line is longer than 65536 bytes (is this a CSV file?)",
            path.display()
        )
    );
}

#[test]
fn a_directory_is_named_as_one() {
    let dir = scratch("a-folder.csv");
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(
        pods_error(&dir),
        format!("{}: is a directory, not a file", dir.display())
    );
    let err = load_snapshot(&dir).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("{}: is a directory, not a file", dir.display())
    );
}

#[test]
fn zero_bytes_as_json_fail_at_the_first_byte() {
    let path = sparse("zeros.json", 64 << 20);
    let err = pods_error(&path);
    assert!(
        err.starts_with(&format!("{}:1: invalid JSON: ", path.display())),
        "{err}"
    );
    let path = sparse("zeros-snapshot.json", 64 << 20);
    let err = load_snapshot(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}:1: invalid snapshot JSON: ", path.display())),
        "{err}"
    );
}
