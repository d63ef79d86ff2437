//! `allot train --combine FIRST,EXPERT...`: one policy file from separately trained ones, the
//! first file's weights for the workloads of its support and each other file's as an expert
//! for the workloads of its own (`policy::learned::experts`). Nothing is trained. And the other
//! way: which part of such a file a training run starts from.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use super::super::usage::usage;
use crate::learn::Trace;
use crate::policy::learned::{PolicyFile, WorkloadMix, embedded_file};

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

/// The part of `file` (given by `flag`) that scores the first of `traces`: a run starting from
/// a file with experts starts from the weights that would score its workload.
pub fn starting_part(file: PolicyFile, traces: &[Trace], flag: &str) -> PolicyFile {
    let Some(first) = traces.first().filter(|_| !file.experts.is_empty()) else {
        return file;
    };
    let mix = WorkloadMix::of(&first.target);
    let part = file.part_for(&mix);
    eprintln!(
        "{flag}: policy {} has experts; starting from the part that scores trace {}: {}",
        file.hash,
        first.name,
        if file.scored_by(&mix).1.is_some() {
            "FGD's warm start (no part's support holds it)".to_string()
        } else {
            format!("policy {}", part.hash)
        }
    );
    part
}

/// The policy a run starts from: `path` (--policy-file), else the embedded policy for a
/// `history` run, else none (FGD's warm start); of a file with experts, the part that scores
/// the first trace.
pub fn start(
    path: Option<&Path>,
    history: bool,
    traces: &[Trace],
) -> anyhow::Result<Option<PolicyFile>> {
    Ok(match (path, history) {
        (Some(p), _) => Some(starting_part(PolicyFile::load(p)?, traces, "--policy-file")),
        (None, true) => Some(starting_part(
            embedded_file().clone(),
            traces,
            "the embedded policy",
        )),
        (None, false) => None,
    })
}
