//! `voxflow export mlflow`: sends recorded runs (`voxflow::history`) to an
//! MLflow tracking server (`voxflow::mlflow`) and prints what it created.

use serde_json::json;

use voxflow::mlflow::{self, ExportOptions, MlflowError};

use super::args::{Format, MlflowArgs};
use super::error::CliError;

pub fn mlflow(args: &MlflowArgs) -> Result<(), CliError> {
    let Some(uri) = args.tracking_uri.clone() else {
        return Err(CliError::usage("no MLflow tracking server given").with_hint(
            "pass --tracking-uri http://HOST:PORT or set MLFLOW_TRACKING_URI (start one with `mlflow server`)",
        ));
    };
    mlflow::check_uri(&uri).map_err(|e| {
        CliError::usage(e.to_string())
            .with_hint("start `mlflow server --backend-store-uri sqlite:///mlflow.db` and pass its http:// address")
    })?;
    let (pipeline, store, record) = super::chosen_run(&args.pipeline, args.run)?;
    let records = if args.all { voxflow::history::list(&store, &pipeline.name) } else { record.into_iter().collect() };
    if records.is_empty() {
        return Err(CliError::usage(format!("{} has no recorded run in {}", pipeline.name, store.root().display()))
            .with_hint(format!("`voxflow run {}` first", args.pipeline.pipeline.display())));
    }
    let options = ExportOptions {
        tracking_uri: uri.clone(),
        experiment: args.experiment.clone().unwrap_or_else(|| pipeline.name.clone()),
    };
    let mut exported = Vec::new();
    for record in &records {
        let summary = voxflow::mlflow::export(&store, record, &options).map_err(|e| match e {
            MlflowError::Usage(message) => CliError::usage(message),
            MlflowError::Unreachable { .. } => CliError::failed(e.to_string()).with_hint(
                "check that the server runs and the address is right (`mlflow server --host 127.0.0.1 --port 5000`)",
            ),
            MlflowError::Server { status: 401 | 403, .. } => CliError::failed(e.to_string())
                .with_hint("set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"),
            MlflowError::Server { .. } => CliError::failed(e.to_string()),
        })?;
        if args.pipeline.format == Format::Human {
            for warning in &summary.warnings {
                eprintln!("warning: {warning}");
            }
            println!(
                "run {}: MLflow run {} in experiment `{}` ({}): {} stage runs created, {} already there{}",
                record.id,
                summary.parent_run_id,
                options.experiment,
                summary.experiment_id,
                summary.created.len(),
                summary.existing.len(),
                if summary.replaced.is_empty() {
                    String::new()
                } else {
                    format!(", {} half-written ones written again", summary.replaced.len())
                }
            );
        }
        exported.push(json!({"run": record.id, "export": summary}));
    }
    if args.pipeline.format == Format::Json {
        println!(
            "{}",
            json!({"pipeline": pipeline.name, "tracking_uri": uri, "experiment": options.experiment, "runs": exported})
        );
    }
    Ok(())
}
