//! PNG plots: reliability diagram and triage confusion matrix.

use crate::Report;
use domain::TriageLevel;
use plotfont::register as register_font;
use plotters::prelude::*;
use std::path::Path;

type Res = Result<(), Box<dyn std::error::Error + Send + Sync>>;

pub fn reliability(path: &Path, r: &Report) -> Res {
    register_font();
    let root = BitMapBackend::new(path, (640, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Reliability: {} (ECE {:.3})", r.name, r.ece), ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
    chart.configure_mesh().x_desc("top-1 probability").y_desc("share correct").draw()?;
    chart.draw_series(LineSeries::new(vec![(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.4)))?;
    for (i, &(_, acc, n)) in r.reliability.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let x0 = i as f64 / 10.0;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x0 + 0.01, 0.0), (x0 + 0.09, acc)],
            BLUE.mix(0.6).filled(),
        )))?;
    }
    chart.draw_series(
        r.reliability
            .iter()
            .filter(|b| b.2 > 0)
            .map(|&(c, a, _)| Circle::new((c, a), 4, RED.filled())),
    )?;
    root.present()?;
    Ok(())
}

pub fn confusion(path: &Path, r: &Report) -> Res {
    register_font();
    let root = BitMapBackend::new(path, (760, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let names = ["ambulance", "emergency", "within 24h", "soon", "self-care"];
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Triage: {} (rows gold, columns predicted)", r.name), ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d((0i32..4i32).into_segmented(), (0i32..4i32).into_segmented())?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(5)
        .y_labels(5)
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(x) => {
                names.get(*x as usize).map_or(String::new(), |s| s.to_string())
            }
            _ => String::new(),
        })
        .y_label_formatter(&|y| match y {
            SegmentValue::CenterOf(y) if (0..5).contains(y) => names[4 - *y as usize].to_string(),
            _ => String::new(),
        })
        .draw()?;
    for g in 0..5 {
        let total: usize = r.confusion[g].iter().sum::<usize>().max(1);
        for p in 0..5 {
            let share = r.confusion[g][p] as f64 / total as f64;
            let y = 4 - g as i32;
            let colour = if g == p {
                GREEN
            } else if p > g {
                RED
            } else {
                BLUE
            };
            let x = p as i32;
            chart.draw_series(std::iter::once(Rectangle::new(
                [
                    (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                ],
                colour.mix(0.1 + 0.8 * share).filled(),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("{}", r.confusion[g][p]),
                (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                ("sans-serif", 18).into_font(),
            )))?;
        }
    }
    let _ = TriageLevel::ALL;
    root.present()?;
    Ok(())
}
