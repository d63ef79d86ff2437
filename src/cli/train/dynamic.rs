//! `allot train --dynamic`: the flags that make the policy search (and the validation that
//! keeps the best weights) score candidates by the dynamic replay of `allot simulate
//! --dynamic` at a raised load, and the setting they make (`learn::search::DynamicSetting`).

use std::sync::Arc;

use clap::Args;

use crate::cli::simulate::parse_max_wait;
use crate::cli::usage::usage;
use crate::learn::search::DynamicSetting;
use crate::sim::bundled::embedded_lifetimes;
use crate::sim::dynamic::{DEFAULT_MAX_WAIT_MS, Load, MaxWait};

/// Default `--time-scale` with `--dynamic`: the middle of BENCHMARKS.md §11's sweep, where the
/// default trace saturates a quarter of the nodes near its last arrival.
pub const DEFAULT_TIME_SCALE: f64 = 800.0;
/// Default `--nodes-fraction` with `--dynamic`: §11's quarter of the nodes.
pub const DEFAULT_NODES_FRACTION: f64 = 0.25;

/// The dynamic setting's flags.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct TrainDynamicArgs {
    /// Score the policy search's candidates, and the validation replays that keep the best
    /// weights, by the dynamic replay of `allot simulate --dynamic` (time order, departures, a
    /// FIFO queue) instead of the static one: the objective is the failed GPU % (GPU request
    /// of the pods that timed out, as % of all requested). The supervised and Q-learning
    /// phases stay static; skip them with --supervised-epochs 0 --epochs 0 to search from the
    /// starting policy (e.g. --policy-file policies/default.json). With --history, the replay
    /// is the recorded one: its pods arrive and leave at their recorded times, on the recorded
    /// nodes.
    #[arg(long)]
    pub dynamic: bool,
    /// With --dynamic: arrivals K times as often as in the trace, as for `simulate`
    /// [default: 800; 1 with --history, the cluster's own pace].
    #[arg(long, value_name = "K", requires = "dynamic")]
    pub time_scale: Option<f64>,
    /// With --dynamic: the share of the nodes kept per seed (0-1], as for `simulate`
    /// [default: 0.25; 1 with --history, every recorded node].
    #[arg(long, value_name = "F", requires = "dynamic")]
    pub nodes_fraction: Option<f64>,
    /// With --dynamic: how long a pod waits before it fails, as for `simulate` [default: 1h].
    #[arg(long, value_name = "DURATION|none", value_parser = parse_max_wait, requires = "dynamic")]
    pub max_wait: Option<MaxWait>,
}

/// The setting the flags ask for (`None` without --dynamic); a load out of range is a usage
/// error (exit 2) naming the flag. For a recorded `history` the defaults replay the cluster as
/// it ran (time scale 1, every node): the openb defaults raise the light load of a public
/// trace, which a cluster's own record does not need.
pub fn setting(args: &TrainDynamicArgs, history: bool) -> anyhow::Result<Option<DynamicSetting>> {
    if !args.dynamic {
        return Ok(None);
    }
    let (scale, fraction) = if history {
        (1.0, 1.0)
    } else {
        (DEFAULT_TIME_SCALE, DEFAULT_NODES_FRACTION)
    };
    let load = Load {
        time_scale: args.time_scale.unwrap_or(scale),
        nodes_fraction: args.nodes_fraction.unwrap_or(fraction),
    };
    if let Err(e) = load.validate() {
        usage!("{e}");
    }
    Ok(Some(DynamicSetting {
        load,
        max_wait: args
            .max_wait
            .unwrap_or(MaxWait::Millis(DEFAULT_MAX_WAIT_MS)),
        donor: Arc::new(embedded_lifetimes()?),
    }))
}

#[cfg(test)]
mod tests;
