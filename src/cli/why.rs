//! `voxflow why`: explains why a stage is (or is not) fresh: its key now,
//! its key at the last run, and the reasons they differ, in the words of
//! `plan` (param, input, file by path, version), also where the stage is
//! fresh because an earlier run left the result for its key now.

use serde_json::json;

use voxflow::exec::{self, Force, StageOutcome, Status};
use voxflow::key::Reason;
use voxflow::plan::Pipeline;
use voxflow::store::{Lookup, PipelineState, Store};

use super::args::{Format, StageArgs};
use super::error::CliError;
use super::output::outcome_json;

pub fn why(args: &StageArgs) -> Result<(), CliError> {
    let (pipeline, store) = super::open(&args.pipeline)?;
    let selected = super::select_stages(&pipeline, &args.stage)?;
    let outcomes = exec::plan(&pipeline, &store, &Force::Nothing);
    let state = store.load_state(&pipeline.name);
    if args.pipeline.format == Format::Json {
        let stages: Vec<_> = selected
            .iter()
            .map(|&i| {
                let mut value = outcome_json(&outcomes[i]);
                value["last_key"] = json!(state.stages.get(&pipeline.stages[i].name).map(|s| s.key.clone()));
                value["since_last_run"] = json!(since_last_run(&pipeline, &store, &state, i, &outcomes[i]));
                value
            })
            .collect();
        println!("{}", json!({"pipeline": pipeline.name, "stages": stages}));
        return Ok(());
    }
    for i in selected {
        let outcome = &outcomes[i];
        let last = state.stages.get(&outcome.name).map(|s| s.key.as_str()).unwrap_or("(never run)");
        println!("{} ({}): {}", outcome.name, outcome.kind, outcome.status.as_str());
        println!("  key now:      {}", outcome.key.as_deref().unwrap_or("(not known until upstream stages run)"));
        println!("  key last run: {last}");
        let since = since_last_run(&pipeline, &store, &state, i, outcome);
        if !since.is_empty() {
            println!("  - cached: an earlier run left the result for the key now");
            println!("  what differs from the last run:");
            for reason in &since {
                println!("  - {reason}");
            }
            continue;
        }
        for reason in &outcome.reasons {
            println!("  - {reason}");
        }
        if outcome.reasons.is_empty() && !outcome.reason.is_empty() {
            println!("  - {}", outcome.reason);
        }
    }
    Ok(())
}

/// For a fresh stage whose key is not the one of its last run: how the two
/// records differ (a dirty stage's reasons already say it).
fn since_last_run(
    pipeline: &Pipeline,
    store: &Store,
    state: &PipelineState,
    index: usize,
    outcome: &StageOutcome,
) -> Vec<Reason> {
    let (Some(key), Some(last)) = (&outcome.key, state.stages.get(&outcome.name)) else { return Vec::new() };
    if outcome.status != Status::Fresh || *key == last.key {
        return Vec::new();
    }
    let Lookup::Fresh(manifest) = store.lookup(key) else { return Vec::new() };
    voxflow::key::explain_stage(&pipeline.base_dir, &pipeline.stages[index], &last.record, &manifest.record)
}
