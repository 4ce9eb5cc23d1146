//! `voxflow show`: a stage's current result: its directory, outputs (paths,
//! shapes, digests), logs, figures and warnings; for a resumable stage that
//! is running or was interrupted, its last reported progress. Exits 1 when a selected
//! stage has no current result.

use serde_json::json;

use voxflow::exec::{self, Force};
use voxflow::store::Lookup;

use super::args::{Format, StageArgs};
use super::error::{CliError, EXIT_FAILED};

pub fn show(args: &StageArgs) -> Result<(), CliError> {
    let (pipeline, store) = super::open(&args.pipeline)?;
    let selected = super::select_stages(&pipeline, &args.stage)?;
    let human = args.pipeline.format == Format::Human;
    let outcomes = exec::plan(&pipeline, &store, &Force::Nothing);
    let mut documents = Vec::new();
    let mut missing = false;
    for i in selected {
        let outcome = &outcomes[i];
        let manifest = outcome.key.as_ref().and_then(|key| match store.lookup(key) {
            Lookup::Fresh(manifest) => Some(manifest),
            _ => None,
        });
        let Some(manifest) = manifest else {
            missing = true;
            // A resumable stage that is running, or was interrupted, left its progress.
            let progress = outcome.key.as_ref().and_then(|key| store.load_progress(key));
            if human {
                println!("{}: no current result ({}); run the pipeline first", outcome.name, outcome.reason);
                if let (Some(progress), Some(key)) = (&progress, &outcome.key) {
                    println!(
                        "  running or interrupted: last reported {}/{} at {}{}; work directory {} (a run resumes from it)",
                        progress.done,
                        progress.total,
                        progress.at,
                        progress.note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default(),
                        store.work_path(key).display()
                    );
                }
            }
            documents.push(
                json!({"name": outcome.name, "status": outcome.status, "reason": outcome.reason, "progress": progress}),
            );
            continue;
        };
        let dir = store.object_dir(&manifest.key);
        if human {
            println!("{} ({}), key {}", outcome.name, outcome.kind, manifest.key);
            println!("  directory: {}", dir.display());
            println!(
                "  built {} on {} ({}) in {:.2}s by voxflow {}",
                manifest.finished_at, manifest.host, manifest.device, manifest.seconds, manifest.voxflow_version
            );
            for (name, output) in &manifest.outputs {
                let shape = output.shape.as_ref().map(|s| format!("{s:?}")).unwrap_or_else(|| "-".into());
                println!(
                    "  output {name}: {} ({}, shape {shape}, {} bytes, digest {})",
                    dir.join(&output.file).display(),
                    output.format,
                    output.bytes,
                    output.digest
                );
            }
            for log in &manifest.logs {
                println!("  log: {}", dir.join(log).display());
            }
            for figure in &manifest.figures {
                println!("  figure: {}", dir.join(figure).display());
            }
            for warning in &manifest.warnings {
                println!("  warning: {warning}");
            }
        }
        let mut value = serde_json::to_value(&*manifest).expect("manifest serialises");
        value["name"] = json!(outcome.name);
        value["directory"] = json!(dir);
        documents.push(value);
    }
    if !human {
        println!("{}", json!({"pipeline": pipeline.name, "stages": documents}));
    }
    if missing {
        return Err(CliError::quiet(EXIT_FAILED));
    }
    Ok(())
}
