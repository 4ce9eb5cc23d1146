//! `voxflow exec`: builds one stage whose inputs are already in the store,
//! in this process, and prints one JSON line (what a Slurm job runs).
//! Exits 1 when the stage fails, 130 when Ctrl-C stopped it.

use std::sync::atomic::Ordering;

use serde_json::json;

use super::args::ExecArgs;
use super::error::CliError;
use super::CANCEL;

pub fn exec(args: &ExecArgs) -> Result<(), CliError> {
    let (pipeline, store) = super::open(&args.pipeline)?;
    let Some(index) = pipeline.index_of(&args.stage) else {
        return Err(CliError::usage(format!("no stage `{}` in {}", args.stage, pipeline.file.display()))
            .with_hint("give the expanded name, e.g. fit[method=lanczos]"));
    };
    let (manifest, ran) = voxflow::exec::exec_stage(&pipeline, &store, index, args.key.as_deref(), args.force, &CANCEL)
        .map_err(|error| {
            let message = format!("stage `{}`: {error}", args.stage);
            let failed =
                if CANCEL.load(Ordering::Relaxed) { CliError::interrupted(message) } else { CliError::failed(message) };
            match error.hint() {
                Some(hint) => failed.with_hint(hint),
                None => failed,
            }
        })?;
    let status = if ran { "ran" } else { "cached" };
    println!(
        "{}",
        json!({"name": args.stage, "key": manifest.key, "status": status, "seconds": manifest.seconds, "digest": manifest.digest})
    );
    Ok(())
}
