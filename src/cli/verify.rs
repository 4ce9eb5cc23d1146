//! `voxflow verify`: re-hashes every object of a store (given directly or as
//! a pipeline's) and checks each manifest (output digests and sizes, the
//! combined digest downstream keys use), and lists the damaged ones; `--fix`
//! removes them so the next run rebuilds them, and says which removals
//! failed and why. Exits 1 when any object is damaged, 2 when there is no
//! store to verify (verify never creates one).

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
    if !store_dir.join("objects").is_dir() {
        return Err(CliError::usage(format!("no store at {}", store_dir.display()))
            .with_hint("run the pipeline first, or pass --store the store directory"));
    }
    let store = Store::open_existing(&store_dir)?;
    let objects = store.object_keys().map(|k| k.len()).unwrap_or(0);
    let problems = store.verify()?;
    // Each damaged entry removed once, and each removal that failed with its cause.
    let mut unremoved: Vec<(String, String)> = Vec::new();
    if args.fix {
        let mut keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        keys.dedup();
        for key in keys {
            if let Err(error) = store.remove(key) {
                unremoved.push((key.to_string(), error.to_string()));
            }
        }
    }
    if args.format == Format::Json {
        let failed: Vec<_> = unremoved.iter().map(|(key, cause)| json!({"key": key, "cause": cause})).collect();
        println!(
            "{}",
            json!({"store": store_dir, "objects": objects, "problems": problems, "fixed": args.fix, "not_removed": failed})
        );
    } else {
        for problem in &problems {
            println!("damaged {} ({}): {}", problem.key, problem.stage.as_deref().unwrap_or("?"), problem.detail);
        }
        for (key, cause) in &unremoved {
            println!("not removed {key}: {cause}");
        }
        eprintln!(
            "{objects} objects checked, {} problem{}{}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            match (args.fix && !problems.is_empty(), unremoved.len()) {
                (false, _) => String::new(),
                (true, 0) => "; damaged objects removed, the next run rebuilds them".into(),
                (true, n) => format!("; {n} could not be removed (`not removed` lines above)"),
            }
        );
    }
    if !problems.is_empty() {
        return Err(CliError::quiet(EXIT_FAILED));
    }
    Ok(())
}
