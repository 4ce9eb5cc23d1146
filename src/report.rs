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
    html.push_str("<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f4f4f4}.num{text-align:right}figure{display:inline-block;margin:8px}code{font-size:12px}</style></head><body>");
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
    html.push_str(&dag_svg(pipeline, &outcomes));
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
            "<tr><td>{}</td><td>{}</td><td style=\"background:{}\">{}</td><td class=num>{:.2}</td><td>{}</td><td><code>{}</code></td></tr>",
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
            if let Some(svg) = crate::compare::chart(&comparison, None) {
                let _ = write!(html, "<figure>{svg}</figure>");
            }
        }
    }

    let mut figures = String::new();
    for outcome in outcomes.iter().flatten() {
        let Some(key) = &outcome.key else { continue };
        let Lookup::Fresh(manifest) = store.lookup(key) else { continue };
        for figure in &manifest.figures {
            if let Ok(svg) = std::fs::read_to_string(store.object_dir(key).join(figure)) {
                let _ = write!(
                    figures,
                    "<figure>{svg}<figcaption>{} — {}</figcaption></figure>",
                    escape(&outcome.name),
                    escape(figure)
                );
            }
        }
    }
    if !figures.is_empty() {
        html.push_str("<h2>Figures</h2>");
        html.push_str(&figures);
    }
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
/// depth; edges are arrows. The drawing scales down to the page's width.
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
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0} {height:.0}" width="{width:.0}" style="max-width:100%;height:auto" font-family="sans-serif" font-size="12"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="#666"/></marker></defs>"##
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
            r##"<g><title>{}</title><rect x="{x:.1}" y="{y:.1}" width="{box_w:.1}" height="{box_h}" rx="4" fill="{}" stroke="#555"/><text x="{:.1}" y="{:.1}">{}</text><text x="{:.1}" y="{:.1}" font-size="10" fill="#333">{}</text></g>"##,
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
