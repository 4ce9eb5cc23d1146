//! `voxflow report`: one self-contained HTML page for the last run of a
//! pipeline: the DAG coloured by what happened to each stage, each stage's
//! status, reason and time, the comparison table, and the figures stages
//! attached to their results (SVG, inlined).

use std::fmt::Write;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::Value;

use crate::exec::{RunSummary, StageOutcome};
use crate::history::RunRecord;
use crate::plan::Pipeline;
use crate::plot::escape;
use crate::store::{Lookup, Store};

fn color(status: &str) -> &'static str {
    match status {
        "ran" => "#4caf50",
        "cached" | "fresh" => "#90caf9",
        "failed" => "#e53935",
        "skipped" | "cancelled" => "#bdbdbd",
        _ => "#ffb74d",
    }
}

/// The page's one script: clicking a stage of the DAG marks its rows of
/// the stage table (every expansion of a matrix stage) and scrolls to the
/// first; `data-ready` on the body counts the nodes it wired (the browser
/// test reads it back). It logs nothing: any console line is a fault.
const SCRIPT: &str = r#"<script>
(function () {
  var nodes = document.querySelectorAll(".dag g[data-base]");
  nodes.forEach(function (node) {
    node.addEventListener("click", function () {
      var first = null;
      document.querySelectorAll("tr[data-base]").forEach(function (row) {
        var picked = row.getAttribute("data-base") === node.getAttribute("data-base");
        row.classList.toggle("picked", picked);
        if (picked && !first) first = row;
      });
      if (first) first.scrollIntoView({block: "center"});
    });
  });
  document.body.setAttribute("data-ready", String(nodes.length));
})();
</script>"#;

/// Renders the report of one recorded run (`run`), or of the last run's
/// `summary` where the store has no record, or of the plan.
pub fn render(pipeline: &Pipeline, store: &Store, summary: Option<&RunSummary>, run: Option<&RunRecord>) -> String {
    let summary = run.map(|r| &r.summary).or(summary);
    let keys = run.map(RunRecord::result_keys);
    let outcomes: Vec<Option<&StageOutcome>> = pipeline
        .stages
        .iter()
        .map(|stage| summary.and_then(|s| s.stages.iter().find(|o| o.name == stage.name)))
        .collect();
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>voxflow: {}</title>",
        escape(&pipeline.name)
    );
    html.push_str("<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f4f4f4}.num{text-align:right}figure{display:inline-block;margin:8px}.panels{display:flex;gap:8px;align-items:flex-start}.panels figure{flex:1;min-width:0;margin:0}.panels svg{width:100%;height:auto}figure.matrix{display:block}.dag{overflow-x:auto;max-width:100%}.dag g[data-base]{cursor:pointer}tr.picked td{outline:2px solid #1f77b4}code{font-size:12px}</style></head><body>");
    let _ = write!(
        html,
        "<h1>{}</h1><p>pipeline file <code>{}</code>",
        escape(&pipeline.name),
        escape(&pipeline.file.display().to_string())
    );
    match summary {
        Some(s) => {
            let _ = write!(
                html,
                "; last run finished {} in {:.2} s: {} ran, {} cached, {} failed, {} skipped{}.</p>",
                escape(&s.finished_at),
                s.seconds,
                s.count(crate::exec::Status::Ran),
                s.count(crate::exec::Status::Cached),
                s.count(crate::exec::Status::Failed),
                s.count(crate::exec::Status::Skipped),
                if s.cancelled { " (interrupted)" } else { "" }
            );
        }
        None => html.push_str("; it has not been run with this store yet.</p>"),
    }
    if let Some(run) = run {
        html.push_str(&params_html(pipeline, run));
    }
    html.push_str("<h2>Stages</h2>");
    // At its natural size (12 px labels), scrolled sideways where it is wider than the page.
    html.push_str("<div class=dag>");
    html.push_str(&dag_svg(pipeline, &outcomes));
    html.push_str("</div><p><small>Click a stage to find its rows below.</small></p>");
    html.push_str(
        "<table><tr><th>stage</th><th>kind</th><th>status</th><th class=num>seconds</th><th>why</th><th>key</th></tr>",
    );
    for (stage, outcome) in pipeline.stages.iter().zip(&outcomes) {
        let status = outcome.map(|o| o.status.as_str()).unwrap_or("not run");
        let mut why = outcome.map(|o| o.reason.clone()).unwrap_or_default();
        if let Some(error) = outcome.and_then(|o| o.error.as_ref()) {
            why = format!("{why} {error}");
        }
        let _ = write!(
            html,
            "<tr data-base=\"{}\"><td>{}</td><td>{}</td><td style=\"background:{}\">{}</td><td class=num>{:.2}</td><td>{}</td><td><code>{}</code></td></tr>",
            escape(&stage.base),
            escape(&stage.name),
            escape(stage.kind.kind()),
            color(status),
            status,
            outcome.map(|o| o.seconds).unwrap_or(0.0),
            escape(&why),
            escape(outcome.and_then(|o| o.key.as_deref()).unwrap_or(""))
        );
    }
    html.push_str("</table>");

    if let Ok(comparison) = crate::compare::gather_keys(pipeline, store, keys.as_ref()) {
        if comparison.table.num_rows() > 0 {
            html.push_str("<h2>Comparison</h2>");
            html.push_str(&table_html(&comparison.table));
            match seed_chart(&comparison.table, &comparison.axes, crate::compare::default_metric(&comparison)) {
                Some((svg, caption)) => {
                    let _ = write!(html, "<figure>{svg}<figcaption>{}</figcaption></figure>", escape(&caption));
                }
                None => {
                    if let Some(svg) = crate::compare::chart(&comparison, None) {
                        let _ = write!(html, "<figure>{svg}</figure>");
                    }
                }
            }
        }
    }

    let mut figures = String::new();
    let stages: Vec<(&str, &[(String, Value)])> =
        pipeline.stages.iter().map(|s| (s.base.as_str(), s.matrix.as_slice())).collect();
    for group in matrix_groups(&stages) {
        let found: Vec<(&str, Vec<Figure>)> = group
            .members
            .iter()
            .map(|(i, label)| (label.as_str(), outcomes[*i].map(|o| stage_figures(store, o)).unwrap_or_default()))
            .filter(|(_, figures)| !figures.is_empty())
            .collect();
        if found.is_empty() {
            continue;
        }
        if group.members.len() == 1 {
            let name = &pipeline.stages[group.members[0].0].name;
            for figure in &found[0].1 {
                let _ = write!(
                    figures,
                    "<figure>{}<figcaption>{} — {}</figcaption></figure>",
                    figure.svg,
                    escape(name),
                    escape(&figure.file)
                );
            }
            continue;
        }
        let _ = write!(
            figures,
            "<h3>{} ×{} <small>by {}</small></h3>",
            escape(&group.base),
            group.members.len(),
            escape(&group.axes.join(", "))
        );
        let mut names: Vec<&str> = Vec::new();
        for (_, list) in &found {
            for figure in list {
                if !names.contains(&figure.file.as_str()) {
                    names.push(&figure.file);
                }
            }
        }
        for name in names {
            let items: Vec<(&str, &Figure)> = found
                .iter()
                .filter_map(|(label, list)| list.iter().find(|f| f.file == name).map(|f| (*label, f)))
                .collect();
            figures.push_str(&group_figure(&group.base, name, &items));
        }
    }
    if !figures.is_empty() {
        html.push_str("<h2>Figures</h2>");
        html.push_str(&figures);
    }
    html.push_str(SCRIPT);
    html.push_str("</body></html>\n");
    html
}

/// The run's id, its `--set` overrides, and each stage's params, the
/// overridden ones marked.
fn params_html(pipeline: &Pipeline, run: &RunRecord) -> String {
    let mut html = format!(
        "<h2>Run {}</h2><p>started {}; overrides: <code>{}</code></p>",
        run.id,
        escape(&run.started_at),
        escape(&run.overrides_text())
    );
    // `stage.param=value` overrides name a base stage and a (dotted) param.
    let overridden: Vec<(&str, &str)> = run
        .overrides
        .iter()
        .filter_map(|o| o.split_once('=').map(|(target, _)| target))
        .filter_map(|target| target.split_once('.'))
        .collect();
    html.push_str("<table><tr><th>stage</th><th>params</th></tr>");
    for stage in &pipeline.stages {
        let Some(Value::Object(params)) = run.params.get(&stage.name) else { continue };
        let mut cells = Vec::new();
        for (name, value) in params {
            let marked = overridden
                .iter()
                .any(|(base, param)| *base == stage.base && (param == name || param.starts_with(&format!("{name}."))));
            let text = format!("{name}: {}", crate::plan::display_value(value));
            cells.push(if marked {
                format!("<b title=\"set with --set\">{} (--set)</b>", escape(&text))
            } else {
                escape(&text).to_string()
            });
        }
        let _ = write!(html, "<tr><td>{}</td><td><code>{}</code></td></tr>", escape(&stage.name), cells.join("; "));
    }
    html.push_str("</table>");
    html
}

/// An HTML table of a record batch.
pub fn table_html(batch: &arrow::array::RecordBatch) -> String {
    let mut html = String::from("<table><tr>");
    for field in batch.schema().fields() {
        let _ = write!(html, "<th>{}</th>", escape(field.name()));
    }
    html.push_str("</tr>");
    let options = FormatOptions::default().with_null("");
    let formatters: Vec<_> =
        batch.columns().iter().filter_map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok()).collect();
    // Floats with 4 significant digits, right-aligned.
    let floats: Vec<Option<arrow::array::Float64Array>> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            arrow::datatypes::DataType::Float64 | arrow::datatypes::DataType::Float32 => {
                arrow::compute::cast(c, &arrow::datatypes::DataType::Float64)
                    .ok()
                    .and_then(|a| a.as_any().downcast_ref::<arrow::array::Float64Array>().cloned())
            }
            _ => None,
        })
        .collect();
    for row in 0..batch.num_rows() {
        html.push_str("<tr>");
        for (formatter, float) in formatters.iter().zip(&floats) {
            match float {
                Some(values) if !arrow::array::Array::is_null(values, row) => {
                    let _ = write!(html, "<td class=num>{}</td>", crate::history::significant(values.value(row)));
                }
                _ => {
                    let _ = write!(html, "<td>{}</td>", escape(&formatter.value(row).to_string()));
                }
            }
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    html
}

/// The DAG as layered boxes, one per stage of the file: a matrix stage's
/// expansions share one box with their count (`fit ×3`) and a summary of
/// their statuses, coloured by the most telling one (failed, then ran,
/// then cached); hovering lists the expansions. A stage's column is its
/// depth; edges are arrows. The drawing keeps its natural size (a wide DAG
/// scrolls sideways in its box, its labels readable) and each box names
/// its base (`data-base`) for the page's script.
fn dag_svg(pipeline: &Pipeline, outcomes: &[Option<&StageOutcome>]) -> String {
    let mut bases: Vec<&str> = Vec::new();
    let mut base_of = vec![0usize; pipeline.stages.len()];
    for (i, stage) in pipeline.stages.iter().enumerate() {
        base_of[i] = match bases.iter().position(|b| *b == stage.base) {
            Some(k) => k,
            None => {
                bases.push(&stage.base);
                bases.len() - 1
            }
        };
    }
    let n = bases.len();
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for (i, stage) in pipeline.stages.iter().enumerate() {
        for input in &stage.inputs {
            let edge = (base_of[input.upstream], base_of[i]);
            if edge.0 != edge.1 && !edges.contains(&edge) {
                edges.push(edge);
            }
        }
    }
    // Stages come in topological order, so one pass gives each base its depth.
    let mut depth = vec![0usize; n];
    for (i, _) in pipeline.stages.iter().enumerate() {
        let b = base_of[i];
        let d = edges.iter().filter(|(_, to)| *to == b).map(|(from, _)| depth[*from] + 1).max().unwrap_or(0);
        depth[b] = depth[b].max(d);
    }
    let mut row = vec![0usize; n];
    let mut per_column: Vec<usize> = Vec::new();
    for b in 0..n {
        if per_column.len() <= depth[b] {
            per_column.resize(depth[b] + 1, 0);
        }
        row[b] = per_column[depth[b]];
        per_column[depth[b]] += 1;
    }
    struct Node {
        label: String,
        detail: String,
        status: &'static str,
        title: String,
    }
    let nodes: Vec<Node> = (0..n)
        .map(|b| {
            let members: Vec<usize> = (0..pipeline.stages.len()).filter(|i| base_of[*i] == b).collect();
            let statuses: Vec<&'static str> =
                members.iter().map(|i| outcomes[*i].map(|o| o.status.as_str()).unwrap_or("not run")).collect();
            let mut counts: Vec<(&str, usize)> = Vec::new();
            for s in &statuses {
                match counts.iter_mut().find(|(name, _)| name == s) {
                    Some((_, c)) => *c += 1,
                    None => counts.push((s, 1)),
                }
            }
            let status = ["failed", "ran", "cached", "fresh", "skipped", "cancelled"]
                .into_iter()
                .find(|s| statuses.contains(s))
                .unwrap_or("not run");
            let kind = pipeline.stages[members[0]].kind.kind();
            let label =
                if members.len() > 1 { format!("{} ×{}", bases[b], members.len()) } else { bases[b].to_string() };
            let detail = if members.len() > 1 {
                counts.iter().map(|(s, c)| format!("{c} {s}")).collect::<Vec<_>>().join(", ")
            } else {
                format!("{kind}: {}", statuses[0])
            };
            let title = std::iter::once(format!("{} ({kind})", bases[b]))
                .chain(members.iter().zip(&statuses).map(|(i, s)| format!("{}: {s}", pipeline.stages[*i].name)))
                .collect::<Vec<_>>()
                .join("\n");
            Node { label, detail, status, title }
        })
        .collect();
    // 7 px per character of the 12 px label is wide enough for sans-serif.
    let box_w = nodes.iter().map(|n| n.label.chars().count().max(n.detail.chars().count() * 6 / 7)).max().unwrap_or(8)
        as f64
        * 7.0
        + 20.0;
    let (box_h, gap_x, gap_y) = (38.0, 44.0, 14.0);
    let width = per_column.len() as f64 * (box_w + gap_x) - gap_x + 20.0;
    let height = per_column.iter().copied().max().unwrap_or(1) as f64 * (box_h + gap_y) - gap_y + 20.0;
    let position = |b: usize| (10.0 + depth[b] as f64 * (box_w + gap_x), 10.0 + row[b] as f64 * (box_h + gap_y));
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0} {height:.0}" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="12"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="#666"/></marker></defs>"##
    );
    for (from, to) in &edges {
        let (ux, uy) = position(*from);
        let (x, y) = position(*to);
        let (x1, y1, x2, y2) = (ux + box_w, uy + box_h / 2.0, x - 2.0, y + box_h / 2.0);
        let mid = (x1 + x2) / 2.0;
        let _ = write!(
            svg,
            r##"<path d="M{x1:.1} {y1:.1} C{mid:.1} {y1:.1} {mid:.1} {y2:.1} {x2:.1} {y2:.1}" stroke="#888" fill="none" marker-end="url(#arrow)"/>"##
        );
    }
    for (b, node) in nodes.iter().enumerate() {
        let (x, y) = position(b);
        let _ = write!(
            svg,
            r##"<g data-base="{}"><title>{}</title><rect x="{x:.1}" y="{y:.1}" width="{box_w:.1}" height="{box_h}" rx="4" fill="{}" stroke="#555"/><text x="{:.1}" y="{:.1}">{}</text><text x="{:.1}" y="{:.1}" font-size="10" fill="#333">{}</text></g>"##,
            escape(bases[b]),
            escape(&node.title),
            color(node.status),
            x + 6.0,
            y + 16.0,
            escape(&node.label),
            x + 6.0,
            y + 30.0,
            escape(&node.detail)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The expansions of one stage of the file (one member when it is not a
/// matrix stage), each with its label: its values of the matrix axes that
/// differ between them (`attention=topographic`).
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixGroup {
    pub base: String,
    /// The axes whose values differ between the members.
    pub axes: Vec<String>,
    /// (index into the stages, label).
    pub members: Vec<(usize, String)>,
}

/// Groups stages (base name, matrix values) by base, in order of first
/// appearance.
pub fn matrix_groups(stages: &[(&str, &[(String, Value)])]) -> Vec<MatrixGroup> {
    let mut groups: Vec<MatrixGroup> = Vec::new();
    for (i, (base, _)) in stages.iter().enumerate() {
        match groups.iter_mut().find(|g| g.base == *base) {
            Some(g) => g.members.push((i, String::new())),
            None => {
                groups.push(MatrixGroup { base: base.to_string(), axes: Vec::new(), members: vec![(i, String::new())] })
            }
        }
    }
    for group in &mut groups {
        let mut axes: Vec<String> = Vec::new();
        for (i, _) in &group.members {
            for (axis, value) in stages[*i].1 {
                let differs = group
                    .members
                    .iter()
                    .any(|(j, _)| stages[*j].1.iter().find(|(a, _)| a == axis).map(|(_, v)| v) != Some(value));
                if differs && !axes.contains(axis) {
                    axes.push(axis.clone());
                }
            }
        }
        for (i, label) in &mut group.members {
            let values: Vec<String> = axes
                .iter()
                .map(|axis| {
                    let value =
                        stages[*i].1.iter().find(|(a, _)| a == axis).map(|(_, v)| crate::plan::display_value(v));
                    format!("{axis}={}", value.unwrap_or_else(|| "-".into()))
                })
                .collect();
            *label = if values.is_empty() {
                crate::plan::expanded_name(&group.base, stages[*i].1)
            } else {
                values.join(", ")
            };
        }
        group.axes = axes;
    }
    groups
}

/// One figure a stage attached to its result, and its data where the stage
/// wrote it (`figures/NAME.json`).
pub struct Figure {
    /// The path within the result (`figures/loss.svg`).
    pub file: String,
    pub svg: String,
    pub chart: Option<crate::plot::Chart>,
}

fn stage_figures(store: &Store, outcome: &StageOutcome) -> Vec<Figure> {
    let Some(key) = &outcome.key else { return Vec::new() };
    let Lookup::Fresh(manifest) = store.lookup(key) else { return Vec::new() };
    let dir = store.object_dir(key);
    manifest
        .figures
        .iter()
        .filter_map(|file| {
            let svg = std::fs::read_to_string(dir.join(file)).ok()?;
            let data = dir.join(file).with_extension("json");
            let chart = std::fs::read_to_string(data).ok().and_then(|text| serde_json::from_str(&text).ok());
            Some(Figure { file: file.clone(), svg, chart })
        })
        .collect()
}

/// One figure of the expansions of a matrix stage (`items`: label and
/// figure): maps in one row on one colour scale, curves overlaid with a
/// legend by matrix value; other figures (or ones without data) side by
/// side as drawn.
pub fn group_figure(base: &str, name: &str, items: &[(&str, &Figure)]) -> String {
    use crate::plot::Chart;
    let charts: Vec<Option<&Chart>> = items.iter().map(|(_, f)| f.chart.as_ref()).collect();
    let caption = |what: &str| format!("<figcaption>{} — {}: {what}</figcaption>", escape(base), escape(name));
    if charts.iter().all(|c| matches!(c, Some(Chart::Heatmap(_)))) {
        let panels: Vec<(String, &crate::plot::Map)> = items
            .iter()
            .filter_map(|(label, f)| match &f.chart {
                Some(Chart::Heatmap(m)) => Some((label.to_string(), m)),
                _ => None,
            })
            .collect();
        let first = panels[0].1;
        let svg = crate::plot::heatmap_row(&first.title, &panels, &first.scale_label);
        return format!(
            "<figure class=matrix>{svg}{}</figure>",
            caption(&format!("{} maps on one colour scale", panels.len()))
        );
    }
    if charts.iter().all(|c| matches!(c, Some(Chart::Lines { x_ticks: None, .. }))) {
        let mut groups = Vec::new();
        let mut labels = None;
        for (label, f) in items {
            if let Some(Chart::Lines { title, x_label, y_label, series, .. }) = &f.chart {
                labels.get_or_insert((title.as_str(), x_label.as_str(), y_label.as_str()));
                groups.push((label.to_string(), series.clone()));
            }
        }
        let (title, x_label, y_label) = labels.unwrap_or_default();
        let svg = crate::plot::overlay_chart(title, x_label, y_label, &groups);
        return format!("<figure class=matrix>{svg}{}</figure>", caption("one colour per expansion"));
    }
    let mut html = String::from("<figure class=matrix><div class=panels>");
    for (label, figure) in items {
        let _ = write!(html, "<figure>{}<figcaption>{}</figcaption></figure>", figure.svg, escape(label));
    }
    html.push_str("</div>");
    html.push_str(&caption("side by side"));
    html.push_str("</figure>");
    html
}

/// Whether a matrix axis enumerates seeds (`seed`, `seeds`, any case).
pub fn is_seed_axis(axis: &str) -> bool {
    matches!(axis.to_ascii_lowercase().as_str(), "seed" | "seeds")
}

/// A metric against the other axes, averaged over a seed axis.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedSummary {
    pub seed_axis: String,
    /// The x axis: the first other matrix axis, or `stage` (categorical by base).
    pub x_axis: String,
    /// Category labels where x is not numeric.
    pub x_labels: Option<Vec<String>>,
    /// One series per base and value of the remaining axes.
    pub series: Vec<(String, Vec<crate::plot::Spread>)>,
    /// The most seeds averaged at one point.
    pub seeds: usize,
}

/// `metric` of a comparison table (`base`, the axes as text, the metrics)
/// averaged over its seed axis, when it has one: mean and sample sd of the
/// rows that differ only in their seed.
pub fn seed_summary(table: &arrow::array::RecordBatch, axes: &[String], metric: &str) -> Option<SeedSummary> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, Float64Type};
    let seed_axis = axes.iter().find(|a| is_seed_axis(a))?.clone();
    let text = |name: &str| -> Option<Vec<String>> {
        let column = arrow::compute::cast(table.column_by_name(name)?, &DataType::Utf8).ok()?;
        let column = column.as_string::<i32>();
        Some(
            (0..column.len())
                .map(|i| if column.is_null(i) { "-".into() } else { column.value(i).to_string() })
                .collect(),
        )
    };
    let values = arrow::compute::cast(table.column_by_name(metric)?, &DataType::Float64).ok()?;
    let values = values.as_primitive::<Float64Type>();
    let base = text("base")?;
    let others: Vec<&String> = axes.iter().filter(|a| !is_seed_axis(a)).collect();
    let (x_axis, xs) = match others.first() {
        Some(axis) => (axis.to_string(), text(axis)?),
        None => ("stage".to_string(), base.clone()),
    };
    let rest: Vec<(&String, Vec<String>)> = others.iter().skip(1).filter_map(|a| Some((*a, text(a)?))).collect();
    let mut categories: Vec<String> = Vec::new();
    for x in &xs {
        if !categories.contains(x) {
            categories.push(x.clone());
        }
    }
    let numeric = others.first().is_some() && categories.iter().all(|c| c.parse::<f64>().is_ok());
    if numeric {
        categories.sort_by(|a, b| a.parse::<f64>().unwrap().total_cmp(&b.parse::<f64>().unwrap()));
    }
    let mut cells: Vec<(String, f64, Vec<f64>)> = Vec::new();
    for row in 0..table.num_rows() {
        if values.is_null(row) {
            continue;
        }
        let group = std::iter::once(base[row].clone())
            .chain(rest.iter().map(|(axis, column)| format!("{axis}={}", column[row])))
            .collect::<Vec<_>>()
            .join(" ");
        let x =
            if numeric { xs[row].parse::<f64>().ok()? } else { categories.iter().position(|c| *c == xs[row])? as f64 };
        match cells.iter_mut().find(|(g, cx, _)| *g == group && *cx == x) {
            Some((_, _, list)) => list.push(values.value(row)),
            None => cells.push((group, x, vec![values.value(row)])),
        }
    }
    let mut series: Vec<(String, Vec<crate::plot::Spread>)> = Vec::new();
    let mut seeds = 0;
    for (group, x, list) in cells {
        let (mean, sd, n) = crate::plot::mean_sd(&list);
        seeds = seeds.max(n);
        let point = crate::plot::Spread { x, mean, sd, n };
        match series.iter_mut().find(|(g, _)| *g == group) {
            Some((_, points)) => points.push(point),
            None => series.push((group, vec![point])),
        }
    }
    for (_, points) in &mut series {
        points.sort_by(|a, b| a.x.total_cmp(&b.x));
    }
    Some(SeedSummary { seed_axis, x_axis, x_labels: (!numeric).then_some(categories), series, seeds })
}

/// The comparison's chart averaged over a seed axis, with its caption;
/// None where the sweep has no seed axis. `voxflow compare`'s SVG is this
/// chart when there is a seed axis.
pub(crate) fn seed_chart(
    table: &arrow::array::RecordBatch,
    axes: &[String],
    metric: Option<String>,
) -> Option<(String, String)> {
    let metric = metric?;
    let summary = seed_summary(table, axes, &metric)?;
    let note = format!("mean ± sample sd (n − 1) over {} seeds ({})", summary.seeds, summary.seed_axis);
    let svg = crate::plot::error_bar_chart(
        &format!("{metric} by {}", summary.x_axis),
        &summary.x_axis,
        &metric,
        &summary.series,
        summary.x_labels.as_deref(),
        &note,
    );
    let caption = format!(
        "{metric}: each point the mean over the values of matrix axis `{}`, the error bar ± one sample standard deviation (n − 1 in the denominator)",
        summary.seed_axis
    );
    Some((svg, caption))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::{Chart, Map};
    use rand::Rng;
    use serde_json::json;

    fn values(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
        pairs.iter().map(|(a, v)| (a.to_string(), v.clone())).collect()
    }

    #[test]
    fn expansions_of_one_stage_form_one_group_labelled_by_what_differs() {
        let topo = values(&[("model", json!("topolm")), ("seed", json!(1))]);
        let control = values(&[("model", json!("control")), ("seed", json!(1))]);
        let empty: Vec<(String, Value)> = Vec::new();
        let stages: Vec<(&str, &[(String, Value)])> =
            vec![("corpus", &empty), ("train", &topo), ("maps", &topo), ("train", &control), ("maps", &control)];
        let groups = matrix_groups(&stages);
        assert_eq!(groups.iter().map(|g| g.base.as_str()).collect::<Vec<_>>(), ["corpus", "train", "maps"]);
        assert_eq!(groups[0].members, vec![(0, "corpus".to_string())]);
        assert!(groups[0].axes.is_empty());
        // `seed` is 1 in both: not in the labels.
        assert_eq!(groups[1].axes, ["model"]);
        assert_eq!(groups[1].members, vec![(1, "model=topolm".to_string()), (3, "model=control".to_string())]);
        assert_eq!(groups[2].members, vec![(2, "model=topolm".to_string()), (4, "model=control".to_string())]);
    }

    fn figure(chart: Chart) -> Figure {
        Figure { file: "figures/x.svg".into(), svg: chart.svg(), chart: Some(chart) }
    }

    #[test]
    fn maps_of_a_matrix_stage_share_one_row_and_one_colour_scale() {
        let mut rng = crate::testing::fresh_rng("report maps");
        let n = rng.random_range(2..5);
        let (rows, cols) = (rng.random_range(3..9), rng.random_range(3..9));
        let maps: Vec<Figure> = (0..n)
            .map(|k| {
                let scale = rng.random_range(0.5..5.0);
                let values: Vec<f64> = (0..rows * cols)
                    .map(|i| if i == k { f64::NAN } else { rng.random_range(-1.0..1.0) * scale })
                    .collect();
                figure(Chart::Heatmap(Map {
                    title: "layer 0 attn".into(),
                    rows,
                    cols,
                    values,
                    outlined: vec![],
                    scale_label: "Welch t".into(),
                }))
            })
            .collect();
        let largest = maps
            .iter()
            .flat_map(|f| match &f.chart {
                Some(Chart::Heatmap(m)) => m.values.clone(),
                _ => vec![],
            })
            .filter(|v| v.is_finite())
            .fold(0.0f64, |m, v| m.max(v.abs()));
        let labels: Vec<String> = (0..n).map(|k| format!("model=m{k}")).collect();
        let items: Vec<(&str, &Figure)> = labels.iter().map(|l| l.as_str()).zip(&maps).collect();
        let html = group_figure("sel", "figures/x.svg", &items);
        assert_eq!(html.matches("<svg").count(), 1, "one drawing");
        assert!(html.contains(&format!(r#"class="map-row" data-panels="{n}""#)));
        assert_eq!(html.matches(r#"class="map-panel""#).count(), n);
        assert_eq!(html.matches(r#"class="colour-bar""#).count(), 1);
        for label in &labels {
            assert!(html.contains(&format!(">{label}</text>")), "panel titled {label}");
        }
        let top = format!(">{}</text>", crate::history::significant(largest));
        let bottom = format!(">{}</text>", crate::history::significant(-largest));
        assert!(html.contains(&top) && html.contains(&bottom), "scale to ±{largest}");
        // Cells: rows x cols per panel, plus 21 steps of the bar.
        assert_eq!(html.matches("<rect").count(), 1 + n * rows * cols + 21);
    }

    #[test]
    fn curves_of_a_matrix_stage_are_overlaid_with_a_legend_by_value() {
        let curve = |name: &str, k: f64| crate::plot::Series {
            name: name.into(),
            points: (0..100).map(|s| (s as f64 * 10.0, k / (1.0 + s as f64))).collect(),
        };
        let a = figure(crate::plot::lines("loss", "step", "loss", vec![curve("train", 3.0), curve("test", 3.5)]));
        let b = figure(crate::plot::lines("loss", "step", "loss", vec![curve("train", 2.0), curve("test", 2.5)]));
        let html = group_figure("train", "figures/loss.svg", &[("alpha=0", &a), ("alpha=2.5", &b)]);
        assert_eq!(html.matches("<svg").count(), 1);
        assert_eq!(html.matches("<polyline").count(), 4);
        assert_eq!(html.matches("<circle").count(), 0, "100 points a line: no markers");
        for legend in [">alpha=0</text>", ">alpha=2.5</text>", ">train</text>", ">test</text>"] {
            assert!(html.contains(legend), "{legend}");
        }
        // Mixed or data-less figures: side by side as drawn.
        let plain = Figure { file: "figures/h.svg".into(), svg: "<svg></svg>".into(), chart: None };
        let html = group_figure("score", "figures/h.svg", &[("method=a", &plain), ("method=b", &plain)]);
        assert!(html.contains("class=panels") && html.matches("<svg").count() == 2);
    }

    #[test]
    fn a_seed_axis_becomes_a_mean_with_a_sample_sd() {
        use arrow::array::{Float64Array, RecordBatch, StringArray};
        use std::sync::Arc;
        let mut rng = crate::testing::fresh_rng("report seeds");
        let sizes = ["32", "64", "96"];
        let (mut base, mut size, mut seed, mut metric) = (vec![], vec![], vec![], vec![]);
        let mut expected: Vec<(String, f64, Vec<f64>)> = Vec::new();
        for stage in ["score", "probe"] {
            for s in sizes {
                let seeds = rng.random_range(1..6);
                let mut list = Vec::new();
                for k in 0..seeds {
                    let v: f64 = rng.random_range(-1.0..1.0) * 10f64.powi(rng.random_range(-3..3));
                    base.push(stage);
                    size.push(s);
                    seed.push(k.to_string());
                    metric.push(v);
                    list.push(v);
                }
                expected.push((stage.to_string(), s.parse().unwrap(), list));
            }
        }
        let table = RecordBatch::try_from_iter(vec![
            ("base", Arc::new(StringArray::from(base)) as arrow::array::ArrayRef),
            ("size", Arc::new(StringArray::from(size))),
            ("seed", Arc::new(StringArray::from(seed))),
            ("mean_r", Arc::new(Float64Array::from(metric))),
        ])
        .unwrap();
        let axes = vec!["size".to_string(), "seed".to_string()];
        let summary = seed_summary(&table, &axes, "mean_r").expect("a seed axis");
        assert_eq!((summary.seed_axis.as_str(), summary.x_axis.as_str()), ("seed", "size"));
        assert_eq!(summary.x_labels, None, "sizes are numeric");
        assert_eq!(summary.series.len(), 2);
        for (stage, x, list) in &expected {
            let (_, points) = summary.series.iter().find(|(g, _)| g == stage).unwrap();
            let point = points.iter().find(|p| p.x == *x).unwrap();
            // Two passes in float64.
            let n = list.len() as f64;
            let mean = list.iter().sum::<f64>() / n;
            let sd = (list.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            assert_eq!(point.n, list.len());
            assert!((point.mean - mean).abs() <= 1e-12 * mean.abs().max(1e-3), "{} vs {mean}", point.mean);
            if list.len() > 1 {
                assert!((point.sd - sd).abs() <= 1e-12 * sd.max(1e-3), "{} vs {sd}", point.sd);
            } else {
                assert!(point.sd.is_nan());
            }
        }
        let (svg, caption) = seed_chart(&table, &axes, Some("mean_r".into())).unwrap();
        let bars = expected.iter().filter(|(_, _, l)| l.len() > 1).count();
        assert_eq!(svg.matches(r#"class="error-bar""#).count(), bars);
        assert_eq!(svg.matches("<circle").count(), 6, "one point per stage and size, not per seed");
        assert!(svg.contains("sample sd (n − 1)") && caption.contains("sample standard deviation"));
        assert!(seed_summary(&table, &axes[..1], "mean_r").is_none(), "no seed axis: no summary");
    }
}
