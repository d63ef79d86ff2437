//! The paper's Fig. 9a style plot: unallocated GPU % against arrived workload, the median over
//! seeds with a 25-75 percentile band per policy, the published median dashed in the same
//! colour, the ideal line max(0, 100 - x) and the offline LP bound. Two panels: the whole
//! curve from 50 % arrived, and a zoom from 95 % on, where the policies differ by a few
//! points. Each policy keeps its colour whatever else is plotted; the legend sits beside the
//! panels, off the data, and lists every kind of line.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::alloc::OfflineBound;
use crate::policy::PolicyKind;
use crate::sim::metrics::{Curve, MAX_X, quantile};
use crate::sim::{PolicyResult, Published};

/// The plot starts where policies begin to differ; below it every curve is the ideal line.
const X_FROM: usize = 50;
/// The zoomed panel's first x.
const ZOOM_FROM: usize = 95;
const SIZE: (u32, u32) = (1200, 560);
const LEGEND_WIDTH: u32 = 250;
const FOOTER: u32 = 26;

/// One colour per policy, by its place in [`PolicyKind::ALL`].
pub(super) fn color_of(policy: PolicyKind) -> RGBColor {
    const COLORS: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    let i = PolicyKind::ALL.iter().position(|k| *k == policy);
    COLORS[i.unwrap_or(0) % COLORS.len()]
}

type Points = Vec<(f64, f64)>;

/// What is drawn, in drawing order.
enum Layer {
    /// The 25-75 % band of a policy: lower edge, upper edge.
    Band(RGBColor, Points, Points),
    Line(RGBColor, u32, Points),
    Dashed(RGBColor, u32, Points),
}

impl Layer {
    fn points(&self) -> impl Iterator<Item = &(f64, f64)> {
        let (a, b) = match self {
            Layer::Band(_, lo, hi) => (lo, Some(hi)),
            Layer::Line(_, _, p) | Layer::Dashed(_, _, p) => (p, None),
        };
        a.iter().chain(b.into_iter().flatten())
    }
}

fn points(curve: &Curve) -> Vec<(f64, f64)> {
    curve
        .iter()
        .enumerate()
        .skip(X_FROM)
        .filter_map(|(x, v)| v.map(|v| (x as f64, v)))
        .collect()
}

/// The median over seeds of the LP bound's curve.
fn bound_line(bounds: &[(u64, OfflineBound)]) -> Vec<(f64, f64)> {
    let mut xs: Vec<usize> = bounds
        .iter()
        .flat_map(|(_, b)| b.points.iter().map(|(x, _)| *x))
        .filter(|&x| x >= X_FROM)
        .collect();
    xs.sort_unstable();
    xs.dedup();
    xs.into_iter()
        .filter_map(|x| {
            let mut v: Vec<f64> = bounds
                .iter()
                .filter_map(|(_, b)| b.unallocated_pct_at(x))
                .collect();
            quantile(&mut v, 0.5).map(|m| (x as f64, m))
        })
        .collect()
}

/// Render the plot as SVG text.
pub fn unallocated_svg(
    trace: &str,
    results: &[PolicyResult],
    published: &Published,
    bounds: Option<&[(u64, OfflineBound)]>,
) -> anyhow::Result<String> {
    let grey = RGBColor(128, 128, 128);
    let ideal: Vec<(f64, f64)> = (X_FROM..=MAX_X)
        .map(|x| (x as f64, (100.0 - x as f64).max(0.0)))
        .collect();
    let mut layers = vec![Layer::Line(grey, 1, ideal)];
    let mut legend: Vec<(String, RGBColor, bool)> =
        vec![("ideal max(0, 100 - x)".into(), grey, false)];
    if let Some(bounds) = bounds {
        layers.push(Layer::Dashed(BLACK, 2, bound_line(bounds)));
        legend.push(("offline LP bound (median)".into(), BLACK, true));
    }
    let mut any_published = false;
    for r in results {
        let color = color_of(r.policy);
        let band = r.unallocated_band();
        layers.push(Layer::Band(color, points(&band.p25), points(&band.p75)));
        layers.push(Layer::Line(color, 2, points(&band.median)));
        legend.push((r.policy.name().to_string(), color, false));
        if let Some(theirs) = published.band(trace, r.policy) {
            layers.push(Layer::Dashed(color, 1, points(&theirs.median)));
            any_published = true;
        }
    }
    if any_published {
        legend.push(("published median (same colour)".into(), grey, true));
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let (upper, footer) = root.split_vertically(SIZE.1 - FOOTER);
        let (charts, key) = upper.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        let (whole, zoom) = charts.split_horizontally((SIZE.0 - LEGEND_WIDTH) / 2);
        let y_max = y_range(&layers, X_FROM).1.max(50.0);
        panel(
            &whole,
            &format!("trace {trace}"),
            X_FROM,
            (0.0, y_max),
            &layers,
        )?;
        // The zoom's y axis fits the measured curves; the ideal line runs down to 0 off it.
        let y = y_range(&layers[1..], ZOOM_FROM);
        panel(&zoom, "from 95 % arrived", ZOOM_FROM, y, &layers)?;
        draw_legend(&key, &legend)?;
        let note = "solid: allot, median over seeds, band 25-75 %; dashed in a policy's colour: \
                    the FGD authors' published median";
        footer.draw(&Text::new(note, (60, 4), ("sans-serif", 13)))?;
        root.present()?;
    }
    Ok(svg)
}

/// The y range that shows every layer's points from `x_from` on, padded and rounded; lines
/// outside it are cut at the panel's edge.
fn y_range(layers: &[Layer], x_from: usize) -> (f64, f64) {
    let ys = layers
        .iter()
        .flat_map(Layer::points)
        .filter(|(x, _)| *x >= x_from as f64)
        .map(|(_, y)| *y);
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(0.25);
    ((lo - pad).max(0.0).floor(), (hi + pad).ceil())
}

/// One panel: axes, then every layer's points from `x_from` on.
fn panel(
    area: &DrawingArea<SVGBackend, Shift>,
    caption: &str,
    x_from: usize,
    (y_lo, y_hi): (f64, f64),
    layers: &[Layer],
) -> anyhow::Result<()> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(x_from as f64..MAX_X as f64, y_lo..y_hi)?;
    let y_step = if y_hi - y_lo <= 12.0 { 1 } else { 0 };
    chart
        .configure_mesh()
        .x_desc("arrived GPU workload (% of capacity)")
        .y_desc("unallocated GPU (%)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.y_step$}"))
        .draw()?;
    let from = |p: &[(f64, f64)]| -> Vec<(f64, f64)> {
        let y = |v: f64| v.clamp(y_lo, y_hi);
        p.iter()
            .filter(|(x, _)| *x >= x_from as f64)
            .map(|&(x, v)| (x, y(v)))
            .collect()
    };
    for layer in layers {
        match layer {
            Layer::Band(color, lo, hi) => {
                let mut edge = from(lo);
                edge.extend(from(hi).into_iter().rev());
                let fill = color.mix(0.15).filled();
                chart.draw_series(std::iter::once(Polygon::new(edge, fill)))?;
            }
            Layer::Line(color, width, p) => {
                chart.draw_series(LineSeries::new(from(p), color.stroke_width(*width)))?;
            }
            Layer::Dashed(color, width, p) => {
                let style = color.stroke_width(*width);
                chart.draw_series(DashedLineSeries::new(from(p), 6, 4, style))?;
            }
        }
    }
    Ok(())
}

/// The legend in its own column: a line sample (dashed where the lines are) and the label.
fn draw_legend(
    area: &DrawingArea<SVGBackend, Shift>,
    entries: &[(String, RGBColor, bool)],
) -> anyhow::Result<()> {
    for (i, (label, color, dashed)) in entries.iter().enumerate() {
        let y = 50 + 24 * i as i32;
        let style = color.stroke_width(2);
        if *dashed {
            for x in [8, 20] {
                area.draw(&PathElement::new(vec![(x, y), (x + 8, y)], style))?;
            }
        } else {
            area.draw(&PathElement::new(vec![(8, y), (36, y)], style))?;
        }
        area.draw(&Text::new(label.as_str(), (44, y - 7), ("sans-serif", 14)))?;
    }
    Ok(())
}
