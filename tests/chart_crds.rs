//! The Helm chart ships copies of the generated CRDs (`charts/allot/crds/`, Helm's folder for
//! CRDs). They are copied by `charts/sync-crds`, never edited: this test fails when a copy
//! differs from `crds/` byte for byte, is missing, or has no original any more.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const FIX: &str = "run charts/sync-crds";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Names of the `*.allot.dev.yaml` files in `dir` (empty when the folder does not exist).
fn crd_files(dir: &Path) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".allot.dev.yaml"))
        .collect()
}

#[test]
fn chart_crds_are_copies_of_the_generated_ones() {
    let top = repo().join("crds");
    let chart = repo().join("charts/allot/crds");
    let originals = crd_files(&top);
    assert!(
        !originals.is_empty(),
        "no CRDs in {} (run `allot crdgen --out-dir crds`)",
        top.display()
    );

    let mut problems = Vec::new();
    for name in &originals {
        let want = std::fs::read(top.join(name)).expect("read a top-level CRD");
        match std::fs::read(chart.join(name)) {
            Ok(have) if have == want => {}
            Ok(_) => problems.push(format!("charts/allot/crds/{name} differs from crds/{name}")),
            Err(err) => problems.push(format!("charts/allot/crds/{name} cannot be read: {err}")),
        }
    }
    for name in crd_files(&chart).difference(&originals) {
        problems.push(format!("charts/allot/crds/{name} has no original in crds/"));
    }
    assert!(problems.is_empty(), "{}; {FIX}", problems.join("; "));
}
