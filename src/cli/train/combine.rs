//! `allot train --combine FIRST,EXPERT...`: one policy file from separately trained ones, the
//! first file's weights for the workloads of its support and each other file's as an expert
//! for the workloads of its own (`policy::learned::experts`). Nothing is trained.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use super::super::usage::usage;
use crate::policy::learned::PolicyFile;

pub fn run(files: &[PathBuf], output: &Path) -> anyhow::Result<ExitCode> {
    if files.len() < 2 {
        usage!("--combine needs a first policy file and at least one expert, comma-separated");
    }
    let mut read = Vec::with_capacity(files.len());
    for f in files {
        read.push(PolicyFile::load(f)?);
    }
    let combined = match read[0].clone().with_experts(&read[1..]) {
        Ok(c) => c,
        Err(problem) => usage!("--combine: {problem}"),
    };
    combined
        .save(output)
        .with_context(|| format!("writing {}", output.display()))?;
    for (path, e) in files[1..].iter().zip(&combined.experts) {
        eprintln!(
            "expert {} (trained on {}) for workloads outside the first file's support",
            path.display(),
            e.traces.join(",")
        );
    }
    eprintln!("wrote {} (hash {})", output.display(), combined.hash);
    Ok(ExitCode::SUCCESS)
}
