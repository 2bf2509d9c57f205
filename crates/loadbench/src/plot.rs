//! The latency plot: each step's percentiles.

use crate::Report;
use plotters::prelude::*;

type Res = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Latency (ms, log scale) against percentile, one line per step.
pub fn latency(path: &std::path::Path, r: &Report) -> Res {
    plotfont::register();
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    // The x axis is -log10(1 - p): 50, 90, 99, 99.9 and 99.99 evenly spaced.
    let x_of = |p: f64| -(1.0 - p / 100.0).max(1e-5).log10();
    let max_ms = r
        .runs
        .iter()
        .flat_map(|run| run.percentiles.iter().map(|x| x.1 * 1000.0))
        .fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Latency by percentile (fixed rates: open loop, corrected for coordinated omission)",
            ("sans-serif", 18),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..4.0f64, (0.05f64..max_ms * 1.5).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_labels(9)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-6 {
                format!("p{}", 100.0 - 100.0 * 10f64.powf(-x.round()))
            } else {
                String::new()
            }
        })
        .draw()?;
    for (i, run) in r.runs.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = run
            .percentiles
            .iter()
            .filter(|x| x.0 >= 10.0)
            .map(|&(p, s)| (x_of(p), (s * 1000.0).max(0.05)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))?
            .label(run.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, colour.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
