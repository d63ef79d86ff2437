//! The dynamic replay over time: the grid of `sim::dynamic::run` (101 points from time 0 to
//! the last arrival) as stdout tables (every 10th point, mean over seeds), as CSV (every
//! point and seed), and as an SVG plot (median over seeds per policy: GPU allocation, pods
//! waiting, pods failed so far, fragmentation, and the mean and longest wait of the pods
//! placed after waiting in each grid interval, `sim::dynamic::wait_grid`).
//!
//! A wait metric has no value at a point where no pod was placed after waiting in that
//! interval: the table's mean and the plot's median are over the seeds that have one (`-`
//! when none has), and the CSV leaves those cells empty.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::cli::plot::color_of;
use crate::cli::table;
use crate::sim::dynamic::{DynamicResult, DynamicRun, TimeSample};
use crate::sim::metrics::quantile;

/// Every how many grid points a stdout row is printed.
const TABLE_STEP: usize = 10;
const PANEL: (u32, u32) = (520, 420);
const LEGEND_WIDTH: u32 = 180;

/// A quantity read from one grid point of one run (`None`: no value there).
struct Metric {
    title: &'static str,
    digits: usize,
    /// Missing where no pod was placed after waiting (the waits).
    sparse: bool,
    value: fn(&DynamicRun, usize) -> Option<f64>,
}

/// `f` of grid point `k` of `run`.
fn sample(run: &DynamicRun, k: usize, f: impl Fn(&TimeSample) -> f64) -> Option<f64> {
    run.grid.get(k).map(f)
}

fn pct(run: &DynamicRun, milli: f64) -> f64 {
    100.0 * milli / run.capacity.max(1) as f64
}

/// The panels of the plot in order (two rows of three), and the printed tables.
const METRICS: [Metric; 6] = [
    Metric {
        title: "GPU allocation % of capacity",
        digits: 1,
        sparse: false,
        value: |run, k| sample(run, k, |s| pct(run, s.allocated as f64)),
    },
    Metric {
        title: "pods waiting",
        digits: 0,
        sparse: false,
        value: |run, k| sample(run, k, |s| s.waiting as f64),
    },
    Metric {
        title: "pods failed so far",
        digits: 0,
        sparse: false,
        value: |run, k| sample(run, k, |s| s.failed as f64),
    },
    Metric {
        title: "fragmentation % of capacity",
        digits: 1,
        sparse: false,
        value: |run, k| sample(run, k, |s| pct(run, s.frag)),
    },
    Metric {
        title: "mean wait s (pods placed after waiting)",
        digits: 0,
        sparse: true,
        value: |run, k| run.waits.get(k).and_then(|w| w.mean_s),
    },
    Metric {
        title: "longest wait s (pods placed after waiting)",
        digits: 0,
        sparse: true,
        value: |run, k| run.waits.get(k).and_then(|w| w.max_s),
    },
];

/// The values of `metric` at grid point `k` over a policy's seeds that have one.
fn at(r: &DynamicResult, metric: &Metric, k: usize) -> Vec<f64> {
    r.runs
        .iter()
        .filter_map(|run| (metric.value)(run, k))
        .collect()
}

/// Hours since the first arrival of grid point `k` (the same for every run of a trace).
fn hours(results: &[DynamicResult], k: usize) -> f64 {
    results
        .first()
        .and_then(|r| r.runs.first())
        .and_then(|run| run.grid.get(k))
        .map_or(0.0, |s| s.t_ms as f64 / 3_600_000.0)
}

fn points(results: &[DynamicResult]) -> usize {
    results
        .first()
        .and_then(|r| r.runs.first())
        .map_or(0, |run| run.grid.len())
}

/// One table per metric: a row every [`TABLE_STEP`] grid points, a column per policy.
pub fn tables(results: &[DynamicResult]) -> String {
    let mut header = vec!["hours"];
    header.extend(results.iter().map(|r| r.policy.name()));
    let mut out = String::new();
    for metric in &METRICS {
        let rows: Vec<Vec<String>> = (0..points(results))
            .step_by(TABLE_STEP)
            .map(|k| {
                let mut row = vec![format!("{:.2}", hours(results, k))];
                for r in results {
                    let v = at(r, metric, k);
                    row.push(if v.is_empty() {
                        "-".to_string()
                    } else {
                        let mean = v.iter().sum::<f64>() / v.len() as f64;
                        format!("{mean:.d$}", d = metric.digits)
                    });
                }
                row
            })
            .collect();
        let over = if metric.sparse {
            "the seeds that placed a pod after waiting in the interval; -: none did"
        } else {
            "seeds"
        };
        out.push_str(&format!(
            "\n{} over time (mean over {over}):\n",
            metric.title
        ));
        out.push_str(&table::render(&header, &rows, 0));
    }
    out
}

/// Every grid point of every run. The last three columns (added after the others, which keep
/// their places) are the pods placed after waiting in the interval ending at the point, and
/// their mean and longest wait in seconds (empty when there were none).
pub fn csv(trace: &str, results: &[DynamicResult]) -> String {
    let mut out = String::from(
        "trace,policy,seed,point,t_s,alloc_pct,frag_pct,waiting,failed,waited,wait_mean_s,wait_max_s\n",
    );
    let secs = |v: Option<f64>| v.map_or_else(String::new, |s| format!("{s:.1}"));
    for r in results {
        for run in &r.runs {
            for (k, s) in run.grid.iter().enumerate() {
                let w = run.waits.get(k).copied().unwrap_or_default();
                out.push_str(&format!(
                    "{trace},{},{},{k},{:.3},{:.4},{:.4},{},{},{},{},{}\n",
                    r.policy.name(),
                    run.seed,
                    s.t_ms as f64 / 1000.0,
                    pct(run, s.allocated as f64),
                    pct(run, s.frag),
                    s.waiting,
                    s.failed,
                    w.waited,
                    secs(w.mean_s),
                    secs(w.max_s),
                ));
            }
        }
    }
    out
}

/// Six panels in two rows of three (allocation, pods waiting, failed; fragmentation, mean
/// and longest wait), median over seeds per policy.
pub fn svg(trace: &str, results: &[DynamicResult]) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let size = (PANEL.0 * 3 + LEGEND_WIDTH, PANEL.1 * 2);
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        let (charts, key) = root.split_horizontally(PANEL.0 * 3);
        let panels = charts.split_evenly((2, 3));
        for (area, metric) in panels.iter().zip(&METRICS) {
            panel(area, trace, metric, results)?;
        }
        for (i, r) in results.iter().enumerate() {
            let y = 50 + 24 * i as i32;
            let style = color_of(r.policy).stroke_width(2);
            key.draw(&PathElement::new(vec![(8, y), (36, y)], style))?;
            key.draw(&Text::new(r.policy.name(), (44, y - 7), ("sans-serif", 14)))?;
        }
        root.present()?;
    }
    Ok(svg)
}

fn panel(
    area: &DrawingArea<SVGBackend, Shift>,
    trace: &str,
    metric: &Metric,
    results: &[DynamicResult],
) -> anyhow::Result<()> {
    let n = points(results);
    let lines: Vec<(RGBColor, Vec<(f64, f64)>)> = results
        .iter()
        .map(|r| {
            let line = (0..n)
                .filter_map(|k| {
                    quantile(&mut at(r, metric, k), 0.5).map(|m| (hours(results, k), m))
                })
                .collect();
            (color_of(r.policy), line)
        })
        .collect();
    let x_max = hours(results, n.saturating_sub(1)).max(1e-6);
    let y_max = lines
        .iter()
        .flat_map(|(_, l)| l.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.05;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{trace}: {}", metric.title), ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("hours since the first arrival")
        .draw()?;
    for (color, line) in lines {
        chart.draw_series(LineSeries::new(line, color.stroke_width(2)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyKind;
    use crate::sim::dynamic::{DynamicOutcome, RunSummary, WaitWindow};

    /// A run of 11 grid points 1 s apart, on 1 GPU, with `waits` at the last point.
    fn run(seed: u64, last: WaitWindow) -> DynamicRun {
        let grid = (0..=10)
            .map(|k| TimeSample {
                t_ms: k * 1000,
                allocated: 500,
                frag: 250.0,
                waiting: 1,
                failed: 0,
            })
            .collect();
        let mut waits = vec![WaitWindow::default(); 11];
        waits[10] = last;
        DynamicRun {
            seed,
            summary: RunSummary::of(&DynamicOutcome::default(), 0, 0, 1000),
            capacity: 1000,
            grid,
            waits,
            elapsed: std::time::Duration::ZERO,
        }
    }

    fn result() -> Vec<DynamicResult> {
        let w = |n, mean, max| WaitWindow {
            waited: n,
            mean_s: Some(mean),
            max_s: Some(max),
        };
        vec![DynamicResult {
            policy: PolicyKind::Fgd,
            runs: vec![run(1, w(2, 6.0, 8.0)), run(2, w(1, 2.0, 2.0))],
        }]
    }

    #[test]
    fn the_csv_appends_the_waits_after_the_old_columns() {
        let csv = csv("t", &result());
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some(
                "trace,policy,seed,point,t_s,alloc_pct,frag_pct,waiting,failed,waited,wait_mean_s,wait_max_s"
            )
        );
        assert_eq!(
            lines.next(),
            Some("t,fgd,1,0,0.000,50.0000,25.0000,1,0,0,,")
        );
        assert!(csv.contains("\nt,fgd,1,10,10.000,50.0000,25.0000,1,0,2,6.0,8.0\n"));
        assert!(csv.contains("\nt,fgd,2,10,10.000,50.0000,25.0000,1,0,1,2.0,2.0\n"));
    }

    #[test]
    fn the_tables_average_waits_over_the_seeds_that_have_one() {
        let text = tables(&result());
        let after = |title: &str| {
            let at = text
                .find(title)
                .unwrap_or_else(|| panic!("{title} in {text}"));
            text[at..].lines().skip(3).take(2).collect::<Vec<_>>()
        };
        let mean = after("mean wait s");
        assert_eq!(
            mean[0].split_whitespace().collect::<Vec<_>>(),
            ["0.00", "-"]
        );
        // Seed 1's mean 6 and seed 2's 2.
        assert_eq!(
            mean[1].split_whitespace().collect::<Vec<_>>(),
            ["0.00", "4"]
        );
        let longest = after("longest wait s");
        assert_eq!(
            longest[1].split_whitespace().collect::<Vec<_>>(),
            ["0.00", "5"]
        );
        let frag = after("fragmentation %");
        assert_eq!(
            frag[1].split_whitespace().collect::<Vec<_>>(),
            ["0.00", "25.0"]
        );
    }

    #[test]
    fn the_plot_has_a_panel_per_metric() {
        let svg = svg("t", &result()).expect("renders");
        for metric in &METRICS {
            assert!(svg.contains(metric.title), "{} missing", metric.title);
        }
    }
}
