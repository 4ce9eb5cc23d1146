//! `voxflow plan`: what `run` would do and why, one line per stage (or JSON),
//! without running anything.

use serde_json::json;

use voxflow::exec::{self, Status};

use super::args::{Format, PlanArgs};
use super::error::CliError;
use super::output::{outcome_json, print_outcomes};

pub fn plan(args: &PlanArgs) -> Result<(), CliError> {
    let (pipeline, store) = super::open(&args.pipeline)?;
    let force = super::force_set(&pipeline, &args.force)?;
    let outcomes = exec::plan(&pipeline, &store, &force);
    let _ = store.save_memo();
    if args.pipeline.format == Format::Json {
        println!(
            "{}",
            json!({"pipeline": pipeline.name, "stages": outcomes.iter().map(outcome_json).collect::<Vec<_>>()})
        );
    } else {
        print_outcomes(&outcomes);
        let dirty = outcomes.iter().filter(|o| o.status == Status::Dirty).count();
        eprintln!("{dirty} of {} stages would run", outcomes.len());
    }
    Ok(())
}
