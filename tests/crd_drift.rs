//! The committed `crds/*.yaml` must equal what the Rust types render. With
//! `ALLOT_UPDATE_CRDS=1` the test rewrites them instead of comparing.
#![cfg(feature = "k8s")]

use std::path::{Path, PathBuf};

fn crds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crds")
}

/// First differing line, for a message that points at the change rather than dumping both files.
fn first_difference(expected: &str, actual: &str) -> String {
    let mut exp = expected.lines();
    let mut act = actual.lines();
    for line_no in 1.. {
        match (exp.next(), act.next()) {
            (Some(e), Some(a)) if e == a => continue,
            (None, None) => break,
            (e, a) => {
                return format!(
                    "first difference at line {line_no}:\n  generated: {}\n  committed: {}",
                    e.unwrap_or("<end of file>"),
                    a.unwrap_or("<end of file>")
                );
            }
        }
    }
    "files differ only in line endings or a trailing newline".to_string()
}

#[test]
fn committed_crds_match_the_rust_types() {
    let dir = crds_dir();
    if std::env::var_os("ALLOT_UPDATE_CRDS").is_some_and(|v| v == "1") {
        let written = allot::crd::write_all(&dir).expect("write crds/");
        eprintln!("regenerated {written:?}");
        return;
    }

    let rendered = allot::crd::render_all().expect("render CRDs");
    let mut problems = Vec::new();
    for (name, yaml) in &rendered {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == *yaml => {}
            Ok(committed) => problems.push(format!(
                "crds/{name} drifted from the Rust types; {}",
                first_difference(yaml, &committed)
            )),
            Err(err) => problems.push(format!("crds/{name} cannot be read: {err}")),
        }
    }

    let expected: Vec<&str> = rendered.iter().map(|(name, _)| name.as_str()).collect();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".allot.dev.yaml") && !expected.contains(&name.as_str()) {
                problems.push(format!("crds/{name} is stale: no Rust type generates it"));
            }
        }
    }

    assert!(
        problems.is_empty(),
        "{}\nrun `allot crdgen` (or `make generate`) to regenerate crds/",
        problems.join("\n")
    );
}
