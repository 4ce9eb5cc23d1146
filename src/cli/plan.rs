//! `voxflow plan` (and `voxflow run --dry-run`): what `run` would do and
//! why, one line per stage (or JSON), without running anything. Takes
//! `--set`, `--force` and `--stage` as `run` does; the time column is the
//! last measured time of each stage (`-` where none is known).

use serde_json::json;

use voxflow::exec::{self, StageOutcome, Status};
use voxflow::plan::Pipeline;
use voxflow::store::{Lookup, Store};

use super::args::{Format, PipelineArgs, PlanArgs};
use super::error::CliError;
use super::output::{outcome_json, print_plan};

pub fn plan(args: &PlanArgs) -> Result<(), CliError> {
    show(&args.pipeline, &args.force, &args.stages)
}

/// Prints the plan of the pipeline with `--force` and `--stage` applied.
pub fn show(args: &PipelineArgs, force: &Option<Vec<String>>, stages: &[String]) -> Result<(), CliError> {
    let (pipeline, store) = super::open(args)?;
    let force = super::force_set(&pipeline, force)?;
    let targets = super::named_stages(&pipeline, "--stage", stages)?;
    let needed = super::needed_stages(&pipeline, &targets);
    let outcomes: Vec<StageOutcome> = exec::plan(&pipeline, &store, &force)
        .into_iter()
        .zip(&needed)
        .filter_map(|(outcome, &keep)| keep.then_some(outcome))
        .collect();
    let _ = store.save_memo();
    let times = last_times(&pipeline, &store, &outcomes);
    if args.format == Format::Json {
        let stages: Vec<_> = outcomes
            .iter()
            .zip(&times)
            .map(|(outcome, time)| {
                let mut value = outcome_json(outcome);
                value["last_seconds"] = json!(time);
                value
            })
            .collect();
        println!("{}", json!({"pipeline": pipeline.name, "stages": stages}));
    } else {
        print_plan(&outcomes, &times);
        let dirty = outcomes.iter().filter(|o| o.status == Status::Dirty).count();
        eprintln!("{dirty} of {} stages would run", outcomes.len());
    }
    Ok(())
}

/// Each stage's last measured time: the build time of its current result
/// where the store has it, else its time in the last recorded run where it
/// ran there.
fn last_times(pipeline: &Pipeline, store: &Store, outcomes: &[StageOutcome]) -> Vec<Option<f64>> {
    let mut last_run = None;
    outcomes
        .iter()
        .map(|outcome| {
            if let Some(key) = &outcome.key {
                if let Lookup::Fresh(manifest) = store.lookup(key) {
                    return Some(manifest.seconds);
                }
            }
            let record = last_run.get_or_insert_with(|| voxflow::history::last(store, &pipeline.name));
            record
                .as_ref()?
                .summary
                .stages
                .iter()
                .find(|s| s.name == outcome.name && matches!(s.status, Status::Ran | Status::Failed))
                .map(|s| s.seconds)
        })
        .collect()
}
