//! Small SVG charts (lines, histogram, scatter) for `compare` and the run
//! report. Written directly as SVG text so that they need no font stack and
//! embed as-is in the self-contained HTML report.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
/// Above this many points a scatter is drawn as a density grid.
const SCATTER_POINTS: usize = 1500;
const COLORS: &[&str] =
    &["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/// One named line of (x, y) points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    /// NaN is written to JSON as null and read back as NaN.
    #[serde(with = "nan_pairs")]
    pub points: Vec<(f64, f64)>,
}

/// A chart's data, written beside its SVG (`figures/NAME.json`, see
/// `StageContext::add_chart`) so that the report can redraw the expansions
/// of a matrix stage together: their maps in one row on one colour scale,
/// their curves overlaid in one chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "chart", rename_all = "snake_case")]
pub enum Chart {
    /// [`line_chart`]'s arguments.
    Lines {
        title: String,
        x_label: String,
        y_label: String,
        series: Vec<Series>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        x_ticks: Option<Vec<String>>,
    },
    /// [`heatmap`]'s arguments.
    Heatmap(Map),
}

/// A rows x cols grid of values (row-major), as [`heatmap`] draws it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Map {
    pub title: String,
    pub rows: usize,
    pub cols: usize,
    #[serde(with = "nan_values")]
    pub values: Vec<f64>,
    #[serde(default)]
    pub outlined: Vec<bool>,
    pub scale_label: String,
}

/// A [`Chart::Lines`] with numeric x.
pub fn lines(title: &str, x_label: &str, y_label: &str, series: Vec<Series>) -> Chart {
    Chart::Lines { title: title.into(), x_label: x_label.into(), y_label: y_label.into(), series, x_ticks: None }
}

impl Chart {
    /// The chart drawn alone.
    pub fn svg(&self) -> String {
        match self {
            Chart::Lines { title, x_label, y_label, series, x_ticks } => {
                line_chart(title, x_label, y_label, series, x_ticks.as_deref())
            }
            Chart::Heatmap(m) => heatmap(&m.title, m.rows, m.cols, &m.values, &m.outlined, &m.scale_label),
        }
    }

    pub fn title(&self) -> &str {
        match self {
            Chart::Lines { title, .. } => title,
            Chart::Heatmap(m) => &m.title,
        }
    }
}

/// `Vec<f64>` with NaN as JSON null.
mod nan_values {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(values: &[f64], s: S) -> Result<S::Ok, S::Error> {
        values.iter().map(|v| v.is_finite().then_some(*v)).collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<Option<f64>>::deserialize(d)?.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
    }
}

/// `Vec<(f64, f64)>` with NaN as JSON null.
mod nan_pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(points: &[(f64, f64)], s: S) -> Result<S::Ok, S::Error> {
        let finite = |v: f64| v.is_finite().then_some(v);
        points.iter().map(|(x, y)| (finite(*x), finite(*y))).collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(f64, f64)>, D::Error> {
        let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
        Ok(Vec::<(Option<f64>, Option<f64>)>::deserialize(d)?.into_iter().map(|(x, y)| (nan(x), nan(y))).collect())
    }
}

struct Frame {
    x_min: f64,
    x_max: f64,
    y_min: f64,
    y_max: f64,
    /// Tick values of each axis: round numbers (1, 2 or 5 times a power of ten).
    x_ticks: Vec<f64>,
    y_ticks: Vec<f64>,
}

/// How an axis's range is chosen.
#[derive(Clone, Copy, PartialEq)]
enum Range {
    /// The data's range, widened to the nearest ticks.
    Data,
    /// The data's range and 0 (counts, bars, a metric across conditions).
    WithZero,
}

impl Frame {
    fn new(xs: impl Iterator<Item = f64> + Clone, ys: impl Iterator<Item = f64> + Clone) -> Frame {
        Frame::ranged(xs, Range::Data, ys, Range::Data, false)
    }

    fn ranged(
        xs: impl Iterator<Item = f64>,
        x_range: Range,
        ys: impl Iterator<Item = f64>,
        y_range: Range,
        integer_x: bool,
    ) -> Frame {
        let (x_low, x_high) = widen(bounds(xs), x_range);
        let (y_low, y_high) = widen(bounds(ys), y_range);
        let x_ticks = nice_ticks(x_low, x_high, 5, integer_x);
        let y_ticks = nice_ticks(y_low, y_high, 5, false);
        // The frame ends at the outer ticks, so the axis starts and ends on a labelled value.
        let x_min = x_ticks.first().copied().unwrap_or(x_low).min(x_low);
        let x_max = x_ticks.last().copied().unwrap_or(x_high).max(x_high);
        let y_min = y_ticks.first().copied().unwrap_or(y_low).min(y_low);
        let y_max = y_ticks.last().copied().unwrap_or(y_high).max(y_high);
        Frame { x_min, x_max, y_min, y_max, x_ticks, y_ticks }
    }

    fn x(&self, x: f64) -> f64 {
        LEFT + (x - self.x_min) / (self.x_max - self.x_min) * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, y: f64) -> f64 {
        HEIGHT - BOTTOM - (y - self.y_min) / (self.y_max - self.y_min) * (HEIGHT - TOP - BOTTOM)
    }
}

/// A range of some width (a constant gets ±0.5), with 0 in it for [`Range::WithZero`].
fn widen((mut low, mut high): (f64, f64), range: Range) -> (f64, f64) {
    if range == Range::WithZero {
        low = low.min(0.0);
        high = high.max(0.0);
    }
    if high - low < 1e-12 {
        low -= 0.5;
        high += 0.5;
    }
    (low, high)
}

/// The round step for about `count` intervals over `span`: 1, 2 or 5 x 10^k.
pub fn nice_step(span: f64, count: usize) -> f64 {
    let raw = span / count.max(1) as f64;
    let power = 10f64.powi(raw.log10().floor() as i32);
    let fraction = raw / power;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// Ticks at multiples of a round step covering [low, high] (the outer
/// ticks at or beyond the ends); whole numbers only when `integer`.
pub fn nice_ticks(low: f64, high: f64, count: usize, integer: bool) -> Vec<f64> {
    if !(low.is_finite() && high.is_finite()) || high <= low {
        return vec![low];
    }
    let mut step = nice_step(high - low, count);
    if integer {
        step = step.max(1.0).round();
    }
    let first = (low / step + 1e-9).floor();
    let last = (high / step - 1e-9).ceil();
    (first as i64..=last as i64).map(|k| k as f64 * step).map(|v| if v.abs() < step * 1e-9 { 0.0 } else { v }).collect()
}

/// A tick's label with as many decimals as the step needs.
fn tick_label(value: f64, step: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    if value.abs() >= 1e5 || value.abs() < 1e-4 {
        return format!("{value:.1e}");
    }
    let decimals = if step > 0.0 { (-step.log10().floor()).max(0.0) as usize } else { 3 };
    format!("{value:.decimals$}")
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
    let y_step = frame.y_ticks.windows(2).map(|w| w[1] - w[0]).next().unwrap_or(1.0);
    for &value in &frame.y_ticks {
        let y = frame.y(value);
        let _ = write!(
            out,
            r##"<line x1="{x0}" x2="{x1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 - 6.0,
            y + 4.0,
            tick_label(value, y_step)
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
            let x_step = frame.x_ticks.windows(2).map(|w| w[1] - w[0]).next().unwrap_or(1.0);
            for &value in &frame.x_ticks {
                let _ = write!(
                    out,
                    r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                    frame.x(value),
                    y1 + 18.0,
                    tick_label(value, x_step)
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
    crate::history::significant(value)
}

/// A metric across the values of an axis, one series per group: with
/// `x_ticks` (categorical x at positions 0, 1, 2, ...) points only, since a
/// line between categories means nothing; with numeric x, lines with
/// markers (up to [`MARKERS`] points a line) and whole-number ticks when
/// every x is whole (layers, steps). The y axis includes 0, so a small
/// difference looks small; the legend is drawn when there is more than one
/// series.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series], x_ticks: Option<&[String]>) -> String {
    let lines: Vec<Line> = series
        .iter()
        .enumerate()
        .map(|(k, s)| Line { name: s.name.clone(), points: &s.points, color: COLORS[k % COLORS.len()], dash: "" })
        .collect();
    let legend: Vec<(String, &str, &str)> =
        if series.len() > 1 { lines.iter().map(|l| (l.name.clone(), l.color, "")).collect() } else { Vec::new() };
    styled_lines(title, x_label, y_label, &lines, &legend, x_ticks)
}

/// Curves of several runs in one chart (the expansions of a matrix stage):
/// one colour per run (`groups`' labels), one dash pattern per series name
/// within a run (training and test loss), a legend of both.
pub fn overlay_chart(title: &str, x_label: &str, y_label: &str, groups: &[(String, Vec<Series>)]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for (_, series) in groups {
        for s in series {
            if !names.contains(&s.name.as_str()) {
                names.push(&s.name);
            }
        }
    }
    let dash = |name: &str| DASHES[names.iter().position(|n| *n == name).unwrap_or(0) % DASHES.len()];
    let mut lines = Vec::new();
    let mut legend: Vec<(String, &str, &str)> = Vec::new();
    for (k, (label, series)) in groups.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        legend.push((label.clone(), color, ""));
        for s in series {
            let name = if names.len() > 1 { format!("{label}: {}", s.name) } else { label.clone() };
            lines.push(Line { name, points: &s.points, color, dash: dash(&s.name) });
        }
    }
    if names.len() > 1 {
        for name in &names {
            legend.push((name.to_string(), "#555", dash(name)));
        }
    }
    styled_lines(title, x_label, y_label, &lines, &legend, None)
}

/// Dash patterns of the series within one run of an [`overlay_chart`].
const DASHES: &[&str] = &["", "6 3", "2 3", "8 3 2 3"];
/// Lines with more points than this are drawn without a marker per point.
pub const MARKERS: usize = 60;

struct Line<'a> {
    name: String,
    points: &'a [(f64, f64)],
    color: &'a str,
    dash: &'a str,
}

/// The legend at the right: a colour swatch, or a line sample with its dash pattern.
fn legend_svg(out: &mut String, legend: &[(String, &str, &str)]) {
    for (k, (name, color, dash)) in legend.iter().enumerate() {
        let y = TOP + 16.0 * k as f64;
        let x = WIDTH - RIGHT + 12.0;
        if dash.is_empty() {
            let _ = write!(out, r#"<rect x="{x}" y="{y}" width="10" height="10" fill="{color}"/>"#);
        } else {
            let _ = write!(
                out,
                r#"<line x1="{x}" x2="{}" y1="{}" y2="{}" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>"#,
                x + 12.0,
                y + 5.0,
                y + 5.0
            );
        }
        let _ = write!(out, r#"<text x="{}" y="{}">{}</text>"#, x + 16.0, y + 9.0, escape(name));
    }
}

fn styled_lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[Line],
    legend: &[(String, &str, &str)],
    x_ticks: Option<&[String]>,
) -> String {
    let xs = lines.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = lines.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let integer_x = xs.clone().all(|x| x.fract() == 0.0);
    let mut frame = Frame::ranged(xs, Range::Data, ys, Range::WithZero, integer_x);
    if let Some(labels) = x_ticks {
        frame.x_min = -0.5;
        frame.x_max = labels.len().max(1) as f64 - 0.5;
    }
    let mut out = String::new();
    axes(&mut out, &frame, title, x_label, y_label, x_ticks);
    let offset = |k: usize| -> f64 {
        // Categorical points of several series side by side, not on top of each other.
        if x_ticks.is_some() && lines.len() > 1 {
            (k as f64 - (lines.len() - 1) as f64 / 2.0) * (0.5 / lines.len() as f64)
        } else {
            0.0
        }
    };
    for (k, line) in lines.iter().enumerate() {
        let color = line.color;
        let path: Vec<String> = line
            .points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|p| format!("{:.1},{:.1}", frame.x(p.0), frame.y(p.1)))
            .collect();
        if path.len() > 1 && x_ticks.is_none() {
            let dash =
                if line.dash.is_empty() { String::new() } else { format!(r#" stroke-dasharray="{}""#, line.dash) };
            let _ = write!(
                out,
                r#"<polyline points="{}" stroke="{color}" stroke-width="2" fill="none"{dash}><title>{}</title></polyline>"#,
                path.join(" "),
                escape(&line.name)
            );
        }
        if x_ticks.is_some() || path.len() <= MARKERS {
            for p in line.points.iter().filter(|p| p.1.is_finite()) {
                let _ = write!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="{}" fill="{color}"><title>{}: {}</title></circle>"#,
                    frame.x(p.0 + offset(k)),
                    frame.y(p.1),
                    if x_ticks.is_some() { 5.0 } else { 3.5 },
                    escape(&line.name),
                    crate::history::significant(p.1)
                );
            }
        }
    }
    legend_svg(&mut out, legend);
    out.push_str("</svg>");
    out
}

/// A mean with its spread: `sd` is the sample standard deviation (n - 1
/// in the denominator) of the `n` values averaged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub x: f64,
    pub mean: f64,
    pub sd: f64,
    pub n: usize,
}

/// The mean and sample standard deviation (n - 1; NaN for one value) of
/// the finite values, by Welford's update.
pub fn mean_sd(values: &[f64]) -> (f64, f64, usize) {
    let (mut n, mut mean, mut m2) = (0usize, 0.0f64, 0.0f64);
    for v in values.iter().filter(|v| v.is_finite()) {
        n += 1;
        let delta = v - mean;
        mean += delta / n as f64;
        m2 += delta * (v - mean);
    }
    match n {
        0 => (f64::NAN, f64::NAN, 0),
        1 => (mean, f64::NAN, 1),
        _ => (mean, (m2 / (n - 1) as f64).sqrt(), n),
    }
}

/// Like [`line_chart`], each point a mean with an error bar of ± one
/// sample sd (none where n = 1), and `note` (which spread, over what)
/// under the legend.
pub fn error_bar_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<Spread>)],
    x_ticks: Option<&[String]>,
    note: &str,
) -> String {
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    let xs = series.iter().flat_map(|(_, s)| s.iter().map(|p| p.x));
    let ys = series
        .iter()
        .flat_map(|(_, s)| s.iter().flat_map(move |p| [p.mean, p.mean - finite(p.sd), p.mean + finite(p.sd)]));
    let integer_x = xs.clone().all(|x| x.fract() == 0.0);
    let mut frame = Frame::ranged(xs, Range::Data, ys, Range::WithZero, integer_x);
    if let Some(labels) = x_ticks {
        frame.x_min = -0.5;
        frame.x_max = labels.len().max(1) as f64 - 0.5;
    }
    let mut out = String::new();
    axes(&mut out, &frame, title, x_label, y_label, x_ticks);
    let offset = |k: usize| -> f64 {
        if series.len() > 1 {
            let width = if x_ticks.is_some() { 0.5 } else { 0.02 * (frame.x_max - frame.x_min) };
            (k as f64 - (series.len() - 1) as f64 / 2.0) * (width / series.len() as f64)
        } else {
            0.0
        }
    };
    for (k, (name, points)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let shown: Vec<&Spread> = points.iter().filter(|p| p.mean.is_finite()).collect();
        if shown.len() > 1 && x_ticks.is_none() {
            let path: Vec<String> =
                shown.iter().map(|p| format!("{:.1},{:.1}", frame.x(p.x + offset(k)), frame.y(p.mean))).collect();
            let _ =
                write!(out, r#"<polyline points="{}" stroke="{color}" stroke-width="2" fill="none"/>"#, path.join(" "));
        }
        for p in shown {
            let x = frame.x(p.x + offset(k));
            if p.sd.is_finite() && p.n > 1 {
                let (low, high) = (frame.y(p.mean - p.sd), frame.y(p.mean + p.sd));
                let _ = write!(
                    out,
                    r#"<path class="error-bar" d="M{x:.1} {low:.1} L{x:.1} {high:.1} M{:.1} {low:.1} L{:.1} {low:.1} M{:.1} {high:.1} L{:.1} {high:.1}" stroke="{color}" stroke-width="1.5" fill="none"/>"#,
                    x - 4.0,
                    x + 4.0,
                    x - 4.0,
                    x + 4.0
                );
            }
            let _ = write!(
                out,
                r#"<circle cx="{x:.1}" cy="{:.1}" r="4" fill="{color}"><title>{}: mean {} ± {} (sd, n = {})</title></circle>"#,
                frame.y(p.mean),
                escape(name),
                crate::history::significant(p.mean),
                crate::history::significant(p.sd),
                p.n
            );
        }
    }
    let legend: Vec<(String, &str, &str)> = if series.len() > 1 {
        series.iter().enumerate().map(|(k, (name, _))| (name.clone(), COLORS[k % COLORS.len()], "")).collect()
    } else {
        Vec::new()
    };
    legend_svg(&mut out, &legend);
    let _ = write!(
        out,
        r##"<text x="{}" y="35" font-size="11" fill="#444" text-anchor="middle">{}</text>"##,
        (WIDTH - RIGHT + LEFT) / 2.0,
        escape(note)
    );
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
    let mut frame = Frame::ranged([low, high].into_iter(), Range::Data, [0.0, max].into_iter(), Range::WithZero, false);
    // Counts are whole: whole-number ticks, from 0.
    frame.y_ticks = nice_ticks(0.0, max.max(1.0), 5, true);
    frame.y_min = 0.0;
    frame.y_max = frame.y_ticks.last().copied().unwrap_or(max).max(max);
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
    let points: Vec<(f64, f64)> =
        xs.iter().zip(ys).filter(|(x, y)| x.is_finite() && y.is_finite()).map(|(x, y)| (*x, *y)).collect();
    if points.len() <= SCATTER_POINTS {
        for (x, y) in &points {
            let _ = write!(
                out,
                r##"<circle cx="{:.1}" cy="{:.1}" r="2" fill="#1f77b4" fill-opacity="0.5"/>"##,
                frame.x(*x),
                frame.y(*y)
            );
        }
    } else {
        // Many points (voxels): their density on a grid, darker where more
        // fall, so the page stays small and no point hides another.
        let (cols, rows) = (72usize, 48usize);
        let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM);
        let (cell_w, cell_h) = ((x1 - x0) / cols as f64, (y1 - y0) / rows as f64);
        let mut counts = vec![0usize; cols * rows];
        for (x, y) in &points {
            let c = (((frame.x(*x) - x0) / cell_w).floor().max(0.0) as usize).min(cols - 1);
            let r = (((frame.y(*y) - y0) / cell_h).floor().max(0.0) as usize).min(rows - 1);
            counts[r * cols + c] += 1;
        }
        let most = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
        for (k, &count) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            let opacity = 0.15 + 0.85 * (count as f64).ln_1p() / most.ln_1p();
            let _ = write!(
                out,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#1f77b4" fill-opacity="{opacity:.2}"/>"##,
                x0 + (k % cols) as f64 * cell_w,
                y0 + (k / cols) as f64 * cell_h,
                cell_w + 0.1,
                cell_h + 0.1
            );
        }
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" font-size="11">{} points, as density</text>"#,
            WIDTH - RIGHT + 12.0,
            TOP + 10.0,
            points.len()
        );
    }
    out.push_str("</svg>");
    out
}

/// A rows x cols grid of values (row-major, row 0 at the top) in a
/// diverging colour scale centred on 0 (blue negative, white 0, red
/// positive, to ±the largest |value|; NaN grey), with the scale beside it;
/// cells where `outlined` is true get a black border (selected units).
pub fn heatmap(title: &str, rows: usize, cols: usize, values: &[f64], outlined: &[bool], scale_label: &str) -> String {
    let limit = map_limit(values);
    let colour = |v: f64| diverging(v, limit);
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

/// The colour scale's end: the largest |value| (1 where there is none).
fn map_limit(values: &[f64]) -> f64 {
    let limit = values.iter().filter(|v| v.is_finite()).fold(0.0f64, |m, v| m.max(v.abs()));
    if limit > 0.0 {
        limit
    } else {
        1.0
    }
}

/// Blue (-limit) to white (0) to red (+limit); NaN grey.
fn diverging(v: f64, limit: f64) -> String {
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
}

/// Maps side by side in one row, each titled (a matrix stage's expansions,
/// by their matrix values), on one colour scale (to ± the largest |value|
/// of all of them) with one colour bar at the right.
pub fn heatmap_row(title: &str, panels: &[(String, &Map)], scale_label: &str) -> String {
    let all: Vec<f64> = panels.iter().flat_map(|(_, m)| m.values.iter().copied()).collect();
    let limit = map_limit(&all);
    let n = panels.len().max(1);
    let (pad, gap, bar_space) = (10.0, 16.0, 110.0);
    let panel = ((1150.0 - pad - bar_space) / n as f64 - gap).clamp(90.0, 260.0);
    let top = 56.0;
    let width = pad + n as f64 * (panel + gap) + bar_space;
    let height = top + panel + 20.0;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="map-row" data-panels="{n}" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" style="max-width:100%;height:auto" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{:.1}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        (width - bar_space) / 2.0,
        escape(title)
    );
    for (k, (label, map)) in panels.iter().enumerate() {
        let x0 = pad + k as f64 * (panel + gap);
        let cell = panel / map.rows.max(map.cols).max(1) as f64;
        let _ = write!(
            out,
            r#"<g class="map-panel"><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x0 + panel / 2.0,
            top - 8.0,
            escape(label)
        );
        for r in 0..map.rows {
            for c in 0..map.cols {
                let i = r * map.cols + c;
                let stroke = if map.outlined.get(i).copied().unwrap_or(false) {
                    r#" stroke="black" stroke-width="1""#
                } else {
                    ""
                };
                let _ = write!(
                    out,
                    r#"<rect x="{:.2}" y="{:.2}" width="{cell:.2}" height="{cell:.2}" fill="{}"{stroke}/>"#,
                    x0 + c as f64 * cell,
                    top + r as f64 * cell,
                    diverging(map.values.get(i).copied().unwrap_or(f64::NAN), limit)
                );
            }
        }
        out.push_str("</g>");
    }
    let (bar_x, steps) = (width - bar_space + 20.0, 21);
    let step_height = panel / steps as f64;
    out.push_str(r#"<g class="colour-bar">"#);
    for i in 0..steps {
        let v = limit * (1.0 - 2.0 * i as f64 / (steps - 1) as f64);
        let _ = write!(
            out,
            r#"<rect x="{bar_x:.1}" y="{:.2}" width="18" height="{:.2}" fill="{}"/>"#,
            top + i as f64 * step_height,
            step_height + 0.5,
            diverging(v, limit)
        );
    }
    for (v, y) in [(limit, top), (0.0, top + panel / 2.0), (-limit, top + panel)] {
        let _ = write!(out, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, bar_x + 24.0, y + 4.0, tick(v));
    }
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text></g></svg>"#,
        bar_x + 9.0,
        top - 8.0,
        escape(scale_label)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn ticks_are_round_and_cover_the_data() {
        let mut rng = crate::testing::fresh_rng("plot ticks");
        for _ in 0..200 {
            let low: f64 = rng.random_range(-1e3..1e3) * 10f64.powi(rng.random_range(-4..4));
            let high = low + rng.random_range(1e-3..1e3) * 10f64.powi(rng.random_range(-3..3));
            let ticks = nice_ticks(low, high, 5, false);
            assert!(ticks[0] <= low && *ticks.last().unwrap() >= high, "{low} {high}: {ticks:?}");
            assert!((3..=12).contains(&ticks.len()), "{low} {high}: {ticks:?}");
            let step = ticks[1] - ticks[0];
            let mantissa = step / 10f64.powf(step.log10().floor());
            assert!([1.0, 2.0, 5.0, 10.0].iter().any(|m| (mantissa - m).abs() < 1e-6), "step {step}");
            for (k, t) in ticks.iter().enumerate() {
                let q = t / step;
                assert!((q - q.round()).abs() < 1e-6 * q.abs().max(1.0), "{t} is a multiple of {step}");
                assert!((t - (ticks[0] + k as f64 * step)).abs() <= step * 1e-6);
            }
        }
        assert_eq!(nice_ticks(0.0, 6.0, 5, true), vec![0.0, 2.0, 4.0, 6.0]);
        assert_eq!(nice_ticks(0.0, 894.375, 5, true), vec![0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]);
        assert_eq!(nice_ticks(0.0, 2.0, 5, true), vec![0.0, 1.0, 2.0]);
        assert_eq!(tick_label(0.235, 0.005), "0.235");
        assert_eq!(tick_label(400.0, 200.0), "400");
    }

    fn numbers(svg: &str, anchor: &str) -> Vec<f64> {
        svg.split(&format!(r#"text-anchor="{anchor}">"#))
            .skip(1)
            .filter_map(|part| part.split('<').next().and_then(|t| t.parse::<f64>().ok()))
            .collect()
    }

    #[test]
    fn histograms_count_from_zero_in_whole_numbers() {
        let mut rng = crate::testing::fresh_rng("plot histogram");
        let values: Vec<f64> = (0..rng.random_range(50..5000)).map(|_| rng.random_range(-0.2..0.9)).collect();
        let svg = histogram("r", "r", &values, 40);
        let y_ticks = numbers(&svg, "end");
        assert_eq!(y_ticks[0], 0.0, "{y_ticks:?}");
        assert!(y_ticks.iter().all(|t| t.fract() == 0.0 && *t >= 0.0), "{y_ticks:?}");
    }

    #[test]
    fn categories_are_points_and_many_points_are_a_density() {
        let series = [Series { name: "score".into(), points: vec![(0.0, 0.25), (1.0, 0.26), (2.0, 0.233)] }];
        let labels: Vec<String> = ["lanczos", "average", "last"].iter().map(|s| s.to_string()).collect();
        let svg = line_chart("mean_r by method", "method", "mean_r", &series, Some(&labels));
        assert!(!svg.contains("<polyline"), "no line between categories");
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(!svg.contains(">score<"), "one series: no legend");
        assert_eq!(numbers(&svg, "end")[0], 0.0, "the metric's axis includes 0");

        let mut rng = crate::testing::fresh_rng("plot scatter");
        let xs: Vec<f64> = (0..4000).map(|_| rng.random_range(0.0..1.0)).collect();
        let ys: Vec<f64> = xs.iter().map(|x| x * 0.8 + rng.random_range(-0.1..0.1)).collect();
        let svg = scatter("r", "ceiling", "r", &xs, &ys, true);
        assert!(!svg.contains("<circle"));
        assert!(svg.len() < 120_000, "{} bytes", svg.len());
        let alpha_sum: usize = svg.matches("fill-opacity").count();
        assert!(alpha_sum > 50 && alpha_sum <= 72 * 48);
    }
}
