//! `voxflow compare`: gathers the `summary` results of a sweep into one
//! table (stage, swept axes, metrics), writes it as parquet, CSV and an SVG
//! plot, and prints it (or all of it as JSON).

use serde_json::json;

use super::args::{CompareArgs, Format};
use super::error::{CliError, Problem};
use super::output::pretty_table;

pub fn compare(args: &CompareArgs) -> Result<(), CliError> {
    let (pipeline, store, run) = super::chosen_run(&args.pipeline, args.run)?;
    let keys = run.as_ref().map(|run| run.result_keys());
    let comparison = voxflow::compare::gather_keys(&pipeline, &store, keys.as_ref()).map_err(CliError::failed)?;
    if comparison.table.num_rows() == 0 {
        return Err(CliError::failed(format!(
            "no stage of {} has a current `summary` result",
            pipeline.file.display()
        ))
        .with_hint(format!(
            "run `voxflow run {}` first; evaluation stages write the summaries",
            pipeline.file.display()
        )));
    }
    let metrics_hint = || format!("metrics: {}", comparison.metrics.join(", "));
    if let Some(metric) = &args.metric {
        if !comparison.metrics.contains(metric) {
            return Err(CliError::usage(format!("no metric `{metric}` in the summaries")).with_hint(metrics_hint()));
        }
    }
    if let Some(unknown) = args.columns.iter().find(|c| !comparison.metrics.contains(c)) {
        return Err(
            CliError::usage(format!("no metric `{unknown}` in the summaries (--columns)")).with_hint(metrics_hint())
        );
    }
    let out = args.out.clone().unwrap_or_else(|| store.root().join("compare").join(&pipeline.name));
    let written = voxflow::compare::write(&comparison, &out, args.metric.as_deref()).map_err(CliError::failed)?;
    if args.pipeline.format == Format::Json {
        let mut buffer = Vec::new();
        {
            let mut writer = arrow::json::ArrayWriter::new(&mut buffer);
            let _ = writer.write(&comparison.table);
            let _ = writer.finish();
        }
        let rows: serde_json::Value = serde_json::from_slice(&buffer).unwrap_or(json!([]));
        println!(
            "{}",
            json!({"pipeline": pipeline.name, "run": run.as_ref().map(|r| r.id), "axes": comparison.axes, "metrics": comparison.metrics, "rows": rows, "missing": comparison.missing, "files": written})
        );
        return Ok(());
    }
    let printed = if args.columns.is_empty() {
        comparison.table.clone()
    } else {
        // The stage, its base name and the axes, then the chosen metrics.
        let keep: Vec<usize> = (0..2 + comparison.axes.len())
            .chain(args.columns.iter().filter_map(|c| comparison.table.schema().index_of(c).ok()))
            .collect();
        comparison.table.project(&keep).unwrap_or_else(|_| comparison.table.clone())
    };
    match pretty_table(&printed) {
        Ok(table) => println!("{table}"),
        // The files are written: say so below, and exit 0.
        Err(error) => eprintln!("{}", Problem { message: error.to_string(), hint: None }),
    }
    if let Some(run) = &run {
        eprintln!("run {} ({}), overrides: {}", run.id, run.started_at, run.overrides_text());
    }
    for path in &written {
        eprintln!("wrote {}", path.display());
    }
    if !comparison.missing.is_empty() {
        eprintln!("not in the table (no current result): {}", comparison.missing.join(", "));
    }
    Ok(())
}
