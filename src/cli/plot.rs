//! The paper's Fig. 9a style plot: unallocated GPU % against arrived workload, the median over
//! seeds with a 25-75 percentile band per policy, the published median dashed beside it, and
//! the ideal line max(0, 100 - x).

use plotters::prelude::*;

use crate::alloc::OfflineBound;
use crate::sim::metrics::{Band, Curve, MAX_X, quantile};
use crate::sim::{PolicyResult, Published};

/// The plot starts where policies begin to differ; below it every curve is the ideal line.
const X_FROM: usize = 50;
const SIZE: (u32, u32) = (900, 600);

fn palette(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    COLORS[i % COLORS.len()]
}

fn points(curve: &Curve) -> Vec<(f64, f64)> {
    curve
        .iter()
        .enumerate()
        .skip(X_FROM)
        .filter_map(|(x, v)| v.map(|v| (x as f64, v)))
        .collect()
}

/// Render the plot as SVG text.
pub fn unallocated_svg(
    trace: &str,
    results: &[PolicyResult],
    published: &Published,
    bounds: Option<&[(u64, OfflineBound)]>,
) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let (upper, footer) = root.split_vertically(SIZE.1 - 26);
        let bands: Vec<(usize, &PolicyResult, Band)> = results
            .iter()
            .enumerate()
            .map(|(i, r)| (i, r, r.unallocated_band()))
            .collect();
        let y_max = bands
            .iter()
            .flat_map(|(_, _, b)| b.p75.iter().skip(X_FROM).flatten().copied())
            .fold(50.0_f64, f64::max)
            .ceil();
        let mut chart = ChartBuilder::on(&upper)
            .caption(
                format!("Unallocated GPU vs arrived workload — trace {trace}"),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d(X_FROM as f64..MAX_X as f64, 0f64..y_max)?;
        chart
            .configure_mesh()
            .x_desc("arrived GPU workload (% of capacity)")
            .y_desc("unallocated GPU (%)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        let ideal = (X_FROM..=MAX_X).map(|x| (x as f64, (100.0 - x as f64).max(0.0)));
        chart
            .draw_series(LineSeries::new(ideal, BLACK.mix(0.5).stroke_width(1)))?
            .label("ideal max(0, 100 - x)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.5)));
        if let Some(bounds) = bounds {
            let mut xs: Vec<usize> = bounds
                .iter()
                .flat_map(|(_, b)| b.points.iter().map(|(x, _)| *x))
                .collect();
            xs.sort_unstable();
            xs.dedup();
            let line: Vec<(f64, f64)> = xs
                .into_iter()
                .filter(|&x| x >= X_FROM)
                .filter_map(|x| {
                    let mut v: Vec<f64> = bounds
                        .iter()
                        .filter_map(|(_, b)| b.unallocated_pct_at(x))
                        .collect();
                    quantile(&mut v, 0.5).map(|m| (x as f64, m))
                })
                .collect();
            chart
                .draw_series(DashedLineSeries::new(line, 3, 3, BLACK.stroke_width(2)))?
                .label("offline LP bound (median)")
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], BLACK.stroke_width(2))
                });
        }
        for (i, result, band) in &bands {
            let color = palette(*i);
            let mut area: Vec<(f64, f64)> = points(&band.p25);
            area.extend(points(&band.p75).into_iter().rev());
            chart.draw_series(std::iter::once(Polygon::new(
                area,
                color.mix(0.15).filled(),
            )))?;
            chart
                .draw_series(LineSeries::new(points(&band.median), color.stroke_width(2)))?
                .label(result.policy.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            if let Some(theirs) = published.band(trace, result.policy) {
                chart.draw_series(DashedLineSeries::new(
                    points(&theirs.median),
                    6,
                    4,
                    color.stroke_width(1),
                ))?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
        footer.draw(&Text::new(
            "solid: allot (median over seeds, band 25-75%); dashed: FGD authors' published median",
            (60, 4),
            ("sans-serif", 13),
        ))?;
        root.present()?;
    }
    Ok(svg)
}
