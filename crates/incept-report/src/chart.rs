//! Small line charts as inline SVG (training curves): axes with round-number ticks, one
//! polyline per series, a legend, and an optional dashed vertical marker (the best epoch).

use std::fmt::Write as _;

use crate::html::escape;

/// Chart size, CSS pixels.
const WIDTH: f64 = 440.0;
const HEIGHT: f64 = 260.0;
/// Plot area margins, CSS pixels: room for tick labels (left, bottom), legend and title (top).
const LEFT: f64 = 56.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 42.0;

/// One line of a chart.
pub(crate) struct Series<'a> {
    pub name: &'a str,
    /// A CSS colour.
    pub colour: &'a str,
    /// (x, y) points; non-finite ones are left out.
    pub points: Vec<(f64, f64)>,
}

/// What a chart shows and how its axes are labelled.
pub(crate) struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: Vec<Series<'a>>,
    /// A dashed vertical line at this x, with its label.
    pub marker: Option<(f64, &'a str)>,
    /// Multiply y tick labels by 100 and append `%` (y values are fractions).
    pub percent: bool,
    /// x values are fractions too (shown as percentages), not whole epochs.
    pub x_percent: bool,
}

/// Round-number ticks covering [min, max]: steps of 1, 2 or 5 × 10^k, about `target` of them.
pub(crate) fn nice_ticks(min: f64, max: f64, target: usize) -> Vec<f64> {
    let (min, max) = if max > min { (min, max) } else { (min - 1.0, max + 1.0) };
    let rough = (max - min) / target.max(1) as f64;
    // Values from an edited or damaged run.json (infinite, 1e308): two ticks, not billions.
    if !rough.is_finite() || rough <= 0.0 {
        return vec![min, max];
    }
    // step = mantissa × 10^exponent, kept apart so that ticks are the doubles nearest to their
    // decimals (0.6, not 6 × 0.1 = 0.6000000000000001).
    let mut exponent = rough.log10().floor() as i32;
    let mut mantissa = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|m| m * 10f64.powi(exponent) >= rough)
        .unwrap_or(10.0);
    if mantissa == 10.0 {
        (mantissa, exponent) = (1.0, exponent + 1);
    }
    let value = |i: i64| {
        if exponent >= 0 {
            i as f64 * mantissa * 10f64.powi(exponent)
        } else {
            i as f64 * mantissa / 10f64.powi(-exponent)
        }
    };
    let step = value(1);
    let first = (min / step).floor() as i64;
    let last = (max / step).ceil() as i64;
    if step <= 0.0 || !step.is_finite() || last.saturating_sub(first) > 100 {
        return vec![min, max];
    }
    (first..=last).map(value).collect()
}

/// The chart as an `<svg>` element.
pub(crate) fn line_chart(chart: &Chart) -> String {
    let finite = |&&(x, y): &&(f64, f64)| x.is_finite() && y.is_finite();
    let points: Vec<&(f64, f64)> =
        chart.series.iter().flat_map(|s| s.points.iter()).filter(finite).collect();
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{title}">"#,
        title = escape(chart.title)
    );
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="16" font-size="14" font-weight="bold">{}</text>"#,
        escape(chart.title)
    );
    if points.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="{LEFT}" y="{}" font-size="13">no epochs</text></svg>"#,
            HEIGHT / 2.0
        );
        return svg;
    }
    let x_min = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x_max = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let y_min = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let y_ticks =
        nice_ticks(y_min, points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max), 5);
    // Epochs are whole numbers: never a tick between two.
    let x_ticks: Vec<f64> = nice_ticks(x_min, x_max, 6)
        .into_iter()
        .filter(|x| chart.x_percent || x.fract() == 0.0)
        .collect();
    let (y_low, y_high) = match (y_ticks.first(), y_ticks.last()) {
        (Some(&low), Some(&high)) if high > low => (low, high),
        _ => (y_min - 1.0, y_min + 1.0),
    };
    let (x_low, x_high) = (
        x_min.min(x_ticks.first().copied().unwrap_or(x_min)),
        x_max.max(x_ticks.last().copied().unwrap_or(x_max)),
    );
    let (x_low, x_high) =
        if x_high > x_low { (x_low, x_high) } else { (x_low - 1.0, x_high + 1.0) };
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let to_x = |x: f64| LEFT + (x - x_low) / (x_high - x_low) * plot_width;
    let to_y = |y: f64| TOP + (1.0 - (y - y_low) / (y_high - y_low)) * plot_height;

    for &y in &y_ticks {
        let label = if chart.percent { format!("{:.0}%", 100.0 * y) } else { format!("{y:.2}") };
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{right}" y1="{py:.1}" y2="{py:.1}" stroke="#e4e4e4"/><text x="{tx}" y="{ty:.1}" font-size="11" text-anchor="end">{label}</text>"##,
            right = WIDTH - RIGHT,
            py = to_y(y),
            tx = LEFT - 6.0,
            ty = to_y(y) + 4.0,
        );
    }
    for &x in x_ticks.iter().filter(|x| (x_low..=x_high).contains(*x)) {
        let label = if chart.x_percent { format!("{:.0}%", 100.0 * x) } else { x.to_string() };
        let _ = write!(
            svg,
            r##"<line x1="{px:.1}" x2="{px:.1}" y1="{bottom}" y2="{tick}" stroke="#444"/><text x="{px:.1}" y="{ty}" font-size="11" text-anchor="middle">{label}</text>"##,
            px = to_x(x),
            bottom = HEIGHT - BOTTOM,
            tick = HEIGHT - BOTTOM + 4.0,
            ty = HEIGHT - BOTTOM + 16.0,
        );
    }
    // Axes and their labels.
    let _ = write!(
        svg,
        r##"<path d="M{LEFT} {TOP} V{bottom} H{right}" fill="none" stroke="#444"/><text x="{cx:.1}" y="{ly}" font-size="12" text-anchor="middle">{x_label}</text><text transform="translate(14 {cy:.1}) rotate(-90)" font-size="12" text-anchor="middle">{y_label}</text>"##,
        bottom = HEIGHT - BOTTOM,
        right = WIDTH - RIGHT,
        cx = LEFT + plot_width / 2.0,
        ly = HEIGHT - 6.0,
        cy = TOP + plot_height / 2.0,
        x_label = escape(chart.x_label),
        y_label = escape(chart.y_label),
    );
    if let Some((x, label)) = chart.marker.filter(|(x, _)| (x_low..=x_high).contains(x)) {
        // The label right of the line, or left of it near the right edge (never clipped).
        let (tx, anchor) = if to_x(x) > WIDTH - RIGHT - 40.0 {
            (to_x(x) - 3.0, "end")
        } else {
            (to_x(x) + 3.0, "start")
        };
        let _ = write!(
            svg,
            r##"<line x1="{px:.1}" x2="{px:.1}" y1="{TOP}" y2="{bottom}" stroke="#888" stroke-dasharray="4 3"/><text x="{tx:.1}" y="{ty}" font-size="11" fill="#555" text-anchor="{anchor}">{label}</text>"##,
            px = to_x(x),
            bottom = HEIGHT - BOTTOM,
            ty = TOP + 10.0,
            label = escape(label),
        );
    }
    for (index, series) in chart.series.iter().enumerate() {
        let coordinates: Vec<String> = series
            .points
            .iter()
            .filter(|p| finite(p))
            .map(|&(x, y)| format!("{:.1},{:.1}", to_x(x), to_y(y)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            coordinates.join(" "),
            colour = escape(series.colour),
        );
        // Legend, under the title, one entry per series.
        let legend_x = LEFT + index as f64 * 95.0;
        let _ = write!(
            svg,
            r#"<line x1="{legend_x}" x2="{x2}" y1="30" y2="30" stroke="{colour}" stroke-width="3"/><text x="{tx}" y="34" font-size="11">{name}</text>"#,
            x2 = legend_x + 16.0,
            tx = legend_x + 20.0,
            colour = escape(series.colour),
            name = escape(series.name),
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(nice_ticks(0.43, 0.91, 5), [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]);
        assert_eq!(nice_ticks(1.0, 30.0, 6), [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]);
        // One epoch: a range around it instead of a division by zero.
        assert_eq!(nice_ticks(1.0, 1.0, 6), [0.0, 0.5, 1.0, 1.5, 2.0]);
        // Absurd values (a damaged run.json): no runaway, no panic.
        assert_eq!(nice_ticks(-f64::MAX, f64::MAX, 5), [-f64::MAX, f64::MAX]);
        assert!(
            line_chart(&Chart {
                title: "t",
                x_label: "x",
                y_label: "y",
                series: vec![Series {
                    name: "s",
                    colour: "red",
                    points: vec![(1.0, 1e308), (2.0, -1e308)]
                }],
                marker: None,
                percent: false,
                x_percent: false,
            })
            .ends_with("</svg>")
        );
    }

    #[test]
    fn draws_each_series_and_escapes_labels() {
        let chart = Chart {
            title: "loss <nats>",
            x_label: "epoch",
            y_label: "loss",
            series: vec![
                Series { name: "train", colour: "#1f77b4", points: vec![(1.0, 1.0), (2.0, 0.5)] },
                Series {
                    name: "validation",
                    colour: "#ff7f0e",
                    points: vec![(1.0, 0.9), (2.0, f64::NAN)],
                },
            ],
            marker: Some((2.0, "best")),
            percent: false,
            x_percent: false,
        };
        let svg = line_chart(&chart);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("loss &lt;nats&gt;") && !svg.contains("NaN"), "{svg}");
        assert!(svg.contains("stroke-dasharray"));
    }
}
