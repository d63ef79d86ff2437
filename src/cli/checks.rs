//! The regression checks `allot simulate` can end with (exit 1 when one fails): the paper's
//! policies within the published spread, and the learned policy not behind FGD.

use super::report;

/// `--check-published`: every policy with published results within their spread, said on
/// stderr.
pub fn published_holds(summary: &report::Summary) -> bool {
    let trace = &summary.trace;
    let off: Vec<&str> = summary
        .policies
        .iter()
        .filter(|p| p.within_published_spread == Some(false))
        .map(|p| p.policy.as_str())
        .collect();
    if !off.is_empty() {
        eprintln!(
            "trace {trace}: outside the published spread: {}",
            off.join(", ")
        );
        return false;
    }
    let checked = summary
        .policies
        .iter()
        .filter(|p| p.within_published_spread.is_some())
        .count();
    eprintln!("trace {trace}: {checked} policies within the published spread");
    true
}

/// How far above FGD's mean `--check-learned` lets learned's mean go, in points: about one
/// standard deviation of FGD's own mean over 10 seeds on the openb traces.
pub const LEARNED_MARGIN: f64 = 0.1;

/// `--check-learned`: learned's mean within [`LEARNED_MARGIN`] of FGD's, said on stderr.
pub fn learned_holds(summary: &report::Summary) -> bool {
    let mean = |name: &str| {
        summary
            .policies
            .iter()
            .find(|p| p.policy == name)
            .and_then(|p| p.unallocated_gpu_pct_at_100)
            .map(|m| m.mean)
    };
    let trace = &summary.trace;
    match (mean("learned"), mean("fgd")) {
        (Some(learned), Some(fgd)) if learned <= fgd + LEARNED_MARGIN => {
            eprintln!(
                "trace {trace}: learned {learned:.2} % against FGD's {fgd:.2} % (at most \
                 {LEARNED_MARGIN} points above it)"
            );
            true
        }
        (Some(learned), Some(fgd)) => {
            eprintln!(
                "trace {trace}: learned {learned:.2} % is more than {LEARNED_MARGIN} points \
                 above FGD's {fgd:.2} %: the learned policy regressed"
            );
            false
        }
        _ => {
            eprintln!(
                "trace {trace}: --check-learned needs both learned and fgd in --policy, with \
                 results at 100 % arrived"
            );
            false
        }
    }
}
