//! `voxflow compare`: gathers the `summary` results of a sweep (of one or
//! several pipelines) into one table (pipeline, stage, swept axes, metrics),
//! filters, groups, pivots and sorts it on polars when asked, writes the
//! result as parquet and CSV beside an SVG plot of the rows, and prints it
//! (or all of it as JSON).

use serde_json::json;

use super::args::{CompareArgs, Format, PipelineArgs};
use super::error::{CliError, Problem};
use super::output::pretty_table;
use voxflow::compare::query::{self, Agg, Query, QueryError};

pub fn compare(args: &CompareArgs) -> Result<(), CliError> {
    let files: Vec<_> = args.pipeline.iter().chain(&args.pipelines).cloned().collect();
    if files.len() > 1 && args.run.is_some() {
        return Err(CliError::usage("--run names one pipeline's recorded run; it cannot apply to several")
            .with_hint("drop --run: each pipeline shows its last run (or its current plan with --set)"));
    }
    let mut parts = Vec::new();
    let mut runs = Vec::new();
    let mut names = Vec::new();
    let mut first_store = None;
    for file in &files {
        let pipeline_args = PipelineArgs {
            pipeline: file.clone(),
            set: args.set.clone(),
            store: args.store.clone(),
            format: args.format,
        };
        let (pipeline, store, run) = super::chosen_run(&pipeline_args, args.run)?;
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
        first_store.get_or_insert(store);
        names.push(pipeline.name.clone());
        runs.push(run);
        parts.push((pipeline.name.clone(), comparison));
    }
    let store = first_store.expect("clap requires a pipeline");
    let comparison = if parts.len() == 1 {
        parts.pop().unwrap().1
    } else {
        voxflow::compare::concat(parts).map_err(CliError::failed)?
    };
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
    let aggs = args.agg.iter().map(|a| Agg::parse(a)).collect::<Result<Vec<_>, _>>().map_err(CliError::usage)?;
    if !aggs.is_empty() && args.by.is_empty() && args.pivot.is_none() {
        return Err(CliError::usage("--agg needs --by or --pivot").with_hint(query::columns_hint(&comparison)));
    }
    let query = Query {
        filter: args.filter.clone(),
        by: args.by.clone(),
        pivot: args.pivot.clone(),
        metric: args.metric.clone(),
        aggs,
        sort: args.sort.clone(),
    };
    let result = query::run(&comparison, &query).map_err(|e| match e {
        QueryError::Usage { message, hint } => CliError::usage(message).with_hint(hint),
        QueryError::Failed(message) => CliError::failed(message),
    })?;
    let rows = voxflow::compare::Comparison {
        table: result.rows.clone(),
        axes: comparison.axes.clone(),
        metrics: comparison.metrics.clone(),
        missing: comparison.missing.clone(),
    };
    let out = args.out.clone().unwrap_or_else(|| store.root().join("compare").join(names.join("+")));
    let written =
        voxflow::compare::write_table(&result.table, &rows, &out, args.metric.as_deref()).map_err(CliError::failed)?;
    if args.format == Format::Json {
        let mut buffer = Vec::new();
        {
            let mut writer = arrow::json::ArrayWriter::new(&mut buffer);
            let _ = writer.write(&result.table);
            let _ = writer.finish();
        }
        let rows: serde_json::Value = serde_json::from_slice(&buffer).unwrap_or(json!([]));
        let (pipeline, run) = if names.len() == 1 {
            (json!(names[0]), json!(runs[0].as_ref().map(|r| r.id)))
        } else {
            (json!(names), json!(runs.iter().map(|r| r.as_ref().map(|r| r.id)).collect::<Vec<_>>()))
        };
        let columns: Vec<String> = result.table.schema().fields().iter().map(|f| f.name().clone()).collect();
        println!(
            "{}",
            json!({"pipeline": pipeline, "run": run, "axes": comparison.axes, "metrics": comparison.metrics,
                   "keys": result.keys, "columns": columns, "rows": rows, "missing": comparison.missing,
                   "files": written})
        );
        return Ok(());
    }
    let printed = if args.columns.is_empty() {
        result.table.clone()
    } else {
        // The keys (stage, base and the axes, or the --by keys), then the
        // columns of the chosen metrics.
        let schema = result.table.schema();
        let keep: Vec<usize> = result
            .keys
            .iter()
            .filter_map(|k| schema.index_of(k).ok())
            .chain(args.columns.iter().flat_map(|c| {
                result
                    .values
                    .iter()
                    .filter(move |(_, metric)| metric == c)
                    .filter_map(|(column, _)| schema.index_of(column).ok())
            }))
            .collect();
        result.table.project(&keep).unwrap_or_else(|_| result.table.clone())
    };
    match pretty_table(&printed) {
        Ok(table) => println!("{table}"),
        // The files are written: say so below, and exit 0.
        Err(error) => eprintln!("{}", Problem { message: error.to_string(), hint: None }),
    }
    if result.table.num_rows() == 0 {
        eprintln!("no row matches --filter {}", args.filter.as_deref().unwrap_or(""));
    }
    for (name, run) in names.iter().zip(&runs) {
        if let Some(run) = run {
            let prefix = if names.len() > 1 { format!("{name}: ") } else { String::new() };
            eprintln!("{prefix}run {} ({}), overrides: {}", run.id, run.started_at, run.overrides_text());
        }
    }
    for path in &written {
        eprintln!("wrote {}", path.display());
    }
    if !comparison.missing.is_empty() {
        eprintln!("not in the table (no current result): {}", comparison.missing.join(", "));
    }
    Ok(())
}
