//! Small inline SVG charts for the statistics page, built as strings.
//!
//! Pure functions: data in, a self-contained `<svg>` element out (no script,
//! no external assets, sized by `viewBox` so it scales with the page). Every
//! piece of text is XML-escaped here, so callers may pass labels taken from
//! the database as they are. Values are counts (non-negative); anything else
//! is clamped to zero rather than drawn off the chart.

use std::fmt::Write;

/// One line of a [`line_chart`].
pub struct Series<'a> {
    pub name: &'a str,
    pub values: &'a [f64],
    /// Any CSS colour, e.g. `#2563eb`.
    pub color: &'a str,
}

const LINE_W: f64 = 720.0;
const LINE_H: f64 = 260.0;
const PAD_LEFT: f64 = 44.0;
const PAD_RIGHT: f64 = 16.0;
const PAD_TOP: f64 = 34.0;
const PAD_BOTTOM: f64 = 40.0;
const GRID_LINES: usize = 4;

const BAR_LABEL_W: f64 = 130.0;
/// Width of the longest bar in a [`bar_chart`].
pub const BAR_AREA_W: f64 = 300.0;
const BAR_ROW_H: f64 = 26.0;

/// Escapes text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The smallest of 1, 2, 5 × 10ⁿ that is ≥ `v`, and at least [`GRID_LINES`]
/// so that the grid of counts falls on whole numbers.
pub fn nice_max(v: f64) -> f64 {
    if !(v.is_finite() && v > GRID_LINES as f64) {
        return GRID_LINES as f64;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|m| m * magnitude >= v)
        .unwrap_or(10.0);
    step * magnitude
}

/// A count as text: whole numbers without decimals, others with one.
pub fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

fn clean(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 {
        v
    } else {
        0.0
    }
}

/// The length of a bar of `value` when `max` fills [`BAR_AREA_W`].
pub fn bar_width(value: f64, max: f64) -> f64 {
    let (value, max) = (clean(value), clean(max));
    if max == 0.0 {
        0.0
    } else {
        (value / max).min(1.0) * BAR_AREA_W
    }
}

fn open_svg(out: &mut String, title: &str, width: f64, height: f64) {
    let t = escape(title);
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 {width} {height}\" \
         role=\"img\" aria-label=\"{t}\"><title>{t}</title>"
    );
}

fn empty_chart(title: &str, width: f64) -> String {
    let mut out = String::new();
    open_svg(&mut out, title, width, 60.0);
    let _ = write!(
        out,
        "<text x=\"{}\" y=\"34\" text-anchor=\"middle\" class=\"muted\">No data yet</text></svg>",
        width / 2.0
    );
    out
}

/// Lines over shared x labels (e.g. days), with a y grid and a legend.
/// Every `labels` entry is one x position; series shorter than `labels` stop early.
pub fn line_chart(title: &str, labels: &[String], series: &[Series<'_>]) -> String {
    if labels.is_empty() || series.is_empty() {
        return empty_chart(title, LINE_W);
    }
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied().map(clean))
        .fold(0.0, f64::max);
    let top = nice_max(max);
    let plot_w = LINE_W - PAD_LEFT - PAD_RIGHT;
    let plot_h = LINE_H - PAD_TOP - PAD_BOTTOM;
    let step = if labels.len() > 1 {
        plot_w / (labels.len() - 1) as f64
    } else {
        0.0
    };
    let x_at = |i: usize| PAD_LEFT + step * i as f64;
    let y_at = |v: f64| PAD_TOP + plot_h * (1.0 - clean(v) / top);

    let mut out = String::new();
    open_svg(&mut out, title, LINE_W, LINE_H);
    for g in 0..=GRID_LINES {
        let value = top * g as f64 / GRID_LINES as f64;
        let y = y_at(value);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{PAD_LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"axis\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LINE_W - PAD_RIGHT,
            PAD_LEFT - 6.0,
            y + 4.0,
            fmt_num(value)
        );
    }
    // About eight x labels, whatever the number of points, counted back
    // from the last so that the newest point is always labelled.
    let every = labels.len().div_ceil(8).max(1);
    let last = labels.len() - 1;
    for (i, label) in labels.iter().enumerate() {
        if (last - i).is_multiple_of(every) {
            let _ = write!(
                out,
                "<text class=\"axis\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x_at(i),
                LINE_H - PAD_BOTTOM + 18.0,
                escape(label)
            );
        }
    }
    for (n, s) in series.iter().enumerate() {
        write_series(&mut out, s, labels, &x_at, &y_at);
        write_legend_entry(&mut out, n, s);
    }
    out.push_str("</svg>");
    out
}

fn write_series(
    out: &mut String,
    s: &Series<'_>,
    labels: &[String],
    x_at: &impl Fn(usize) -> f64,
    y_at: &impl Fn(f64) -> f64,
) {
    let color = escape(s.color);
    let points: Vec<String> = s
        .values
        .iter()
        .take(labels.len())
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", x_at(i), y_at(*v)))
        .collect();
    let _ = write!(
        out,
        "<polyline class=\"series\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
        points.join(" ")
    );
    for (i, v) in s.values.iter().take(labels.len()).enumerate() {
        let _ = write!(
            out,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"><title>{}: {} {}</title></circle>",
            x_at(i),
            y_at(*v),
            escape(&labels[i]),
            fmt_num(clean(*v)),
            escape(s.name)
        );
    }
}

fn write_legend_entry(out: &mut String, n: usize, s: &Series<'_>) {
    let x = PAD_LEFT + 130.0 * n as f64;
    let _ = write!(
        out,
        "<rect x=\"{x}\" y=\"8\" width=\"12\" height=\"12\" rx=\"2\" fill=\"{}\"/>\
         <text class=\"legend\" x=\"{}\" y=\"18\">{}</text>",
        escape(s.color),
        x + 18.0,
        escape(s.name)
    );
}

/// Horizontal bars, one per `(label, value)`, longest = largest value, with the value at the end.
pub fn bar_chart(title: &str, bars: &[(String, f64)], color: &str) -> String {
    let width = BAR_LABEL_W + BAR_AREA_W + 60.0;
    if bars.is_empty() {
        return empty_chart(title, width);
    }
    let max = bars.iter().map(|(_, v)| clean(*v)).fold(0.0, f64::max);
    let height = BAR_ROW_H * bars.len() as f64 + 8.0;
    let mut out = String::new();
    open_svg(&mut out, title, width, height);
    let color = escape(color);
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = 4.0 + BAR_ROW_H * i as f64;
        let w = bar_width(*value, max);
        let label = escape(label);
        let _ = write!(
            out,
            "<text class=\"label\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>\
             <rect class=\"bar\" x=\"{BAR_LABEL_W}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{}\" rx=\"3\" fill=\"{color}\">\
             <title>{label}: {}</title></rect>\
             <text class=\"value\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            BAR_LABEL_W - 8.0,
            y + 15.0,
            BAR_ROW_H - 8.0,
            fmt_num(clean(*value)),
            BAR_LABEL_W + w + 6.0,
            y + 15.0,
            fmt_num(clean(*value))
        );
    }
    out.push_str("</svg>");
    out
}

/// A single filled bar showing `part` of `whole` as a percentage (e.g. the escalation rate).
pub fn ratio_bar(title: &str, part: i64, whole: i64, color: &str) -> String {
    let width = BAR_AREA_W + 40.0;
    if whole <= 0 {
        return empty_chart(title, width);
    }
    let part = part.clamp(0, whole);
    let fraction = part as f64 / whole as f64;
    let mut out = String::new();
    open_svg(&mut out, title, width, 64.0);
    let _ = write!(
        out,
        "<rect x=\"20\" y=\"8\" width=\"{BAR_AREA_W}\" height=\"22\" rx=\"4\" class=\"track\"/>\
         <rect x=\"20\" y=\"8\" width=\"{:.1}\" height=\"22\" rx=\"4\" fill=\"{}\"/>\
         <text class=\"label\" x=\"20\" y=\"52\">{:.1}% ({part} of {whole})</text></svg>",
        fraction * BAR_AREA_W,
        escape(color),
        fraction * 100.0
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(haystack: &str, needle: &str) -> usize {
        haystack.matches(needle).count()
    }

    #[test]
    fn text_is_escaped_everywhere() {
        let evil = "<script>alert('x')</script> & \"q\"";
        let bars = bar_chart(evil, &[(evil.to_string(), 3.0)], "red\"/><script>");
        let line = line_chart(
            evil,
            &[evil.to_string()],
            &[Series {
                name: evil,
                values: &[1.0],
                color: "#000",
            }],
        );
        for svg in [bars, line] {
            assert!(!svg.contains("<script>"), "{svg}");
            assert!(
                svg.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;")
            );
        }
    }

    #[test]
    fn bars_are_proportional_to_values() {
        assert_eq!(bar_width(10.0, 10.0), BAR_AREA_W);
        assert_eq!(bar_width(5.0, 10.0), BAR_AREA_W / 2.0);
        assert_eq!(bar_width(3.0, 0.0), 0.0);
        assert_eq!(bar_width(f64::NAN, 4.0), 0.0);
        let svg = bar_chart(
            "By category",
            &[("plumbing".into(), 8.0), ("hvac".into(), 2.0)],
            "#2563eb",
        );
        assert_eq!(count(&svg, "<rect class=\"bar\""), 2);
        assert!(svg.contains(&format!("width=\"{BAR_AREA_W:.1}\"")));
        assert!(svg.contains(&format!("width=\"{:.1}\"", BAR_AREA_W / 4.0)));
        assert!(svg.contains(">plumbing</text>") && svg.contains(">8</text>"));
    }

    #[test]
    fn line_chart_has_one_point_per_value_and_a_line_per_series() {
        let labels: Vec<String> = (1..=30).map(|d| format!("11-{d:02}")).collect();
        let calls: Vec<f64> = (0..30).map(|i| (i % 7) as f64).collect();
        let tasks: Vec<f64> = (0..30).map(|i| (i % 3) as f64).collect();
        let svg = line_chart(
            "Per day",
            &labels,
            &[
                Series {
                    name: "calls",
                    values: &calls,
                    color: "#111",
                },
                Series {
                    name: "tasks",
                    values: &tasks,
                    color: "#222",
                },
            ],
        );
        assert_eq!(count(&svg, "<polyline"), 2);
        // Eight x labels, the newest day among them; five y grid labels.
        assert_eq!(count(&svg, "text-anchor=\"middle\">11-"), 8);
        assert!(svg.contains(">11-30</text>"));
        assert_eq!(count(&svg, "text-anchor=\"end\">"), 5);
        assert_eq!(count(&svg, "<circle"), 60);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        // The top grid line is labelled with the rounded-up maximum (6 → 10).
        assert!(svg.contains(">10</text>"));
        // The highest point sits on the plot's vertical scale: 6 of 10.
        let y6 = PAD_TOP + (LINE_H - PAD_TOP - PAD_BOTTOM) * 0.4;
        assert!(svg.contains(&format!("cy=\"{y6:.1}\"")), "{svg}");
    }

    #[test]
    fn empty_inputs_say_so() {
        for svg in [
            line_chart("x", &[], &[]),
            bar_chart("x", &[], "#000"),
            ratio_bar("x", 0, 0, "#000"),
        ] {
            assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
            assert!(svg.contains("No data yet"));
        }
    }

    #[test]
    fn nice_max_rounds_up_to_1_2_5() {
        let cases = [
            (0.0, 4.0),
            (3.0, 4.0),
            (6.0, 10.0),
            (11.0, 20.0),
            (20.0, 20.0),
            (21.0, 50.0),
            (501.0, 1000.0),
            (f64::NAN, 4.0),
        ];
        for (v, want) in cases {
            assert_eq!(nice_max(v), want, "nice_max({v})");
        }
    }

    #[test]
    fn ratio_bar_shows_percentage() {
        let svg = ratio_bar("Escalation rate", 3, 12, "#dc2626");
        assert!(svg.contains("25.0% (3 of 12)"));
        assert!(svg.contains(&format!("width=\"{:.1}\"", BAR_AREA_W / 4.0)));
        // More parts than the whole (bad data) never draws past the track.
        assert!(ratio_bar("x", 20, 10, "#000").contains("100.0% (10 of 10)"));
    }
}
