//! Small SVG charts (lines, histogram, scatter) for `compare` and the run
//! report. Written directly as SVG text so that they need no font stack and
//! embed as-is in the self-contained HTML report.

use std::fmt::Write;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLORS: &[&str] =
    &["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/// One named line of (x, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

struct Frame {
    x_min: f64,
    x_max: f64,
    y_min: f64,
    y_max: f64,
}

impl Frame {
    fn new(xs: impl Iterator<Item = f64> + Clone, ys: impl Iterator<Item = f64> + Clone) -> Frame {
        let (mut x_min, mut x_max) = bounds(xs);
        let (mut y_min, mut y_max) = bounds(ys);
        if x_max - x_min < 1e-12 {
            x_min -= 0.5;
            x_max += 0.5;
        }
        if y_max - y_min < 1e-12 {
            y_min -= 0.5;
            y_max += 0.5;
        }
        let pad = (y_max - y_min) * 0.05;
        Frame { x_min, x_max, y_min: y_min - pad, y_max: y_max + pad }
    }

    fn x(&self, x: f64) -> f64 {
        LEFT + (x - self.x_min) / (self.x_max - self.x_min) * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, y: f64) -> f64 {
        HEIGHT - BOTTOM - (y - self.y_min) / (self.y_max - self.y_min) * (HEIGHT - TOP - BOTTOM)
    }
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let mut low = f64::INFINITY;
    let mut high = f64::NEG_INFINITY;
    for v in values.filter(|v| v.is_finite()) {
        low = low.min(v);
        high = high.max(v);
    }
    if low.is_infinite() {
        (0.0, 1.0)
    } else {
        (low, high)
    }
}

/// Text for an HTML/SVG element or a double-quoted attribute.
pub(crate) fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_double_quoted_attribute(text)
}

fn axes(out: &mut String, frame: &Frame, title: &str, x_label: &str, y_label: &str, x_ticks: Option<&[String]>) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        (WIDTH - RIGHT + LEFT) / 2.0,
        escape(title)
    );
    let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM);
    let _ = write!(out, r#"<path d="M{x0} {y0} L{x0} {y1} L{x1} {y1}" stroke="black" fill="none"/>"#);
    for i in 0..=4 {
        let value = frame.y_min + (frame.y_max - frame.y_min) * i as f64 / 4.0;
        let y = frame.y(value);
        let _ = write!(
            out,
            r##"<line x1="{x0}" x2="{x1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 - 6.0,
            y + 4.0,
            tick(value)
        );
    }
    match x_ticks {
        Some(labels) => {
            for (i, label) in labels.iter().enumerate() {
                let x = frame.x(i as f64);
                let _ =
                    write!(out, r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#, y1 + 18.0, escape(label));
            }
        }
        None => {
            for i in 0..=4 {
                let value = frame.x_min + (frame.x_max - frame.x_min) * i as f64 / 4.0;
                let _ = write!(
                    out,
                    r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                    frame.x(value),
                    y1 + 18.0,
                    tick(value)
                );
            }
        }
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (x0 + x1) / 2.0,
        HEIGHT - 15.0,
        escape(x_label)
    );
    let _ = write!(
        out,
        r#"<text transform="translate(16 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
        (y0 + y1) / 2.0,
        escape(y_label)
    );
}

fn tick(value: f64) -> String {
    if value.abs() >= 1000.0 || (value != 0.0 && value.abs() < 0.01) {
        format!("{value:.2e}")
    } else {
        format!("{value:.3}")
    }
}

/// Lines with markers; `x_ticks` labels categorical x positions 0, 1, 2, ...
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series], x_ticks: Option<&[String]>) -> String {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let frame = Frame::new(xs, ys);
    let mut out = String::new();
    axes(&mut out, &frame, title, x_label, y_label, x_ticks);
    for (k, line) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let path: Vec<String> = line
            .points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|p| format!("{:.1},{:.1}", frame.x(p.0), frame.y(p.1)))
            .collect();
        if path.len() > 1 {
            let _ =
                write!(out, r#"<polyline points="{}" stroke="{color}" stroke-width="2" fill="none"/>"#, path.join(" "));
        }
        for p in line.points.iter().filter(|p| p.1.is_finite()) {
            let _ =
                write!(out, r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"/>"#, frame.x(p.0), frame.y(p.1));
        }
        let y = TOP + 16.0 * k as f64;
        let _ = write!(
            out,
            r#"<rect x="{}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
            WIDTH - RIGHT + 12.0,
            y,
            WIDTH - RIGHT + 26.0,
            y + 9.0,
            escape(&line.name)
        );
    }
    out.push_str("</svg>");
    out
}

/// A histogram of `values` with `bins` equal bins.
pub fn histogram(title: &str, x_label: &str, values: &[f64], bins: usize) -> String {
    let (low, high) = bounds(values.iter().copied());
    let high = if high - low < 1e-12 { low + 1.0 } else { high };
    let bins = bins.max(1);
    let mut counts = vec![0usize; bins];
    for v in values.iter().filter(|v| v.is_finite()) {
        let b = (((v - low) / (high - low)) * bins as f64).floor() as usize;
        counts[b.min(bins - 1)] += 1;
    }
    let max = *counts.iter().max().unwrap_or(&1) as f64;
    let frame = Frame::new([low, high].into_iter(), [0.0, max].into_iter());
    let mut out = String::new();
    axes(&mut out, &frame, title, x_label, "count", None);
    let width = (high - low) / bins as f64;
    for (b, count) in counts.iter().enumerate() {
        let x0 = frame.x(low + b as f64 * width);
        let x1 = frame.x(low + (b + 1) as f64 * width);
        let y = frame.y(*count as f64);
        let _ = write!(
            out,
            r##"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="#1f77b4" stroke="white"/>"##,
            (x1 - x0).max(0.5),
            frame.y(0.0) - y
        );
    }
    out.push_str("</svg>");
    out
}

/// Points (x, y), with the identity line when `diagonal`.
pub fn scatter(title: &str, x_label: &str, y_label: &str, xs: &[f64], ys: &[f64], diagonal: bool) -> String {
    let frame = Frame::new(xs.iter().copied().chain(ys.iter().copied().filter(|_| diagonal)), ys.iter().copied());
    let mut out = String::new();
    axes(&mut out, &frame, title, x_label, y_label, None);
    if diagonal {
        let low = frame.x_min.max(frame.y_min);
        let high = frame.x_max.min(frame.y_max);
        let _ = write!(
            out,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#999" stroke-dasharray="4"/>"##,
            frame.x(low),
            frame.y(low),
            frame.x(high),
            frame.y(high)
        );
    }
    let step = (xs.len() / 5000).max(1);
    for (x, y) in xs.iter().zip(ys).step_by(step) {
        if x.is_finite() && y.is_finite() {
            let _ = write!(
                out,
                r##"<circle cx="{:.1}" cy="{:.1}" r="2" fill="#1f77b4" fill-opacity="0.5"/>"##,
                frame.x(*x),
                frame.y(*y)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// A rows x cols grid of values (row-major, row 0 at the top) in a
/// diverging colour scale centred on 0 (blue negative, white 0, red
/// positive, to ±the largest |value|; NaN grey), with the scale beside it;
/// cells where `outlined` is true get a black border (selected units).
pub fn heatmap(title: &str, rows: usize, cols: usize, values: &[f64], outlined: &[bool], scale_label: &str) -> String {
    let limit = values.iter().filter(|v| v.is_finite()).fold(0.0f64, |m, v| m.max(v.abs()));
    let limit = if limit > 0.0 { limit } else { 1.0 };
    let colour = |v: f64| -> String {
        if !v.is_finite() {
            return "#bbbbbb".into();
        }
        let a = (v / limit).clamp(-1.0, 1.0);
        let fade = |full: f64| (255.0 - (255.0 - full) * a.abs()).round() as u8;
        if a >= 0.0 {
            format!("#{:02x}{:02x}{:02x}", fade(178.0), fade(24.0), fade(43.0))
        } else {
            format!("#{:02x}{:02x}{:02x}", fade(33.0), fade(102.0), fade(172.0))
        }
    };
    let area = (WIDTH - LEFT - RIGHT).min(HEIGHT - TOP - BOTTOM);
    let cell = area / rows.max(cols).max(1) as f64;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    for r in 0..rows {
        for c in 0..cols {
            let k = r * cols + c;
            let (x, y) = (LEFT + c as f64 * cell, TOP + r as f64 * cell);
            let stroke =
                if outlined.get(k).copied().unwrap_or(false) { r#" stroke="black" stroke-width="1""# } else { "" };
            let _ = write!(
                out,
                r#"<rect x="{x:.2}" y="{y:.2}" width="{cell:.2}" height="{cell:.2}" fill="{}"{stroke}/>"#,
                colour(values.get(k).copied().unwrap_or(f64::NAN))
            );
        }
    }
    // The scale: 21 steps from +limit (top) to -limit.
    let (bar_x, steps) = (LEFT + area + 30.0, 21);
    let step_height = area / steps as f64;
    for i in 0..steps {
        let v = limit * (1.0 - 2.0 * i as f64 / (steps - 1) as f64);
        let _ = write!(
            out,
            r#"<rect x="{bar_x:.1}" y="{:.2}" width="18" height="{:.2}" fill="{}"/>"#,
            TOP + i as f64 * step_height,
            step_height + 0.5,
            colour(v)
        );
    }
    for (v, y) in [(limit, TOP), (0.0, TOP + area / 2.0), (-limit, TOP + area)] {
        let _ = write!(out, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, bar_x + 24.0, y + 4.0, tick(v));
    }
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text></svg>"#,
        bar_x + 9.0,
        TOP + area + 22.0,
        escape(scale_label)
    );
    out
}
