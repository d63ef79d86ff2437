//! The learning curves `allot train` writes beside the policy file: `curves.csv` and
//! `curves.svg`, the validation figure (unallocated GPU % at 100 % arrived, or with
//! `--dynamic` the dynamic replay's failed GPU %) after every step of training.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

use crate::learn::CurvePoint;

/// Write `curves.csv` and `curves.svg` into `dir`, which `train` made before any work (so a
/// long run cannot end in "cannot create"); an error names the file.
pub fn write_curves(dir: &Path, curves: &[CurvePoint], dynamic: bool) -> anyhow::Result<()> {
    for (name, text) in [
        ("curves.csv", curves_csv(curves, dynamic)),
        ("curves.svg", curves_svg(curves, dynamic)?),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

pub fn curves_csv(curves: &[CurvePoint], dynamic: bool) -> String {
    let column = if dynamic {
        "validation_failed_gpu_pct"
    } else {
        "validation_unallocated_gpu_pct"
    };
    let mut out = format!("phase,epoch,train_reward,{column}\n");
    for c in curves {
        out += &format!(
            "{},{},{},{}\n",
            c.phase, c.epoch, c.train_reward, c.validation_unallocated_pct
        );
    }
    out
}

/// The validation figure per step of training (warm start, supervised epochs, then
/// Q-learning epochs): the learning picture.
pub fn curves_svg(curves: &[CurvePoint], dynamic: bool) -> anyhow::Result<String> {
    let what = if dynamic {
        "failed GPU % (dynamic replay)"
    } else {
        "unallocated GPU %"
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let ys: Vec<f64> = curves
            .iter()
            .map(|c| c.validation_unallocated_pct)
            .collect();
        let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let pad = ((hi - lo) * 0.2).max(0.1);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("allot train: validation {what} (lower is better)"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(
                0f64..(curves.len().max(2) - 1) as f64,
                (lo - pad)..(hi + pad),
            )?;
        chart
            .configure_mesh()
            .x_desc("step (0 = FGD warm start, then supervised and Q-learning epochs, search generations)")
            .y_desc(what)
            .draw()?;
        chart.draw_series(LineSeries::new(
            ys.iter().enumerate().map(|(i, y)| (i as f64, *y)),
            &BLUE,
        ))?;
        chart.draw_series(
            ys.iter()
                .enumerate()
                .map(|(i, y)| Circle::new((i as f64, *y), 3, BLUE.filled())),
        )?;
        if let Some(start) = ys.first() {
            chart.draw_series(LineSeries::new(
                [(0.0, *start), ((curves.len().max(2) - 1) as f64, *start)],
                &RED,
            ))?;
        }
        root.present()?;
    }
    Ok(svg)
}
