//! An SVG of the run: latency percentiles (log scale) above, throughput and errors below,
//! and a vertical line wherever the answering model version changed.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::cli::Plan;
use crate::record::{Change, Point};
use crate::sla::format_us;

const CHANGE: RGBColor = RGBColor(120, 40, 160);

/// A named line: (label, colour, points).
type Series = (&'static str, RGBColor, Vec<(f64, f64)>);

pub fn draw(path: &Path, plan: &Plan, timeline: &[Point], changes: &[Change]) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| anyhow!("{e}");
    let root = SVGBackend::new(path, (1100, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (upper, lower) = root.split_vertically(440);

    let t_max = timeline.last().map_or(1.0, |p| p.t).max(1.0);
    let latencies = |pick: fn(&Point) -> Option<u64>| -> Vec<(f64, f64)> {
        timeline.iter().filter_map(|p| pick(p).map(|us| (p.t, us.max(1) as f64))).collect()
    };
    let series: [Series; 4] = [
        ("p50", RGBColor(40, 120, 200), latencies(|p| p.p50_us)),
        ("p90", RGBColor(40, 160, 90), latencies(|p| p.p90_us)),
        ("p99", RGBColor(220, 120, 20), latencies(|p| p.p99_us)),
        ("max", RGBColor(200, 30, 30), latencies(|p| p.max_us)),
    ];
    let y_max = series.iter().flat_map(|(_, _, s)| s.iter().map(|(_, y)| *y)).fold(1.0, f64::max) * 2.0;
    let y_min =
        series.iter().flat_map(|(_, _, s)| s.iter().map(|(_, y)| *y)).fold(y_max, f64::min).max(1.0) / 2.0;

    let title = format!("{} {} — {}, {} target", plan.url, plan.model, plan.mode, plan.target);
    let mut chart = ChartBuilder::on(&upper)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..t_max, (y_min..y_max).log_scale())
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("latency per interval (log scale)")
        .y_labels(20)
        .y_label_formatter(&|us| format_us(*us))
        .draw()
        .map_err(|e| fail(&e))?;
    for (name, color, points) in series {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    for change in changes {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(change.t, y_min), (change.t, y_max)],
                CHANGE.stroke_width(2),
            )))
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("v{} → v{}", change.from, change.to),
                (change.t, y_max / 1.6),
                ("sans-serif", 14).into_font().color(&CHANGE),
            )))
            .map_err(|e| fail(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;

    let rate_max = timeline.iter().map(|p| p.throughput).fold(1.0, f64::max) * 1.15;
    let mut lower_chart = ChartBuilder::on(&lower)
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..t_max, 0f64..rate_max)
        .map_err(|e| fail(&e))?;
    lower_chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("answers per second")
        .draw()
        .map_err(|e| fail(&e))?;
    let interval = plan.interval.as_secs_f64();
    let ok = RGBColor(40, 120, 200);
    lower_chart
        .draw_series(LineSeries::new(timeline.iter().map(|p| (p.t, p.throughput)), ok.stroke_width(2)))
        .map_err(|e| fail(&e))?
        .label("ok/s")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], ok.stroke_width(2)));
    lower_chart
        .draw_series(LineSeries::new(
            timeline.iter().map(|p| (p.t, p.errors as f64 / interval)),
            RED.stroke_width(2),
        ))
        .map_err(|e| fail(&e))?
        .label("errors/s")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED.stroke_width(2)));
    for change in changes {
        lower_chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(change.t, 0.0), (change.t, rate_max)],
                CHANGE.stroke_width(2),
            )))
            .map_err(|e| fail(&e))?;
    }
    lower_chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
