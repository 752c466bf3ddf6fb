//! SVG charts with plotters: horizontal bars (one row per figure) and percentile curves.

use std::path::Path;

use plotters::prelude::*;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// One bar per row: (label, colour index, value). Rows are drawn top to bottom.
pub fn hbars(
    path: &Path,
    title: &str,
    unit: &str,
    rows: &[(String, usize, f64)],
) -> Result<(), String> {
    if rows.is_empty() {
        return Ok(());
    }
    let height = 90 + 26 * rows.len() as u32;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let max = rows.iter().map(|r| r.2).fold(0.0_f64, f64::max).max(1e-9) * 1.12;
    let n = rows.len();
    let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(300)
        .build_cartesian_2d(0.0..max, (0..n).into_segmented())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels
                .get(n.saturating_sub(1).saturating_sub(*i))
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc(unit)
        .draw()
        .map_err(err)?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (_, c, v))| {
            let y = n - 1 - i;
            let color = PALETTE[c % PALETTE.len()];
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(y)),
                    (*v, SegmentValue::Exact(y + 1)),
                ],
                color.filled(),
            );
            bar.set_margin(3, 3, 0, 0);
            bar
        }))
        .map_err(err)?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (_, _, v))| {
            let y = n - 1 - i;
            Text::new(
                format_value(*v),
                (*v, SegmentValue::CenterOf(y)),
                ("sans-serif", 12).into_font(),
            )
        }))
        .map_err(err)?;
    root.present().map_err(err)
}

fn format_value(v: f64) -> String {
    if v >= 100.0 {
        format!(" {v:.0}")
    } else if v >= 10.0 {
        format!(" {v:.1}")
    } else {
        format!(" {v:.2}")
    }
}

/// Percentile curves: x in "nines" (see `hist::percentile_curve`), y in µs (log scale).
pub fn percentiles(
    path: &Path,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), String> {
    let all = series.iter().flat_map(|s| s.1.iter());
    let (lo, hi) = all.fold((f64::MAX, 0.0_f64), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    if hi <= 0.0 {
        return Ok(());
    }
    let xmax = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(1.0_f64, f64::max);
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..xmax, ((lo * 0.8).max(0.01)..hi * 1.25).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(6)
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 10f64.powf(-x));
            if *x < 0.05 {
                "p0".into()
            } else {
                format!("p{}", trim(p))
            }
        })
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .draw()
        .map_err(err)?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

fn trim(p: f64) -> String {
    let s = format!("{p:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
