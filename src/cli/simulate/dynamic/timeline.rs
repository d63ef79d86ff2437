//! The dynamic replay over time: the grid of `sim::dynamic::run` (101 points from the first
//! arrival to the last) as stdout tables (every 10th point, mean over seeds), as CSV (every
//! point and seed), and as an SVG plot (median over seeds per policy: GPU allocation, pods
//! waiting, pods failed so far).

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

/// A quantity read from one grid point of one run.
struct Metric {
    title: &'static str,
    digits: usize,
    value: fn(&DynamicRun, &TimeSample) -> f64,
}

const METRICS: [Metric; 4] = [
    Metric {
        title: "GPU allocation % of capacity",
        digits: 1,
        value: |run, s| 100.0 * s.allocated as f64 / run.capacity.max(1) as f64,
    },
    Metric {
        title: "pods waiting",
        digits: 0,
        value: |_, s| s.waiting as f64,
    },
    Metric {
        title: "pods failed so far",
        digits: 0,
        value: |_, s| s.failed as f64,
    },
    Metric {
        title: "fragmentation % of capacity",
        digits: 1,
        value: |run, s| 100.0 * s.frag / run.capacity.max(1) as f64,
    },
];

/// The values of `metric` at grid point `k` over a policy's seeds.
fn at(r: &DynamicResult, metric: &Metric, k: usize) -> Vec<f64> {
    r.runs
        .iter()
        .filter_map(|run| run.grid.get(k).map(|s| (metric.value)(run, s)))
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
                    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
                    row.push(format!("{mean:.d$}", d = metric.digits));
                }
                row
            })
            .collect();
        out.push_str(&format!(
            "\n{} over time (mean over seeds):\n",
            metric.title
        ));
        out.push_str(&table::render(&header, &rows, 0));
    }
    out
}

/// Every grid point of every run.
pub fn csv(trace: &str, results: &[DynamicResult]) -> String {
    let mut out = String::from("trace,policy,seed,point,t_s,alloc_pct,frag_pct,waiting,failed\n");
    for r in results {
        for run in &r.runs {
            for (k, s) in run.grid.iter().enumerate() {
                out.push_str(&format!(
                    "{trace},{},{},{k},{:.3},{:.4},{:.4},{},{}\n",
                    r.policy.name(),
                    run.seed,
                    s.t_ms as f64 / 1000.0,
                    (METRICS[0].value)(run, s),
                    (METRICS[3].value)(run, s),
                    s.waiting,
                    s.failed,
                ));
            }
        }
    }
    out
}

/// Three panels side by side (allocation, waiting, failed), median over seeds per policy.
pub fn svg(trace: &str, results: &[DynamicResult]) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let size = (PANEL.0 * 3 + LEGEND_WIDTH, PANEL.1);
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        let (charts, key) = root.split_horizontally(PANEL.0 * 3);
        let panels = charts.split_evenly((1, 3));
        for (area, metric) in panels.iter().zip(&METRICS[..3]) {
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
