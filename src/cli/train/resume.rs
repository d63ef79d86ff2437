//! `allot train --resume`: which checkpoint a run continues from, if any.

use std::path::Path;

use super::TrainArgs;
use crate::learn::checkpoint::{self, Checkpoint, Phase};
use crate::learn::{Options, Trace};

/// The checkpoint to continue from (with --resume), or none (saying so when one is about to
/// be overwritten).
pub fn from(
    args: &TrainArgs,
    ckpt: &Path,
    traces: &[Trace],
    seeds: &[u64],
    validation: &[u64],
    opts: &Options,
) -> anyhow::Result<Option<Checkpoint>> {
    if !args.resume {
        if ckpt.exists() {
            eprintln!(
                "overwriting the checkpoint {} of an earlier run (--resume continues it)",
                ckpt.display()
            );
        }
        return Ok(None);
    }
    let config = checkpoint::config(traces, seeds, validation, opts);
    let c = checkpoint::load(ckpt, &config, opts)?;
    let total = match c.phase {
        Phase::Supervised => opts.supervised_epochs,
        Phase::QLearning => opts.epochs,
        Phase::Search => opts.search.generations,
    };
    eprintln!(
        "resuming from {}: {} {} of {total} done, {:.0} s of training before",
        ckpt.display(),
        c.phase.name(),
        c.done,
        c.elapsed.as_secs_f64()
    );
    Ok(Some(c))
}
