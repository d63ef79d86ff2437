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

/// A folder of this test's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let name = format!("allot-bad-files-{}-{test}", std::process::id());
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).expect("create a temp folder");
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A sparse file of `len` zero bytes.
    fn sparse(&self, name: &str, len: u64) -> PathBuf {
        let path = self.path(name);
        File::create(&path)
            .and_then(|f| f.set_len(len))
            .expect("create a sparse file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pods_error(path: &Path) -> String {
    load_pods(path, &mut ModelCatalog::default())
        .expect_err("the pod list is refused")
        .to_string()
}

#[test]
fn huge_files_are_refused_before_reading() {
    let tmp = Scratch::new("huge");
    for name in ["pods.csv", "pods.json"] {
        let path = tmp.sparse(name, HUGE);
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
    let path = tmp.sparse("nodes.csv", HUGE);
    let err = load_nodes(&path).unwrap_err().to_string();
    assert!(
        err.ends_with("may have at most 1073741824 (1 GiB)"),
        "{err}"
    );
    std::fs::remove_file(&path).unwrap();
    let path = tmp.sparse("snapshot.json", HUGE);
    let err = load_snapshot(&path).unwrap_err().to_string();
    assert!(
        err.ends_with("may have at most 1073741824 (1 GiB)"),
        "{err}"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_csv_line_longer_than_the_cap_is_refused() {
    let tmp = Scratch::new("long-line");
    // Zero bytes and no newline, as a sparse or binary file reads.
    let path = tmp.sparse("zeros.csv", 1 << 20);
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
    let path = tmp.path("long-row.csv");
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
    let tmp = Scratch::new("dir");
    let dir = tmp.path("a-folder.csv");
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
    let tmp = Scratch::new("zeros-json");
    let path = tmp.sparse("zeros.json", 64 << 20);
    let err = pods_error(&path);
    assert!(
        err.starts_with(&format!("{}:1: invalid JSON: ", path.display())),
        "{err}"
    );
    let path = tmp.sparse("zeros-snapshot.json", 64 << 20);
    let err = load_snapshot(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}:1: invalid snapshot JSON: ", path.display())),
        "{err}"
    );
}
