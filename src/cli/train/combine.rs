//! `allot train --combine FIRST,EXPERT...`: one policy file from separately trained ones, the
//! first file's weights for the workloads of its support and each other file's as an expert
//! for the workloads of its own (`policy::learned::experts`). Nothing is trained. And the other
//! way: which part of such a file a training run starts from.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use super::super::usage::usage;
use crate::learn::Trace;
use crate::policy::learned::features::CPU_BOUND;
use crate::policy::learned::{PolicyFile, WorkloadMix, embedded_file};

/// The largest `--cpu-bound-weight` taken: the feature is in GPUs, and at 100 levels a weight
/// of 1 moves a node by 100 levels per GPU.
const MAX_WEIGHT: f64 = 1_000.0;

pub fn run(
    files: &[PathBuf],
    output: &Path,
    cpu_bound_weight: Option<f64>,
) -> anyhow::Result<ExitCode> {
    if files.len() < 2 {
        usage!("--combine needs a first policy file and at least one expert, comma-separated");
    }
    let mut read = Vec::with_capacity(files.len());
    for f in files {
        read.push(PolicyFile::load(f)?);
    }
    let mut combined = match read[0].clone().with_experts(&read[1..]) {
        Ok(c) => c,
        Err(problem) => usage!("--combine: {problem}"),
    };
    if let Some(w) = cpu_bound_weight {
        if !w.is_finite() || w.abs() > MAX_WEIGHT {
            usage!("--cpu-bound-weight {w} must be a number within -{MAX_WEIGHT}..={MAX_WEIGHT}");
        }
        combined.weights[CPU_BOUND] = w;
        for e in &mut combined.experts {
            e.weights[CPU_BOUND] = w;
        }
        let p = &mut combined.provenance;
        p.phases
            .push(format!("cpu_bound_change weighted {w} in every part"));
        p.hyperparameters.insert("cpu_bound_weight".into(), w);
        combined.hash = combined.content_hash();
    }
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
