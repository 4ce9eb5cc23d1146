//! `voxflow runs` and `voxflow diff`: the recorded runs of a pipeline
//! (`voxflow::history`), one line each, and what differs between two of
//! them: the params of each stage that differ, then every summary metric
//! side by side with its change (like `dvc params diff` + `dvc metrics diff`).

use serde_json::json;

use voxflow::exec::Status;
use voxflow::history::{self, significant, RunRecord};

use super::args::{DiffArgs, Format, PipelineArgs};
use super::error::CliError;

pub fn runs(args: &PipelineArgs) -> Result<(), CliError> {
    let (pipeline, store) = super::open(args)?;
    let records = history::list(&store, &pipeline.name);
    if args.format == Format::Json {
        let runs: Vec<_> = records.iter().map(run_json).collect();
        println!("{}", json!({"pipeline": pipeline.name, "runs": runs}));
        return Ok(());
    }
    if records.is_empty() {
        eprintln!("{} has no recorded run in {}", pipeline.name, store.root().display());
        return Ok(());
    }
    println!(
        "{:>4}  {:<20}  {:>9}  {:>4}  {:>6}  {:>6}  overrides",
        "run", "started", "seconds", "ran", "cached", "failed"
    );
    for record in &records {
        let summary = &record.summary;
        println!(
            "{:>4}  {:<20}  {:>9.2}  {:>4}  {:>6}  {:>6}  {}{}",
            record.id,
            record.started_at,
            summary.seconds,
            summary.count(Status::Ran),
            summary.count(Status::Cached),
            summary.count(Status::Failed),
            record.overrides_text(),
            if summary.cancelled { " (interrupted)" } else { "" }
        );
    }
    Ok(())
}

fn run_json(record: &RunRecord) -> serde_json::Value {
    let summary = &record.summary;
    json!({
        "id": record.id,
        "started_at": record.started_at,
        "finished_at": summary.finished_at,
        "seconds": summary.seconds,
        "pipeline_digest": record.pipeline_digest,
        "overrides": record.overrides,
        "ran": summary.count(Status::Ran),
        "cached": summary.count(Status::Cached),
        "failed": summary.count(Status::Failed),
        "cancelled": summary.cancelled,
        "stages": summary.stages.iter().map(|s| json!({"name": s.name, "key": s.key, "status": s.status, "seconds": s.seconds})).collect::<Vec<_>>(),
        "metrics": record.metrics,
    })
}

pub fn diff(args: &DiffArgs) -> Result<(), CliError> {
    let (pipeline, store) = super::open(&args.pipeline)?;
    let ids = history::ids(&store, &pipeline.name);
    let file = args.pipeline.pipeline.display();
    let (a, b) = match (args.run_a, args.run_b) {
        (Some(a), Some(b)) => (a, b),
        (Some(a), None) => match ids.last() {
            Some(&last) => (a, last),
            None => (a, a),
        },
        (None, _) if ids.len() >= 2 => (ids[ids.len() - 2], ids[ids.len() - 1]),
        (None, _) => {
            return Err(CliError::usage(format!("diff needs two recorded runs; {} has {}", pipeline.name, ids.len()))
                .with_hint(format!(
                    "run it again with other params, e.g. `voxflow run {file} --set STAGE.PARAM=VALUE`"
                )))
        }
    };
    let load = |id: u64| {
        history::load(&store, &pipeline.name, id).ok_or_else(|| {
            CliError::usage(format!("no run {id} of {}", pipeline.name))
                .with_hint(format!("`voxflow runs {file}` lists the recorded runs"))
        })
    };
    let (run_a, run_b) = (load(a)?, load(b)?);
    let difference = history::diff(&run_a, &run_b);
    if args.pipeline.format == Format::Json {
        println!(
            "{}",
            json!({"pipeline": pipeline.name, "a": run_json(&run_a), "b": run_json(&run_b), "params": difference.params, "metrics": difference.metrics})
        );
        return Ok(());
    }
    let (label_a, label_b) = (format!("run {a}"), format!("run {b}"));
    println!("run {a}: {}  {}", run_a.started_at, run_a.overrides_text());
    println!("run {b}: {}  {}", run_b.started_at, run_b.overrides_text());
    println!();
    if difference.params.is_empty() {
        println!("params: no differences");
    } else {
        let rows: Vec<[String; 4]> = difference
            .params
            .iter()
            .map(|p| [p.stage.clone(), p.param.clone(), value_text(&p.a), value_text(&p.b)])
            .collect();
        print_table(&["stage", "param", &label_a, &label_b], &rows);
    }
    println!();
    if difference.metrics.is_empty() {
        println!("metrics: neither run has summary metrics");
    } else {
        let number = |v: Option<f64>| v.map(significant).unwrap_or_else(|| "-".into());
        let rows: Vec<[String; 5]> = difference
            .metrics
            .iter()
            .map(|m| {
                let change = match m.change {
                    Some(change) if change > 0.0 => format!("+{}", significant(change)),
                    Some(change) => significant(change),
                    None => "-".into(),
                };
                [m.stage.clone(), m.metric.clone(), number(m.a), number(m.b), change]
            })
            .collect();
        print_table(&["stage", "metric", &label_a, &label_b, "change"], &rows);
    }
    Ok(())
}

fn value_text(value: &Option<serde_json::Value>) -> String {
    match value {
        None => "(absent)".into(),
        Some(value) => voxflow::plan::display_value(value),
    }
}

/// Left-aligned columns separated by two spaces.
fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
