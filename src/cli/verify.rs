//! `voxflow verify`: re-hashes every object of a store (given directly or as
//! a pipeline's) and lists the damaged ones; `--fix` removes them so the
//! next run rebuilds them. Exits 1 when any object is damaged.

use serde_json::json;

use voxflow::store::Store;

use super::args::{Format, VerifyArgs};
use super::error::{CliError, EXIT_FAILED};

pub fn verify(args: &VerifyArgs) -> Result<(), CliError> {
    let store_dir = match (&args.store, &args.pipeline) {
        (Some(store), _) => store.clone(),
        (None, Some(path)) => {
            voxflow::load_pipeline(path, &[], None)
                .map_err(|diagnostics| CliError::invalid_pipeline(diagnostics, args.format))?
                .store_dir
        }
        (None, None) => {
            return Err(CliError::usage("say which store to verify")
                .with_hint("voxflow verify PIPELINE, or voxflow verify --store DIR"))
        }
    };
    let store = Store::open(&store_dir)?;
    let objects = store.object_keys().map(|k| k.len()).unwrap_or(0);
    let problems = store.verify()?;
    if args.fix {
        for problem in &problems {
            let _ = store.remove(&problem.key);
        }
    }
    if args.format == Format::Json {
        println!("{}", json!({"store": store_dir, "objects": objects, "problems": problems, "fixed": args.fix}));
    } else {
        for problem in &problems {
            println!("damaged {} ({}): {}", problem.key, problem.stage.as_deref().unwrap_or("?"), problem.detail);
        }
        eprintln!(
            "{objects} objects checked, {} problem{}{}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            if args.fix && !problems.is_empty() { "; damaged objects removed, the next run rebuilds them" } else { "" }
        );
    }
    if !problems.is_empty() {
        return Err(CliError::quiet(EXIT_FAILED));
    }
    Ok(())
}
