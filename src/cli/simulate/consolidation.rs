//! `allot simulate --move-budget-per-pod K --move-budget B,...`: consolidation (design §7c)
//! as a sweep of move budgets, each one a full run of every policy and seed; the table, the
//! per-seed CSV and the plot of unallocated GPU against moves.

use std::fmt::Write as _;

use plotters::prelude::*;

use crate::cli::usage::usage;
use crate::sim::consolidate::{MoveBudget, TotalBudget};
use crate::sim::metrics::MeanSd;
use crate::sim::{NodeSampling, PolicyResult};

/// `--move-budget-per-pod`: a count, or `unlimited`.
pub fn parse_per_pod(text: &str) -> Result<usize, String> {
    match text.trim() {
        "unlimited" => Ok(usize::MAX),
        t => t
            .parse::<usize>()
            .map_err(|_| format!("{text:?} is not a whole number of moves or `unlimited`")),
    }
}

/// The budgets to run, in the order given; `None` is budget 0 (the online policy).
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub per_arrival: usize,
    pub budgets: Vec<Option<TotalBudget>>,
}

impl Sweep {
    /// From the flags; `None` when neither asks for consolidation.
    pub fn from_flags(
        per_arrival: usize,
        list: Option<&str>,
        sampling: NodeSampling,
    ) -> anyhow::Result<Option<Sweep>> {
        let budgets = match list {
            None if per_arrival == 0 => return Ok(None),
            None => vec![Some(TotalBudget::Unlimited)],
            Some(text) => parse_budgets(text)?,
        };
        if per_arrival == 0 && budgets.iter().any(Option::is_some) {
            usage!(
                "--move-budget {}: no pod may move while --move-budget-per-pod is 0; give \
                 --move-budget-per-pod K (or unlimited)",
                list.unwrap_or_default()
            );
        }
        if sampling != NodeSampling::All && budgets.iter().any(Option::is_some) {
            usage!(
                "--move-budget-per-pod: consolidation needs --node-sampling all (a pod makes \
                 room only when it fits no node of the cluster)"
            );
        }
        Ok(Some(Sweep {
            per_arrival,
            budgets,
        }))
    }

    /// The replay option of budget `i`.
    pub fn option(&self, i: usize) -> Option<MoveBudget> {
        self.budgets[i].map(|total| MoveBudget {
            per_arrival: self.per_arrival,
            total,
        })
    }

    pub fn label(&self, i: usize) -> String {
        label(self.budgets[i])
    }
}

fn label(budget: Option<TotalBudget>) -> String {
    match budget {
        None => "0".into(),
        Some(TotalBudget::Unlimited) => "unlimited".into(),
        Some(TotalBudget::Moves(n)) => n.to_string(),
        Some(TotalBudget::PercentOfPlaced(p)) => format!("{p}%"),
    }
}

/// `0.5%,1%,2%`, `100`, `unlimited`, `0`: each entry once, in the order given.
pub fn parse_budgets(text: &str) -> anyhow::Result<Vec<Option<TotalBudget>>> {
    let mut out: Vec<Option<TotalBudget>> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let budget = if part == "unlimited" {
            Some(TotalBudget::Unlimited)
        } else if let Some(pct) = part.strip_suffix('%') {
            match pct.trim().parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 100.0 => Some(TotalBudget::PercentOfPlaced(p)),
                Ok(0.0) => None,
                _ => usage!("--move-budget: {part:?} is not a percentage from 0% to 100%"),
            }
        } else {
            match part.parse::<u64>() {
                Ok(0) => None,
                Ok(n) => Some(TotalBudget::Moves(n)),
                Err(_) => usage!(
                    "--move-budget: {part:?} is not a move count, a percentage of the pods \
                     placed (like 2%) or `unlimited`"
                ),
            }
        };
        if !out.contains(&budget) {
            out.push(budget);
        }
    }
    if out.is_empty() {
        usage!("--move-budget is empty; give e.g. 0,0.5%,1%,2%");
    }
    Ok(out)
}

/// Mean and sd over seeds of `f`.
fn stat(r: &PolicyResult, f: impl Fn(&crate::sim::SeedRun) -> Option<f64>) -> Option<MeanSd> {
    MeanSd::of(&r.runs.iter().filter_map(f).collect::<Vec<_>>())
}

fn unalloc(s: &crate::sim::SeedRun) -> Option<f64> {
    s.curves.unallocated_pct.get(100).copied().flatten()
}

/// The comparison table, one row per (policy, budget).
pub fn table(sweep: &Sweep, runs: &[Vec<PolicyResult>]) -> String {
    let mut out = format!(
        "\nconsolidation (at most {} moves per arriving pod); at 100 % arrived, mean ± sd over seeds\n",
        cap_label(sweep.per_arrival)
    );
    let _ = writeln!(
        out,
        "{:<16} {:>10}  {:>16}  {:>16}  {:>9}  {:>9}  {:>10}  {:>14}",
        "policy",
        "budget",
        "unalloc GPU %",
        "moves % placed",
        "moves",
        "rescued",
        "ms/replay",
        "max search ms"
    );
    for (r, results) in runs.iter().enumerate() {
        for p in results {
            let show = |m: Option<MeanSd>, d: usize| {
                m.map_or("-".into(), |m| format!("{:.d$} ± {:.d$}", m.mean, m.sd))
            };
            let longest = p
                .runs
                .iter()
                .map(|s| s.moves.longest_search.as_secs_f64() * 1e3)
                .fold(0.0, f64::max);
            let _ = writeln!(
                out,
                "{:<16} {:>10}  {:>16}  {:>16}  {:>9}  {:>9}  {:>10.0}  {:>14.2}",
                p.policy.name(),
                sweep.label(r),
                show(stat(p, unalloc), 2),
                show(stat(p, |s| Some(s.moves.moves_pct_at_100())), 2),
                show(stat(p, |s| Some(s.moves.moves_at_100 as f64)), 0),
                show(stat(p, |s| Some(s.moves.rescued_at_100 as f64)), 0),
                p.mean_elapsed().as_secs_f64() * 1e3,
                longest,
            );
        }
    }
    out
}

fn cap_label(per_arrival: usize) -> String {
    if per_arrival == usize::MAX {
        "unlimited".into()
    } else {
        per_arrival.to_string()
    }
}

/// One row per (policy, budget, seed).
pub fn csv(trace: &str, sweep: &Sweep, runs: &[Vec<PolicyResult>]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "trace",
        "policy",
        "move_budget",
        "move_budget_per_pod",
        "seed",
        "unallocated_gpu_pct_at_100",
        "placed_at_100",
        "moves_at_100",
        "moves_pct_of_placed_at_100",
        "rescued_at_100",
        "moves_total",
        "failed",
        "searches",
        "longest_search_ms",
        "replay_ms",
    ];
    // Writing into a Vec cannot fail, and every row has the header's length.
    let _ = w.write_record(header);
    for (r, results) in runs.iter().enumerate() {
        for p in results {
            for s in &p.runs {
                let m = &s.moves;
                let _ = w.write_record([
                    trace.to_string(),
                    p.policy.name().to_string(),
                    sweep.label(r),
                    cap_label(sweep.per_arrival),
                    s.seed.to_string(),
                    unalloc(s).map_or(String::new(), |v| format!("{v:.4}")),
                    m.placed_at_100.to_string(),
                    m.moves_at_100.to_string(),
                    format!("{:.4}", m.moves_pct_at_100()),
                    m.rescued_at_100.to_string(),
                    m.moves.to_string(),
                    s.failed.to_string(),
                    m.searches.to_string(),
                    format!("{:.3}", m.longest_search.as_secs_f64() * 1e3),
                    format!("{:.1}", s.elapsed.as_secs_f64() * 1e3),
                ]);
            }
        }
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Write `consolidation.csv` and `consolidation.svg` into `dir` (which exists).
pub fn write(
    dir: &std::path::Path,
    trace: &str,
    sweep: &Sweep,
    runs: &[Vec<PolicyResult>],
) -> anyhow::Result<()> {
    super::write_files(
        dir,
        [
            ("consolidation.csv", csv(trace, sweep, runs)),
            ("consolidation.svg", svg(trace, sweep, runs)?),
        ],
    )
}

/// Unallocated GPU % at 100 % arrived (mean over seeds) against moves as % of the pods
/// placed, one line per policy through the budgets in order, each point labelled.
pub fn svg(trace: &str, sweep: &Sweep, runs: &[Vec<PolicyResult>]) -> anyhow::Result<String> {
    let policies: Vec<_> = runs
        .first()
        .map(|r| r.iter().map(|p| p.policy).collect())
        .unwrap_or_default();
    let lines: Vec<Vec<(f64, f64, String)>> = (0..policies.len())
        .map(|k| {
            runs.iter()
                .enumerate()
                .filter_map(|(r, results)| {
                    let p = results.get(k)?;
                    let y = stat(p, unalloc)?.mean;
                    let x = stat(p, |s| Some(s.moves.moves_pct_at_100()))?.mean;
                    Some((x, y, sweep.label(r)))
                })
                .collect()
        })
        .collect();
    let pts = lines.iter().flatten();
    let x_max = pts.clone().map(|p| p.0).fold(0.5, f64::max) * 1.1;
    let y_max = pts.clone().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let colors = [
        RGBColor(140, 86, 75),
        RGBColor(188, 189, 34),
        RGBColor(31, 119, 180),
    ];
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let caption = format!(
            "trace {trace}: unallocated GPU vs moves (≤ {} per arriving pod)",
            cap_label(sweep.per_arrival)
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 18))
            .margin(16)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("pods moved up to 100 % arrived (% of the pods placed by then)")
            .y_desc("unallocated GPU at 100 % arrived (%)")
            .draw()?;
        for (k, line) in lines.iter().enumerate() {
            let color = colors[k % colors.len()];
            let xy: Vec<(f64, f64)> = line.iter().map(|p| (p.0, p.1)).collect();
            chart
                .draw_series(LineSeries::new(xy.clone(), color.stroke_width(2)))?
                .label(policies[k].name())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart.draw_series(xy.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
            chart.draw_series(line.iter().map(|(x, y, l)| {
                Text::new(
                    l.clone(),
                    (*x, *y),
                    ("sans-serif", 12).into_font().color(&color),
                )
            }))?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_and_bad_ones_name_the_flag() {
        let b = parse_budgets("0, 0.5%,2%,100,unlimited,2%").unwrap();
        assert_eq!(
            b,
            vec![
                None,
                Some(TotalBudget::PercentOfPlaced(0.5)),
                Some(TotalBudget::PercentOfPlaced(2.0)),
                Some(TotalBudget::Moves(100)),
                Some(TotalBudget::Unlimited),
            ]
        );
        for bad in ["x", "-1", "150%", "%", "1.5"] {
            let err = parse_budgets(bad).unwrap_err().to_string();
            assert!(err.starts_with("--move-budget: "), "{bad}: {err}");
        }
        assert!(parse_budgets(" , ").is_err());
        assert_eq!(parse_per_pod("unlimited"), Ok(usize::MAX));
        assert!(parse_per_pod("-2").unwrap_err().contains("\"-2\""));
    }

    #[test]
    fn a_budget_without_moves_per_pod_or_with_sampling_is_refused() {
        let err = Sweep::from_flags(0, Some("2%"), NodeSampling::All).unwrap_err();
        assert!(
            err.to_string().contains("--move-budget-per-pod is 0"),
            "{err}"
        );
        let err = Sweep::from_flags(2, Some("2%"), NodeSampling::Adaptive).unwrap_err();
        assert!(
            err.to_string().starts_with("--move-budget-per-pod: "),
            "{err}"
        );
        assert_eq!(Sweep::from_flags(0, None, NodeSampling::All).unwrap(), None);
        let only_zero = Sweep::from_flags(0, Some("0"), NodeSampling::All)
            .unwrap()
            .unwrap();
        assert_eq!(only_zero.option(0), None);
    }
}
