//! Charts as inline SVG: bars, stacked bars and lines. No script and nothing fetched: a report
//! opens offline in any browser, and every label is escaped.

use std::fmt::Write;

use crate::html::escape;

/// Colours of the series, in order (kept, dropped, failed first).
pub(crate) const PALETTE: &[&str] = &["#2f7d4f", "#c98a1a", "#c0392b", "#3b6ea8", "#8e44ad", "#16a085", "#7f8c8d", "#d35400"];

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 42.0;
const TOP: f64 = 14.0;

/// A bar chart of `(label, count)`.
pub(crate) fn bars(caption: &str, bars: &[(String, u64)], color: &str) -> String {
    let max = bars.iter().map(|bar| bar.1).max().unwrap_or(0).max(1) as f64;
    let plot_w = WIDTH - LEFT - 8.0;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let slot = plot_w / bars.len().max(1) as f64;
    let every = (bars.len() / 12).max(1);
    let mut svg = open(caption);
    axis(&mut svg, max, plot_h);
    for (index, (label, count)) in bars.iter().enumerate() {
        let height = *count as f64 / max * plot_h;
        let x = LEFT + slot * index as f64;
        let _ = write!(
            svg,
            r#"<rect class="bar" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{}: {count}</title></rect>"#,
            x + slot * 0.1,
            TOP + plot_h - height,
            (slot * 0.8).max(1.0),
            height,
            escape(label)
        );
        if index % every == 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
                x + slot / 2.0,
                TOP + plot_h + 14.0,
                escape(&short_label(label))
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal stacked bars: one row per label, one segment per series (`names`).
pub(crate) fn stacked(caption: &str, names: &[&str], rows: &[(String, Vec<u64>)]) -> String {
    let row_h = 22.0;
    let label_w = 230.0;
    let height = TOP + row_h * rows.len() as f64 + 30.0;
    let max = rows.iter().map(|(_, values)| values.iter().sum::<u64>()).max().unwrap_or(0).max(1) as f64;
    let plot_w = WIDTH + 140.0 - label_w - 60.0;
    let mut svg = format!(
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {:.0} {height:.0}" role="img" aria-label="{}">"#,
        WIDTH + 140.0,
        escape(caption)
    );
    for (index, (label, values)) in rows.iter().enumerate() {
        let y = TOP + row_h * index as f64;
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"#,
            label_w - 6.0,
            y + 14.0,
            escape(&tail(label, 36))
        );
        let mut x = label_w;
        for (series, value) in values.iter().enumerate() {
            let width = *value as f64 / max * plot_w;
            if width > 0.0 {
                let _ = write!(
                    svg,
                    r#"<rect class="bar" x="{x:.1}" y="{:.1}" width="{width:.1}" height="{:.1}" fill="{}"><title>{} {}: {value}</title></rect>"#,
                    y + 3.0,
                    row_h - 6.0,
                    PALETTE[series % PALETTE.len()],
                    escape(label),
                    escape(names.get(series).copied().unwrap_or(""))
                );
            }
            x += width;
        }
        let total: u64 = values.iter().sum();
        let _ = write!(svg, r#"<text x="{:.1}" y="{:.1}" font-size="10">{total}</text>"#, x + 4.0, y + 14.0);
    }
    legend(&mut svg, names, height - 12.0);
    svg.push_str("</svg>");
    svg
}

/// A line chart of several series of `(x, y)`.
pub(crate) fn lines(caption: &str, series: &[(String, Vec<(f64, f64)>)], x_label: &str) -> String {
    let points = series.iter().flat_map(|(_, points)| points.iter());
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for (x, y) in points {
        x_min = x_min.min(*x);
        x_max = x_max.max(*x);
        y_min = y_min.min(*y);
        y_max = y_max.max(*y);
    }
    if !x_min.is_finite() {
        return String::new();
    }
    y_min = y_min.min(0.0);
    if y_max <= y_min {
        y_max = y_min + 1.0;
    }
    if x_max <= x_min {
        x_max = x_min + 1.0;
    }
    let plot_w = WIDTH - LEFT - 8.0;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let sx = |x: f64| LEFT + (x - x_min) / (x_max - x_min) * plot_w;
    let sy = |y: f64| TOP + plot_h - (y - y_min) / (y_max - y_min) * plot_h;
    let names: Vec<&str> = series.iter().map(|(name, _)| name.as_str()).collect();
    let has_legend = names.len() > 1 || names.first().is_some_and(|name| !name.is_empty());
    let extra_rows = if has_legend { legend_rows(&names).saturating_sub(1) } else { 0 };
    let mut svg = open_sized(caption, HEIGHT + LEGEND_ROW * extra_rows as f64);
    let _ = write!(svg, r#"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="rgb(153,153,153)"/>"#, TOP + plot_h);
    let _ = write!(
        svg,
        r#"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="rgb(153,153,153)"/>"#,
        TOP + plot_h,
        LEFT + plot_w,
        TOP + plot_h
    );
    for (value, y) in [(y_max, sy(y_max)), ((y_max + y_min) / 2.0, sy((y_max + y_min) / 2.0)), (y_min, sy(y_min))] {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"#,
            LEFT - 4.0,
            y + 3.0,
            escape(&crate::collect::short_number(value))
        );
    }
    for value in [x_min, (x_min + x_max) / 2.0, x_max] {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
            sx(value),
            TOP + plot_h + 14.0,
            escape(&crate::collect::short_number(value))
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        TOP + plot_h + 27.0,
        escape(x_label)
    );
    for (index, (_, points)) in series.iter().enumerate() {
        let color = PALETTE[index % PALETTE.len()];
        let path: Vec<String> = points.iter().map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y))).collect();
        let _ = write!(svg, r#"<polyline class="line" fill="none" stroke="{color}" stroke-width="1.8" points="{}"/>"#, path.join(" "));
        if points.len() <= 40 {
            for (x, y) in points {
                let _ = write!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{color}"><title>{}: {}</title></circle>"#,
                    sx(*x),
                    sy(*y),
                    escape(&crate::collect::short_number(*x)),
                    escape(&crate::collect::short_number(*y))
                );
            }
        }
    }
    if has_legend {
        legend(&mut svg, &names, HEIGHT - 4.0);
    }
    svg.push_str("</svg>");
    svg
}

fn open(caption: &str) -> String {
    open_sized(caption, HEIGHT)
}

fn open_sized(caption: &str, height: f64) -> String {
    format!(
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH:.0} {height:.0}" role="img" aria-label="{}">"#,
        escape(caption)
    )
}

fn axis(svg: &mut String, max: f64, plot_h: f64) {
    let _ = write!(svg, r#"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="rgb(153,153,153)"/>"#, TOP + plot_h);
    let _ = write!(
        svg,
        r#"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="rgb(153,153,153)"/>"#,
        TOP + plot_h,
        WIDTH - 8.0,
        TOP + plot_h
    );
    for (value, y) in [(max, TOP), (max / 2.0, TOP + plot_h / 2.0), (0.0, TOP + plot_h)] {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"#,
            LEFT - 4.0,
            y + 3.0,
            escape(&crate::collect::short_number(value.round()))
        );
    }
}

/// Height of one row of a legend.
const LEGEND_ROW: f64 = 15.0;

/// Where each legend entry goes: its label (the end of a long name), x and row; entries wrap
/// onto further rows rather than run past the chart's right edge.
fn legend_layout(names: &[&str]) -> Vec<(String, f64, usize)> {
    let (mut x, mut row) = (LEFT, 0);
    let mut placed = Vec::with_capacity(names.len());
    for name in names {
        let label = tail(name, 28);
        let width = 24.0 + 6.5 * label.chars().count() as f64;
        if x > LEFT && x + width > WIDTH {
            (x, row) = (LEFT, row + 1);
        }
        placed.push((label, x, row));
        x += width;
    }
    placed
}

/// Rows a legend of these names takes.
fn legend_rows(names: &[&str]) -> usize {
    legend_layout(names).last().map_or(0, |(_, _, row)| row + 1)
}

/// Draws the legend, its first row's baseline at `y`.
fn legend(svg: &mut String, names: &[&str], y: f64) {
    for (index, (label, x, row)) in legend_layout(names).into_iter().enumerate() {
        let y = y + LEGEND_ROW * row as f64;
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="{}"><title>{}</title></rect>"#,
            y - 9.0,
            PALETTE[index % PALETTE.len()],
            escape(names[index])
        );
        let _ = write!(svg, r#"<text x="{:.1}" y="{y:.1}" font-size="11">{}</text>"#, x + 14.0, escape(&label));
    }
}

/// The end of a long label (a step's path says most at its end).
fn tail(text: &str, chars: usize) -> String {
    let count = text.chars().count();
    if count <= chars {
        return text.to_string();
    }
    let mut cut = String::from("…");
    cut.extend(text.chars().skip(count - chars + 1));
    cut
}

fn short_label(label: &str) -> String {
    short(label, 10)
}

fn short(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(chars - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_escape_their_labels() {
        let chart = bars("<b>scores</b>", &[("<script>".into(), 3), ("ok".into(), 1)], PALETTE[0]);
        assert!(!chart.contains("<script>") && !chart.contains("<b>"), "{chart}");
        assert_eq!(chart.matches(r#"class="bar""#).count(), 2);
        let chart = stacked("funnel", &["kept", "dropped"], &[("a&b".into(), vec![2, 1])]);
        assert!(chart.contains("a&amp;b"));
        let chart = lines("loss", &[("round 1".into(), vec![(1.0, 2.0), (2.0, 1.5)])], "step");
        assert!(chart.contains("<polyline"));
        assert_eq!(lines("none", &[], "x"), "");
    }
}
