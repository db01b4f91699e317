//! The dashboard's charts, drawn as SVG by plotters (pure: samples in, SVG text out).

use plotters::prelude::*;

/// One chart: a series over time (seconds since the first sample), and horizontal lines.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chart {
    pub title: String,
    /// (seconds, value), in time order.
    pub points: Vec<(f64, f64)>,
    /// The main series' name in the legend; default: the title.
    pub main_label: Option<String>,
    /// More series on the same axes, each named in the legend (e.g. one per burn-rate window).
    pub more_series: Vec<(String, Vec<(f64, f64)>)>,
    /// Threshold or bound lines: (label, value).
    pub lines: Vec<(String, f64)>,
    /// Draw the series as steps (a weight holds until it changes).
    pub steps: bool,
    pub unit: String,
}

const WIDTH: u32 = 560;
const HEIGHT: u32 = 220;
const LINE_COLOURS: [RGBColor; 3] = [
    RGBColor(230, 160, 0),
    RGBColor(220, 60, 40),
    RGBColor(150, 0, 90),
];
const SERIES_COLOURS: [RGBColor; 4] = [
    RGBColor(0, 140, 70),
    RGBColor(120, 80, 200),
    RGBColor(0, 150, 170),
    RGBColor(110, 110, 110),
];

/// The chart as an SVG document; a chart without points says so in its place.
pub fn svg(chart: &Chart) -> String {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        // Drawing into a String cannot fail for I/O reasons; a plotting error leaves the chart
        // partly drawn rather than failing the page.
        let _ = draw(&root, chart);
        let _ = root.present();
    }
    out
}

fn draw<'a>(
    root: &'a DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    chart: &'a Chart,
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    root.fill(&WHITE)?;
    if chart.points.is_empty() && chart.more_series.iter().all(|(_, p)| p.is_empty()) {
        root.draw(&Text::new(
            format!("{}: no data yet", chart.title),
            (10, 20),
            ("sans-serif", 14).into_font(),
        ))?;
        return Ok(());
    }
    let (x_max, (y_min, y_max)) = bounds(chart);
    let mut plot = ChartBuilder::on(root)
        .caption(&chart.title, ("sans-serif", 14))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..x_max, y_min..y_max)?;
    plot.configure_mesh()
        .x_desc("seconds")
        .y_desc(chart.unit.as_str())
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let series: Vec<(f64, f64)> = if chart.steps {
        stepped(&chart.points)
    } else {
        chart.points.clone()
    };
    if !series.is_empty() {
        plot.draw_series(LineSeries::new(series, BLUE.stroke_width(2)))?
            .label(chart.main_label.as_deref().unwrap_or(chart.title.as_str()))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], BLUE.stroke_width(2)));
    }
    for (i, (label, points)) in chart.more_series.iter().enumerate() {
        let colour = SERIES_COLOURS[i % SERIES_COLOURS.len()];
        plot.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 12, y)], colour.stroke_width(2)));
    }
    for (i, (label, value)) in chart.lines.iter().enumerate() {
        let colour = LINE_COLOURS[i % LINE_COLOURS.len()];
        plot.draw_series(LineSeries::new(
            [(0.0, *value), (x_max, *value)],
            colour.stroke_width(1),
        ))?
        .label(format!("{label} {value}"))
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 12, y)], colour));
    }
    if !chart.lines.is_empty() || !chart.more_series.is_empty() {
        plot.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}

/// The x range, and a y range holding the points and the lines with a margin.
fn bounds(chart: &Chart) -> (f64, (f64, f64)) {
    let points = || {
        chart
            .points
            .iter()
            .chain(chart.more_series.iter().flat_map(|(_, p)| p))
    };
    let x_max = points().map(|p| p.0).fold(1.0_f64, f64::max);
    let values = points()
        .map(|p| p.1)
        .chain(chart.lines.iter().map(|l| l.1))
        .filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo > hi {
        (0.0, 1.0)
    } else {
        (lo.min(0.0), hi)
    };
    // A flat series still gets a readable axis: a tenth of its value above it, or 1 above 0.
    let pad = match hi - lo {
        span if span > 0.0 => span * 0.1,
        _ if hi != 0.0 => hi.abs() * 0.1,
        _ => 1.0,
    };
    (x_max, (lo, hi + pad))
}

/// A step line through the points: each value holds until the next point.
fn stepped(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len() * 2);
    for (i, point) in points.iter().enumerate() {
        if i > 0 {
            out.push((point.0, points[i - 1].1));
        }
        out.push(*point);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_an_svg_with_its_title_and_lines() {
        let chart = Chart {
            title: "parity tracking error".into(),
            points: vec![(0.0, 10.0), (30.0, 25.0), (60.0, 61.0)],
            lines: vec![("warning".into(), 20.0), ("critical".into(), 50.0)],
            steps: false,
            unit: "bps".into(),
            ..Chart::default()
        };
        let svg = svg(&chart);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("parity tracking error"));
        assert!(svg.contains("critical 50"));
        assert!(svg.contains("<polyline"), "{svg}");
    }

    #[test]
    fn an_empty_chart_says_so() {
        let chart = Chart {
            title: "weight".into(),
            ..Chart::default()
        };
        assert!(svg(&chart).contains("weight: no data yet"));
    }

    #[test]
    fn a_flat_series_gets_an_axis_with_room_above_it() {
        let flat = |value: f64| Chart {
            points: vec![(0.0, value), (5.0, value)],
            ..Chart::default()
        };
        assert_eq!(bounds(&flat(0.0)), (5.0, (0.0, 1.0)));
        let (_, (lo, hi)) = bounds(&flat(2.0));
        assert_eq!(lo, 0.0);
        assert!((hi - 2.2).abs() < 1e-12, "{hi}");
    }

    #[test]
    fn steps_hold_each_value_until_the_next() {
        assert_eq!(
            stepped(&[(0.0, 1.0), (10.0, 5.0), (20.0, 25.0)]),
            [
                (0.0, 1.0),
                (10.0, 1.0),
                (10.0, 5.0),
                (20.0, 5.0),
                (20.0, 25.0)
            ]
        );
    }
}
